"""The label kernel and the Gaussian bandwidth rules (issue #7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import renyi_info
from renyi_info import matrix

# ----------------------------------------------------------------------------- label kernel


def one_hot_gram(y: np.ndarray) -> np.ndarray:
    classes = sorted(set(y.tolist()))
    onehot = np.array([[1.0 if v == c else 0.0 for c in classes] for v in y.tolist()])
    return onehot @ onehot.T


def test_label_gram_is_the_one_hot_gram():
    y = torch.tensor([3, 1, 3, 7, 1, 1])
    got = renyi_info.gram(y, "label", normalize=False)
    assert got.dtype == torch.float32
    assert torch.equal(got, torch.tensor(one_hot_gram(y.numpy()), dtype=torch.float32))


def test_label_shapes_batches_and_dtypes():
    y = torch.tensor([[0, 1, 1, 2], [5, 5, 5, 4]])
    batched = renyi_info.gram(y, "label")
    assert batched.shape == (2, 4, 4)
    for i in range(2):
        assert torch.equal(batched[i], renyi_info.gram(y[i], "label"))
        assert torch.equal(batched[i], renyi_info.gram(y[i, :, None], "label"))  # (n, 1) == (n,)
    as_bool = renyi_info.gram(torch.tensor([True, False, True]), "label")
    assert torch.equal(as_bool, renyi_info.gram(torch.tensor([1, 0, 1], dtype=torch.uint8), "label"))
    # a trailing size-1 dim is dropped: (B, 1) is B labels; a batch of single labels is (B, 1, 1)
    assert renyi_info.gram(torch.tensor([[0], [1], [1]]), "label").shape == (3, 3)
    assert renyi_info.gram(torch.tensor([[[0]], [[1]]]), "label").shape == (2, 1, 1)
    assert renyi_info.gram(y, "label", compute_dtype=torch.float64).dtype == torch.float64


def test_large_int64_labels_are_not_merged_by_a_float32_cast():
    big = 2**40
    y = torch.tensor([big, big + 1, big, big + 1], dtype=torch.int64)  # equal as float32
    assert float(torch.tensor(big, dtype=torch.float32)) == float(torch.tensor(big + 1, dtype=torch.float32))
    k = renyi_info.gram(y, "label", normalize=False)
    assert torch.equal(k, torch.tensor(one_hot_gram(np.array([0, 1, 0, 1])), dtype=torch.float32))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0, math.inf])
def test_label_entropy_is_classical_renyi_of_class_proportions(alpha):
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    p = np.array([3, 2, 5]) / 10
    if alpha == 1.0:
        expected = -(p * np.log2(p)).sum()
    elif math.isinf(alpha):
        expected = -math.log2(p.max())
    else:
        expected = math.log2((p**alpha).sum()) / (1 - alpha)
    got = renyi_info.entropy(y, kernel="label", alpha=alpha, compute_dtype=torch.float64)
    assert float(got) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_label_mutual_information_with_itself_is_its_entropy(alpha):
    y = torch.tensor([0, 1, 1, 2, 2, 2, 3])
    mi = renyi_info.mutual_information(y, y, kernel="label", alpha=alpha)
    assert float(mi) == pytest.approx(float(renyi_info.entropy(y, kernel="label", alpha=alpha)), abs=1e-5)


def test_label_kernel_mixes_with_feature_kernels():
    x = torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (2, 8), generator=torch.Generator().manual_seed(1))
    mi = renyi_info.mutual_information(x, y, kernel=("gaussian", "label"), sigma=(1.0, None))
    assert mi.shape == (2,)
    ref = matrix.mutual_information(renyi_info.gram(x, "gaussian", sigma=1.0), renyi_info.gram(y, "label"))
    assert torch.allclose(mi, ref)


def test_label_kernel_rejects_float_and_bad_input():
    with pytest.raises(TypeError, match=r"integer \(or bool\) class labels.*float32.*\.long\(\)"):
        renyi_info.gram(torch.tensor([0.0, 1.0, 1.0]), "label")
    with pytest.raises(TypeError, match="integer"):
        renyi_info.entropy(torch.tensor([0.5, 1.5]), kernel="label")  # non-integral floats too
    with pytest.raises(TypeError, match="integer"):
        renyi_info.mutual_information(torch.randn(4, 2), torch.randn(4), kernel=("cosine", "label"))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        renyi_info.gram([0, 1, 1], "label")
    with pytest.raises(ValueError, match="n = 0"):
        renyi_info.gram(torch.zeros(0, dtype=torch.int64), "label")
    with pytest.raises(ValueError, match="0-d"):
        renyi_info.gram(torch.tensor(3), "label")
    with pytest.raises(ValueError, match="sigma is only used"):
        renyi_info.gram(torch.tensor([0, 1]), "label", sigma=1.0)
    with pytest.raises(ValueError, match="same batch shape"):
        renyi_info.mutual_information(torch.randn(4, 2), torch.tensor([0, 1, 1]), kernel=("cosine", "label"))


# ----------------------------------------------------------------------------- bandwidth rules


def ref_silverman(x: np.ndarray) -> float:
    n, d = x.shape
    spread = math.sqrt(float(np.mean(np.var(x, axis=0))))
    return (4.0 / (d + 2)) ** (1.0 / (d + 4)) * spread * n ** (-1.0 / (d + 4))


def ref_median(x: np.ndarray) -> float:
    dist = sorted(float(np.linalg.norm(x[i] - x[j])) for i in range(len(x)) for j in range(i + 1, len(x)))
    return dist[(len(dist) - 1) // 2]  # the lower median


@pytest.mark.parametrize(("n", "d"), [(2, 1), (5, 3), (10, 2), (7, 12)])
def test_bandwidth_rules_match_formulas(n, d):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n * d), dtype=torch.float64)
    assert float(renyi_info.bandwidth(x, "silverman")) == pytest.approx(ref_silverman(x.numpy()), rel=1e-12)
    assert float(renyi_info.bandwidth(x, "median")) == pytest.approx(ref_median(x.numpy()), rel=1e-10)


def test_silverman_one_dimensional_constant():
    # d = 1: sigma = (4/3)^(1/5) std n^(-1/5) = 1.06 std n^(-1/5)
    x = torch.tensor([[0.0], [2.0]], dtype=torch.float64)  # population std 1
    assert float(renyi_info.bandwidth(x)) == pytest.approx((4 / 3) ** 0.2 * 2 ** (-0.2), rel=1e-12)


@pytest.mark.parametrize("rule", ["silverman", "median"])
def test_bandwidth_is_scale_equivariant_and_batched(rule):
    x = torch.randn(3, 9, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sig = renyi_info.bandwidth(x, rule)
    assert sig.shape == (3,)
    for i in range(3):
        assert float(sig[i]) == pytest.approx(float(renyi_info.bandwidth(x[i], rule)), rel=1e-12)
    assert torch.allclose(renyi_info.bandwidth(5.0 * x + 2.0, rule), 5.0 * sig)
    # so the Gram (and every entropy) is invariant to rescaling and shifting the features
    assert torch.allclose(
        renyi_info.gram(5.0 * x + 2.0, "gaussian", sigma=rule), renyi_info.gram(x, "gaussian", sigma=rule)
    )


@pytest.mark.parametrize("rule", ["silverman", "median"])
def test_rule_kernel_equals_numeric_sigma_per_batch_entry(rule):
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = renyi_info.gram(x, "gaussian", sigma=rule)
    for i, s in enumerate(renyi_info.bandwidth(x, rule).tolist()):
        assert torch.allclose(got[i], renyi_info.gram(x[i], "gaussian", sigma=s))


@pytest.mark.parametrize("rule", ["silverman", "median"])
def test_bandwidth_is_detached(rule):
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert not renyi_info.bandwidth(x.clone().requires_grad_(), rule).requires_grad
    # the gradient of an entropy with a rule equals the one with that bandwidth held fixed
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    renyi_info.entropy(xa, kernel="gaussian", sigma=rule, alpha=1.5).backward()
    s = float(renyi_info.bandwidth(x, rule))
    renyi_info.entropy(xb, kernel="gaussian", sigma=s, alpha=1.5).backward()
    assert torch.allclose(xa.grad, xb.grad)


def test_bandwidth_degenerate_inputs():
    same = torch.ones(2, 4, 3)
    assert torch.equal(renyi_info.bandwidth(same, "silverman"), torch.ones(2))
    assert torch.equal(renyi_info.bandwidth(same, "median"), torch.ones(2))
    # 4 samples, 3 of them identical: 3 of 6 distances are 0 (lower median 0) -> median of the positive
    x = torch.tensor([[0.0], [0.0], [0.0], [2.0]])
    assert float(renyi_info.bandwidth(x, "median")) == pytest.approx(2.0)
    k = renyi_info.gram(same, "gaussian", sigma="median", normalize=False)
    assert torch.equal(k, torch.ones(2, 4, 4))


def test_bandwidth_rules_reject_one_sample_and_bad_rules():
    one = torch.randn(1, 3)
    for rule in ("silverman", "median"):
        with pytest.raises(ValueError, match="at least n = 2 samples"):
            renyi_info.bandwidth(one, rule)
        with pytest.raises(ValueError, match="at least n = 2 samples"):
            renyi_info.entropy(one, kernel="gaussian", sigma=rule)
    with pytest.raises(ValueError, match="rule must be one of"):
        renyi_info.bandwidth(torch.randn(3, 2), "scott")
    with pytest.raises(ValueError, match="bandwidth rules"):
        renyi_info.gram(torch.randn(3, 2), "gaussian", sigma="scott")
    with pytest.raises(ValueError, match="sigma is only used"):
        renyi_info.gram(torch.randn(3, 2), "cosine", sigma="median")
    with pytest.raises(ValueError, match="silverman"):
        renyi_info.gram(torch.randn(3, 2), "gaussian")  # the message names the rules
    with pytest.raises(TypeError, match="floating-point"):
        renyi_info.bandwidth(torch.ones(3, 2, dtype=torch.int64))
