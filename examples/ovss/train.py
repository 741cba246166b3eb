"""Train the OVSS segmentor (CAT-Seg + InfoCLIP or a baseline distiller).

Usage::

    python examples/ovss/train.py --config examples/ovss/configs/train_vitb_384.yaml [key.sub=value ...]
    torchrun --nproc_per_node 4 examples/ovss/train.py --config ... train.batch_size=4
    python examples/ovss/train.py --config ... --resume          # continue from output_dir's last checkpoint
    python examples/ovss/train.py --config examples/ovss/configs/demo.yaml   # CPU demo, a few minutes

See ``ovss.trainer`` for the configuration keys and ``docs/ovss/training.md`` for the recipes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ovss.trainer import Trainer, load_config


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, train, evaluate; returns the final metrics."""
    parser = argparse.ArgumentParser(description="Train the OVSS example (CAT-Seg + InfoCLIP).")
    parser.add_argument("--config", required=True, help="YAML config (examples/ovss/configs/*.yaml)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        help="resume from a checkpoint path, or (no value) from output_dir's last checkpoint",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate (after --resume)")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg)
    if args.resume is not None:
        found = trainer.resume(args.resume or None)
        if trainer.is_main:
            print(
                f"resumed from iteration {trainer.iteration}"
                if found
                else "no checkpoint found: starting fresh"
            )
    if args.eval_only:
        results = trainer.evaluate()
        return {n: r["mIoU"] for n, r in results.items()}
    metrics = trainer.train()
    if trainer.is_main:
        print(f"mIoU {metrics['mIoU']:.2f} ({metrics['per_dataset_mIoU']})")
        print(f"outputs written to {trainer.output_dir.resolve()}")
    return metrics


if __name__ == "__main__":
    main()
