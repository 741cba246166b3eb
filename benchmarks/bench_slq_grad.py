"""Training-step time of the differentiable SLQ estimator against the exact eigen path.

One training step = the entropy of ``n`` features and its gradient with respect to them:
``renyi_info.entropy(x, alpha=1.01, kernel="gaussian", sigma=sqrt(d))`` then ``backward``, with ``x``
``n`` standard-normal samples in ``d = 8`` (float64):

* **exact**: ``method="auto"`` (here ``"eig"``: the Gram, ``torch.linalg.eigh`` with eigenvectors, and its
  backward), the exact differentiable route; ``O(n^3)`` time, ``O(n^2)`` memory;
* **slq**: ``method="lanczos"`` with default options (only the seed set): the value from matrix-free Lanczos
  quadrature, the gradient from the same Krylov bases (`renyi_info.algorithms.lanczos.gradient.gradient_weight`)
  pulled back through the kernel tile by tile.

Each (method, n) runs in a fresh subprocess (`benchmarks.memory.peak_memory`): the peak resident memory above
the inputs and the step times are recorded (exact: one step, no warm-up, as in ``bench_slq_default``: its
LAPACK call is long and varies little; slq: a warm-up then ``--repeats`` steps). At n = 16384 the exact step
is not run (an ``n x n`` float64 ``eigh`` with eigenvectors and its backward: ~ 10 GiB and an hour on the
2-core machine); its time is extrapolated from n = 4096 by ``n^3`` and marked as such.

Accuracy: at the sizes where both run, the relative error ``|g_slq - g_exact| / |g_exact|`` of single
gradients (3 seeds) and of their mean, and the cosine between ``g_slq`` and ``g_exact``.

    python -m benchmarks.bench_slq_grad [--quick] [--out DIR] [--sizes N ...] [--repeats R]

Writes ``results/slq_grad.json`` and ``results/slq_grad.png``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py: spinning OpenMP workers
import torch

from benchmarks.memory import peak_memory
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json

NAME = "slq_grad"
ALPHA = 1.01
DIM = 8
SEEDS = (0, 1, 2)


def _features(n: int) -> torch.Tensor:
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(12345), dtype=torch.float64)


def step_case(method: str, n: int, repeats: int, threads: int, time_file: str, grad_file: str):
    """Set-up for `peak_memory`: returns the call that times the steps into ``time_file`` and saves the
    gradients (one per seed for slq) to ``grad_file``."""
    torch.set_num_threads(threads)
    import renyi_info

    x = _features(n)
    kw = {"alpha": ALPHA, "kernel": "gaussian", "sigma": math.sqrt(DIM)}

    def step(seed: int) -> torch.Tensor:
        leaf = x.clone().requires_grad_(True)
        if method == "exact":
            value = renyi_info.entropy(leaf, **kw)
        else:
            opts = renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(seed))
            value = renyi_info.entropy(leaf, **kw, method="lanczos", lanczos=opts)
        (grad,) = torch.autograd.grad(value, leaf)
        return grad

    def run() -> None:
        times, grads = [], []
        if method == "exact":
            start = time.perf_counter()
            grads.append(step(0))
            times.append(time.perf_counter() - start)
        else:
            step(99)  # warm-up
            for r in range(repeats):
                start = time.perf_counter()
                grads.append(step(SEEDS[r % len(SEEDS)]))
                times.append(time.perf_counter() - start)
        Path(time_file).write_text(json.dumps({"times_s": times}))
        torch.save(torch.stack(grads), grad_file)

    return run


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="override the sizes n")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed slq steps (seeds 0, 1, 2) after a warm-up"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--exact-max", type=int, default=4096, help="largest n at which the exact step runs")
    args = parser.parse_args(argv)
    out = output_dir(args)
    sizes = args.sizes or ([256, 512] if args.quick else [1024, 4096, 16384])
    tmp_time, tmp_grad = out / f".{NAME}_time.json", out / f".{NAME}_grad.pt"
    rows = []
    for n in sizes:
        row: dict = {"n": n, "d": DIM, "alpha": ALPHA, "load_before": os.getloadavg()[0]}
        grads: dict[str, torch.Tensor] = {}
        for method in ("exact", "slq"):
            if method == "exact" and n > args.exact_max:
                row[method] = {"run": False}
                continue
            for f in (tmp_time, tmp_grad):
                f.unlink(missing_ok=True)
            mem = peak_memory(
                "benchmarks.bench_slq_grad:step_case",
                {
                    "method": method,
                    "n": n,
                    "repeats": 1 if method == "exact" else args.repeats,
                    "threads": args.threads,
                    "time_file": str(tmp_time),
                    "grad_file": str(tmp_grad),
                },
                threads=args.threads,
                timeout_s=7200,
            )
            times = json.loads(tmp_time.read_text())["times_s"] if tmp_time.exists() else []
            if tmp_grad.exists():
                grads[method] = torch.load(tmp_grad)
            row[method] = {
                "run": True,
                "error": mem["error"],
                "peak_bytes": mem["peak_bytes"],
                "times_s": times,
                "time_s": statistics.median(times) if times else None,
            }
        if row["exact"].get("time_s") is None and rows and rows[-1]["exact"].get("time_s"):
            prev = rows[-1]
            row["exact"]["time_s_extrapolated"] = prev["exact"]["time_s"] * (n / prev["n"]) ** 3
        exact_t = row["exact"].get("time_s") or row["exact"].get("time_s_extrapolated")
        if exact_t and row["slq"]["time_s"]:
            row["speedup_exact_over_slq"] = exact_t / row["slq"]["time_s"]
            row["speedup_measured"] = row["exact"].get("time_s") is not None
        if "exact" in grads and "slq" in grads:
            g, ref = grads["slq"], grads["exact"][0]
            rel = [float((gi - ref).norm() / ref.norm()) for gi in g]
            row["grad_rel_error_single"] = rel
            row["grad_rel_error_mean_of_seeds"] = float((g.mean(0) - ref).norm() / ref.norm())
            row["grad_cosine_single"] = [float((gi * ref).sum() / (gi.norm() * ref.norm())) for gi in g]
        row["load_after"] = os.getloadavg()[0]
        rows.append(row)
        print(
            f"n={n:6d} exact {row['exact'].get('time_s') or row['exact'].get('time_s_extrapolated')} s "
            f"({(row['exact'].get('peak_bytes') or 0) / 2**20:.0f} MiB) | slq {row['slq']['time_s']} s "
            f"({(row['slq']['peak_bytes'] or 0) / 2**20:.0f} MiB) | speed-up {row.get('speedup_exact_over_slq')}"
            f" | grad rel err {row.get('grad_rel_error_single')}",
            flush=True,
        )
    for f in (tmp_time, tmp_grad):
        f.unlink(missing_ok=True)
    result = {"benchmark": NAME, "alpha": ALPHA, "d": DIM, "rows": rows}
    write_json(NAME, result, out)
    plt = pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for method, style in (("exact", "o-"), ("slq", "s-")):
        pts = [(r["n"], r[method]["time_s"]) for r in rows if r[method].get("time_s")]
        if pts:
            ax_t.loglog(*zip(*pts), style, label=method)
        mem = [(r["n"], r[method]["peak_bytes"] / 2**20) for r in rows if r[method].get("peak_bytes")]
        if mem:
            ax_m.loglog(*zip(*mem), style, label=method)
    extra = [
        (r["n"], r["exact"]["time_s_extrapolated"]) for r in rows if r["exact"].get("time_s_extrapolated")
    ]
    if extra:
        ax_t.loglog(*zip(*extra), "o", mfc="none", color="C0", label="exact (extrapolated n^3)")
    ax_t.set(xlabel="n", ylabel="forward + backward (s)", title=f"training step, gaussian, alpha = {ALPHA}")
    ax_m.set(xlabel="n", ylabel="peak memory above inputs (MiB)", title="memory")
    for ax in (ax_t, ax_m):
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, NAME, out)
    return result


if __name__ == "__main__":
    main()
