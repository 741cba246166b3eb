"""The benchmark harness: the naive references the speed-ups are measured against are correct, and the
timing / memory / results plumbing works (tiny sizes; no timing asserts)."""

from __future__ import annotations

import importlib
import json
import math
import os
import textwrap
from pathlib import Path

import benchmarks.inputs as inputs_mod
import benchmarks.memory as memory_mod
import benchmarks.naive as naive_mod
import benchmarks.results_io as results_io_mod
import benchmarks.timing as timing_mod
import pytest
import torch

import reference
import renyi_info

ROOT = Path(__file__).resolve().parents[2]


LN2 = math.log(2.0)
KERNELS = [("cosine", None), ("linear", None), ("gaussian", 1.3)]
ALPHAS = [1.0, 1.5, 2.0, 3.0]


def _x(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kernel, sigma", KERNELS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_naive_entropy_matches_library_and_reference(kernel: str, sigma: float | None, alpha: float) -> None:
    x = _x(9, 4, 1)
    naive = float(naive_mod.naive_entropy(x, alpha, kernel, sigma))
    lib = float(renyi_info.entropy(x, alpha=alpha, kernel=kernel, sigma=sigma))
    ref = reference.entropy(x.numpy(), alpha, kernel, **({"sigma": sigma} if sigma else {})) / LN2
    assert naive == pytest.approx(ref, rel=1e-9, abs=1e-10)
    assert naive == pytest.approx(lib, rel=1e-9, abs=1e-10)


@pytest.mark.parametrize("kernel, sigma", KERNELS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_naive_mutual_information_matches_library_and_reference(
    kernel: str, sigma: float | None, alpha: float
) -> None:
    x, y = inputs_mod.paired_features(10, 3, 2, seed=2, dtype=torch.float64)
    naive = float(naive_mod.naive_mutual_information(x, y, alpha, kernel, sigma))
    lib = float(renyi_info.mutual_information(x, y, alpha=alpha, kernel=kernel, sigma=sigma))
    params = {"sigma": sigma} if sigma else {}
    ref = reference.mutual_information(x.numpy(), y.numpy(), alpha, kernel, **params) / LN2
    assert naive == pytest.approx(ref, rel=1e-8, abs=1e-10)
    assert naive == pytest.approx(lib, rel=1e-8, abs=1e-10)


def test_naive_joint_entropy_matches_library() -> None:
    xs = [_x(8, 3, s) for s in (3, 4, 5)]
    for alpha in (1.5, 2.0):
        naive = float(naive_mod.naive_joint_entropy(*xs, alpha=alpha))
        assert naive == pytest.approx(float(renyi_info.joint_entropy(*xs, alpha=alpha)), rel=1e-9)


def test_naive_analytic_values() -> None:
    # Orthogonal samples: A = I/n, S = log2 n for every alpha; identical samples: rank one, S = 0.
    eye = torch.eye(8, dtype=torch.float64)
    ones = torch.ones(8, 3, dtype=torch.float64)
    for alpha in ALPHAS:
        assert float(naive_mod.naive_entropy(eye, alpha)) == pytest.approx(3.0, abs=1e-12)
        assert float(naive_mod.naive_entropy(ones, alpha)) == pytest.approx(0.0, abs=1e-9)
        assert float(naive_mod.naive_mutual_information(eye, ones, alpha)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0])
def test_naive_gradient_matches_library(alpha: float) -> None:
    x, y = inputs_mod.paired_features(7, 5, 4, seed=6, dtype=torch.float64)
    grads = []
    for fn in (
        lambda a, b: naive_mod.naive_mutual_information(a, b, alpha),
        lambda a, b: renyi_info.mutual_information(a, b, alpha=alpha, method="eig"),
    ):
        a, b = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(fn(a, b), (a, b)))
    for g_naive, g_lib in zip(*grads):
        torch.testing.assert_close(g_naive, g_lib, rtol=1e-7, atol=1e-10)


def test_naive_gram_rejects_unknown_kernel() -> None:
    with pytest.raises(ValueError, match="kernel"):
        naive_mod.naive_gram(torch.ones(3, 2), "laplace")
    with pytest.raises(ValueError, match="sigma"):
        naive_mod.naive_gram(torch.ones(3, 2), "gaussian")


def test_timing_helpers_and_steps() -> None:
    calls = {"a": 0, "b": 0}

    def bump(key: str):
        def fn() -> None:
            calls[key] += 1

        return fn

    out = timing_mod.time_fn(bump("a"), warmup=2, repeats=3)
    assert calls["a"] == 5 and out["repeats"] == 3 and len(out["times_s"]) == 3
    assert out["min_s"] <= out["median_s"] <= out["max_s"]
    # a zero time budget still makes exactly one timed call per function
    both = timing_mod.time_interleaved({"a": bump("a"), "b": bump("b")}, warmup=0, repeats=4, max_time_s=0.0)
    assert both["a"]["repeats"] == both["b"]["repeats"] == 1
    with pytest.raises(ValueError, match="repeats"):
        timing_mod.time_fn(bump("a"), repeats=0)

    x = _x(6, 3, 7)
    step = timing_mod.make_step(lambda t: (t * t).sum(), [x], backward=True)
    step()
    step()  # no accumulation error, inputs untouched
    assert x.grad is None and not x.requires_grad
    timing_mod.make_step(lambda t: t.sum(), [x], backward=False)()


def test_max_rel_diff() -> None:
    assert naive_mod.max_rel_diff(torch.tensor([1.0, 2.2]), torch.tensor([1.0, 2.0])) == pytest.approx(0.1)
    assert naive_mod.max_rel_diff(3.0, 3.0) == 0.0


def test_write_json_adds_metadata(tmp_path: Path) -> None:
    path = results_io_mod.write_json("demo", {"value": torch.tensor(1.5), "dtype": torch.float32}, tmp_path)
    data = json.loads(path.read_text())
    assert data["benchmark"] == "demo" and data["value"] == 1.5 and data["dtype"] == "torch.float32"
    assert data["machine"]["torch"] == torch.__version__
    assert data["machine"]["torch_num_threads"] == torch.get_num_threads()


@pytest.mark.slow
def test_peak_memory_records_usage_and_oom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "memtarget.py").write_text(
        textwrap.dedent(
            """
            import torch

            def alloc(mib):
                def run():
                    t = torch.ones(mib * 2**20 // 8, dtype=torch.float64)
                    t += 1
                return run
            """
        )
    )
    # the target module first; the rest of the path kept (the child imports the benchmarks package too)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    ok = memory_mod.peak_memory("memtarget:alloc", {"mib": 64}, limit_bytes=512 * 2**20)
    assert ok["error"] is None and not ok["oom"], ok
    assert 60 * 2**20 <= ok["peak_bytes"] <= 200 * 2**20, ok  # the 64 MiB buffer, not the interpreter
    oom = memory_mod.peak_memory("memtarget:alloc", {"mib": 1024}, limit_bytes=128 * 2**20)
    assert oom["oom"] and oom["peak_bytes"] is None


@pytest.mark.slow
def test_bench_exact_tiny_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    bench = importlib.import_module("benchmarks.bench_exact")
    assert bench.main(["--quick", "--sizes", "12", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "exact.json").read_text())
    assert (tmp_path / "exact.png").is_file() and (tmp_path / "exact_alpha.png").is_file()
    methods = {(r["quantity"], r["alpha"], r["method"]) for r in data["records"]}
    assert ("mi", 2.0, "frobenius") in methods and ("entropy", 3.0, "power") in methods
    assert ("entropy", 1.5, "eig_gram") in methods
    assert all("timing" in r and r["n"] == 12 for r in data["records"])
    gram_route = [r for r in data["records"] if r["method"] == "eig_gram"]
    assert all(r["routes"] and set(r["routes"]) == {"gram"} for r in gram_route)
    assert data["max_rel_diff_vs_naive"] < 1e-4  # float32 values of every route agree with naive eigh


def test_bench_slq_grad_tiny_run(tmp_path: Path) -> None:
    """The training-step benchmark end to end at tiny sizes (each step in its own process)."""
    pytest.importorskip("matplotlib")
    from benchmarks import bench_slq_grad

    result = bench_slq_grad.main(
        ["--quick", "--sizes", "48", "96", "--repeats", "1", "--exact-max", "48", "--out", str(tmp_path)]
    )
    data = json.loads((tmp_path / "slq_grad.json").read_text())
    assert data["rows"] == json.loads(json.dumps(result["rows"])) and (tmp_path / "slq_grad.png").is_file()
    small, large = data["rows"]
    assert small["exact"]["run"] and not large["exact"]["run"]
    assert large["exact"]["time_s_extrapolated"] == pytest.approx(small["exact"]["time_s"] * 8)
    # a stochastic gradient of the same quantity: it points the same way as the exact one
    assert all(c > 0.5 for c in small["grad_cosine_single"])
