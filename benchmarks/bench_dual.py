"""Exact alpha = 1.5 entropy by the dual route (eigenvalues of the d x d matrix XᵀX) against full eigvalsh.

For cosine-kernel features with ``d = 64`` and ``n`` from 512 to 8192 (float64), the non-zero eigenvalues
of the ``n x n`` Gram ``ZZᵀ`` are those of ``ZᵀZ`` (``d x d``), so the exact spectral entropy costs
``O(n d² + d³)`` instead of ``O(n³)``. Both routes run through `renyi_info.algorithms.routes` (``route="dual"``
and ``route="gram"``, forward only, no grad: the gram route's cost is the ``n x n`` ``eigvalsh``); the
relative difference of the two values is recorded. Above ``--gram-max-n`` (default 8192: all default
sizes are measured; set it lower on a slow machine) the ``n x n`` ``eigvalsh`` is not run and its time is
extrapolated from the largest measured size by the ``n³`` law, marked as such. The naive research reference (full ``eigh`` with
eigenvectors, `benchmarks.naive.naive_entropy`) is timed too up to ``--naive-max-n``.

    python -m benchmarks.bench_dual [--quick] [--out DIR]

Writes ``results/dual.json`` and ``results/dual.png``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py
import torch

from benchmarks.inputs import features
from benchmarks.naive import max_rel_diff, naive_entropy
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json
from benchmarks.timing import time_fn
from renyi_info.algorithms import routes
from renyi_info.kernels import make_kernel

NAME = "dual"
ALPHA = 1.5
COSINE = make_kernel("cosine")


def _entropy(route: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return routes.quantity_nats("joint_entropy", [x], [COSINE], ALPHA, "eig", route=route)


def plot(payload: dict, out: Path, d: int) -> None:
    """``dual.png`` from a results payload (also usable on a committed ``dual.json``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    rows = payload["rows"]
    ns = [r["n"] for r in rows]
    gram_pts = [(r["n"], r["gram_eigvalsh_s"]) for r in rows if "gram_eigvalsh_s" in r]
    ax.loglog(*zip(*gram_pts), "s--", label="n x n eigvalsh (gram route)")
    extra = [(r["n"], r["gram_eigvalsh_s_extrapolated"]) for r in rows if "gram_eigvalsh_s_extrapolated" in r]
    if extra:
        ax.loglog(*zip(*extra), "s", mfc="none", color="C0", label="eigvalsh, extrapolated (n^3)")
    ax.loglog(ns, [r["dual_s"] for r in rows], "o-", label=f"d x d dual route (d = {d})")
    naive = [(r["n"], r["naive_eigh_s"]) for r in rows if "naive_eigh_s" in r]
    if naive:
        ax.loglog(*zip(*naive), "^:", label="naive full eigh")
    ax.set(xlabel="n", ylabel="time (s)", title=f"exact entropy, alpha = {ALPHA}, float64")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    save_figure(fig, NAME, out)


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument(
        "--naive-max-n", type=int, default=2048, help="largest n for the naive eigh reference"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="override the sizes n")
    parser.add_argument("--gram-max-n", type=int, default=8192, help="largest n for the n x n eigvalsh route")
    args = parser.parse_args(argv)
    out = output_dir(args)
    sizes = args.sizes or ([256, 512, 1024] if args.quick else [512, 1024, 2048, 4096, 8192])
    rows = []
    last_gram: tuple[int, float] | None = None
    for n in sizes:
        x = features(n, args.d, seed=n, dtype=torch.float64)
        dual = _entropy("dual", x)
        t_dual = time_fn(lambda: _entropy("dual", x), repeats=5)  # noqa: B023
        row = {
            "n": n,
            "d": args.d,
            "dual_s": t_dual["median_s"],
            "entropy_bits": float(dual) / math.log(2.0),
            "auto_route": routes.choose_route("eig", n, [args.d], [COSINE], itemsize=8),
        }
        if n <= args.gram_max_n:
            gram = _entropy("gram", x)
            reps = 1 if n >= 4096 else 3
            t_gram = time_fn(lambda: _entropy("gram", x), repeats=reps, warmup=0 if n >= 4096 else 1)  # noqa: B023
            row["gram_eigvalsh_s"] = t_gram["median_s"]
            row["speedup"] = t_gram["median_s"] / t_dual["median_s"]
            row["rel_diff"] = max_rel_diff(dual, gram)
            last_gram = (n, t_gram["median_s"])
        elif last_gram is not None:  # an n x n eigvalsh here would take many minutes: extrapolate by n^3
            row["gram_eigvalsh_s_extrapolated"] = last_gram[1] * (n / last_gram[0]) ** 3
            row["speedup_extrapolated"] = row["gram_eigvalsh_s_extrapolated"] / t_dual["median_s"]
        if n <= args.naive_max_n:
            t_naive = time_fn(lambda: naive_entropy(x, ALPHA), repeats=reps)  # noqa: B023
            row["naive_eigh_s"] = t_naive["median_s"]
            row["naive_rel_diff"] = max_rel_diff(float(dual) / math.log(2.0), float(naive_entropy(x, ALPHA)))
        rows.append(row)
        print({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    payload = {
        "alpha": ALPHA,
        "dtype": "float64",
        "kernel": "cosine",
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    write_json(NAME, payload, out)
    plot(payload, out, args.d)
    return payload


if __name__ == "__main__":
    main()
