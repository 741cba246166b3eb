"""LPAM: shapes, parameter count, layouts, shared vs per-sample text, the formula, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infoclip import LPAM


def _lpam(dim: int = 16, seed: int = 0) -> LPAM:
    torch.manual_seed(seed)
    m = LPAM(dim)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters, so that the test sees them
        for ln in (m.norm_visual, m.norm_text):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.2, 0.2)
    return m


def test_parameter_count_at_512_matches_paper():
    lpam = LPAM(512)
    assert sum(p.numel() for p in lpam.parameters()) == 527_360
    # 2 (d^2 + d) for W_q, W_k with bias + 2 * 2d for the two LayerNorms
    d = 768
    assert sum(p.numel() for p in LPAM(d).parameters()) == 2 * (d * d + d) + 4 * d


@pytest.mark.parametrize("text_shape", [(7, 16), (3, 7, 16)])
def test_output_shape(text_shape):
    out = _lpam()(torch.randn(3, 20, 16), torch.randn(*text_shape))
    assert out.shape == (3, 20, 7)


def test_against_numpy_reference_float64():
    m = _lpam().double()
    v = torch.randn(2, 5, 16, dtype=torch.float64)
    t = torch.randn(2, 3, 16, dtype=torch.float64)
    out = m(v, t).detach().numpy()

    def layer_norm(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)  # biased, as LayerNorm
        return (x - mu) / np.sqrt(var + 1e-5) * w + b

    p = {k: val.detach().numpy() for k, val in m.state_dict().items()}
    vn = layer_norm(v.numpy(), p["norm_visual.weight"], p["norm_visual.bias"])
    tn = layer_norm(t.numpy(), p["norm_text.weight"], p["norm_text.bias"])
    key = vn @ p["key.weight"].T + p["key.bias"]
    query = tn @ p["query.weight"].T + p["query.bias"]
    expected = np.einsum("bpd,bcd->bpc", key, query) / math.sqrt(16) + np.einsum("bpd,bcd->bpc", vn, tn)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)


def test_shared_text_equals_text_repeated_per_sample():
    m = _lpam()
    v, t = torch.randn(4, 10, 16), torch.randn(6, 16)
    shared = m(v, t)
    repeated = m(v, t.expand(4, 6, 16))
    torch.testing.assert_close(shared, repeated)


def test_map_layout_equals_token_layout():
    m = _lpam()
    maps = torch.randn(2, 16, 3, 5)  # (B, d, H, W)
    tokens = maps.flatten(2).transpose(1, 2)  # (B, HW, d), row-major H, W
    t = torch.randn(4, 16)
    torch.testing.assert_close(m(maps, t), m(tokens, t))


def test_per_sample_text_is_per_sample():
    m = _lpam()
    v, t = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    both = m(v, t)
    torch.testing.assert_close(both[1], m(v[1:], t[1:])[0])


def test_gradients_reach_every_parameter():
    m = _lpam()
    m(torch.randn(2, 5, 16), torch.randn(3, 16)).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


@pytest.mark.parametrize(
    ("visual", "text", "match"),
    [
        (torch.randn(5, 16), torch.randn(3, 16), "rank 3 or 4"),
        (torch.randn(2, 5, 16), torch.randn(16), "rank 2 or 3"),
        (torch.randn(2, 5, 8), torch.randn(3, 8), "dim=16"),
        (torch.randn(2, 5, 16), torch.randn(3, 8), "same embedding dim"),
        (torch.randn(2, 5, 16), torch.randn(3, 4, 16), "batch size 3"),
    ],
)
def test_bad_shapes_raise(visual, text, match):
    with pytest.raises(ValueError, match=match):
        _lpam()(visual, text)


def test_bad_types_raise():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        _lpam()(np.zeros((2, 5, 16)), torch.randn(3, 16))
    with pytest.raises(TypeError, match="floating"):
        _lpam()(torch.zeros(2, 5, 16, dtype=torch.long), torch.randn(3, 16))
    with pytest.raises(ValueError, match="dim must be an integer"):
        LPAM(0)
