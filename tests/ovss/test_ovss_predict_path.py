"""One prediction path: OVSSModel.predict is CAT-Seg's test protocol (what evaluation and predict.py run),
and a float64 model computes every step in float64."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("timm")

import torch
import torch.nn.functional as F
from ovss.clip import resize_positional_embedding
from ovss.config import CLIP_PIXEL_MEAN, RunConfig
from ovss.evaluation import pre_resize
from ovss.inference import segment_image
from ovss.model import OVSSModel
from ovss.tiny_model import tiny_model_config

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["cat", "dog", "sky", "road"]
EVAL = {"kernel": 32, "out_res": 48, "test_min_size": 48, "test_max_size": 200}


def _model() -> OVSSModel:
    torch.manual_seed(0)
    model = OVSSModel(tiny_model_config("none"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _images(b: int = 2, h: int = 37, w: int = 53) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (b, 3, h, w), dtype=np.uint8))


def _catseg_whole(model: OVSSModel, image: torch.Tensor, size, dtype=torch.float32) -> torch.Tensor:
    """CAT-Seg's whole-image test path written out: the test mapper's pre-resize, padding to a multiple
    of 32 with the pixel mean, the model, the sigmoid before any upsampling, the crop, the resize."""
    x = pre_resize(image, 48, 200)[None].to(dtype)
    h, w = x.shape[-2:]
    mean = torch.tensor(CLIP_PIXEL_MEAN, dtype=dtype).view(1, 3, 1, 1)
    x = F.pad(x - mean, (0, -w % 32, 0, -h % 32)) + mean
    with torch.no_grad(), model.aggregator.use_pooling((1, 1)):
        probs = model(x, NAMES).logits.sigmoid()[:, :, :h, :w]
    return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)[0]


def test_predict_is_the_whole_image_protocol():
    model = _model()
    model.train()
    images = _images()
    got = model.predict(images, NAMES, min_size=48, max_size=200)
    assert model.training  # the mode is restored
    model.eval()
    for i in range(len(images)):
        ref = _catseg_whole(model, images[i], (37, 53))
        torch.testing.assert_close(got[i], ref, rtol=0, atol=1e-6)  # same operations, float32 sums
    # the old path (resize the logits, then the sigmoid, no padding, training pooling) is another answer
    with torch.no_grad():
        old = F.interpolate(model(images.float(), NAMES).logits, size=(37, 53), mode="bilinear").sigmoid()
    assert (old - got).abs().max() > 1e-3


def test_predict_equals_segment_image_of_predict_py():
    model = _model().eval()
    cfg = RunConfig.from_dict(
        {"model": tiny_model_config("none").to_dict(), "eval": {**EVAL, "mode": "whole"}}
    )
    image = _images(1)[0]
    via_script = segment_image(model, image, NAMES, cfg)
    via_method = model.predict(image[None], NAMES, min_size=48, max_size=200)[0]
    torch.testing.assert_close(via_method, via_script, rtol=0, atol=0)
    cfg = RunConfig.from_dict({"model": tiny_model_config("none").to_dict(), "eval": EVAL})  # sliding
    sliding = model.predict_sliding_window(
        image[None], NAMES, kernel=32, out_res=48, min_size=48, max_size=200
    )
    torch.testing.assert_close(sliding[0], segment_image(model, image, NAMES, cfg), rtol=0, atol=0)
    with pytest.raises(TypeError, match="uint8"):
        model.predict(image[None].float(), NAMES)  # the pre-resize needs the decoded image: said so


def test_float64_model_is_float64_throughout():
    model = _model().double().eval()
    seen = []
    model.clip.clip.visual.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    image = _images(1)[0]
    got = model.predict(image[None], NAMES, min_size=48, max_size=200)
    assert got.dtype == torch.float64 and seen and all(d == torch.float64 for d in seen)
    ref = _catseg_whole(model, image, (37, 53), dtype=torch.float64)
    torch.testing.assert_close(got[0], ref, rtol=0, atol=1e-12)  # float64 sums in another order
    sliding = model.predict_sliding_window(
        image[None], NAMES, kernel=32, out_res=48, min_size=48, max_size=200
    )
    assert sliding.dtype == torch.float64


def test_positional_embedding_resize_keeps_float64():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1 + 7 * 7, 6, generator=g, dtype=torch.float64)
    got = resize_positional_embedding(pos, (12, 12))
    patch = pos[1:].reshape(1, 7, 7, 6).permute(0, 3, 1, 2)
    ref = F.interpolate(patch, size=(12, 12), mode="bicubic", align_corners=False).flatten(2)[0].T
    assert got.dtype == torch.float64
    torch.testing.assert_close(got[1:], ref, rtol=0, atol=0)  # a float32 step would be ~1e-7 off
    torch.testing.assert_close(got[:1], pos[:1], rtol=0, atol=0)
    half = resize_positional_embedding(pos.half(), (12, 12))
    assert half.dtype == torch.float16
