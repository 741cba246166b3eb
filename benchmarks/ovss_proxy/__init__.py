"""Table 2 in miniature: a CPU-scale open-vocabulary segmentation benchmark of InfoCLIP's distillation.

A procedurally generated world of textured regions whose class names compose two words
(``"<colour> <pattern>"``); a tiny open_clip CLIP pretrained contrastively on captioned images of that
world (so it has real zero-shot ability on word combinations it never saw); the project's OVSS segmentor
(dense CLIP + CAT-Seg decoder + a distiller) fine-tuned from it on *seen* classes only and evaluated
with the sliding-window protocol on *unseen*-class and seen-class scenes.

Run it from the repository root::

    python -m benchmarks.ovss_proxy                      # the full table (resumable)
    python -m benchmarks.ovss_proxy --quick --output DIR  # tiny sizes, a smoke run

Modules: :mod:`.config` (every setting, the seeds), :mod:`.world` (the world and its on-disk dataset),
:mod:`.pretrain` (the tiny CLIP, cached by config hash), :mod:`.finetune` (one segmentor run),
:mod:`.runner` (the table, resume, JSON and plot). See ``docs/benchmarks-ovss-proxy.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ---- the one place that makes the OVSS example importable (as examples/ovss/train.py does) ----------
_OVSS = str(Path(__file__).resolve().parents[2] / "examples" / "ovss")
if _OVSS not in sys.path:
    sys.path.insert(0, _OVSS)
