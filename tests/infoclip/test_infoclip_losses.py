"""InfoCLIP losses against independent float64 references of Eqs. 8-11, gradient routing, invariances,
gradcheck and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from infoclip import (
    CompressionLoss,
    DistillationLoss,
    DistillationOutput,
    InfoCLIPLoss,
    compression_loss,
    distillation_loss,
)
from infoclip_reference import (
    ref_cosine_gram,
    ref_grams,
    ref_lc_eig,
    ref_lc_eq9,
    ref_ld_eig,
    ref_ld_eq11,
    ref_renyi_eig,
)


def _data(b=5, hw=6, d=8, nc=4, per_sample_text=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(b, hw, d, generator=g, dtype=dtype)
    t = torch.randn(*((b,) if per_sample_text else ()), nc, d, generator=g, dtype=dtype)
    r = torch.randn(b, hw, nc, generator=g, dtype=dtype)
    return v, t, r


@pytest.mark.parametrize("gram_over", ["batch", "tokens"])
@pytest.mark.parametrize("per_sample_text", [True, False])
def test_compression_matches_eq9(gram_over, per_sample_text):
    v, t, r = _data(per_sample_text=per_sample_text)
    got = compression_loss(v, t, r, gram_over=gram_over)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(
        ref_lc_eq9(v.numpy(), t.numpy(), r.numpy(), gram_over), rel=1e-10, abs=1e-10
    )


@pytest.mark.parametrize("gram_over", ["batch", "tokens"])
def test_distillation_matches_eq11(gram_over):
    _, _, rt = _data(seed=1)
    _, _, rs = _data(seed=2)
    got = distillation_loss(rt, rs, gram_over=gram_over)
    assert float(got) == pytest.approx(ref_ld_eq11(rt.numpy(), rs.numpy(), gram_over), rel=1e-10, abs=1e-10)


def test_float32_inputs_give_float32_close_to_reference():
    v, t, r = _data(dtype=torch.float32)
    got = compression_loss(v, t, r)
    assert got.dtype == torch.float32
    ref = ref_lc_eq9(v.double().numpy(), t.double().numpy(), r.double().numpy())
    assert float(got) == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 3.0, 5.0])
@pytest.mark.parametrize("gram_over", ["batch", "tokens"])
def test_alpha_not_two_matches_eigenvalue_reference(alpha, gram_over):
    v, t, r = _data(b=4, hw=3, per_sample_text=True)
    rs = _data(b=4, hw=3, seed=3)[2]
    lc = compression_loss(v, t, r, alpha=alpha, gram_over=gram_over)
    ld = distillation_loss(r, rs, alpha=alpha, gram_over=gram_over)
    assert float(lc) == pytest.approx(ref_lc_eig(v.numpy(), t.numpy(), r.numpy(), alpha, gram_over), abs=1e-8)
    assert float(ld) == pytest.approx(ref_ld_eig(r.numpy(), rs.numpy(), alpha, gram_over), abs=1e-8)


def test_alpha_two_eig_reference_agrees_with_frobenius_form():
    # the two references agree with each other (Frobenius identity), so Eq. 9 == Eq. 8 at alpha = 2
    v, t, r = _data()
    assert ref_lc_eq9(v.numpy(), t.numpy(), r.numpy()) == pytest.approx(
        ref_lc_eig(v.numpy(), t.numpy(), r.numpy(), 2.0), abs=1e-10
    )


def test_base_changes_units_only():
    v, t, r = _data()
    bits = compression_loss(v, t, r)
    nats = compression_loss(v, t, r, base=math.e)
    assert float(nats) == pytest.approx(float(bits) * math.log(2), rel=1e-12)


def test_shared_text_equals_text_repeated_per_sample():
    v, t, r = _data(per_sample_text=False)
    repeated = t.expand(v.shape[0], *t.shape)
    for gram_over in ("batch", "tokens"):
        a = compression_loss(v, t, r, gram_over=gram_over)
        b = compression_loss(v, repeated, r, gram_over=gram_over)
        assert float(a) == pytest.approx(float(b), abs=1e-12)


def test_shared_text_drops_out():
    # all-ones text Gram is the Hadamard identity: L_c = S(G_R) - S(G_V, G_R)
    v, t, r = _data(per_sample_text=False)
    kv, _, kr = ref_grams(v.numpy(), t.numpy(), r.numpy(), "batch")
    expected = ref_renyi_eig(kr, 2.0) - ref_renyi_eig(kv * kr, 2.0)
    assert float(compression_loss(v, t, r)) == pytest.approx(expected, abs=1e-10)


def test_distillation_of_identical_maps_is_minus_entropy():
    # I(R; R) = S(R) + S(R) - S(R o R); for alpha = 2 a closed form from the reference
    _, _, r = _data()
    k = ref_cosine_gram(r.numpy().reshape(r.shape[0], -1))
    expected = -(2 * ref_renyi_eig(k, 2.0) - ref_renyi_eig(k * k, 2.0))
    assert float(distillation_loss(r, r)) == pytest.approx(expected, abs=1e-10)


def test_layouts_agree():
    v, t, r = _data(hw=6)
    maps = v.transpose(1, 2).reshape(v.shape[0], v.shape[2], 2, 3)
    for gram_over in ("batch", "tokens"):
        assert float(compression_loss(maps, t, r, gram_over=gram_over)) == pytest.approx(
            float(compression_loss(v, t, r, gram_over=gram_over)), abs=1e-12
        )


@pytest.mark.parametrize("gram_over", ["batch", "tokens"])
def test_permuting_the_batch_leaves_losses_unchanged(gram_over):
    v, t, r = _data(b=6)
    rs = _data(b=6, seed=4)[2]
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(1))
    assert float(compression_loss(v[perm], t[perm], r[perm], gram_over=gram_over)) == pytest.approx(
        float(compression_loss(v, t, r, gram_over=gram_over)), abs=1e-10
    )
    assert float(distillation_loss(r[perm], rs[perm], gram_over=gram_over)) == pytest.approx(
        float(distillation_loss(r, rs, gram_over=gram_over)), abs=1e-10
    )


def test_rescaling_features_leaves_losses_unchanged():
    v, t, r = _data()
    rs = _data(seed=5)[2]
    # per-sample positive scales: the cosine kernel normalises every sample
    sv = torch.rand(v.shape[0], 1, 1, dtype=v.dtype) * 10 + 0.1
    for gram_over in ("batch", "tokens"):
        base_c = compression_loss(v, t, r, gram_over=gram_over)
        base_d = distillation_loss(r, rs, gram_over=gram_over)
        assert float(compression_loss(v * sv, t * 3.0, r * 0.01, gram_over=gram_over)) == pytest.approx(
            float(base_c), abs=1e-10
        )
        assert float(distillation_loss(r * sv, rs * 7.0, gram_over=gram_over)) == pytest.approx(
            float(base_d), abs=1e-10
        )


def test_module_equals_functional():
    v, t, r = _data()
    rs = _data(seed=6)[2]
    for kw in ({}, {"alpha": 1.5, "gram_over": "tokens"}, {"base": 10.0}):
        assert float(CompressionLoss(**kw)(v, t, r)) == float(compression_loss(v, t, r, **kw))
        assert float(DistillationLoss(**kw)(r, rs)) == float(distillation_loss(r, rs, **kw))


@pytest.mark.parametrize("gram_over", ["batch", "tokens"])
@pytest.mark.parametrize("alpha", [2.0, 1.5])
def test_gradcheck_float64(gram_over, alpha):
    v, t, r = _data(b=3, hw=2, d=3, nc=2)
    rs = _data(b=3, hw=2, d=3, nc=2, seed=7)[2]
    for x in (v, t, r, rs):
        x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v_, t_, r_: compression_loss(v_, t_, r_, alpha=alpha, gram_over=gram_over), (v, t, r)
    )
    assert torch.autograd.gradcheck(
        lambda a, b: distillation_loss(a, b, alpha=alpha, gram_over=gram_over), (r, rs)
    )


# ----------------------------------------------------------------------------------------------------
# InfoCLIPLoss: values and gradient routing


def _features(b=4, hw=9, d=16, nc=5, seed=0, per_sample_text=False, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shape_t = ((b,) if per_sample_text else ()) + (nc, d)
    tv = torch.randn(b, hw, d, generator=g, dtype=dtype)
    tt = torch.randn(*shape_t, generator=g, dtype=dtype)
    sv = (tv + 0.5 * torch.randn(b, hw, d, generator=g, dtype=dtype)).requires_grad_(True)
    st = (tt + 0.5 * torch.randn(*shape_t, generator=g, dtype=dtype)).requires_grad_(True)
    return tv, tt, sv, st


def _loss(**kw) -> InfoCLIPLoss:
    torch.manual_seed(0)
    return InfoCLIPLoss(16, **kw)


def test_infoclip_loss_values_and_output():
    loss = _loss(lambda_compress=0.7, lambda_distill=1.3)
    tv, tt, sv, st = _features()
    out = loss(tv, tt, sv, st)
    assert isinstance(out, DistillationOutput)
    assert out.teacher_alignment.shape == out.student_alignment.shape == (4, 9, 5)
    r_t, r_s = loss.lpam(tv, tt), loss.lpam(sv, st)
    torch.testing.assert_close(out.compression, compression_loss(tv, tt, r_t))
    torch.testing.assert_close(out.distillation, distillation_loss(r_t, r_s))
    torch.testing.assert_close(out.total, 0.7 * out.compression + 1.3 * out.distillation)
    assert set(out.terms) == {"loss_compress", "loss_distill"}
    ref = ref_lc_eq9(tv.double().numpy(), tt.double().numpy(), r_t.detach().double().numpy())
    assert float(out.compression.detach()) == pytest.approx(ref, abs=1e-4)


def test_teacher_inputs_get_no_gradient():
    loss = _loss()
    tv, tt, sv, st = _features(per_sample_text=True)
    tv.requires_grad_(True)
    tt.requires_grad_(True)
    loss(tv, tt, sv, st).total.backward()
    assert tv.grad is None and tt.grad is None
    assert sv.grad is not None and st.grad is not None


def _lpam_grads(loss: InfoCLIPLoss, scalar: torch.Tensor) -> dict[str, torch.Tensor]:
    params = dict(loss.lpam.named_parameters())
    grads = torch.autograd.grad(scalar, list(params.values()), retain_graph=True, allow_unused=True)
    return dict(zip(params, grads))


@pytest.mark.parametrize("part", ["compression", "distillation"])
def test_lpam_learns_from_each_loss_alone(part):
    loss = _loss()
    out = loss(*_features(per_sample_text=True))
    for name, g in _lpam_grads(loss, getattr(out, part)).items():
        assert g is not None and bool(g.abs().sum() > 0), f"{name} gets no gradient from {part}"


def test_student_gets_gradient_from_distillation_only():
    loss = _loss()
    tv, tt, sv, st = _features()
    out = loss(tv, tt, sv, st)
    g_c = torch.autograd.grad(out.compression, [sv, st], retain_graph=True, allow_unused=True)
    assert g_c == (None, None)
    g_d = torch.autograd.grad(out.distillation, [sv, st], retain_graph=True)
    assert all(bool(g.abs().sum() > 0) for g in g_d)


def test_teacher_alignment_is_not_detached():
    loss = _loss()
    tv, tt, sv, st = _features()
    out = loss(tv, tt, sv, st)
    assert out.teacher_alignment.requires_grad
    (g,) = torch.autograd.grad(out.distillation, [out.teacher_alignment], retain_graph=True)
    assert bool(g.abs().sum() > 0)
    # L_d's LPAM gradient = teacher branch + student branch, each computed with the other branch detached
    full = _lpam_grads(loss, out.distillation)
    r_t, r_s = loss.lpam(tv, tt), loss.lpam(sv, st)
    via_teacher = _lpam_grads(loss, distillation_loss(r_t, r_s.detach()))
    via_student = _lpam_grads(loss, distillation_loss(r_t.detach(), r_s))
    for name in full:
        assert bool(via_teacher[name].abs().sum() > 0), name
        torch.testing.assert_close(full[name], via_teacher[name] + via_student[name], rtol=1e-4, atol=1e-6)


def test_parameter_groups():
    loss = _loss()
    (group,) = loss.parameter_groups(lr=2e-4, weight_decay=1e-4)
    assert group["lr"] == 2e-4 and group["weight_decay"] == 1e-4
    assert {id(p) for p in group["params"]} == {id(p) for p in loss.lpam.parameters()}
    torch.optim.AdamW(loss.parameter_groups(lr=2e-4))  # accepted by an optimizer


def test_infoclip_gradcheck_through_lpam_float64():
    torch.manual_seed(0)
    loss = InfoCLIPLoss(4, gram_over="tokens").double()
    tv, tt, sv, st = _features(b=2, hw=2, d=4, nc=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: loss(tv, tt, s, st).total, (sv,))


def test_autocast_computes_losses_in_float32():
    loss = _loss()
    tv, tt, sv, st = _features()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(tv, tt, sv, st)
    assert out.total.dtype == torch.float32
    assert bool(torch.isfinite(out.total))
    ref = loss(tv, tt, sv, st).total
    assert float(out.total.detach()) == pytest.approx(float(ref.detach()), abs=0.1)


# ----------------------------------------------------------------------------------------------------
# Bad input


def test_batch_of_one_refused_for_batch_grams():
    v, t, r = _data(b=1)
    with pytest.raises(ValueError, match=r"batch size >= 2.*gram_over='tokens'"):
        compression_loss(v, t, r)
    with pytest.raises(ValueError, match="at least 2"):
        distillation_loss(r, r)
    with pytest.raises(ValueError, match="at least 2"):
        _loss()(*_features(b=1))
    # the token axis works with one image
    assert bool(torch.isfinite(compression_loss(v, t, r, gram_over="tokens")))
    assert bool(torch.isfinite(_loss(gram_over="tokens")(*_features(b=1)).total))


@pytest.mark.parametrize("where", ["teacher_visual", "student_visual", "teacher_text", "student_text"])
def test_non_finite_features_raise(where):
    feats = dict(zip(["teacher_visual", "teacher_text", "student_visual", "student_text"], _features()))
    bad = feats[where].detach().clone()
    bad.view(-1)[3] = float("nan")
    feats[where] = bad
    with pytest.raises(ValueError, match=f"{where} contains non-finite"):
        _loss()(**feats)


def test_non_finite_alignment_raises():
    v, t, r = _data()
    r[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="teacher_alignment contains non-finite"):
        compression_loss(v, t, r)
    with pytest.raises(ValueError, match="student_alignment contains non-finite"):
        distillation_loss(_data()[2], r)


def test_mismatched_teacher_and_student_raise():
    tv, tt, sv, st = _features()
    with pytest.raises(ValueError, match="same batch size"):
        _loss()(tv, tt, sv[:3], st)
    with pytest.raises(ValueError, match="same embedding dim"):
        _loss()(tv, tt, torch.randn(4, 9, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="same shape"):
        _loss()(tv, tt, sv[:, :4], st)
    with pytest.raises(ValueError, match="number of classes"):
        _loss()(tv, tt, sv, st[:3])
    with pytest.raises(ValueError, match="embed_dim=16"):
        _loss()(torch.randn(4, 9, 8), torch.randn(5, 8), torch.randn(4, 9, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(torch.randn(4, 9, 5), torch.randn(4, 9, 6))


def test_wrong_ranks_and_options_raise():
    v, t, r = _data()
    with pytest.raises(ValueError, match=r"\(B, HW, N_C\)"):
        compression_loss(v, t, r[0])
    with pytest.raises(ValueError, match="must have shape"):
        compression_loss(v, t, r[:, :3])
    with pytest.raises(ValueError, match="rank 2 or 3"):
        compression_loss(v, t[None], r)
    with pytest.raises(ValueError, match="rank 3 or 4"):
        compression_loss(v[0], t, r)
    with pytest.raises(ValueError, match="gram_over"):
        compression_loss(v, t, r, gram_over="pixels")
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(r, r, alpha=0.0)
    with pytest.raises(ValueError, match="lambda_compress"):
        InfoCLIPLoss(16, lambda_compress=-1.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        _loss()(*_features(), teacher_featurez=[])
