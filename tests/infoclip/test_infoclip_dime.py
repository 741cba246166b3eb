"""The opt-in DiME estimator of InfoCLIP's distillation loss: the library's DiME on the same Grams,
module == functional, the paper's default untouched, gradients, determinism and bad options."""

from __future__ import annotations

import math
import re

import pytest
import torch

import renyi_info as ri
from infoclip import DistillationLoss, InfoCLIPLoss, distillation_loss, make_distiller

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _maps(b: int, seed: int = 0, dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.randn(b, 6, 5, generator=g, dtype=dtype), torch.randn(b, 6, 5, generator=g, dtype=dtype)


def _eq11(rt: torch.Tensor, rs: torch.Tensor) -> torch.Tensor:
    """Eq. 11 in float64, written out: log2||G_T||^2 + log2||G_S||^2 - log2||G_TS||^2 (trace-normalised)."""

    def gram(r: torch.Tensor) -> torch.Tensor:
        z = r.reshape(r.shape[0], -1).double()
        z = z / z.norm(dim=1, keepdim=True)
        k = z @ z.T
        return k / k.trace()

    def log2_frob(a: torch.Tensor) -> torch.Tensor:
        return torch.log2((a * a).sum())

    gt, gs = gram(rt), gram(rs)
    return log2_frob(gt) + log2_frob(gs) - log2_frob((gt * gs) / (gt * gs).trace())


@pytest.mark.parametrize("b", [4, 9])
@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_dime_estimator_is_the_librarys_dime_on_the_same_features(b: int, alpha: float) -> None:
    """B = 4: exact over the 4! pairings; B = 9: 128 pairings from a generator seeded with 0 (the default)."""
    rt, rs = _maps(b)
    got = distillation_loss(rt, rs, alpha=alpha, estimator="dime")
    flat_t, flat_s = rt.reshape(b, -1), rs.reshape(b, -1)
    expected = -ri.dime(flat_t, flat_s, alpha=alpha, kernel="cosine", generator=_gen(0))
    assert float(got) == float(expected)  # the same call underneath: bit-identical
    # and with an explicit generator / number of pairings
    got = distillation_loss(rt, rs, alpha=alpha, estimator="dime", permutations=20, generator=_gen(3))
    assert float(got) == float(-ri.dime(flat_t, flat_s, alpha=alpha, permutations=20, generator=_gen(3)))


def test_tokens_axis() -> None:
    rt, rs = _maps(2, seed=1)
    got = distillation_loss(rt, rs, gram_over="tokens", estimator="dime", permutations=16)
    expected = -ri.dime(rt.reshape(-1, 5), rs.reshape(-1, 5), permutations=16, generator=_gen(0))
    assert float(got) == float(expected)


def test_default_is_the_papers_mi_bit_for_bit() -> None:
    """The default estimator is the mutual information of Eq. 11, and naming it changes nothing."""
    rt, rs = _maps(4, seed=2)
    default = distillation_loss(rt, rs)
    assert torch.equal(distillation_loss(rt, rs, estimator="mi"), default)
    torch.testing.assert_close(default, _eq11(rt, rs), rtol=0, atol=1e-12)  # float64, well conditioned
    assert torch.equal(DistillationLoss(estimator="mi")(rt, rs), default)
    assert torch.equal(DistillationLoss()(rt, rs), default)
    torch.manual_seed(0)
    a = InfoCLIPLoss(5)
    torch.manual_seed(0)
    b = InfoCLIPLoss(5, estimator="mi")
    v, t = torch.randn(4, 6, 5, dtype=F64), torch.randn(3, 5, dtype=F64)
    a, b = a.double(), b.double()
    out_a, out_b = a(v, t, v + 0.1, t), b(v, t, v + 0.1, t)
    assert torch.equal(out_a.total, out_b.total)
    assert torch.equal(out_a.distillation, out_b.distillation)
    assert "estimator" not in repr(a)


def test_module_equals_functional() -> None:
    rt, rs = _maps(9, seed=3)
    for seed in (0, 5):
        module = DistillationLoss(estimator="dime", permutations=30, seed=seed)(rt, rs)
        functional = distillation_loss(rt, rs, estimator="dime", permutations=30, generator=_gen(seed))
        assert float(module) == float(functional)
    # the default seed, 0, is the functional's default generator
    assert float(DistillationLoss(estimator="dime")(rt, rs)) == float(
        distillation_loss(rt, rs, estimator="dime")
    )
    # seed=None draws from torch's global generator
    torch.manual_seed(1)
    a = DistillationLoss(estimator="dime", permutations=30, seed=None)(rt, rs)
    torch.manual_seed(1)
    b = distillation_loss(rt, rs, estimator="dime", permutations=30, generator=torch.default_generator)
    assert float(a) == float(b)


def test_deterministic_by_default() -> None:
    rt, rs = _maps(12, seed=4)
    loss = DistillationLoss(estimator="dime")
    assert float(loss(rt, rs)) == float(loss(rt, rs))
    assert float(distillation_loss(rt, rs, estimator="dime")) == float(
        distillation_loss(rt, rs, estimator="dime")
    )


def test_infoclip_loss_with_dime() -> None:
    """InfoCLIPLoss(estimator="dime"): its L_d is -DiME of its own alignment maps; L_c is unchanged."""
    torch.manual_seed(0)
    mi = InfoCLIPLoss(5).double()
    dime_loss = make_distiller("infoclip", 5, estimator="dime", lambda_distill=0.5).double()
    dime_loss.load_state_dict(mi.state_dict())
    assert isinstance(dime_loss, InfoCLIPLoss)
    g = _gen(6)
    tv, sv = torch.randn(4, 6, 5, generator=g, dtype=F64), torch.randn(4, 6, 5, generator=g, dtype=F64)
    t = torch.randn(3, 5, generator=g, dtype=F64)
    out_mi, out = mi(tv, t, sv, t), dime_loss(tv, t, sv, t)
    assert torch.equal(out.compression, out_mi.compression)
    expected = -ri.dime(out.teacher_alignment.reshape(4, -1), out.student_alignment.reshape(4, -1))
    assert float(out.distillation.detach()) == float(expected.detach())
    assert float(out.total.detach()) == pytest.approx(
        float((out.compression + 0.5 * out.distillation).detach()), abs=1e-14
    )
    assert "estimator='dime'" in repr(dime_loss)


def test_gradcheck_float64() -> None:
    rt, rs = _maps(4, seed=7)
    rt.requires_grad_()
    rs.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: distillation_loss(a, b, estimator="dime"), (rt, rs))
    rt, rs = _maps(8, seed=8)
    rt.requires_grad_()
    rs.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: distillation_loss(a, b, alpha=1.0, estimator="dime", permutations=5), (rt, rs)
    )


def test_orthogonal_student_scores_zero_with_dime_but_maximal_mi() -> None:
    """With batch Grams, a student with orthogonal maps maximises I_2 whatever the teacher; DiME gives it 0."""
    g = _gen(9)
    centres = torch.randn(2, 6, 5, generator=g, dtype=F64)
    teacher = centres[torch.tensor([0, 0, 1, 1])] + 0.5 * torch.randn(
        4, 6, 5, generator=g, dtype=F64
    )  # 2 clusters
    q = torch.linalg.qr(torch.randn(30, 4, generator=g, dtype=F64)).Q.mT  # 4 orthonormal rows
    student = q.reshape(4, 6, 5)
    s_t = float(ri.entropy(teacher.reshape(4, -1)))
    assert float(-distillation_loss(teacher, student)) == pytest.approx(s_t, abs=1e-12)
    assert abs(float(distillation_loss(teacher, student, estimator="dime"))) < 1e-12
    # the teacher itself scores below the orthogonal student under I_2, above it under DiME
    assert float(-distillation_loss(teacher, teacher)) < s_t
    assert float(-distillation_loss(teacher, teacher, estimator="dime")) > 0.01


def test_float32_and_autocast() -> None:
    rt, rs = _maps(4, seed=10, dtype=torch.float32)
    got = distillation_loss(rt, rs, estimator="dime")
    assert got.dtype == torch.float32
    # float32 Grams of 4 samples: the alpha = 2 sums carry relative errors near 1e-6
    torch.testing.assert_close(
        got.double(), distillation_loss(rt.double(), rs.double(), estimator="dime"), rtol=0, atol=1e-5
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = distillation_loss(rt, rs, estimator="dime")
    assert under.dtype == torch.float32
    assert float(under) == float(got)


def test_invalid_estimator_and_options() -> None:
    rt, rs = _maps(4)
    with pytest.raises(ValueError, match=r"estimator must be 'mi' .* or 'dime' .*got 'DiME'"):
        distillation_loss(rt, rs, estimator="DiME")
    with pytest.raises(ValueError, match=r"estimator must be"):
        DistillationLoss(estimator="kl")
    with pytest.raises(ValueError, match=r"estimator must be"):
        InfoCLIPLoss(8, estimator=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"estimator must be"):
        make_distiller("infoclip", 8, estimator="mine")
    with pytest.raises(
        ValueError, match=r"permutations and generator choose the shuffled pairings of estimator='dime'"
    ):
        distillation_loss(rt, rs, permutations=10)
    with pytest.raises(ValueError, match=r"permutations and generator"):
        distillation_loss(rt, rs, generator=_gen(0))
    with pytest.raises(ValueError, match=r"permutations and seed"):
        InfoCLIPLoss(8, permutations=10)
    with pytest.raises(TypeError, match=r"seed must be an int .* or None"):
        DistillationLoss(estimator="dime", seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"permutations must be >= 1"):
        distillation_loss(rt, rs, estimator="dime", permutations=0)
    for bad in (0, 2.5, "all"):  # renyi_info's rule of `permutations`, word for word
        with pytest.raises((TypeError, ValueError)) as rule:
            ri.gram_level.check_permutations(bad)
        with pytest.raises(rule.type, match=f"^{re.escape(str(rule.value))}$"):
            InfoCLIPLoss(8, estimator="dime", permutations=bad)  # type: ignore[arg-type]
        with pytest.raises(rule.type, match=f"^{re.escape(str(rule.value))}$"):
            make_distiller("infoclip", 8, estimator="dime", permutations=bad)
    with pytest.raises(ValueError, match=r"permutations='exact'.*up to n = 8"):
        distillation_loss(*_maps(9), estimator="dime", permutations="exact")
    assert math.isfinite(float(distillation_loss(*_maps(8), estimator="dime", permutations="exact")))
