"""Dense CLIP over open_clip (examples/ovss/ovss/clip.py): dense path, guidance, Q/V split, weights loading."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("open_clip")
pytest.importorskip("timm")

import open_clip
from ovss.clip import (
    DenseCLIP,
    create_clip,
    merge_qkv_state_dict,
    qv_parameter_names,
    resize_positional_embedding,
    set_trainable_,
    split_qkv_,
)
from ovss.tiny_model import register_tiny_clip

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    name = register_tiny_clip()
    torch.manual_seed(0)
    model, tokenizer = create_clip(name, None)
    model.eval()
    return model, tokenizer


def _reference_dense(model, images):
    """CAT-Seg's dense forward written directly on the packed open_clip weights (independent of ovss)."""
    v = model.visual
    x = v.conv1(images)
    b, c, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.expand(b, 1, c), x], dim=1)
    pos = v.positional_embedding
    side = int((pos.shape[0] - 1) ** 0.5)
    grid = pos[1:].reshape(side, side, c).permute(2, 0, 1)[None]
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)[0]
    x = x + torch.cat([pos[:1], grid.reshape(c, -1).T], dim=0)
    x = v.ln_pre(x)
    for blk in v.transformer.resblocks[:-1]:
        x = blk(x)
    last = v.transformer.resblocks[-1]
    w_v = last.attn.in_proj_weight[2 * c :]
    b_v = last.attn.in_proj_bias[2 * c :]
    y = last.ln_1(x) @ w_v.T + b_v
    y = y @ last.attn.out_proj.weight.T + last.attn.out_proj.bias
    y = y + x[:, :1]
    y = y + last.mlp(last.ln_2(y))
    out = v.ln_post(y) @ v.proj
    return out[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)


def test_dense_features_match_catseg_reference_with_resized_positions(tiny):
    model, tok = tiny
    dense = DenseCLIP(model, tok, guidance_layers=(0, 1))
    images = torch.randn(2, 3, 32, 32)  # native 16 px: the 4x4 position grid is resized to 8x8
    with torch.no_grad():
        got = dense.encode_image_dense(images)
        ref = _reference_dense(model, images)
    assert got.dense.shape == (2, 16, 8, 8)
    torch.testing.assert_close(got.dense, ref, rtol=1e-5, atol=1e-5)


def test_guidance_and_global_embedding_match_open_clip(tiny):
    model, tok = tiny
    dense = DenseCLIP(model, tok, guidance_layers=(1, 0))
    images = torch.randn(2, 3, 16, 16)  # the native size: open_clip's own forward applies
    with torch.no_grad():
        got = dense.encode_image_dense(images, return_global=True)
        inter = model.visual.forward_intermediates(images, indices=[0, 1], output_fmt="NCHW")
        pooled = model.encode_image(images)
    assert [t.shape for t in got.intermediates] == [(2, 32, 4, 4)] * 2
    # Requested order (1, 0) is kept.
    torch.testing.assert_close(got.intermediates[0], inter["image_intermediates"][1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.intermediates[1], inter["image_intermediates"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.global_embedding, pooled, rtol=1e-5, atol=1e-5)


def test_resize_positional_embedding_keeps_cls_and_is_identity_on_same_grid():
    pos = torch.randn(1 + 9, 5)
    assert resize_positional_embedding(pos, (3, 3)) is pos
    out = resize_positional_embedding(pos, (6, 6))
    assert out.shape == (37, 5)
    torch.testing.assert_close(out[0], pos[0])
    with pytest.raises(ValueError, match="square"):
        resize_positional_embedding(torch.randn(11, 5), (4, 4))


def test_split_qkv_computes_the_same_function(tiny):
    model, tok = tiny
    split = split_qkv_(copy.deepcopy(model))
    assert all(p is None for n, p in split.named_parameters() if n.endswith("in_proj_weight"))
    images = torch.randn(2, 3, 16, 16)
    tokens = tok(["a photo of a cat", "a dog"])
    with torch.no_grad():
        torch.testing.assert_close(
            split.encode_image(images), model.encode_image(images), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(split.encode_text(tokens), model.encode_text(tokens), rtol=1e-5, atol=1e-5)
    merged = merge_qkv_state_dict(split.state_dict())
    original = model.state_dict()
    assert merged.keys() == original.keys()
    for key in original:
        assert torch.equal(merged[key], original[key]), key


def test_set_trainable_qv_marks_only_query_and_value_weights(tiny):
    model, _ = tiny
    m = split_qkv_(copy.deepcopy(model))
    set_trainable_(m, "qv")
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    blocks = len(m.visual.transformer.resblocks) + len(m.transformer.resblocks)
    assert len(trainable) == 2 * blocks
    assert trainable == set(qv_parameter_names(m))
    set_trainable_(m, "none")
    assert not any(p.requires_grad for p in m.parameters())
    set_trainable_(m, "full")
    assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError, match="split_qkv_"):
        set_trainable_(copy.deepcopy(model), "qv")
    with pytest.raises(ValueError, match="mode"):
        set_trainable_(m, "attention")


def test_dense_clip_rejects_bad_inputs(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="guidance_layers"):
        DenseCLIP(model, tok, guidance_layers=(2,))  # the last block is the dense one
    with pytest.raises(ValueError, match="distinct"):
        DenseCLIP(model, tok, guidance_layers=(1, 1))
    dense = DenseCLIP(model, tok)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        dense.encode_image_dense(torch.randn(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        dense.encode_image_dense(torch.randn(3, 32, 32))


def test_create_clip_from_a_local_file(tiny, tmp_path):
    model, _ = tiny
    path = tmp_path / "tiny.bin"
    torch.save(model.state_dict(), path)
    loaded, tok = create_clip("ovss-tiny", str(path))
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert tok(["x"]).shape == (1, 16)


def test_create_clip_errors(monkeypatch, tmp_path):
    register_tiny_clip()
    with pytest.raises(ValueError, match="open_clip architecture"):
        create_clip("no-such-model", None)
    with pytest.raises(FileNotFoundError, match="no such file"):
        create_clip("ovss-tiny", str(tmp_path / "missing.bin"))
    with pytest.raises(ValueError, match="known tags"):
        create_clip("ViT-B-16-quickgelu", "not-a-tag")

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(RuntimeError, match="pass its local path") as info:
        create_clip("ViT-B-16-quickgelu", "openai")
    message = str(info.value)
    assert "network" in message and "pretrained='/path/to/open_clip_pytorch_model.bin'" in message
    assert "timm/vit_base_patch16_clip_224.openai" in message
