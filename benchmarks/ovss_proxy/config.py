"""Every setting of the proxy benchmark, the seed sets, and the config hashes that key its caches.

All hyperparameters were settled on the calibration seeds (:data:`CALIBRATION_SEEDS`, running only the
``none`` variant and the frozen-CLIP reference, to make sure forgetting exists) and then frozen; the
table is reported on :data:`REPORT_SEEDS`. The distillers' own options are the paper's / the project's
defaults (InfoCLIP λ1 = λ2 = 1, KL weight 1 at T = 1, MAFT / MAFT+ weight 0.1) and were never tuned here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

#: Seeds the settings were calibrated on (``none`` and ``frozen_clip`` only), until ``none`` ended below
#: the frozen-CLIP reference on unseen classes on every one of them (round 2: the dense pretraining
#: term). Never used for the reported table.
CALIBRATION_SEEDS: tuple[int, ...] = (100, 101, 102)
#: Seeds of the reported table.
REPORT_SEEDS: tuple[int, ...] = (0, 1, 2)

#: Colour words and their base RGB values.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 50, 200),
    "cyan": (40, 210, 215),
}
#: Pattern words (how the colour is laid out on a dark base).
PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")


def _split() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The fixed seen / unseen / held-out split of the 6 × 4 vocabulary (colour ``i``, pattern ``j``).

    * seen: ``j = i mod 4``: one pattern per colour, so the seen classes all differ in colour and
      nothing in fine-tuning rewards telling patterns apart (the paper's *chair* / *armchair*
      situation: a seen class and unseen classes that share its words);
    * held out of CLIP pretraining (a clean zero-shot test of compositions never pictured):
      ``j = (i + 3) mod 4`` for colours 0-3;
    * unseen: every other combination (14), so each colour has two or three unseen classes that differ
      only in pattern.

    Every colour and every pattern word of an unseen or held-out class appears in some seen class.
    """
    seen, unseen, held = [], [], []
    for i, colour in enumerate(COLOURS):
        for j, pattern in enumerate(PATTERNS):
            name = f"{colour} {pattern}"
            if j == i % len(PATTERNS):
                seen.append(name)
            elif j == (i + 3) % len(PATTERNS) and i < 4:
                held.append(name)
            else:
                unseen.append(name)
    return tuple(seen), tuple(unseen), tuple(held)


SEEN, UNSEEN, HELD_OUT = _split()


@dataclass(frozen=True)
class WorldConfig:
    """The procedurally generated world (:mod:`.world`).

    Attributes:
        colours: colour word → base RGB.
        patterns: pattern words.
        seen: classes of the fine-tuning data (and of the seen evaluation).
        unseen: classes of the unseen evaluation only (pictured in CLIP pretraining, never in fine-tuning).
        held_out: classes never pictured anywhere (CLIP's compositional zero-shot test only).
        image_size: side of a scene in pixels.
        num_train: fine-tuning scenes (seen classes only).
        num_val: scenes of each evaluation split (seen, unseen).
        regions: (min, max) Voronoi regions per scene, each a different class.
        period: pattern period in pixels at scale 1.
        noise: std of the per-pixel Gaussian noise (0-255 scale).
        jitter: max per-channel shift of a region's colour.
    """

    colours: tuple[tuple[str, tuple[int, int, int]], ...] = tuple(COLOURS.items())
    patterns: tuple[str, ...] = PATTERNS
    seen: tuple[str, ...] = SEEN
    unseen: tuple[str, ...] = UNSEEN
    held_out: tuple[str, ...] = HELD_OUT
    image_size: int = 80
    num_train: int = 160
    num_val: int = 16
    regions: tuple[int, int] = (2, 4)
    period: float = 8.0
    noise: float = 6.0
    jitter: int = 15

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every class name, colour-major; a class's label id is its index here."""
        return tuple(f"{c} {p}" for c, _ in self.colours for p in self.patterns)


@dataclass(frozen=True)
class CLIPArch:
    """The tiny open_clip architecture (a custom model config; ``embed_dim`` is the joint width)."""

    embed_dim: int = 32
    image_size: int = 48
    patch_size: int = 6
    vision_layers: int = 3
    vision_width: int = 64
    head_width: int = 32
    context_length: int = 16
    text_layers: int = 2
    text_width: int = 64
    text_heads: int = 2

    def open_clip_config(self) -> dict[str, Any]:
        """The open_clip model config dict (QuickGELU, as OpenAI's CLIP)."""
        return {
            "embed_dim": self.embed_dim,
            "quick_gelu": True,
            "vision_cfg": {
                "image_size": self.image_size,
                "layers": self.vision_layers,
                "width": self.vision_width,
                "patch_size": self.patch_size,
                "head_width": self.head_width,
            },
            "text_cfg": {
                "context_length": self.context_length,
                "vocab_size": 49408,
                "width": self.text_width,
                "heads": self.text_heads,
                "layers": self.text_layers,
            },
        }


@dataclass(frozen=True)
class PretrainConfig:
    """Contrastive pretraining of the tiny CLIP (:mod:`.pretrain`).

    Each step pictures ``batch`` distinct classes of the pretraining vocabulary (everything but
    ``held_out``, in vocabulary order), one image and one caption each, so CLIP's InfoNCE has no false
    negatives.

    ``dense_weight`` adds a region-level term (calibration round 2): each patch's feature on the
    segmentor's own dense path (CAT-Seg's value-path last block, :class:`ovss.clip.DenseCLIP`) is
    classified against the batch's captions, its target the share of each class in the patch (the main
    class and the minor rectangle). Web-scale CLIPs have a usable pixel-text alignment on that path
    (what CAT-Seg's cost volume reads); a tiny CLIP trained on global captions alone had almost none
    (12.7 unseen mIoU on its own, report seeds, round 1), so the frozen teacher was worse than the
    student became and there was no alignment for fine-tuning to forget. The term gives the teacher
    one. ``0`` is round 1's global-only pretraining.
    """

    steps: int = 1200
    batch: int = 20
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    scale: tuple[float, float] = (0.55, 1.1)
    minor_region: float = 0.5
    eval_images: int = 10
    dense_weight: float = 1.0


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning of the segmentor on seen classes (:mod:`.finetune`): CAT-Seg's recipe scaled down.

    AdamW, cosine schedule, decoder (and LPAM) at ``base_lr``, CLIP's Q/V weights at
    ``base_lr * clip_multiplier``, full-model gradient-norm clipping, random crops of ``crop`` pixels
    with horizontal flips, CLIP at ``arch.image_size``; evaluation with CAT-Seg's sliding window scaled
    by ``kernel / 384`` (``out_res = 640 / 384 * kernel``).
    """

    steps: int = 200
    batch: int = 4
    base_lr: float = 1e-3
    clip_multiplier: float = 1.0
    weight_decay: float = 1e-4
    grad_clip: float = 0.01
    crop: int = 48
    kernel: int = 48
    out_res: int = 80
    eval_every: int = 50
    hidden_dim: int = 32


#: Variant name → (distiller name, distiller options, CLIP fine-tuning mode).
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "none": ("none", {}, "qv"),
    "kl": ("kl", {}, "qv"),
    "maft": ("maft", {}, "qv"),
    "maftplus": ("maftplus", {}, "qv"),
    "compress_only": ("infoclip", {"lambda_compress": 1.0, "lambda_distill": 0.0}, "qv"),
    "distill_only": ("infoclip", {"lambda_compress": 0.0, "lambda_distill": 1.0}, "qv"),
    "infoclip": ("infoclip", {"lambda_compress": 1.0, "lambda_distill": 1.0}, "qv"),
}
#: The reference: the same segmentor and schedule with CLIP frozen (only the decoder learns).
FROZEN_CLIP: tuple[str, dict[str, Any], str] = ("none", {}, "none")


@dataclass(frozen=True)
class ProxyConfig:
    """The whole benchmark."""

    world: WorldConfig = field(default_factory=WorldConfig)
    arch: CLIPArch = field(default_factory=CLIPArch)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seeds: tuple[int, ...] = REPORT_SEEDS
    calibration_seeds: tuple[int, ...] = CALIBRATION_SEEDS
    variants: tuple[str, ...] = tuple(VARIANTS)
    quick: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested dict (tuples as lists), with the variants' definitions."""
        data = _plain(dataclasses.asdict(self))
        data["variant_definitions"] = {
            name: {"distill": d, "options": o, "clip_finetune": f}
            for name, (d, o, f) in {**VARIANTS, "frozen_clip": FROZEN_CLIP}.items()
        }
        return data


def _plain(x: Any) -> Any:
    if isinstance(x, tuple | list):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return x


def config_hash(*parts: Any) -> str:
    """A short SHA-256 of the JSON of dataclasses / plain values (cache and run keys)."""
    payload = [_plain(dataclasses.asdict(p)) if dataclasses.is_dataclass(p) else _plain(p) for p in parts]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def quick_config() -> ProxyConfig:
    """Tiny sizes for the smoke run (minutes): same world and models, a few steps and images."""
    return ProxyConfig(
        world=dataclasses.replace(WorldConfig(), num_train=8, num_val=2),
        pretrain=dataclasses.replace(PretrainConfig(), steps=20, warmup=5, eval_images=1),
        finetune=dataclasses.replace(FinetuneConfig(), steps=4, batch=2, eval_every=2),
        seeds=(0, 1),
        quick=True,
    )
