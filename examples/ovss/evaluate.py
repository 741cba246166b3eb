"""Evaluate an OVSS checkpoint on the benchmarks (CAT-Seg's sliding-window protocol by default).

Usage::

    python examples/ovss/evaluate.py --config examples/ovss/configs/train_vitb_384.yaml \
        --checkpoint output/vitb_infoclip/checkpoints/model_final.pth \
        --datasets ade847 pc459 ade150 pc59 voc20 voc20b [--mode whole] [--out DIR] [key.sub=value ...]

Writes ``results.json`` (mIoU, per-class IoU, confusion-matrix summaries) and ``results.md`` (a table
next to the paper's Table 1) into ``--out`` (default: the config's output_dir).

Exit status: 0 on success, 2 for a bad command line or configuration (including a ``model`` section
that does not fit its CLIP), 3 for unusable weights (missing, corrupt, a CAT-Seg file with foreign keys
or a wrong shifted-window mask, or weights of another model: the first mismatching tensor is named with
both shapes), 4 for a missing or malformed dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from ovss.checkpoint import CheckpointError
from ovss.data import BENCHMARKS, DatasetLayoutError, open_dataset
from ovss.evaluation import evaluate_dataset, markdown_table, write_results
from ovss.inference import load_model_for_inference
from ovss.trainer import build_model, load_config


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, evaluate, write the results; returns them."""
    parser = argparse.ArgumentParser(description="Evaluate an OVSS checkpoint (mIoU).")
    parser.add_argument("--config", required=True)
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="an exported model (<output_dir>/model.pth), a trainer checkpoint, a bare model state dict or a CAT-Seg model_final.pth; "
        "read with torch.load(weights_only=True), verified when it carries a checksum",
    )
    parser.add_argument("--datasets", nargs="+", default=list(BENCHMARKS))
    parser.add_argument("--mode", choices=["sliding", "whole"], default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N images per dataset")
    parser.add_argument("--device", default="auto")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))  # exit status 2, naming the key, the value and what is allowed
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    torch.manual_seed(cfg.train.seed)
    if args.checkpoint:  # every weight comes from the file: nothing downloaded, no teacher built
        try:
            model = load_model_for_inference(cfg, args.checkpoint, device)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(3) from None
    else:
        model = build_model(cfg).to(device)
    protocol = {**cfg.eval.protocol(), "mode": args.mode or cfg.eval.mode}
    mode = protocol["mode"]
    amp = cfg.train.bf16(device.type)  # CAT-Seg: fp32 (train.amp: off)
    results = {}
    for name in args.datasets:
        try:
            ds = open_dataset(cfg, name)
            results[name] = evaluate_dataset(
                model,
                ds,
                **protocol,
                pooling_size=cfg.eval.pooling_size,
                amp=amp,
                progress=True,
                limit=args.limit,
            )
        except (DatasetLayoutError, ValueError) as exc:  # a missing folder, or a sample that cannot be read
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(4) from None
        print(f"{name}: mIoU {results[name]['mIoU']:.2f}")
    out = Path(args.out or cfg.output_dir)
    path = write_results(
        results, out, row_name=f"{Path(args.checkpoint).name if args.checkpoint else 'init'} ({mode})"
    )
    print(markdown_table(results))
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return results


if __name__ == "__main__":
    main()
