"""The calibration log: each setting tried on the calibration seeds, checked against the written criteria.

A setting is a folder written by ``python -m benchmarks.ovss_proxy --calibrate --set ... --output DIR``
(its ``calibration_setting.json`` names the overrides). For each, from the verified run records of
``none`` and ``frozen_clip`` on the seeds that finished both:

1. *fine-tuning pays*: ``none`` − frozen, unseen mIoU: 95% t interval entirely above 0;
2. *fine-tuning erodes*: CLIP alone's unseen mIoU after ``none`` − before (the pretrained CLIP): 95% t
   interval entirely below 0;
3. *teacher informative but noisy*: coarse dense target (``dense_cell >= 2``) or no dense term; the
   pretrained CLIP alone reaches >= 20 unseen mIoU and >= 80% zero-shot classification on unseen classes;
   and stays >= 10 points below the frozen reference's unseen mIoU (means over seeds).

``python -m benchmarks.ovss_proxy.calibration DIR [DIR ...] --output FILE_STEM`` writes ``FILE_STEM.json``
and ``FILE_STEM.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from .config import CALIBRATION_SEEDS, ProxyConfig, apply_overrides
from .pretrain import pretraining_key
from .records import CacheError, read_record, write_json_atomic
from .runner import CLIP_SUMMARY_FIELDS, read_run, t_interval

__all__ = ["check_setting", "main"]


def check_setting(folder: Path) -> dict[str, Any]:
    """The criteria of one calibration setting folder (seeds where both runs finished)."""
    folder = Path(folder)
    try:
        setting = json.loads((folder / "calibration_setting.json").read_text())
        overrides = list(setting["overrides"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"{folder / 'calibration_setting.json'} is missing or damaged ({exc})") from None
    config = apply_overrides(ProxyConfig(), overrides)
    per_seed = []
    for seed in CALIBRATION_SEEDS:
        none = read_run(config, folder, "none", seed)
        frozen = read_run(config, folder, "frozen_clip", seed)
        clip = read_record(
            folder / "ovss_proxy_runs" / f"clip-s{seed}.json", pretraining_key(config), CLIP_SUMMARY_FIELDS
        )
        if none is None or frozen is None or clip is None:
            continue
        per_seed.append(
            {
                "seed": seed,
                "frozen_unseen": frozen["unseen"],
                "frozen_seen": frozen["seen"],
                "none_unseen": none["unseen"],
                "none_seen": none["seen"],
                "none_confusion": none["confusion"],
                "frozen_confusion": frozen["confusion"],
                "clip_before_unseen": none["clip_start"]["clip_unseen"],
                "clip_after_unseen": none["clip_unseen"],
                "clip_before_seen": frozen["clip_seen"],
                "clip_after_seen": none["clip_seen"],
                "drift": none["drift"],
                "zero_shot_unseen": clip["zero_shot"]["unseen"]["all"],
            }
        )
    out: dict[str, Any] = {
        "folder": str(folder),
        "overrides": overrides,
        "seeds": [r["seed"] for r in per_seed],
    }
    out["per_seed"] = per_seed
    if len(per_seed) < 2:
        out["verdict"] = "incomplete"
        return out
    pays = t_interval([r["none_unseen"] - r["frozen_unseen"] for r in per_seed])
    erodes = t_interval([r["clip_after_unseen"] - r["clip_before_unseen"] for r in per_seed])
    teacher = statistics.fmean(r["clip_before_unseen"] for r in per_seed)
    frozen = statistics.fmean(r["frozen_unseen"] for r in per_seed)
    zs = statistics.fmean(r["zero_shot_unseen"] for r in per_seed)
    coarse = config.pretrain.dense_cell >= 2 or config.pretrain.dense_weight == 0
    out["criteria"] = {
        "1_finetuning_pays": {"mean": pays[0], "ci95": [pays[1], pays[2]], "pass": pays[1] > 0},
        "2_finetuning_erodes": {"mean": erodes[0], "ci95": [erodes[1], erodes[2]], "pass": erodes[2] < 0},
        "3_teacher_informative_noisy": {
            "coarse_target": coarse,
            "teacher_clip_unseen": teacher,
            "zero_shot_unseen_accuracy": zs,
            "frozen_unseen": frozen,
            "pass": coarse and teacher >= 20 and zs >= 80 and frozen - teacher >= 10,
        },
    }
    out["verdict"] = "pass" if all(c["pass"] for c in out["criteria"].values()) else "fail"
    return out


def _markdown(entries: list[dict[str, Any]]) -> str:
    lines = [
        "| setting (overrides of the defaults) | seeds | none − frozen, unseen [95% CI] | CLIP alone after − before, "
        "unseen [95% CI] | teacher CLIP alone unseen / zero-shot unseen acc. / frozen unseen | Q/V drift | "
        "none unseen / seen | 1 | 2 | 3 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        name = " ".join(e["overrides"]) or "(defaults)"
        if "criteria" not in e:
            lines.append(f"| {name} | {e['seeds']} | incomplete | | | | | | | |")
            continue
        c = e["criteria"]
        p, r, t = c["1_finetuning_pays"], c["2_finetuning_erodes"], c["3_teacher_informative_noisy"]
        drift = statistics.fmean(x["drift"] for x in e["per_seed"])
        nu = statistics.fmean(x["none_unseen"] for x in e["per_seed"])
        ns = statistics.fmean(x["none_seen"] for x in e["per_seed"])
        lines.append(
            f"| `{name}` | {e['seeds']} | {p['mean']:+.2f} [{p['ci95'][0]:+.2f}, {p['ci95'][1]:+.2f}] | "
            f"{r['mean']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | {t['teacher_clip_unseen']:.1f} / "
            f"{t['zero_shot_unseen_accuracy']:.0f}% / {t['frozen_unseen']:.1f} | {drift:.4f} | {nu:.1f} / {ns:.1f} | "
            + " | ".join("pass" if x["pass"] else "fail" for x in (p, r, t))
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Check every setting folder given and write the log (JSON and markdown)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ovss_proxy.calibration")
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, required=True, help="file stem of the log (.json, .md)")
    args = parser.parse_args(argv)
    entries = [check_setting(f) for f in args.folders]
    write_json_atomic(args.output.with_suffix(".json"), {"settings": entries})
    args.output.with_suffix(".md").write_text(_markdown(entries))
    print(_markdown(entries))
    return entries


if __name__ == "__main__":
    main()
