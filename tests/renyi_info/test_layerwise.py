"""renyi_info.layerwise against plain float64 re-statements of the published definitions.

The references below are written from the papers' definitions (Skean et al., *Layer by Layer*, ICML 2025:
prompt and dataset entropy with the ``raw``/``logN``/``logD``/``maxEntropy`` normalisations; Wei et al.,
*Diff-eRank*, NeurIPS 2024: the effective rank of the covariance of centred, unit-norm tokens and its
difference between two models), one sequence and one layer at a time, in float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from renyi_info import LanczosOptions
from renyi_info import layerwise as lw

# ---- the published definitions, re-stated -----------------------------------------------------------------


def _renyi(lam: np.ndarray, alpha: float, n: int) -> float:
    """S_alpha of a PSD spectrum (trace-normalised here); eigenvalues at round-off level are zero."""
    lam = np.clip(lam, 0.0, None)
    lam = np.where(lam > n * np.finfo(np.float64).eps * lam.max(), lam, 0.0)
    p = lam[lam > 0] / lam.sum()
    if alpha == 1.0:
        return float(-(p * np.log(p)).sum())
    if math.isinf(alpha):
        return float(-np.log(p.max()))
    return float(np.log((p**alpha).sum()) / (1.0 - alpha))


def _matrix_entropy(z: np.ndarray, alpha: float) -> float:
    """Skean et al.: S_alpha of K = Z Z^T / tr, the N real tokens of one sequence as rows of Z."""
    k = z @ z.T
    return _renyi(np.linalg.eigvalsh(k / np.trace(k)), alpha, z.shape[0])


def _normalised(s: float, how: str, n: int, d: int) -> float:
    return {
        "none": s,
        "log_n": s / math.log(n),
        "log_d": s / math.log(d),
        "max": s / min(math.log(n), math.log(d)),
    }[how]


def _erank_wei(z: np.ndarray) -> tuple[float, float]:
    """Wei et al.: centre, scale each token to unit norm, Sigma = Z^T Z / N; (entropy, exp(entropy))."""
    z = z - z.mean(0)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sigma = z.T @ z / z.shape[0]
    s = _renyi(np.linalg.eigvalsh(sigma / np.trace(sigma)), 1.0, max(z.shape))
    return s, math.exp(s)


def _tokens(h: torch.Tensor, mask: torch.Tensor, layer: int, seq: int) -> np.ndarray:
    return h[layer, seq][mask[seq].bool()].double().numpy()


# ---- inputs ------------------------------------------------------------------------------------------------


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _hidden(
    layers: int, batch: int, tokens: int, d: int, *, seed: int = 0, dtype=torch.float64
) -> torch.Tensor:
    return torch.randn(layers, batch, tokens, d, generator=_gen(seed), dtype=dtype)


def _mixed_mask(batch: int, tokens: int, seed: int = 1) -> torch.Tensor:
    """Right padding, left padding and holes; every sequence has at least two tokens."""
    g = _gen(seed)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    for b in range(batch):
        n = int(torch.randint(2, tokens + 1, (1,), generator=g))
        if b % 3 == 0:
            mask[b, n:] = 0  # right padding
        elif b % 3 == 1:
            mask[b, : tokens - n] = 0  # left padding
        else:
            holes = torch.randperm(tokens, generator=g)[: tokens - n]
            mask[b, holes] = 0
    return mask


def _structured(tokens: int, d: int) -> torch.Tensor:
    """Layer 0: rank 2 tokens; layer 1: duplicated tokens; layer 2: one huge outlier token (massive activation)."""
    g = _gen(7)
    low = torch.randn(tokens, 2, generator=g, dtype=torch.float64) @ torch.randn(
        2, d, generator=g, dtype=torch.float64
    )
    dup = torch.randn(3, d, generator=g, dtype=torch.float64).repeat(tokens // 3 + 1, 1)[:tokens]
    out = torch.randn(tokens, d, generator=g, dtype=torch.float64)
    out[0] *= 1e4
    return torch.stack([low, dup, out])[:, None]  # (3, 1, T, d)


# ---- prompt entropy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tokens", "d"), [(12, 5), (6, 16)], ids=["dual-d<T", "primal-d>T"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("normalization", ["none", "log_n", "log_d", "max"])
def test_prompt_entropy_matches_the_definition(tokens: int, d: int, alpha: float, normalization: str) -> None:
    h = _hidden(3, 7, tokens, d)
    mask = _mixed_mask(7, tokens)
    got = lw.prompt_entropy(h, mask, alpha=alpha, normalization=normalization)
    assert got.shape == (3, 7) and got.dtype == torch.float64
    for layer in range(3):
        for seq in range(7):
            z = _tokens(h, mask, layer, seq)
            want = _normalised(_matrix_entropy(z, alpha), normalization, z.shape[0], d)
            # both in float64 on well-conditioned Gaussian tokens: round-off of an n x n spectrum, about n * eps
            assert float(got[layer, seq]) == pytest.approx(want, rel=1e-9, abs=1e-12), (layer, seq)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_rank_deficient_duplicated_and_outlier_tokens(alpha: float) -> None:
    for tokens, d in ((9, 6), (9, 20)):
        h = _structured(tokens, d)
        got = lw.prompt_entropy(h, alpha=alpha)
        for layer in range(3):
            want = _matrix_entropy(h[layer, 0].numpy(), alpha)
            # eigenvalues at round-off level are zero in both (the floor n eps lambda_max); what is left is the
            # round-off of the kept eigenvalues relative to the largest, about n eps kappa with kappa <= 1e8 for
            # the outlier token (its norm is 1e4 the others'): 1e-6 covers it
            assert float(got[layer, 0]) == pytest.approx(want, rel=1e-6, abs=1e-9), (tokens, d, layer)
    # rank 2 and three distinct tokens bound the entropy whatever the length
    assert float(lw.prompt_entropy(_structured(30, 8), alpha=1.0)[0, 0]) <= math.log(2) + 1e-9
    assert float(lw.prompt_entropy(_structured(30, 8), alpha=1.0)[1, 0]) <= math.log(3) + 1e-9


def test_batch_equals_loop_and_padding_values_are_ignored() -> None:
    h = _hidden(2, 6, 10, 4, seed=3)
    mask = _mixed_mask(6, 10, seed=4)
    poisoned = h.clone()
    poisoned[:, ~mask.bool()] = float("nan")  # a model may write anything at padded positions
    batched = lw.prompt_entropy(poisoned, mask, alpha=[0.5, 1.0, 2.0])
    for seq in range(6):
        alone = h[:, seq : seq + 1, mask[seq].bool()]  # the real tokens only, no padding at all
        torch.testing.assert_close(batched[:, seq], lw.prompt_entropy(alone, alpha=[0.5, 1.0, 2.0])[:, 0])


def test_float32_hidden_states_are_decomposed_in_float64_at_alpha_at_most_one() -> None:
    h = _hidden(2, 3, 40, 16, seed=5, dtype=torch.float32)
    h[:, :, 0] *= 3000.0  # a massive activation: the other tokens' eigenvalues are ~1e-7 of the largest
    got = lw.prompt_entropy(h, alpha=[0.5, 1.0])
    assert got.dtype == torch.float32
    for layer in range(2):
        for seq in range(3):
            z = h[layer, seq].double().numpy()
            for i, a in enumerate((0.5, 1.0)):
                # float64 spectrum of the float32 values: only the result's final rounding to float32 differs
                assert float(got[layer, seq, i]) == pytest.approx(_matrix_entropy(z, a), rel=3e-7)


def test_list_of_layers_equals_stacked_tensor() -> None:
    h = _hidden(3, 2, 5, 4, seed=6)
    torch.testing.assert_close(lw.prompt_entropy(list(h)), lw.prompt_entropy(h))


# ---- dataset entropy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize(("batch", "d"), [(9, 4), (5, 12)])
@pytest.mark.parametrize("centre", [False, True])
def test_dataset_entropy_matches_the_definition(pooling: str, batch: int, d: int, centre: bool) -> None:
    h = _hidden(3, batch, 8, d, seed=8)
    mask = _mixed_mask(batch, 8, seed=9)
    got = lw.dataset_entropy(h, mask, pooling=pooling, alpha=[1.0, 2.0], centre=centre, normalization="max")
    for layer in range(3):
        vectors = []
        for seq in range(batch):
            z = _tokens(h, mask, layer, seq)
            if pooling == "mean":
                vectors.append(z.mean(0))
            else:  # the real token at the largest position
                vectors.append(h[layer, seq, int(np.flatnonzero(mask[seq].numpy())[-1])].numpy())
        v = np.stack(vectors)
        if centre:
            v = v - v.mean(0)
        for i, a in enumerate((1.0, 2.0)):
            want = _normalised(_matrix_entropy(v, a), "max", batch, d)
            assert float(got[layer, i]) == pytest.approx(want, rel=1e-9, abs=1e-12)


# ---- effective rank and Diff-eRank --------------------------------------------------------------------------


def test_effective_rank_matches_wei_et_al() -> None:
    h = _hidden(2, 5, 11, 6, seed=10)
    mask = _mixed_mask(5, 11, seed=11)
    got = lw.effective_rank(h, mask)
    for layer in range(2):
        for seq in range(5):
            _, want = _erank_wei(_tokens(h, mask, layer, seq))
            assert float(got[layer, seq]) == pytest.approx(want, rel=1e-9)
    assert bool((got >= 1.0).all()) and bool((got <= 6.0 + 1e-9).all())


def test_diff_erank_matches_wei_et_al() -> None:
    ref = _hidden(2, 4, 9, 6, seed=12)
    model = _hidden(2, 4, 9, 5, seed=13) @ torch.diag(
        torch.tensor([5.0, 1.0, 0.2, 0.1, 0.05], dtype=torch.float64)
    )
    mask = _mixed_mask(4, 9, seed=14)
    per_seq = lw.diff_erank(ref, model, mask, reduction="none")
    dataset = lw.diff_erank(ref, model, mask)
    for layer in range(2):
        s_ref = [_erank_wei(_tokens(ref, mask, layer, b))[0] for b in range(4)]
        s_mod = [_erank_wei(_tokens(model, mask, layer, b))[0] for b in range(4)]
        for b in range(4):
            want = math.exp(s_ref[b]) - math.exp(s_mod[b])
            assert float(per_seq[layer, b]) == pytest.approx(want, rel=1e-9, abs=1e-9)
        # the data set: exp of the mean entropy of each model, then the difference (the paper's script)
        want = math.exp(np.mean(s_ref)) - math.exp(np.mean(s_mod))
        assert float(dataset[layer]) == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert bool((dataset > 0).all())  # the anisotropic model has the smaller effective rank


# ---- orders, gradients, Lanczos -------------------------------------------------------------------------------


def test_alpha_sweep_equals_one_call_per_order() -> None:
    h = _hidden(2, 3, 7, 5, seed=15)
    mask = _mixed_mask(3, 7, seed=16)
    orders = [0.5, 1.0, 2.0, 4.0]
    sweep = lw.prompt_entropy(h, mask, alpha=orders)
    for i, a in enumerate(orders):
        torch.testing.assert_close(sweep[..., i], lw.prompt_entropy(h, mask, alpha=a))


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_gradient(alpha: float) -> None:
    h = _hidden(2, 2, 5, 3, seed=17).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]])
    assert torch.autograd.gradcheck(lambda t: lw.prompt_entropy(t, mask, alpha=alpha, centre=True), (h,))


def test_lanczos_for_long_prompts_is_close_to_exact() -> None:
    h = _hidden(1, 3, 300, 400, seed=18)
    mask = torch.ones(3, 300, dtype=torch.long)
    mask[1, 250:] = 0  # two lengths: two groups
    exact = lw.prompt_entropy(h, mask, alpha=1.0)
    opts = LanczosOptions(probes=8, steps=40, generator=torch.Generator().manual_seed(0))
    est = lw.prompt_entropy(h, mask, alpha=1.0, method="lanczos", lanczos=opts)
    # a stochastic estimate: Gaussian tokens have a flat spectrum (Marchenko-Pastur), where 8 probes and 40
    # steps give well under 1 % (the benchmark's bar); 1 % here
    torch.testing.assert_close(est, exact, rtol=1e-2, atol=0.0)


# ---- errors ------------------------------------------------------------------------------------------------


def test_errors_name_the_argument_layer_and_sequence() -> None:
    h = _hidden(3, 4, 6, 5, seed=19)
    mask = torch.ones(4, 6)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(4, 5\).*\(B, T\) = \(4, 6\)"):
        lw.prompt_entropy(h, mask[:, :5])
    empty = mask.clone()
    empty[2] = 0
    with pytest.raises(ValueError, match=r"sequence 2 has no token"):
        lw.prompt_entropy(h, empty)
    with pytest.raises(ValueError, match=r"0 \(padding\) and 1 \(token\)"):
        lw.prompt_entropy(h, mask * 2)
    bad = h.clone()
    bad[1, 3, 2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"non-finite.*layer 1, sequence 3"):
        lw.prompt_entropy(bad, mask)
    with pytest.raises(ValueError, match=r"\(L, B, T, d\)"):
        lw.prompt_entropy(h[0])
    one = mask.clone()
    one[1] = 0
    one[1, 4] = 1
    with pytest.raises(ValueError, match=r"layer 0, sequence 1 has zero trace"):
        lw.prompt_entropy(h, one, centre=True)  # one token minus its mean is the zero vector
    with pytest.raises(ValueError, match=r"log N = 0"):
        lw.prompt_entropy(h, one, normalization="log_n")
    with pytest.raises(ValueError, match=r"normalization must be one of"):
        lw.prompt_entropy(h, normalization="logN")
    with pytest.raises(ValueError, match=r"share \(L, B, T\)"):
        lw.diff_erank(h, h[:2])
    with pytest.raises(TypeError, match=r"real floating"):
        lw.prompt_entropy(h.long())
    with pytest.raises(ValueError, match=r"method='lanczos' takes a single alpha"):
        lw.prompt_entropy(h, alpha=[1.0, 2.0], method="lanczos")


def test_float32_gram_option() -> None:
    h = _hidden(2, 3, 30, 64, seed=20, dtype=torch.float32)
    default = lw.prompt_entropy(h, alpha=[0.5, 1.0])
    fast = lw.prompt_entropy(h, alpha=[0.5, 1.0], gram_dtype=torch.float32)
    # the float32 Gram of Gaussian tokens: entries off by about sqrt(d) eps_32 |z_i||z_j| (1e-6 relative),
    # a well-conditioned spectrum moves by as much
    torch.testing.assert_close(fast, default, rtol=2e-6, atol=0.0)
    with pytest.raises(ValueError, match=r"gram_dtype must be"):
        lw.prompt_entropy(h, gram_dtype=torch.float16)


# ---- the checks folded into the Gram -------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0, [0.5, 3.0]])
@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e-40], ids=["huge", "tiny", "subnormal"])
def test_extreme_scales_give_the_scale_free_value(alpha, scale: float) -> None:
    """The linear-kernel entropy does not depend on the tokens' scale: float32 tokens whose squares overflow
    or underflow float32 (the α = 2 Gram is float32) give the value of the unscaled ones."""
    h = _hidden(2, 4, 9, 6, seed=30, dtype=torch.float32)
    mask = _mixed_mask(4, 9, seed=31)
    want = lw.prompt_entropy(h.double(), mask, alpha=alpha)
    got = lw.prompt_entropy(h * scale, mask, alpha=alpha)
    assert bool(torch.isfinite(got).all())
    # scaling by a power of two is exact; what is left is float32 rounding of the tokens times `scale`
    # (1e-40 is subnormal: 2^-149 steps, a relative 1e-5 at that size) and of the Gram (d eps_32)
    rtol = 1e-4 if scale == 1e-40 else 1e-5
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
@pytest.mark.parametrize("centre", [False, True])
def test_non_finite_real_token_is_named_on_every_path(alpha: float, centre: bool) -> None:
    h = _hidden(3, 4, 6, 5, seed=32, dtype=torch.float32)
    mask = _mixed_mask(4, 6, seed=33)
    layer, seq = 2, 1
    pos = int(mask[seq].nonzero()[0])
    h[layer, seq, pos, 3] = float("nan")
    with pytest.raises(ValueError, match=rf"non-finite.*layer {layer}, sequence {seq}\b"):
        lw.prompt_entropy(h, mask, alpha=alpha, centre=centre)


@pytest.mark.parametrize("kernel", ["linear", "cosine"])
@pytest.mark.parametrize("method", ["auto", "lanczos"])
def test_centring_tokens_near_the_largest_float32_is_scale_free(kernel: str, method: str) -> None:
    """Tokens near float32's largest number: their sum (the mean) and their differences overflow float32.
    They are scaled by a power of two before centring (it was an error on the exact linear route, a wrong
    zero-trace error under cosine, NaN on the Lanczos route)."""
    h = _hidden(2, 3, 9, 4, seed=46, dtype=torch.float32)
    h = h / h.abs().amax() * torch.finfo(torch.float32).max
    mask = _mixed_mask(3, 9, seed=47)
    want = lw.prompt_entropy(h.double(), mask, centre=True, kernel=kernel)
    opts = LanczosOptions(probes=8, steps=20, generator=torch.Generator().manual_seed(0))
    got = lw.prompt_entropy(
        h, mask, centre=True, kernel=kernel, method=method, lanczos=opts if method == "lanczos" else None
    )
    assert bool(torch.isfinite(got).all())
    # exact: the same float32 tokens, centred in float32 after an exact scaling (eps_32 of the largest) and
    # decomposed in float64; Lanczos: a stochastic estimate (8 probes), within 1 %
    tol = {"rtol": 1e-5, "atol": 1e-6} if method == "auto" else {"rtol": 1e-2, "atol": 0.0}
    torch.testing.assert_close(got.double(), want, **tol)


@pytest.mark.parametrize("kernel", ["linear", "cosine"])
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(torch.float32, 1e-40), (torch.float32, 1e-44), (torch.float16, 1e-7), (torch.float16, 1.0)],
    ids=["f32-subnormal", "f32-deep-subnormal", "f16-subnormal", "f16"],
)
def test_centred_tokens_of_subnormal_or_half_precision_keep_their_value(
    dtype: torch.dtype, scale: float, kernel: str
) -> None:
    """Centring (and the cosine kernel) read the tokens as they are, however few bits they carry: subnormal
    float32/float16 tokens and float16 tokens give the value of the same tokens in float64."""
    h = (_hidden(2, 4, 9, 6, seed=34, dtype=torch.float64) * scale).to(dtype)
    mask = _mixed_mask(4, 9, seed=35)
    alpha = [0.5, 1.0, 2.0, math.inf]
    want = lw.prompt_entropy(h.double(), mask, alpha=alpha, centre=True, kernel=kernel)
    got = lw.prompt_entropy(h, mask, alpha=alpha, centre=True, kernel=kernel)
    # the float64 route on the same (quantised) tokens is exact; what is left is float32 rounding of the
    # centred tokens (eps_32 relative to the largest) and of the Gram (d eps_32): well-spread Gaussian
    # tokens move the entropies by as much. Centring on the subnormal grid (2^-149 steps, or float16's
    # 2^-11) moved them by 1e-4 to 0.3.
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_mean_pooling_of_large_tokens_does_not_overflow(dtype: torch.dtype) -> None:
    """The mean of finite tokens is finite: 40 float16 tokens near 3000 (their sum is beyond float16's
    65504), float32 tokens near 1e37 (their sum beyond float32's 3.4e38)."""
    big = 3000.0 if dtype == torch.float16 else 1e37
    g = _gen(36)
    h = (big * (1.0 + 0.5 * torch.rand(2, 3, 40, 4, generator=g, dtype=torch.float64))).to(dtype)
    h[:, :, :, 1] *= -1.0
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, :5] = 0
    want = (h.double() * mask[None, :, :, None]).sum(2) / mask.sum(-1)[None, :, None]
    got = lw.pool(h, mask)
    assert got.dtype == dtype
    # one rounding to the hidden states' dtype (the mean lies inside their range)
    torch.testing.assert_close(got.double(), want, rtol=torch.finfo(dtype).eps, atol=0.0)
    # the dataset entropy of those tokens, against the same tokens in float64: both pool and decompose in
    # float64, only the float32 result's rounding is left
    s = lw.dataset_entropy(h, mask, alpha=[1.0, 2.0])
    ref = lw.dataset_entropy(h.double(), mask, alpha=[1.0, 2.0])
    torch.testing.assert_close(s.double(), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("centre", [False, True])
@pytest.mark.parametrize("scale", [1e30, 3e37, 1e-30, 1e-40], ids=["huge", "near-max", "tiny", "subnormal"])
def test_lanczos_route_is_scale_free(scale: float, centre: bool) -> None:
    """``method="lanczos"`` on float32 tokens whose squares overflow or underflow float32 gives the value of
    the unscaled tokens (it gave NaN, or a zero-trace error), like the exact route."""
    h = _hidden(2, 3, 9, 6, seed=37, dtype=torch.float32)
    mask = _mixed_mask(3, 9, seed=38)
    want = lw.prompt_entropy(h.double(), mask, alpha=1.0, centre=centre)
    opts = LanczosOptions(probes=4, steps=20, generator=torch.Generator().manual_seed(0))
    got = lw.prompt_entropy(h * scale, mask, alpha=1.0, centre=centre, method="lanczos", lanczos=opts)
    assert bool(torch.isfinite(got).all())
    # a stochastic estimate (4 probes: about 2e-3 off on the unscaled tokens, whose rounding differs from
    # the scaled ones'); the failures were NaN or an error, far outside 1 %
    torch.testing.assert_close(got.double(), want, rtol=1e-2, atol=0.0)


def test_lanczos_arguments_are_checked_at_the_door() -> None:
    h = _hidden(1, 2, 5, 3, seed=39)
    with pytest.raises(TypeError, match=r"lanczos must be a renyi_info.LanczosOptions or None; got dict"):
        lw.prompt_entropy(h, method="lanczos", lanczos={"probes": 3})
    with pytest.raises(ValueError, match=r"gram_dtype.*exact"):
        lw.prompt_entropy(h, method="lanczos", gram_dtype=torch.float32)


@pytest.mark.parametrize("centre", [False, True])
def test_dataset_entropy_of_subnormal_tokens_keeps_their_value(centre: bool) -> None:
    """The pooled means of subnormal float32 tokens are not rounded to float32's subnormal grid (2^-149
    steps, a relative 1e-5 at 1e-40): the value is that of the same tokens in float64."""
    h = (_hidden(2, 5, 7, 4, seed=40, dtype=torch.float64) * 1e-40).to(torch.float32)
    mask = _mixed_mask(5, 7, seed=41)
    want = lw.dataset_entropy(h.double(), mask, alpha=[0.5, 1.0, 2.0], centre=centre)
    got = lw.dataset_entropy(h, mask, alpha=[0.5, 1.0, 2.0], centre=centre)
    assert got.dtype == torch.float32
    # the same tokens, pooled and decomposed in float64 either way: only the float32 result's rounding
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("centre", [False, True])
@pytest.mark.parametrize("scale", [1e-310, 2.0**-1040], ids=["subnormal", "deep-subnormal"])
def test_subnormal_float64_tokens_give_the_scale_free_value(scale: float, centre: bool) -> None:
    """The power of two that brings subnormal float64 tokens into range (up to 2^1074) is beyond float64's
    range as one factor: it gave an overflow error; applied as two it is exact."""
    h = _hidden(2, 4, 9, 6, seed=42)
    mask = _mixed_mask(4, 9, seed=43)
    for alpha in (1.0, 2.0, [0.5, 3.0]):
        want = lw.prompt_entropy(h, mask, alpha=alpha, centre=centre)
        got = lw.prompt_entropy(h * scale, mask, alpha=alpha, centre=centre)
        # the tokens times `scale` keep 34 significant bits or more (1e-10 relative); Gram and spectrum add
        # n * eps_64
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("scale", [1e30, 1e-30], ids=["huge", "tiny"])
def test_lanczos_float32_matvecs_of_float64_tokens_are_scale_free(scale: float) -> None:
    """Float64 tokens near 1e30 are in float64's range but their Gram is not in float32's, the dtype of
    explicit float32 mat-vecs (it gave NaN, and 1.5 nats off at 1e-30): they are scaled for float32."""
    h = _hidden(2, 3, 9, 6, seed=44)
    want = lw.prompt_entropy(h, alpha=1.0)
    opts = LanczosOptions(
        probes=8, steps=20, matvec_dtype=torch.float32, generator=torch.Generator().manual_seed(0)
    )
    got = lw.prompt_entropy(h * scale, alpha=1.0, method="lanczos", lanczos=opts)
    assert bool(torch.isfinite(got).all())
    # a stochastic estimate (8 probes: about 2e-4 off on the unscaled tokens); the failures were NaN or
    # 1.5 nats off, far outside 1 %
    torch.testing.assert_close(got, want, rtol=1e-2, atol=0.0)


@pytest.mark.parametrize("centre", ["yes", None, 2, "False"])
def test_centre_must_be_a_bool(centre: object) -> None:
    """A truthy string or None was taken as centring (or not) silently."""
    h = _hidden(1, 2, 5, 3, seed=45)
    with pytest.raises(TypeError, match=r"centre must be True or False"):
        lw.prompt_entropy(h, centre=centre)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"centre must be True or False"):
        lw.dataset_entropy(h, centre=centre)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"centre must be True or False"):
        lw.effective_rank(h, centre=centre)  # type: ignore[arg-type]
