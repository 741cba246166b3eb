"""Fused alpha = 2 mutual information against the naive materialised-Gram code: time, memory, GFLOP/s.

The quantity is ``I_2(x; y)`` between two cosine feature sets (float32), forward + backward. The fused
route (`renyi_info.algorithms.fused`) streams tiles of the sample-pair grid for all three terms in one pass and
recomputes them in the backward pass ("fused"); "auto" is ``renyi_info.mutual_information(x, y)`` as a
user calls it (the cost model sends the two marginal terms to the feature route ``||ZᵀZ||²`` and the
joint term to the fused route); the naive reference is what research code does for alpha = 2:
materialise ``A = K_x / tr K_x``, ``B``, ``A∘B / tr(A∘B)`` and take ``-log2 sum(M^2)`` of each, with
autograd (`naive_mi2`).

Each configuration runs once in a fresh subprocess (`benchmarks.memory.peak_memory`) whose address
space is capped at ``--cap-gib`` (8 GiB) above its inputs: the child reports its peak resident memory and
its wall time, and a naive run that needs more than the cap is recorded as out of memory instead of
exhausting the machine. Where both fit, the headline ratios are fused / naive of those cold single runs.

Part (d): the fused *forward* (no grad) at ``--flops-n`` (16384) and d = 64 is timed in-process and its
rate compared with the matmul rate of this machine measured in the same run (a square float32 matmul,
and a matmul with the fused tile's shape). "Executed" flops are the tile products actually done
(upper-triangular tiles: about half of the two ``n x n x d`` Gram products); "nominal" flops are those of
the two full Gram products that a naive implementation performs.

    python -m benchmarks.bench_fused [--quick] [--out DIR] [--threads T] [--cap-gib G]

Writes ``results/fused.json`` and ``results/fused.png``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py: spinning OpenMP workers
import json

import torch

import renyi_info
from benchmarks.memory import peak_memory
from benchmarks.naive import naive_gram
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json
from renyi_info.algorithms import fused, routes
from renyi_info.kernels import make_kernel

NAME = "fused"
COSINE = make_kernel("cosine")


def naive_mi2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """alpha = 2 MI in bits with materialised normalised Grams (the research-code way)."""
    a = naive_gram(x, "cosine")
    b = naive_gram(y, "cosine")
    ab = a * b
    ab = ab / torch.diagonal(ab, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    return (
        -torch.log2((a * a).sum((-2, -1)))
        - torch.log2((b * b).sum((-2, -1)))
        + torch.log2((ab * ab).sum((-2, -1)))
    )


def fused_mi2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """alpha = 2 MI in bits, all three terms by the fused route in one pass."""
    nats = routes.quantity_nats(
        "mutual_information", [x, y], [COSINE, COSINE], 2.0, "frobenius", route="fused"
    )
    return nats / torch.log(torch.tensor(2.0, dtype=nats.dtype))


def auto_mi2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """alpha = 2 MI in bits as ``renyi_info.mutual_information`` computes it (routes by the cost model)."""
    return renyi_info.mutual_information(x, y)


def _inputs(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = x @ (torch.randn(d, d, generator=gen) / d**0.5) + torch.randn(n, d, generator=gen)
    return x.requires_grad_(True), y.requires_grad_(True)


def memory_case(impl: str, n: int, d: int, threads: int, time_file: str):
    """Set-up for `peak_memory`: inputs built here; the returned call times itself into ``time_file``."""
    torch.set_num_threads(threads)
    x, y = _inputs(n, d)
    fn = {"fused": fused_mi2, "auto": auto_mi2, "naive": naive_mi2}[impl]

    def run() -> None:
        start = time.perf_counter()
        value = fn(x, y)
        mid = time.perf_counter()
        torch.autograd.grad(value, (x, y))
        end = time.perf_counter()
        Path(time_file).write_text(
            json.dumps({"forward_s": mid - start, "total_s": end - start, "mi": float(value.detach())})
        )

    return run


def _matmul_rate(m: int, k: int, n: int, repeats: int = 3) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best / 1e9


def flops_part(n: int, d: int, repeats: int, matmul_n: int = 2048) -> dict:
    """Achieved GFLOP/s of the fused forward (no grad) against this machine's matmul rate."""
    x, y = (t.detach() for t in _inputs(n, d, seed=1))
    zs = [COSINE.tile_features(x), COSINE.tile_features(y)]
    linear = [make_kernel("linear")] * 2
    br = fused.BLOCK_ROWS
    executed = 2 * 2.0 * d * (n * n + n * br) / 2  # two inputs, upper tiles incl. the diagonal blocks
    nominal = 2 * 2.0 * d * n * n
    square = max(_matmul_rate(matmul_n, matmul_n, matmul_n), _matmul_rate(matmul_n, matmul_n, matmul_n))
    tile = _matmul_rate(br, d, fused.BLOCK_COLS, repeats=10)
    out: dict = {
        "n": n,
        "d": d,
        "executed_gflop": executed / 1e9,
        "nominal_gflop": nominal / 1e9,
        "matmul_gflops_square": square,
        "matmul_square_n": matmul_n,
        "matmul_gflops_tile_shape": tile,
    }
    # "joint": ||K_x o K_y||^2 only (what auto streams; the marginals go by the feature route);
    # "all": the three sums of the MI in one pass (the forced fused route)
    for label, masks in (("joint", [3]), ("all", [1, 2, 3])):
        with torch.no_grad():
            fused.frobenius_sums(zs, linear, masks, backend="torch")
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                fused.frobenius_sums(zs, linear, masks, backend="torch")
                best = min(best, time.perf_counter() - start)
        out[label] = {
            "forward_s": best,
            "executed_gflops": executed / best / 1e9,
            "nominal_gflops": nominal / best / 1e9,
            "executed_fraction_of_square_matmul": executed / best / 1e9 / square,
            "executed_fraction_of_tile_matmul": executed / best / 1e9 / tile,
            "nominal_fraction_of_square_matmul": nominal / best / 1e9 / square,
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--cap-gib", type=float, default=8.0, help="address-space cap of each run (GiB)")
    parser.add_argument("--flops-n", type=int, default=16384, help="n of the GFLOP/s measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="override the sizes n")
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="override the feature dims d")
    args = parser.parse_args(argv)
    out = output_dir(args)
    torch.set_num_threads(args.threads)
    sizes = args.sizes or ([512, 1024, 2048] if args.quick else [1024, 2048, 4096, 8192, 16384, 32768])
    dims = args.dims or ([64] if args.quick else [64, 256])
    cap = int(args.cap_gib * 1024**3)
    rows = []
    tmp = out / f".{NAME}_time.json"
    for d in dims:
        for n in sizes:
            row: dict = {"n": n, "d": d, "auto_routes": None}
            row["auto_routes"] = [
                routes.choose_route("frobenius", n, dims_, [COSINE] * len(dims_), requires_grad=True)
                for dims_ in ([d], [d], [d, d])
            ]
            for impl in ("fused", "auto", "naive"):
                if tmp.exists():
                    tmp.unlink()
                mem = peak_memory(
                    "benchmarks.bench_fused:memory_case",
                    {"impl": impl, "n": n, "d": d, "threads": args.threads, "time_file": str(tmp)},
                    limit_bytes=cap,
                    threads=args.threads,
                    timeout_s=1800,
                )
                timing = json.loads(tmp.read_text()) if tmp.exists() and not mem["oom"] else {}
                row[impl] = {
                    "oom": mem["oom"],
                    "error": mem["error"],
                    "peak_bytes": mem["peak_bytes"],
                    "time_s": timing.get("total_s"),
                    "forward_s": timing.get("forward_s"),
                    "mi_bits": timing.get("mi"),
                }
            f, nv, au = row["fused"], row["naive"], row["auto"]
            if f["time_s"] and nv["time_s"]:
                row["time_ratio"] = f["time_s"] / nv["time_s"]
                row["memory_ratio"] = f["peak_bytes"] / max(nv["peak_bytes"], 1)
                row["mi_abs_diff_bits"] = abs(f["mi_bits"] - nv["mi_bits"])
            if au["time_s"] and nv["time_s"]:
                row["auto_time_ratio"] = au["time_s"] / nv["time_s"]
                row["auto_memory_ratio"] = au["peak_bytes"] / max(nv["peak_bytes"], 1)
            rows.append(row)
            print(
                f"n={n:6d} d={d:4d} fused {f['time_s'] and round(f['time_s'], 3)} s "
                f"{f['peak_bytes'] and f['peak_bytes'] / 2**20:.0f} MiB | naive "
                f"{'OOM' if nv['oom'] else (nv['time_s'] and round(nv['time_s'], 3))} s "
                f"{(nv['peak_bytes'] or 0) / 2**20:.0f} MiB | ratios time {row.get('time_ratio')} "
                f"memory {row.get('memory_ratio')} | auto {au['time_s']} s ratio {row.get('auto_time_ratio')}",
                flush=True,
            )
    if tmp.exists():
        tmp.unlink()
    flops = flops_part(min(args.flops_n, 1024) if args.quick else args.flops_n, 64, 1 if args.quick else 2)
    print("fused forward rate:", json.dumps(flops, indent=1))
    payload = {
        "quantity": "alpha=2 mutual information, cosine kernels, float32, forward + backward",
        "threads": args.threads,
        "cap_bytes": cap,
        "block_rows": fused.BLOCK_ROWS,
        "block_cols": fused.BLOCK_COLS,
        "rows": rows,
        "flops": flops,
    }
    write_json(NAME, payload, out)

    plt = pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 3.6))
    for d in dims:
        sel = [r for r in rows if r["d"] == d]
        for impl, style in (("fused", "o-"), ("auto", "^:"), ("naive", "s--")):
            pts = [(r["n"], r[impl]["time_s"]) for r in sel if r[impl]["time_s"]]
            if pts:
                ax_t.loglog(*zip(*pts), style, label=f"{impl}, d={d}")
            pts = [(r["n"], r[impl]["peak_bytes"] / 2**20) for r in sel if r[impl]["peak_bytes"]]
            if pts:
                ax_m.loglog(*zip(*pts), style, label=f"{impl}, d={d}")
        ooms = [r["n"] for r in sel if r["naive"]["oom"]]
        for n in ooms:
            ax_m.axvline(n, color="grey", lw=0.5, ls=":")
    ax_t.set(xlabel="n", ylabel="forward + backward (s)", title="alpha=2 MI, cosine")
    ax_m.set(xlabel="n", ylabel="peak memory (MiB)", title=f"naive OOM (> {args.cap_gib:g} GiB) dotted")
    ax_t.legend(fontsize=8)
    ax_m.legend(fontsize=8)
    save_figure(fig, NAME, out)
    return payload


if __name__ == "__main__":
    main()
