"""Segment any image with any class names: a trained model, the evaluation protocol, no dataset.

`load_model_for_inference` builds the segmentor of a run configuration without downloading anything
(the checkpoint holds every student weight) and without the training-only teacher and distiller;
`segment_image` applies CAT-Seg's test protocol (the ``eval`` section: pre-resize, sliding window or
whole image, class-aggregation pooling); `render_segmentation` draws the prediction over the image
with a legend. ``examples/ovss/predict.py`` is the command line over these.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .class_names import parse_class_names
from .config import RunConfig
from .evaluation import eval_pooling, model_dtype, model_logits_fn, predict_probabilities
from .images import IMAGE_SUFFIXES
from .weights import load_state_into, load_weights

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "load_model_for_inference",
    "palette",
    "read_class_names",
    "render_segmentation",
    "segment_image",
]


def read_class_names(spec: str) -> list[str]:
    """Class names from ``"a,b,c"``, a JSON list or a file (`ovss.class_names.parse_class_names`: the
    one parser of every entry point; a string of any length that is not a file is taken as names).

    Raises:
        ValueError: no names, an empty name, repeated names or names giving the same prompt, or a path
            to a class file that does not exist (`ovss.data.DatasetLayoutError`, a
            ``FileNotFoundError``, for an unreadable file).

    Example:
        >>> read_class_names("cat, dog ,sky")
        ['cat', 'dog', 'sky']
    """
    return parse_class_names(spec, "--classes")


def list_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, or found (not recursively, sorted, hidden files skipped) in the folders
    named; a file named twice (directly or through its folder) is listed once.

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without images.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f
                for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise FileNotFoundError(f"folder {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        elif p.is_file():
            found = [p]
        else:
            raise FileNotFoundError(f"no such image or folder: {p}")
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(f)
    return out


def load_model_for_inference(cfg: RunConfig, weights: str | Path, device: torch.device | str = "cpu"):
    """The run's segmentor with the weights of ``weights``, in eval mode, for prediction.

    The model is built from ``cfg.model`` with a randomly initialised CLIP (nothing is downloaded: the
    file holds every student weight) and without the frozen teacher and the distiller, which only
    training uses; the distiller's weights in the file are ignored.

    Args:
        cfg: the run configuration (its ``model`` section must be the one the weights were trained with).
        weights: an exported ``model.pth``, a training checkpoint, a bare state dict or a CAT-Seg
            ``model_final.pth`` (`ovss.weights.load_weights`).
        device: where the model runs.

    Raises:
        ovss.checkpoint.CheckpointError: the file is missing, unreadable or corrupt, or its weights do
            not fit the configured model (the message lists the mismatching names).
    """
    from .trainer import build_model

    mcfg = copy.deepcopy(cfg.model)
    mcfg.clip.pretrained = None
    mcfg.distill = dataclasses.replace(mcfg.distill, name="none", options={})
    run = dataclasses.replace(cfg, model=mcfg)
    model = build_model(run)
    state = load_weights(weights, map_location="cpu")
    state = {k: v for k, v in state.items() if not k.startswith("distiller.")}
    load_state_into(model, state, weights)
    return model.to(device).eval()


@torch.no_grad()
def segment_image(
    model: torch.nn.Module, image: torch.Tensor, class_names: Sequence[str], cfg: RunConfig
) -> torch.Tensor:
    """Per-class probabilities ``(T, H, W)`` of a ``(3, H, W)`` uint8 RGB image by the ``eval``
    section's protocol (CAT-Seg's by default) and ``train.amp``'s precision."""
    device = next(model.parameters()).device
    fn = model_logits_fn(model, class_names, amp=cfg.train.bf16(device.type))
    with eval_pooling(model, cfg.eval.pooling_size):
        return predict_probabilities(
            fn, image, tuple(image.shape[-2:]), **cfg.eval.protocol(), dtype=model_dtype(model)
        )


def palette(n: int) -> np.ndarray:
    """``n`` distinct RGB uint8 colours (``(n, 3)``): evenly spaced hues at two brightness levels."""
    import colorsys

    cols = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0  # golden-ratio hue steps stay apart for any n
        v = 0.95 if i % 2 == 0 else 0.7
        cols.append([round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.75, v)])
    return np.asarray(cols, dtype=np.uint8).reshape(n, 3)


def render_segmentation(image: np.ndarray, pred: np.ndarray, class_names: Sequence[str]):
    """The image with the predicted classes blended over it (50 %) and a legend of the classes present
    (largest area first, with their share of the pixels), as a PIL image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        pred: ``(H, W)`` class indices into ``class_names``.
        class_names: the names.
    """
    from PIL import Image, ImageDraw, ImageFont

    pal = palette(len(class_names))
    overlay = (0.5 * image.astype(np.float32) + 0.5 * pal[pred].astype(np.float32)).round().astype(np.uint8)
    ids, counts = np.unique(pred, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    font = ImageFont.load_default()
    row = 18
    lines = [(int(ids[i]), f"{class_names[int(ids[i])]}  {100 * counts[i] / pred.size:.1f}%") for i in order]
    width = 40 + max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=font)) for _, t in lines)
    h, w = pred.shape
    canvas = Image.new("RGB", (w + width, max(h, row * len(lines) + 8)), (255, 255, 255))
    canvas.paste(Image.fromarray(overlay), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (cid, text) in enumerate(lines):
        y = 4 + k * row
        draw.rectangle(
            [w + 6, y + 2, w + 24, y + 14], fill=tuple(int(c) for c in pal[cid]), outline=(0, 0, 0)
        )
        draw.text((w + 30, y + 2), text, fill=(0, 0, 0), font=font)
    return canvas
