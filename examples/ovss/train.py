"""Train the OVSS segmentor (CAT-Seg + InfoCLIP or a baseline distiller).

Usage::

    python examples/ovss/train.py --config examples/ovss/configs/train_vitb_384.yaml [key.sub=value ...]
    torchrun --nproc_per_node 4 examples/ovss/train.py --config ... train.batch_size=4
    python examples/ovss/train.py --config ... --resume          # continue from output_dir's newest checkpoint
    python examples/ovss/train.py --config ... --resume PATH     # continue from that checkpoint
    python examples/ovss/train.py --config ... --resume-or-start # continue if there is a checkpoint, else start
    python examples/ovss/train.py --config ... --start-over      # delete output_dir's previous run, start anew
    python examples/ovss/train.py --config examples/ovss/configs/demo.yaml   # CPU demo, a few minutes
    python examples/ovss/train.py --config ... --check-data      # only scan the data, list every problem

The configuration is checked before any work (an error names the key, the value and what is allowed),
then your own datasets (``folder:<name>``) are scanned once, every sample read as training will read
it (``ovss.data_check``; ``--no-data-check`` skips it): every problem is listed with its file before
anything is written. A new run refuses an output folder that holds another run. Exit status: 0 on
success (``--check-data``: no problem found), 2 for a bad command line or configuration, 3 for a
checkpoint that is missing, unreadable or corrupt, or a ``--resume`` that finds nothing, 4 for an
output folder that holds another run, 5 for data problems (the list is printed).

See ``ovss.config`` for the configuration keys and ``docs/ovss/training.md`` for the recipes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Set before torch starts OpenMP: idle worker threads then sleep instead of spinning. On a CPU whose cores
# are busy with other work, spinning workers made a two-thread demo step ~14x slower (3.9 s against 0.27 s,
# docs/ovss/training.md); a value the user already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ovss.checkpoint import CheckpointError  # (imports torch: after the OpenMP setting above)
from ovss.config import is_override, load_config
from ovss.data_check import check_data
from ovss.run_log import check_fresh_output_dir, remove_run_files
from ovss.trainer import Trainer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the OVSS example (CAT-Seg + InfoCLIP).")
    parser.add_argument("--config", required=True, help="YAML config (examples/ovss/configs/*.yaml)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="continue from the checkpoint PATH, or (no value) from output_dir's newest intact checkpoint; "
        "fails if there is none",
    )
    start.add_argument(
        "--resume-or-start",
        action="store_true",
        help="continue from output_dir's newest intact checkpoint if there is one, else start a new run",
    )
    start.add_argument(
        "--start-over",
        action="store_true",
        help="delete the previous run's outputs in output_dir (checkpoints, logs, plots) and start anew",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate (after --resume)")
    parser.add_argument(
        "--check-data",
        action="store_true",
        help="only scan every dataset of the config (training and evaluation), list every problem, exit",
    )
    parser.add_argument(
        "--no-data-check", action="store_true", help="skip the scan of your own datasets before the run"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value")
    args = parser.parse_args(argv)
    # ``--resume key=value``: argparse took the override for the optional path; give it back.
    if args.resume and is_override(args.resume) and not Path(args.resume).exists():
        args.overrides.insert(0, args.resume)
        args.resume = ""
    bad = [o for o in args.overrides if not is_override(o)]
    if bad:
        parser.error(f"overrides must look like key.sub=value; got {bad}")
    return args


def _is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # torchrun sets RANK; a plain run is rank 0


def _fail(code: int, message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, train, evaluate; returns the final metrics."""
    args = _parse(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        _fail(2, str(exc))
    if args.check_data or not args.no_data_check:  # before anything is written or removed
        report = check_data(cfg, own_only=not args.check_data)
        if (args.check_data or report.problems or report.notes) and _is_rank0():
            print(report.format(), file=sys.stdout if report.ok else sys.stderr)
        if not report.ok:
            _fail(5, f"{len(report.problems)} data problem(s), listed above; fix them and run again")
        if args.check_data:
            return {"problems": 0, "samples": report.samples}
    if args.resume:  # an explicit path: check it before building anything
        if not Path(args.resume).is_file():
            _fail(3, f"--resume {args.resume}: no such checkpoint file")
    elif args.resume is None and not args.resume_or_start and not args.eval_only and _is_rank0():
        if args.start_over:
            remove_run_files(cfg.output_dir)
        try:
            check_fresh_output_dir(cfg.output_dir)
        except FileExistsError as exc:
            _fail(4, str(exc))
    trainer = Trainer(cfg)
    if args.resume is not None or args.resume_or_start:
        try:
            found = trainer.resume(args.resume or None)
        except CheckpointError as exc:
            _fail(3, str(exc))
        if not found and not args.resume_or_start:
            _fail(
                3,
                f"--resume: no checkpoint in {Path(cfg.output_dir) / 'checkpoints'} to resume from; "
                "pass a checkpoint path, use --resume-or-start, or drop --resume to start a new run",
            )
        if trainer.is_main:
            print(
                f"resumed from {trainer.resumed_from} (iteration {trainer.iteration})"
                if found
                else f"no checkpoint in {cfg.output_dir}: starting a new run"
            )
    if args.eval_only:
        results = trainer.evaluate()
        return {n: r["mIoU"] for n, r in results.items()}
    try:
        metrics = trainer.train()
    except FileExistsError as exc:
        _fail(4, str(exc))
    if trainer.is_main:
        print(f"mIoU {metrics['mIoU']:.2f} ({metrics['per_dataset_mIoU']})")
        print(f"outputs written to {trainer.output_dir.resolve()}")
    return metrics


if __name__ == "__main__":
    main()
