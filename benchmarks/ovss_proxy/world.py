"""The open-vocabulary world: textured regions named ``"<colour> <pattern>"``, in CAT-Seg's on-disk layout.

A class is a colour laid out by a pattern on a dark base: ``plain`` (solid), ``striped`` (bands at a
random angle), ``dotted`` (a grid of dots), ``checkered``; every region has a random phase, angle,
scale jitter and colour jitter, and every pixel Gaussian noise. A scene is a Voronoi partition of the
image into 2-4 regions of distinct classes; a one-pixel border between regions is unlabelled (255).
Training scenes picture seen classes only; every evaluation scene mixes seen and unseen regions
(``val_unseen``: one seen region, the others unseen; ``val_seen``: one unseen region, the others seen).

On disk (:func:`write_world`), one folder per world seed, labels are 8-bit PNG *vocabulary* ids (the
index in :attr:`~.config.WorldConfig.vocabulary`)::

    <root>/ovss-proxy/classes.json                            # the vocabulary, in label-id order
    <root>/ovss-proxy/images/{train,val_seen,val_unseen}/<stem>.png
    <root>/ovss-proxy/annotations_detectron2/{train,val_seen,val_unseen}/<stem>.png
    <root>/manifest.json                                      # written last: counts, config hash, seed

and :func:`load_split` reads a split with the project's :class:`ovss.data.SegmentationDataset`: the training
split with ``class_subset`` renumbering the seen classes ``0..K-1`` (the names fine-tuning offers), the
evaluation splits over the whole vocabulary (label = vocabulary id, every name offered).
Everything is a pure function of the config and the seed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ovss.data import DatasetSpec, SegmentationDataset

from .config import WorldConfig, config_hash

__all__ = [
    "SPLITS",
    "WorldSpec",
    "load_split",
    "render_class",
    "render_scene",
    "world_dir",
    "write_world",
]

#: Split name → which class group holds most of its regions (the evaluation splits mix both groups).
SPLITS: dict[str, str] = {"train": "seen", "val_seen": "seen", "val_unseen": "unseen"}
_DARK = np.array([55.0, 55.0, 55.0], dtype=np.float32)


@dataclass(frozen=True)
class WorldSpec(DatasetSpec):
    """A :class:`ovss.data.DatasetSpec` whose prompts are the world's vocabulary (not a registry list)."""

    names: tuple[str, ...] = ()

    @property
    def class_names(self) -> list[str]:
        """The vocabulary, in label-id order."""
        return list(self.names)


def _pattern_mask(
    pattern: str, shape: tuple[int, int], period: float, rng: np.random.Generator
) -> np.ndarray:
    """Where the colour goes (bool ``shape``) for one pattern, at a random phase and angle."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if pattern == "plain":
        return np.ones(shape, dtype=bool)
    theta = float(rng.choice([0.0, 45.0, 90.0, 135.0])) * np.pi / 180
    u = xx * np.cos(theta) + yy * np.sin(theta) + rng.uniform(0, period)
    v = -xx * np.sin(theta) + yy * np.cos(theta) + rng.uniform(0, period)
    if pattern == "striped":
        return (u % period) < period / 2
    if pattern == "dotted":
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        return du * du + dv * dv <= (0.3 * period) ** 2
    if pattern == "checkered":
        return ((np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2) == 0
    raise ValueError(f"unknown pattern {pattern!r}")


def render_class(
    name: str, shape: tuple[int, int], config: WorldConfig, rng: np.random.Generator, *, scale: float = 1.0
) -> np.ndarray:
    """A float32 ``(H, W, 3)`` texture of class ``name`` (no noise) filling ``shape``."""
    colour_word, pattern = name.split(" ")
    base = np.asarray(dict(config.colours)[colour_word], dtype=np.float32)
    colour = np.clip(base + rng.integers(-config.jitter, config.jitter + 1, size=3), 0, 255)
    period = config.period * scale * rng.uniform(0.85, 1.15)
    mask = _pattern_mask(pattern, shape, period, rng)
    return np.where(mask[..., None], colour, _DARK).astype(np.float32)


def _voronoi(h: int, w: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Region index map ``(H, W)`` of ``k`` random sites and the border mask between regions."""
    sites = rng.uniform(0, 1, size=(k, 2)) * (h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = (yy[None] - sites[:, 0, None, None]) ** 2 + (xx[None] - sites[:, 1, None, None]) ** 2
    region = dist.argmin(0)
    border = np.zeros((h, w), dtype=bool)
    border[1:] |= region[1:] != region[:-1]
    border[:, 1:] |= region[:, 1:] != region[:, :-1]
    return region, border


def render_scene(
    classes: Sequence[str],
    config: WorldConfig,
    rng: np.random.Generator,
    *,
    size: int | None = None,
    also: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """One scene of 2-4 regions of distinct classes: from ``classes``, plus one region from ``also`` if given.

    Returns:
        ``(image (S, S, 3) uint8, label (S, S) int64)`` with label values = vocabulary ids, 255 on the
        borders between regions.
    """
    s = int(size or config.image_size)
    vocab = config.vocabulary
    lo, hi = config.regions
    k = int(rng.integers(lo, hi + 1))
    main = min(k - 1, len(classes)) if also else min(k, len(classes))
    names = [classes[int(c)] for c in rng.choice(len(classes), size=main, replace=False)]
    if also:
        names.append(also[int(rng.integers(len(also)))])
    region, border = _voronoi(s, s, len(names), rng)
    image = np.zeros((s, s, 3), dtype=np.float32)
    label = np.zeros((s, s), dtype=np.int64)
    for r, name in enumerate(names):
        inside = region == r
        image[inside] = render_class(name, (s, s), config, rng)[inside]
        label[inside] = vocab.index(name)
    image += rng.normal(0.0, config.noise, size=image.shape).astype(np.float32)
    label[border] = 255
    return np.clip(image, 0, 255).astype(np.uint8), label


def world_dir(cache_dir: str | Path, config: WorldConfig, seed: int) -> Path:
    """Where the world of ``config`` and ``seed`` lives under ``cache_dir``."""
    return Path(cache_dir) / f"world-{config_hash(config)}-s{seed}"


def _spec(split: str, config: WorldConfig) -> WorldSpec:
    return WorldSpec(
        name=f"ovss_proxy_{split}",
        image_dir=f"ovss-proxy/images/{split}",
        label_dir=f"ovss-proxy/annotations_detectron2/{split}",
        label_ext=".png",
        classes="ovss_proxy",
        ignore_index=255,
        num_eval_classes=len(config.vocabulary),
        image_ext=".png",
        names=config.vocabulary,
    )


def _manifest(config: WorldConfig, seed: int) -> dict:
    counts = {"train": config.num_train, "val_seen": config.num_val, "val_unseen": config.num_val}
    return {"config_hash": config_hash(config), "seed": int(seed), "counts": counts}


def write_world(cache_dir: str | Path, config: WorldConfig, seed: int) -> Path:
    """Generate the world of ``seed`` (if not already there) and return its root.

    The folder is built under a temporary name and renamed into place once complete (its
    ``manifest.json`` written last), so a crash never leaves a partial world that looks finished.
    """
    from PIL import Image

    root = world_dir(cache_dir, config, seed)
    manifest = _manifest(config, seed)
    if root.is_dir():
        _verify(root, manifest)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".tmp-", dir=root.parent))
    try:
        groups = {"seen": config.seen, "unseen": config.unseen}
        other = {"seen": config.unseen, "unseen": config.seen}
        (tmp / "ovss-proxy").mkdir()
        (tmp / "ovss-proxy" / "classes.json").write_text(json.dumps(list(config.vocabulary), indent=1))
        for k, (split, group) in enumerate(SPLITS.items()):
            spec = _spec(split, config)
            img_dir, lab_dir = tmp / spec.image_dir, tmp / spec.label_dir
            img_dir.mkdir(parents=True)
            lab_dir.mkdir(parents=True)
            rng = np.random.default_rng([seed, k, 7])
            for i in range(manifest["counts"][split]):
                also = () if split == "train" else other[group]
                image, label = render_scene(groups[group], config, rng, also=also)
                Image.fromarray(image).save(img_dir / f"{i:06d}.png")
                Image.fromarray(label.astype(np.uint8)).save(lab_dir / f"{i:06d}.png")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished the same world first
            if not root.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _verify(root, manifest)
    return root


def _verify(root: Path, manifest: dict) -> None:
    path = root / "manifest.json"
    try:
        found = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"{path} is corrupt or truncated ({exc}); delete {root} and rerun") from None
    if found != manifest:
        raise RuntimeError(
            f"{root} holds a different or unfinished world (manifest {found}, expected {manifest}); "
            "delete that folder and rerun"
        )
    for split, count in manifest["counts"].items():
        n = len(list((root / "ovss-proxy" / "annotations_detectron2" / split).glob("*.png")))
        if n != count:
            raise RuntimeError(
                f"{root}: split {split!r} has {n} label files, expected {count}; delete it and rerun"
            )


def load_split(root: str | Path, split: str, config: WorldConfig, *, transform=None) -> SegmentationDataset:
    """A split as an :class:`ovss.data.SegmentationDataset`.

    ``"train"``: over the seen classes (ids renumbered ``0..K-1``, the names fine-tuning offers);
    ``"val_seen"`` / ``"val_unseen"``: over the whole vocabulary (label = vocabulary id).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}; got {split!r}")
    ids = [config.vocabulary.index(n) for n in config.seen] if split == "train" else None
    return SegmentationDataset(root, _spec(split, config), transform=transform, class_subset=ids)
