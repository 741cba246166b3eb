"""Bad input raises a clear TypeError/ValueError naming the argument (wording matched loosely)."""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info as ri
from renyi_info import matrix

X = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
Y = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
A = X @ X.mT

FEATURE_FNS = [
    pytest.param(lambda x, **kw: ri.entropy(x, **kw), id="entropy"),
    pytest.param(lambda x, **kw: ri.joint_entropy(x, Y, **kw), id="joint_entropy"),
    pytest.param(lambda x, **kw: ri.mutual_information(x, Y, **kw), id="mutual_information"),
    pytest.param(lambda x, **kw: ri.gram(x, **kw), id="gram"),
]
MATRIX_FNS = [
    pytest.param(lambda a, **kw: matrix.entropy(a, **kw), id="entropy"),
    pytest.param(lambda a, **kw: matrix.joint_entropy(a, A, **kw), id="joint_entropy"),
    pytest.param(lambda a, **kw: matrix.mutual_information(a, A, **kw), id="mutual_information"),
]
ALL_WITH_ALPHA = [
    pytest.param(lambda **kw: ri.entropy(X, **kw), id="entropy"),
    pytest.param(lambda **kw: ri.joint_entropy(X, Y, **kw), id="joint_entropy"),
    pytest.param(lambda **kw: ri.mutual_information(X, Y, **kw), id="mutual_information"),
    pytest.param(lambda **kw: matrix.entropy(A, **kw), id="matrix.entropy"),
    pytest.param(lambda **kw: matrix.joint_entropy(A, A, **kw), id="matrix.joint_entropy"),
    pytest.param(lambda **kw: matrix.mutual_information(A, A, **kw), id="matrix.mutual_information"),
]


# --- shapes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", FEATURE_FNS)
@pytest.mark.parametrize("bad", [torch.randn(5), torch.tensor(1.0)], ids=["rank1", "rank0"])
def test_features_of_wrong_rank(fn, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"(?s)x.*\(\.\.\., n, d\).*got shape"):
        fn(bad)


@pytest.mark.parametrize("fn", MATRIX_FNS)
@pytest.mark.parametrize(
    "bad", [torch.randn(5), torch.randn(5, 4), torch.randn(2, 3, 4)], ids=["rank1", "5x4", "3x4"]
)
def test_matrix_of_wrong_shape(fn, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"a.*\(\.\.\., n, n\).*got shape"):
        fn(bad)


@pytest.mark.parametrize("fn", FEATURE_FNS)
def test_zero_samples(fn) -> None:
    with pytest.raises(ValueError, match=r"x.*n = 0"):
        fn(torch.randn(0, 3))
    with pytest.raises(ValueError, match=r"x.*n = 0"):
        fn(torch.randn(2, 0, 3))


def test_zero_samples_matrix() -> None:
    with pytest.raises(ValueError, match=r"a.*n = 0"):
        matrix.entropy(torch.zeros(0, 0))


def test_zero_features() -> None:
    with pytest.raises(ValueError, match=r"x.*d = 0"):
        ri.entropy(torch.randn(4, 0))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: ri.joint_entropy(X, torch.randn(4, 2)), id="joint-n"),
        pytest.param(lambda: ri.mutual_information(X, torch.randn(6, 3)), id="mi-n"),
        pytest.param(lambda: ri.mutual_information(X.expand(2, 5, 3), Y.expand(3, 5, 2)), id="mi-batch"),
        pytest.param(lambda: ri.mutual_information(X.expand(2, 5, 3), Y), id="mi-batch-rank"),
        pytest.param(lambda: ri.joint_entropy(X, Y, torch.randn(4, 1)), id="joint-third"),
        pytest.param(lambda: matrix.mutual_information(A, torch.eye(4)), id="matrix-mi-n"),
        pytest.param(lambda: matrix.joint_entropy(A, A.expand(2, 5, 5)), id="matrix-joint-batch"),
    ],
)
def test_mismatched_samples_or_batch(call) -> None:
    with pytest.raises(ValueError, match=r"same batch shape and number of samples"):
        call()


def test_mismatch_message_names_both_arguments_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"(?s)y and x.*\(5,\).*\(4,\)"):
        ri.mutual_information(X, torch.randn(4, 2))


# --- empty leading batch dims are fine ----------------------------------------------------------------------


def test_empty_batch_returns_empty_result() -> None:
    x, y = torch.randn(0, 5, 3), torch.randn(0, 5, 2)
    for alpha in (0.5, 1.0, 2.0, 3.0, math.inf):
        for value in (
            ri.entropy(x, alpha=alpha),
            ri.joint_entropy(x, y, alpha=alpha),
            ri.mutual_information(x, y, alpha=alpha),
            matrix.entropy(torch.zeros(0, 5, 5), alpha=alpha),
            matrix.mutual_information(torch.zeros(0, 5, 5), torch.zeros(0, 5, 5), alpha=alpha),
        ):
            assert value.shape == (0,)
            assert value.dtype == torch.float32
    assert ri.entropy(torch.randn(2, 0, 5, 3)).shape == (2, 0)
    assert ri.gram(x).shape == (0, 5, 5)


# --- alpha, base, method ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("alpha", [0.0, -1.0, math.nan, -math.inf])
def test_bad_alpha_value(fn, alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha.*> 0"):
        fn(alpha=alpha)


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("alpha", ["2", None, True, torch.tensor(2.0), 1j])
def test_bad_alpha_type(fn, alpha: object) -> None:
    with pytest.raises(TypeError, match=r"alpha.*real number"):
        fn(alpha=alpha)


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("base", [1.0, 0.0, -2.0, math.inf, math.nan])
def test_bad_base_value(fn, base: float) -> None:
    with pytest.raises(ValueError, match=r"base"):
        fn(base=base)


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
def test_bad_base_type(fn) -> None:
    with pytest.raises(TypeError, match=r"base"):
        fn(base="2")


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("alpha", [1.0, 3.0, 0.5, math.inf])
def test_frobenius_needs_alpha_two(fn, alpha: float) -> None:
    with pytest.raises(ValueError, match=rf"(?s)frobenius.*alpha = 2.*{alpha}"):
        fn(alpha=alpha, method="frobenius")


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("alpha", [2.5, 1.0, 0.5, math.inf])
def test_power_needs_integer_alpha(fn, alpha: float) -> None:
    with pytest.raises(ValueError, match=rf"(?s)power.*integer alpha.*{alpha}"):
        fn(alpha=alpha, method="power")


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("method", ["svd", "EIG", None])
def test_unknown_method(fn, method: object) -> None:
    with pytest.raises(ValueError, match=r"method.*one of"):
        fn(method=method)


# --- kernels -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", FEATURE_FNS)
def test_unknown_kernel(fn) -> None:
    with pytest.raises(ValueError, match=r"kernel.*one of.*'rbf'"):
        fn(X, kernel="rbf")


@pytest.mark.parametrize("fn", FEATURE_FNS)
def test_gaussian_needs_sigma(fn) -> None:
    with pytest.raises(ValueError, match=r"gaussian.*sigma"):
        fn(X, kernel="gaussian")


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.inf, math.nan])
def test_bad_sigma_value(sigma: float) -> None:
    with pytest.raises(ValueError, match=r"sigma.*> 0"):
        ri.entropy(X, kernel="gaussian", sigma=sigma)


@pytest.mark.parametrize("sigma", ["1", True])
def test_bad_sigma_type(sigma: object) -> None:
    with pytest.raises((TypeError, ValueError), match=r"sigma"):
        ri.entropy(X, kernel="gaussian", sigma=sigma)


def test_sigma_with_another_kernel() -> None:
    with pytest.raises(ValueError, match=r"sigma.*only.*gaussian"):
        ri.entropy(X, kernel="cosine", sigma=1.0)


@pytest.mark.parametrize("degree", [0, 1.5, -2, True])
def test_bad_degree(degree: object) -> None:
    with pytest.raises(ValueError, match=r"degree.*integer >= 1"):
        ri.entropy(X, kernel="polynomial", degree=degree)


@pytest.mark.parametrize("coef", [-0.5, math.inf, math.nan])
def test_bad_coef(coef: float) -> None:
    with pytest.raises(ValueError, match=r"coef.*>= 0"):
        ri.entropy(X, kernel="polynomial", coef=coef)


def test_per_input_options_of_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"kernel.*sequence of 2"):
        ri.mutual_information(X, Y, kernel=("cosine", "linear", "cosine"))
    with pytest.raises(ValueError, match=r"sigma.*sequence of 3"):
        ri.joint_entropy(X, Y, Y, kernel="gaussian", sigma=(1.0, 2.0))


def test_joint_entropy_needs_an_input() -> None:
    with pytest.raises(ValueError, match=r"at least one"):
        ri.joint_entropy()
    with pytest.raises(ValueError, match=r"at least one"):
        matrix.joint_entropy()


# --- values and dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", FEATURE_FNS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_features(fn, value: float) -> None:
    x = X.clone()
    x[2, 1] = value
    with pytest.raises(ValueError, match=r"x.*1 non-finite"):
        fn(x)


def test_non_finite_second_input() -> None:
    y = Y.clone()
    y[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"y.*non-finite"):
        ri.mutual_information(X, y)
    with pytest.raises(ValueError, match=r"xs\[1\].*non-finite"):
        ri.joint_entropy(X, y)


@pytest.mark.parametrize("fn", MATRIX_FNS)
def test_non_finite_matrix(fn) -> None:
    a = A.clone()
    a[1, 1] = math.inf
    with pytest.raises(ValueError, match=r"a.*non-finite"):
        fn(a)


@pytest.mark.parametrize("fn", FEATURE_FNS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_floating_features(fn, dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match=rf"(?s)x.*floating.*{dtype}"):
        fn(torch.ones(4, 2, dtype=dtype))


@pytest.mark.parametrize("fn", MATRIX_FNS)
def test_non_floating_matrix(fn) -> None:
    with pytest.raises(TypeError, match=r"a.*floating.*int64"):
        fn(torch.eye(5, dtype=torch.int64))


@pytest.mark.parametrize("fn", FEATURE_FNS)
def test_not_a_tensor(fn) -> None:
    with pytest.raises(TypeError, match=r"x.* must be a torch.Tensor.*ndarray"):
        fn(X.numpy())
    with pytest.raises(TypeError, match=r"x.* must be a torch.Tensor.*list"):
        fn([[1.0, 2.0]])


@pytest.mark.parametrize("fn", ALL_WITH_ALPHA)
@pytest.mark.parametrize("dtype", [torch.float16, torch.int64, "float64"])
def test_bad_compute_dtype(fn, dtype: object) -> None:
    with pytest.raises(ValueError, match=r"compute_dtype"):
        fn(compute_dtype=dtype)


@pytest.mark.parametrize("fn", MATRIX_FNS)
def test_non_symmetric_matrix(fn) -> None:
    a = A.clone()
    a[0, 3] += 1.0
    with pytest.raises(ValueError, match=r"(a|mats\[0\]) must be symmetric"):
        fn(a)


def test_round_off_asymmetry_is_accepted() -> None:
    a = A.double()
    a[0, 3] += 1e-12
    assert torch.isfinite(matrix.entropy(a))


def test_zero_trace() -> None:
    with pytest.raises(ValueError, match=r"x.*zero trace"):
        ri.entropy(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"x.*zero trace"):
        ri.gram(torch.zeros(4, 3), "linear")
    with pytest.raises(ValueError, match=r"a.*zero trace"):
        matrix.entropy(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"k.*zero trace"):
        matrix.normalize(torch.zeros(3, 3))
    # one batch entry of zeros is enough
    x = torch.randn(3, 4, 2)
    x[1] = 0.0
    with pytest.raises(ValueError, match=r"zero trace"):
        ri.entropy(x)
    # disjoint supports under cosine: each input is fine, their Hadamard product is zero
    x = torch.tensor([[1.0], [0.0]])
    y = torch.tensor([[0.0], [1.0]])
    with pytest.raises(ValueError, match=r"Hadamard product.*zero trace"):
        ri.joint_entropy(x, y)


@pytest.mark.parametrize("kernel", ["cosine", "linear"])
def test_all_zero_rows_raise_but_some_zero_rows_do_not(kernel: str) -> None:
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"zero trace"):
        ri.entropy(x, kernel=kernel)
    x[2, 0] = 1.0
    s = ri.entropy(x, kernel=kernel, alpha=0.5)
    assert float(s) == 0.0  # a single sample with mass
