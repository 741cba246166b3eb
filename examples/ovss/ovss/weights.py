"""Weights as users hold them: OpenAI's TorchScript CLIP archives and CAT-Seg's detectron2 checkpoints.

- **OpenAI CLIP ``.pt``** (``ViT-B-16.pt``, ``ViT-L-14-336px.pt``: what OpenAI's ``clip`` package and
  CAT-Seg download and cache): a TorchScript archive whose ``state_dict`` uses OpenAI's key names, which
  are open_clip's (`openai_state_dict`). open_clip's own file loader refuses TorchScript archives;
  `ovss.clip.create_clip` reads them with `openai_state_dict`. open_clip / Hugging Face files
  (``open_clip_pytorch_model.bin``, ``open_clip_model.safetensors``) go to open_clip's loader.
- **CAT-Seg ``model_final.pth``** (detectron2: ``{"model": state_dict, ...}``): CAT-Seg's key names
  map one to one onto this package's (`catseg_to_ovss`): its CLIP (``sem_seg_head.predictor.clip_model``,
  attention weights already split into ``q/k/v_proj_weight`` as here) becomes ``clip.clip``, its
  aggregator (``sem_seg_head.predictor.transformer``) becomes ``aggregator`` (same submodule names), and
  the guidance upsampling ``upsample1/2`` keeps its names. `load_weights` reads any of the formats.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = [
    "CATSEG_PREFIXES",
    "catseg_to_ovss",
    "is_catseg_state",
    "is_torchscript_archive",
    "load_weights",
    "openai_state_dict",
]

#: CAT-Seg key prefix → this package's (`catseg_to_ovss`).
CATSEG_PREFIXES: dict[str, str] = {
    "sem_seg_head.predictor.clip_model.": "clip.clip.",
    "sem_seg_head.predictor.transformer.": "aggregator.",
    "upsample1.": "upsample1.",
    "upsample2.": "upsample2.",
}
#: Integers OpenAI's archives keep next to the weights (not parameters of the model).
_OPENAI_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a zip holding ``constants.pkl``
    and compiled ``code/``), as OpenAI's released CLIP ``.pt`` files are."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def openai_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The float32 CLIP state dict of an OpenAI TorchScript archive, in OpenAI's (= open_clip's) key names.

    The archive is read with ``torch.jit.load`` on the CPU (its compiled code is not run); the integers
    ``input_resolution``, ``context_length`` and ``vocab_size`` are dropped and half-precision weights
    (OpenAI's archives hold fp16) are converted to float32.

    Raises:
        ValueError: ``path`` is not a TorchScript archive.
    """
    if not is_torchscript_archive(path):
        raise ValueError(f"{path} is not a TorchScript archive (OpenAI's CLIP .pt format)")
    with warnings.catch_warnings():  # torch.jit is deprecated for new code; OpenAI's files use it
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    state = {k: v for k, v in module.state_dict().items() if k not in _OPENAI_EXTRAS}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def catseg_to_ovss(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CAT-Seg model state dict (``model_final.pth``'s ``"model"``) in this package's key names.

    Raises:
        ValueError: keys outside CAT-Seg's modules (`CATSEG_PREFIXES`), named in the message.

    Example:
        >>> list(catseg_to_ovss({"sem_seg_head.predictor.transformer.head.bias": torch.zeros(1)}))
        ['aggregator.head.bias']
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        for src, dst in CATSEG_PREFIXES.items():
            if key.startswith(src):
                out[dst + key[len(src) :]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"keys that are not CAT-Seg's CLIP, aggregator or guidance upsampling: {unknown[:8]}"
            f"{' ...' if len(unknown) > 8 else ''}"
        )
    return out


def is_catseg_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict uses CAT-Seg's key names (its head lives under ``sem_seg_head.``)."""
    return any(k.startswith("sem_seg_head.") for k in state)


def load_weights(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """This package's model state dict from an exported ``model.pth``, a training checkpoint, a bare state
    dict, or a CAT-Seg (detectron2) ``model_final.pth``; all read with ``weights_only=True``.

    Raises:
        ovss.checkpoint.CheckpointError: unreadable, corrupt or unsafe file, no model weights in it, or
            CAT-Seg-named weights with keys that are not CAT-Seg's.
    """
    from .checkpoint import CheckpointError, load_model_weights

    state = load_model_weights(path, map_location=map_location)
    if is_catseg_state(state):
        try:
            state = catseg_to_ovss(state)
        except ValueError as exc:
            raise CheckpointError(f"{path}: CAT-Seg checkpoint with {exc}") from None
    return state
