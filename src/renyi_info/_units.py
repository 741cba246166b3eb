"""Units of the results: nats (natural logarithm, what every algorithm returns) to the caller's base."""

from __future__ import annotations

import math

import torch


def to_base(nats: torch.Tensor, base: float) -> torch.Tensor:
    """``nats / ln(base)`` (no-op for ``base = e``); ``base`` already validated (finite, > 0, != 1)."""
    return nats if base == math.e else nats / math.log(base)
