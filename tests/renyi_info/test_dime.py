"""DiME (difference of matrix-based entropies) against a plain float64 re-statement of its definition.

The reference below is written from the definition (Skean et al. 2023): the mean over pairings of the
joint entropy of ``K_X o P K_Y P^T`` (trace-normalised), minus that of the true pairing, with the kernels
and spectra of the suite's float64 reference (``tests/reference.py``: Grams built entry by entry). It
shares no code with ``renyi_info``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import reference
import renyi_info as ri
from renyi_info import matrix

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
INF = float("inf")
ALPHAS = [0.5, 1.0, 2.0, 3.0, INF]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _joint_values(kx: np.ndarray, ky: np.ndarray, alpha: float, perms) -> np.ndarray:
    """The joint entropy of ``kx o P ky P^T`` for each permutation (the building block of DiME)."""
    return np.array([reference.matrix_entropy(kx * ky[np.ix_(p, p)], alpha) for p in perms])


def _dime(kx: np.ndarray, ky: np.ndarray, alpha: float, perms=None) -> float:
    """DiME in nats by its definition; ``perms=None``: all n! pairings."""
    n = kx.shape[0]
    perms = list(itertools.permutations(range(n))) if perms is None else perms
    return float(_joint_values(kx, ky, alpha, perms).mean() - reference.matrix_entropy(kx * ky, alpha))


def _features(seed: int, n: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _structured(seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Random, rank-deficient (n > d), duplicated rows and a zero row (cosine: a sample with no mass)."""
    x, y = _features(seed, 5, 4), _features(seed + 1, 5, 3)
    low_x, low_y = _features(seed + 2, 5, 2), _features(seed + 3, 5, 1) + 0.3
    dup_x, dup_y = x.copy(), y.copy()
    dup_x[3] = dup_x[0]
    dup_y[4] = dup_y[1]
    dup_y[3] = dup_y[0]
    zero_y = y.copy()
    zero_y[2] = 0.0
    return [
        ("random", x, y),
        ("rank-deficient", low_x, low_y),
        ("duplicated", dup_x, dup_y),
        ("zero row", x, zero_y),
    ]


# --- agreement with the definition ---------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("case", range(4), ids=["random", "rank-deficient", "duplicated", "zero-row"])
def test_matches_the_definition_cosine(alpha: float, case: int) -> None:
    """Exact over all 5! pairings, in nats and in bits, for random and structured inputs."""
    _, x, y = _structured(10 * case)[case]
    expected = _dime(reference.kernel(x, "cosine"), reference.kernel(y, "cosine"), alpha)
    got = ri.dime(torch.from_numpy(x), torch.from_numpy(y), alpha=alpha, base=math.e)
    # float64 throughout; every Gram here has its non-zero eigenvalues above 1e-3 of the largest, so the
    # entropies are well conditioned and agree to a few ulps of log n (rank-deficient ones included: both
    # sides drop the round-off of the exact zeros)
    assert got.dtype == F64
    assert float(got) == pytest.approx(expected, abs=1e-10)
    bits = ri.dime(torch.from_numpy(x), torch.from_numpy(y), alpha=alpha)
    assert float(bits) == pytest.approx(expected / math.log(2), abs=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, INF])
def test_matches_the_definition_gaussian_and_mixed_kernels(alpha: float) -> None:
    x, y = _features(3, 6, 2), _features(4, 6, 3)
    expected = _dime(reference.kernel(x, "gaussian", sigma=1.3), reference.kernel(y, "cosine"), alpha)
    got = ri.dime(
        torch.from_numpy(x),
        torch.from_numpy(y),
        alpha=alpha,
        kernel=("gaussian", "cosine"),
        sigma=(1.3, None),
        base=math.e,
    )
    assert float(got) == pytest.approx(expected, abs=1e-10)  # float64, well-conditioned Grams (see above)


@pytest.mark.parametrize("method", ["eig", "frobenius", "auto"])
def test_every_exact_method_agrees_at_alpha_2(method: str) -> None:
    x, y = _features(5, 6, 3), _features(6, 6, 4)
    expected = _dime(reference.kernel(x, "cosine"), reference.kernel(y, "cosine"), 2.0)
    got = ri.dime(torch.from_numpy(x), torch.from_numpy(y), method=method, base=math.e)
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_power_method_at_alpha_3() -> None:
    x, y = _features(7, 5, 3), _features(8, 5, 2)
    expected = _dime(reference.kernel(x, "cosine"), reference.kernel(y, "cosine"), 3.0)
    got = ri.dime(torch.from_numpy(x), torch.from_numpy(y), alpha=3.0, method="power", base=math.e)
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_exact_equals_the_enumeration() -> None:
    """'auto' at n <= 7 and 'exact' both average over every pairing: the same value as the enumeration."""
    x, y = _features(11, 6, 3), _features(12, 6, 3)
    expected = _dime(reference.kernel(x, "cosine"), reference.kernel(y, "cosine"), 1.0)  # 720 pairings
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    auto = ri.dime(tx, ty, alpha=1.0, base=math.e)
    exact = ri.dime(tx, ty, alpha=1.0, base=math.e, permutations="exact")
    assert float(auto) == float(exact)  # the same pairings in the same order: bit-identical
    assert float(exact) == pytest.approx(expected, abs=1e-10)
    # the generator plays no part in an exact mean
    assert float(ri.dime(tx, ty, alpha=1.0, base=math.e, generator=_gen(3))) == float(auto)


def test_exact_at_n_8() -> None:
    """'exact' is offered up to n = 8 (40320 pairings), beyond the automatic enumeration."""
    x, y = _features(13, 8, 3), _features(14, 8, 2)
    kx, ky = reference.kernel(x, "cosine"), reference.kernel(y, "cosine")
    # alpha = 2 in closed form (S_2 = 2 log tr K - log ||K||_F^2), vectorised over all pairings
    perms = np.array(list(itertools.permutations(range(8))))
    shuffled = ky[perms[:, :, None], perms[:, None, :]] * kx
    s2 = 2 * np.log(np.einsum("pii->p", shuffled)) - np.log((shuffled**2).sum((1, 2)))
    joint = kx * ky
    expected = s2.mean() - (2 * math.log(np.trace(joint)) - math.log((joint**2).sum()))
    got = ri.dime(torch.from_numpy(x), torch.from_numpy(y), permutations="exact", base=math.e)
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_matrix_level_equals_feature_level() -> None:
    x = torch.randn(2, 6, 3, generator=_gen(1), dtype=F64)
    y = torch.randn(2, 6, 5, generator=_gen(2), dtype=F64)
    for alpha in (1.0, 2.0):
        by_features = ri.dime(x, y, alpha=alpha, kernel="gaussian", sigma=1.5)
        by_grams = matrix.dime(
            ri.gram(x, "gaussian", sigma=1.5), ri.gram(y, "gaussian", sigma=1.5), alpha=alpha
        )
        # the same Grams up to rounding of the normalisation (float64): a few ulps of the entropies
        torch.testing.assert_close(by_grams, by_features, rtol=0, atol=1e-12)
    # a sampled mean with the same seed draws the same pairings at both levels
    z = torch.randn(11, 4, generator=_gen(3), dtype=F64)
    w = torch.randn(11, 2, generator=_gen(4), dtype=F64)
    torch.testing.assert_close(
        matrix.dime(ri.gram(z), ri.gram(w), permutations=50, generator=_gen(9)),
        ri.dime(z, w, permutations=50, generator=_gen(9)),
        rtol=0,
        atol=1e-12,
    )


# --- sampled pairings ------------------------------------------------------------------------------


def test_sampled_estimate_converges_to_the_exact_value() -> None:
    """Pairings drawn uniformly with replacement give an unbiased mean; its error obeys the standard error.

    n = 6: the 720 per-pairing joint entropies are computed by the reference, so the population standard
    deviation sigma of one draw is known exactly. Each sampled estimate with k draws has standard error
    sigma / sqrt(k); 20 seeded estimates must each lie within 5 standard errors (two-sided probability
    6e-7 each under the central limit theorem) and their mean within 5 standard errors of the mean.
    """
    x, y = _features(21, 6, 2), _features(22, 6, 2)
    y = y + 0.8 * x  # dependent views, so that the pairings' entropies spread
    kx, ky = reference.kernel(x, "cosine"), reference.kernel(y, "cosine")
    values = _joint_values(kx, ky, 1.0, list(itertools.permutations(range(6))))
    exact = float(values.mean() - reference.matrix_entropy(kx * ky, 1.0))
    sigma = float(values.std())
    assert sigma > 1e-3  # the check below is not vacuous
    k, seeds = 400, 20
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    estimates = np.array(
        [
            float(ri.dime(tx, ty, alpha=1.0, base=math.e, permutations=k, generator=_gen(s)))
            for s in range(seeds)
        ]
    )
    se = sigma / math.sqrt(k)
    assert np.all(np.abs(estimates - exact) <= 5 * se), (estimates - exact) / se
    assert abs(estimates.mean() - exact) <= 5 * se / math.sqrt(seeds)
    assert estimates.std() > 0  # different seeds draw different pairings


def test_same_seed_same_value_and_global_generator() -> None:
    x = torch.randn(12, 3, generator=_gen(1), dtype=F64)
    y = torch.randn(12, 3, generator=_gen(2), dtype=F64)
    a = ri.dime(x, y, generator=_gen(5))  # auto above n = 7: 128 sampled pairings
    b = ri.dime(x, y, generator=_gen(5))
    c = ri.dime(x, y, generator=_gen(6))
    assert float(a) == float(b)
    assert float(a) != float(c)
    torch.manual_seed(0)
    d = ri.dime(x, y, permutations=10)
    torch.manual_seed(0)
    assert float(ri.dime(x, y, permutations=10)) == float(d)  # None: torch's global generator


def test_sampled_matches_the_definition_for_the_drawn_pairings() -> None:
    """The sampled estimate is the reference mean over exactly the pairings the generator draws."""
    from renyi_info.algorithms.pairings import sample_permutations

    x, y = _features(31, 9, 3), _features(32, 9, 2)
    perms = sample_permutations(9, 37, _gen(4), torch.device("cpu")).numpy()
    assert all(sorted(p) == list(range(9)) for p in perms)  # every row is a permutation
    expected = _dime(
        reference.kernel(x, "cosine"), reference.kernel(y, "cosine"), 0.5, [list(p) for p in perms]
    )
    got = ri.dime(
        torch.from_numpy(x), torch.from_numpy(y), alpha=0.5, permutations=37, generator=_gen(4), base=math.e
    )
    assert float(got) == pytest.approx(expected, abs=1e-10)


# --- the properties that make DiME a dependence measure --------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_zero_in_expectation_for_independent_views(alpha: float) -> None:
    """For independent x and y the true pairing is distributed as a shuffled one, so E[DiME] = 0 exactly.

    500 independent data sets (n = 5, exact mean over pairings): the sample mean of DiME lies within 4
    standard errors of 0 (two-sided probability 6e-5 under the CLT). A dependent pair (y = x + small noise)
    is far above the same band, so the test has power.
    """
    g = _gen(int(alpha * 10))
    m = 500
    x = torch.randn(m, 5, 3, generator=g, dtype=F64)
    y = torch.randn(m, 5, 3, generator=g, dtype=F64)
    values = ri.dime(x, y, alpha=alpha)
    mean, se = float(values.mean()), float(values.std()) / math.sqrt(m)
    assert se > 0
    assert abs(mean) <= 4 * se, (mean, se)
    dependent = ri.dime(x, x + 0.3 * y, alpha=alpha)
    assert float(dependent.mean()) > 20 * se


@pytest.mark.parametrize("alpha", ALPHAS)
def test_orthogonal_student_scores_zero_against_any_teacher(alpha: float) -> None:
    """An identity Gram is the same under every shuffle, so every pairing gives the same joint Gram."""
    g = _gen(3)
    q, _ = torch.linalg.qr(torch.randn(512, 512, generator=g, dtype=F64))
    for n in (4, 10):  # exact (4! pairings) and sampled (128)
        student = q[:n]  # orthonormal rows
        teacher = torch.randn(3, n, 512, generator=g, dtype=F64)
        teacher[1] = teacher[1, :1] + 0.1 * teacher[1]  # a nearly rank-one teacher
        d = ri.dime(teacher, student.expand(3, n, 512), alpha=alpha, generator=_gen(1))
        # every term is the entropy of diag(K_T)/n = I/n up to the round-off (1e-16) of the student's
        # off-diagonal cosines, which moves the eigenvalues of I/n (well separated from 0) by as much
        torch.testing.assert_close(d, torch.zeros_like(d), rtol=0, atol=1e-12)
        d = ri.dime(student, teacher[0], alpha=alpha, generator=_gen(1))  # symmetric in the roles
        assert abs(float(d)) < 1e-12
    # an exact identity Gram: every pairing gives the same joint Gram bit for bit, and only the summation
    # of the 720 equal terms rounds (720 eps log 6 ~ 3e-13 at most)
    teacher = torch.randn(2, 6, 5, generator=g, dtype=F64)
    d = ri.dime(teacher, torch.eye(6, dtype=F64).expand(2, 6, 6), alpha=alpha)
    torch.testing.assert_close(d, torch.zeros_like(d), rtol=0, atol=3e-13)


@pytest.mark.parametrize("seed", range(5))
def test_teacher_beats_shuffled_teacher_at_alpha_2(seed: int) -> None:
    r"""At alpha = 2, DiME(X; X) >= DiME(X; X_sigma) for every shuffle sigma (a theorem).

    Both share the expected term (a uniform pairing composed with sigma is uniform), and with unit
    diagonals $S_2(K\circ K^\sigma) = 2\log n - \log\sum_{ij}K_{ij}^2K_{\sigma_i\sigma_j}^2$, where by
    Cauchy-Schwarz $\sum K_{ij}^2K_{\sigma_i\sigma_j}^2 \le \sum K_{ij}^4$: the true pairing has the lowest
    joint entropy. Strict for generic data.
    """
    g = _gen(seed)
    x = torch.randn(6, 20, generator=g, dtype=F64)
    sigma = torch.randperm(6, generator=g)
    while bool((sigma == torch.arange(6)).all()):
        sigma = torch.randperm(6, generator=g)
    same = ri.dime(x, x)
    shuffled = ri.dime(x, x[sigma])
    assert float(same) > float(shuffled) + 1e-6


def test_two_clusters_ranking() -> None:
    """N = 8 samples in two clusters, d = 512: DiME ranks the teacher itself and a student with the same
    clusters far above a shuffled teacher (here each cluster split in half: below zero), a noise student
    (near zero) and an orthogonal one (zero), where the matrix mutual information ranks the last two first."""
    g = _gen(0)
    centres = torch.randn(2, 512, generator=g, dtype=F64)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    teacher = centres[labels] + 0.5 * torch.randn(8, 512, generator=g, dtype=F64)
    same_clusters = centres[labels] + 0.5 * torch.randn(8, 512, generator=g, dtype=F64)
    shuffled = teacher[torch.tensor([0, 4, 1, 5, 2, 6, 3, 7])]  # each cluster split in half
    noise = torch.randn(8, 512, generator=g, dtype=F64)
    orthogonal = torch.linalg.qr(torch.randn(512, 8, generator=g, dtype=F64)).Q.mT
    for alpha in (1.0, 2.0):
        score = {
            name: float(ri.dime(teacher, s, alpha=alpha, permutations="exact"))
            for name, s in [
                ("teacher", teacher),
                ("same clusters", same_clusters),
                ("shuffled", shuffled),
                ("noise", noise),
                ("orthogonal", orthogonal),
            ]
        }
        assert abs(score["orthogonal"]) < 1e-12  # exactly 0 up to the round-off of the QR rows (see above)
        for unrelated in ("shuffled", "noise", "orthogonal"):
            assert min(score["teacher"], score["same clusters"]) > score[unrelated] + 0.25
        assert abs(score["noise"]) < 0.01  # independent of the teacher: near its expectation, 0


# --- gradients, batches, dtypes --------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gradcheck(alpha: float) -> None:
    x = torch.randn(4, 3, generator=_gen(1), dtype=F64, requires_grad=True)
    y = torch.randn(4, 2, generator=_gen(2), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ri.dime(a, b, alpha=alpha), (x, y))


def test_gradcheck_sampled_and_matrix_level() -> None:
    x = torch.randn(2, 9, 3, generator=_gen(3), dtype=F64, requires_grad=True)
    y = torch.randn(2, 9, 2, generator=_gen(4), dtype=F64, requires_grad=True)
    # a fresh seeded generator per call: the same pairings at every evaluation of gradcheck
    assert torch.autograd.gradcheck(
        lambda a, b: ri.dime(a, b, kernel="gaussian", sigma=1.0, permutations=6, generator=_gen(0)), (x, y)
    )
    ka = ri.gram(x.detach(), "gaussian", sigma=1.0).requires_grad_()
    kb = ri.gram(y.detach(), "gaussian", sigma=1.0).requires_grad_()

    def sym(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # perturb within symmetric matrices
        return matrix.dime((a + a.mT) / 2, (b + b.mT) / 2, alpha=1.0, permutations=5, generator=_gen(0))

    assert torch.autograd.gradcheck(sym, (ka, kb))


def test_batch_equals_loop() -> None:
    x = torch.randn(2, 3, 6, 4, generator=_gen(1), dtype=F64)
    y = torch.randn(2, 3, 6, 2, generator=_gen(2), dtype=F64)
    batched = ri.dime(x, y, alpha=1.0)
    assert batched.shape == (2, 3)
    looped = torch.stack(
        [torch.stack([ri.dime(x[i, j], y[i, j], alpha=1.0) for j in range(3)]) for i in range(2)]
    )
    torch.testing.assert_close(batched, looped, rtol=0, atol=1e-13)  # same sums, other batching: ulps
    # sampled: every batch entry uses the same pairings, so a loop with the same seed per entry agrees
    x, y = (
        torch.randn(3, 9, 4, generator=_gen(3), dtype=F64),
        torch.randn(3, 9, 2, generator=_gen(4), dtype=F64),
    )
    batched = ri.dime(x, y, permutations=20, generator=_gen(7))
    looped = torch.stack([ri.dime(x[i], y[i], permutations=20, generator=_gen(7)) for i in range(3)])
    torch.testing.assert_close(batched, looped, rtol=0, atol=1e-13)


def test_many_pairings_are_chunked_without_changing_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of pairings (recomputed in the backward pass when a gradient is needed) give the same value
    and gradient as one pass over all pairings."""
    from renyi_info.algorithms import pairings

    def value_and_grads(alpha: float) -> tuple[torch.Tensor, ...]:
        x = torch.randn(2, 7, 3, generator=_gen(1), dtype=F64, requires_grad=True)
        y = torch.randn(2, 7, 3, generator=_gen(2), dtype=F64, requires_grad=True)
        d = ri.dime(x, y, alpha=alpha)
        gx, gy = torch.autograd.grad(d.sum(), (x, y))
        return d.detach(), gx, gy

    whole = {alpha: value_and_grads(alpha) for alpha in (1.0, 2.0)}
    monkeypatch.setattr(pairings, "CHUNK_ENTRIES", 7 * 7 * 2 * 100)  # 5040 pairings in chunks of 100
    for alpha in (1.0, 2.0):
        for got, expected in zip(value_and_grads(alpha), whole[alpha]):
            # the same terms summed in another grouping: a few ulps
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    x = torch.randn(2, 9, 3, generator=_gen(3), dtype=F64, requires_grad=True)
    y = torch.randn(2, 9, 2, generator=_gen(4), dtype=F64, requires_grad=True)
    monkeypatch.setattr(pairings, "CHUNK_ENTRIES", 9 * 9 * 2 * 2)  # chunks of 2 pairings, recomputed
    assert torch.autograd.gradcheck(lambda a, b: ri.dime(a, b, permutations=5, generator=_gen(0)), (x, y))


def test_float32_inputs() -> None:
    x = torch.randn(6, 5, generator=_gen(1))
    y = torch.randn(6, 3, generator=_gen(2))
    got = ri.dime(x, y, alpha=1.0)
    assert got.dtype == torch.float32
    ref = ri.dime(x.double(), y.double(), alpha=1.0)
    # alpha = 1 is computed in float64 (the precision rule); the float32 features differ from their
    # float64 copies by nothing, so only the final cast rounds
    torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=1e-6)
    got2 = ri.dime(x, y)  # alpha = 2 in float32: Frobenius sums of 36 entries, relative error ~1e-6
    torch.testing.assert_close(got2.double(), ri.dime(x.double(), y.double()), rtol=0, atol=1e-5)


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permutations", "error", "match"),
    [
        (0, ValueError, r"permutations must be >= 1"),
        (-3, ValueError, r"permutations must be >= 1"),
        (2.5, TypeError, r"permutations must be None or 'auto'.*got 2.5"),
        (True, TypeError, r"permutations must be None or 'auto'.*got True"),
        ("all", TypeError, r"permutations must be None or 'auto'.*got 'all'"),
    ],
)
def test_bad_permutations(permutations: object, error: type, match: str) -> None:
    x = torch.randn(5, 3, generator=_gen(1))
    with pytest.raises(error, match=match):
        ri.dime(x, x, permutations=permutations)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        matrix.dime(ri.gram(x), ri.gram(x), permutations=permutations)  # type: ignore[arg-type]


def test_check_permutations_is_the_rule_of_the_doors() -> None:
    from renyi_info.gram_level import check_permutations

    for ok in (None, "auto", "exact"):
        assert check_permutations(ok) == ok
    got = check_permutations(np.int64(12))
    assert got == 12 and type(got) is int  # a count comes back as a plain int
    x = torch.randn(5, 3, generator=_gen(1))
    for bad in (0, 2.5, True, "all"):
        with pytest.raises((TypeError, ValueError)) as rule:
            check_permutations(bad)
        with pytest.raises(rule.type) as door:
            ri.dime(x, x, permutations=bad)  # type: ignore[arg-type]
        assert str(door.value) == str(rule.value)  # the door raises the rule's own error


def test_absurd_sampled_counts_are_refused_before_any_allocation() -> None:
    from renyi_info.algorithms.pairings import SAMPLED_MAX_ENTRIES

    x = torch.randn(9, 3, generator=_gen(1))
    limit = SAMPLED_MAX_ENTRIES // 9
    for door in (
        lambda k: ri.dime(x, x, permutations=k),
        lambda k: matrix.dime(ri.gram(x), ri.gram(x), permutations=k),
    ):
        with pytest.raises(
            ValueError, match=rf"permutations={10**12} sampled pairings of n = 9.*at most {limit}"
        ):
            door(10**12)  # a (10^12, 9) table would be 72 TB: refused at once, not by the allocator
    assert bool(torch.isfinite(ri.dime(x, x, permutations=3, generator=_gen(2))))  # small counts still run


def test_exact_refused_above_n_8() -> None:
    x = torch.randn(9, 3, generator=_gen(1))
    with pytest.raises(
        ValueError, match=r"permutations='exact'.*up to n = 8.*got n = 9.*permutations=<count>"
    ):
        ri.dime(x, x, permutations="exact")


@pytest.mark.parametrize("generator", [0, "seed", np.random.default_rng(0)])
def test_bad_generator(generator: object) -> None:
    x = torch.randn(5, 3, generator=_gen(1))
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        ri.dime(x, x, generator=generator)  # type: ignore[arg-type]


def test_lanczos_and_bad_inputs_refused() -> None:
    x = torch.randn(5, 3, generator=_gen(1))
    with pytest.raises(ValueError, match=r"method='lanczos' is not available for DiME"):
        ri.dime(x, x, method="lanczos")
    with pytest.raises(ValueError, match=r"method='frobenius' computes alpha = 2 only"):
        ri.dime(x, x, alpha=1.0, method="frobenius")
    with pytest.raises(ValueError, match=r"same batch shape and number of samples"):
        ri.dime(x, x[:4])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"y contains 1 non-finite"):
        ri.dime(x, bad)
    with pytest.raises(ValueError, match=r"alpha must be > 0"):
        ri.dime(x, x, alpha=0.0)
