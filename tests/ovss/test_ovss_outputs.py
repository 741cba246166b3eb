"""predict.py never overwrites or loses a user's file: every output planned and checked before any work
(ovss.outputs), collision-free names by construction, every pre-existing file byte-identical afterwards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("timm")
pytest.importorskip("yaml")

import torch
import yaml
from ovss.config import RunConfig
from ovss.model import OVSSModel
from ovss.outputs import OutputPathError, plan_outputs
from ovss.tiny_model import tiny_model_config
from PIL import Image

from example_scripts import ovss_script
from ovss import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")

EVAL = {"kernel": 32, "out_res": 48, "test_min_size": 48, "test_max_size": 200}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    data = {"model": tiny_model_config("none").to_dict(), "eval": {"datasets": ["coco_stuff_val"], **EVAL}}
    (d / "run.yaml").write_text(yaml.safe_dump(data))
    cfg = RunConfig.from_dict(data)
    torch.manual_seed(1)
    model = OVSSModel(cfg.model)
    ckpt.save_atomic({"model": model.state_dict()}, d / "model.pth", fmt=ckpt.WEIGHTS_FORMAT)
    return d / "run.yaml", d / "model.pth"


def _image(path: Path, h: int, w: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _snapshot(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _predict(setup, out, *inputs, extra=()):
    cfg, weights = setup
    argv = ["--config", str(cfg), "--weights", str(weights), "--classes", "cat,dog,sky", "--output", str(out),
            "--device", "cpu", *extra, *map(str, inputs)]  # fmt: skip
    return ovss_script("predict").main(argv)


def test_plan_names_are_collision_free_by_construction():
    plan = plan_outputs(["a/x.jpg", "b/x.jpg", "a/y.png", "a/Y.jpg", "a/z.png", "a/z_mask.png"], "out")
    names = [o.overlay.name for o in plan]
    assert names == ["a__x.jpg.png", "b__x.jpg.png", "y.png.png", "Y.jpg.png", "z.png.png", "z_mask.png.png"]
    files = [p.name.casefold() for o in plan for p in o.paths()]
    assert len(files) == len(set(files))  # distinct even on a case-insensitive file system
    assert [o.overlay.name for o in plan_outputs(["q/p.jpg", "q/r.jpg"], "out")] == ["p.png", "r.png"]
    mixed = plan_outputs(["a/x.jpg", Path("b/x.jpg").resolve(), "./a/x.jpg"], "out")  # relative + absolute
    assert [o.overlay.name for o in mixed] == ["a__x.jpg.png", "b__x.jpg.png"]  # a file listed twice: once


def test_same_stem_from_two_folders_and_mask_named_inputs_all_survive(setup, tmp_path, capsys):
    _image(tmp_path / "cam1" / "0001.jpg", 20, 24, 0)
    _image(tmp_path / "cam2" / "0001.jpg", 22, 18, 1)
    _image(tmp_path / "pics" / "x.png", 16, 16, 2)
    _image(tmp_path / "pics" / "x_mask.png", 17, 19, 3)  # its overlay would be x.png's mask
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    written = _predict(setup, out, tmp_path / "cam1", tmp_path / "cam2", tmp_path / "pics")
    after = _snapshot(tmp_path)
    assert {p: h for p, h in after.items() if p in before} == before  # every input byte-identical
    assert len(written) == 4
    masks = sorted(p.name for p in out.glob("*_mask.png"))
    assert len(masks) == 4  # named by stem alone, two of the four would overwrite the others
    sizes = sorted(Image.open(p).size for p in out.glob("*_mask.png"))
    assert sizes == sorted([(24, 20), (18, 22), (16, 16), (19, 17)])  # every input has its own mask
    printed = capsys.readouterr().out  # each input -> its output, so the user sees which is which
    assert "cam1__0001.jpg.png" in printed and "cam2__0001.jpg.png" in printed


@pytest.mark.parametrize("case", ["output_is_input_folder", "output_under_a_file", "output_is_a_file",
                                  "existing_outputs"])  # fmt: skip
def test_refused_before_any_work_and_every_file_kept(setup, tmp_path, capsys, case):
    imgs = tmp_path / "imgs"
    _image(imgs / "a.png", 16, 16, 0)
    _image(imgs / "b.jpg", 16, 16, 1)
    (tmp_path / "notes.txt").write_text("mine")
    out = {
        "output_is_input_folder": imgs,
        "output_under_a_file": tmp_path / "notes.txt" / "sub",
        "output_is_a_file": tmp_path / "notes.txt",
        "existing_outputs": tmp_path / "out",
    }[case]
    if case == "existing_outputs":
        (out).mkdir()
        (out / "a_mask.png").write_bytes(b"an earlier result the user kept")
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as exc:
        _predict(setup, out, imgs)
    assert exc.value.code == 5
    err = capsys.readouterr().err
    words = {
        "output_is_input_folder": "is the folder of the input images",
        "output_under_a_file": "is an existing file, not a folder",
        "output_is_a_file": "is an existing file, not a folder",
        "existing_outputs": "already exist",
    }[case]
    assert words in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before  # every pre-existing file byte-identical, nothing new written


def test_overwrite_replaces_earlier_outputs_only(setup, tmp_path):
    imgs = tmp_path / "imgs"
    _image(imgs / "a.png", 16, 16, 0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_mask.png").write_bytes(b"old")
    (out / "unrelated.txt").write_text("keep")
    before = _snapshot(imgs)
    _predict(setup, out, imgs, extra=["--overwrite"])
    assert Image.open(out / "a_mask.png").size == (16, 16)
    assert (out / "unrelated.txt").read_text() == "keep" and _snapshot(imgs) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "a.png").symlink_to(imgs / "a.png")  # an output path that is the input itself
    with pytest.raises(OutputPathError, match="replace input images"):
        plan_outputs([imgs / "a.png"], linked, overwrite=True)


def test_unreadable_images_are_all_listed_before_any_output(setup, tmp_path, capsys):
    imgs = tmp_path / "imgs"
    _image(imgs / "a.png", 16, 16, 0)
    (imgs / "b.jpg").write_text("not an image")
    (imgs / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SystemExit) as exc:
        _predict(setup, tmp_path / "out", imgs)
    err = capsys.readouterr().err
    assert exc.value.code == 4 and "2 of 3 images" in err and "b.jpg" in err and "c.png" in err
    assert not (tmp_path / "out").exists()


def test_rotated_photo_is_segmented_as_displayed(setup, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(arr).save(tmp_path / "imgs" / "phone.jpg", exif=exif)
    _predict(setup, tmp_path / "out", tmp_path / "imgs")
    assert Image.open(tmp_path / "out" / "phone_mask.png").size == (20, 30)  # (width, height) as displayed
