"""Feature and dual routes and the cost model (renyi_info.algorithms.routes) against the gram route."""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info
from renyi_info.algorithms import routes
from renyi_info.kernels import make_kernel

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


DOT = ["cosine", "linear", "polynomial"]  # polynomial of degree 1 without offset is a dot product


def feats(count: int, n: int, dims=(3, 2, 2), batch=(2,), seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*batch, n, dims[i], generator=gen, dtype=F64).requires_grad_(True) for i in range(count)
    ]


def test_vech_features_square_the_dot_product():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, generator=gen, dtype=F64)
    phi = routes.vech_features(torch.stack([a, b]))
    assert phi.shape == (2, 15)
    torch.testing.assert_close(phi[0] @ phi[1], (a @ b) ** 2)


def test_rowwise_kron_gives_the_hadamard_product_of_grams():
    x, y = feats(2, 6, batch=())
    psi = routes.rowwise_kron([x, y])
    torch.testing.assert_close(psi @ psi.mT, (x @ x.mT) * (y @ y.mT))


@pytest.mark.parametrize("kernel", DOT)
@pytest.mark.parametrize("count", [1, 2, 3])
def test_feature_route_equals_gram_route(kernel, count):
    xs = feats(count, n=9)
    specs = [make_kernel(kernel)] * count
    got = routes.quantity_nats("joint_entropy", xs, specs, 2.0, "frobenius", route="feature")
    want = routes.quantity_nats("joint_entropy", xs, specs, 2.0, "frobenius", route="gram")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got.sum(), xs), torch.autograd.grad(want.sum(), xs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_feature_route_mutual_information_and_gradcheck():
    x, y = feats(2, n=8, batch=())
    specs = [make_kernel("cosine"), make_kernel("linear")]
    mi_f = routes.quantity_nats("mutual_information", [x, y], specs, 2.0, "frobenius", route="feature")
    mi_g = routes.quantity_nats("mutual_information", [x, y], specs, 2.0, "frobenius", route="gram")
    torch.testing.assert_close(mi_f, mi_g, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a, b: routes.quantity_nats(
            "mutual_information", [a, b], specs, 2.0, "frobenius", route="feature"
        ),
        (x, y),
    )


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 3.0, math.inf])
@pytest.mark.parametrize("count", [1, 2])
def test_dual_route_equals_gram_route_for_the_spectrum(alpha, count):
    xs = feats(count, n=12, dims=(3, 2))  # D = 3 or 6 < n: low-rank Grams, the floor matters
    specs = [make_kernel("cosine"), make_kernel("linear")][:count]
    got = routes.quantity_nats("joint_entropy", xs, specs, alpha, "eig", route="dual")
    want = routes.quantity_nats("joint_entropy", xs, specs, alpha, "eig", route="gram")
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    if math.isfinite(alpha):
        for a, b in zip(torch.autograd.grad(got.sum(), xs), torch.autograd.grad(want.sum(), xs)):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_dual_route_power_method_and_mutual_information():
    x, y = feats(2, n=10, dims=(2, 3), batch=())
    specs = [make_kernel("linear"), make_kernel("cosine")]
    for alpha, method in ((3.0, "power"), (1.5, "eig")):
        got = routes.quantity_nats("mutual_information", [x, y], specs, alpha, method, route="dual")
        want = routes.quantity_nats("mutual_information", [x, y], specs, alpha, method, route="gram")
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_dual_gradcheck():
    x = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    spec = [make_kernel("cosine")]
    assert torch.autograd.gradcheck(
        lambda t: routes.quantity_nats("joint_entropy", [t], spec, 1.5, "eig", route="dual"), (x,)
    )


def test_public_functions_agree_with_matrix_functions_whatever_route_auto_picks():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 200, 4, generator=gen, dtype=F64)
    y = torch.randn(3, 200, 3, generator=gen, dtype=F64)
    ka, kb = renyi_info.gram(x), renyi_info.gram(y, "linear")
    for alpha in (2.0, 1.5, 3.0):
        got = renyi_info.mutual_information(x, y, alpha=alpha, kernel=("cosine", "linear"))
        want = renyi_info.matrix.mutual_information(ka, kb, alpha=alpha)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(
            renyi_info.entropy(x, alpha=alpha),
            renyi_info.matrix.entropy(ka, alpha=alpha),
            rtol=1e-9,
            atol=1e-9,
        )


def test_cost_model_choices():
    cos, gauss = make_kernel("cosine"), make_kernel("gaussian", sigma=1.0)
    # alpha = 2, one dot-product input with n >> d: ||X^T X||^2
    assert routes.choose_route("frobenius", 4096, [64], [cos]) == "feature"
    # tiny problems: materialising is cheapest
    assert routes.choose_route("frobenius", 32, [8], [gauss]) == "gram"
    # huge n: the Gram no longer fits; the fused pass is the only alpha = 2 route for gaussian
    costs = routes.route_costs("frobenius", 60000, [16], [gauss])
    assert "gram" not in costs and routes.choose_route("frobenius", 60000, [16], [gauss]) == "fused"
    # exact spectrum: n >> d uses the d x d dual, d >= n the Gram
    assert routes.choose_route("eig", 4096, [64], [cos]) == "dual"
    assert routes.choose_route("eig", 64, [512], [cos]) == "gram"
    assert routes.choose_route("eig", 4096, [64], [gauss]) == "gram"
    # joint of two 64-dim inputs: D = 4096 is not below n = 2048
    assert routes.choose_route("eig", 2048, [64, 64], [cos, cos]) == "gram"


def test_forced_routes_are_checked():
    x = torch.randn(6, 2)
    cos, gauss = make_kernel("cosine"), make_kernel("gaussian", sigma=1.0)
    with pytest.raises(ValueError, match="route must be one of"):
        routes.quantity_nats("joint_entropy", [x], [cos], 2.0, "frobenius", route="magic")
    with pytest.raises(ValueError, match="alpha = 2"):
        routes.quantity_nats("joint_entropy", [x], [cos], 1.5, "eig", route="fused")
    with pytest.raises(ValueError, match="dot-product kernels"):
        routes.quantity_nats("joint_entropy", [x], [gauss], 2.0, "frobenius", route="feature")
    with pytest.raises(ValueError, match="'eig' and 'power'"):
        routes.quantity_nats("joint_entropy", [x], [cos], 2.0, "frobenius", route="dual")
    with pytest.raises(ValueError, match="one per term"):
        routes.quantity_nats("mutual_information", [x, x], [cos, cos], 2.0, "frobenius", route=["gram"])


def test_zero_trace_is_reported_on_feature_and_dual_routes():
    x = torch.zeros(5, 2)
    for route, method, alpha in (("feature", "frobenius", 2.0), ("dual", "eig", 1.5)):
        with pytest.raises(ValueError, match="zero trace"):
            routes.quantity_nats("joint_entropy", [x], [make_kernel("linear")], alpha, method, route=route)


def test_benchmark_scripts_run_at_tiny_sizes(tmp_path):
    """benchmarks/bench_dual.py end to end, and the parts of bench_fused.py that run in-process."""
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    pytest.importorskip("matplotlib")
    from benchmarks import bench_dual, bench_fused

    bench_dual.main(
        [
            "--quick",
            "--sizes",
            "48",
            "96",
            "--gram-max-n",
            "48",
            "--naive-max-n",
            "48",
            "--out",
            str(tmp_path),
        ]
    )
    rows = json.loads((tmp_path / "dual.json").read_text())["rows"]
    assert rows[0]["rel_diff"] < 1e-10 and "gram_eigvalsh_s_extrapolated" in rows[1]
    flops = bench_fused.flops_part(300, 8, 1, matmul_n=128)
    assert flops["joint"]["forward_s"] > 0 and flops["executed_gflop"] < flops["nominal_gflop"]
    stamp = tmp_path / "t.json"
    for impl in ("fused", "auto", "naive"):
        bench_fused.memory_case(impl, 40, 3, 1, str(stamp))()
        assert json.loads(stamp.read_text())["total_s"] > 0
    x, y = bench_fused._inputs(50, 4)
    torch.testing.assert_close(bench_fused.fused_mi2(x, y), bench_fused.naive_mi2(x, y), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bench_fused.auto_mi2(x, y), bench_fused.naive_mi2(x, y), rtol=1e-5, atol=1e-6)
