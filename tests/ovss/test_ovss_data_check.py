"""Own data is checked before training starts: one scan (ovss.data_check) lists every problem with its
file; train.py runs it before anything is written, and --check-data runs it alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("timm")
pytest.importorskip("yaml")

import yaml
from ovss.config import RunConfig
from ovss.data_check import check_data
from ovss.tiny_model import tiny_model_config
from PIL import Image

from example_scripts import EXAMPLES, load_script, ovss_script

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(
    root: Path, stem: str, h: int = 20, w: int = 30, *, exif: int | None = None, mask_hw=None, ids=(0, 1)
):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    kwargs = {}
    if exif is not None:
        e = Image.Exif()
        e[0x0112] = exif
        kwargs["exif"] = e
    Image.fromarray(image).save(root / "images" / f"{stem}.png", **kwargs)
    mh, mw = mask_hw or (h, w)
    mask = np.full((mh, mw), ids[0], np.uint8)
    mask[:, mw // 2 :] = ids[1]
    Image.fromarray(mask).save(root / "masks" / f"{stem}.png")


def _config(root: Path) -> dict:
    folder = {"image_dir": "images", "label_dir": "masks", "classes": "sky,grass,road", "image_ext": ".png"}
    return {
        "model": tiny_model_config("none").to_dict(),
        "data": {"root": str(root), "train": "folder:mine", "folders": {"mine": folder}, "crop_size": 32,
                 "color_aug": False, "num_workers": 0},
        "train": {"max_iter": 1, "batch_size": 1, "device": "cpu", "progress": False, "checkpoint_period": 0},
        "eval": {"datasets": ["folder:mine"], "kernel": 32, "out_res": 48, "test_min_size": 48,
                 "test_max_size": 200},
        "output_dir": str(root / "out"),
    }  # fmt: skip


def _hostile(root: Path) -> dict[str, str]:
    """A folder with one of each problem; returns file name -> the words its problem must contain."""
    _pair(root, "good")
    _pair(root, "upright", exif=6, mask_hw=(30, 20))  # mask drawn on the displayed (rotated) photo
    _pair(root, "sideways", exif=6)  # mask fits the stored pixels only
    _pair(root, "small", mask_hw=(10, 30))
    _pair(root, "badid", ids=(0, 7))
    _pair(root, "nomask")
    (root / "masks" / "nomask.png").unlink()
    _pair(root, "broken")
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _pair(root, "badmask")
    (root / "masks" / "badmask.png").write_text("not a png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "masks" / "lossy.jpg")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / "images" / "good.jpg")  # image_ext is .png
    return {
        "good.jpg": "not read: the images of this dataset end in '.png'",
        "sideways.png": "EXIF orientation 6",
        "small.png": "is 30x10 but image",
        "badid.png": "holds values [7] outside [0, 3)",
        "nomask.png": "image without a label map",
        "broken.png": "does not decode",
        "badmask.png": "cannot read label file",
        "lossy.jpg": "JPEG masks alter the class ids",
    }


def test_one_scan_lists_every_problem_with_its_file(tmp_path):
    expected = _hostile(tmp_path)
    report = check_data(RunConfig.from_dict(_config(tmp_path)))
    assert not report.ok
    text = [str(p) for p in report.problems]
    for name, words in expected.items():
        hits = [t for t in text if name in t]
        assert hits and any(words in t for t in hits), (name, hits)
    assert len(report.problems) == len(expected)  # "good" and "upright" are fine
    notes = [str(n) for n in report.notes]
    assert any("upright.png" in n and "rotated 90° clockwise" in n for n in notes)


def test_training_refuses_before_writing_anything(tmp_path, capsys):
    expected = _hostile(tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_config(tmp_path)))
    with pytest.raises(SystemExit) as code:
        ovss_script("train").main(["--config", str(tmp_path / "run.yaml")])
    err = capsys.readouterr().err
    assert code.value.code == 5 and f"{len(expected)} problem(s)" in err
    assert all(name in err for name in expected)
    assert not (tmp_path / "out").exists()  # found up front, not an hour in
    with pytest.raises(SystemExit) as code:
        ovss_script("train").main(["--config", str(tmp_path / "run.yaml"), "--check-data"])
    err = capsys.readouterr().err
    assert code.value.code == 5 and all(name in err for name in expected)


def test_check_data_alone_on_clean_data(tmp_path, capsys):
    _pair(tmp_path, "a")
    _pair(tmp_path, "b", 24, 24)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_config(tmp_path)))
    result = ovss_script("train").main(["--config", str(tmp_path / "run.yaml"), "--check-data"])
    assert result == {"problems": 0, "samples": {"folder:mine": 2}}
    assert "no problems" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # it only checks


def test_a_dataset_that_cannot_be_opened_is_a_problem(tmp_path):
    cfg = _config(tmp_path)
    (tmp_path / "masks").mkdir()
    report = check_data(RunConfig.from_dict(cfg))
    assert not report.ok and "no *.png label files" in str(report.problems[0])


def test_evaluate_exits_4_on_data_it_cannot_read(tmp_path, capsys):
    from ovss.model import OVSSModel

    from ovss import checkpoint as ckpt

    _pair(tmp_path, "a")
    _pair(tmp_path, "b")
    (tmp_path / "images" / "b.png").write_text("not an image")
    cfg = _config(tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    ckpt.save_atomic({"model": OVSSModel(RunConfig.from_dict(cfg).model).state_dict()}, tmp_path / "m.pth",
                     fmt=ckpt.WEIGHTS_FORMAT)  # fmt: skip
    with pytest.raises(SystemExit) as code:
        ovss_script("evaluate").main(["--config", str(tmp_path / "run.yaml"), "--checkpoint", str(tmp_path / "m.pth"),
                                  "--datasets", "folder:mine", "--device", "cpu", "--out", str(tmp_path / "ev")])  # fmt: skip
    assert code.value.code == 4 and "b.png" in capsys.readouterr().err


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_rotated_photo_and_its_mask_align_in_training(tmp_path, orientation):
    from ovss.data import open_dataset

    displayed = np.zeros((30, 20, 3), np.uint8)
    displayed[:, :10] = (255, 0, 0)  # red left half, as the viewer shows the photo
    # stored so that the viewer's transform gives `displayed` (3: turn 180°; 6: turn 90° clockwise)
    stored = displayed[::-1, ::-1] if orientation == 3 else np.rot90(displayed, 1)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    e = Image.Exif()
    e[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "images" / "p.png", exif=e)
    mask = np.zeros((30, 20), np.uint8)
    mask[:, :10] = 1  # drawn over the displayed photo
    Image.fromarray(mask).save(tmp_path / "masks" / "p.png")
    sample = open_dataset(RunConfig.from_dict(_config(tmp_path)), "folder:mine")[0]
    image, label = sample["image"].numpy(), sample["label"].numpy()
    assert image.shape == (3, 30, 20) and label.shape == (30, 20)
    # the stored pixels of orientation 3 would put every label on the wrong half, silently
    assert (image[0][label == 1] == 255).all() and (image[0][label == 0] == 0).all()


def test_prepare_datasets_names_a_missing_download(tmp_path, capsys, monkeypatch):
    script = EXAMPLES / "ovss" / "scripts" / "prepare_datasets.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as when run as a script: its folder is on the path
    mod = load_script(script, "_ovss_prepare_script")
    assert mod.main(["--root", str(tmp_path), "--no-progress", "voc"]) == 4
    err = capsys.readouterr().err
    assert "voc: missing" in err and str(tmp_path) in err
