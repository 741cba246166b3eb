"""Issue 11, requirements 3-8: ranges and the PSD check, accurate float32 by default, autocast, scale,
meta tensors and dtypes, and no subnormal Gram entries. Public API only; references in float64."""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info as ri
from infoclip import InfoCLIPLoss, compression_loss
from renyi_info import matrix

pytestmark = pytest.mark.usefixtures("one_thread")

ALPHAS = (0.5, 1.0, 1.0 + 1e-12, 1.5, 2.0, 3.0, 50.0, math.inf)


def _x(seed: int, n: int = 12, d: int = 5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---- 3. ranges and the PSD check ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_entropy_of_extreme_psd_matrices_is_in_range(dtype: torch.dtype, alpha: float) -> None:
    n = 16
    low_rank = ri.gram(_x(0, n, 2, dtype), "linear")  # rank 2: many round-off eigenvalues
    cases = {"ones": torch.ones(n, n, dtype=dtype), "eye": torch.eye(n, dtype=dtype) / n, "rank2": low_rank}
    methods = ["auto", "eig"] + (
        ["power"] if math.isfinite(alpha) and alpha == int(alpha) and alpha >= 2 else []
    )
    for name, a in cases.items():
        for method in methods:
            s = float(matrix.entropy(a, alpha=alpha, method=method, base=math.e, compute_dtype=dtype))
            # the bounds of a trace-normalised PSD matrix (log n rounded to the dtype)
            assert 0.0 <= s <= float(torch.tensor(math.log(n), dtype=dtype)), (name, method)
        if name == "eye":
            assert s == pytest.approx(math.log(n), rel=1e-6)
        if name == "ones":  # rank one: 0 up to the rounding of its n round-off eigenvalues
            assert s <= 10 * n * torch.finfo(dtype).eps


def test_large_bandwidth_float32_entropy_is_positive_and_accurate() -> None:
    x = _x(1, 1024, 8)
    want = float(ri.entropy(x, alpha=0.5, kernel="gaussian", sigma=300.0))
    got = ri.entropy(x.float(), alpha=0.5, kernel="gaussian", sigma=300.0)
    assert got.dtype == torch.float32
    # float64 relative rounding of this entropy is ~1e-10; the float32 input itself rounds x by 6e-8
    assert 0.0 < float(got) and abs(float(got) - want) <= 1e-3 * want


@pytest.mark.parametrize("call", ["entropy", "joint", "mi", "divergence", "normalize"])
def test_matrix_api_refuses_a_matrix_that_is_not_psd(call: str) -> None:
    bad = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    good = torch.eye(2)
    funcs = {
        "entropy": lambda: matrix.entropy(bad),
        "joint": lambda: matrix.joint_entropy(good, bad),
        "mi": lambda: matrix.mutual_information(good, bad),
        "divergence": lambda: matrix.divergence(good, bad),
        "normalize": lambda: matrix.normalize(bad),
    }
    name = {"entropy": "a", "joint": r"mats\[1\]", "mi": "b", "divergence": "b", "normalize": "k"}[call]
    with pytest.raises(ValueError, match=rf"^{name} must be positive semi-definite.*-1 .*tol"):
        funcs[call]()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_psd_check_accepts_round_off_and_refuses_a_small_negative_eigenvalue(dtype: torch.dtype) -> None:
    n = 64
    k = ri.gram(_x(2, n, 3, dtype), "linear", normalize=False)  # rank 3: round-off negatives are expected
    assert math.isfinite(float(matrix.entropy(k, alpha=0.5)))
    # a real negative eigenvalue of 1e-2 lambda_max, above the tolerance max(1e-3, 10 n eps) of both dtypes
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    lam = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lam[0] = -2e-2
    bad = (q * lam) @ q.mT
    with pytest.raises(ValueError, match="positive semi-definite"):
        matrix.entropy(bad.to(dtype))


# ---- 4. accurate by default ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma", "alpha", "n"), [(3.0, 0.5, 1024), (30.0, 0.5, 512), (300.0, 1.0, 512), (3.0, 1.0, 512)]
)
def test_float32_input_is_within_one_percent_of_float64(sigma: float, alpha: float, n: int) -> None:
    x = _x(4, n, 8)
    y = x[:, :4] + 0.3 * _x(5, n, 4)
    want_s = float(ri.entropy(x, alpha=alpha, kernel="gaussian", sigma=sigma))
    want_i = float(ri.mutual_information(x, y, alpha=alpha, kernel="gaussian", sigma=sigma))
    got_s = ri.entropy(x.float(), alpha=alpha, kernel="gaussian", sigma=sigma)
    got_i = ri.mutual_information(x.float(), y.float(), alpha=alpha, kernel="gaussian", sigma=sigma)
    assert got_s.dtype == got_i.dtype == torch.float32
    # the bar: 1% (float32 computation was 2-100% off on these cases)
    assert abs(float(got_s) - want_s) <= 1e-2 * abs(want_s)
    assert abs(float(got_i) - want_i) <= 1e-2 * abs(want_i)


def test_float32_opt_out_computes_in_float32() -> None:
    x = _x(6, 64, 8, torch.float32)
    auto = ri.entropy(x, alpha=0.5, kernel="gaussian", sigma=300.0)
    fast = ri.entropy(x, alpha=0.5, kernel="gaussian", sigma=300.0, compute_dtype=torch.float32)
    exact = ri.entropy(x, alpha=0.5, kernel="gaussian", sigma=300.0, compute_dtype=torch.float64)
    assert auto.dtype == fast.dtype == torch.float32 and exact.dtype == torch.float64
    assert float(auto) == pytest.approx(float(exact), rel=1e-6)  # the default is the float64 computation
    assert float(fast) != float(auto)  # the opt-out really runs in float32 (it loses 1 - K here)


# ---- 5. autocast ----------------------------------------------------------------------------------------

_XA = torch.randn(64, 16, generator=torch.Generator().manual_seed(7))
_YA = _XA[:, :4] + 0.5 * torch.randn(64, 4, generator=torch.Generator().manual_seed(8))
_PUBLIC = {
    "entropy": lambda: ri.entropy(_XA, kernel="linear", alpha=1.0),
    "joint_entropy": lambda: ri.joint_entropy(_XA, _YA, kernel="linear"),
    "mutual_information": lambda: ri.mutual_information(_XA, _YA, alpha=1.5),
    "conditional_entropy": lambda: ri.conditional_entropy(_XA, _YA, kernel="gaussian", sigma="median"),
    "conditional_mutual_information": lambda: ri.conditional_mutual_information(_XA, _YA, _YA + 1.0),
    "total_correlation": lambda: ri.total_correlation(_XA, _YA, alpha=3.0),
    "divergence": lambda: ri.divergence(_XA, _YA),
    "gram": lambda: ri.gram(_XA, "linear"),
    "bandwidth": lambda: ri.bandwidth(_XA, "median"),
    "entropy_estimate": lambda: (
        ri.entropy_estimate(_XA, lanczos=ri.LanczosOptions(generator=torch.Generator().manual_seed(0))).value
    ),
    "matrix.entropy": lambda: matrix.entropy(ri.gram(_XA), alpha=0.5),
    "matrix.mutual_information": lambda: matrix.mutual_information(ri.gram(_XA), ri.gram(_YA)),
}


@pytest.mark.parametrize("name", sorted(_PUBLIC))
@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_public_functions_ignore_autocast(name: str, half: torch.dtype) -> None:
    want = _PUBLIC[name]()
    with torch.autocast("cpu", dtype=half):
        got = _PUBLIC[name]()
    assert got.dtype == torch.float32
    # computed in float32 either way: the same operations on the same inputs
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_public_functions_ignore_cuda_autocast(half: torch.dtype) -> None:
    x, y = _XA.cuda(), _YA.cuda()
    calls = {
        "entropy": lambda: ri.entropy(x, kernel="linear", alpha=1.0),
        "mutual_information": lambda: ri.mutual_information(x, y, alpha=2.0),
        "divergence": lambda: ri.divergence(x, y),
        "matrix.entropy": lambda: matrix.entropy(ri.gram(x), alpha=0.5),
    }
    for name, call in calls.items():
        want = call()
        with torch.autocast("cuda", dtype=half):
            got = call()
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ---- 6. scale ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "power"), [(torch.float32, 30), (torch.float64, 300)])
def test_cosine_kernel_is_invariant_to_each_rows_scale(dtype: torch.dtype, power: int) -> None:
    x = _x(9, 20, 4, dtype)
    want = ri.entropy(x, alpha=1.0)
    exps = torch.linspace(-power, power, 20, dtype=torch.float64)
    rows = (x.double() * 10.0 ** exps[:, None]).to(dtype)
    for scaled in (x * 10.0**power, x * 10.0**-power, rows):
        # the normalised rows equal the unscaled ones up to a few ulps of the dtype
        torch.testing.assert_close(ri.entropy(scaled, alpha=1.0), want, rtol=1e-5, atol=1e-5)
    small = x.clone()
    small[:10] *= 1e-13  # legitimately small rows are directions like any other
    torch.testing.assert_close(ri.entropy(small, alpha=1.0), want, rtol=1e-5, atol=1e-5)


def test_zero_rows_still_carry_no_mass() -> None:
    x = _x(10, 12, 4)
    padded = torch.cat([x, torch.zeros(3, 4, dtype=x.dtype)])
    torch.testing.assert_close(ri.entropy(padded, alpha=1.0), ri.entropy(x, alpha=1.0))


@pytest.mark.parametrize(("dtype", "power"), [(torch.float32, 30), (torch.float64, 300)])
@pytest.mark.parametrize("rule", ["silverman", "median"])
def test_bandwidth_rules_are_scale_free(dtype: torch.dtype, power: int, rule: str) -> None:
    x = _x(11, 16, 3, dtype)
    want = ri.entropy(x, kernel="gaussian", sigma=rule)
    for s in (10.0**power, 10.0**-power):
        torch.testing.assert_close(
            ri.entropy(x * s, kernel="gaussian", sigma=rule), want, rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(ri.bandwidth(x * s, rule) / s, ri.bandwidth(x, rule), rtol=1e-5, atol=0.0)


def test_homogeneous_kernels_are_scale_free_and_others_refuse_overflow() -> None:
    x = _x(12, 10, 4, torch.float32)
    for kernel, params in (("linear", {}), ("polynomial", {"degree": 2})):
        want = ri.entropy(x, kernel=kernel, **params)
        for s in (1e20, 1e-30):
            torch.testing.assert_close(ri.entropy(x * s, kernel=kernel, **params), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"kernel='polynomial' overflows torch.float32.*Rescale x.*cosine"):
        ri.entropy(x, kernel="polynomial", degree=50, coef=1.0)
    with pytest.raises(ValueError, match=r"kernel='linear' overflows torch.float32.*Rescale x"):
        ri.gram(x * 1e20, "linear", normalize=False)
    # a tiny bandwidth is the identity Gram (log n), not a division by an underflowed sigma^2
    assert float(ri.entropy(x, kernel="gaussian", sigma=1e-23)) == pytest.approx(math.log2(10), rel=1e-6)


# ---- 7. devices and dtypes ---------------------------------------------------------------------------------


def test_meta_tensors_get_a_clear_error() -> None:
    meta = torch.empty(8, 4, device="meta")
    for call in (
        lambda: ri.entropy(meta),
        lambda: ri.mutual_information(meta, meta),
        lambda: matrix.entropy(torch.empty(8, 8, device="meta")),
        lambda: ri.entropy(torch.empty(8, dtype=torch.long, device="meta"), kernel="label"),
        lambda: compression_loss(
            torch.empty(2, 3, 4, device="meta"), torch.empty(5, 4), torch.empty(2, 3, 5)
        ),
    ):
        with pytest.raises(ValueError, match="meta tensor"):
            call()


def _loss_inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(13)
    return tuple(torch.randn(*s, generator=g).to(dtype) for s in ((4, 9, 8), (5, 8), (4, 9, 8), (5, 8)))


def test_infoclip_promotes_half_and_mixed_inputs_to_one_dtype() -> None:
    torch.manual_seed(0)
    loss = InfoCLIPLoss(8)
    inputs = _loss_inputs()
    half = tuple(t.half() for t in inputs)
    want_half = loss(*(t.float() for t in half)).total  # the same (rounded) values in float32
    got_half = loss(*half).total
    assert got_half.dtype == torch.float32
    torch.testing.assert_close(got_half, want_half)
    mixed = (inputs[0].double(), inputs[1].double(), inputs[2], inputs[3])
    torch.testing.assert_close(loss(*mixed).total.float(), loss(*inputs).total, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which", ["classes", "tokens"])
def test_infoclip_empty_axes_get_a_clear_error(which: str) -> None:
    tv, tt, sv, st = _loss_inputs()
    if which == "classes":
        tt, st = tt[:0], st[:0]
    else:
        tv, sv = tv[:, :0], sv[:, :0]
    with pytest.raises(ValueError, match=r"empty (class|token)"):
        InfoCLIPLoss(8)(tv, tt, sv, st)


# ---- 8. no subnormal Gram entries ------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.3, 3.0])
def test_gaussian_grams_have_no_subnormal_entries_and_stay_exact(sigma: float) -> None:
    x = _x(14, 256, 8, torch.float32)
    k = ri.gram(x, "gaussian", sigma=sigma, normalize=False)
    tiny = torch.finfo(torch.float32).tiny
    assert bool(((k == 0) | (k.abs() >= tiny)).all())
    want = float(ri.entropy(x.double(), alpha=3.0, kernel="gaussian", sigma=sigma))
    for method in ("power", "eig"):
        got = float(ri.entropy(x, alpha=3.0, kernel="gaussian", sigma=sigma, method=method))
        # flushed entries are below 1e-19 of the unit diagonal: far below float32 rounding (n eps ~ 3e-5)
        assert abs(got - want) <= 1e-4 * want
