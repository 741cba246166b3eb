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
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import ProxyConfig, config_hash
from .finetune import run_variant
from .pretrain import load_or_pretrain
from .world import write_world

__all__ = [
    "FROZEN_DEFINITION",
    "assemble",
    "finished_seeds",
    "plot",
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


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_run(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("config_hash") != key:
        raise RuntimeError(
            f"{path} was written under other settings (config hash {data.get('config_hash')}, now {key}); "
            "move it away or pass another --output so that results of different settings are never mixed"
        )
    return data


def _prepare_seed(config: ProxyConfig, seed: int, output: Path, cache_dir: Path, log=print) -> dict[str, Any]:
    """The world and the pretrained CLIP of ``seed`` (both cached); records the CLIP's zero-shot accuracy."""
    key = config_hash(config.world, config.arch, config.pretrain, config.finetune)
    root = write_world(cache_dir, config.world, seed)
    clip = load_or_pretrain(config, seed, cache_dir, log=log)
    info = {"config_hash": key, "seed": seed, "zero_shot": clip["zero_shot"], "seconds": clip["seconds"]}
    write_json_atomic(output / "ovss_proxy_runs" / f"clip-s{seed}.json", info)
    log(f"  tiny CLIP seed {seed}: zero-shot accuracy {_zs_line(clip['zero_shot'])}")
    return {"root": root, **clip}


def _run_one(
    config: ProxyConfig, seed: int, variant: str, output: Path, cache_dir: Path, clip=None, log=print
) -> dict[str, Any]:
    """Fine-tune and evaluate one ``(seed, variant)`` and write its run file; returns the record."""
    key = config_hash(config.world, config.arch, config.pretrain, config.finetune)
    c = clip if clip is not None else _prepare_seed(config, seed, output, cache_dir, log)
    log(f"{variant} seed {seed}: fine-tuning {config.finetune.steps} steps")
    result = run_variant(config, variant, seed, c["root"], c["state_dict"], cache_dir, log=log)
    record = {"config_hash": key, "variant": variant, "seed": seed, **result}
    write_json_atomic(output / "ovss_proxy_runs" / f"{variant}-s{seed}.json", record)
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
    runs_dir = output / "ovss_proxy_runs"
    key = config_hash(config.world, config.arch, config.pretrain, config.finetune)
    names = ["frozen_clip", *config.variants]
    todo = []
    for k, (seed, variant) in enumerate([(s, v) for s in config.seeds for v in names], 1):
        path = runs_dir / f"{variant}-s{seed}.json"
        if _read_run(path, key) is not None:
            log(f"[{k}] {variant} seed {seed}: done before, skipped ({path})")
        else:
            todo.append((seed, variant))
    start = time.perf_counter()

    def progress(done: int, seed: int, variant: str, result: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - start
        log(
            f"[{done}/{len(todo)}] {variant} seed {seed}: unseen {result['unseen']:.1f} seen {result['seen']:.1f} "
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


def finished_seeds(config: ProxyConfig, runs_dir: Path, key: str) -> list[int]:
    """The seeds of ``config`` whose pretraining record and every run (``frozen_clip`` + variants) exist."""
    names = ["frozen_clip", *config.variants]
    return [
        s
        for s in config.seeds
        if (runs_dir / f"clip-s{s}.json").is_file()
        and all(_read_run(runs_dir / f"{v}-s{s}.json", key) is not None for v in names)
    ]


def write_outputs(config: ProxyConfig, output: Path, *, allow_partial: bool = False) -> dict[str, Any]:
    """Write ``ovss_proxy.json``, ``.md`` and ``.png`` into ``output`` from its run files.

    Args:
        config: the settings (their hash must match the run files').
        output: the results folder (run files in ``output / "ovss_proxy_runs"``).
        allow_partial: report only the seeds whose runs have all finished (the unfinished ones are listed
            under ``config.unfinished_seeds``) instead of raising.

    Raises:
        RuntimeError: some seed is unfinished (without ``allow_partial``) or none has finished.
    """
    output = Path(output)
    runs_dir = output / "ovss_proxy_runs"
    key = config_hash(config.world, config.arch, config.pretrain, config.finetune)
    done = finished_seeds(config, runs_dir, key)
    missing = [s for s in config.seeds if s not in done]
    if not done or (missing and not allow_partial):
        raise RuntimeError(
            f"seeds {missing} have unfinished runs in {runs_dir}; run the benchmark to finish them"
            + ("" if done else " (no seed is complete yet)")
        )
    results = assemble(dataclasses.replace(config, seeds=tuple(done)), runs_dir, key)
    if missing:
        results["config"]["unfinished_seeds"] = missing
    write_json_atomic(output / "ovss_proxy.json", results)
    (output / "ovss_proxy.md").write_text(summary_markdown(results))
    plot(results, runs_dir, output)
    return results


def _zs_line(zs: dict[str, Any]) -> str:
    return (
        ", ".join(
            f"{g} {zs[g]['all']:.0f}% (within group {zs[g]['within_group']:.0f}%)"
            for g in ("seen", "unseen", "held_out")
        )
        + f"; chance {zs['chance_all']:.0f}%"
    )


def assemble(config: ProxyConfig, runs_dir: Path, key: str) -> dict[str, Any]:
    """``{"variants": {name: {"seen": [...], "unseen": [...]}}, "frozen_clip": {...}, "config": {...}}``."""

    def load(variant: str, seed: int) -> dict[str, Any]:
        data = _read_run(runs_dir / f"{variant}-s{seed}.json", key)
        if data is None:
            raise FileNotFoundError(f"missing run {variant} seed {seed} in {runs_dir}")
        return data

    seeds = list(config.seeds)
    variants = {
        v: {"seen": [load(v, s)["seen"] for s in seeds], "unseen": [load(v, s)["unseen"] for s in seeds]}
        for v in config.variants
    }
    frozen = [load("frozen_clip", s) for s in seeds]
    clip_info = [json.loads((runs_dir / f"clip-s{s}.json").read_text()) for s in seeds]
    from benchmarks.results_io import machine_info

    cfg = config.to_dict()
    cfg.update(
        config_hash=key,
        seeds=seeds,
        calibration_seeds=list(config.calibration_seeds),
        machine=machine_info(),
        run_seconds=sum(load(v, s)["seconds"] for v in ["frozen_clip", *config.variants] for s in seeds),
    )
    return {
        "variants": variants,
        "frozen_clip": {
            "seen": [r["seen"] for r in frozen],
            "unseen": [r["unseen"] for r in frozen],
            "definition": FROZEN_DEFINITION,
            "clip_dense_zero_shot": {
                "seen": [r["clip_zero_shot"]["seen"] for r in frozen],
                "unseen": [r["clip_zero_shot"]["unseen"] for r in frozen],
            },
            "zero_shot_classification": [c["zero_shot"] for c in clip_info],
        },
        "config": cfg,
    }


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def summary_markdown(results: dict[str, Any]) -> str:
    """The table (mean ± std over seeds) with per-seed paired differences against ``none``."""
    base = results["variants"].get("none")
    fz = results["frozen_clip"]
    lines = [
        "| variant | unseen mIoU | seen mIoU | unseen − none (per seed) | wins vs none |",
        "|---|---|---|---|---|",
    ]

    def row(name: str, r: dict[str, list[float]]) -> str:
        mu, su = _mean_std(r["unseen"])
        ms, ss = _mean_std(r["seen"])
        diff, wins = "–", "–"
        if base is not None and name != "none":
            d = [a - b for a, b in zip(r["unseen"], base["unseen"])]
            md, sd = _mean_std(d)
            diff = f"{md:+.2f} ± {sd:.2f} ({', '.join(f'{x:+.1f}' for x in d)})"
            wins = f"{sum(x > 0 for x in d)}/{len(d)}"
        return f"| {name} | {mu:.2f} ± {su:.2f} | {ms:.2f} ± {ss:.2f} | {diff} | {wins} |"

    lines.append(row("frozen_clip", fz))
    lines += [row(n, r) for n, r in results["variants"].items()]
    zs = fz["clip_dense_zero_shot"]
    mu, su = _mean_std(zs["unseen"])
    ms, ss = _mean_std(zs["seen"])
    lines.append(
        f"\nPretrained CLIP alone (dense zero-shot, no decoder): unseen {mu:.2f} ± {su:.2f}, seen {ms:.2f} ± {ss:.2f}."
    )
    seeds = results["config"]["seeds"]
    lines.append(
        f"\nSeeds {seeds}; hyperparameters calibrated on seeds {results['config']['calibration_seeds']}.\n"
    )
    return "\n".join(lines)


def plot(results: dict[str, Any], runs_dir: Path, output: Path) -> Path:
    """``<output>/ovss_proxy.png``: unseen and seen mIoU per variant, the forgetting curve, CLIP's own alignment."""
    from benchmarks.results_io import pyplot, save_figure

    plt = pyplot()
    seeds = results["config"]["seeds"]
    key = results["config"]["config_hash"]
    names = ["frozen_clip", *results["variants"]]
    rows = {"frozen_clip": results["frozen_clip"], **results["variants"]}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, split in ((axes[0, 0], "unseen"), (axes[0, 1], "seen")):
        for i, n in enumerate(names):
            ys = rows[n][split]
            mu, sd = _mean_std(ys)
            ax.bar(i, mu, yerr=sd, color="0.75" if n == "frozen_clip" else "C0", alpha=0.8, capsize=3)
            ax.scatter([i] * len(ys), ys, color="k", s=10, zorder=3)
        ref = statistics.fmean(rows["frozen_clip"][split])
        ax.axhline(ref, color="0.4", ls="--", lw=1, label="frozen-CLIP reference (mean)")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(f"{split} mIoU (%)")
        lo = min(min(rows[n][split]) for n in names)
        ax.set_ylim(max(lo - 10, 0), None)
        ax.set_title(f"{split}-class scenes (bars: mean ± std, dots: seeds {seeds})")
        ax.legend(loc="lower right", fontsize=8)
    ax = axes[1, 0]
    for n, colour in (
        ("frozen_clip", "0.5"),
        ("none", "C3"),
        ("kl", "C1"),
        ("maftplus", "C4"),
        ("infoclip", "C2"),
    ):
        if n not in names:
            continue
        curves = [_read_run(runs_dir / f"{n}-s{s}.json", key)["curve"] for s in seeds]
        steps = [p["step"] for p in curves[0]]
        per = [[c[j]["unseen"] for c in curves] for j in range(len(steps))]
        mu = [statistics.fmean(v) for v in per]
        sd = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in per]
        ax.plot(steps, mu, marker="o", color=colour, label=n)
        ax.fill_between(
            steps, [m - s for m, s in zip(mu, sd)], [m + s for m, s in zip(mu, sd)], color=colour, alpha=0.15
        )
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("unseen mIoU (%)")
    ax.set_title("unseen mIoU during fine-tuning (mean ± std over seeds)")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for i, n in enumerate(names):
        ys = [_read_run(runs_dir / f"{n}-s{s}.json", key)["clip_zero_shot"]["unseen"] for s in seeds]
        mu, sd = _mean_std(ys)
        ax.bar(i, mu, yerr=sd, color="0.75" if n == "frozen_clip" else "C2", alpha=0.8, capsize=3)
        ax.scatter([i] * len(ys), ys, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("unseen mIoU (%) of CLIP alone")
    ax.set_title("the fine-tuned CLIP's own dense zero-shot alignment (no decoder)")
    fig.tight_layout()
    return save_figure(fig, "ovss_proxy", output)
