"""CAT-Seg's decoder (examples/ovss/ovss/aggregator.py), its loss, templates and configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("open_clip")

from ovss.aggregator import (
    Aggregator,
    AggregatorConfig,
    GuidedSwinBlock,
    linear_attention,
)
from ovss.config import ModelConfig, OptimConfig, load_yaml, preset
from ovss.losses import segmentation_bce_loss
from ovss.templates import IMAGENET_TEMPLATES, first_synonym, format_prompts, get_templates

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "ovss" / "configs"


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_cfg(**kw) -> AggregatorConfig:
    base = dict(
        text_guidance_dim=8,
        text_guidance_proj_dim=8,
        appearance_guidance_dim=8,
        appearance_guidance_proj_dim=8,
        decoder_dims=(16, 16),
        decoder_guidance_dims=(4, 4),
        decoder_guidance_proj_dims=(4, 4),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        pooling_size=(2, 2),
        feature_resolution=(4, 4),
        window_size=2,
        pad_len=6,
    )
    base.update(kw)
    return AggregatorConfig(**base)


def _inputs(b: int, t: int, cfg: AggregatorConfig, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.feature_resolution
    img = torch.randn(b, cfg.appearance_guidance_dim, h, w, generator=g)
    text = torch.randn(b, t, cfg.prompt_channel, cfg.text_guidance_dim, generator=g)
    guid = [
        img,
        torch.randn(b, cfg.decoder_guidance_dims[0], 2 * h, 2 * w, generator=g),
        torch.randn(b, cfg.decoder_guidance_dims[1], 4 * h, 4 * w, generator=g),
    ]
    return img, text, guid


@pytest.mark.parametrize(
    ("dim", "expected"),
    [(512, 2_308_961), (768, 2_636_641)],  # CAT-Seg's Aggregator at ViT-B/16 and ViT-L/14 dims
)
def test_parameter_count_matches_catseg(dim, expected):
    agg = Aggregator(AggregatorConfig(text_guidance_dim=dim, appearance_guidance_dim=dim))
    assert agg.num_parameters() == expected


def test_linear_attention_matches_naive_formula():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, n, 3, 4, generator=g, dtype=torch.float64) for n in (5, 7, 7))
    phi_q, phi_k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    ref = torch.empty(2, 5, 3, 4, dtype=torch.float64)
    for n in range(2):
        for h in range(3):
            sim = phi_q[n, :, h] @ phi_k[n, :, h].T  # (L, S), non-negative
            ref[n, :, h] = (sim @ v[n, :, h]) / (sim.sum(-1, keepdim=True) + 1e-6 / 7)
    torch.testing.assert_close(linear_attention(q, k, v), ref)


def _reference_window_attention(
    block: GuidedSwinBlock, x: torch.Tensor, guidance: torch.Tensor
) -> torch.Tensor:
    """Naive masked attention on the cyclically shifted grid (tokens attend within their window and region)."""
    h, w = block.input_resolution
    n, _, c = x.shape
    ws, s = block.window_size, block.shift_size
    y = torch.cat([block.norm1(x), guidance], dim=-1).view(n, h, w, -1)
    y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    window = (rows // ws) * (w // ws) + cols // ws

    def region(i: torch.Tensor, size: int) -> torch.Tensor:
        return (i >= size - ws).long() + (i >= size - s).long() if s else torch.zeros_like(i)

    reg = region(rows, h) * 3 + region(cols, w)
    allowed = (window.flatten()[:, None] == window.flatten()[None]) & (
        reg.flatten()[:, None] == reg.flatten()[None]
    )
    attn = block.attn
    tokens = y.reshape(n, h * w, -1)
    heads = attn.num_heads
    q = attn.q(tokens).view(n, h * w, heads, -1).transpose(1, 2) * attn.scale
    k = attn.k(tokens).view(n, h * w, heads, -1).transpose(1, 2)
    v = attn.v(tokens[..., :c]).view(n, h * w, heads, -1).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)).masked_fill(~allowed, float("-inf"))
    out = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, h * w, c))
    out = torch.roll(out.view(n, h, w, c), shifts=(s, s), dims=(1, 2)).reshape(n, h * w, c)
    x = x + out
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift", [0, 2])
def test_guided_swin_block_matches_masked_attention_reference(shift):
    torch.manual_seed(0)
    block = GuidedSwinBlock(8, 4, (8, 8), num_heads=2, window_size=4, shift_size=shift).double()
    x = torch.randn(3, 64, 8, dtype=torch.float64)
    g = torch.randn(3, 64, 4, dtype=torch.float64)
    torch.testing.assert_close(block(x, g), _reference_window_attention(block, x, g))


def test_aggregator_shapes_and_class_permutation_equivariance():
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    agg = Aggregator(cfg).eval()
    img, text, guid = _inputs(2, 4, cfg)  # 4 classes < pad_len=6: padded with learned tokens
    out = agg(img, text, guid)
    assert out.shape == (2, 4, 16, 16)
    perm = torch.tensor([2, 0, 3, 1])
    out_perm = agg(img, text[:, perm], guid)
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-5, atol=1e-5)


def test_large_vocabulary_keeps_top_pad_len_classes():
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    agg = Aggregator(cfg).eval()
    img, text, guid = _inputs(1, 9, cfg, seed=3)  # 9 classes > pad_len=6
    out = agg(img, text, guid)
    assert out.shape == (1, 9, 16, 16)
    # Independent selection: the 6 classes with the highest best cosine similarity over the image.
    v = torch.nn.functional.normalize(img[0].flatten(1), dim=0)  # (d, HW)
    t = torch.nn.functional.normalize(text[0, :, 0], dim=-1)  # (T, d)
    best = (t @ v).amax(dim=1)
    keep = best.topk(6).indices.sort().values
    dropped = sorted(set(range(9)) - set(keep.tolist()))
    assert torch.all(out[0, dropped] == -100.0)
    expected = agg(img, text[:, keep], guid)
    torch.testing.assert_close(out[:, keep], expected, rtol=1e-5, atol=1e-5)


def test_aggregator_backward_reaches_every_parameter():
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    agg = Aggregator(cfg)
    img, text, guid = _inputs(2, 3, cfg)
    agg(img, text, guid).square().mean().backward()
    missing = [n for n, p in agg.named_parameters() if p.grad is None]
    assert missing == []


def test_aggregator_rejects_bad_shapes():
    cfg = _tiny_cfg()
    agg = Aggregator(cfg)
    img, text, guid = _inputs(1, 3, cfg)
    with pytest.raises(ValueError, match="spatial size"):
        agg(img[..., :2, :2], text, guid)
    with pytest.raises(ValueError, match="prompt_channel"):
        agg(img, text.expand(-1, -1, 2, -1), guid)
    with pytest.raises(ValueError, match="divisible"):
        AggregatorConfig(hidden_dim=10, num_heads=4)


def test_bce_loss_matches_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 3, (2, 4, 4), generator=g)
    targets[0, 0, :2] = 255
    onehot = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    for b in range(2):
        for i in range(4):
            for j in range(4):
                if targets[b, i, j] != 255:
                    onehot[b, targets[b, i, j], i, j] = 1.0
    p = torch.sigmoid(logits)
    bce = -(onehot * p.log() + (1 - onehot) * (1 - p).log())  # (B, T, H, W)
    valid = (targets != 255)[:, None].expand_as(bce)
    zero = segmentation_bce_loss(logits, targets)
    excl = segmentation_bce_loss(logits, targets, ignore_mode="exclude")
    torch.testing.assert_close(zero, bce.mean().float())
    torch.testing.assert_close(excl, bce[valid].mean().float())


def test_bce_loss_resizes_and_validates():
    logits = torch.zeros(1, 3, 2, 2)
    loss = segmentation_bce_loss(logits, torch.zeros(1, 8, 8, dtype=torch.long))
    torch.testing.assert_close(loss, torch.tensor(0.6931471805599453))
    with pytest.raises(ValueError, match="outside"):
        segmentation_bce_loss(logits, torch.full((1, 2, 2), 3))
    with pytest.raises(TypeError, match="integer"):
        segmentation_bce_loss(logits, torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="ignore_mode"):
        segmentation_bce_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), ignore_mode="drop")


def test_templates_match_open_clip_list_and_catseg_conventions():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    assert len(IMAGENET_TEMPLATES) == 80
    assert [t.format("X") for t in IMAGENET_TEMPLATES] == [f("X") for f in OPENAI_IMAGENET_TEMPLATES]
    assert get_templates("single") == ("A photo of a {} in the scene",)
    assert first_synonym("person, child, girl") == "person"
    assert first_synonym("traffic light") == "traffic light"
    assert format_prompts(["cat, kitty", "dog"], ["a {}.", "the {}."]) == [
        "a cat.",
        "the cat.",
        "a dog.",
        "the dog.",
    ]
    with pytest.raises(ValueError, match="slot"):
        get_templates(["no slot"])
    with pytest.raises(ValueError, match="'single'"):
        get_templates("ensemble")


@pytest.mark.parametrize("name", ["vitb_384", "vitl_336"])
def test_yaml_configs_equal_presets(name):
    data = load_yaml(CONFIGS / f"{name}.yaml")
    assert ModelConfig.from_dict(data["model"]) == preset(name)
    assert OptimConfig.from_dict(data["optim"]) == OptimConfig()


def test_config_rejects_unknown_keys_and_derives_prompt_channel():
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({"decoder": {"hiden_dim": 3}})
    with pytest.raises(ValueError, match=r"distill\.name"):
        ModelConfig.from_dict({"distill": {"name": "infoclipp"}})
    cfg = ModelConfig.from_dict({"clip": {"templates": "imagenet"}})
    assert cfg.decoder.prompt_channel == 80
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "name", ["ovss.templates", "ovss.losses", "ovss.config", "ovss.aggregator", "ovss.clip", "ovss.model"]
)
def test_ovss_docstring_examples(name):
    import doctest
    import importlib

    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"
