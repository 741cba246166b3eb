"""examples/ovss/predict.py and ovss.inference: any image, any class names, a trained model's weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")
pytest.importorskip("timm")
pytest.importorskip("yaml")

import yaml
from ovss.config import RunConfig
from ovss.evaluation import eval_pooling, model_logits_fn, predict_probabilities
from ovss.inference import (
    list_images,
    load_model_for_inference,
    palette,
    read_class_names,
    render_segmentation,
    segment_image,
)
from ovss.model import OVSSModel
from ovss.tiny_model import tiny_model_config

from ovss import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
EVAL = {"kernel": 32, "out_res": 48, "test_min_size": 48, "test_max_size": 200}


def _run_config(tmp_path: Path) -> tuple[Path, RunConfig]:
    data = {
        "model": tiny_model_config("infoclip").to_dict(),
        "eval": {"datasets": ["coco_stuff_val"], **EVAL},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, RunConfig.from_dict(data)


def _trained_weights(tmp_path: Path, cfg: RunConfig) -> tuple[Path, OVSSModel]:
    """A tiny model moved away from its initialisation, exported as the trainer's model.pth."""
    torch.manual_seed(1)
    model = OVSSModel(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {"model": model.state_dict(), "model_config": cfg.model.to_dict(), "iteration": 3, "run": "x"}
    return ckpt.save_atomic(state, tmp_path / "model.pth", fmt=ckpt.WEIGHTS_FORMAT), model


def _image(path: Path, h: int, w: int, seed: int) -> None:
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_read_class_names(tmp_path):
    assert read_class_names(" cat,dog , sky") == ["cat", "dog", "sky"]
    (tmp_path / "c.txt").write_text("# my classes\ncat\n\ndog, puppy\n")
    assert read_class_names(str(tmp_path / "c.txt")) == ["cat", "dog, puppy"]
    (tmp_path / "c.json").write_text(json.dumps(["a", "b"]))
    assert read_class_names(str(tmp_path / "c.json")) == ["a", "b"]
    with pytest.raises(ValueError, match="distinct"):
        read_class_names("a,b,a")
    with pytest.raises(ValueError, match="non-empty"):
        read_class_names("a,,b")


def test_list_images(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path / "d"])] == ["a.png", "b.jpg"]
    with pytest.raises(FileNotFoundError, match="no such image"):
        list_images([tmp_path / "missing.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list_images([tmp_path / "empty"])


def test_loaded_model_predicts_as_the_trained_one(tmp_path):
    _, cfg = _run_config(tmp_path)
    weights, trained = _trained_weights(tmp_path, cfg)
    model = load_model_for_inference(cfg, weights)
    assert model.teacher is None and model.distiller is None  # inference needs neither
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 40, 60), dtype=np.uint8))
    names = ["cat", "dog", "sky", "road"]
    got = segment_image(model, image, names, cfg)
    trained.eval()
    with eval_pooling(trained, (1, 1)):
        ref = predict_probabilities(model_logits_fn(trained, names), image, (40, 60), **cfg.eval.protocol())
    assert got.shape == (4, 40, 60)
    # the same weights and the same float32 operations: equal up to summation order
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    fresh = OVSSModel(cfg.model).eval()
    other = predict_probabilities(model_logits_fn(fresh, names), image, (40, 60), **cfg.eval.protocol())
    assert (other - got).abs().max() > 1e-3  # the weights were really loaded


def test_weights_of_another_model_are_refused(tmp_path):
    _, cfg = _run_config(tmp_path)
    torch.save({"decoder.x": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ckpt.CheckpointError, match="does not fit"):
        load_model_for_inference(cfg, tmp_path / "bad.pth")


def test_render_has_a_legend_of_the_classes_present():
    image = np.zeros((20, 30, 3), np.uint8)
    pred = np.zeros((20, 30), np.int64)
    pred[:, 20:] = 2
    canvas = np.asarray(render_segmentation(image, pred, ["a", "b", "c"]))
    assert canvas.shape[0] >= 20 and canvas.shape[1] > 30
    pal = palette(3)
    np.testing.assert_array_equal(canvas[0, 0], (0.5 * pal[0]).round().astype(np.uint8))
    assert len({tuple(c) for c in palette(60)}) == 60


def test_predict_script_on_a_folder_and_a_file(tmp_path):
    cfg_path, cfg = _run_config(tmp_path)
    weights, _ = _trained_weights(tmp_path, cfg)
    (tmp_path / "imgs").mkdir()
    _image(tmp_path / "imgs" / "a.jpg", 40, 60, 0)
    _image(tmp_path / "imgs" / "b.png", 50, 30, 1)
    _image(tmp_path / "c.png", 33, 47, 2)
    (tmp_path / "classes.txt").write_text("cat\ndog\nsky\n")
    out = tmp_path / "out"
    # a clean environment: the library on the path, the example package found next to the script
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "ovss" / "predict.py"),
        "--config",
        str(cfg_path),
        "--weights",
        str(weights),
        "--classes",
        str(tmp_path / "classes.txt"),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--save-logits",
        str(tmp_path / "imgs"),
        str(tmp_path / "c.png"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    from PIL import Image

    for stem, (h, w) in {"a": (40, 60), "b": (50, 30), "c": (33, 47)}.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert mask.shape == (h, w) and mask.max() < 3
        scores = np.load(out / f"{stem}_scores.npz")
        assert scores["probabilities"].shape == (3, h, w)
        np.testing.assert_array_equal(scores["probabilities"].argmax(0), mask)
        np.testing.assert_array_equal(scores["logits"].argmax(0), mask)  # log-odds are monotone
        assert list(scores["class_names"]) == ["cat", "dog", "sky"]
        assert Image.open(out / f"{stem}.png").size[0] > w
    bad = subprocess.run(
        [*cmd[:7], "a,a", *cmd[8:]], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert bad.returncode == 2 and "distinct" in bad.stderr
