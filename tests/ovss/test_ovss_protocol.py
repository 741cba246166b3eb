"""CAT-Seg's protocol around the network (issue 12, A): each rule against an independent statement of it.

The expected values are written out by hand from CAT-Seg's code as read (``eval.sh``,
``cat_seg_model.py``, detectron2's ``ResizeShortestEdge`` / ``ResizeTransform`` / ``ColorAugSSDTransform``
and ``sem_seg_postprocess``), not computed with the functions under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("open_clip")
pytest.importorskip("timm")

from ovss.config import EvalConfig, OptimConfig, RunConfig
from ovss.evaluation import evaluate_dataset, pre_resize, predict_probabilities, whole_image_probabilities
from ovss.model import OVSSModel
from ovss.optim import build_optimizer, fill_missing_grads_
from ovss.tiny_model import tiny_model_config
from ovss.transforms import (
    TrainTransform,
    color_aug_ssd,
    hsv_to_rgb_uint8,
    resize_label,
    rgb_to_hsv_uint8,
    shortest_edge_size,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)


# --------------------------------------------------------------------------- (2) test pre-resize
# (H, W) -> detectron2's ResizeShortestEdge(640, max_size=2560), worked by hand:
# shorter side := 640, longer := round_half_up(longer * 640 / shorter); if the longer exceeds 2560 both
# are scaled by 2560 / longer and rounded half up.
PRE_RESIZE_TABLE = [
    ((427, 640), (640, 959)),  # 640 * 640 / 427 = 959.25
    ((640, 427), (959, 640)),
    ((375, 500), (640, 853)),  # 853.33
    ((512, 683), (640, 854)),  # 853.75
    ((640, 640), (640, 640)),
    ((1000, 1000), (640, 640)),  # shrinking too
    ((200, 1000), (512, 2560)),  # 640 x 3200 -> x0.8 -> 512 x 2560
    ((96, 128), (640, 853)),
]


@pytest.mark.parametrize(("shape", "expected"), PRE_RESIZE_TABLE)
def test_pre_resize_table(shape, expected):
    assert shortest_edge_size(*shape, 640, 2560) == expected
    image = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    assert tuple(pre_resize(image).shape) == (3, *expected)


def test_pre_resize_cap():
    # 100 x 500: 640 x 3200, longer side over 2560 -> scale 0.8 -> 512 x 2560
    assert shortest_edge_size(100, 500, 640, 2560) == (512, 2560)
    # 1 x 3: 640 x 1920, under the cap
    assert shortest_edge_size(1, 3, 640, 2560) == (640, 1920)
    # 10 x 10000: 640 x 640000 -> scale 2560 / 640000 = 0.004 -> 2.56 x 2560 -> 3 x 2560
    assert shortest_edge_size(10, 10000, 640, 2560) == (3, 2560)


def test_pre_resize_is_pil_bilinear_on_uint8():
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(arr).resize((896, 640), Image.BILINEAR))  # 70 * 640 / 50 = 896
    got = pre_resize(torch.from_numpy(arr).permute(2, 0, 1))
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), expected)
    with pytest.raises(TypeError, match="uint8"):
        pre_resize(torch.rand(3, 5, 5))
    float_image = torch.rand(3, 5, 5)
    assert pre_resize(float_image, None) is float_image


def test_sliding_window_sees_the_pre_resized_image():
    seen: list[torch.Tensor] = []

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return torch.zeros(x.shape[0], 2, 96, 96)

    image = torch.randint(0, 256, (3, 427, 640), dtype=torch.uint8)
    predict_probabilities(logits_fn, image, (427, 640))
    # the global view is the pre-resized 640x959 image resized to 384², not the original
    resized = pre_resize(image).float()
    glob = F.interpolate(resized[None], size=(384, 384), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(seen[0][-1], glob, rtol=0, atol=1e-4)  # same op on the same input
    direct = F.interpolate(image[None].float(), size=(384, 384), mode="bilinear", align_corners=False)[0]
    assert (seen[0][-1] - direct).abs().max() > 1.0  # what the pre-resize changes is visible


# --------------------------------------------------------------------------- (1) pooling at evaluation
def _tiny_model(distill: str = "none") -> OVSSModel:
    torch.manual_seed(0)
    return OVSSModel(tiny_model_config(distill))


def test_eval_pooling_default_is_catseg_and_training_pooling_is_restored(tmp_path):
    assert EvalConfig().pooling_size == (1, 1)  # eval.sh: MODEL.SEM_SEG_HEAD.POOLING_SIZES "[1,1]"
    model = _tiny_model()
    assert model.aggregator.pooling_size == (2, 2)
    seen: list[tuple] = []
    for layer in model.aggregator.layers:
        layer.attention.register_forward_pre_hook(
            lambda m, args: seen.append(tuple(m.pool.kernel_size) if hasattr(m.pool, "kernel_size") else None)
        )

    class _DS:
        spec = type("S", (), {"name": "toy"})()
        class_names = ("a", "b", "c")
        num_eval_classes, ignore_index, background_from = 3, 255, None
        eval_class_names = class_names

        def __len__(self):
            return 1

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {
                "image": torch.randint(0, 256, (3, 24, 30), dtype=torch.uint8, generator=g),
                "label": torch.randint(0, 3, (24, 30), generator=g),
            }

    evaluate_dataset(model, _DS(), kernel=32, out_res=48, min_size=48, max_size=200)
    assert seen and set(seen) == {(1, 1)}
    assert model.aggregator.pooling_size == (2, 2)  # restored after evaluation
    seen.clear()
    evaluate_dataset(model, _DS(), kernel=32, out_res=48, min_size=48, max_size=200, pooling_size=None)
    assert set(seen) == {(2, 2)}


def test_pooling_1x1_is_the_unpooled_class_aggregation():
    # AvgPool2d((1, 1)) followed by the same-size bilinear upsampling is the identity on the grid:
    # the class aggregation then attends at every position.
    model = _tiny_model().eval()
    layer = model.aggregator.layers[0].attention
    x = torch.randn(1, 16, 3, 8, 8)
    g = torch.randn(1, 3, 8)
    with model.aggregator.use_pooling((1, 1)):
        out = layer(x, g)
    layer_id = type(layer)(16, 8, 2, "linear", None, layer.pad_len)
    layer_id.load_state_dict(layer.state_dict())
    torch.testing.assert_close(out, layer_id(x, g), rtol=0, atol=1e-6)  # float32 sums of O(1) terms


# --------------------------------------------------------------------------- (3) precision
def test_fp32_by_default():
    cfg = RunConfig()
    assert cfg.train.amp == "off"
    assert not cfg.train.bf16("cuda") and not cfg.train.bf16("cpu")
    auto = RunConfig.from_dict({"train": {"amp": "auto"}}).train
    assert auto.bf16("cuda") and not auto.bf16("cpu")
    assert RunConfig.from_dict({"train": {"amp": True}}).train.bf16("cpu")
    from ovss.config import load_config

    for name in ("train_vitb_384.yaml", "train_vitl_336.yaml"):
        assert load_config(f"examples/ovss/configs/{name}").train.amp == "off"


# --------------------------------------------------------------------------- (4) training label resize
def test_label_resize_floor_index_on_hand_made_masks():
    mask = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    # 3 -> 2: F.interpolate nearest reads floor(i * 3 / 2) = 0, 1; PIL's centre rule floor((i + .5) * 1.5) = 0, 2
    assert resize_label(mask, (2, 2)).tolist() == [[0, 1], [3, 4]]
    assert resize_label(mask, (2, 2), "center").tolist() == [[0, 2], [6, 8]]
    row = np.array([[10, 20]])
    # 2 -> 5: floor(i * 0.4) = 0, 0, 0, 1, 1; centre: floor((i + .5) * .4) = 0, 0, 1, 1, 1
    assert resize_label(row, (1, 5)).tolist() == [[10, 10, 10, 20, 20]]
    assert resize_label(row, (1, 5), "center").tolist() == [[10, 10, 20, 20, 20]]
    big = np.array([[0, 65535, 7]])  # 16-bit ids survive the float round trip
    assert resize_label(big, (1, 2)).tolist() == [[0, 65535]]
    assert resize_label(big, (1, 2)).dtype == big.dtype


def test_label_resize_matches_torch_nearest_and_is_used_for_training():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 171, (37, 53))
    for size in [(20, 29), (64, 91), (384, 550)]:
        ref = F.interpolate(torch.from_numpy(label).double()[None, None], size=size, mode="nearest")
        np.testing.assert_array_equal(resize_label(label, size), ref[0, 0].long().numpy())
    t = TrainTransform(crop_size=16, color_aug=False, flip=False)
    image = np.zeros((37, 53, 3), np.uint8)
    _, lab = t(image, label, np.random.default_rng(0))
    resized = resize_label(label, shortest_edge_size(37, 53, 16, 1333))
    found = any(
        np.array_equal(lab, resized[y : y + 16, x : x + 16])
        for y in range(resized.shape[0] - 15)
        for x in range(resized.shape[1] - 15)
    )
    assert found
    assert RunConfig().data.label_resize == "floor"


# --------------------------------------------------------------------------- (5) whole-image mode
def test_whole_image_pads_to_32_with_the_clip_mean_and_applies_the_sigmoid_first():
    seen: list[torch.Tensor] = []
    logits = 5 * torch.randn(1, 1, 96, 96, generator=torch.Generator().manual_seed(0))

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return logits

    image = torch.randint(0, 256, (3, 427, 640), dtype=torch.uint8)
    out = predict_probabilities(logits_fn, image, (427, 640), mode="whole")
    (x,) = seen
    assert x.shape == (1, 3, 640, 960)  # pre-resized to 640 x 959, padded to 960 (30 x 32)
    torch.testing.assert_close(x[0, :, :, :959], pre_resize(image).float())
    pad = x[0, :, :, 959]
    for c in range(3):  # the normalised padding is 0: the raw padding is CLIP's mean
        torch.testing.assert_close(pad[c], torch.full_like(pad[c], CLIP_MEAN[c]), rtol=0, atol=1e-4)
    sig_first = F.interpolate(logits.sigmoid(), size=(427, 640), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, sig_first)
    sig_last = F.interpolate(logits, size=(427, 640), mode="bilinear", align_corners=False)[0].sigmoid()
    assert (out - sig_last).abs().max() > 1e-3  # the order matters for these logits


def test_whole_image_crop_uses_the_image_size_on_the_logit_grid():
    # sem_seg_postprocess crops result[:, :h, :w] with the image's size: at a logit grid smaller than
    # the image it keeps everything (so the padded margin is stretched over the output, as in CAT-Seg).
    logits = torch.randn(1, 2, 8, 8)
    out = whole_image_probabilities(lambda x: logits, torch.zeros(3, 5, 6), (10, 12), size_divisibility=4)
    expected = F.interpolate(
        logits.sigmoid()[:, :, :5, :6], size=(10, 12), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out, expected[0])
    with pytest.raises(ValueError, match="size_divisibility"):
        whole_image_probabilities(lambda x: logits, torch.zeros(3, 5, 6), (10, 12), size_divisibility=0)
    assert EvalConfig().size_divisibility == 32


# --------------------------------------------------------------------------- (7) weight decay without grad
def test_last_query_weight_has_no_grad_and_is_decayed_as_catseg():
    model = _tiny_model()
    model.train()
    q_last = model.clip.clip.visual.transformer.resblocks[-1].attn.q_proj_weight
    assert q_last.requires_grad
    cfg = OptimConfig(base_lr=0.1, clip_multiplier=1.0, weight_decay=0.5)
    opt = build_optimizer(model, cfg)
    images = torch.rand(2, 3, 32, 32) * 255
    targets = torch.randint(0, 3, (2, 32, 32))
    model(images, ["a", "b", "c"], targets).loss.backward()
    assert q_last.grad is None  # the dense last block uses only the value path
    before = q_last.detach().clone()
    assert fill_missing_grads_(opt) >= 1
    assert q_last.grad is not None and not q_last.grad.any()
    opt.step()
    # AdamW with a zero gradient: m = v = 0, update 0 / (0 + eps) = 0; decoupled decay p *= 1 - lr * wd
    torch.testing.assert_close(q_last.detach(), before * (1 - 0.1 * 0.5), rtol=1e-6, atol=0)
    assert OptimConfig().decay_without_grad


def test_without_the_option_adamw_skips_the_query_weight():
    model = _tiny_model()
    q_last = model.clip.clip.visual.transformer.resblocks[-1].attn.q_proj_weight
    opt = build_optimizer(model, OptimConfig(base_lr=0.1, weight_decay=0.5))
    model(torch.rand(1, 3, 32, 32) * 255, ["a", "b"], torch.randint(0, 2, (1, 32, 32))).loss.backward()
    before = q_last.detach().clone()
    opt.step()
    torch.testing.assert_close(q_last.detach(), before, rtol=0, atol=0)


# --------------------------------------------------------------------------- (6) colour augmentation
def test_hsv_uint8_rules_by_hand():
    # pure red, green, blue, a grey and a dark orange, in OpenCV's 8-bit HSV (hue in 2-degree steps)
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [200, 100, 0]]], np.uint8)
    hsv = rgb_to_hsv_uint8(rgb)
    # orange: hue 60 * (100 - 0) / 200 = 30 degrees -> 15; S = 255; V = 200
    assert hsv.tolist() == [[[0, 255, 255], [60, 255, 255], [120, 255, 255], [0, 0, 128], [15, 255, 200]]]
    np.testing.assert_array_equal(hsv_to_rgb_uint8(hsv), rgb)


def test_hsv_round_trip_against_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_hsv_uint8(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))
    hsv = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hsv[..., 0] %= 180
    ours = hsv_to_rgb_uint8(hsv).astype(int)
    # OpenCV's scalar path (one pixel per row) is the rounded float formula: equal
    scalar = cv2.cvtColor(np.ascontiguousarray(hsv.reshape(-1, 1, 3)), cv2.COLOR_HSV2RGB).reshape(hsv.shape)
    assert (ours != scalar).mean() < 1e-3  # float32 vs float64 at exact .5 ties only
    # OpenCV's vectorised path (wide rows) rounds differently: at most one grey level apart
    assert np.abs(ours - cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(int)).max() <= 1


def test_color_aug_steps_truncate_to_uint8():
    class _Scripted:
        """A generator stand-in that replays fixed draws (integers: flags, hue shift; uniform: amounts)."""

        def __init__(self, ints, floats):
            self.ints, self.floats = list(ints), list(floats)

        def integers(self, lo, hi=None):
            return self.ints.pop(0)

        def uniform(self, lo, hi):
            return self.floats.pop(0)

    image = np.array([[[10, 100, 250]]], np.uint8)
    # brightness on (+7.9), branch 0 (saturation, hue, contrast), saturation off, hue off, contrast on (x1.3)
    out = color_aug_ssd(image, _Scripted([1, 0, 0, 0, 1], [7.9, 1.3]))  # type: ignore[arg-type]
    # 10 + 7.9 = 17.9 -> 17 (truncated), then 17 * 1.3 = 22.1 -> 22; 107.9 -> 107 -> 139.1 -> 139; 255 cap
    assert out.tolist() == [[[22, 139, 255]]]
    # hue only: branch 1 (contrast, saturation, hue): contrast off, saturation off, hue on with +30 (= 60 deg)
    red = np.array([[[255, 0, 0]]], np.uint8)
    out = color_aug_ssd(red, _Scripted([0, 1, 0, 0, 1, 30], []))  # type: ignore[arg-type]
    assert out.tolist() == [[[255, 255, 0]]]  # red shifted by 60 degrees is yellow


def test_color_aug_is_seeded_and_needs_no_matplotlib():
    rng_image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = color_aug_ssd(rng_image, np.random.default_rng(5))
    b = color_aug_ssd(rng_image, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    import ast

    import ovss.transforms as tr

    tree = ast.parse(open(tr.__file__, encoding="utf-8").read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.split(".")[0] in ("matplotlib", "cv2") for m in imported)


def test_saturation_step_by_hand():
    # saturation x0.5 on (200, 100, 0): HSV (15, 255, 200) -> S = trunc(127.5) = 127 -> back to RGB:
    # min = 200 * (1 - 127/255) = 100.39 -> 100; mid (hue 30 deg, sector 0, f = 0.5):
    # 200 * (1 - 127/255 * 0.5) = 150.2 -> 150
    image = np.array([[[200, 100, 0]]], np.uint8)

    class _Scripted:
        def __init__(self):
            self.ints = [0, 0, 1, 0, 0]  # no brightness; branch 0; saturation on; hue off; contrast off
            self.floats = [0.5]

        def integers(self, lo, hi=None):
            return self.ints.pop(0)

        def uniform(self, lo, hi):
            return self.floats.pop(0)

    out = color_aug_ssd(image, _Scripted())  # type: ignore[arg-type]
    assert out.tolist() == [[[200, 150, 100]]]
    assert math.isclose(200 * (1 - 127 / 255 * 0.5), 150.196, abs_tol=1e-3)
