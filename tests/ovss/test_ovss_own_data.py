"""Your own data (issue 12, D): a folder of images + a folder of masks + a class list, trained and evaluated
through the configuration alone (data.folders, 'folder:<name>')."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("timm")
pytest.importorskip("tensorboard")

from ovss.config import RunConfig
from ovss.data import DatasetLayoutError, open_dataset, read_class_file
from ovss.tiny_model import tiny_model_config
from ovss.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _write_folder(root, split: str, n: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / split / "images").mkdir(parents=True)
    (root / split / "masks").mkdir(parents=True)
    for i in range(n):
        h, w = int(rng.integers(40, 60)), int(rng.integers(40, 70))
        mask = np.zeros((h, w), np.uint8)
        mask[:, w // 2 :] = 1
        mask[h // 2 :, : w // 3] = 2
        mask[:3] = 255  # unlabelled
        image = np.stack([mask * 80, 255 - mask * 60, np.full_like(mask, 90)], -1).astype(np.uint8)
        Image.fromarray(image).save(root / split / "images" / f"img{i:02d}.png")
        Image.fromarray(mask).save(root / split / "masks" / f"img{i:02d}.png")


def _config(root) -> dict:
    folder = {"label_dir": None, "image_dir": None, "classes": "classes.txt", "image_ext": ".png"}
    return {
        "model": tiny_model_config("none").to_dict(),
        "data": {
            "root": str(root),
            "train": "folder:mine",
            "folders": {
                "mine": {**folder, "image_dir": "train/images", "label_dir": "train/masks"},
                "mine_val": {**folder, "image_dir": "val/images", "label_dir": "val/masks"},
            },
            "crop_size": 32,
            "color_aug": False,
            "num_workers": 0,
        },
        "train": {
            "max_iter": 2,
            "batch_size": 2,
            "device": "cpu",
            "progress": False,
            "checkpoint_period": 0,
            "log_period": 1,
        },
        "eval": {
            "datasets": ["folder:mine_val"],
            "kernel": 32,
            "out_res": 48,
            "test_min_size": 48,
            "test_max_size": 200,
        },
        "output_dir": str(root / "out"),
    }


def test_train_and_evaluate_on_a_folder(tmp_path):
    _write_folder(tmp_path, "train", 4, 0)
    _write_folder(tmp_path, "val", 2, 1)
    (tmp_path / "classes.txt").write_text("# my classes, label id order\nsky\ngrass\nroad\n")
    cfg = RunConfig.from_dict(_config(tmp_path))
    ds = open_dataset(cfg, "folder:mine_val")
    assert ds.class_names == ["sky", "grass", "road"] and ds.num_eval_classes == 3 and len(ds) == 2
    sample = ds[0]
    assert int(sample["label"][0, 0]) == 255 and set(sample["label"].unique().tolist()) == {0, 1, 2, 255}
    metrics = Trainer(cfg).train()
    miou = metrics["per_dataset_mIoU"]["folder:mine_val"]
    assert math.isfinite(miou) and 0.0 <= miou <= 100.0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["folder:mine_val"]["class_names"] == ["sky", "grass", "road"]
    assert "folder:mine_val" in (tmp_path / "out" / "results.md").read_text()


def test_folder_errors_name_what_is_wrong(tmp_path):
    base = _config(tmp_path)
    with pytest.raises(ValueError, match=r"no data\.folders\.other defines it"):
        RunConfig.from_dict({**base, "eval": {**base["eval"], "datasets": ["folder:other"]}})
    with pytest.raises(ValueError, match=r"data\.folders\.mine"):
        bad = json.loads(json.dumps(base))
        bad["data"]["folders"]["mine"]["ignore_index"] = -1
        RunConfig.from_dict(bad)
    _write_folder(tmp_path, "train", 1, 0)
    (tmp_path / "classes.txt").write_text("sky\ngrass\n")  # label 2 is not a class
    cfg = RunConfig.from_dict(base)
    with pytest.raises(DatasetLayoutError, match=r"outside \[0, 2\)"):
        open_dataset(cfg, "folder:mine")[0]
    (tmp_path / "classes.txt").write_text("sky\nsky\n")
    with pytest.raises(DatasetLayoutError, match="distinct"):
        read_class_file(tmp_path / "classes.txt")
