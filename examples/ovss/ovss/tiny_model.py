"""A tiny random CLIP and model configuration for fast CPU tests and smoke runs (no downloads).

``ovss-tiny`` is an open_clip architecture of 16×16 images, 4-pixel patches, 3 image blocks of width
32, a 2-block text encoder with a 16-token context, and a 16-dim joint space; at ``image_size=32`` it
gives an 8×8 grid, which the matching decoder configuration aggregates with 4×4 windows.
"""

from __future__ import annotations

from pathlib import Path

import open_clip

from .aggregator import AggregatorConfig
from .config import CLIPConfig, DistillConfig, LossConfig, ModelConfig

__all__ = ["TINY_CLIP", "register_tiny_clip", "tiny_model_config"]

TINY_CLIP = "ovss-tiny"
_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


def register_tiny_clip() -> str:
    """Register the ``ovss-tiny`` open_clip architecture (idempotent) and return its name."""
    if TINY_CLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR / f"{TINY_CLIP}.json")
    return TINY_CLIP


def tiny_model_config(
    distill: str = "infoclip", *, templates: str | tuple[str, ...] = "single", pad_len: int = 8
) -> ModelConfig:
    """A `ModelConfig` over ``ovss-tiny`` (random init) with a scaled-down CAT-Seg decoder.

    Args:
        distill: distiller name (``"none"`` builds no teacher).
        templates: prompt templates.
        pad_len: class padding / top-k length of the decoder (small so tests exercise both paths).
    """
    register_tiny_clip()
    return ModelConfig(
        clip=CLIPConfig(TINY_CLIP, None, 32, (0, 1), templates),
        decoder=AggregatorConfig(
            text_guidance_dim=16,
            text_guidance_proj_dim=8,
            appearance_guidance_dim=16,
            appearance_guidance_proj_dim=8,
            decoder_dims=(32, 16),
            decoder_guidance_dims=(8, 8),
            decoder_guidance_proj_dims=(4, 4),
            num_layers=2,
            num_heads=2,
            hidden_dim=16,
            pooling_size=(2, 2),
            feature_resolution=(8, 8),
            window_size=4,
            pad_len=pad_len,
        ),
        distill=DistillConfig.named(distill),
        loss=LossConfig(),
    )
