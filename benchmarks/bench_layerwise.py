"""Layer-wise entropies of hidden states: renyi_info against the hand loop of the representation papers.

The hand loop is what public layer-wise code does (written here from that description, not copied): for
every layer and every sequence, the real tokens ``x`` (``n x d``, float32), ``K = x @ x.T`` in float32,
``torch.linalg.eigvalsh(K.double())``, ``p = lambda / sum(lambda)`` (negatives clamped) and the entropy of
each order from ``p`` (one decomposition per matrix, shared by the orders of a sweep; ``0 log 0`` as 0).
renyi_info computes the same quantity with `renyi_info.layerwise.prompt_entropy` (all layers and
sequences in one call, padding masked) and, for unpadded inputs, with ``renyi_info.entropy(H,
kernel="linear")`` (the call of the issue).

Cases (each timed round-robin with its reference, `benchmarks.timing.time_interleaved`, so that both see
the same load; the load average is recorded with each case):

* ``issue``: 13 layers x B sequences x 256 tokens x d = 768, float32, no padding, alpha = 1, 2 and a sweep
  (0.5, 1, 2, 3, inf);
* ``mixed``: 25 layers x B sequences x up to 512 tokens (lengths uniform in [64, 512], right padding) x
  d = 1024, alpha = 1 and 2;
* ``long``: one 2048-token prompt, d = 1024, alpha = 1: exact (the dual ``d x d`` route) and the Lanczos
  estimate, against the hand loop's ``2048 x 2048`` decomposition.

Where an order is <= 1, renyi_info's default builds the Gram in float64 (its precision rule);
``gram_dtype=torch.float32`` is timed too: the hand loop's own precision (float32 Gram, float64 spectrum).

Equal values: every case records the largest relative difference to the hand loop. The hand loop rounds
its Gram to float32 (each entry off by up to about ``d eps_32 |x_i| |x_j|``); renyi_info takes the Gram in
float64 at alpha <= 1 (its precision rule) and the alpha = 2 Frobenius sum in float32: the exact routes
agree to 1e-4 relative (the size of the hand loop's own rounding at d = 1024; observed 1e-7 to 2e-5);
the Lanczos estimate to 1 % (its stochastic error).

Peak memory above the inputs (fresh subprocess, `benchmarks.memory.peak_memory`) is measured for the
``issue`` case at alpha = 1.

    python -m benchmarks.bench_layerwise [--quick] [--out DIR] [--batch B] [--repeats R]

Writes ``results/layerwise.json`` and ``results/layerwise.png``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

# OMP_WAIT_POLICY is left as the user's (unlike the other benchmarks, see benchmarks/run.py): the hand loop
# makes hundreds of small calls, and PASSIVE workers, which sleep between them, made it 9x slower on 2 quiet
# cores (6.0 s against 0.65 s for 13 x 16 matrices of 256 x 768), an unfair reference.
import torch

import renyi_info
from benchmarks.memory import peak_memory
from benchmarks.results_io import machine_info, make_parser, output_dir, pyplot, save_figure, write_json
from benchmarks.timing import time_interleaved
from renyi_info import layerwise

NAME = "layerwise"
F32 = "layerwise, gram_dtype=float32"
SWEEP = (0.5, 1.0, 2.0, 3.0, math.inf)
#: the exact routes against the hand loop: its Gram is rounded to float32, each entry by up to about
#: d eps_32 |x_i| |x_j| (6e-5 at d = 1024), which moves the entropies by as much relative to themselves
EXACT_RTOL = 1e-4
LANCZOS_RTOL = 1e-2


def hand_loop(h: torch.Tensor, lengths: Sequence[int], alphas: Sequence[float]) -> torch.Tensor:
    """The per-matrix loop: float32 Gram, float64 ``eigvalsh``, entropies from ``p``; ``(L, B, k)`` float64."""
    out = torch.empty(h.shape[0], h.shape[1], len(alphas), dtype=torch.float64)
    for layer in range(h.shape[0]):
        for seq in range(h.shape[1]):
            x = h[layer, seq, : lengths[seq]]
            lam = torch.linalg.eigvalsh((x @ x.T).double()).clamp_min(0.0)
            p = lam / lam.sum()
            for i, a in enumerate(alphas):
                if a == 1.0:
                    out[layer, seq, i] = -(p * torch.log(p)).nansum()
                elif math.isinf(a):
                    out[layer, seq, i] = -torch.log(p.max())
                else:
                    out[layer, seq, i] = torch.log((p**a).sum()) / (1.0 - a)
    return out


def hidden_states(layers: int, batch: int, tokens: int, d: int, seed: int = 0) -> torch.Tensor:
    """Hidden-state-like float32 features: a power-law spectrum of directions and one large outlier feature."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    scales = torch.arange(1, d + 1, dtype=torch.float32) ** -0.6
    h = (torch.randn(layers, batch, tokens, d, generator=g) * scales) @ basis.T
    h[..., 0] += 4.0  # a shared offset direction, as in real residual streams
    return h.contiguous()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()).abs() / b.double().abs().clamp_min(1e-12)).max())


def _case(
    name: str,
    fns: dict[str, Callable[[], torch.Tensor]],
    reference: str,
    repeats: int,
    tolerances: dict[str, float],
) -> dict:
    values = {k: f() for k, f in fns.items()}  # also the warm-up
    timings = time_interleaved(fns, warmup=0, repeats=repeats)
    ref_t = timings[reference]["median_s"]
    row: dict = {"case": name, "load_average": list(os.getloadavg()), "results": {}}
    for k in fns:
        rel = _rel(values[k], values[reference]) if k != reference else 0.0
        row["results"][k] = {
            "median_s": timings[k]["median_s"],
            "times_s": timings[k]["times_s"],
            "speedup_vs_hand_loop": ref_t / timings[k]["median_s"],
            "max_rel_diff_vs_hand_loop": rel,
            "tolerance": tolerances.get(k),
            "equal_within_tolerance": k == reference or rel <= tolerances[k],
        }
        print(
            f"{name:28s} {k:26s} {timings[k]['median_s']:8.3f} s  x{ref_t / timings[k]['median_s']:6.2f}"
            f"  rel diff {rel:.1e}",
            flush=True,
        )
    return row


def memory_case(impl: str, batch: int) -> Callable[[], None]:
    """Set-up for `peak_memory`: the ``issue`` case at alpha = 1 by ``impl`` (``"hand"`` or ``"renyi_info"``)."""
    h = hidden_states(13, batch, 256, 768)

    def run() -> None:
        if impl == "hand":
            hand_loop(h, [256] * batch, (1.0,))
        else:
            layerwise.prompt_entropy(h, alpha=1.0)

    return run


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="sequences per case (default: the issue's 16 for the 13-layer case and 64 for the 25-layer one; "
        "2 with --quick)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each case")
    parser.add_argument("--no-long", action="store_true", help="skip the 2048-token case")
    args = parser.parse_args(argv)
    out = output_dir(args)
    quick = args.quick
    batch = args.batch or (2 if quick else 16)
    mixed_batch = args.batch or (2 if quick else 64)
    repeats = 1 if quick else args.repeats
    rows = []

    # ---- issue: 13 x B x 256 x 768, no padding ------------------------------------------------------------
    layers, tokens, d = (3, 64, 96) if quick else (13, 256, 768)
    h = hidden_states(layers, batch, tokens, d)
    full = [tokens] * batch
    # the hand loop once before any renyi_info call: a library that left threads spinning (or changed the
    # caller's thread settings) would make the hand loop of the interleaved timings below slower than this
    hand_first = time_interleaved({"hand": lambda: hand_loop(h, full, (1.0,))}, warmup=1, repeats=repeats)
    for alphas, label in (((1.0,), "alpha=1"), ((2.0,), "alpha=2"), (SWEEP, "sweep 0.5,1,2,3,inf")):
        a = alphas[0] if len(alphas) == 1 else list(alphas)
        fns = {
            "hand loop": lambda al=alphas: hand_loop(h, full, al),
            "layerwise.prompt_entropy": lambda a=a: _k(layerwise.prompt_entropy(h, alpha=a)),
            "renyi_info.entropy": lambda a=a: _k(
                renyi_info.entropy(h, alpha=a, kernel="linear", base=math.e)
            ),
        }
        if min(alphas) <= 1.0:  # the float64 Gram of the precision rule, or the hand loop's float32 Gram
            fns[F32] = lambda a=a: _k(layerwise.prompt_entropy(h, alpha=a, gram_dtype=torch.float32))
        tol = {k: EXACT_RTOL for k in fns}
        row = _case(f"issue {label}", fns, "hand loop", repeats, tol)
        row.update(shape=[layers, batch, tokens, d], alphas=list(alphas), padding=False)
        rows.append(row)

    # ---- mixed lengths: 25 x B x <= 512 x 1024 ------------------------------------------------------------
    layers, tokens, d = (3, 96, 128) if quick else (25, 512, 1024)
    h = hidden_states(layers, mixed_batch, tokens, d, seed=1)
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(tokens // 8, tokens + 1, (mixed_batch,), generator=g).tolist()
    mask = (torch.arange(tokens)[None, :] < torch.tensor(lengths)[:, None]).long()
    for alphas, label in (((1.0,), "alpha=1"), ((2.0,), "alpha=2")):
        fns = {
            "hand loop": lambda al=alphas: hand_loop(h, lengths, al),
            "layerwise.prompt_entropy": lambda al=alphas: _k(layerwise.prompt_entropy(h, mask, alpha=al[0])),
        }
        if alphas[0] <= 1.0:
            fns[F32] = lambda al=alphas: _k(
                layerwise.prompt_entropy(h, mask, alpha=al[0], gram_dtype=torch.float32)
            )
        row = _case(f"mixed {label}", fns, "hand loop", max(1, repeats - 1), {k: EXACT_RTOL for k in fns})
        row.update(shape=[layers, mixed_batch, tokens, d], lengths=lengths, alphas=list(alphas), padding=True)
        rows.append(row)

    # ---- long prompt: 1 x 1 x 2048 x 1024 ------------------------------------------------------------------
    if not args.no_long:
        tokens, d = (512, 256) if quick else (2048, 1024)
        h = hidden_states(1, 1, tokens, d, seed=3)
        opts = renyi_info.LanczosOptions(probes=8, steps=30, generator=torch.Generator().manual_seed(0))
        fns = {
            "hand loop": lambda: hand_loop(h, [tokens], (1.0,)),
            "layerwise exact (dual route)": lambda: _k(layerwise.prompt_entropy(h, alpha=1.0)),
            "layerwise lanczos": lambda: _k(
                layerwise.prompt_entropy(h, alpha=1.0, method="lanczos", lanczos=opts)
            ),
        }
        tol = {"layerwise exact (dual route)": EXACT_RTOL, "layerwise lanczos": LANCZOS_RTOL}
        row = _case("long prompt alpha=1", fns, "hand loop", 2 * repeats + 1, tol)  # short: more repeats
        row.update(shape=[1, 1, tokens, d], alphas=[1.0], padding=False)
        rows.append(row)

    # ---- peak memory ---------------------------------------------------------------------------------------
    memory = {}
    if not quick:
        for impl in ("hand", "renyi_info"):
            m = peak_memory(
                "benchmarks.bench_layerwise:memory_case", {"impl": impl, "batch": batch}, timeout_s=1800
            )
            memory[impl] = {"peak_bytes_above_inputs": m["peak_bytes"], "error": m["error"]}
            print(
                f"peak memory {impl}: {(m['peak_bytes'] or 0) / 2**20:.0f} MiB {m['error'] or ''}", flush=True
            )

    payload = {
        "quantity": "prompt entropy (linear token Gram per sequence and layer), float32 hidden states, nats",
        "reference": "hand loop: float32 Gram, float64 eigvalsh per matrix (see the module docstring)",
        "tolerance": {"exact": EXACT_RTOL, "lanczos": LANCZOS_RTOL},
        "threads": torch.get_num_threads(),
        "batch": {"issue": batch, "mixed": mixed_batch},
        "hand_loop_before_any_library_call": {
            "case": "issue alpha=1",
            "median_s": hand_first["hand"]["median_s"],
            "times_s": hand_first["hand"]["times_s"],
        },
        "machine": machine_info(),
        "rows": rows,
        "peak_memory": memory,
    }
    write_json(NAME, payload, out)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels, speed = [], []
    for row in rows:
        for k, r in row["results"].items():
            if k != "hand loop":
                labels.append(f"{row['case']}\n{k}")
                speed.append(r["speedup_vs_hand_loop"])
    ax.barh(range(len(speed)), speed, color=["C0" if s >= 1 else "C3" for s in speed])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(speed)), labels, fontsize=6)
    ax.set_xlabel("speed-up over the hand loop (same run, same load)")
    ax.set_title(f"layer-wise prompt entropy, {torch.get_num_threads()} threads", fontsize=9)
    fig.tight_layout()
    save_figure(fig, NAME, out)
    return payload


def _k(t: torch.Tensor) -> torch.Tensor:
    """A trailing order axis for single-order results (to compare with the hand loop's ``(L, B, k)``)."""
    return t if t.dim() == 3 else t[..., None]


if __name__ == "__main__":
    main()
