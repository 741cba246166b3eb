"""Turn the official downloads into CAT-Seg's layouts (`ovss.data`); used by ``examples/ovss/scripts/prepare_datasets.py``.

Every function takes the datasets root (CAT-Seg's ``$DETECTRON2_DATASETS``) holding the unpacked
official archives and writes the ``annotations_detectron2`` (and for ADE-847 ``images_detectron2``)
folders next to them; it returns the number of label files written.

| dataset | official input | conversion |
| --- | --- | --- |
| COCO-Stuff | ``coco-stuff/annotations/{train,val}2017`` (``stuffthingmaps_trainval2017.zip``) | stuffthingmaps value ``v`` = COCO id − 1 → train id (80 things + 91 stuff), else 255 |
| ADE-150 | ``ADEChallengeData2016/annotations/validation`` | ``v − 1`` (0 → 255) |
| ADE-847 | ``ADE20K_2021_17_01/index_ade20k.pkl`` and the images' ``*_seg.png`` | class mask ``⌊R/10⌋·256 + G`` → train id (`ovss.ade847_ids.ADE847_OBJECT_IDS`), else 65535; shorter side capped at 512 |
| PC-459 | ``VOCdevkit/VOC2010/trainval/<id>.mat`` | ``LabelMap − 1`` as 16-bit TIFF (0 → 459) |
| PC-59 | the same ``.mat`` files | the 59 PASCAL-Context classes → 0..58, else 255 |
| VOC-20(b) | ``VOCdevkit/VOC2012/SegmentationClassAug`` (or ``SegmentationClass``) and ``val.txt`` | 1..20 → 0..19; background 0 → 255 (VOC-20) or 20 (VOC-20b); maps with no label skipped |

CAT-Seg builds PC-59 from ``trainval_merged.json`` (the Detail API masks); here it comes from the
same 459-class ``.mat`` maps through the standard 59-class mapping, which needs no ``pycocotools``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .ade847_ids import ADE847_OBJECT_IDS

__all__ = [
    "COCO_STUFF_IDS",
    "PC59_IDS",
    "prepare_ade20k_150",
    "prepare_ade20k_847",
    "prepare_coco_stuff",
    "prepare_pascal_context",
    "prepare_voc",
]

_MISSING_THINGS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
#: Official COCO-Stuff category ids (1-based) of the 171 train ids, in order: 80 things, 91 stuff.
COCO_STUFF_IDS: tuple[int, ...] = tuple(
    [i for i in range(1, 91) if i not in _MISSING_THINGS] + list(range(92, 183))
)
#: PASCAL-Context 459-class ids (1-based, ``labels.txt`` order) of the 59 classes, in train-id order.
PC59_IDS: tuple[int, ...] = tuple(
    sorted(
        (
            2,
            259,
            260,
            415,
            324,
            9,
            258,
            144,
            18,
            19,
            22,
            23,
            397,
            25,
            284,
            158,
            159,
            416,
            33,
            162,
            420,
            454,
            295,
            296,
            427,
            44,
            45,
            46,
            308,
            59,
            440,
            445,
            31,
            232,
            65,
            354,
            424,
            68,
            326,
            72,
            458,
            34,
            207,
            80,
            355,
            85,
            347,
            220,
            349,
            360,
            98,
            187,
            104,
            105,
            366,
            189,
            368,
            113,
            115,
        )
    )
)


def _lut(mapping: dict[int, int], size: int, default: int, dtype=np.int64) -> np.ndarray:
    lut = np.full(size, default, dtype=dtype)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


def _png_in(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel label PNG, got shape {arr.shape}")
    return arr


def _png_out(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr.astype(np.uint8)).save(path)


def _tif_out(arr: np.ndarray, path: Path) -> None:
    import tifffile

    tifffile.imwrite(path, arr.astype(np.uint16))


def _progress(items: list, desc: str, show: bool) -> Iterable:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc)


def _convert_folder(
    src: Path, dst: Path, convert: Callable[[np.ndarray], np.ndarray], desc: str, progress: bool
) -> int:
    _require(src, f"{desc} annotation folder")
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() == ".png")
    for f in _progress(files, desc, progress):
        _png_out(convert(_png_in(f)), dst / f.name)
    return len(files)


def prepare_coco_stuff(
    root: str | Path, splits: Iterable[str] = ("train2017", "val2017"), progress: bool = True
) -> int:
    """COCO-Stuff-171: ``coco-stuff/annotations/<split>`` → ``coco-stuff/annotations_detectron2/<split>``."""
    base = Path(root) / "coco-stuff"
    lut = _lut({cid - 1: t for t, cid in enumerate(COCO_STUFF_IDS)}, 256, 255, np.uint8)
    return sum(
        _convert_folder(
            base / "annotations" / s,
            base / "annotations_detectron2" / s,
            lambda a: lut[a],
            f"coco-stuff {s}",
            progress,
        )
        for s in splits
    )


def prepare_ade20k_150(root: str | Path, progress: bool = True) -> int:
    """ADE-150: ``annotations/validation`` values ``v`` → ``v - 1`` (0, unlabelled, → 255)."""
    base = Path(root) / "ADEChallengeData2016"
    return _convert_folder(
        base / "annotations" / "validation",
        base / "annotations_detectron2" / "validation",
        lambda a: (a.astype(np.int64) - 1) % 256,
        "ade150",
        progress,
    )


def ade20k_class_mask(seg_rgb: np.ndarray) -> np.ndarray:
    """ADE20K-full object-class mask of an ``*_seg.png``: ``floor(R / 10) * 256 + G``."""
    r = seg_rgb[..., 0].astype(np.int64)
    g = seg_rgb[..., 1].astype(np.int64)
    return (r // 10) * 256 + g


def prepare_ade20k_847(
    root: str | Path, splits: Iterable[str] = ("validation",), max_size: int = 512, progress: bool = True
) -> int:
    """ADE-847 from the full ADE20K release (``ADE20K_2021_17_01/index_ade20k.pkl``).

    For every indexed image of the requested splits (``*_val_*`` names are validation), the image and
    its class mask are resized so the shorter side is at most ``max_size`` (bilinear / nearest),
    the mask is mapped to the 847 train ids (others: 65535) and written as a 16-bit TIFF into
    ``annotations_detectron2/<split>``, the image as JPEG into ``images_detectron2/<split>``.
    """
    import pickle

    from PIL import Image

    root = Path(root)
    base = root / "ADE20K_2021_17_01"
    with open(_require(base / "index_ade20k.pkl", "ADE20K index"), "rb") as f:
        index = pickle.load(f)
    lut = _lut({oid: t for t, oid in enumerate(ADE847_OBJECT_IDS)}, max(ADE847_OBJECT_IDS) + 1, 65535)
    splits = set(splits)
    items = [
        (folder, name)
        for folder, name in zip(index["folder"], index["filename"])
        if ("validation" if name.split("_")[1] == "val" else "training") in splits
    ]
    for split in splits:
        (base / "images_detectron2" / split).mkdir(parents=True, exist_ok=True)
        (base / "annotations_detectron2" / split).mkdir(parents=True, exist_ok=True)
    for folder, name in _progress(items, "ade847", progress):
        split = "validation" if name.split("_")[1] == "val" else "training"
        img_path = _require(root / folder / name, "ADE20K image")
        seg_path = _require(img_path.with_name(img_path.stem + "_seg.png"), "ADE20K segmentation")
        with Image.open(img_path) as im:
            image = im.convert("RGB")
        with Image.open(seg_path) as im:
            mask = ade20k_class_mask(np.asarray(im.convert("RGB")))
        w, h = image.size
        if min(h, w) > max_size:
            if w >= h:
                nh, nw = max_size, round(w / h * max_size)
            else:
                nh, nw = round(h / w * max_size), max_size
            image = image.resize((nw, nh), Image.BILINEAR)
            ys = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(np.int64), h - 1)
            xs = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(np.int64), w - 1)
            mask = mask[ys[:, None], xs[None, :]]
        mask = np.where(mask < len(lut), lut[np.minimum(mask, len(lut) - 1)], 65535)
        image.save(base / "images_detectron2" / split / name)
        _tif_out(mask, base / "annotations_detectron2" / split / (Path(name).stem + ".tif"))
    return len(items)


def _load_label_map(path: Path) -> np.ndarray:
    import scipy.io

    mat = scipy.io.loadmat(path)
    if "LabelMap" not in mat:
        raise ValueError(f"{path}: no 'LabelMap' variable (expected PASCAL-Context trainval .mat files)")
    return np.asarray(mat["LabelMap"]).astype(np.int64)


def _val_ids(voc2010: Path) -> list[str]:
    path = voc2010 / "pascalcontext_val.txt"
    if not path.is_file():
        path = Path(__file__).resolve().parent / "classes" / "pascalcontext_val.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def prepare_pascal_context(root: str | Path, progress: bool = True, ids: Iterable[str] | None = None) -> int:
    """PC-459 (16-bit TIFF, ``LabelMap - 1``, unlabelled → 459) and PC-59 (PNG) validation labels.

    Reads ``VOCdevkit/VOC2010/trainval/<id>.mat`` for the 5,104 validation ids
    (``VOC2010/pascalcontext_val.txt``, else the list shipped with this example); ids without a
    ``.mat`` file are skipped as in CAT-Seg.
    """
    voc = Path(root) / "VOCdevkit" / "VOC2010"
    src = _require(voc / "trainval", "PASCAL-Context trainval folder")
    out459 = voc / "annotations_detectron2" / "pc459_val"
    out59 = voc / "annotations_detectron2" / "pc59_val"
    out459.mkdir(parents=True, exist_ok=True)
    out59.mkdir(parents=True, exist_ok=True)
    lut59 = _lut({cid: t for t, cid in enumerate(PC59_IDS)}, 460, 255)
    n = 0
    for fid in _progress(list(ids) if ids is not None else _val_ids(voc), "pascal context", progress):
        mat = src / f"{fid}.mat"
        if not mat.is_file():
            continue
        lab = _load_label_map(mat)
        if lab.min() < 0 or lab.max() > 459:
            raise ValueError(f"{mat}: LabelMap values must lie in 0..459; got {lab.min()}..{lab.max()}")
        _tif_out(np.where(lab == 0, 459, lab - 1), out459 / f"{fid}.tif")
        _png_out(lut59[lab], out59 / f"{fid}.png")
        n += 1
    return n


def prepare_voc(root: str | Path, progress: bool = True) -> int:
    """VOC-20 (``annotations_detectron2/val``) and VOC-20b (``annotations_detectron2_bg/val``) labels."""
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    ids = _require(voc / "ImageSets" / "Segmentation" / "val.txt", "VOC val list").read_text().split()
    src = voc / "SegmentationClassAug"
    if not src.is_dir():
        src = _require(voc / "SegmentationClass", "VOC SegmentationClassAug or SegmentationClass folder")
    fg = {c: c - 1 for c in range(1, 21)}
    lut = _lut({0: 255, **fg}, 256, 255)
    lut_bg = _lut({0: 20, **fg}, 256, 255)
    out, out_bg = voc / "annotations_detectron2" / "val", voc / "annotations_detectron2_bg" / "val"
    out.mkdir(parents=True, exist_ok=True)
    out_bg.mkdir(parents=True, exist_ok=True)
    n = 0
    for fid in _progress(ids, "voc", progress):
        lab = _png_in(_require(src / f"{fid}.png", "VOC label"))
        for table, folder in ((lut, out), (lut_bg, out_bg)):
            mapped = table[lab]
            if (mapped == 255).all():
                continue
            _png_out(mapped, folder / f"{fid}.png")
        n += 1
    return n
