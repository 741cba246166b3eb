"""Distillation baselines (Table 2): hand-computed cases, references, routing, switching by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infoclip import (
    DISTILLERS,
    DistillationOutput,
    InfoCLIPLoss,
    KLDistiller,
    MAFTDistiller,
    MAFTPlusDistiller,
    kl_distillation_loss,
    maft_distillation_loss,
    make_distiller,
    pixel_text_logits,
    representation_compensation_loss,
)

# ----------------------------------------------------------------------------------------------------
# KL


def test_kl_of_identical_logits_is_zero():
    z = torch.randn(2, 7, 5)
    assert float(kl_distillation_loss(z, z, temperature=3.0)) == pytest.approx(0.0, abs=1e-7)


def test_kl_hand_computed():
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # p_T = (1/4, 3/4)
    student = torch.zeros(1, 2)  # p_S = (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    # float32 (as the loss computes): log/exp/softmax cost a few ulps each, and the KL (0.13) is a
    # difference of terms summing to 0.47 in size, which amplifies them ~3.6x: ~10 ulps * 3.6 * 1.2e-7
    # ~ 4e-6 relative. This machine gives 5.5e-7, too close to the former 1e-6 for another libm.
    assert float(kl_distillation_loss(teacher, student)) == pytest.approx(expected, rel=1e-5)


def test_kl_temperature_against_numpy():
    g = torch.Generator().manual_seed(0)
    zt, zs = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    temp = 2.5

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    pt, ps = softmax(zt.double().numpy() / temp), softmax(zs.double().numpy() / temp)
    expected = temp**2 * np.mean(np.sum(pt * np.log(pt / ps), axis=-1))
    assert float(kl_distillation_loss(zt, zs, temperature=temp)) == pytest.approx(expected, rel=1e-5)


def test_pixel_text_logits():
    v = torch.tensor([[[3.0, 0.0], [0.0, 0.5]]])  # (1, 2, 2)
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    expected = torch.tensor([[[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]]]) * 100
    torch.testing.assert_close(pixel_text_logits(v, t), expected)
    maps = v.transpose(1, 2).reshape(1, 2, 1, 2)
    torch.testing.assert_close(pixel_text_logits(maps, t), expected)


def test_kl_distiller_uses_given_logits_or_clip_similarity():
    tv, tt, sv, st = _features()
    d = KLDistiller(8, weight=0.5, temperature=2.0)
    out = d(tv, tt, sv, st)
    expected = kl_distillation_loss(pixel_text_logits(tv, tt), pixel_text_logits(sv, st), temperature=2.0)
    torch.testing.assert_close(out.distillation, expected)
    torch.testing.assert_close(out.total, 0.5 * expected)
    zt, zs = torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    out = d(tv, tt, sv, st, teacher_logits=zt, student_logits=zs)
    torch.testing.assert_close(out.distillation, kl_distillation_loss(zt, zs, temperature=2.0))


# ----------------------------------------------------------------------------------------------------
# MAFT


def test_maft_hand_computed():
    text = torch.eye(2)
    g_t, g_s = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # softmax(ln3 * cos): teacher (3/4, 1/4), student (1/4, 3/4); SmoothL1 of 0.5 is 0.5 * 0.5^2
    got = maft_distillation_loss(g_t, text, g_s, text, logit_scale=math.log(3.0))
    # float32: a softmax, a difference of 0.75 and 0.25 (no cancellation) and a square: ~10 ulps, 1.2e-6
    assert float(got) == pytest.approx(0.125, rel=5e-6)


def test_maft_distiller_defaults_to_mean_tokens_and_weight_point_one():
    tv, tt, sv, st = _features()
    out = MAFTDistiller(8)(tv, tt, sv, st)
    expected = maft_distillation_loss(tv.mean(1), tt, sv.mean(1), st)
    torch.testing.assert_close(out.total, 0.1 * expected)
    gt, gs = torch.randn(2, 8), torch.randn(2, 8)
    out = MAFTDistiller(8, weight=1.0)(tv, tt, sv, st, teacher_image_embedding=gt, student_image_embedding=gs)
    torch.testing.assert_close(out.total, maft_distillation_loss(gt, tt, gs, st))


# ----------------------------------------------------------------------------------------------------
# MAFT+


def test_representation_compensation_hand_computed():
    ones = torch.ones(1, 1, 4, 4)
    zeros = torch.zeros(1, 1, 4, 4)
    # scale 1: descriptor (1, 1) -> SmoothL1 0.5 each
    assert float(representation_compensation_loss(ones, zeros, scales=(1,))) == pytest.approx(0.5)
    # ReLU: negative teacher features count as zero
    assert float(representation_compensation_loss(-ones, zeros, scales=(1,))) == 0.0
    # scales (1, 2): (1, 1, 2, 2, 2, 2) vs 0 -> (0.5 + 0.5 + 4 * 1.5) / 6
    assert float(representation_compensation_loss(ones, zeros, scales=(1, 2))) == pytest.approx(7 / 6)


def _ref_rc(ft: np.ndarray, fs: np.ndarray, scales) -> float:
    def desc(f):
        f = np.maximum(f, 0)
        b, c, h, w = f.shape
        parts = []
        for s in scales:
            pooled = f.reshape(b, c, s, h // s, s, w // s).mean(axis=(3, 5))
            parts += [pooled.sum(axis=2).reshape(b, -1), pooled.sum(axis=3).reshape(b, -1)]
        return np.concatenate(parts, axis=1)

    diff = np.abs(desc(fs) - desc(ft))
    return float(np.mean(np.where(diff < 1, 0.5 * diff**2, diff - 0.5)))


def test_representation_compensation_against_numpy_multi_level():
    g = torch.Generator().manual_seed(0)
    levels_t = [torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 5, 4, 4, generator=g)]
    levels_s = [torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 5, 4, 4, generator=g)]
    got = representation_compensation_loss(levels_t, levels_s)
    expected = np.mean([_ref_rc(a.numpy(), b.numpy(), (1, 2, 4)) for a, b in zip(levels_t, levels_s)])
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_maftplus_distiller_tokens_maps_and_extra_levels():
    tv, tt, sv, st = _features(hw=16)
    d = MAFTPlusDistiller(8, weight=1.0)
    maps = lambda x: x.transpose(1, 2).reshape(2, 8, 4, 4)  # noqa: E731
    expected = representation_compensation_loss(maps(tv), maps(sv))
    torch.testing.assert_close(d(tv, tt, sv, st).total, expected)
    torch.testing.assert_close(d(maps(tv), tt, maps(sv), st).total, expected)
    ft, fs = [torch.randn(2, 4, 8, 8)], [torch.randn(2, 4, 8, 8)]
    both = d(tv, tt, sv, st, teacher_features=ft, student_features=fs).total
    torch.testing.assert_close(both, (expected + representation_compensation_loss(ft, fs)) / 2)
    # non-square token grids need spatial_shape
    tv2, tt2, sv2, st2 = _features(hw=8)
    with pytest.raises(ValueError, match="spatial_shape"):
        d(tv2, tt2, sv2, st2)
    assert bool(torch.isfinite(d(tv2, tt2, sv2, st2, spatial_shape=(2, 4)).total))


# ----------------------------------------------------------------------------------------------------
# The common interface


def _features(b=2, hw=6, d=8, nc=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    tv = torch.randn(b, hw, d, generator=g)
    tt = torch.randn(nc, d, generator=g)
    sv = (tv + 0.3 * torch.randn(b, hw, d, generator=g)).requires_grad_(True)
    st = (tt + 0.3 * torch.randn(nc, d, generator=g)).requires_grad_(True)
    return tv, tt, sv, st


@pytest.mark.parametrize("name", sorted(DISTILLERS))
def test_switch_by_name_same_call(name):
    torch.manual_seed(0)
    distiller = make_distiller(name, 8)
    tv, tt, sv, st = _features(hw=16)
    tv.requires_grad_(True)
    tt.requires_grad_(True)
    extras = {
        "teacher_features": [torch.randn(2, 4, 4, 4)],
        "student_features": [torch.randn(2, 4, 4, 4, requires_grad=True)],
        "teacher_logits": torch.randn(2, 16, 3),
        "student_logits": torch.randn(2, 16, 3, requires_grad=True),
        "teacher_image_embedding": torch.randn(2, 8),
        "student_image_embedding": torch.randn(2, 8, requires_grad=True),
        "spatial_shape": (4, 4),
    }
    out = distiller(tv, tt, sv, st, **extras)
    assert isinstance(out, DistillationOutput)
    assert out.total.shape == () and bool(torch.isfinite(out.total))
    task = sv.square().mean()
    (task + out.total).backward()
    assert tv.grad is None and tt.grad is None  # teachers never get gradients
    if name == "none":
        assert float(out.total) == 0.0 and distiller.parameter_groups() == []
    else:
        assert float(out.total.detach()) != 0.0
    if name == "infoclip":
        assert isinstance(distiller, InfoCLIPLoss) and len(distiller.parameter_groups(lr=1e-3)) == 1


def test_student_gets_gradients_from_each_baseline():
    for name in ("kl", "maft", "maftplus"):
        tv, tt, sv, st = _features(hw=16)
        make_distiller(name, 8, weight=1.0).forward(tv, tt, sv, st).total.backward()
        assert sv.grad is not None and bool(sv.grad.abs().sum() > 0), name


def test_make_distiller_errors():
    with pytest.raises(ValueError, match="unknown distiller 'kd'"):
        make_distiller("kd", 8)
    with pytest.raises(TypeError):
        make_distiller("kl", 8, lambda_compress=1.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        make_distiller("none", 8)(*_features(), logits=None)


def test_baselines_check_inputs():
    tv, tt, sv, st = _features()
    for name in ("none", "kl", "maft", "maftplus"):
        d = make_distiller(name, 8)
        with pytest.raises(ValueError, match="same batch size"):
            d(tv, tt, sv[:1], st)
        with pytest.raises(ValueError, match="embed_dim=16"):
            make_distiller(name, 16)(tv, tt, sv, st)
    bad = sv.detach().clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        make_distiller("kl", 8)(tv, tt, bad, st)
    with pytest.raises(ValueError, match="temperature"):
        kl_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        kl_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="number of"):
        representation_compensation_loss([torch.zeros(1, 1, 2, 2)], [])


# ----------------------------------------------------------------------------------------------------
# The Distiller door: forward validates once, distill gets the validated inputs and its own extras


def test_distill_gets_validated_tokens_grids_and_its_extras():
    from infoclip import Distiller, DistillerInputs

    class Recorder(Distiller):
        name = "recorder"

        def distill(self, inputs, *, teacher_logits=None, **extras):
            self.seen = (inputs, teacher_logits, extras)
            return DistillationOutput(total=inputs.student_visual.sum())

    d = Recorder(8)
    tmap, smap = torch.randn(2, 8, 2, 3), torch.randn(2, 8, 2, 3)
    text = torch.randn(4, 8)
    logits = torch.randn(2, 6, 4)
    out = d(tmap, text, smap.flatten(2).transpose(1, 2), text, teacher_logits=logits, spatial_shape=(2, 3))
    inputs, got_logits, extras = d.seen
    assert isinstance(inputs, DistillerInputs)
    # maps become tokens (B, HW, d) with the token of pixel (h, w) at h * W + w; the grid of a map is kept
    assert torch.equal(inputs.teacher_visual, tmap.flatten(2).transpose(1, 2))
    assert torch.equal(inputs.student_visual, smap.flatten(2).transpose(1, 2))
    assert (inputs.teacher_grid, inputs.student_grid) == ((2, 3), None)
    assert got_logits is logits and extras == {"spatial_shape": (2, 3)}
    assert torch.equal(out.total, smap.sum())
    with pytest.raises(TypeError, match=r"unexpected keyword input\(s\) \['logit'\]"):
        d(tmap, text, smap, text, logit=logits)
    with pytest.raises(ValueError, match="same batch size"):
        d(tmap, text, smap[:1], text)

    class Unfinished(Distiller):
        name = "unfinished"

    with pytest.raises(NotImplementedError, match="Unfinished must define distill"):
        Unfinished(8)(tmap, text, smap, text)
