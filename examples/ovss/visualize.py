"""Figures of an OVSS run: training curves, prediction overlays, LPAM alignment maps (Fig. 4), t-SNE (Fig. 3).

Usage::

    python examples/ovss/visualize.py --config CONFIG --checkpoint CKPT [--dataset coco_stuff_val] [--out DIR]
        [--what curves predictions lpam tsne] [key.sub=value ...]

Exit status: 0 on success, 2 for a bad command line or configuration, 3 for unusable weights (missing,
corrupt, or not of the configured model), 4 for a missing or malformed dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from ovss.checkpoint import CheckpointError
from ovss.data import DatasetLayoutError, open_dataset
from ovss.trainer import build_model, load_config
from ovss.weights import load_state_into, load_weights

from ovss import plots


def main(argv: list[str] | None = None) -> list[Path]:
    """Parse the command line and draw the requested figures; returns their paths."""
    parser = argparse.ArgumentParser(description="Plots of an OVSS run.")
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument(
        "--dataset", default=None, help="dataset for predictions / LPAM / t-SNE (default: first eval dataset)"
    )
    parser.add_argument("--out", default=None, help="output folder (default: <output_dir>/plots)")
    parser.add_argument(
        "--what",
        nargs="+",
        default=["curves", "predictions", "lpam", "tsne"],
        choices=["curves", "predictions", "lpam", "tsne"],
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))  # exit status 2, naming the key, the value and what is allowed
    out = Path(args.out or Path(cfg.output_dir) / "plots")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if "curves" in args.what:
        paths.append(
            plots.plot_training_curves(Path(cfg.output_dir) / "metrics.jsonl", out / "training_curves.png")
        )
    rest = [w for w in args.what if w != "curves"]
    if rest:
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg)
        if args.checkpoint:
            try:
                load_state_into(model, load_weights(args.checkpoint), args.checkpoint)
            except CheckpointError as exc:
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(3) from None
        model.eval()
        name = args.dataset or cfg.eval.datasets[0]
        try:
            ds = open_dataset(cfg, name)
        except (DatasetLayoutError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(4) from None
        if "predictions" in rest:
            paths.append(
                plots.plot_prediction_overlays(
                    model,
                    ds,
                    out / "predictions.png",
                    **cfg.eval.protocol(),
                    pooling_size=cfg.eval.pooling_size,
                )
            )
        if "lpam" in rest:
            paths.append(
                plots.plot_alignment_heatmaps(
                    model, ds[0]["image"].float(), ds.class_names, out / "lpam_alignment.png"
                )
            )
        if "tsne" in rest:
            paths.append(plots.plot_tsne(model, ds, out / "tsne.png"))
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main()
