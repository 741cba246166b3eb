"""Exact routes of renyi_info (eig, frobenius, power, auto) against the naive research-code reference.

For entropy ``S_α(x)`` and mutual information ``I_α(x; y)`` of cosine-kernel Grams of ``n`` samples
with ``d = 64`` features (float32), this times the forward pass (under ``torch.no_grad``) and the
forward+backward pass (autograd) of every method and of the naive reference
(`benchmarks.naive.naive_entropy` / `benchmarks.naive.naive_mutual_information`:
materialised normalised Grams and Hadamard product, full ``torch.linalg.eigh`` with eigenvectors),
for α = 2 (all methods, n = 64 ... 4096), α = 1.5 (eig, the only exact route) and α = 3 (power vs eig),
both up to n = 1024. "eig" is the feature API with the route its cost model picks (for these
dot-product kernels possibly the d x d dual route); "eig_gram" forces the n x n eigenvalue route through
the matrix API (``renyi_info.gram`` then ``renyi_info.matrix.entropy``); the route chosen for every entropy
term is recorded. Each method's forward value is compared with the naive value of the same run (max
relative difference recorded).

Methods and reference are timed round-robin (so that they share the machine's load); configurations
whose predicted time (previous size's time × (n/n_prev)³) exceeds ``--max-call-s`` are skipped and the
reason recorded. Writes ``exact.json``, ``exact.png`` (α = 2) and ``exact_alpha.png`` (α = 1.5, 3).

    python -m benchmarks.bench_exact [--quick] [--out DIR] [--max-call-s SECONDS] [--sizes N ...]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

import renyi_info
from benchmarks.inputs import paired_features
from benchmarks.naive import max_rel_diff, naive_entropy, naive_mutual_information
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json
from benchmarks.timing import make_step, time_interleaved
from renyi_info import matrix

NAME = "exact"
D = 64
DTYPE = torch.float32
KERNEL = "cosine"
SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
QUICK_SIZES = (32, 64)

#: (quantity, alpha, methods, largest n). "naive" is the reference every ratio is taken against.
#: "eig_gram" is the n x n eigenvalue route forced through the matrix API (``renyi_info.gram`` then
#: ``renyi_info.matrix.entropy(..., method="eig")``); the feature API's "eig" lets the cost model pick a
#: route (for dot-product kernels possibly the d x d dual one).
CASES: tuple[tuple[str, float, tuple[str, ...], int], ...] = (
    ("entropy", 2.0, ("naive", "eig", "eig_gram", "frobenius", "power", "auto"), 4096),
    ("mi", 2.0, ("naive", "eig", "eig_gram", "frobenius", "power", "auto"), 4096),
    ("entropy", 1.5, ("naive", "eig", "eig_gram"), 1024),
    ("mi", 1.5, ("naive", "eig", "eig_gram"), 1024),
    ("entropy", 3.0, ("naive", "eig", "eig_gram", "power", "auto"), 1024),
    ("mi", 3.0, ("naive", "eig", "eig_gram", "power", "auto"), 1024),
)
LABELS = {
    "naive": "naive (eigh + eigenvectors)",
    "eig": "eig",
    "eig_gram": "eig, n×n Gram (matrix API)",
    "frobenius": "frobenius",
    "power": "power",
    "auto": "auto",
}
PASSES = ("forward", "forward+backward")


def schedule(n: int, quick: bool) -> dict[str, Any]:
    """Warm-up, repeats and per-method time budget for size ``n``.

    From n = 1024 on there is no warm-up call: the median of up to three calls drops a cold first call of
    a fast method, and a slow method (one call over ``max_time_s``) is timed once.
    """
    if quick:
        return {"warmup": 1, "repeats": 1, "max_time_s": 1.0}
    if n <= 256:
        return {"warmup": 2, "repeats": 7, "max_time_s": 1.0}
    if n <= 512:
        return {"warmup": 1, "repeats": 5, "max_time_s": 2.0}
    return {"warmup": 0, "repeats": 3, "max_time_s": 3.0}


def function(quantity: str, alpha: float, method: str) -> Callable[..., torch.Tensor]:
    """The callable for one (quantity, alpha, method): inputs ``(x,)`` for entropy, ``(x, y)`` for MI, in bits."""
    if quantity == "entropy":
        if method == "naive":
            return lambda x: naive_entropy(x, alpha, KERNEL)
        if method == "eig_gram":
            return lambda x: matrix.entropy(renyi_info.gram(x, KERNEL), alpha=alpha, method="eig")
        return lambda x: renyi_info.entropy(x, alpha=alpha, kernel=KERNEL, method=method)
    if method == "naive":
        return lambda x, y: naive_mutual_information(x, y, alpha, KERNEL)
    if method == "eig_gram":
        return lambda x, y: matrix.mutual_information(
            renyi_info.gram(x, KERNEL), renyi_info.gram(y, KERNEL), alpha=alpha, method="eig"
        )
    return lambda x, y: renyi_info.mutual_information(x, y, alpha=alpha, kernel=KERNEL, method=method)


def route_info(quantity: str, alpha: float, method: str, n: int, backward: bool) -> dict[str, Any]:
    """The resolved method and, per entropy term, the route renyi_info's cost model picks (best effort)."""
    if method == "naive":
        return {"resolved_method": "eig", "routes": ["naive eigh"]}
    terms = [[D]] if quantity == "entropy" else [[D], [D], [D, D]]
    try:
        from renyi_info.algorithms import routes
        from renyi_info.gram_level import resolve_method
        from renyi_info.kernels import make_kernel

        resolved = resolve_method("eig" if method == "eig_gram" else method, alpha)
        if method == "eig_gram":
            return {"resolved_method": resolved, "routes": ["gram"] * len(terms)}
        spec = make_kernel(KERNEL)
        chosen = [
            routes.choose_route(
                resolved, n, dims, [spec] * len(dims), itemsize=4, requires_grad=backward, device_type="cpu"
            )
            for dims in terms
        ]
        return {"resolved_method": resolved, "routes": chosen}
    except Exception as exc:  # an internal API changed: the timing stays valid, the label is unknown
        return {"resolved_method": None, "routes": None, "route_error": repr(exc)}


def _forward_keeping(
    fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], values: dict[str, torch.Tensor], key: str
) -> Callable[[], None]:
    """A forward closure (``torch.no_grad``) that keeps its output in ``values[key]`` for the value check."""

    def forward() -> None:
        with torch.no_grad():
            values[key] = fn(*inputs)

    return forward


def run_case(
    quantity: str,
    alpha: float,
    methods: tuple[str, ...],
    sizes: list[int],
    quick: bool,
    max_call_s: float,
) -> list[dict[str, Any]]:
    """All records for one (quantity, alpha): one per (n, pass, method)."""
    records: list[dict[str, Any]] = []
    last: dict[tuple[str, str], tuple[int, float]] = {}  # (pass, method) -> (n, median seconds)
    for n in sizes:
        x, y = paired_features(n, D, D, seed=n, dtype=DTYPE)
        inputs = [x] if quantity == "entropy" else [x, y]
        values: dict[str, torch.Tensor] = {}
        for pass_ in PASSES:
            fns: dict[str, Callable[[], None]] = {}
            skipped: dict[str, str] = {}
            for method in methods:
                prev = last.get((pass_, method))
                if prev is not None:
                    predicted = prev[1] * (n / prev[0]) ** 3
                    if predicted > max_call_s:
                        skipped[method] = f"predicted {predicted:.0f} s > --max-call-s {max_call_s:g}"
                        continue
                fn = function(quantity, alpha, method)
                if pass_ == "forward":
                    fns[method] = _forward_keeping(fn, inputs, values, method)
                else:
                    fns[method] = make_step(fn, inputs, backward=True)
            timings = time_interleaved(fns, **schedule(n, quick)) if fns else {}
            for method in methods:
                rec: dict[str, Any] = {
                    "quantity": quantity,
                    "alpha": alpha,
                    "pass": pass_,
                    "n": n,
                    "method": method,
                    **route_info(quantity, alpha, method, n, pass_ != "forward"),
                }
                if method in skipped:
                    rec["skipped"] = skipped[method]
                else:
                    rec["timing"] = timings[method]
                    last[(pass_, method)] = (n, timings[method]["median_s"])
                records.append(rec)
        # ratios and accuracy against the naive reference of the same n and pass
        for rec in records:
            if rec["n"] != n or "timing" not in rec:
                continue
            ref = next(
                (r for r in records if r["n"] == n and r["pass"] == rec["pass"] and r["method"] == "naive"),
                None,
            )
            if ref is not None and "timing" in ref:
                rec["speedup_vs_naive"] = ref["timing"]["median_s"] / rec["timing"]["median_s"]
            if rec["pass"] == "forward" and rec["method"] in values:
                rec["value_bits"] = float(values[rec["method"]])
                if "naive" in values:
                    rec["rel_diff_vs_naive"] = max_rel_diff(values[rec["method"]], values["naive"])
        done = [r for r in records if r["n"] == n and "timing" in r]
        summary = ", ".join(
            f"{r['method']}/{'fwd' if r['pass'] == 'forward' else 'f+b'} {r['timing']['median_s'] * 1e3:.1f}ms"
            for r in done
        )
        print(f"  {quantity} alpha={alpha:g} n={n}: {summary}", flush=True)
    return records


def headline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed-up vs naive at the largest n where both were measured, per (quantity, alpha, pass, method)."""
    rows = []
    keys = sorted(
        {(r["quantity"], r["alpha"], r["pass"], r["method"]) for r in records if r["method"] != "naive"}
    )
    for quantity, alpha, pass_, method in keys:
        measured = [
            r
            for r in records
            if (r["quantity"], r["alpha"], r["pass"], r["method"]) == (quantity, alpha, pass_, method)
            and "speedup_vs_naive" in r
        ]
        if not measured:
            continue
        best = max(measured, key=lambda r: r["n"])
        rows.append(
            {
                "quantity": quantity,
                "alpha": alpha,
                "pass": pass_,
                "method": method,
                "n": best["n"],
                "speedup_vs_naive": best["speedup_vs_naive"],
                "median_s": best["timing"]["median_s"],
            }
        )
    return rows


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _find(records: list[dict[str, Any]], **key: Any) -> dict[str, Any] | None:
    for r in records:
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def markdown(records: list[dict[str, Any]]) -> str:
    """Two markdown tables: per method at the largest n with a naive reference, and speed-up by n (α = 2)."""
    lines = [
        "| quantity | α | method | routes (fwd+bwd) | n | forward | × naive | fwd+bwd | × naive | rel. diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for quantity, alpha, methods, _ in CASES:
        for method in methods:
            both = [
                r["n"]
                for r in records
                if (r["quantity"], r["alpha"], r["method"], r["pass"])
                == (quantity, alpha, method, "forward+backward")
                and ("speedup_vs_naive" in r or (method == "naive" and "timing" in r))
            ]
            if not both:
                continue
            n = max(both)
            fwd = _find(records, quantity=quantity, alpha=alpha, method=method, n=n, **{"pass": "forward"})
            fb = _find(
                records, quantity=quantity, alpha=alpha, method=method, n=n, **{"pass": "forward+backward"}
            )
            assert fb is not None
            cells = [quantity if quantity == "entropy" else "MI", f"{alpha:g}", LABELS[method]]
            cells.append(", ".join(fb.get("routes") or ["?"]))
            cells.append(str(n))
            for r in (fwd, fb):
                if r is None or "timing" not in r:
                    cells += ["–", "–"]
                else:
                    cells.append(_fmt_time(r["timing"]["median_s"]))
                    cells.append(f"{r['speedup_vs_naive']:.1f}×" if "speedup_vs_naive" in r else "–")
            diff = fwd.get("rel_diff_vs_naive") if fwd else None
            cells.append("ref." if method == "naive" else (f"{diff:.1e}" if diff is not None else "–"))
            lines.append("| " + " | ".join(cells) + " |")
    sizes = sorted({r["n"] for r in records if r["alpha"] == 2.0})
    lines += [
        "",
        "| α = 2, fwd+bwd × naive | " + " | ".join(f"n={n}" for n in sizes) + " |",
        "| --- | " + " | ".join("---" for _ in sizes) + " |",
    ]
    for quantity in ("entropy", "mi"):
        for method in CASES[0][2][1:]:
            cells = []
            for n in sizes:
                r = _find(
                    records, quantity=quantity, alpha=2.0, method=method, n=n, **{"pass": "forward+backward"}
                )
                cells.append(f"{r['speedup_vs_naive']:.1f}×" if r and "speedup_vs_naive" in r else "–")
            name = "entropy" if quantity == "entropy" else "MI"
            lines.append(f"| {name}, {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict[str, Any]], alphas: tuple[float, ...], title: str) -> Any:
    """Times (top row) and speed-ups vs naive (bottom row) against n, per quantity and pass."""
    plt = pyplot()
    panels = [(q, p) for q in ("entropy", "mi") for p in PASSES]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.4 * len(panels), 8.0), sharex=True)
    fig.subplots_adjust(wspace=0.25, hspace=0.12)
    styles = {"naive": "k", "eig": "C0", "eig_gram": "C4", "frobenius": "C1", "power": "C2", "auto": "C3"}
    markers = {2.0: "o", 1.5: "s", 3.0: "^"}
    for col, (quantity, pass_) in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        for alpha in alphas:
            for method in styles:
                rs = [
                    r
                    for r in records
                    if r["quantity"] == quantity
                    and r["pass"] == pass_
                    and r["alpha"] == alpha
                    and r["method"] == method
                    and "timing" in r
                ]
                if not rs:
                    continue
                label = LABELS[method] if len(alphas) == 1 else f"{LABELS[method]} (α={alpha:g})"
                style = {
                    "color": styles[method],
                    "marker": markers.get(alpha, "o"),
                    "linestyle": "--" if method == "auto" else "-",
                }
                top.loglog([r["n"] for r in rs], [r["timing"]["median_s"] for r in rs], label=label, **style)
                sp = [r for r in rs if "speedup_vs_naive" in r and method != "naive"]
                if sp:
                    bottom.loglog(
                        [r["n"] for r in sp], [r["speedup_vs_naive"] for r in sp], label=label, **style
                    )
        name = "entropy" if quantity == "entropy" else "mutual information"
        top.set_title(f"{name}, {pass_}")
        bottom.axhline(1.0, color="gray", linewidth=0.8)
        if col == 0:
            top.set_ylabel("median time (s)")
            bottom.set_ylabel("speed-up vs naive (×)")
        bottom.set_xlabel("n (samples), d = 64")
        for ax in (top, bottom):
            ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--max-call-s",
        type=float,
        default=90.0,
        help="skip a configuration whose predicted single-call time exceeds this (default 90)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="override the list of n")
    args = parser.parse_args(argv)
    out = output_dir(args)
    sizes = list(args.sizes or (QUICK_SIZES if args.quick else SIZES))
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    for quantity, alpha, methods, n_max in CASES:
        case_sizes = [n for n in sizes if n <= n_max] if not args.quick and args.sizes is None else sizes
        print(f"{quantity} alpha={alpha:g}: methods {methods}, n in {case_sizes}", flush=True)
        records += run_case(quantity, alpha, methods, case_sizes, args.quick, args.max_call_s)
    rows = headline(records)
    rel = [r["rel_diff_vs_naive"] for r in records if "rel_diff_vs_naive" in r and r["method"] != "naive"]
    payload = {
        "description": __doc__.splitlines()[0],
        "config": {
            "d": D,
            "dtype": str(DTYPE),
            "kernel": KERNEL,
            "sizes": sizes,
            "cases": [
                {"quantity": q, "alpha": a, "methods": list(m), "max_n": n_max} for q, a, m, n_max in CASES
            ],
            "quick": args.quick,
            "max_call_s": args.max_call_s,
            "forward": "under torch.no_grad",
            "forward+backward": "torch.autograd.grad of the output w.r.t. the features",
            "naive": "normalised Grams and Hadamard product materialised, torch.linalg.eigh with eigenvectors",
        },
        "max_rel_diff_vs_naive": max(rel) if rel else None,
        "headline": rows,
        "records": records,
        "wall_s": time.perf_counter() - start,
    }
    path = write_json(NAME, payload, out)
    (out / f"{NAME}.md").write_text(markdown(records))
    save_figure(
        plot(records, (2.0,), "Exact routes vs naive eigh, α = 2 (cosine kernel, float32)"), NAME, out
    )
    fig = plot(records, (1.5, 3.0), "Exact routes vs naive eigh, α = 1.5 and 3 (cosine kernel, float32)")
    save_figure(fig, f"{NAME}_alpha", out)
    print(
        f"wrote {path} ({payload['wall_s']:.0f} s); max rel. diff vs naive {payload['max_rel_diff_vs_naive']}"
    )
    for r in rows:
        print(
            f"  {r['quantity']:7s} α={r['alpha']:g} {r['pass']:16s} {r['method']:9s} n={r['n']}: "
            f"{r['speedup_vs_naive']:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
