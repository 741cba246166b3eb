"""``python -m benchmarks.ovss_proxy [--quick] [--output DIR] [--cache-dir DIR] [--seeds ...] [--calibrate] [--set K=V ...] [--jobs N]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

# Spinning OpenMP workers make a shared, oversubscribed CPU 10x slower (benchmarks/README.md); set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _OVSS  # noqa: F401  (makes ``ovss`` importable)
from .config import CALIBRATION_SEEDS, VARIANTS, ProxyConfig, apply_overrides, quick_config

ROOT = Path(__file__).resolve().parents[2]


def default_cache_dir() -> Path:
    """``$RENYI_INFO_CACHE/ovss_proxy`` or ``~/.cache/renyi-info/ovss_proxy``: worlds and CLIP weights."""
    base = os.environ.get("RENYI_INFO_CACHE") or Path.home() / ".cache" / "renyi-info"
    return Path(base) / "ovss_proxy"


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line and run (or resume) the table; returns the results dict."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ovss_proxy",
        description="Table 2 in miniature: open-vocabulary segmentation with and without distillation.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of minutes)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results folder (default benchmarks/results; --quick: benchmarks/results/quick; "
        "--calibrate: benchmarks/results/ovss_proxy_calibration)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="worlds and pretrained CLIPs (default ~/.cache/renyi-info/ovss_proxy)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=None, help="subset of variants"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help=f"the calibration runs: seeds {list(CALIBRATION_SEEDS)}, variant 'none' (+ the frozen-CLIP reference)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override settings (JSON values), e.g. finetune.base_lr=2e-3 pretrain.dense_cell=2; the run files "
        "record the hash of the resulting settings",
    )
    parser.add_argument(
        "--assemble-only",
        action="store_true",
        help="run nothing: write the JSON, table and plot from the seeds whose runs have all finished",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="worker processes of one thread each (the tiny runs scale better as processes than as threads); "
        "default 2, the setting the committed table was run with (one thread per run); 1: everything in this "
        "process, in order",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1; got {args.jobs}")

    import torch

    from .runner import run_table, write_outputs

    if args.threads:
        torch.set_num_threads(args.threads)
    config = quick_config() if args.quick else ProxyConfig()
    try:
        config = apply_overrides(config, args.overrides)
    except ValueError as exc:
        parser.error(str(exc))
    if args.calibrate:
        config = dataclasses.replace(config, seeds=CALIBRATION_SEEDS, variants=("none",))
    if args.seeds:
        config = dataclasses.replace(config, seeds=tuple(args.seeds))
    if args.variants:
        config = dataclasses.replace(config, variants=tuple(args.variants))
    results_dir = ROOT / "benchmarks" / "results"
    output = args.output or (
        results_dir / "quick"
        if args.quick
        else results_dir / "ovss_proxy_calibration"
        if args.calibrate
        else results_dir
    )
    cache = args.cache_dir or default_cache_dir()
    print(
        f"ovss_proxy: seeds {list(config.seeds)}, variants {['frozen_clip', *config.variants]}; output {output}; cache {cache}",
        flush=True,
    )
    if args.calibrate:
        from .records import write_json_atomic

        write_json_atomic(output / "calibration_setting.json", {"overrides": list(args.overrides)})
    if args.assemble_only:
        results = write_outputs(config, output, allow_partial=True)
    else:
        results = run_table(config, output, cache, jobs=args.jobs, log=lambda m: print(m, flush=True))
    print((output / "ovss_proxy.md").read_text())
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
