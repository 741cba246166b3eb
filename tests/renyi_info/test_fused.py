"""The fused, tile-streaming alpha = 2 reduction (renyi_info.algorithms.fused) against materialised references."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import renyi_info
from renyi_info.algorithms import routes
from renyi_info.algorithms.fused import diagonal_products, frobenius_sums
from renyi_info.kernels import make_kernel

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


KERNELS = {
    "cosine": {},
    "linear": {},
    "polynomial": {"degree": 2, "coef": 0.5},
    "gaussian": {"sigma": 1.7},
}


def ref_gram(x: torch.Tensor, name: str, **p: object) -> torch.Tensor:
    """Materialised Gram written from the kernel formulas (independently of renyi_info)."""
    if name == "cosine":
        z = x / x.norm(dim=-1, keepdim=True)
        return z @ z.mT
    if name == "linear":
        return x @ x.mT
    if name == "polynomial":
        return (x @ x.mT + p["coef"]) ** p["degree"]
    diff = x.unsqueeze(-2) - x.unsqueeze(-3)
    return torch.exp(-(diff * diff).sum(-1) / (2 * p["sigma"] ** 2))


def ref_sums(xs, names, masks):
    ks = [ref_gram(x, nm, **KERNELS[nm]) for x, nm in zip(xs, names)]
    out = []
    for m in masks:
        p = 1.0
        for i, k in enumerate(ks):
            if m >> i & 1:
                p = p * k
        out.append((p * p).sum((-2, -1)))
    return torch.stack(out, -1)


def inputs(count: int, n: int, batch=(2,), seed: int = 0, scale: float = 0.5):
    gen = torch.Generator().manual_seed(seed)
    return [
        (scale * torch.randn(*batch, n, 2 + i, generator=gen, dtype=F64)).requires_grad_(True)
        for i in range(count)
    ]


CASES = [
    ("cosine",),
    ("linear",),
    ("polynomial",),
    ("gaussian",),
    ("cosine", "gaussian"),
    ("polynomial", "linear"),
    ("gaussian", "cosine", "polynomial"),
    ("linear", "linear", "gaussian"),
]


@pytest.mark.parametrize("names", CASES, ids=lambda c: "-".join(c))
def test_sums_and_gradients_match_materialised(names):
    count = len(names)
    xs = inputs(count, n=23)
    specs = [make_kernel(nm, **KERNELS[nm]) for nm in names]
    masks = list(range(1, 1 << count))
    got = frobenius_sums(xs, specs, masks, backend="torch", block_rows=5, block_cols=7)
    want = ref_sums(xs, names, masks)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    weights = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    g_got = torch.autograd.grad((got * weights).sum(), xs)
    g_want = torch.autograd.grad((want * weights).sum(), xs)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    "names", [("cosine",), ("polynomial",), ("gaussian",), ("cosine", "gaussian", "polynomial")]
)
def test_gradcheck_with_ragged_tiles(names):
    xs = inputs(len(names), n=9, batch=())
    specs = [make_kernel(nm, **KERNELS[nm]) for nm in names]
    masks = list(range(1, 1 << len(names)))
    assert torch.autograd.gradcheck(
        lambda *t: frobenius_sums(list(t), specs, masks, backend="torch", block_rows=4, block_cols=3),
        tuple(xs),
    )


def test_traces_from_diagonals():
    xs = inputs(3, n=11)
    names = ("cosine", "polynomial", "gaussian")
    specs = [make_kernel(nm, **KERNELS[nm]) for nm in names]
    ks = [ref_gram(x, nm, **KERNELS[nm]) for x, nm in zip(xs, names)]
    got = diagonal_products(xs, specs, [0b001, 0b010, 0b111])
    want = torch.stack(
        [
            ks[0].diagonal(dim1=-2, dim2=-1).sum(-1),
            ks[1].diagonal(dim1=-2, dim2=-1).sum(-1),
            (ks[0] * ks[1] * ks[2]).diagonal(dim1=-2, dim2=-1).sum(-1),
        ],
        -1,
    )
    torch.testing.assert_close(got, want)


def test_analytic_identity_and_one_tile_per_sample():
    # orthonormal samples under the linear kernel: K = I, ||K||^2 = n; tiles of one row each
    x = torch.eye(7, dtype=F64)
    got = frobenius_sums([x, x], [make_kernel("linear")] * 2, [1, 2, 3], block_rows=1, block_cols=1)
    torch.testing.assert_close(got, torch.full((3,), 7.0, dtype=F64))


@pytest.mark.parametrize("names", CASES, ids=lambda c: "-".join(c))
def test_fused_route_equals_gram_route_value_and_gradient(names):
    xs = inputs(len(names), n=17, batch=(2, 1))
    specs = [make_kernel(nm, **KERNELS[nm]) for nm in names]
    kw = {"block_rows": 4, "block_cols": 6}
    fused = routes.quantity_nats("joint_entropy", xs, specs, 2.0, "frobenius", route="fused", **kw)
    gram = routes.quantity_nats("joint_entropy", xs, specs, 2.0, "frobenius", route="gram")
    torch.testing.assert_close(fused, gram, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(fused.sum(), xs), torch.autograd.grad(gram.sum(), xs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    if len(names) == 2:
        mi_f = routes.quantity_nats("mutual_information", xs, specs, 2.0, "frobenius", route="fused", **kw)
        mi_g = routes.quantity_nats("mutual_information", xs, specs, 2.0, "frobenius", route="gram")
        torch.testing.assert_close(mi_f, mi_g, rtol=1e-10, atol=1e-12)
        for a, b in zip(torch.autograd.grad(mi_f.sum(), xs), torch.autograd.grad(mi_g.sum(), xs)):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_float32_matches_float64_reference():
    xs = [x.detach().float() for x in inputs(2, n=300, batch=())]
    specs = [make_kernel("cosine"), make_kernel("cosine")]
    got = routes.quantity_nats(
        "mutual_information", xs, specs, 2.0, "frobenius", route="fused", block_rows=64, block_cols=96
    )
    want = routes.quantity_nats(
        "mutual_information", [x.double() for x in xs], specs, 2.0, "frobenius", route="gram"
    )
    assert got.dtype == torch.float32
    assert abs(float(got) - float(want)) < 1e-5 * max(1.0, abs(float(want)))


def test_label_kernel_and_bandwidth_rule_through_fused_route():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 13, 3, generator=gen, dtype=F64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 13), generator=gen)
    for sigma in ("median", "silverman", 0.8):
        a = renyi_info.mutual_information(x, labels, kernel=("gaussian", "label"), sigma=(sigma, None))
        feats = [x, labels.unsqueeze(-1)]
        # the reference: matrices built by hand, no fused code involved
        s = renyi_info.bandwidth(x, sigma) if isinstance(sigma, str) else torch.tensor(sigma, dtype=F64)
        kx = torch.exp(-(torch.cdist(x, x) ** 2) / (2 * s[..., None, None] ** 2))
        ky = (labels[..., :, None] == labels[..., None, :]).to(F64)
        want = renyi_info.matrix.mutual_information(kx, ky)
        torch.testing.assert_close(a, want, rtol=1e-9, atol=1e-10)
        specs = [make_kernel("gaussian", sigma=sigma), make_kernel("label")]
        fused = routes.quantity_nats(
            "mutual_information",
            [x, feats[1].to(F64)],
            specs,
            2.0,
            "frobenius",
            route="fused",
            block_rows=4,
            block_cols=5,
        )
        torch.testing.assert_close(fused / math.log(2), want, rtol=1e-9, atol=1e-10)


def test_zero_trace_is_reported_on_the_fused_route():
    x = torch.zeros(6, 3)
    with pytest.raises(ValueError, match="zero trace"):
        routes.quantity_nats("joint_entropy", [x], [make_kernel("cosine")], 2.0, "frobenius", route="fused")


class _LargestAllocation(TorchDispatchMode):
    """Records the largest tensor any operation produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_n_by_n_buffer_in_forward_or_backward():
    n = 256
    xs = [torch.randn(n, 8, requires_grad=True), torch.randn(n, 6, requires_grad=True)]
    specs = [make_kernel("cosine"), make_kernel("gaussian", sigma=2.0)]
    with _LargestAllocation() as mode:
        mi = routes.quantity_nats(
            "mutual_information", xs, specs, 2.0, "frobenius", route="fused", block_rows=32, block_cols=64
        )
        torch.autograd.grad(mi, xs)
    # the largest buffers are the (augmented) features, n x (d + 2), and the 32 x 64 tiles
    assert mode.largest <= max(32 * 64, n * (8 + 2)) < n * n // 20


def test_auto_picks_fused_for_large_non_dot_product_terms_and_agrees():
    n = 3000  # a gaussian Gram here costs more than the fused pass by the cost model
    assert routes.choose_route("frobenius", n, [16], [make_kernel("gaussian", sigma=1.0)]) == "fused"
    x = torch.randn(n, 16, generator=torch.Generator().manual_seed(0), dtype=F64) * 0.3
    auto = renyi_info.entropy(x, kernel="gaussian", sigma=1.0)
    gram = renyi_info.matrix.entropy(renyi_info.gram(x, "gaussian", sigma=1.0))
    torch.testing.assert_close(auto, gram, rtol=1e-10, atol=1e-10)


def test_bad_arguments():
    x = torch.randn(5, 2)
    spec = make_kernel("linear")
    with pytest.raises(ValueError, match="masks"):
        frobenius_sums([x], [spec], [2])
    with pytest.raises(ValueError, match="backend"):
        frobenius_sums([x], [spec], [1], backend="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_rows"):
        frobenius_sums([x], [spec], [1], block_rows=0)
    with pytest.raises(ValueError, match="one kernel per input"):
        frobenius_sums([x, x], [spec], [1])
