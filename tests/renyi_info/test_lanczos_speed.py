"""The speed means of the SLQ estimator: symmetric kernel tiles, early stopping on the quadrature bracket,
float32 mat-vecs with recurrences in the compute dtype (issue 14). No timings are asserted."""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info
from renyi_info.algorithms.lanczos import operators, quadrature
from renyi_info.kernels import kernel_matrix, make_kernel

F64 = torch.float64


def _x(n: int, d: int, seed: int, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize(
    "names",
    [("gaussian",), ("polynomial", "label"), ("gaussian", "cosine", "linear"), ("cosine", "gaussian")],
)
def test_symmetric_tiles_equal_the_dense_product(names, monkeypatch):
    monkeypatch.setattr(operators, "_TILE_ENTRIES", 7 * 53)  # 7-row blocks, a ragged last block at n = 53
    kw = {"gaussian": {"sigma": 1.1}, "polynomial": {"degree": 2, "coef": 0.5}}
    specs = [make_kernel(nm, **kw.get(nm, {})) for nm in names]
    xs = [
        torch.randint(0, 3, (2, 53, 1), generator=torch.Generator().manual_seed(i)).to(F64)
        if nm == "label"
        else _x(53, 3, seed=i, batch=2)
        for i, nm in enumerate(names)
    ]
    op = operators.FeatureOperator(xs, specs)
    z = _x(53, 4, seed=9, batch=2)
    dense = torch.ones(2, 53, 53, dtype=F64)
    for x, spec in zip(xs, specs):
        dense = dense * kernel_matrix(x, spec)
    # float64 products of O(1) entries summed over 53 terms: round-off level
    torch.testing.assert_close(op._tiled_matmul(z), dense @ z, rtol=1e-12, atol=1e-12)


def _steps_used(monkeypatch) -> list[int]:
    used: list[int] = []
    original = quadrature._rules

    def spy(alphas, betas, norm, m, *args):
        used.append(m)
        return original(alphas, betas, norm, m, *args)

    monkeypatch.setattr(quadrature, "_rules", spy)
    return used


def test_tol_zero_runs_every_step_and_tol_stops_early(monkeypatch):
    x = _x(400, 6, seed=1)[0]
    kw = {"alpha": 3.0, "kernel": "gaussian", "sigma": 2.5, "method": "lanczos"}
    used = _steps_used(monkeypatch)
    renyi_info.entropy(x, **kw, lanczos=renyi_info.LanczosOptions(steps=16, tol=0.0))
    assert used == [16]
    used.clear()
    renyi_info.entropy(x, **kw, lanczos=renyi_info.LanczosOptions(steps=16, tol=1e-2))
    # alpha = 3 converges in a few steps: the recurrence stopped at the first even m >= 4 that met the target
    assert used[-1] < 16 and used[-1] % 2 == 0 and used[-1] >= 4


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.01, 2.0, 3.0])
def test_early_stop_keeps_the_quadrature_bracket_below_tol(alpha):
    x = _x(300, 5, seed=2)[0]
    tol = 5e-3
    opts = renyi_info.LanczosOptions(probes=8, steps=40, tol=tol, generator=torch.Generator().manual_seed(0))
    est = renyi_info.entropy_estimate(x, alpha=alpha, kernel="gaussian", sigma=2.0, base=math.e, lanczos=opts)
    # the stopping rule checked exactly this bracket (mapped to the entropy) against tol * S; 40 steps
    # reach it for every order here (the largest bracket, alpha = 0.5, is below it by step 20)
    assert float(est.quadrature) <= tol * abs(float(est.value)) * (1 + 1e-9)


@pytest.mark.parametrize("alpha", [1.01, 2.0, 3.0])
def test_default_options_match_the_exact_entropy(alpha):
    # float32 mat-vecs (automatic for alpha > 1), early stopping: still within the stated error bars
    x = _x(700, 8, seed=3)[0]
    exact = float(renyi_info.entropy(x, alpha=alpha, kernel="gaussian", sigma=math.sqrt(8), base=math.e))
    opts = renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(4))
    est = renyi_info.entropy_estimate(
        x, alpha=alpha, kernel="gaussian", sigma=math.sqrt(8), base=math.e, lanczos=opts
    )
    # 4 standard errors + the quadrature bound + float32 mat-vec round-off (1e-5 relative: sqrt(n) eps32 of
    # the O(1) entropy) cover the truth for a fixed seed with margin (the error bars are checked for
    # coverage over seeds in test_lanczos.py)
    bound = 4 * float(est.stderr) + float(est.quadrature) + 1e-5 * abs(exact)
    assert abs(float(est.value) - exact) <= bound
    assert abs(float(est.value) - exact) <= 0.01 * exact  # and within the 1 % at this size


def test_matvec_dtype_is_float32_for_alpha_above_one_only(monkeypatch):
    seen: list[torch.dtype] = []
    original = operators.FeatureOperator.__init__

    def spy(self, xs, specs, dtype=None):
        seen.append(dtype or xs[0].dtype)
        original(self, xs, specs, dtype)

    monkeypatch.setattr(operators.FeatureOperator, "__init__", spy)
    x = _x(60, 3, seed=5)[0]
    for alpha, want in ((1.5, torch.float32), (1.0, F64), (0.5, F64)):
        seen.clear()
        out = renyi_info.entropy(x, alpha=alpha, kernel="gaussian", sigma=1.0, method="lanczos")
        assert seen == [want] and out.dtype == F64  # the result stays in the compute dtype
    seen.clear()
    renyi_info.entropy(
        x,
        alpha=1.5,
        kernel="gaussian",
        sigma=1.0,
        method="lanczos",
        lanczos=renyi_info.LanczosOptions(matvec_dtype=torch.float64),
    )
    assert seen == [F64]
    seen.clear()  # float32 inputs never compute in float64 mat-vecs above their own precision
    renyi_info.entropy(
        x.float(),
        alpha=0.5,
        kernel="gaussian",
        sigma=1.0,
        method="lanczos",
        lanczos=renyi_info.LanczosOptions(matvec_dtype=torch.float64),
    )
    assert seen == [torch.float32]
    seen.clear()  # a gradient needs the deflation that only compute-dtype mat-vecs resolve
    renyi_info.entropy(x.clone().requires_grad_(), alpha=1.5, kernel="gaussian", sigma=1.0, method="lanczos")
    assert seen == [F64]


def test_float32_matvecs_agree_with_float64_matvecs():
    x = _x(500, 4, seed=6)[0]
    vals = []
    for dtype in (torch.float32, F64):
        opts = renyi_info.LanczosOptions(
            tol=0.0, matvec_dtype=dtype, generator=torch.Generator().manual_seed(1)
        )
        vals.append(
            float(
                renyi_info.entropy(x, alpha=2.0, kernel="gaussian", sigma=1.5, method="lanczos", lanczos=opts)
            )
        )
    # same probes, same steps: only the mat-vec rounding differs (float32, about 1e-7 per product, amplified
    # by at most the 20 Lanczos steps): far below the estimator's own error
    assert vals[0] == pytest.approx(vals[1], rel=1e-4)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("tol", -1e-3, ValueError),
        ("tol", math.inf, ValueError),
        ("tol", "small", TypeError),
        ("tol", True, TypeError),
        ("matvec_dtype", torch.float16, ValueError),
        ("matvec_dtype", "float32", ValueError),
    ],
)
def test_new_options_are_validated(field, value, error):
    with pytest.raises(error, match=f"LanczosOptions.{field}"):
        renyi_info.LanczosOptions(**{field: value})


@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_float32_matvecs_of_huge_and_tiny_features(kernel: str) -> None:
    """float64 features at 1e-300 / 1e300 are normalised before the cast to float32 (they overflowed to inf:
    a NaN or a 'zero trace' error before), so the estimate equals that of the same features at scale 1."""
    x = _x(50, 3, seed=8)[0]
    got = []
    for scale in (1e-300, 1.0, 1e300):
        params = {"sigma": 1.5 * scale} if kernel == "gaussian" else {}
        opts = renyi_info.LanczosOptions(
            generator=torch.Generator().manual_seed(0), matvec_dtype=torch.float32
        )
        got.append(
            renyi_info.entropy(x * scale, alpha=1.5, kernel=kernel, method="lanczos", lanczos=opts, **params)
        )
    # the same float32 operands up to the rounding of x * scale / scale: float32 round-off of the estimate
    torch.testing.assert_close(got[0], got[1], rtol=1e-5, atol=0)
    torch.testing.assert_close(got[2], got[1], rtol=1e-5, atol=0)


def test_float32_matvecs_refuse_what_float32_cannot_hold() -> None:
    x = _x(20, 3, seed=9)[0] * 1e200
    opts = renyi_info.LanczosOptions(matvec_dtype=torch.float32)
    with pytest.raises(ValueError, match="overflow"):
        renyi_info.entropy(
            x, alpha=1.5, kernel="polynomial", degree=2, coef=1e300, method="lanczos", lanczos=opts
        )
