"""Segment your own images with your own class names (CAT-Seg's evaluation protocol, no dataset needed).

Usage::

    python examples/ovss/predict.py --config CFG --weights CKPT --classes "cat,dog,grass,sky" \
        --output DIR IMAGE_OR_FOLDER [IMAGE_OR_FOLDER ...] [--save-logits] [--device cpu] [key.sub=value ...]

``--classes`` is a comma-separated list or a file (one name per line, or a JSON list). ``CKPT`` is a
run's exported ``model.pth``, a training checkpoint, or a bare state dict; ``CFG`` is the run's
configuration (its ``model`` section builds the network, its ``eval`` section sets the protocol:
pre-resize, sliding window or whole image, pooling). For each image ``DIR`` gets ``<stem>.png`` (the
prediction over the image with a legend), ``<stem>_mask.png`` (class indices, 8-bit or 16-bit) and,
with ``--save-logits``, ``<stem>_scores.npz`` (``probabilities``: the per-class sigmoid scores
``(T, H, W)`` the argmax is taken over; ``logits``: their log-odds; ``class_names``).

Exit status: 0 on success, 2 for a bad command line, configuration or class list, 3 for unusable
weights, 4 for a missing or unreadable image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from ovss.checkpoint import CheckpointError
from ovss.config import is_override, load_config
from ovss.data import DatasetLayoutError, read_image
from ovss.inference import (
    list_images,
    load_model_for_inference,
    read_class_names,
    render_segmentation,
    segment_image,
)


def _fail(code: int, message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> list[Path]:
    """Parse the command line, segment every image, write the outputs; returns the PNG paths."""
    parser = argparse.ArgumentParser(description="Segment images with any class names (OVSS example).")
    parser.add_argument("--config", required=True, help="the run's YAML config")
    parser.add_argument("--weights", required=True, help="model.pth, a training checkpoint or a state dict")
    parser.add_argument("--classes", required=True, help='"a,b,c" or a file (one name per line / JSON list)')
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--save-logits", action="store_true", help="also write <stem>_scores.npz")
    parser.add_argument("inputs", nargs="+", help="images, folders of images, then key.sub=value overrides")
    args = parser.parse_args(argv)
    overrides = [a for a in args.inputs if is_override(a) and not Path(a).exists()]
    inputs = [a for a in args.inputs if a not in overrides]
    if not inputs:
        parser.error("name at least one image or folder")
    try:
        cfg = load_config(args.config, overrides)
        class_names = read_class_names(args.classes)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    try:
        images = list_images(inputs)
    except FileNotFoundError as exc:
        _fail(4, str(exc))
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    try:
        model = load_model_for_inference(cfg, args.weights, device)
    except CheckpointError as exc:
        _fail(3, str(exc))
    from PIL import Image

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        try:
            image = read_image(path)
        except DatasetLayoutError as exc:
            _fail(4, str(exc))
        probs = segment_image(model, torch.from_numpy(image.transpose(2, 0, 1).copy()), class_names, cfg)
        pred = probs.argmax(0).cpu().numpy()
        png = out / f"{path.stem}.png"
        render_segmentation(image, pred, class_names).save(png)
        mask = pred.astype(np.uint8 if len(class_names) <= 256 else np.uint16)
        Image.fromarray(mask).save(out / f"{path.stem}_mask.png")
        if args.save_logits:
            p = probs.cpu().numpy().astype(np.float32)
            eps = np.float32(1e-6)  # float32 probabilities saturate at 0 and 1: clip before the log-odds
            q = np.clip(p, eps, 1 - eps)
            np.savez_compressed(
                out / f"{path.stem}_scores.npz",
                probabilities=p,
                logits=np.log(q) - np.log1p(-q),
                class_names=np.asarray(class_names),
            )
        written.append(png)
        print(f"{path} -> {png}")
    return written


if __name__ == "__main__":
    main()
