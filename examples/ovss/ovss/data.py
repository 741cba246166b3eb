"""Datasets of the OVSS benchmark in CAT-Seg's on-disk layouts, and their class lists.

Every dataset lives under one root directory (CAT-Seg's ``$DETECTRON2_DATASETS``)::

    <root>/
      coco-stuff/images/{train2017,val2017}/*.jpg
      coco-stuff/annotations_detectron2/{train2017,val2017}/*.png        # 171 ids, ignore 255
      ADEChallengeData2016/images/validation/*.jpg
      ADEChallengeData2016/annotations_detectron2/validation/*.png       # 150 ids, ignore 255
      ADE20K_2021_17_01/images_detectron2/validation/*.jpg
      ADE20K_2021_17_01/annotations_detectron2/validation/*.tif          # 16-bit, 847 ids, ignore 65535
      VOCdevkit/VOC2010/JPEGImages/*.jpg
      VOCdevkit/VOC2010/annotations_detectron2/pc59_val/*.png            # 59 ids, ignore 255
      VOCdevkit/VOC2010/annotations_detectron2/pc459_val/*.tif           # 16-bit, 459 ids, ignore 459
      VOCdevkit/VOC2012/JPEGImages/*.jpg
      VOCdevkit/VOC2012/annotations_detectron2/val/*.png                 # 20 ids, ignore 255
      VOCdevkit/VOC2012/annotations_detectron2_bg/val/*.png              # 20 ids + background 20, ignore 255

Samples are enumerated from the label folder (sorted by file name) and paired with the image of the
same stem, as detectron2's ``load_sem_seg`` does; the ``examples/ovss/prepare`` scripts produce these
layouts from the official downloads.

**Your own data** (a folder of images, a folder of label maps and a class list) is a dataset named
``folder:<name>`` defined under ``data.folders`` in the run configuration (`folder_spec`,
`open_dataset`); it is read like the benchmarks (labels enumerate the samples; image of the same stem).

VOC-20b is evaluated over 21 classes (20 VOC classes + background = 20) but prompted with the 59
names of ``voc20b.json`` (the VOC classes followed by the PASCAL-Context classes that are not VOC
classes); every prediction ``>= 20`` counts as background (`DatasetSpec.background_from`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .class_names import check_class_names, parse_class_names, read_class_file
from .images import DatasetLayoutError, pair_mismatch, read_image, read_label

__all__ = [
    "DATASETS",
    "FOLDER_PREFIX",
    "DatasetLayoutError",
    "DatasetSpec",
    "SegmentationDataset",
    "check_class_names",
    "folder_spec",
    "load_classes",
    "open_dataset",
    "read_class_file",
    "read_image",
    "read_label",
]

#: Prefix of the names of user folder datasets (``folder:<name>``, defined under ``data.folders``).
FOLDER_PREFIX = "folder:"

_CLASS_DIR = Path(__file__).resolve().parent / "classes"
CLASS_LISTS = ("coco", "ade150", "ade847", "pc59", "pc459", "voc20", "voc20b")


@cache
def _load_classes(name: str) -> tuple[str, ...]:
    if name not in CLASS_LISTS:
        raise ValueError(f"unknown class list {name!r}; known: {CLASS_LISTS}")
    with open(_CLASS_DIR / f"{name}.json", encoding="utf-8") as f:
        return tuple(json.load(f))


def load_classes(name: str) -> list[str]:
    """The class names of a benchmark (CAT-Seg's ``datasets/<name>.json``), in label-id order.

    Args:
        name: one of ``coco`` (171), ``ade150``, ``ade847``, ``pc59``, ``pc459``, ``voc20``,
            ``voc20b`` (59 prompts: VOC-20 then the 39 other PASCAL-Context classes).

    Returns:
        The list of names; a name may hold synonyms ``"a, b"`` (the model prompts with the first).

    Raises:
        ValueError: unknown list.

    Example:
        >>> len(load_classes("coco")), load_classes("voc20")[0]
        (171, 'aeroplane')
    """
    return list(_load_classes(name))


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under the root and how to read it.

    Attributes:
        name: registry key (``"ade847"``, ...).
        image_dir: image folder relative to the root.
        label_dir: label folder relative to the root.
        label_ext: ``".png"`` (8-bit) or ``".tif"`` (16-bit).
        classes: class-list name (`load_classes`) used as prompts.
        ignore_index: label value of unlabelled pixels.
        num_eval_classes: classes of the confusion matrix (``len(classes)`` except VOC-20b: 21).
        background_from: predictions ``>= background_from`` map to the background class
            ``background_from`` (VOC-20b: 20); ``None`` otherwise.
        paper_key: column name in the paper's Table 1 (``"A-847"``, ...), or ``None`` (COCO).
        image_ext: image file suffix.
        names: explicit class names (user folder datasets); then ``classes`` is only a label.
    """

    name: str
    image_dir: str
    label_dir: str
    label_ext: str
    classes: str
    ignore_index: int
    num_eval_classes: int
    background_from: int | None = None
    paper_key: str | None = None
    image_ext: str = ".jpg"
    names: tuple[str, ...] | None = None

    @property
    def class_names(self) -> list[str]:
        """The prompt class names."""
        return list(self.names) if self.names is not None else load_classes(self.classes)

    def layout(self) -> str:
        """A one-line description of the expected layout (used in error messages)."""
        return (
            f"<root>/{self.label_dir}/<stem>{self.label_ext} (labels: 0..{self.num_eval_classes - 1}, "
            f"ignore {self.ignore_index}) with <root>/{self.image_dir}/<stem>{self.image_ext}"
        )


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "coco_stuff_train",
            "coco-stuff/images/train2017",
            "coco-stuff/annotations_detectron2/train2017",
            ".png",
            "coco",
            255,
            171,
        ),
        DatasetSpec(
            "coco_stuff_val",
            "coco-stuff/images/val2017",
            "coco-stuff/annotations_detectron2/val2017",
            ".png",
            "coco",
            255,
            171,
        ),
        DatasetSpec(
            "ade847",
            "ADE20K_2021_17_01/images_detectron2/validation",
            "ADE20K_2021_17_01/annotations_detectron2/validation",
            ".tif",
            "ade847",
            65535,
            847,
            paper_key="A-847",
        ),
        DatasetSpec(
            "pc459",
            "VOCdevkit/VOC2010/JPEGImages",
            "VOCdevkit/VOC2010/annotations_detectron2/pc459_val",
            ".tif",
            "pc459",
            459,
            459,
            paper_key="PC-459",
        ),
        DatasetSpec(
            "ade150",
            "ADEChallengeData2016/images/validation",
            "ADEChallengeData2016/annotations_detectron2/validation",
            ".png",
            "ade150",
            255,
            150,
            paper_key="A-150",
        ),
        DatasetSpec(
            "pc59",
            "VOCdevkit/VOC2010/JPEGImages",
            "VOCdevkit/VOC2010/annotations_detectron2/pc59_val",
            ".png",
            "pc59",
            255,
            59,
            paper_key="PC-59",
        ),
        DatasetSpec(
            "voc20",
            "VOCdevkit/VOC2012/JPEGImages",
            "VOCdevkit/VOC2012/annotations_detectron2/val",
            ".png",
            "voc20",
            255,
            20,
            paper_key="VOC-20",
        ),
        DatasetSpec(
            "voc20b",
            "VOCdevkit/VOC2012/JPEGImages",
            "VOCdevkit/VOC2012/annotations_detectron2_bg/val",
            ".png",
            "voc20b",
            255,
            21,
            background_from=20,
            paper_key="VOC-20b",
        ),
    )
}

#: The six benchmarks of the paper's Table 1, in its column order.
BENCHMARKS = ("ade847", "pc459", "ade150", "pc59", "voc20", "voc20b")


class SegmentationDataset(Dataset):
    """(image, label) pairs of one dataset in its CAT-Seg layout.

    Each item is a dict with ``image`` (``(3, H, W)`` uint8 RGB tensor), ``label`` (``(H, W)`` int64,
    the ignore value mapped to ``ignore_index`` = 255 unless ``keep_ignore``), and ``name`` (stem).
    An optional ``transform`` maps ``(image HWC uint8 array, label HW int64 array, rng)`` to new
    arrays (see `ovss.transforms.TrainTransform`); ``rng`` is a ``numpy.random.Generator``
    seeded by the key: ``dataset[(index, seed)]`` augments deterministically (the trainer's sampler
    yields such keys), ``dataset[index]`` uses seed ``index``.

    Args:
        root: the datasets root.
        spec: a `DatasetSpec` or its registry name.
        transform: optional augmentation.
        ignore_index: the value ignored pixels get (255; CAT-Seg's model ignore value).
        limit: keep only the first ``limit`` samples.
        class_subset: optional train ids to keep (in this order): the dataset then has
            ``len(class_subset)`` classes, labels are renumbered ``0..len-1`` and every other class
            becomes ``ignore_index`` (small demos; not for the benchmark protocol).

    Raises:
        DatasetLayoutError: the label folder is missing or empty (the message gives the layout).

    Example:
        >>> ds = SegmentationDataset("/data", "ade150")  # doctest: +SKIP
        >>> sample = ds[0]; sample["image"].shape, sample["label"].dtype  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | Path,
        spec: DatasetSpec | str,
        *,
        transform=None,
        ignore_index: int = 255,
        limit: int | None = None,
        class_subset: Sequence[int] | None = None,
    ) -> None:
        if isinstance(spec, str):
            if spec not in DATASETS:
                raise ValueError(f"unknown dataset {spec!r}; known: {sorted(DATASETS)}")
            spec = DATASETS[spec]
        self.root = Path(root)
        self.spec = spec
        self.transform = transform
        self.ignore_index = ignore_index
        label_dir = self.root / spec.label_dir
        if not label_dir.is_dir():
            raise DatasetLayoutError(
                f"dataset {spec.name!r}: label folder {label_dir} does not exist; expected {spec.layout()} "
                "(see examples/ovss/prepare)"
            )
        files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() == spec.label_ext)
        if not files:
            raise DatasetLayoutError(
                f"dataset {spec.name!r}: no *{spec.label_ext} label files in {label_dir}; expected {spec.layout()}"
            )
        if limit is not None:
            files = files[: int(limit)]
        self.label_files = files
        self.image_files = [self.root / spec.image_dir / (p.stem + spec.image_ext) for p in files]
        self.class_subset = None if class_subset is None else [int(c) for c in class_subset]
        self._lut = None
        if self.class_subset is not None:
            if spec.background_from is not None:
                raise ValueError(f"class_subset is not supported for {spec.name!r} (background mapping)")
            bad = [c for c in self.class_subset if not 0 <= c < spec.num_eval_classes]
            if bad or len(set(self.class_subset)) != len(self.class_subset) or not self.class_subset:
                raise ValueError(
                    f"class_subset must be distinct ids in [0, {spec.num_eval_classes}); got {self.class_subset}"
                )
            self._lut = np.full(spec.num_eval_classes + 1, ignore_index, dtype=np.int64)
            self._lut[self.class_subset] = np.arange(len(self.class_subset))

    @property
    def class_names(self) -> list[str]:
        """Prompt class names of the dataset (the subset's, if any)."""
        names = self.spec.class_names
        return names if self.class_subset is None else [names[c] for c in self.class_subset]

    @property
    def num_eval_classes(self) -> int:
        """Classes of the confusion matrix."""
        return self.spec.num_eval_classes if self.class_subset is None else len(self.class_subset)

    @property
    def background_from(self) -> int | None:
        """Predictions from this class on count as background (VOC-20b), else ``None``."""
        return self.spec.background_from

    @property
    def eval_class_names(self) -> list[str]:
        """Names of the confusion-matrix classes (VOC-20b: the 20 VOC classes and ``background``)."""
        if self.background_from is not None:
            return [*self.class_names[: self.background_from], "background"]
        return self.class_names[: self.num_eval_classes]

    def __len__(self) -> int:
        return len(self.label_files)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw ``(image, label)`` arrays of sample ``index``, the label validated and remapped."""
        spec = self.spec
        image_path = self.image_files[index]
        if not image_path.is_file():
            raise DatasetLayoutError(
                f"dataset {spec.name!r}: image {image_path} for label {self.label_files[index]} is missing; "
                f"expected {spec.layout()}"
            )
        image = read_image(image_path)
        label = read_label(self.label_files[index])
        mismatch = pair_mismatch(image_path, image.shape[:2], self.label_files[index], label.shape)
        if mismatch is not None:
            raise DatasetLayoutError(f"dataset {spec.name!r}: {mismatch}")
        ignore = label == spec.ignore_index
        bad = ~ignore & ((label < 0) | (label >= spec.num_eval_classes))
        if bad.any():
            vals = np.unique(label[bad])[:8].tolist()
            raise DatasetLayoutError(
                f"dataset {spec.name!r}: label file {self.label_files[index]} holds values {vals} outside "
                f"[0, {spec.num_eval_classes}) that are not the ignore value {spec.ignore_index}; "
                f"expected {spec.layout()}"
            )
        label = np.where(ignore, self.ignore_index, label)
        if self._lut is not None:
            label = self._lut[np.where(ignore, spec.num_eval_classes, label)]
        return image, label

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), int(key))
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label, np.random.default_rng(seed))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "label": torch.from_numpy(np.ascontiguousarray(label)).long(),
            "name": self.label_files[index].stem,
        }


def collate(samples: Sequence[dict]) -> dict:
    """Stack equally sized samples into ``images (B, 3, H, W)`` float and ``labels (B, H, W)``."""
    return {
        "images": torch.stack([s["image"] for s in samples]).float(),
        "labels": torch.stack([s["label"] for s in samples]),
        "names": [s["name"] for s in samples],
    }


def folder_spec(name: str, folder, root: str | Path) -> DatasetSpec:
    """The `DatasetSpec` of a user folder dataset ``folder:<name>`` (an `ovss.config.FolderDatasetConfig`).

    ``image_dir``, ``label_dir`` and a ``classes`` file are taken relative to ``root`` unless absolute;
    ``classes`` may also be the names themselves (a list, or ``"a,b,c"``; `ovss.class_names`).
    """
    names = parse_class_names(folder.classes, f"data.folders.{name}.classes", root=root)
    return DatasetSpec(
        FOLDER_PREFIX + name,
        folder.image_dir,
        folder.label_dir,
        folder.label_ext,
        FOLDER_PREFIX + name,
        folder.ignore_index,
        len(names),
        image_ext=folder.image_ext,
        names=tuple(names),
    )


def open_dataset(cfg, name: str, *, transform=None, limit: int | None = None) -> SegmentationDataset:
    """The dataset ``name`` of a run configuration: a registry name (`DATASETS`) or ``folder:<name>``
    (``cfg.data.folders``), under ``cfg.data.root``, with ``cfg.data.class_subset``.

    Raises:
        ValueError: an unknown name.
        DatasetLayoutError: missing or malformed files.
    """
    dcfg = cfg.data
    spec: DatasetSpec | str = name
    if name.startswith(FOLDER_PREFIX):
        key = name[len(FOLDER_PREFIX) :]
        if key not in dcfg.folders:
            raise ValueError(
                f"dataset {name!r} is not defined under data.folders (defined: {sorted(dcfg.folders)})"
            )
        spec = folder_spec(key, dcfg.folders[key], dcfg.root)
    return SegmentationDataset(
        dcfg.root, spec, transform=transform, limit=limit, class_subset=dcfg.class_subset
    )
