"""OVSS datasets: class lists, layouts, label reading and checks, preparation scripts, augmentation."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("tifffile")
from ovss.ade847_ids import ADE847_OBJECT_IDS
from ovss.data import (
    BENCHMARKS,
    CLASS_LISTS,
    DATASETS,
    DatasetLayoutError,
    SegmentationDataset,
    load_classes,
)
from ovss.transforms import TrainTransform, color_aug_ssd, random_crop_category_area
from PIL import Image

from ovss import prepare

SHARED = Path("/work/shared/data/ovss")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ovss"


# ----------------------------------------------------------------------------- class lists
@pytest.mark.parametrize(
    ("name", "n"),
    [
        ("coco", 171),
        ("ade150", 150),
        ("ade847", 847),
        ("pc59", 59),
        ("pc459", 459),
        ("voc20", 20),
        ("voc20b", 59),
    ],
)
def test_class_list_sizes(name, n):
    assert len(load_classes(name)) == n


@pytest.mark.skipif(not SHARED.is_dir(), reason="reference class lists not available")
@pytest.mark.parametrize("name", CLASS_LISTS)
def test_class_lists_match_reference(name):
    ref = json.loads((SHARED / f"{name}.json").read_text())
    assert load_classes(name) == ref


@pytest.mark.skipif(not SHARED.is_dir(), reason="reference val list not available")
def test_pascal_context_val_list_matches_reference():
    ours = (EXAMPLES / "ovss" / "classes" / "pascalcontext_val.txt").read_text().split()
    assert ours == (SHARED / "pascalcontext_val.txt").read_text().split()
    assert len(ours) > 5000


def test_voc20b_extends_voc20_with_pc59_classes():
    voc, voc_b, pc59 = load_classes("voc20"), load_classes("voc20b"), load_classes("pc59")
    assert voc_b[:20] == voc
    assert set(voc_b[20:]) == set(pc59) - set(voc)


def test_pc59_ids_name_the_pc59_classes_in_pc459():
    pc459 = load_classes("pc459")
    names = [pc459[i - 1] for i in prepare.PC59_IDS]
    aliases = {"table": "diningtable"}
    assert [aliases.get(n, n) for n in names] == load_classes("pc59")


def test_coco_and_ade847_id_tables():
    assert len(prepare.COCO_STUFF_IDS) == 171 and len(set(prepare.COCO_STUFF_IDS)) == 171
    assert (
        prepare.COCO_STUFF_IDS[0] == 1
        and prepare.COCO_STUFF_IDS[79] == 90
        and prepare.COCO_STUFF_IDS[-1] == 182
    )
    assert len(ADE847_OBJECT_IDS) == 847 and len(set(ADE847_OBJECT_IDS)) == 847
    # anchors of the standard table: wall, building, ..., the last class (adding machine)
    assert ADE847_OBJECT_IDS[:3] == (2978, 312, 2420) and ADE847_OBJECT_IDS[-1] == 3148


def test_registry_covers_the_benchmarks():
    assert [DATASETS[n].paper_key for n in BENCHMARKS] == [
        "A-847",
        "PC-459",
        "A-150",
        "PC-59",
        "VOC-20",
        "VOC-20b",
    ]
    assert DATASETS["ade847"].label_ext == ".tif" and DATASETS["ade847"].ignore_index == 65535
    assert DATASETS["pc459"].label_ext == ".tif" and DATASETS["pc459"].ignore_index == 459
    assert DATASETS["voc20b"].num_eval_classes == 21 and DATASETS["voc20b"].background_from == 20


# ----------------------------------------------------------------------------- dataset reading
def _write_pair(
    root: Path, spec_name: str, stem: str, label: np.ndarray, image: np.ndarray | None = None
) -> None:
    import tifffile

    spec = DATASETS[spec_name]
    (root / spec.image_dir).mkdir(parents=True, exist_ok=True)
    (root / spec.label_dir).mkdir(parents=True, exist_ok=True)
    if image is None:
        image = np.full((*label.shape, 3), 100, np.uint8)
    Image.fromarray(image).save(root / spec.image_dir / f"{stem}.jpg")
    if spec.label_ext == ".tif":
        tifffile.imwrite(root / spec.label_dir / f"{stem}.tif", label.astype(np.uint16))
    else:
        Image.fromarray(label.astype(np.uint8)).save(root / spec.label_dir / f"{stem}.png")


def test_tiff_labels_and_ignore_values(tmp_path):
    lab = np.array([[0, 846, 65535], [5, 5, 65535]], dtype=np.int64)
    _write_pair(tmp_path, "ade847", "a", lab)
    ds = SegmentationDataset(tmp_path, "ade847")
    s = ds[0]
    assert s["image"].shape == (3, 2, 3) and s["label"].tolist() == [[0, 846, 255], [5, 5, 255]]
    lab459 = np.array([[458, 459], [0, 1]])
    _write_pair(tmp_path, "pc459", "b", lab459)
    assert SegmentationDataset(tmp_path, "pc459")[0]["label"].tolist() == [[458, 255], [0, 1]]


def test_missing_layout_error_names_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"annotations_detectron2/validation.*\.tif"):
        SegmentationDataset(tmp_path, "ade847")


def test_missing_image_error_names_the_file(tmp_path):
    _write_pair(tmp_path, "ade150", "x", np.zeros((4, 4)))
    (tmp_path / DATASETS["ade150"].image_dir / "x.jpg").unlink()
    ds = SegmentationDataset(tmp_path, "ade150")
    with pytest.raises(DatasetLayoutError, match=r"x\.jpg"):
        ds[0]


def test_out_of_range_label_is_reported(tmp_path):
    _write_pair(tmp_path, "voc20", "bad", np.array([[0, 21], [3, 255]]))
    with pytest.raises(DatasetLayoutError, match=r"bad\.png.*\[21\]"):
        SegmentationDataset(tmp_path, "voc20")[0]


def test_rgb_label_png_is_rejected(tmp_path):
    _write_pair(tmp_path, "pc59", "rgb", np.zeros((3, 3)))
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tmp_path / DATASETS["pc59"].label_dir / "rgb.png")
    with pytest.raises(DatasetLayoutError, match="single-channel"):
        SegmentationDataset(tmp_path, "pc59")[0]


def test_size_mismatch_is_reported(tmp_path):
    _write_pair(tmp_path, "ade150", "m", np.zeros((4, 4)), image=np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(DatasetLayoutError, match="is 4x4 but image"):
        SegmentationDataset(tmp_path, "ade150")[0]


def test_class_subset_renumbers_labels(tmp_path):
    _write_pair(tmp_path, "coco_stuff_val", "s", np.array([[0, 2, 15], [7, 255, 2]]))
    ds = SegmentationDataset(tmp_path, "coco_stuff_val", class_subset=[15, 2, 0])
    assert ds.class_names == ["cat", "car", "person"] and ds.num_eval_classes == 3
    assert ds[0]["label"].tolist() == [[2, 1, 0], [255, 255, 1]]


# ----------------------------------------------------------------------------- preparation
def test_prepare_coco_stuff(tmp_path):
    src = tmp_path / "coco-stuff" / "annotations" / "val2017"
    src.mkdir(parents=True)
    # stuffthingmaps hold COCO id - 1: person 0, id 12 (missing thing) -> 11, wood 181, unlabelled 255
    Image.fromarray(np.array([[0, 11, 181, 255], [91, 90, 2, 0]], np.uint8)).save(src / "1.png")
    assert prepare.prepare_coco_stuff(tmp_path, splits=["val2017"], progress=False) == 1
    out = np.asarray(Image.open(tmp_path / "coco-stuff" / "annotations_detectron2" / "val2017" / "1.png"))
    # id 92 (banner, value 91) is train id 80; value 90 (id 91) does not exist -> 255
    assert out.tolist() == [[0, 255, 170, 255], [80, 255, 2, 0]]


def test_prepare_ade150(tmp_path):
    src = tmp_path / "ADEChallengeData2016" / "annotations" / "validation"
    src.mkdir(parents=True)
    Image.fromarray(np.array([[0, 1, 150]], np.uint8)).save(src / "ADE_val_1.png")
    prepare.prepare_ade20k_150(tmp_path, progress=False)
    out = np.asarray(
        Image.open(
            tmp_path / "ADEChallengeData2016" / "annotations_detectron2" / "validation" / "ADE_val_1.png"
        )
    )
    assert out.tolist() == [[255, 0, 149]]


def _seg_rgb(class_mask: np.ndarray) -> np.ndarray:
    r = (class_mask // 256) * 10 + 3  # the encoder adds 0..9 that floor(R/10) drops
    g = class_mask % 256
    return np.stack([r, g, np.zeros_like(r)], -1).astype(np.uint8)


def test_prepare_ade847_from_full_index(tmp_path):
    base = tmp_path / "ADE20K_2021_17_01"
    folder = "ADE20K_2021_17_01/images/ADE/validation/x"
    (tmp_path / folder).mkdir(parents=True)
    mask = np.array(
        [[2978, 312, 5], [3148, 0, 2978]]
    )  # wall, building, unknown id, adding machine, unlabelled
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / folder / "ADE_val_00000001.jpg")
    Image.fromarray(_seg_rgb(mask)).save(tmp_path / folder / "ADE_val_00000001_seg.png")
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / folder / "ADE_train_00000001.jpg")
    with open(base / "index_ade20k.pkl", "wb") as f:
        pickle.dump(
            {"folder": [folder, folder], "filename": ["ADE_val_00000001.jpg", "ADE_train_00000001.jpg"]}, f
        )
    assert prepare.prepare_ade20k_847(tmp_path, progress=False) == 1
    ds = SegmentationDataset(tmp_path, "ade847")
    assert len(ds) == 1 and ds.label_files[0].suffix == ".tif"
    import tifffile

    raw = tifffile.imread(ds.label_files[0])
    assert raw.dtype == np.uint16 and raw.tolist() == [[0, 1, 65535], [846, 65535, 0]]
    assert ds[0]["label"].tolist() == [[0, 1, 255], [846, 255, 0]]


def test_prepare_ade847_caps_the_shorter_side(tmp_path):
    folder = "ADE20K_2021_17_01/images/ADE/validation"
    (tmp_path / folder).mkdir(parents=True)
    mask = np.full((20, 30), 2978)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / folder / "ADE_val_2.jpg")
    Image.fromarray(_seg_rgb(mask)).save(tmp_path / folder / "ADE_val_2_seg.png")
    with open(tmp_path / "ADE20K_2021_17_01" / "index_ade20k.pkl", "wb") as f:
        pickle.dump({"folder": [folder], "filename": ["ADE_val_2.jpg"]}, f)
    prepare.prepare_ade20k_847(tmp_path, max_size=10, progress=False)
    s = SegmentationDataset(tmp_path, "ade847")[0]
    assert tuple(s["label"].shape) == (10, 15) and tuple(s["image"].shape) == (3, 10, 15)


def test_prepare_pascal_context(tmp_path):
    import scipy.io

    voc = tmp_path / "VOCdevkit" / "VOC2010"
    (voc / "trainval").mkdir(parents=True)
    # 459-ids: 2 aeroplane (pc59 0), 1 accordion (not in pc59), 459 wool, 0 unlabelled, 9 bag (pc59 1)
    lab = np.array([[2, 1, 459], [0, 9, 2]], dtype=np.uint16)
    scipy.io.savemat(voc / "trainval" / "2008_000002.mat", {"LabelMap": lab})
    (voc / "pascalcontext_val.txt").write_text("2008_000002\n2008_000003\n")
    for stem in ("2008_000002",):
        (voc / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(voc / "JPEGImages" / f"{stem}.jpg")
    assert prepare.prepare_pascal_context(tmp_path, progress=False) == 1
    assert SegmentationDataset(tmp_path, "pc459")[0]["label"].tolist() == [[1, 0, 458], [255, 8, 1]]
    assert SegmentationDataset(tmp_path, "pc59")[0]["label"].tolist() == [[0, 255, 255], [255, 1, 0]]


def test_prepare_voc_with_and_without_background(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "SegmentationClassAug").mkdir(parents=True)
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\n")
    Image.fromarray(np.array([[0, 1, 20, 255]], np.uint8)).save(voc / "SegmentationClassAug" / "a.png")
    Image.fromarray(np.array([[0, 0, 255, 255]], np.uint8)).save(voc / "SegmentationClassAug" / "b.png")
    for s in "ab":
        Image.fromarray(np.zeros((1, 4, 3), np.uint8)).save(voc / "JPEGImages" / f"{s}.jpg")
    # run through the command line script
    script = EXAMPLES / "scripts" / "prepare_datasets.py"
    # the ovss package as `pip install -e examples/ovss` provides it (the script imports it, nothing more)
    path = os.pathsep.join([str(EXAMPLES), *filter(None, [os.environ.get("PYTHONPATH")])])
    subprocess.run(
        [sys.executable, str(script), "voc", "--root", str(tmp_path), "--no-progress"],
        check=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    voc20 = SegmentationDataset(tmp_path, "voc20")
    voc20b = SegmentationDataset(tmp_path, "voc20b")
    assert len(voc20) == 1 and voc20[0]["label"].tolist() == [
        [255, 0, 19, 255]
    ]  # b has no VOC label: skipped
    assert len(voc20b) == 2 and voc20b[0]["label"].tolist() == [[20, 0, 19, 255]]
    assert voc20b[1]["label"].tolist() == [[20, 20, 255, 255]]


# ----------------------------------------------------------------------------- augmentation
def test_train_transform_geometry_and_determinism():
    rng_img = np.random.default_rng(0)
    image = rng_img.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    label = np.tile(np.arange(50) % 7, (30, 1))
    t = TrainTransform(crop_size=16)
    a = t(image, label, np.random.default_rng(3))
    b = t(image, label, np.random.default_rng(3))
    assert a[0].shape == (16, 16, 3) and a[1].shape == (16, 16)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # geometry only: the crop is a contiguous window of the resized label (columns differ by one step)
    t_geo = TrainTransform(crop_size=16, color_aug=False, flip=False)
    _, lab = t_geo(image, label, np.random.default_rng(1))
    assert (lab == lab[0]).all()  # every row equal: the label only varies along x


def test_transform_pads_small_images_with_ignore():
    t = TrainTransform(crop_size=8, min_size=4, color_aug=False, flip=False)
    im, lab = t(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.int64), np.random.default_rng(0))
    assert (
        im.shape == (8, 8, 3)
        and (lab[4:] == 255).all()
        and (lab[:, 6:] == 255).all()
        and (im[4:] == 128).all()
    )


def test_category_area_rule_rejects_single_class_crops():
    label = np.zeros((20, 20), np.int64)
    label[:, 15:] = 1  # only crops reaching x >= 15 hold two classes
    for seed in range(10):
        y0, x0, h, w = random_crop_category_area(
            label, 10, np.random.default_rng(seed), single_category_max_area=0.9
        )
        crop = label[y0 : y0 + h, x0 : x0 + w]
        values, counts = np.unique(crop, return_counts=True)
        if len(values) == 2:
            assert counts.max() < 0.9 * counts.sum()


def test_color_aug_changes_colours_but_keeps_shape():
    im = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    outs = [color_aug_ssd(im, np.random.default_rng(s)) for s in range(8)]
    assert all(o.shape == im.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, im) for o in outs)
