"""SLQ with DEFAULT options against float64 ``eigvalsh``: the speed-up at n = 8192, alpha = 1.01.

Data as in ``bench_slq.py``: ``n`` standard-normal samples in ``d = 8``, Gaussian kernel with ``sigma = sqrt(8)``.

* **exact**: ``renyi_info.gram`` (float64) + ``torch.linalg.eigvalsh`` + the spectral entropy, what
  ``method="eig"`` does, timed once (about a minute at n = 8192 on 2 cores: repeats are not affordable on the
  shared machine, and a single LAPACK call varies little);
* **SLQ**: ``renyi_info.entropy(x, alpha=1.01, kernel="gaussian", sigma=sqrt(8), method="lanczos",
  lanczos=LanczosOptions(generator=...))``: the public call with default options (only the seed set), float64
  features, one call per seed for 10 seeds, each timed.

Reported: the ratio exact time / median SLQ time, measured in this one run, and the median and maximum
relative error of the 10 estimates against the exact entropy. The machine's load average is recorded: the
two cores are shared, so absolute times move with the load; the ratio is what the run measured.

    python -m benchmarks.bench_slq_default [--quick] [--out DIR] [--n N] [--seeds S]

Writes ``results/slq_default.json`` and ``results/slq_default.png``.
"""

from __future__ import annotations

import math
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py: spinning OpenMP workers
import torch

import renyi_info
from benchmarks.inputs import features
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json
from renyi_info.algorithms.exact import spectral_entropy

NAME = "slq_default"
D = 8
SIGMA = math.sqrt(D)
ALPHA = 1.01
#: The targets: speed-up >= 10x against float64 eigvalsh, median relative error <= 1 % over 10 seeds.
TARGET_SPEEDUP = 10.0
TARGET_MEDIAN_ERROR = 0.01


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192, help="number of samples")
    parser.add_argument("--seeds", type=int, default=10, help="SLQ seeds")
    args = parser.parse_args(argv)
    out = output_dir(args)
    n = 512 if args.quick else args.n
    seeds = 2 if args.quick else args.seeds
    x = features(n, D, seed=0, dtype=torch.float64)
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    lam = torch.linalg.eigvalsh(renyi_info.gram(x, "gaussian", sigma=SIGMA))
    exact = float(spectral_entropy(lam, ALPHA))
    t_exact = time.perf_counter() - start
    del lam
    print(f"n={n}: exact float64 eigvalsh {t_exact:.1f} s, S = {exact:.6f} nats", flush=True)

    estimates, times = [], []
    for seed in range(seeds):
        options = renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(seed))
        start = time.perf_counter()
        value = renyi_info.entropy(
            x, alpha=ALPHA, kernel="gaussian", sigma=SIGMA, base=math.e, method="lanczos", lanczos=options
        )
        times.append(time.perf_counter() - start)
        estimates.append(float(value))
        print(
            f"  seed {seed}: {times[-1]:.2f} s, rel. error {(estimates[-1] - exact) / exact:+.3e}", flush=True
        )
    errors = [(e - exact) / exact for e in estimates]
    t_slq = statistics.median(times)
    defaults = renyi_info.LanczosOptions()
    payload = {
        "n": n,
        "d": D,
        "sigma": SIGMA,
        "alpha": ALPHA,
        "seeds": seeds,
        "default_options": {
            f: getattr(defaults, f) if f != "matvec_dtype" else str(getattr(defaults, f))
            for f in ("probes", "steps", "deflate", "tol", "matvec_dtype")
            if hasattr(defaults, f)
        },
        "exact_nats": exact,
        "exact_float64_time_s": t_exact,
        "slq_times_s": times,
        "slq_median_time_s": t_slq,
        "speedup": t_exact / t_slq,
        "estimates_nats": estimates,
        "rel_errors": errors,
        "median_abs_rel_error": statistics.median(abs(e) for e in errors),
        "max_abs_rel_error": max(abs(e) for e in errors),
        "targets": {"speedup": TARGET_SPEEDUP, "median_abs_rel_error": TARGET_MEDIAN_ERROR},
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }
    payload["speedup_met"] = payload["speedup"] >= TARGET_SPEEDUP
    payload["accuracy_met"] = payload["median_abs_rel_error"] <= TARGET_MEDIAN_ERROR
    print(
        f"speed-up {payload['speedup']:.1f}x (target {TARGET_SPEEDUP:g}x); median |rel. error| "
        f"{payload['median_abs_rel_error']:.2e}, max {payload['max_abs_rel_error']:.2e} (target "
        f"{TARGET_MEDIAN_ERROR:g})",
        flush=True,
    )
    write_json(NAME, payload, out)

    plt = pyplot()
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_t.bar(["eigvalsh float64", "SLQ defaults (median)"], [t_exact, t_slq], color=["gray", "C0"])
    ax_t.set(ylabel="seconds", yscale="log", title=f"n = {n}, alpha = {ALPHA}: {payload['speedup']:.1f}x")
    ax_e.plot(range(seeds), [100 * abs(e) for e in errors], "o", color="C0")
    ax_e.axhline(100 * TARGET_MEDIAN_ERROR, color="r", ls=":", lw=0.8, label="1 % target")
    ax_e.set(
        xlabel="seed",
        ylabel="|relative error| (%)",
        yscale="log",
        title=f"median {100 * payload['median_abs_rel_error']:.2g} %",
    )
    ax_e.legend(fontsize=8)
    save_figure(fig, NAME, out)
    return payload


if __name__ == "__main__":
    main()
