"""Segment your own images with your own class names (CAT-Seg's evaluation protocol, no dataset needed).

Usage::

    python examples/ovss/predict.py --config CFG --weights CKPT --classes "cat,dog,grass,sky" \
        --output DIR IMAGE_OR_FOLDER [IMAGE_OR_FOLDER ...] [--save-logits] [--device cpu] [key.sub=value ...]

``--classes`` is a comma-separated list, a JSON list or a file (one name per line, or a JSON list);
see ``ovss.class_names``. ``CKPT`` is a
run's exported ``model.pth``, a training checkpoint, a bare state dict or a CAT-Seg ``model_final.pth``;
``CFG`` is the run's configuration (its ``model`` section builds the network, its ``eval`` section sets
the protocol: pre-resize, sliding window or whole image, pooling). Images are read as a viewer shows them
(EXIF orientation applied, any colour mode and 16-bit data converted: ``ovss.images``). For each image
``DIR`` gets ``<name>.png`` (the prediction over the image with a legend), ``<name>_mask.png`` (class
indices, 8-bit or 16-bit) and, with ``--save-logits``, ``<name>_scores.npz`` (``probabilities``: the
per-class sigmoid scores ``(T, H, W)`` the argmax is taken over; ``logits``: their log-odds;
``class_names``). ``<name>`` is the image's stem unless two outputs would collide
(``ovss.outputs.plan_outputs``). Every output path is checked before any work: an input is never
replaced, an existing file only with ``--overwrite``; each file is written atomically.

Exit status: 0 on success, 2 for a bad command line, configuration or class list, 3 for unusable
weights (missing, corrupt, or not of the configured model), 4 for a missing or unreadable image (all of
them are listed), 5 for outputs that would overwrite or lose a file, or an output folder that cannot be
created.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from ovss.checkpoint import CheckpointError
from ovss.config import is_override, load_config
from ovss.images import DatasetLayoutError, read_image
from ovss.inference import (
    list_images,
    load_model_for_inference,
    read_class_names,
    render_segmentation,
    segment_image,
)
from ovss.outputs import OutputPathError, plan_outputs, write_atomic


def _fail(code: int, message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _exists(arg: str) -> bool:
    try:
        return Path(arg).exists()
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> list[Path]:
    """Parse the command line, segment every image, write the outputs; returns the overlay PNG paths."""
    parser = argparse.ArgumentParser(description="Segment images with any class names (OVSS example).")
    parser.add_argument("--config", required=True, help="the run's YAML config")
    parser.add_argument("--weights", required=True, help="model.pth, a training checkpoint or a state dict")
    parser.add_argument(
        "--classes", required=True, help='"a,b,c", a JSON list, or a file (one name per line / JSON list)'
    )
    parser.add_argument("--output", required=True, help="output folder (must not be an input folder)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--save-logits", action="store_true", help="also write <name>_scores.npz")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing output files (never an input image)"
    )
    parser.add_argument("inputs", nargs="+", help="images, folders of images, then key.sub=value overrides")
    args = parser.parse_args(argv)
    overrides = [a for a in args.inputs if is_override(a) and not _exists(a)]
    inputs = [a for a in args.inputs if a not in overrides]
    if not inputs:
        parser.error("name at least one image or folder")
    try:
        cfg = load_config(args.config, overrides)
        class_names = read_class_names(args.classes)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if len(class_names) > 65536:
        parser.error(f"--classes: {len(class_names)} classes do not fit a 16-bit mask PNG (at most 65536)")
    try:
        images = list_images(inputs)
    except FileNotFoundError as exc:
        _fail(4, str(exc))
    try:
        plan = plan_outputs(images, args.output, save_logits=args.save_logits, overwrite=args.overwrite)
    except OutputPathError as exc:
        _fail(5, str(exc))
    unreadable = []
    for path in images:  # every image decodes before any work: all problems at once
        try:
            read_image(path)
        except DatasetLayoutError as exc:
            unreadable.append(str(exc))
    if unreadable:
        _fail(4, f"{len(unreadable)} of {len(images)} images cannot be used:\n  " + "\n  ".join(unreadable))
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    try:
        model = load_model_for_inference(cfg, args.weights, device)
    except CheckpointError as exc:
        _fail(3, str(exc))
    from PIL import Image

    try:
        Path(args.output).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(5, f"--output {args.output}: cannot create the folder ({exc})")
    written = []
    for outputs in plan:
        image = read_image(outputs.image)
        probs = segment_image(model, torch.from_numpy(image.transpose(2, 0, 1).copy()), class_names, cfg)
        pred = probs.argmax(0).cpu().numpy()
        mask = pred.astype(np.uint8 if len(class_names) <= 256 else np.uint16)
        try:
            write_atomic(outputs.overlay, render_segmentation(image, pred, class_names).save)
            write_atomic(outputs.mask, Image.fromarray(mask).save)
            if outputs.scores is not None:
                p = probs.cpu().numpy().astype(np.float32)
                eps = np.float32(1e-6)  # float32 probabilities saturate at 0 and 1: clip before the log-odds
                q = np.clip(p, eps, 1 - eps)
                write_atomic(
                    outputs.scores,
                    lambda f, p=p, q=q: np.savez_compressed(
                        f,
                        probabilities=p,
                        logits=np.log(q) - np.log1p(-q),
                        class_names=np.asarray(class_names),
                    ),
                )
        except OSError as exc:
            _fail(5, f"cannot write the outputs of {outputs.image} into {args.output}: {exc}")
        written.append(outputs.overlay)
        print(f"{outputs.image} -> {outputs.overlay}")
    return written


if __name__ == "__main__":
    main()
