"""infoclip's token mode (``gram_over="tokens"``) at CAT-Seg's sizes: n x n Grams (before) vs the routes (after).

The step is what `infoclip.InfoCLIPLoss` computes after LPAM, forward + backward: $L_c(D_V^T, D_L^T, R^T) +
L_d(R^T, R^S)$ with the Grams over the $N = B\\cdot HW$ tokens, CAT-Seg's sizes by default: B = 4 images of
24 x 24 = 576 tokens (N = 2304), N_C = 171 classes (COCO-Stuff, text shared by the batch), d = 512, float32.
Gradients flow to $R^T$ and $R^S$ (the teacher's visual tokens are frozen).

* **before**: every entropy term on the ``gram`` route: the ``N x N`` cosine Grams, their Hadamard products
  and $\\lVert\\cdot\\rVert_F^2$ with autograd (the same maths on materialised matrices: the reference);
* **after**: infoclip as shipped: `renyi_info.gram_level.feature_entropies` picks a route per term (the
  feature route $\\lVert Z^\\top Z\\rVert_F^2$ for single Grams, one fused tile-streaming pass for the joint
  terms: no ``N x N`` matrix forward or backward).

Each (implementation, B) runs in a fresh subprocess (`benchmarks.memory.peak_memory`): the child builds the
inputs, runs the step once to warm up and then ``--repeats`` times, and reports the median time and the
peak resident memory above its inputs. Larger batches (B = 8, 16) show how both scale.

    python -m benchmarks.bench_tokens [--quick] [--out DIR] [--threads T] [--repeats R]

Writes ``results/tokens.json`` and ``results/tokens.png``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py: spinning OpenMP workers
import torch

from benchmarks.memory import peak_memory
from benchmarks.results_io import make_parser, output_dir, pyplot, save_figure, write_json

NAME = "tokens"
#: CAT-Seg (ViT-B/16 at 384 px, COCO-Stuff-171): batch 4, 24 x 24 patch tokens, 171 classes, width 512.
CATSEG = {"batch": 4, "tokens": 576, "classes": 171, "dim": 512}


def _inputs(batch: int, tokens: int, classes: int, dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(batch, tokens, dim, generator=g)
    t = torch.randn(classes, dim, generator=g)
    r_t = torch.randn(batch, tokens, classes, generator=g).requires_grad_(True)
    r_s = (r_t.detach() + 0.5 * torch.randn(batch, tokens, classes, generator=g)).requires_grad_(True)
    return v, t, r_t, r_s


def _force_gram_route() -> None:
    """Make infoclip take every entropy term on the n x n Gram route (the reference)."""
    import infoclip.losses as losses

    original = losses.feature_entropies

    def gram_route(xs, specs, alpha, method, masks, names, **kw):
        return original(xs, specs, alpha, method, masks, names, route="gram")

    losses.feature_entropies = gram_route


def step_case(
    impl: str, batch: int, tokens: int, classes: int, dim: int, repeats: int, threads: int, time_file: str
):
    """Set-up for `peak_memory`: returns the call that times ``repeats`` steps into ``time_file``."""
    torch.set_num_threads(threads)
    from infoclip import compression_loss, distillation_loss

    if impl == "before":
        _force_gram_route()
    v, t, r_t, r_s = _inputs(batch, tokens, classes, dim)

    def step() -> float:
        loss = compression_loss(v, t, r_t, gram_over="tokens") + distillation_loss(
            r_t, r_s, gram_over="tokens"
        )
        torch.autograd.grad(loss, (r_t, r_s))
        return float(loss.detach())

    def run() -> None:
        value = step()  # warm-up (first-call allocations count towards the peak, as in training)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        Path(time_file).write_text(json.dumps({"times_s": times, "loss_bits": value}))

    return run


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="override the batch sizes B")
    args = parser.parse_args(argv)
    out = output_dir(args)
    sizes = dict(CATSEG)
    if args.quick:
        sizes.update(tokens=64, classes=20, dim=32)
    batches = args.batches or ([1, 2] if args.quick else [CATSEG["batch"], 8, 16])
    repeats = 1 if args.quick else args.repeats
    tmp = out / f".{NAME}_time.json"
    rows = []
    for batch in batches:
        row: dict = {
            "batch": batch,
            "n_tokens": batch * sizes["tokens"],
            **{k: sizes[k] for k in ("tokens", "classes", "dim")},
        }
        for impl in ("before", "after"):
            if tmp.exists():
                tmp.unlink()
            mem = peak_memory(
                "benchmarks.bench_tokens:step_case",
                {
                    "impl": impl,
                    "batch": batch,
                    "tokens": sizes["tokens"],
                    "classes": sizes["classes"],
                    "dim": sizes["dim"],
                    "repeats": repeats,
                    "threads": args.threads,
                    "time_file": str(tmp),
                },
                threads=args.threads,
                timeout_s=3600,
            )
            timing = json.loads(tmp.read_text()) if tmp.exists() else {}
            times = timing.get("times_s") or []
            row[impl] = {
                "error": mem["error"],
                "peak_bytes": mem["peak_bytes"],
                "time_s": statistics.median(times) if times else None,
                "times_s": times,
                "loss_bits": timing.get("loss_bits"),
            }
        b, a = row["before"], row["after"]
        if a["time_s"] and b["time_s"]:
            row["time_ratio_after_over_before"] = a["time_s"] / b["time_s"]
            row["memory_ratio_after_over_before"] = a["peak_bytes"] / max(b["peak_bytes"], 1)
            row["loss_abs_diff_bits"] = abs(a["loss_bits"] - b["loss_bits"])
        rows.append(row)
        print(
            f"B={batch:3d} N={row['n_tokens']:6d} | before {b['time_s']} s {(b['peak_bytes'] or 0) / 2**20:.0f} MiB"
            f" | after {a['time_s']} s {(a['peak_bytes'] or 0) / 2**20:.0f} MiB | time ratio "
            f"{row.get('time_ratio_after_over_before')} memory ratio {row.get('memory_ratio_after_over_before')}"
            f" | |loss diff| {row.get('loss_abs_diff_bits')}",
            flush=True,
        )
    if tmp.exists():
        tmp.unlink()
    payload = {
        "quantity": "infoclip L_c + L_d with gram_over='tokens', shared text, float32, forward + backward",
        "catseg_sizes": CATSEG,
        "threads": args.threads,
        "repeats": repeats,
        "rows": rows,
    }
    write_json(NAME, payload, out)

    plt = pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 3.6))
    for impl, style in (("before", "s--"), ("after", "o-")):
        label = {"before": "before: n x n Grams", "after": "after: feature + fused routes"}[impl]
        pts = [(r["n_tokens"], r[impl]["time_s"]) for r in rows if r[impl]["time_s"]]
        if pts:
            ax_t.loglog(*zip(*pts), style, label=label)
        pts = [(r["n_tokens"], r[impl]["peak_bytes"] / 2**20) for r in rows if r[impl]["peak_bytes"]]
        if pts:
            ax_m.loglog(*zip(*pts), style, label=label)
    title = f"tokens: HW={sizes['tokens']}, N_C={sizes['classes']}, d={sizes['dim']}"
    ax_t.set(xlabel="N = B x HW tokens", ylabel="forward + backward (s)", title=title)
    ax_m.set(xlabel="N = B x HW tokens", ylabel="peak memory above inputs (MiB)", title="L_c + L_d, float32")
    ax_t.legend(fontsize=8)
    ax_m.legend(fontsize=8)
    save_figure(fig, NAME, out)
    return payload


if __name__ == "__main__":
    main()
