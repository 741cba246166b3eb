"""Crossovers of the routes behind ``method="auto"`` (the numbers the cost model in renyi_info.algorithms.routes uses).

Times each route of one quantity at growing ``n`` (forward + backward, float32 unless stated) and reports
the smallest ``n`` at which the faster route changes, together with the route the cost model picks:

* ``gram_vs_fused``: alpha = 2 entropy of a Gaussian-kernel Gram (no feature route exists);
* ``fused_vs_feature``: alpha = 2 mutual information between two cosine feature sets, d = 8, 16, 32
  (the vech-feature route costs ``n p^2``, the fused one ``n^2 d``);
* ``gram_vs_dual``: exact alpha = 1.5 entropy, cosine kernel, d = 64, float64.

``python -m benchmarks.bench_routes [--quick]`` writes ``results/routes.json`` and ``results/routes.png``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py
import torch

from benchmarks.inputs import features
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure
from benchmarks.results_io import write_json as _write_json
from benchmarks.timing import make_step, time_interleaved
from renyi_info.algorithms import routes
from renyi_info.kernels import make_kernel

NAME = "routes"


def _entropy(route: str, spec, alpha: float = 2.0, method: str = "frobenius"):
    return lambda x: routes.quantity_nats("joint_entropy", [x], [spec], alpha, method, route=route)


def _mi(route: str, spec):
    return lambda x, y: routes.quantity_nats(
        "mutual_information", [x, y], [spec, spec], 2.0, "frobenius", route=route
    )


def _crossover(rows: list[dict], a: str, b: str) -> int | None:
    """Smallest n from which route ``b`` is faster than ``a`` at every larger measured n."""
    best = None
    for row in reversed(rows):
        if row[b] < row[a]:
            best = row["n"]
        else:
            break
    return best


def main(argv: list[str] | None = None) -> dict:
    args = make_parser(__doc__ or NAME).parse_args(argv)
    out = output_dir(args)
    quick = args.quick
    reps = 2 if quick else 3
    results: dict = {"series": {}, "crossovers": {}}

    gauss = make_kernel("gaussian", sigma=4.0)
    rows = []
    for n in [64, 256, 1024] if quick else [64, 128, 256, 512, 1024, 2048]:
        x = features(n, 16, seed=1)
        t = time_interleaved(
            {r: make_step(_entropy(r, gauss), [x], backward=True) for r in ("gram", "fused")}, repeats=reps
        )
        row = {"n": n, **{r: v["median_s"] for r, v in t.items()}}
        row["auto"] = routes.choose_route("frobenius", n, [16], [gauss], requires_grad=True)
        rows.append(row)
        print("gram_vs_fused", row, flush=True)
    results["series"]["gram_vs_fused"] = rows
    results["crossovers"]["gram_vs_fused"] = _crossover(rows, "gram", "fused")

    cos = make_kernel("cosine")
    for d in [8, 16] if quick else [8, 16, 32]:
        rows = []
        for n in [256, 1024, 4096] if quick else [256, 1024, 4096, 16384]:
            x, y = features(n, d, seed=2), features(n, d, seed=3)
            fns = {r: make_step(_mi(r, cos), [x, y], backward=True) for r in ("fused", "feature")}
            t = time_interleaved(fns, repeats=reps, max_time_s=20.0)
            row = {"n": n, **{r: v["median_s"] for r, v in t.items()}}
            row["auto"] = routes.choose_route("frobenius", n, [d, d], [cos, cos], requires_grad=True)
            rows.append(row)
            print(f"fused_vs_feature d={d}", row, flush=True)
        results["series"][f"fused_vs_feature_d{d}"] = rows
        results["crossovers"][f"fused_vs_feature_d{d}"] = _crossover(rows, "fused", "feature")

    rows = []
    for n in [64, 128, 256] if quick else [32, 64, 128, 256, 512]:
        x = features(n, 64, seed=4, dtype=torch.float64)
        fns = {r: make_step(_entropy(r, cos, 1.5, "eig"), [x], backward=True) for r in ("gram", "dual")}
        t = time_interleaved(fns, repeats=reps)
        row = {"n": n, **{r: v["median_s"] for r, v in t.items()}}
        row["auto"] = routes.choose_route("eig", n, [64], [cos], itemsize=8, requires_grad=True)
        rows.append(row)
        print("gram_vs_dual", row, flush=True)
    results["series"]["gram_vs_dual"] = rows
    results["crossovers"]["gram_vs_dual"] = _crossover(rows, "gram", "dual")

    _write_json(NAME, results, out)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results["series"]), figsize=(4 * len(results["series"]), 3.2))
    for ax, (key, rows) in zip(axes, results["series"].items()):
        for r in [k for k in rows[0] if k not in ("n", "auto")]:
            ax.loglog([row["n"] for row in rows], [row[r] for row in rows], "o-", label=r)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("n")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("forward + backward (s)")
    save_figure(fig, NAME, out)
    print("crossovers (first n where the second route wins):", results["crossovers"])
    return results


if __name__ == "__main__":
    main()
