"""The ``model`` section checked as a whole before anything is built (`check_model_section`).

Each key of the section is checked on its own when the configuration is read (`ovss.config`); this
module checks that the keys fit each other and the CLIP architecture, from open_clip's architecture
table alone (no CLIP is built, nothing is downloaded):

- ``clip.model_name`` is an open_clip ViT (class token, projection; not a ResNet or timm tower);
- ``clip.image_size`` is a multiple of the patch size and its patch grid is
  ``decoder.feature_resolution``;
- ``decoder.text_guidance_dim`` and ``appearance_guidance_dim`` are CLIP's embedding width (or 0);
- with decoder guidance, ``clip.guidance_layers`` names two distinct blocks before the last one;
- the decoder itself can be built (window size, heads, ...: `ovss.aggregator.Aggregator`).

`ovss.config.load_config` calls it, so an inconsistent section is refused there (``train.py``,
``evaluate.py``, ``predict.py``: exit status 2), not later by the model's constructor.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_model_section"]


def _clip_table(name: str) -> dict[str, Any]:
    import open_clip

    from .tiny_model import TINY_CLIP, register_tiny_clip

    if name == TINY_CLIP:
        register_tiny_clip()
    if not isinstance(name, str) or name not in open_clip.list_models():
        raise ValueError(
            f"model.clip.model_name={name!r} is not an open_clip architecture (see open_clip.list_models(); "
            "CAT-Seg's are ViT-B-16-quickgelu and ViT-L-14-336-quickgelu)"
        )
    table = open_clip.get_model_config(name)
    if table is None:  # listed but without a table: nothing to check against
        raise ValueError(f"model.clip.model_name={name!r}: open_clip has no architecture table for it")
    return table


def check_model_section(model: Any) -> None:
    """Refuse a `ovss.config.ModelConfig` whose keys do not fit each other or the CLIP architecture.

    Raises:
        ValueError: the first inconsistency, naming the keys, their values and what would fit.
    """
    ccfg, dcfg = model.clip, model.decoder
    table = _clip_table(ccfg.model_name)
    vision = table.get("vision_cfg", {})
    patch = vision.get("patch_size")
    layers = vision.get("layers")
    if (
        vision.get("timm_model_name")
        or not isinstance(patch, int)
        or not isinstance(layers, int)
        or vision.get("attentional_pool")
    ):
        tower = vision.get("timm_model_name") or (
            "a ResNet" if not isinstance(patch, int) else "attention-pooled"
        )
        raise ValueError(
            f"model.clip.model_name={ccfg.model_name!r} is not a class-token ViT (its image tower is {tower}); "
            "the dense features need an open_clip ViT such as ViT-B-16-quickgelu"
        )
    size = int(ccfg.image_size)
    grid = size // patch
    if size % patch or (grid, grid) != tuple(dcfg.feature_resolution):
        fits = tuple(dcfg.feature_resolution)
        raise ValueError(
            f"model.clip.image_size={size} with {ccfg.model_name}'s {patch}-pixel patches gives a "
            f"{size / patch:g}x{size / patch:g} grid but model.decoder.feature_resolution={list(fits)}; "
            f"use image_size={patch * fits[0]} or feature_resolution=[{grid}, {grid}]"
            + (f" (and a multiple of {patch})" if size % patch else "")
        )
    width = int(table.get("embed_dim", 0))
    for key in ("text_guidance_dim", "appearance_guidance_dim"):
        value = int(getattr(dcfg, key))
        if value not in (0, width):
            raise ValueError(
                f"model.decoder.{key}={value} must be {ccfg.model_name}'s embedding width {width} (or 0 "
                "for no guidance)"
            )
    if dcfg.decoder_guidance_dims[0] > 0:
        gl = tuple(ccfg.guidance_layers)
        if len(gl) != 2 or len(set(gl)) != 2 or any(not 0 <= i <= layers - 2 for i in gl):
            raise ValueError(
                f"model.clip.guidance_layers={list(gl)}: the decoder's guidance needs two distinct blocks "
                f"of {ccfg.model_name} before its last (dense) one, in 0..{layers - 2} (CAT-Seg: [3, 7] "
                "for ViT-B/16, [7, 15] for ViT-L/14)"
            )
    from .aggregator import Aggregator

    try:
        Aggregator(dcfg)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"model.decoder: {exc}") from None
