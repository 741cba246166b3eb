"""GPU check of the fused alpha = 2 kernels (Triton) on one CUDA device, in under 5 minutes.

Not a ``bench_*`` script (``benchmarks/run.py`` does not run it): a script to run on a CUDA machine.

1. Correctness against float64: Triton-backend values and gradients (float32 inputs, IEEE operands) of
   ``F_S = ||∘_{l∈S} K_l||_F^2`` for cosine (L = 2, the MI masks), Gaussian (L = 1) and
   linear/polynomial/Gaussian (L = 3) at several n, against materialised float64 Grams on the GPU.
2. Timings, forward + backward of the alpha = 2 mutual information of two cosine feature sets (float32):
   fused-Triton vs fused-PyTorch (tiles by cuBLAS) vs naive (materialised Grams, autograd) at
   n ∈ {4096, 16384, 65536}, d ∈ {64, 512}; achieved TFLOP/s (executed tile flops / time) against the
   matmul peak measured in the same run (float32 IEEE and TF32); peak memory per case. The naive
   reference is skipped where its n x n buffers would not fit; every case is in its own try/except.
3. TF32 operands for the Triton kernel (``torch.set_float32_matmul_precision("high")``) at one size.
4. The automatic backend: ``backend="auto"`` on float32 CUDA tensors must run Triton without falling back
   to the PyTorch tiles (a fallback warning here means a kernel failed to compile or launch).

It ends with a pass/fail table of every check and exits non-zero if any check failed.

    python -m benchmarks.gpu_check [OUT_JSON]      # default: $OUT/gpu_check.json or ./gpu_check.json
    TRITON_INTERPRET=1 python -m benchmarks.gpu_check --dry-run /tmp/gpu_check.json   # CPU rehearsal, tiny
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

from renyi_info.algorithms import fused, routes
from renyi_info.kernels import make_kernel

BUDGET_S = 270.0
START = time.perf_counter()
COS = make_kernel("cosine")
DRY = "--dry-run" in sys.argv  # rehearse on the CPU under TRITON_INTERPRET=1 with tiny sizes
DEVICE = "cpu" if DRY else "cuda"
# float32 tile sums over n^2 <= 1e8 terms: rounding grows at worst like sqrt(n^2) * eps_32 ~ 1e4 * 6e-8;
# the gradients carry one more product and a cancellation in the Gaussian term, hence the looser bound.
VALUE_RTOL, GRAD_RTOL = 2e-3, 1e-2


def empty_cache() -> None:
    if not DRY:
        torch.cuda.empty_cache()


def elapsed() -> float:
    return time.perf_counter() - START


def sync() -> None:
    if not DRY:
        torch.cuda.synchronize()


def timed(fn, repeats: int = 3) -> float:
    fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def peak(fn) -> int | None:
    if DRY:
        fn()
        return None
    sync()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    sync()
    return int(torch.cuda.max_memory_allocated() - before)


def ref_gram(x: torch.Tensor, spec) -> torch.Tensor:
    x = x.double()
    if spec.name == "cosine":
        z = torch.nn.functional.normalize(x, dim=-1)
        return z @ z.T
    if spec.name == "linear":
        return x @ x.T
    if spec.name == "polynomial":
        return (x @ x.T + spec.coef) ** spec.degree
    return torch.exp(-(torch.cdist(x, x) ** 2) / (2 * spec.sigma**2))


def correctness(n: int, specs, dims, masks) -> dict:
    gen = torch.Generator(device=DEVICE).manual_seed(n)
    xs = [(0.3 * torch.randn(n, d, device=DEVICE, generator=gen)).requires_grad_(True) for d in dims]
    got = fused.frobenius_sums(xs, specs, masks, backend="triton", precision="ieee")
    w = torch.randn(len(masks), device=DEVICE, generator=gen)
    g_got = torch.autograd.grad((got * w).sum(), xs)
    x64 = [x.detach().double().requires_grad_(True) for x in xs]
    ks = [ref_gram(x, s) for x, s in zip(x64, specs)]
    want = torch.stack([(math.prod(ks[i] for i in range(len(ks)) if m >> i & 1) ** 2).sum() for m in masks])
    g_want = torch.autograd.grad((want * w.double()).sum(), x64)
    return {
        "n": n,
        "kernels": [s.name for s in specs],
        "value_rel_err": float(((got.detach().double() - want.detach()).abs() / want.detach().abs()).max()),
        "grad_rel_err": max(
            float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(g_got, g_want)
        ),
    }


def naive_mi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    zx, zy = torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(y, dim=-1)
    a = zx @ zx.T
    a = a / a.trace()
    b = zy @ zy.T
    b = b / b.trace()
    ab = a * b
    ab = ab / ab.trace()
    return -torch.log2((a * a).sum()) - torch.log2((b * b).sum()) + torch.log2((ab * ab).sum())


def fused_mi(backend: str, block_rows: int | None = None, block_cols: int | None = None):
    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return routes.quantity_nats(
            "mutual_information",
            [x, y],
            [COS, COS],
            2.0,
            "frobenius",
            route="fused",
            backend=backend,
            block_rows=block_rows,
            block_cols=block_cols,
        )

    return fn


def step(fn, x, y):
    def run() -> None:
        value = fn(x, y)
        torch.autograd.grad(value, (x, y))

    return run


def matmul_peak(tf32: bool) -> float:
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    size = 256 if DRY else 8192
    a = torch.randn(size, size, device=DEVICE)
    b = torch.randn(size, size, device=DEVICE)
    t = timed(lambda: a @ b, repeats=5)
    torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * size**3 / t / 1e12


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--dry-run"]
    out_path = Path(args[0]) if args else Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    device_name = "cpu (dry run, Triton interpreter)" if DRY else torch.cuda.get_device_name()
    result: dict = {"device": device_name, "torch": torch.__version__, "errors": []}
    try:
        import triton

        result["triton"] = triton.__version__
    except Exception as exc:
        result["errors"].append(f"triton import: {exc!r}")

    def save() -> None:
        out_path.write_text(json.dumps(result, indent=1))

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    result["matmul_tflops_fp32"] = matmul_peak(False)
    result["matmul_tflops_tf32"] = matmul_peak(True)
    print(
        f"matmul peak: fp32 {result['matmul_tflops_fp32']:.1f} TFLOP/s, tf32 {result['matmul_tflops_tf32']:.1f}"
    )
    save()

    result["correctness"] = []
    cases = [
        ([COS, COS], [64, 32], [1, 2, 3]),
        ([make_kernel("gaussian", sigma=1.0)], [48], [1]),
        (
            [
                make_kernel("linear"),
                make_kernel("polynomial", degree=2, coef=1.0),
                make_kernel("gaussian", sigma=2.0),
            ],
            [16, 8, 24],
            [1, 2, 4, 7],
        ),
    ]
    for n in (40,) if DRY else (1000, 4096, 10000):
        for specs, dims, masks in cases:
            try:
                row = correctness(n, specs, dims, masks)
            except Exception as exc:
                row = {"n": n, "kernels": [s.name for s in specs], "error": repr(exc)[:300]}
                result["errors"].append(traceback.format_exc()[-800:])
            result["correctness"].append(row)
            print("correctness", row, flush=True)
            empty_cache()
    save()

    result["timings"] = []
    total_mem = 64 * 2**30 if DRY else torch.cuda.get_device_properties(0).total_memory
    for d in (16,) if DRY else (64, 512):
        for n in (64,) if DRY else (4096, 16384, 65536):
            gen = torch.Generator(device=DEVICE).manual_seed(0)
            x = torch.randn(n, d, device=DEVICE, generator=gen).requires_grad_(True)
            y = torch.randn(n, d, device=DEVICE, generator=gen).requires_grad_(True)
            executed = 2 * 2.0 * d * n * n / 2 * 4  # forward tiles (half grid) + backward (~3x forward)
            row: dict = {"n": n, "d": d}
            impls = {
                "fused_triton": fused_mi("triton"),
                "fused_torch": fused_mi("torch", 4096, 8192),
                "naive": naive_mi,
            }
            for name, fn in impls.items():
                if elapsed() > BUDGET_S:
                    row[name] = {"skipped": "time budget"}
                    continue
                if name == "naive" and 8 * n * n * 4 > 0.8 * total_mem:
                    row[name] = {"skipped": "n x n buffers would not fit"}
                    continue
                if name == "fused_torch" and n == 65536 and d == 512:
                    row[name] = {"skipped": "slow"}
                    continue
                try:
                    run = step(fn, x, y)
                    t = timed(run, repeats=2 if n >= 16384 else 3)
                    mem = peak(run)
                    row[name] = {"s": t, "peak_bytes": mem, "tflops_executed": executed / t / 1e12}
                except torch.cuda.OutOfMemoryError:
                    row[name] = {"oom": True}
                except Exception as exc:
                    row[name] = {"error": repr(exc)[:300]}
                    result["errors"].append(traceback.format_exc()[-800:])
                empty_cache()
            result["timings"].append(row)
            print("timing", json.dumps(row), flush=True)
            save()
            del x, y
            empty_cache()

    if elapsed() < BUDGET_S:
        try:
            gen = torch.Generator(device=DEVICE).manual_seed(0)
            m = 64 if DRY else 16384
            x = torch.randn(m, 64, device=DEVICE, generator=gen).requires_grad_(True)
            y = torch.randn(m, 64, device=DEVICE, generator=gen).requires_grad_(True)
            torch.set_float32_matmul_precision("high")
            t = timed(step(fused_mi("triton"), x, y))
            v_tf32 = float(fused_mi("triton")(x, y).detach())
            torch.set_float32_matmul_precision("highest")
            v_ieee = float(fused_mi("triton")(x, y).detach())
            result["tf32"] = {"n": m, "d": 64, "s": t, "mi_nats_tf32": v_tf32, "mi_nats_ieee": v_ieee}
        except Exception as exc:
            result["errors"].append(f"tf32: {exc!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            x = torch.randn(256, 32, device=DEVICE)
            auto = fused.resolve_backend("auto", x.device, 2, x.dtype)
            fused.frobenius_sums([x, x], [COS, COS], [1, 2, 3], backend="auto")
            result["auto_backend"] = {"resolved": auto, "fell_back": bool(fused._triton_failure)}
        except Exception as exc:
            result["auto_backend"] = {"error": repr(exc)[:300]}
            result["errors"].append(traceback.format_exc()[-800:])
    result["auto_backend"]["warnings"] = [str(w.message)[:300] for w in caught]
    result["elapsed_s"] = elapsed()
    result["checks"] = checks(result)
    save()

    print(
        f"\n{'n':>6} {'d':>4} | {'triton s':>9} {'torch s':>9} {'naive s':>9} | {'triton TF/s':>11} | peak MiB t/n"
    )
    for row in result["timings"]:

        def g(name: str, key: str, row: dict = row) -> str:
            v = row.get(name, {})
            if v.get(key) is None:
                return "oom" if v.get("oom") else "-"
            return f"{v[key] / 2**20:.0f}" if key == "peak_bytes" else f"{v[key]:.4g}"

        print(
            f"{row['n']:>6} {row['d']:>4} | {g('fused_triton', 's'):>9} {g('fused_torch', 's'):>9} "
            f"{g('naive', 's'):>9} | {g('fused_triton', 'tflops_executed'):>11} | "
            f"{g('fused_triton', 'peak_bytes')}/{g('naive', 'peak_bytes')}"
        )
    print(f"\n{'check':<44} result")
    for name, ok, detail in result["checks"]:
        print(f"{name:<44} {'PASS' if ok else 'FAIL'}  {detail}")
    failed = sum(not ok for _, ok, _ in result["checks"])
    print(
        f"written {out_path} in {elapsed():.0f} s; {len(result['errors'])} error(s); {failed} check(s) failed"
    )
    if failed:
        sys.exit(1)


def checks(result: dict) -> list[tuple[str, bool, str]]:
    """One (name, passed, detail) row per check: correctness within tolerance, no errors, no fallback."""
    rows = []
    for r in result["correctness"]:
        name = f"correctness n={r['n']} {'+'.join(r['kernels'])}"
        if "error" in r:
            rows.append((name, False, r["error"][:80]))
            continue
        ok = r["value_rel_err"] <= VALUE_RTOL and r["grad_rel_err"] <= GRAD_RTOL
        rows.append((name, ok, f"value {r['value_rel_err']:.1e}, grad {r['grad_rel_err']:.1e}"))
    for r in result["timings"]:
        bad = [k for k, v in r.items() if isinstance(v, dict) and "error" in v]
        rows.append(
            (f"timing n={r['n']} d={r['d']} runs", not bad, "errors in " + ", ".join(bad) if bad else "")
        )
    auto = result.get("auto_backend", {})
    want = "torch" if DRY else "triton"  # the CPU rehearsal never chooses Triton automatically
    auto_ok = "error" not in auto and not auto.get("fell_back") and auto.get("resolved") == want
    rows.append((f"backend='auto' runs {want} without fallback", auto_ok, json.dumps(auto)[:120]))
    if "tf32" in result or not DRY:
        rows.append(("tf32 operands run", "tf32" in result, ""))
    return rows


if __name__ == "__main__":
    main()
