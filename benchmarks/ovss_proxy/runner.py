"""The table: every variant over every seed, resumable, then the JSON, the plot and a markdown summary.

Per seed: the world is generated (cached), the tiny CLIP pretrained (cached), then the frozen-CLIP
reference and each variant fine-tuned and evaluated. Every finished run is written atomically to
``<output>/ovss_proxy_runs/<variant>-s<seed>.json`` with the hash of the settings it ran under; a rerun
skips runs whose file exists with the same hash (and refuses a file written under other settings,
rather than mixing them). Finally ``<output>/ovss_proxy.json``, ``ovss_proxy.png`` and
``ovss_proxy.md`` are written from the run files (:func:`write_outputs`; with ``--assemble-only`` from the
seeds finished so far).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any

from .config import CONTROLS, ProxyConfig, config_hash
from .finetune import METRICS, run_variant, variant_definition
from .pretrain import load_or_pretrain, pretraining_key
from .records import CacheError, read_record, write_json_atomic
from .world import write_world

__all__ = [
    "FROZEN_DEFINITION",
    "CacheError",
    "assemble",
    "finished_seeds",
    "orderings",
    "paired_differences",
    "plot",
    "read_run",
    "run_table",
    "summary_markdown",
    "write_outputs",
]

FROZEN_DEFINITION = (
    "the same segmentor, recipe and schedule with CLIP frozen (clip.finetune='none', no distillation): "
    "only the decoder learns, on seen classes, so its unseen mIoU is what the pretrained CLIP's alignment "
    "gives this decoder; clip_dense_zero_shot is the pretrained CLIP alone (cosine arg-max of its dense "
    "features, no decoder)"
)


#: Fields every run record must hold.
RUN_FIELDS: tuple[str, ...] = (
    "variant",
    "seed",
    *METRICS,
    "curve",
    "clip_start",
    "grad_norms",
    "drift",
    "losses",
    "seconds",
)
#: Fields every CLIP summary record must hold.
CLIP_SUMMARY_FIELDS: tuple[str, ...] = ("seed", "zero_shot", "seconds")


def run_key(config: ProxyConfig, variant: str) -> str:
    """Hash of everything a run depends on: world, architecture, pretraining, fine-tuning, its variant."""
    definition = dataclasses.asdict(variant_definition(variant))
    return config_hash(config.world, config.arch, config.pretrain, config.finetune, definition)


def run_path(output: Path, variant: str, seed: int) -> Path:
    """``<output>/ovss_proxy_runs/<variant>-s<seed>.json``."""
    return Path(output) / "ovss_proxy_runs" / f"{variant}-s{seed}.json"


def read_run(config: ProxyConfig, output: Path, variant: str, seed: int) -> dict[str, Any] | None:
    """The verified record of one run (``None`` if not run yet); :class:`~.records.CacheError` otherwise."""
    return read_record(run_path(output, variant, seed), run_key(config, variant), RUN_FIELDS)


def _prepare_seed(config: ProxyConfig, seed: int, output: Path, cache_dir: Path, log=print) -> dict[str, Any]:
    """The world and the pretrained CLIP of ``seed`` (both cached); records the CLIP's zero-shot accuracy."""
    key = pretraining_key(config)
    root = write_world(cache_dir, config.world, seed)
    clip = load_or_pretrain(config, seed, cache_dir, log=log)
    info = {"config_hash": key, "seed": seed, "zero_shot": clip["zero_shot"], "seconds": clip["seconds"]}
    path = Path(output) / "ovss_proxy_runs" / f"clip-s{seed}.json"
    if read_record(path, key, CLIP_SUMMARY_FIELDS) is None:
        write_json_atomic(path, info)
    log(f"  tiny CLIP seed {seed}: zero-shot accuracy {_zs_line(clip['zero_shot'])}")
    return {"root": root, **clip}


def _run_one(
    config: ProxyConfig, seed: int, variant: str, output: Path, cache_dir: Path, clip=None, log=print
) -> dict[str, Any]:
    """Fine-tune and evaluate one ``(seed, variant)`` and write its run file; returns the record."""
    c = clip if clip is not None else _prepare_seed(config, seed, output, cache_dir, log)
    log(f"{variant} seed {seed}: fine-tuning {config.finetune.steps} steps")
    result = run_variant(config, variant, seed, c["root"], c["state_dict"], cache_dir, log=log)
    record = {"config_hash": run_key(config, variant), "variant": variant, "seed": seed, **result}
    write_json_atomic(run_path(output, variant, seed), record)
    return record


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _prepare_job(config, seed, output, cache_dir) -> int:
    _prepare_seed(config, seed, output, cache_dir, log=lambda m: print(m, flush=True))
    return seed


def _run_job(config, seed, variant, output, cache_dir) -> dict[str, Any]:
    return _run_one(config, seed, variant, output, cache_dir, log=lambda m: print(m, flush=True))


def run_table(
    config: ProxyConfig, output: Path, cache_dir: Path, *, jobs: int = 1, log=print
) -> dict[str, Any]:
    """Run (or resume) every ``frozen_clip`` + ``config.variants`` run over ``config.seeds``.

    Args:
        jobs: worker processes (one torch thread each): the seeds' worlds and CLIPs are prepared in
            parallel first, then the runs are spread over the workers. ``1`` runs everything here, in order.

    Returns:
        The assembled results (:func:`assemble`), also written to ``<output>/ovss_proxy.json``.
    """
    output, cache_dir = Path(output), Path(cache_dir)
    names = ["frozen_clip", *config.variants]
    todo = []
    for k, (seed, variant) in enumerate([(s, v) for s in config.seeds for v in names], 1):
        if read_run(config, output, variant, seed) is not None:
            log(f"[{k}] {variant} seed {seed}: done before, skipped ({run_path(output, variant, seed)})")
        else:
            todo.append((seed, variant))
    start = time.perf_counter()

    def progress(done: int, seed: int, variant: str, result: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - start
        log(
            f"[{done}/{len(todo)}] {variant} seed {seed}: unseen {result['unseen']:.1f} seen {result['seen']:.1f} "
            f"clip unseen {result['clip_unseen']:.1f} "
            f"({result['seconds']:.0f} s; elapsed {elapsed / 60:.1f} min, "
            f"~{elapsed / done * (len(todo) - done) / 60:.1f} min left)"
        )

    if jobs <= 1:
        clips: dict[int, dict[str, Any]] = {}
        for done, (seed, variant) in enumerate(todo, 1):
            if seed not in clips:
                clips[seed] = _prepare_seed(config, seed, output, cache_dir, log)
            progress(
                done, seed, variant, _run_one(config, seed, variant, output, cache_dir, clips[seed], log)
            )
    elif todo:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(1,)) as pool:
            seeds = sorted({s for s, _ in todo})
            for fut in as_completed([pool.submit(_prepare_job, config, s, output, cache_dir) for s in seeds]):
                fut.result()
            futures = {pool.submit(_run_job, config, s, v, output, cache_dir): (s, v) for s, v in todo}
            for done, fut in enumerate(as_completed(futures), 1):
                progress(done, *futures[fut], fut.result())
    return write_outputs(config, output)


def finished_seeds(config: ProxyConfig, output: Path) -> list[int]:
    """The seeds of ``config`` whose CLIP summary and every run (``frozen_clip`` + variants) exist (verified)."""
    names = ["frozen_clip", *config.variants]
    runs_dir = Path(output) / "ovss_proxy_runs"
    return [
        s
        for s in config.seeds
        if read_record(runs_dir / f"clip-s{s}.json", pretraining_key(config), CLIP_SUMMARY_FIELDS) is not None
        and all(read_run(config, output, v, s) is not None for v in names)
    ]


def write_outputs(config: ProxyConfig, output: Path, *, allow_partial: bool = False) -> dict[str, Any]:
    """Write ``ovss_proxy.json``, ``ovss_proxy_curves.json``, ``.md`` and ``.png`` into ``output``.

    Args:
        config: the settings (their hashes must match the run files').
        output: the results folder (run files in ``output / "ovss_proxy_runs"``).
        allow_partial: report only the seeds whose runs have all finished (the unfinished ones are listed
            under ``config.unfinished_seeds``) instead of raising.

    Raises:
        RuntimeError: some seed is unfinished (without ``allow_partial``) or none has finished.
        CacheError: a run file is damaged or from other settings.
    """
    output = Path(output)
    done = finished_seeds(config, output)
    missing = [s for s in config.seeds if s not in done]
    if not done or (missing and not allow_partial):
        raise RuntimeError(
            f"seeds {missing} have unfinished runs in {output / 'ovss_proxy_runs'}; run the benchmark to "
            "finish them" + ("" if done else " (no seed is complete yet)")
        )
    cfg = dataclasses.replace(config, seeds=tuple(done))
    results = assemble(cfg, output)
    if missing:
        results["config"]["unfinished_seeds"] = missing
    curves = mechanism(cfg, output)
    curves["paired_to_none"] = paired_differences(results)
    curves["orderings"] = orderings(results)
    write_json_atomic(output / "ovss_proxy.json", results)
    write_json_atomic(output / "ovss_proxy_curves.json", curves)
    (output / "ovss_proxy.md").write_text(summary_markdown(results, curves))
    plot(results, curves, output)
    return results


def _zs_line(zs: dict[str, Any]) -> str:
    return (
        ", ".join(
            f"{g} {zs[g]['all']:.0f}% (within group {zs[g]['within_group']:.0f}%)"
            for g in ("seen", "unseen", "held_out")
        )
        + f"; chance {zs['chance_all']:.0f}%"
    )


def _load(config: ProxyConfig, output: Path, variant: str, seed: int) -> dict[str, Any]:
    data = read_run(config, output, variant, seed)
    if data is None:
        raise FileNotFoundError(f"missing run {run_path(output, variant, seed)}")
    return data


def assemble(config: ProxyConfig, output: Path) -> dict[str, Any]:
    """``{"variants": {name: {metric: [per seed]}}, "frozen_clip": {...}, "seeds", "calibration_seeds", "config"}``.

    Metrics: :data:`~.finetune.METRICS` (``seen``, ``unseen``, ``harmonic``, ``confusion``,
    ``clip_unseen``, ``clip_seen``), each a run's score (mean of its last ``last_k`` evaluations).
    """
    seeds = list(config.seeds)
    runs = {v: [_load(config, output, v, s) for s in seeds] for v in ["frozen_clip", *config.variants]}
    variants = {v: {m: [r[m] for r in runs[v]] for m in METRICS} for v in config.variants}
    runs_dir = Path(output) / "ovss_proxy_runs"
    clip_info = [
        read_record(runs_dir / f"clip-s{s}.json", pretraining_key(config), CLIP_SUMMARY_FIELDS) for s in seeds
    ]
    from benchmarks.results_io import machine_info

    cfg = config.to_dict()
    cfg.update(
        run_keys={v: run_key(config, v) for v in runs},
        machine=machine_info(),
        run_seconds=sum(r["seconds"] for rs in runs.values() for r in rs),
        pretrain_seconds=sum(c["seconds"] for c in clip_info if c is not None),
    )
    return {
        "variants": variants,
        "frozen_clip": {
            **{m: [r[m] for r in runs["frozen_clip"]] for m in METRICS},
            "definition": FROZEN_DEFINITION,
            "zero_shot_classification": [c["zero_shot"] for c in clip_info if c is not None],
        },
        "seeds": seeds,
        "calibration_seeds": list(config.calibration_seeds),
        "config": cfg,
    }


def mechanism(config: ProxyConfig, output: Path) -> dict[str, Any]:
    """Per variant and seed: the evaluation curve, the per-term gradient norms, the final drift, loss tails."""
    out: dict[str, Any] = {"variants": {}}
    for v in ["frozen_clip", *config.variants]:
        runs = [_load(config, output, v, s) for s in config.seeds]
        out["variants"][v] = {
            "curve": [r["curve"] for r in runs],
            "clip_start": [r["clip_start"] for r in runs],
            "grad_norms": [r["grad_norms"] for r in runs],
            "drift": [r["drift"] for r in runs],
            "losses": [r["losses"] for r in runs],
        }
    out["seeds"] = list(config.seeds)
    return out


def t_interval(xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student's t interval of the mean of ``xs`` (n >= 2; a point for n = 1)."""
    from scipy import stats

    n = len(xs)
    mean = statistics.fmean(xs)
    if n < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(xs) / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_differences(results: dict[str, Any], base: str = "none") -> dict[str, Any]:
    """Per variant (and the frozen reference) and metric: the paired per-seed differences to ``base``.

    Returns:
        ``{name: {metric: {"diffs", "mean", "ci95", "wins", "n"}}}``; ``wins`` counts seeds where the
        variant is higher (for ``confusion``: lower, i.e. better).
    """
    rows = {"frozen_clip": results["frozen_clip"], **results["variants"]}
    if base not in rows:
        return {}
    out: dict[str, Any] = {}
    for name, row in rows.items():
        if name == base:
            continue
        out[name] = {}
        for m in METRICS:
            d = [a - b for a, b in zip(row[m], rows[base][m])]
            mean, lo, hi = t_interval(d)
            better = (lambda x: x < 0) if m == "confusion" else (lambda x: x > 0)
            out[name][m] = {
                "diffs": d,
                "mean": mean,
                "ci95": [lo, hi],
                "wins": sum(better(x) for x in d),
                "n": len(d),
            }
    return out


#: The paper's orderings, checked in this order: (label, better variant, worse variant, metric, sign);
#: ``sign = -1`` for a metric where lower is better (the confusion).
ORDERINGS: tuple[tuple[str, str, str, str, int], ...] = (
    ("(a) infoclip > none, unseen", "infoclip", "none", "unseen", 1),
    ("(b) infoclip > kl, unseen", "infoclip", "kl", "unseen", 1),
    ("(b) infoclip > maft, unseen", "infoclip", "maft", "unseen", 1),
    ("(b) infoclip > maftplus, unseen", "infoclip", "maftplus", "unseen", 1),
    ("(c) infoclip > compress_only, unseen", "infoclip", "compress_only", "unseen", 1),
    ("(c) infoclip > distill_only, unseen", "infoclip", "distill_only", "unseen", 1),
    ("(d) infoclip >= none, seen", "infoclip", "none", "seen", 1),
    ("(e) infoclip > none, CLIP alone unseen", "infoclip", "none", "clip_unseen", 1),
    ("(e) infoclip < none, seen-sibling confusion", "infoclip", "none", "confusion", -1),
)


def orderings(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of :data:`ORDERINGS` with its paired difference, 95% t interval, wins and verdict.

    The verdict is ``"holds"`` when the interval of ``sign × (better − worse)`` lies above 0,
    ``"contradicted"`` when it lies below 0, ``"undecided"`` otherwise.
    """
    rows = {"frozen_clip": results["frozen_clip"], **results["variants"]}
    out = []
    for label, a, b, metric, sign in ORDERINGS:
        if a not in rows or b not in rows:
            continue
        d = [sign * (x - y) for x, y in zip(rows[a][metric], rows[b][metric])]
        mean, lo, hi = t_interval(d)
        verdict = "holds" if lo > 0 else "contradicted" if hi < 0 else "undecided"
        out.append(
            {
                "ordering": label,
                "mean": mean,
                "ci95": [lo, hi],
                "wins": sum(x > 0 for x in d),
                "n": len(d),
                "verdict": verdict,
            }
        )
    return out


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _grad_summary(curves: dict[str, Any], name: str) -> dict[str, dict[str, float]]:
    """Mean over logged steps and seeds of each term's gradient norm, per parameter group."""
    acc: dict[str, dict[str, list[float]]] = {}
    for run in curves["variants"][name]["grad_norms"]:
        for point in run:
            for group in ("clip", "distiller"):
                for term, value in point.get(group, {}).items():
                    acc.setdefault(group, {}).setdefault(term, []).append(value)
    return {g: {t: statistics.fmean(v) for t, v in terms.items()} for g, terms in acc.items()}


def summary_markdown(results: dict[str, Any], curves: dict[str, Any]) -> str:
    """The table (mean ± std over seeds), the paired differences to ``none`` and the mechanism logs."""
    rows = {"frozen_clip": results["frozen_clip"], **results["variants"]}
    paired = paired_differences(results)
    label = {n: (f"{n} (control)" if n in CONTROLS else n) for n in rows}
    lines = [
        "| variant | unseen mIoU | seen mIoU | harmonic | seen-sibling confusion | CLIP alone unseen | CLIP alone seen |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, r in rows.items():
        cells = [f"{_mean_std(r[m])[0]:.2f} ± {_mean_std(r[m])[1]:.2f}" for m in METRICS]
        lines.append(f"| {label[n]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences to `none` (mean over seeds, 95% t interval, wins out of seeds; for the confusion a "
        "win is a *lower* value):",
        "",
        "| variant | Δ unseen | Δ seen | Δ harmonic | Δ confusion | Δ CLIP alone unseen |",
        "|---|---|---|---|---|---|",
    ]
    for n, by_metric in paired.items():
        cells = []
        for m in ("unseen", "seen", "harmonic", "confusion", "clip_unseen"):
            d = by_metric[m]
            cells.append(f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] {d['wins']}/{d['n']}")
        lines.append(f"| {label[n]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mechanism (means over seeds): relative Q/V drift of the student CLIP at the end; gradient norm of each "
        "loss term on the student CLIP's trainable weights and on the distiller (LPAM), averaged over the logged "
        "steps.",
        "",
        "| variant | Q/V drift | ‖∇ task‖ on CLIP | ‖∇ distiller terms‖ on CLIP | ‖∇ terms‖ on LPAM |",
        "|---|---|---|---|---|",
    ]
    for n in rows:
        g = _grad_summary(curves, n)
        clip = g.get("clip", {})
        task = clip.get("loss_sem_seg")
        others = ", ".join(f"{t} {v:.3g}" for t, v in clip.items() if t != "loss_sem_seg") or "–"
        lpam = ", ".join(f"{t} {v:.3g}" for t, v in g.get("distiller", {}).items()) or "–"
        drift = statistics.fmean(curves["variants"][n]["drift"])
        lines.append(
            f"| {label[n]} | {drift:.4f} | {'–' if task is None else f'{task:.3g}'} | {others} | {lpam} |"
        )
    checks = orderings(results)
    if checks:
        lines += [
            "",
            "The paper's orderings (paired over seeds; the difference is signed so that > 0 favours the ordering):",
            "",
            "| ordering | mean difference [95% CI] | wins | verdict |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c['ordering']} | {c['mean']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] | {c['wins']}/{c['n']} | "
            f"{c['verdict']} |"
            for c in checks
        ]
    start = [c["clip_unseen"] for c in curves["variants"]["frozen_clip"]["clip_start"]]
    mu, su = _mean_std(start)
    lines.append(
        f"\nPretrained CLIP alone (the teacher; dense zero-shot, whole vocabulary): unseen {mu:.2f} ± {su:.2f}."
    )
    lines.append(
        f"\nSeeds {results['seeds']}; settings calibrated on seeds {results['calibration_seeds']}; a run's score "
        f"is the mean of its last {results['config']['finetune']['last_k']} evaluations.\n"
    )
    return "\n".join(lines)


def plot(results: dict[str, Any], curves: dict[str, Any], output: Path) -> Path:
    """``<output>/ovss_proxy.png``: scores per variant, paired differences, curves, CLIP alone, drift."""
    from benchmarks.results_io import pyplot, save_figure

    plt = pyplot()
    seeds = results["seeds"]
    rows = {"frozen_clip": results["frozen_clip"], **results["variants"]}
    names = list(rows)
    paired = paired_differences(results)
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))

    def colour(n: str) -> str:
        return "0.7" if n == "frozen_clip" else ("C1" if n in CONTROLS else "C0")

    for ax, m, title in (
        (axes[0, 0], "unseen", "unseen mIoU (whole vocabulary)"),
        (axes[0, 1], "confusion", "seen-sibling confusion (% of unseen pixels)"),
        (axes[1, 2], "clip_unseen", "CLIP alone, unseen mIoU (no decoder)"),
    ):
        for i, n in enumerate(names):
            mu, sd = _mean_std(rows[n][m])
            ax.bar(i, mu, yerr=sd, color=colour(n), alpha=0.85, capsize=3)
            ax.scatter([i] * len(rows[n][m]), rows[n][m], color="k", s=8, zorder=3)
        if m == "clip_unseen":
            start = [c["clip_unseen"] for c in curves["variants"]["frozen_clip"]["clip_start"]]
            ax.axhline(statistics.fmean(start), color="0.3", ls="--", lw=1, label="pretrained CLIP (teacher)")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{title}; seeds {seeds}", fontsize=9)
    ax = axes[0, 2]
    others = [n for n in names if n in paired]
    for i, n in enumerate(others):
        d = paired[n]["unseen"]
        ax.errorbar(
            i,
            d["mean"],
            yerr=[[d["mean"] - d["ci95"][0]], [d["ci95"][1] - d["mean"]]],
            fmt="o",
            color=colour(n),
        )
        ax.text(i, d["ci95"][1], f" {d['wins']}/{d['n']}", fontsize=7, ha="center", va="bottom")
    ax.axhline(0, color="0.3", lw=1)
    ax.set_xticks(range(len(others)), others, rotation=35, ha="right", fontsize=8)
    ax.set_title("unseen mIoU − none: paired mean, 95% t interval, wins", fontsize=9)
    for ax, m, title in (
        (axes[1, 0], "unseen", "unseen mIoU during fine-tuning"),
        (axes[1, 1], "drift", "relative Q/V drift of the student CLIP"),
    ):
        for k, n in enumerate(["frozen_clip", "none", "kl", "maftplus", "infoclip", *CONTROLS]):
            if n not in rows:
                continue
            runs = curves["variants"][n]["curve"]
            steps = [p["step"] for p in runs[0]]
            mu = [statistics.fmean(r[j][m] for r in runs) for j in range(len(steps))]
            ax.plot(steps, mu, marker="o", ms=3, color=f"C{k}", label=n)
        ax.set_xlabel("fine-tuning step")
        ax.set_title(f"{title} (mean over seeds)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, "ovss_proxy", output)
