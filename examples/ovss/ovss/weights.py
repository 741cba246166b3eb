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
  the guidance upsampling ``upsample1/2`` keeps its names. CAT-Seg registers the attention mask of each
  shifted-window block as a saved buffer
  (``sem_seg_head.predictor.transformer.layers.{i}.swin_block.block_2.attn_mask``); this package
  recomputes it and does not save it: `load_state_into` checks a saved mask against the recomputed one
  and drops it. `load_weights` reads any of the formats.
"""

from __future__ import annotations

import re
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
    "load_state_into",
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
#: Saved shifted-window attention masks (CAT-Seg's buffers, in this package's names).
_SHIFT_MASK = re.compile(r"^aggregator\.layers\.\d+\.swin_block\.block_[12]\.attn_mask$")
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


def _catseg_name(key: str) -> str:
    for src, dst in CATSEG_PREFIXES.items():
        if key.startswith(dst):
            return src + key[len(dst) :]
    return key


def _drop_saved_shift_masks(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    from .checkpoint import CheckpointError

    buffers = dict(model.named_buffers())
    for key in [k for k in state if _SHIFT_MASK.match(k)]:
        saved = state.pop(key)
        ours = buffers.get(key)
        name = f"{key} (CAT-Seg: {_catseg_name(key)})"
        if ours is None:
            raise CheckpointError(
                f"{source} holds the shifted-window attention mask {name} {tuple(saved.shape)}, but the "
                "configured decoder has no shifted window there (another decoder.num_layers, window_size or "
                "feature_resolution); pass the --config the weights were trained with"
            )
        if tuple(saved.shape) != tuple(ours.shape):
            raise CheckpointError(
                f"{source}: the shifted-window attention mask {name} has shape {tuple(saved.shape)} in the "
                f"file but {tuple(ours.shape)} in the configured model (another decoder.window_size or "
                "feature_resolution); pass the --config the weights were trained with"
            )
        expected = ours.detach().to("cpu", torch.float64)
        got = saved.detach().to("cpu", torch.float64)
        if not torch.equal(got, expected):
            diff = int((got != expected).sum())
            raise CheckpointError(
                f"{source}: the shifted-window attention mask {name} differs from the mask the configured "
                f"decoder computes in {diff} of {expected.numel()} entries; the file is damaged or comes "
                "from a model with another window layout"
            )
    return state


def load_state_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Load a state dict (this package's key names, `load_weights`) into ``model``, all or nothing.

    Saved shifted-window attention masks (CAT-Seg's buffers) are checked against the masks the model
    computes and dropped; then every key must match and every tensor must have the model's shape.

    Raises:
        ovss.checkpoint.CheckpointError: a saved mask that differs from the recomputed one; missing or
            unexpected keys (the first few named); the first tensor, in the model's order, whose shape
            differs, named with both shapes; or a tensor holding NaN or infinite values. Nothing is
            loaded then.
    """
    from .checkpoint import CheckpointError

    state = _drop_saved_shift_masks(model, dict(state), str(source))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit the model of the configuration: missing {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}; pass the --config the weights were trained with"
        )
    for key, ours in own.items():
        if tuple(state[key].shape) != tuple(ours.shape):
            n_bad = sum(tuple(state[k].shape) != tuple(v.shape) for k, v in own.items())
            raise CheckpointError(
                f"{source} does not fit the model of the configuration: {key} has shape "
                f"{tuple(state[key].shape)} in the file but {tuple(ours.shape)} in the model "
                f"({n_bad} tensor(s) differ in shape); pass the --config the weights were trained with"
            )
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source} is damaged: {key} holds {bad} NaN or infinite value(s) of {value.numel()}; "
                "use another copy of the weights (a diverged training run saves such values too)"
            )
    model.load_state_dict(state, strict=True)
