"""Stochastic Lanczos quadrature (``method="lanczos"``) against the exact eigenvalue path.

Data: ``n`` standard-normal samples in ``d = 8`` dimensions, Gaussian kernel with ``sigma = sqrt(d)``
(a concentrated spectrum: a few dominant eigenvalues and a long tail of tiny ones, the hard case for
a Hutchinson estimator and the common case for smooth kernels).

* ``speed``: for n in {4096, 8192}: the exact path (``renyi_info.gram`` + ``torch.linalg.eigvalsh``,
  what ``method="eig"`` does; float64 and float32, timed once per n, the float64 spectrum is the
  truth) against SLQ (matrix-free, float32 and float64 features) at alpha in {0.5, 1.01, 3} over 10
  seeds: time per call, relative error of the entropy, and whether the stated standard error covers
  the truth. One SLQ run per seed serves all alphas (the Lanczos quadrature does not depend on alpha);
  its value equals the public call's (checked for seed 0, which is timed through
  ``renyi_info.entropy(..., method="lanczos")`` for every alpha).
* ``grid``: median relative error against probes, steps and deflation at a smaller n (the accuracy
  table of the docs guide).

``python -m benchmarks.bench_slq [--quick]`` writes ``results/slq.json`` and ``results/slq.png``.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

import torch

import renyi_info
from benchmarks.inputs import features
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json
from renyi_info.algorithms import lanczos as slq
from renyi_info.algorithms.exact import spectral_entropy
from renyi_info.algorithms.lanczos import estimator, operators
from renyi_info.kernels import make_kernel

NAME = "slq"
D = 8
SIGMA = math.sqrt(D)
ALPHAS = (0.5, 1.01, 3.0)
#: (name, LanczosOptions fields, dtypes of the features, seeds in a full run)
CONFIGS = (
    ("fast", {"probes": 16, "steps": 12, "deflate": 16}, (torch.float32, torch.float64), 10),
    ("default", {"probes": 32, "steps": 20, "deflate": 16}, (torch.float64,), 5),
)
HEADLINE_ALPHA = 1.01
GRID_PROBES = (8, 32, 64)
GRID_STEPS = (10, 20, 40)
GRID_DEFLATE = (0, 16)


def _exact(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    k = renyi_info.gram(x, "gaussian", sigma=SIGMA)
    lam = torch.linalg.eigvalsh(k)
    elapsed = time.perf_counter() - start
    del k
    return lam.double(), elapsed


def _run_all_alphas(
    x: torch.Tensor, options: slq.LanczosOptions
) -> tuple[dict[float, tuple[float, float]], float]:
    """One SLQ run (sketch + quadratures) evaluated at every alpha: {alpha: (entropy nats, stderr)}, seconds."""
    start = time.perf_counter()
    flat = x[None]
    op = operators.FeatureOperator([flat], [make_kernel("gaussian", sigma=SIGMA)])
    probes, omega = estimator.draws(x.shape[0], 1, flat, options)
    quad, k = estimator.sketch_and_quadrature(op, probes, omega, options.steps)
    out = {}
    for alpha in ALPHAS:
        est = estimator.entropy_from_parts(estimator.parts_for_alpha(quad, k, alpha), alpha, x.shape[0])
        stderr = float(estimator.stderr_from_residuals(est.residuals, est.dof)[0])
        out[alpha] = (float(est.entropy[0]), stderr, float(est.bracket[0]))
    return out, time.perf_counter() - start


def _options(seed: int, **kw: int) -> slq.LanczosOptions:
    return slq.LanczosOptions(generator=torch.Generator().manual_seed(seed), **kw)


def speed(sizes: list[int], quick: bool) -> list[dict]:
    rows = []
    for n in sizes:
        x64 = features(n, D, seed=0, dtype=torch.float64)
        lam, t_exact64 = _exact(x64)
        truth = {a: float(spectral_entropy(lam, a)) for a in ALPHAS}
        lam32, t_exact32 = _exact(x64.float())
        exact32_err = {a: (float(spectral_entropy(lam32.float(), a)) - truth[a]) / truth[a] for a in ALPHAS}
        print(
            f"n={n}: exact float64 {t_exact64:.1f} s, float32 {t_exact32:.1f} s (load {os.getloadavg()[0]:.1f}); "
            f"truth (nats) {truth}",
            flush=True,
        )
        for config, fields, dtypes, full_seeds in CONFIGS:
            seeds = 3 if quick else full_seeds
            for dtype in dtypes:
                x = x64.to(dtype)
                start = time.perf_counter()  # the public API, timed, seed 0
                public = renyi_info.entropy(
                    x,
                    alpha=HEADLINE_ALPHA,
                    kernel="gaussian",
                    sigma=SIGMA,
                    base=math.e,
                    method="lanczos",
                    lanczos=_options(0, **fields),
                )
                t_public = time.perf_counter() - start
                per_seed, times = [], []
                for seed in range(seeds):
                    vals, elapsed = _run_all_alphas(x, _options(seed, **fields))
                    per_seed.append(vals)
                    times.append(elapsed)
                same = per_seed[0][HEADLINE_ALPHA][0]
                assert abs(same - float(public)) <= 1e-9 * max(1.0, abs(same)), (same, float(public))
                for alpha in ALPHAS:
                    errs = [(v[alpha][0] - truth[alpha]) / truth[alpha] for v in per_seed]
                    covered = [abs(v[alpha][0] - truth[alpha]) <= 2 * v[alpha][1] for v in per_seed]
                    bracketed = [
                        abs(v[alpha][0] - truth[alpha]) <= 2 * v[alpha][1] + v[alpha][2] for v in per_seed
                    ]
                    row = {
                        "n": n,
                        "config": config,
                        "options": fields,
                        "dtype": str(dtype).replace("torch.", ""),
                        "alpha": alpha,
                        "truth_nats": truth[alpha],
                        "estimates_nats": [v[alpha][0] for v in per_seed],
                        "stderr_nats": [v[alpha][1] for v in per_seed],
                        "quadrature_nats": [v[alpha][2] for v in per_seed],
                        "rel_errors": errs,
                        "median_abs_rel_error": statistics.median(abs(e) for e in errs),
                        "max_abs_rel_error": max(abs(e) for e in errs),
                        "coverage_2se": sum(covered) / len(covered),
                        "coverage_2se_plus_quadrature": sum(bracketed) / len(bracketed),
                        "load_average_1min": os.getloadavg()[0],
                        "slq_public_call_time_s": t_public,
                        "slq_time_per_seed_s": times,
                        "slq_time_s": statistics.median([t_public, *times]),
                        "exact_float64_time_s": t_exact64,
                        "exact_float32_time_s": t_exact32,
                        "exact_float32_rel_error": exact32_err[alpha],
                    }
                    row["speedup_vs_exact_float64"] = t_exact64 / row["slq_time_s"]
                    row["speedup_vs_exact_float32"] = t_exact32 / row["slq_time_s"]
                    rows.append(row)
                    print(
                        f"  {config} {row['dtype']} alpha={alpha}: SLQ {row['slq_time_s']:.2f} s, "
                        f"x{row['speedup_vs_exact_float64']:.1f} vs exact f64, "
                        f"x{row['speedup_vs_exact_float32']:.1f} vs f32; median |rel err| "
                        f"{row['median_abs_rel_error']:.2e}, max {row['max_abs_rel_error']:.2e}, "
                        f"2-se coverage {row['coverage_2se']:.0%}",
                        flush=True,
                    )
    return rows


def grid(n: int, seeds: int) -> list[dict]:
    x = features(n, D, seed=1, dtype=torch.float64)
    lam, _ = _exact(x)
    truth = {a: float(spectral_entropy(lam, a)) for a in ALPHAS}
    rows = []
    for deflate in GRID_DEFLATE:
        for probes in GRID_PROBES:
            for steps in GRID_STEPS:
                runs = [
                    _run_all_alphas(x, _options(s, probes=probes, steps=steps, deflate=deflate))
                    for s in range(seeds)
                ]
                for alpha in ALPHAS:
                    errs = [abs(r[0][alpha][0] - truth[alpha]) / truth[alpha] for r in runs]
                    rows.append(
                        {
                            "n": n,
                            "probes": probes,
                            "steps": steps,
                            "deflate": deflate,
                            "alpha": alpha,
                            "median_abs_rel_error": statistics.median(errs),
                            "max_abs_rel_error": max(errs),
                            "median_stderr_rel": statistics.median(
                                r[0][alpha][1] / truth[alpha] for r in runs
                            ),
                            "median_time_s": statistics.median(r[1] for r in runs),
                        }
                    )
                print(
                    f"grid n={n} deflate={deflate} probes={probes} steps={steps}: "
                    + ", ".join(
                        f"a={r['alpha']}: {r['median_abs_rel_error']:.1e}" for r in rows[-len(ALPHAS) :]
                    ),
                    flush=True,
                )
    return rows


def markdown_tables(speed_rows: list[dict], grid_rows: list[dict]) -> str:
    lines = [
        "| n | options (probes/steps/deflate) | dtype | alpha | SLQ time (s) | exact f64 (s) | speed-up "
        "| median rel. error | max rel. error | 2-se coverage | 2-se + quadrature coverage |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in speed_rows:
        lines.append(
            f"| {r['n']} | {r['options']['probes']}/{r['options']['steps']}/{r['options']['deflate']} | {r['dtype']} "
            f"| {r['alpha']} | {r['slq_time_s']:.2f} | {r['exact_float64_time_s']:.1f} | "
            f"{r['speedup_vs_exact_float64']:.1f}x | {100 * r['median_abs_rel_error']:.2g}% | "
            f"{100 * r['max_abs_rel_error']:.2g}% | {r['coverage_2se']:.0%} | {r['coverage_2se_plus_quadrature']:.0%} |"
        )
    lines += [
        "",
        "| deflate | probes | steps | " + " | ".join(f"alpha = {a}" for a in ALPHAS) + " |",
        "| ---: | ---: | ---: | " + " | ".join("---:" for _ in ALPHAS) + " |",
    ]
    for i in range(0, len(grid_rows), len(ALPHAS)):
        g = grid_rows[i : i + len(ALPHAS)]
        cells = " | ".join(f"{100 * r['median_abs_rel_error']:.2g}%" for r in g)
        lines.append(f"| {g[0]['deflate']} | {g[0]['probes']} | {g[0]['steps']} | {cells} |")
    return "\n".join(lines) + "\n"


def plot(speed_rows: list[dict], grid_rows: list[dict], out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    sizes = sorted({r["n"] for r in speed_rows})
    first = [next(r for r in speed_rows if r["n"] == n) for n in sizes]
    ax.plot(sizes, [r["exact_float64_time_s"] for r in first], "o-k", label="exact (eigvalsh) float64")
    ax.plot(sizes, [r["exact_float32_time_s"] for r in first], "o--", color="gray", label="exact float32")
    for (config, fields, dtypes, _), color in zip(CONFIGS, ("C0", "C1")):
        for dtype, style in zip(dtypes, ("s--", "s-") if len(dtypes) == 2 else ("s-",)):
            name = str(dtype).replace("torch.", "")
            ts = [
                next(
                    r["slq_time_s"]
                    for r in speed_rows
                    if r["n"] == n and r["dtype"] == name and r["config"] == config
                )
                for n in sizes
            ]
            label = f"SLQ {fields['probes']}/{fields['steps']}/{fields['deflate']} {name}"
            ax.plot(sizes, ts, style, color=color, label=label)
    ax.set(
        xscale="log", yscale="log", xlabel="n", ylabel="seconds per entropy", title="time (Gaussian kernel)"
    )
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xticks([], minor=True)
    ax.legend(fontsize=8)
    ax = axes[1]
    n_max = max(sizes)
    labels, data = [], []
    for r in speed_rows:
        if r["n"] == n_max:
            labels.append(f"{r['config']} {r['dtype'][-2:]}\nα={r['alpha']}")
            data.append([100 * abs(e) for e in r["rel_errors"]])
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.axhline(1.0, color="r", lw=0.8, ls=":")
    ax.set(yscale="log", ylabel="|relative error| (%)", title=f"SLQ error over seeds, n = {n_max}")
    ax = axes[2]
    for alpha, color in zip(ALPHAS, ("C1", "C2", "C3")):
        for deflate, style in zip(GRID_DEFLATE, (":", "-")):
            rows = [
                r for r in grid_rows if r["alpha"] == alpha and r["deflate"] == deflate and r["probes"] == 32
            ]
            ax.plot(
                [r["steps"] for r in rows],
                [100 * r["median_abs_rel_error"] for r in rows],
                style,
                marker="o",
                color=color,
                label=f"α={alpha}, deflate={deflate}",
            )
    ax.set(
        yscale="log",
        xlabel="Lanczos steps (probes = 32)",
        ylabel="median |rel. error| (%)",
        title=f"accuracy vs steps, n = {grid_rows[0]['n']}",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, NAME, out)


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__ or NAME)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = output_dir(args)
    sizes = [256, 512] if args.quick else [4096, 8192]
    speed_rows = speed(sizes, args.quick)
    grid_rows = grid(256 if args.quick else 1024, 2 if args.quick else 5)
    payload = {
        "config": {
            "d": D,
            "sigma": SIGMA,
            "alphas": ALPHAS,
            "configs": [
                {"name": c, "options": f, "dtypes": [str(t) for t in ts], "seeds": k}
                for c, f, ts, k in CONFIGS
            ],
            "headline_alpha": HEADLINE_ALPHA,
            "sizes": sizes,
            "grid": {"probes": GRID_PROBES, "steps": GRID_STEPS, "deflate": GRID_DEFLATE},
            "data": "benchmarks.inputs.features(n, 8, seed=0) (standard normal), Gaussian kernel",
        },
        "speed": speed_rows,
        "grid": grid_rows,
    }
    write_json(NAME, payload, out)
    (out / f"{NAME}.md").write_text(markdown_tables(speed_rows, grid_rows))
    plot(speed_rows, grid_rows, out)
    return payload


if __name__ == "__main__":
    main()
