"""method="lanczos": stochastic Lanczos quadrature (SLQ) estimates of the matrix-based Rényi quantities.

What is checked, against the independent NumPy reference (``tests/reference.py``) or dense float64
linear algebra written here:
- the matrix-free mat-vecs equal the dense Gram times the probes for every kernel and L in {1, 2};
- the Lanczos quadrature is exact (per probe) once the Krylov space is complete (steps >= n), also for
  rank-deficient matrices (breakdown);
- with deflate >= n the estimator is deterministic and exact (the sketch spans everything);
- statistics over 20 seeds: small median relative error, the stated standard error covers the truth;
- seeding, batching, dtypes, the public API glue and the error messages.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference
import renyi_info
from renyi_info import kernels
from renyi_info.algorithms import lanczos as slq
from renyi_info.algorithms.lanczos import estimator, operators, quadrature
from renyi_info.kernels import kernel_matrix, make_kernel

F64 = torch.float64


def _x(n: int, d: int, seed: int = 0, batch: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.randn(*batch, n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _opts(seed: int = 0, **kw: int) -> slq.LanczosOptions:
    # every step in full precision (no early stop, no float32 mat-vecs): the exactness properties below hold
    # to round-off; the speed defaults are tested in test_lanczos_speed.py
    fields = {"tol": 0.0, "matvec_dtype": torch.float64, **kw}
    return slq.LanczosOptions(generator=torch.Generator().manual_seed(seed), **fields)


# --------------------------------------------------------------------------------------------------
# mat-vecs

KERNELS_1 = [
    ("cosine", {}),
    ("linear", {}),
    ("polynomial", {"degree": 2, "coef": 1.0}),
    ("polynomial", {"degree": 1, "coef": 0.0}),
    ("gaussian", {"sigma": 1.3}),
]


def _reference_gram(x: torch.Tensor, name: str, params: dict) -> np.ndarray:
    return reference.kernel(x.numpy(), name, **params)


@pytest.mark.parametrize(("name", "params"), KERNELS_1)
def test_matvec_single_kernel_equals_dense(name: str, params: dict) -> None:
    x = _x(23, 4, seed=1)
    x[3] = 0.0  # a zero row (cosine: no mass)
    op = operators.FeatureOperator([x[None]], [make_kernel(name, **params)])
    z = torch.randn(1, 23, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    k = _reference_gram(x, name, params)
    np.testing.assert_allclose(op.matmul(z)[0].numpy(), k @ z[0].numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(float(op.trace[0]), np.trace(k), rtol=1e-12)


@pytest.mark.parametrize(("first", "second"), [(0, 1), (1, 1), (2, 4), (4, 4), (0, 4), (3, 2)])
def test_matvec_hadamard_pair_equals_dense(first: int, second: int) -> None:
    (n1, p1), (n2, p2) = KERNELS_1[first], KERNELS_1[second]
    x1, x2 = _x(19, 3, seed=3), _x(19, 5, seed=4)
    op = operators.FeatureOperator([x1[None], x2[None]], [make_kernel(n1, **p1), make_kernel(n2, **p2)])
    z = torch.randn(1, 19, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
    k = _reference_gram(x1, n1, p1) * _reference_gram(x2, n2, p2)
    expected = k @ z[0].numpy()
    np.testing.assert_allclose(op.matmul(z)[0].numpy(), expected, rtol=1e-10, atol=1e-10)
    # both code paths for a pair of dot-product kernels: factored rowdot and recomputed tiles
    np.testing.assert_allclose(op._tiled_matmul(z)[0].numpy(), expected, rtol=1e-10, atol=1e-10)
    if all(f.tile.kind == kernels.TILE_DOT for f in op.factors):
        fz = operators._hadamard_dot_matmul(op.factors[0].x, op.factors[1].x, z)
        np.testing.assert_allclose(fz[0].numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(float(op.trace[0]), np.trace(k), rtol=1e-12)


def test_matvec_three_inputs_equals_dense() -> None:
    xs = [_x(21, 3, seed=30), _x(21, 2, seed=31), _x(21, 4, seed=32)]
    kinds = [KERNELS_1[4], KERNELS_1[2], KERNELS_1[0]]  # gaussian, polynomial (2, 1), cosine
    op = operators.FeatureOperator([x[None] for x in xs], [make_kernel(n, **p) for n, p in kinds])
    z = torch.randn(1, 21, 3, generator=torch.Generator().manual_seed(33), dtype=F64)
    k = np.ones((21, 21))
    for x, (name, params) in zip(xs, kinds):
        k = k * _reference_gram(x, name, params)
    np.testing.assert_allclose(op.matmul(z)[0].numpy(), k @ z[0].numpy(), rtol=1e-10, atol=1e-10)


def test_matvec_small_tiles_batched_label_and_bandwidth_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operators, "_TILE_ENTRIES", 40)  # many row tiles, uneven last tile
    x = _x(17, 3, seed=6, batch=(2,))
    labels = torch.randint(0, 3, (2, 17, 1), generator=torch.Generator().manual_seed(7)).to(F64)
    specs = [make_kernel("gaussian", sigma="median"), make_kernel("label")]
    op = operators.FeatureOperator([x, labels], specs)
    z = torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    dense = kernel_matrix(x, specs[0]) * kernel_matrix(labels, specs[1])
    torch.testing.assert_close(op.matmul(z), dense @ z, rtol=1e-10, atol=1e-10)
    # the median rule is evaluated per batch entry
    sig = renyi_info.bandwidth(x, "median")
    assert not torch.allclose(sig[0], sig[1])


# --------------------------------------------------------------------------------------------------
# quadrature


def _dense_quadratic_form(a: np.ndarray, z: np.ndarray, alpha: float) -> np.ndarray:
    lam, vec = np.linalg.eigh(a)
    lam = np.where(lam > 1e-12 * lam.max(), lam, 0.0)  # round-off eigenvalues of a low-rank matrix are 0
    if alpha == 1.0:
        f = np.where(lam > 0, -lam * np.log(np.where(lam > 0, lam, 1.0)), 0.0)
    else:
        f = (lam**alpha - lam) / (1.0 - alpha)
    proj = vec.T @ z
    return (f[:, None] * proj**2).sum(0)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.01, 3.0])
@pytest.mark.parametrize("d", [30, 3])  # full rank, rank 3 (Lanczos breaks down after 3 steps)
def test_quadrature_exact_with_full_krylov_space(alpha: float, d: int) -> None:
    n = 30
    x = _x(n, d, seed=9)
    k = (x @ x.T).numpy()
    a = k / np.trace(k)
    z = torch.randn(1, n, 4, generator=torch.Generator().manual_seed(10), dtype=F64)
    z[..., 3] = 0.0  # a zero start vector contributes nothing
    at = torch.from_numpy(a)[None]
    quad = quadrature.lanczos_quadrature(lambda v: at @ v, z, steps=n + 5)
    # For rank 3 the Krylov space of z also holds z's null-space part: one Ritz node sits at a round-off
    # value delta ~ n*eps*||A|| whose size depends on the machine's rounding, carrying the weight
    # |z_null|^2 ~ 27. For alpha < 1, g(delta) ~ 2*sqrt(delta) turns that into an O(1e-7..1e-6) error that
    # no tolerance can bound from the conditioning alone. The reference zeroes eigenvalues below
    # 1e-12 * lambda_max; the same floor here (what the estimator's exact-path floor does) makes both
    # sides the same finite sum over the true spectrum.
    floor = 1e-12 * float(np.linalg.eigvalsh(a).max())
    got = (quad.weights * quadrature.g_alpha(quad.nodes, alpha, floor)).sum(-1)[0].numpy()
    # What is left: Ritz values of a full Krylov space equal the eigenvalues to O(n*eps*||A||) and the
    # weights to O(n*eps); g is Lipschitz on the spectrum above the floor (its smallest non-zero
    # eigenvalue, 7.4e-5 for d = 30, bounds |g'| by ~1.2e2 for alpha = 0.5), so the relative error is at
    # most ~1e2 * n * eps ~ 1e-12; rtol 1e-8 leaves four orders of margin for any summation order.
    expected = _dense_quadratic_form(a, z[0].numpy(), alpha)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(quad.first[0].numpy(), np.einsum("nc,nm,mc->c", z[0], a, z[0]), rtol=1e-10)
    assert torch.isfinite(quad.nodes).all()


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.01, 1.5, 2.5])
@pytest.mark.parametrize("steps", [3, 6])
def test_gauss_and_radau_rules_bracket_the_quadratic_form(alpha: float, steps: int) -> None:
    # Golub-Meurant: with derivatives of order 2m and 2m+1 of opposite signs on the spectrum, the Gauss
    # rule and the Gauss-Radau rule with a node at 0 lie on either side of v^T g(A) v.
    n = 60
    x = _x(n, 4, seed=23)
    k = kernel_matrix(x, make_kernel("gaussian", sigma=1.5))
    a = (k / k.trace()).numpy()
    z = estimator._signs((1, n, 6), torch.Generator().manual_seed(24), x)
    at = torch.from_numpy(a)[None]
    quad = quadrature.lanczos_quadrature(lambda v: at @ v, z, steps=steps)
    gauss = (quad.weights * quadrature.g_alpha(quad.nodes, alpha)).sum(-1)[0].numpy()
    radau = (quad.radau_weights * quadrature.g_alpha(quad.radau_nodes, alpha)).sum(-1)[0].numpy()
    exact = _dense_quadratic_form(a, z[0].numpy(), alpha)
    slack = 1e-12 * np.abs(exact).max()
    assert np.all((gauss - exact) * (radau - exact) <= slack)
    assert np.all(np.abs(gauss - radau) > 0)  # the bracket is not trivially closed at these steps
    # the Radau rule has a node at 0 (up to round-off)
    assert float(quad.radau_nodes.abs().amin()) < 1e-10


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.01, 2.0, 3.0])
def test_g_alpha_matches_definition(alpha: float) -> None:
    lam = torch.tensor([0.0, -1e-18, 1e-12, 0.01, 0.3, 1.0], dtype=F64)
    got = quadrature.g_alpha(lam, alpha)
    lp = lam.clamp_min(0.0)
    ref = -lp * torch.log(lp.clamp_min(1e-300)) if alpha == 1.0 else (lp**alpha - lp) / (1 - alpha)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-15)


# --------------------------------------------------------------------------------------------------
# the estimator


@pytest.mark.parametrize("alpha", reference.ALPHAS)
def test_full_deflation_is_exact(alpha: float) -> None:
    # deflate >= n: the sketch spans R^n, the Hutchinson part vanishes and the quadrature is exact.
    n = 24
    x = _x(n, 3, seed=11)
    opts = _opts(0, probes=4, steps=n, deflate=n)
    exact = reference.entropy(x.numpy(), alpha, "gaussian", sigma=1.5)
    got = renyi_info.entropy(
        x, alpha=alpha, kernel="gaussian", sigma=1.5, base=math.e, method="lanczos", lanczos=opts
    )
    assert float(got) == pytest.approx(exact, rel=1e-7, abs=1e-9)


def test_mutual_information_full_deflation_is_exact() -> None:
    n = 20
    x, y = _x(n, 3, seed=12), _x(n, 2, seed=13)
    opts = _opts(0, probes=3, steps=n, deflate=n)
    exact = reference.mutual_information(x.numpy(), y.numpy(), 1.5, "cosine")
    est = renyi_info.mutual_information_estimate(x, y, alpha=1.5, base=math.e, lanczos=opts)
    assert float(est.value) == pytest.approx(exact, abs=1e-8)
    assert float(est.stderr) == pytest.approx(0.0, abs=1e-8)
    assert float(est.quadrature) == pytest.approx(0.0, abs=1e-8)  # complete Krylov spaces: exact rules


@pytest.mark.parametrize("alpha", [1.01, 2.0, 3.0])
def test_statistics_over_seeds(alpha: float) -> None:
    # n = 200 Gaussian-kernel samples, 20 seeds: median relative error < 1%, the stated standard error
    # covers the truth at 2 sigma in >= 80% of the seeds, and the errors are not all of one sign
    # (no visible bias).
    n = 200
    x = _x(n, 4, seed=14)
    exact = reference.entropy(x.numpy(), alpha, "gaussian", sigma=2.0)
    errors, covered = [], 0
    for seed in range(20):
        est = renyi_info.entropy_estimate(
            x,
            alpha=alpha,
            kernel="gaussian",
            sigma=2.0,
            base=math.e,
            lanczos=_opts(seed, probes=16, steps=25, deflate=8),
        )
        err = float(est.value) - exact
        errors.append(err)
        covered += abs(err) <= 2.0 * float(est.stderr)
    rel = sorted(abs(e) / exact for e in errors)
    assert rel[10] < 0.01
    # the quadrature bracket is reported, non-negative and small at 25 steps
    assert 0.0 <= float(est.quadrature) < 0.01 * exact
    assert covered >= 16
    assert 3 <= sum(e > 0 for e in errors) <= 17


def test_mutual_information_statistics() -> None:
    # common probes for S(A), S(B), S(A,B): the MI estimate is close and its standard error (plus the
    # quadrature bound) covers the truth in most seeds
    n = 150
    x = _x(n, 3, seed=25)
    y = x[:, :2] + 0.5 * _x(n, 2, seed=26)
    exact = reference.mutual_information(x.numpy(), y.numpy(), 1.01, "gaussian", sigma=2.0)
    covered, errors = 0, []
    for seed in range(10):
        est = renyi_info.mutual_information_estimate(
            x,
            y,
            alpha=1.01,
            kernel="gaussian",
            sigma=2.0,
            base=math.e,
            lanczos=_opts(seed, probes=16, deflate=8),
        )
        errors.append(abs(float(est.value) - exact))
        covered += errors[-1] <= 2.0 * float(est.stderr) + float(est.quadrature)
    assert sorted(errors)[5] < 0.02 * exact
    assert covered >= 7


def test_control_variate_helps_near_one() -> None:
    # Near alpha = 1 the per-probe values x_i and the free control y_i = z^T A z are strongly correlated:
    # the standard error with the control variate is smaller than without (probes < 3 switches it off).
    x = _x(150, 3, seed=15)
    kw = {"alpha": 1.01, "kernel": "gaussian", "sigma": 2.5, "base": math.e}
    op = operators.FeatureOperator([x[None]], [make_kernel("gaussian", sigma=2.5)])
    probes = estimator._signs((1, 150, 32), torch.Generator().manual_seed(0), x)
    parts = estimator._trace_parts(op, 1.01, probes, None, 20)[0]
    plain = parts.x.std(-1) / math.sqrt(32)
    est = renyi_info.entropy_estimate(x, lanczos=_opts(0, probes=32, steps=20, deflate=0), **kw)
    assert float(est.stderr) < 0.8 * float(plain)


def test_seeding_reproducible() -> None:
    x = _x(80, 3, seed=16)
    kw = {"alpha": 0.7, "kernel": "polynomial", "degree": 2, "coef": 1.0, "method": "lanczos"}
    a = renyi_info.entropy(x, lanczos=_opts(3, probes=5, steps=7), **kw)
    b = renyi_info.entropy(x, lanczos=_opts(3, probes=5, steps=7), **kw)
    c = renyi_info.entropy(x, lanczos=_opts(4, probes=5, steps=7), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the global generator is used when none is given
    torch.manual_seed(0)
    d = renyi_info.entropy(x, lanczos=slq.LanczosOptions(probes=5, steps=7), **kw)
    torch.manual_seed(0)
    e = renyi_info.entropy(x, lanczos=slq.LanczosOptions(probes=5, steps=7), **kw)
    assert torch.equal(d, e)
    # the estimate function returns the same value as method="lanczos" for the same generator state
    est = renyi_info.entropy_estimate(
        x, alpha=0.7, kernel="polynomial", degree=2, coef=1.0, lanczos=_opts(3, probes=5, steps=7)
    )
    assert torch.equal(est.value, a)


def test_matrix_api_matches_feature_api() -> None:
    x, y = _x(60, 3, seed=17), _x(60, 4, seed=18)
    ka, kb = renyi_info.gram(x, "gaussian", sigma=1.5), renyi_info.gram(y, "cosine")
    opts = {"probes": 6, "steps": 12, "deflate": 4}
    feat = renyi_info.mutual_information(
        x,
        y,
        kernel=("gaussian", "cosine"),
        sigma=(1.5, None),
        alpha=2.5,
        method="lanczos",
        lanczos=_opts(1, **opts),
    )
    mat = renyi_info.matrix.mutual_information(ka, kb, alpha=2.5, method="lanczos", lanczos=_opts(1, **opts))
    torch.testing.assert_close(feat, mat, rtol=1e-8, atol=1e-10)
    fj = renyi_info.joint_entropy(
        x, y, kernel=("gaussian", "cosine"), sigma=(1.5, None), method="lanczos", lanczos=_opts(2)
    )
    mj = renyi_info.matrix.joint_entropy(ka, kb, method="lanczos", lanczos=_opts(2))
    torch.testing.assert_close(fj, mj, rtol=1e-8, atol=1e-10)


def test_batched_inputs_and_float32() -> None:
    x = _x(120, 3, seed=19, batch=(2, 3))
    got = renyi_info.entropy(x, alpha=1.0, kernel="gaussian", sigma=2.0, method="lanczos", lanczos=_opts(0))
    exact = renyi_info.entropy(x, alpha=1.0, kernel="gaussian", sigma=2.0)
    assert got.shape == (2, 3)
    torch.testing.assert_close(got, exact, rtol=0.01, atol=0.0)
    got32 = renyi_info.entropy(
        x.float(), alpha=1.0, kernel="gaussian", sigma=2.0, method="lanczos", lanczos=_opts(0)
    )
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), exact, rtol=0.01, atol=0.0)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 1.01, 4.0, math.inf])
def test_crude_settings_stay_in_bounds(alpha: float) -> None:
    # one probe, as few steps as the order allows (2 steps > alpha, or the quadrature has no error bound
    # and the call refuses): crude, but always finite and within [0, log n]
    x = _x(50, 2, seed=20)
    steps = math.floor(alpha / 2) + 1 if math.isfinite(alpha) else 1
    got = renyi_info.entropy(
        x,
        alpha=alpha,
        kernel="linear",
        base=math.e,
        method="lanczos",
        lanczos=_opts(0, probes=1, steps=steps, deflate=0),
    )
    assert torch.isfinite(got) and 0.0 <= float(got) <= math.log(50) + 1e-12
    if steps > 1:
        with pytest.raises(ValueError, match=r"2 \* steps > alpha"):
            renyi_info.entropy(
                x,
                alpha=alpha,
                kernel="linear",
                method="lanczos",
                lanczos=_opts(0, probes=1, steps=1, deflate=0),
            )


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_rank_deficient_round_off_is_not_entropy(dtype: torch.dtype) -> None:
    # constant samples (a rank-one all-ones Gram) and rank-2 linear features: the null space carries
    # round-off only, which must not count as (alpha < 1 amplified) entropy
    const = torch.ones(60, 3, dtype=dtype)
    for alpha in (0.5, 1.0, 2.0):
        est = renyi_info.entropy_estimate(const, alpha=alpha, kernel="gaussian", sigma=1.0, lanczos=_opts(0))
        assert abs(float(est.value)) < 1e-4  # round-off only (without the floor: 3 bits at alpha = 0.5)
    x = _x(200, 2, seed=34).to(dtype)
    est = renyi_info.entropy_estimate(x, alpha=0.5, kernel="linear", lanczos=_opts(0))
    exact = reference.entropy(x.double().numpy(), 0.5, "linear") / math.log(2)
    assert float(est.value) == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("alpha", [1.01, 3.0])
def test_float32_tail_keeps_its_trace_mass(alpha: float) -> None:
    # Ritz values under the float32 floor drop their lambda^alpha term only: their share of tr A (the
    # -lambda term of g) must stay, or a smooth kernel's long tail biases every alpha by percents
    x = _x(600, 8, seed=35)
    exact = reference.entropy(x.numpy(), alpha, "gaussian", sigma=math.sqrt(8))
    got = renyi_info.entropy(
        x.float(),
        alpha=alpha,
        kernel="gaussian",
        sigma=math.sqrt(8),
        base=math.e,
        method="lanczos",
        lanczos=_opts(0),
    )
    assert float(got) == pytest.approx(exact, rel=5e-3)


def test_min_entropy_from_largest_ritz_value() -> None:
    x = _x(100, 4, seed=21)
    exact = renyi_info.entropy(x, alpha=math.inf, kernel="gaussian", sigma=2.0)
    got = renyi_info.entropy(
        x,
        alpha=math.inf,
        kernel="gaussian",
        sigma=2.0,
        method="lanczos",
        lanczos=_opts(0, probes=4, steps=15),
    )
    # the largest Ritz value is a lower bound of lambda_max: the estimate can only be >= the truth
    assert float(got) >= float(exact) - 1e-12
    assert float(got) == pytest.approx(float(exact), rel=1e-6)


def test_core_dispatch_and_auto_never_picks_lanczos() -> None:
    from renyi_info.gram_level import gram_entropy, resolve_method

    k = renyi_info.gram(_x(40, 2, seed=22), "linear")  # rank 2: SLQ is exact once the 2-d space is found
    torch.manual_seed(0)
    got = gram_entropy(k, 1.5, "lanczos")
    # default options: float32 mat-vecs at alpha > 1 (relative round-off ~1e-7 per product), otherwise exact
    assert float(got) == pytest.approx(float(gram_entropy(k, 1.5, "eig")), rel=1e-5)
    for alpha in (0.5, 1.0, 2.0, 3.0, 7.5, math.inf):
        assert resolve_method("auto", alpha) != "lanczos"
        assert resolve_method("lanczos", alpha) == "lanczos"


# --------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"probes": 0}, ValueError, "probes must be >= 1"),
        ({"steps": 0}, ValueError, "steps must be >= 1"),
        ({"deflate": -1}, ValueError, "deflate must be >= 0"),
        ({"probes": 2.5}, TypeError, "probes must be an integer"),
        ({"steps": True}, TypeError, "steps must be an integer"),
        ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_options(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        slq.LanczosOptions(**kwargs)


def test_bad_calls() -> None:
    x = _x(20, 2)
    with pytest.raises(ValueError, match="only used by method='lanczos'"):
        renyi_info.entropy(x, method="eig", lanczos=slq.LanczosOptions())
    with pytest.raises(ValueError, match="only used by method='lanczos'"):
        renyi_info.matrix.entropy(renyi_info.gram(x), lanczos=slq.LanczosOptions())
    with pytest.raises(TypeError, match=r"lanczos must be a renyi_info\.LanczosOptions"):
        renyi_info.entropy(x, method="lanczos", lanczos={"probes": 3})
    with pytest.raises(ValueError, match="alpha = inf has no standard error"):
        renyi_info.entropy_estimate(x, alpha=math.inf)
    with pytest.raises(ValueError, match="probes >= 3"):
        renyi_info.entropy_estimate(x, lanczos=slq.LanczosOptions(probes=2))
    with pytest.raises(ValueError, match="joint_entropy_estimate needs at least one"):
        renyi_info.joint_entropy_estimate()
    with pytest.raises(ValueError, match="method must be one of"):
        renyi_info.entropy(x, method="slq")


def test_value_is_differentiable_and_errors_are_constants() -> None:
    """Inputs that require grad are accepted (tests/renyi_info/test_lanczos_grad.py checks the gradient itself)."""
    x = _x(20, 2).requires_grad_(True)
    # (explicit deflation and mat-vec precision: their automatic choices depend on whether a gradient is needed)
    out = renyi_info.entropy(x, method="lanczos", lanczos=_opts(1, deflate=16))
    assert out.requires_grad
    est = renyi_info.entropy_estimate(x, alpha=1.5)
    assert est.value.requires_grad and not est.stderr.requires_grad and not est.quadrature.requires_grad
    with torch.no_grad():
        assert not renyi_info.entropy(x, method="lanczos").requires_grad
    # the same number as without autograd
    same = renyi_info.entropy(x.detach(), method="lanczos", lanczos=_opts(1, deflate=16))
    torch.testing.assert_close(out.detach(), same, rtol=0, atol=0)
