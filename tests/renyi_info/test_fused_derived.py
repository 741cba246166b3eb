"""The derived quantities, the median bandwidth rule and infoclip's token mode without n x n matrices.

* conditional entropy, conditional mutual information and total correlation of features: every term on
  the fused route (one tile-streaming pass) equals the Gram route, value and gradient, in float64;
* the median rule's exact selection over tiles equals the order statistic of a plain float64 reference,
  on the multi-pass path too (a small cap forces the histogram passes), with ties and duplicates;
* infoclip's ``gram_over="tokens"`` forced through the fused route equals the paper's equations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import renyi_info
from renyi_info import bandwidths
from renyi_info.algorithms import routes
from renyi_info.kernels import make_kernel

F64 = torch.float64
EPS64 = torch.finfo(F64).eps


def _x(n: int, d: int, seed: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, d, generator=g, dtype=F64).requires_grad_(True)


SPECS = {
    "cosine": make_kernel("cosine"),
    "gaussian": make_kernel("gaussian", sigma=1.3),
    "polynomial": make_kernel("polynomial", degree=2, coef=0.5),
    "linear": make_kernel("linear"),
}

QUANTITIES = {
    "conditional_entropy": (
        2,
        lambda xs, sp, r, kw: routes.quantity_nats(
            "conditional_entropy", xs, sp, 2.0, "frobenius", route=r, **kw
        ),
    ),
    "conditional_mutual_information": (
        3,
        lambda xs, sp, r, kw: routes.quantity_nats(
            "conditional_mutual_information", xs, sp, 2.0, "frobenius", route=r, **kw
        ),
    ),
    "total_correlation": (
        3,
        lambda xs, sp, r, kw: routes.quantity_nats(
            "total_correlation", xs, sp, 2.0, "frobenius", ["a", "b", "c"], route=r, **kw
        ),
    ),
}


@pytest.mark.parametrize("quantity", list(QUANTITIES))
@pytest.mark.parametrize(
    "kernel_names", [("cosine", "gaussian", "polynomial"), ("gaussian", "linear", "cosine")]
)
def test_fused_route_equals_gram_route_value_and_gradient(quantity, kernel_names):
    count, fn = QUANTITIES[quantity]
    xs = [_x(19, 3 + i, seed=i, batch=(2,)) for i in range(count)]
    specs = [SPECS[k] for k in kernel_names[:count]]
    fused = fn(xs, specs, "fused", {"block_rows": 4, "block_cols": 7})  # several tiles, ragged edges
    gram = fn(xs, specs, "gram", {})
    # float64, n = 19: both routes sum the same O(n^2) positive terms in different orders, so they agree to
    # a few hundred ulps of the log-sums (the entropies are O(1))
    torch.testing.assert_close(fused, gram, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(fused.sum(), xs), torch.autograd.grad(gram.sum(), xs)):
        # gradients divide by F_S and T_S (well away from 0 here): the same few-ulp agreement, relative
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_all_fused_terms_share_one_pass(monkeypatch):
    calls = []
    original = routes.frobenius_sums

    def spy(xs, specs, masks, **kw):
        calls.append(list(masks))
        return original(xs, specs, masks, **kw)

    monkeypatch.setattr(routes, "frobenius_sums", spy)
    xs = [_x(9, 2, seed=i) for i in range(3)]
    specs = [SPECS["gaussian"]] * 3
    routes.quantity_nats("conditional_mutual_information", xs, specs, 2.0, "frobenius", route="fused")
    assert calls == [[0b101, 0b110, 0b111, 0b100]]


@pytest.mark.parametrize("alpha", [2.0, 1.5, 3.0])
def test_public_derived_functions_equal_the_matrix_api(alpha):
    # the feature functions (now routed) against the Gram-matrix functions of renyi_info.matrix
    x, y, z = (_x(12, 3, seed=10 + i).detach() for i in range(3))
    kw = {"alpha": alpha, "kernel": "gaussian", "sigma": 0.9}
    grams = [renyi_info.gram(t, "gaussian", sigma=0.9) for t in (x, y, z)]
    m = renyi_info.matrix
    pairs = [
        (renyi_info.conditional_entropy(x, y, **kw), m.conditional_entropy(grams[0], grams[1], alpha=alpha)),
        (
            renyi_info.conditional_mutual_information(x, y, z, **kw),
            m.conditional_mutual_information(*grams, alpha=alpha),
        ),
        (renyi_info.total_correlation(x, y, z, **kw), m.total_correlation(*grams, alpha=alpha)),
    ]
    for got, want in pairs:
        # same spectra in float64; the eigenvalue routes agree to round-off of O(1) entropies
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_label_kernel_conditional_entropy_is_zero_on_the_fused_route():
    y = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0]).reshape(8, 1).to(F64)
    label = make_kernel("label")
    s = routes.quantity_nats("conditional_entropy", [y, y], [label, label], 2.0, "frobenius", route="fused")
    assert abs(float(s)) < 1e-14  # L o L = L exactly: S(Y|Y) = 0 up to the round-off of two equal logs


# ----------------------------------------------------------------------------------------------------
# median rule


def _ref_sq_distances(x: np.ndarray) -> np.ndarray:
    """Sorted squared distances of the pairs i < j, summed coordinate-wise in float64 (no Gram formula)."""
    i, j = np.triu_indices(len(x), 1)
    return np.sort(((x[i] - x[j]) ** 2).sum(-1))


def _tolerance(x: np.ndarray) -> float:
    # the library computes |x_i|^2 + |x_j|^2 - 2 x_i.x_j: its round-off is at most a few eps (|x_i|^2 + |x_j|^2
    # + 2|x_i.x_j|) <= 4 eps max|x|^2 per entry (times a small summation factor), and an order statistic
    # moves by at most the largest perturbation of the values
    return 16 * (x.shape[1] + 2) * EPS64 * float((x**2).sum(-1).max())


def _data(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    if kind == "gaussian":
        return rng.normal(size=(n, 3)) + 4.0
    if kind == "lattice":  # integer points: many exactly equal distances (ties), exact in float64
        return rng.integers(0, 4, size=(n, 2)).astype(np.float64)
    if kind == "duplicates":  # 80 % of the samples identical: most distances are exactly 0
        x = rng.normal(size=(n, 2))
        x[: int(0.8 * n)] = x[0]
        return x
    # clustered: two tight clusters far apart, the median sits in a narrow band of values
    x = rng.normal(scale=1e-3, size=(n, 2))
    x[n // 2 :] += 100.0
    return x


@pytest.mark.parametrize("kind", ["gaussian", "lattice", "duplicates", "clustered"])
@pytest.mark.parametrize("cap", [10, 97, 10**9])
def test_tiled_selection_equals_sorted_reference(kind, cap, monkeypatch):
    monkeypatch.setattr(bandwidths, "MEDIAN_TILE", 8)  # several tiles and a ragged edge at n = 61
    monkeypatch.setattr(bandwidths, "MEDIAN_BINS", 16)  # few bins: several narrowing passes with a small cap
    x = _data(kind, 61)
    ref = _ref_sq_distances(x)
    tol = _tolerance(x)
    for k in (0, 7, (len(ref) - 1) // 2, len(ref) - 3, len(ref) - 1):
        got = float(bandwidths._select_pair_sq_distance(torch.from_numpy(x), k, cap))
        assert got == pytest.approx(ref[k], abs=tol), (kind, cap, k)


@pytest.mark.parametrize("kind", ["gaussian", "lattice", "duplicates", "clustered"])
def test_median_rule_equals_exact_median_on_the_multipass_path(kind, monkeypatch):
    monkeypatch.setattr(bandwidths, "MEDIAN_TILE", 16)
    monkeypatch.setattr(bandwidths, "MEDIAN_MIN_CAP", 50)  # 1830 pairs > max(8 n, 50): histogram passes
    x = _data(kind, 61)
    d2 = _ref_sq_distances(x)
    lower = d2[(len(d2) - 1) // 2]
    if lower == 0:  # more than half coincide: the lower median of the non-zero distances
        pos = d2[d2 > 0]
        lower = pos[(len(pos) - 1) // 2]
    got = renyi_info.bandwidth(torch.from_numpy(x), "median")
    # sigma = sqrt(d2): a relative perturbation of d2 halves, so the d2 tolerance carries over with sqrt's slope
    assert float(got) == pytest.approx(math.sqrt(lower), abs=_tolerance(x) / (2 * math.sqrt(lower)))


def test_median_rule_is_batched_and_handles_all_identical(monkeypatch):
    monkeypatch.setattr(bandwidths, "MEDIAN_MIN_CAP", 20)
    x = torch.randn(3, 30, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    x[1] = 1.5  # every sample identical: every distance 0
    got = renyi_info.bandwidth(x, "median")
    for b in (0, 2):
        d2 = _ref_sq_distances(x[b].numpy())
        assert float(got[b]) == pytest.approx(math.sqrt(d2[(len(d2) - 1) // 2]), rel=1e-12)
    # all samples identical: no distance to take a median of; the rule's documented fallback (a positive
    # constant; the Gram is all ones for any bandwidth), the same batched as alone
    assert float(got[1]) == float(renyi_info.bandwidth(x[1], "median")) > 0


def test_median_rule_holds_at_most_the_cap(monkeypatch):
    # every tensor the selection keeps is bounded by the cap: spy on kthvalue's input sizes
    monkeypatch.setattr(bandwidths, "MEDIAN_MIN_CAP", 64)
    seen = []
    original = torch.Tensor.kthvalue

    def spy(self, *args, **kwargs):
        seen.append(self.numel())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "kthvalue", spy)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(2), dtype=F64)  # 780 pairs
    renyi_info.bandwidth(x, "median")
    assert seen and max(seen) <= max(8 * 40, 64)


# ----------------------------------------------------------------------------------------------------
# infoclip token mode through the fused route


def _force_route(monkeypatch, route):
    import infoclip.losses as losses

    original = losses.feature_entropies
    used = []

    def forced(xs, specs, alpha, method, masks, names, **kw):
        used.append(route)
        return original(xs, specs, alpha, method, masks, names, route=route)

    monkeypatch.setattr(losses, "feature_entropies", forced)
    return used


@pytest.mark.parametrize("per_sample_text", [True, False])
def test_token_mode_on_the_fused_route_matches_the_paper_equations(per_sample_text, monkeypatch):
    from infoclip import compression_loss, distillation_loss
    from infoclip_reference import ref_lc_eq9, ref_ld_eq11

    used = _force_route(monkeypatch, "fused")
    g = torch.Generator().manual_seed(7)
    b, hw, d, nc = 3, 10, 6, 5
    v = torch.randn(b, hw, d, generator=g, dtype=F64)
    t = torch.randn(*((b,) if per_sample_text else ()), nc, d, generator=g, dtype=F64)
    r, rs = torch.randn(2, b, hw, nc, generator=g, dtype=F64)
    lc = compression_loss(v, t, r, gram_over="tokens")
    ld = distillation_loss(r, rs, gram_over="tokens")
    assert used == ["fused", "fused"]
    # float64 sums of 900 positive terms against numpy's: agreement to round-off of O(1) log-sums
    assert float(lc) == pytest.approx(
        ref_lc_eq9(v.numpy(), t.numpy(), r.numpy(), "tokens"), rel=1e-10, abs=1e-10
    )
    assert float(ld) == pytest.approx(ref_ld_eq11(r.numpy(), rs.numpy(), "tokens"), rel=1e-10, abs=1e-10)


def test_token_mode_gradients_fused_equal_gram(monkeypatch):
    from infoclip import compression_loss, distillation_loss

    g = torch.Generator().manual_seed(8)
    b, hw, d, nc = 3, 7, 5, 4
    base = [
        torch.randn(b, hw, d, generator=g, dtype=F64),
        torch.randn(b, nc, d, generator=g, dtype=F64),  # per-sample text: its B-dim factor gets the gradient
        torch.randn(b, hw, nc, generator=g, dtype=F64),
        torch.randn(b, hw, nc, generator=g, dtype=F64),
    ]
    grads = {}
    for route in ("fused", "gram"):
        _force_route(monkeypatch, route)
        v, t, r, rs = (x.clone().requires_grad_(True) for x in base)
        loss = compression_loss(v, t, r, gram_over="tokens") + distillation_loss(r, rs, gram_over="tokens")
        grads[route] = (loss.detach(), torch.autograd.grad(loss, (v, t, r, rs)))
        monkeypatch.undo()
    torch.testing.assert_close(grads["fused"][0], grads["gram"][0], rtol=1e-12, atol=1e-12)
    for a, c in zip(grads["fused"][1], grads["gram"][1]):
        # float64, O(1) losses with sums bounded away from 0: round-off level agreement
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-11)


def test_token_mode_text_gradient_equals_the_expanded_gram():
    # the QR factor of the per-sample text (detached basis) gives the exact gradient: compare with a
    # plain autograd reference that expands the image-level text Gram to tokens
    from infoclip import compression_loss

    g = torch.Generator().manual_seed(9)
    b, hw, d, nc = 3, 4, 5, 2
    v = torch.randn(b, hw, d, generator=g, dtype=F64)
    r = torch.randn(b, hw, nc, generator=g, dtype=F64)
    t = torch.randn(b, nc, d, generator=g, dtype=F64)
    t[2] = 2.0 * t[0]  # two images with the same text direction: a rank-deficient text Gram
    t.requires_grad_(True)
    got = torch.autograd.grad(compression_loss(v, t, r, gram_over="tokens"), t)[0]

    t2 = t.detach().clone().requires_grad_(True)
    cos = lambda z: (lambda u: u @ u.T)(z / z.norm(dim=1, keepdim=True))  # noqa: E731
    kv, kr = cos(v.reshape(b * hw, d)), cos(r.reshape(b * hw, nc))
    kl = torch.kron(cos(t2.reshape(b, -1)), torch.ones(hw, hw, dtype=F64))
    tn = lambda k: k / k.trace()  # noqa: E731
    ref = -torch.log2((tn(kr) ** 2).sum()) + torch.log2((tn(kv * kl * kr) ** 2).sum())
    want = torch.autograd.grad(ref, t2)[0]
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)  # float64 round-off of O(1) gradients
