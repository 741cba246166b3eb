"""A synthetic, learnable segmentation dataset written in CAT-Seg's real on-disk layouts.

Each image is a textured background class with one to three random rectangles / ellipses of other
classes; every class has its own colour (plus noise), so a model can learn the task. Labels are
written exactly as the prepared datasets are (8-bit PNG train ids, 255 = ignore; a thin ignore
border around every shape mimics unlabelled boundaries), so the whole data path (reading, checks,
augmentation, evaluation) is exercised. Used by the CPU demo and the tests; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import DATASETS

__all__ = ["DEMO_CLASS_IDS", "class_colors", "make_synthetic_sample", "write_synthetic_dataset"]

#: COCO-Stuff train ids of the demo: person, car, cat, grass, sky-other, wall-brick.
DEMO_CLASS_IDS = (0, 2, 15, 112, 145, 159)


def class_colors(class_ids: Sequence[int], seed: int = 0) -> dict[int, np.ndarray]:
    """A well separated RGB colour per class id (evenly spaced hues, alternating brightness)."""
    from matplotlib.colors import hsv_to_rgb

    rng = np.random.default_rng(seed)
    hues = (np.arange(len(class_ids)) / len(class_ids) + rng.uniform(0, 1 / len(class_ids))) % 1.0
    out = {}
    for i, (c, h) in enumerate(zip(class_ids, hues)):
        rgb = hsv_to_rgb(np.array([h, 0.85, 0.95 if i % 2 == 0 else 0.6]))
        out[int(c)] = (rgb * 255).astype(np.float32)
    return out


def make_synthetic_sample(
    rng: np.random.Generator,
    class_ids: Sequence[int],
    colors: dict[int, np.ndarray],
    size: tuple[int, int] = (96, 128),
    *,
    ignore_index: int = 255,
    noise: float = 12.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image HxWx3 uint8, label HxW uint8)`` pair (see the module docstring)."""
    h, w = size
    bg = int(rng.choice(class_ids))
    label = np.full((h, w), bg, dtype=np.int64)
    others = [c for c in class_ids if c != bg]
    yy, xx = np.mgrid[0:h, 0:w]
    border = np.zeros((h, w), dtype=bool)
    for c in rng.choice(others, size=int(rng.integers(1, 4)), replace=False):
        sh, sw = int(rng.integers(h // 4, h // 2 + 1)), int(rng.integers(w // 4, w // 2 + 1))
        y0, x0 = int(rng.integers(0, h - sh)), int(rng.integers(0, w - sw))
        if rng.integers(2):
            mask = (yy >= y0) & (yy < y0 + sh) & (xx >= x0) & (xx < x0 + sw)
        else:
            cy, cx = y0 + sh / 2, x0 + sw / 2
            mask = ((yy - cy) / (sh / 2)) ** 2 + ((xx - cx) / (sw / 2)) ** 2 <= 1.0
        label[mask] = int(c)
        edge = mask ^ np.roll(mask, 1, 0) | mask ^ np.roll(mask, 1, 1)
        border |= edge
    image = np.zeros((h, w, 3), dtype=np.float32)
    for c in np.unique(label):
        image[label == c] = colors[int(c)]
    image += rng.normal(0.0, noise, size=image.shape)
    label[border] = ignore_index
    return np.clip(image, 0, 255).astype(np.uint8), label.astype(np.uint8)


def write_synthetic_dataset(
    root: str | Path,
    *,
    splits: dict[str, int] | None = None,
    class_ids: Sequence[int] = DEMO_CLASS_IDS,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write synthetic COCO-Stuff-layout splits under ``root`` and return ``root``.

    Args:
        root: datasets root (``<root>/coco-stuff/...``).
        splits: registry names and image counts (default ``{"coco_stuff_train": 48, "coco_stuff_val": 12}``);
            any 8-bit PNG dataset of the registry works (its label ids must be valid: ``class_ids``).
        class_ids: train ids that appear.
        size: image ``(H, W)``.
        seed: generator seed (the data are a pure function of it).
    """
    from PIL import Image

    root = Path(root)
    splits = splits or {"coco_stuff_train": 48, "coco_stuff_val": 12}
    colors = class_colors(class_ids, seed)
    for k, (name, count) in enumerate(splits.items()):
        spec = DATASETS[name]
        if spec.label_ext != ".png":
            raise ValueError(f"synthetic data are written as 8-bit PNG; {name!r} uses {spec.label_ext}")
        bad = [c for c in class_ids if not 0 <= c < spec.num_eval_classes]
        if bad:
            raise ValueError(
                f"class ids {bad} are not valid labels of {name!r} (0..{spec.num_eval_classes - 1})"
            )
        rng = np.random.default_rng([seed, k])
        img_dir, lab_dir = root / spec.image_dir, root / spec.label_dir
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, label = make_synthetic_sample(rng, class_ids, colors, size)
            stem = f"{i:012d}"
            Image.fromarray(image).save(img_dir / f"{stem}.jpg", quality=95)
            Image.fromarray(label).save(lab_dir / f"{stem}.png")
    return root
