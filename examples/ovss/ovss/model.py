r"""The open-vocabulary segmentor: dense CLIP + CAT-Seg's decoder + InfoCLIP (or a baseline) distillation.

Training step (``distill != "none"``)::

    student CLIP (Q/V fine-tuned) ──► dense D_V^S, guidance, text D_L^S ──► Aggregator ──► logits ──► L_task
    teacher CLIP (frozen copy)    ──► dense D_V^T, text D_L^T (no grad) ─┐
                                                       D_V^S, D_L^S ────┴► distiller ──► λ1 L_c + λ2 L_d

and the loss is $L = L_{task} + \lambda_1 L_c + \lambda_2 L_d$ (InfoCLIP Eq. 12). With
``distill="none"`` no teacher exists at all and the model is CAT-Seg.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infoclip import DistillationOutput, Distiller

from .aggregator import Aggregator
from .clip import DenseCLIP, DenseImageFeatures, create_clip, set_trainable_, split_qkv_
from .config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, ModelConfig
from .evaluation import eval_pooling, model_dtype, model_logits_fn, predict_probabilities
from .losses import segmentation_bce_loss
from .templates import format_prompts, get_templates

__all__ = ["OVSSModel", "OVSSOutput"]

_TEACHER_KEY = re.compile(r"(^|\.)teacher\.")
#: Extra distiller inputs this model can supply (a distiller lists those it uses in ``extra_inputs``).
_GLOBAL_INPUTS = {"teacher_image_embedding", "student_image_embedding"}


@dataclass
class OVSSOutput:
    """What `OVSSModel.forward` returns.

    Attributes:
        logits: ``(B, T, 4h, 4w)`` per-class logits at the decoder's resolution (96×96 for a 24×24
            grid); classes left out by the top-``pad_len`` selection hold -100.
        loss: the total loss ``L_task + distiller.total`` (``None`` without targets).
        losses: every logged term by name: ``loss_sem_seg`` and the distiller's terms (for InfoCLIP
            ``loss_compress`` = λ1·L_c and ``loss_distill`` = λ2·L_d).
        distillation: the distiller's full output (``None`` without targets or distiller).
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    distillation: DistillationOutput | None = None


class OVSSModel(nn.Module):
    """CAT-Seg with InfoCLIP: the reference open-vocabulary semantic segmentor.

    Args:
        config: a `ovss.config.ModelConfig` (e.g. ``preset("vitb_384")``).
        clip: an already built open_clip model to use instead of ``config.clip.model_name`` /
            ``pretrained`` (its weights become both the student's start and the teacher).
        tokenizer: its tokenizer (required with ``clip``).

    Raises:
        ValueError: the decoder configuration does not fit the CLIP model (embedding width, feature
            grid, number of guidance layers).

    Example:
        >>> from ovss import OVSSModel, preset
        >>> model = OVSSModel(preset("vitb_384", pretrained=None))  # doctest: +SKIP
        >>> out = model(images_0_255, ["cat", "dog"], targets)  # doctest: +SKIP
        >>> out.loss.backward()  # doctest: +SKIP
    """

    def __init__(self, config: ModelConfig, *, clip: nn.Module | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config
        ccfg, dcfg = config.clip, config.decoder
        if clip is None:
            clip, tokenizer = create_clip(ccfg.model_name, ccfg.pretrained)
        elif tokenizer is None:
            raise ValueError("pass the tokenizer of the given clip model")
        wanted = set(config.distill.spec().extra_inputs) if config.distill.enabled else set()
        if wanted - _GLOBAL_INPUTS:
            raise ValueError(
                f"distiller {config.distill.name!r} asks for inputs {sorted(wanted - _GLOBAL_INPUTS)} that "
                f"OVSSModel does not compute (it supplies {sorted(_GLOBAL_INPUTS)})"
            )
        self._wants_global = bool(wanted)
        teacher = None
        if config.distill.enabled:
            teacher_clip = copy.deepcopy(clip).to(getattr(torch, config.distill.teacher_dtype))
            teacher = DenseCLIP(teacher_clip, tokenizer, guidance_layers=ccfg.guidance_layers)
            teacher.requires_grad_(False)
            teacher.eval()
        split_qkv_(clip)
        set_trainable_(clip, ccfg.finetune)
        self.clip = DenseCLIP(clip, tokenizer, guidance_layers=ccfg.guidance_layers)
        self.teacher = teacher

        grid = ccfg.image_size // self.clip.patch_size
        if ccfg.image_size % self.clip.patch_size or (grid, grid) != tuple(dcfg.feature_resolution):
            raise ValueError(
                f"clip.image_size={ccfg.image_size} with patch {self.clip.patch_size} gives a {grid}x{grid} grid "
                f"but decoder.feature_resolution={dcfg.feature_resolution}"
            )
        d = self.clip.embed_dim
        if dcfg.text_guidance_dim not in (0, d) or dcfg.appearance_guidance_dim not in (0, d):
            raise ValueError(
                f"decoder.text_guidance_dim and appearance_guidance_dim must equal CLIP's embed_dim={d} (or 0); "
                f"got {dcfg.text_guidance_dim} and {dcfg.appearance_guidance_dim}"
            )
        uses_guidance = dcfg.decoder_guidance_dims[0] > 0
        if uses_guidance and len(ccfg.guidance_layers) != 2:
            raise ValueError(
                f"the decoder needs exactly two clip.guidance_layers; got {ccfg.guidance_layers}"
            )
        width = self.clip.vision_width
        # CAT-Seg's guidance upsampling (CATSeg.upsample1/2): 2x for the earlier block, 4x for the later.
        self.upsample1 = (
            nn.ConvTranspose2d(width, dcfg.decoder_guidance_dims[0], kernel_size=2, stride=2)
            if uses_guidance
            else None
        )
        self.upsample2 = (
            nn.ConvTranspose2d(width, dcfg.decoder_guidance_dims[1], kernel_size=4, stride=4)
            if uses_guidance
            else None
        )
        self.aggregator = Aggregator(dcfg)
        self.distiller: Distiller | None = (
            config.distill.spec().build(d, **config.distill.options) if config.distill.enabled else None
        )
        self.templates = get_templates(ccfg.templates)
        self.register_buffer("pixel_mean", torch.tensor(CLIP_PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_PIXEL_STD).view(1, 3, 1, 1), persistent=False)
        self._text_cache: dict[tuple[str, ...], torch.Tensor] = {}
        self._teacher_text_cache: dict[tuple[str, ...], torch.Tensor] = {}
        self._token_cache: dict[tuple[str, ...], torch.Tensor] = {}
        # The frozen teacher is rebuilt from the pretrained weights: keep it out of checkpoints.
        self.register_state_dict_post_hook(_drop_teacher_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

    # ------------------------------------------------------------------ housekeeping
    def train(self, mode: bool = True) -> OVSSModel:
        """Set the training mode; the teacher always stays in eval mode; the eval text cache is cleared."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        self._text_cache.clear()
        return self

    def clear_text_cache(self) -> None:
        """Forget cached class embeddings (call after changing CLIP weights in eval mode)."""
        self._text_cache.clear()
        self._teacher_text_cache.clear()

    @property
    def image_size(self) -> int:
        """The resolution CLIP sees."""
        return self.config.clip.image_size

    # ------------------------------------------------------------------ pieces
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images in [0, 255] ``(B, 3, H, W)`` → CLIP-normalised, resized bilinearly to ``image_size``."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W) (RGB, 0-255); got {tuple(images.shape)}")
        # the model's own floating type (float64 after .double()), at least float32
        x = (
            images.to(torch.promote_types(self.pixel_mean.dtype, torch.float32)) - self.pixel_mean
        ) / self.pixel_std
        size = (self.image_size, self.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def _class_key(self, class_names: Sequence[str]) -> tuple[str, ...]:
        if isinstance(class_names, str) or len(class_names) == 0:
            raise ValueError("class_names must be a non-empty sequence of class names")
        return tuple(class_names)

    def _tokens(self, key: tuple[str, ...], encoder: DenseCLIP) -> torch.Tensor:
        tokens = self._token_cache.get(key)
        if tokens is None:
            tokens = encoder.tokenize(format_prompts(key, self.templates))
            self._token_cache[key] = tokens
        return tokens.to(encoder.clip.visual.conv1.weight.device)

    def _encode_classes(self, key: tuple[str, ...], encoder: DenseCLIP) -> torch.Tensor:
        emb = encoder.encode_text(self._tokens(key, encoder)).float()
        return F.normalize(emb, dim=-1).view(len(key), len(self.templates), -1)

    def class_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """Student class embeddings ``(T, P, d)``, L2-normalised per prompt.

        Recomputed at every training step (the text encoder is fine-tuned); cached per class list in
        eval mode (cleared by `train`).
        """
        key = self._class_key(class_names)
        if not self.training and key in self._text_cache:
            return self._text_cache[key]
        emb = self._encode_classes(key, self.clip)
        if not self.training:
            emb = emb.detach()
            self._text_cache[key] = emb
        return emb

    @torch.no_grad()
    def teacher_class_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """The frozen teacher's class embeddings ``(T, P, d)`` (cached per class list)."""
        if self.teacher is None:
            raise RuntimeError("this model has no teacher (distill.name='none')")
        key = self._class_key(class_names)
        if key not in self._teacher_text_cache:
            self._teacher_text_cache[key] = self._encode_classes(key, self.teacher)
        return self._teacher_text_cache[key]

    def decode(self, features: DenseImageFeatures, text: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, 4h, 4w)`` from dense features and class embeddings ``(T, P, d)``."""
        b = features.dense.shape[0]
        g1 = g2 = None
        if self.upsample1 is not None and self.upsample2 is not None:
            g1 = self.upsample1(features.intermediates[0])
            g2 = self.upsample2(features.intermediates[1])
        text_b = text.to(features.dense.dtype).unsqueeze(0).expand(b, -1, -1, -1)
        return self.aggregator(features.dense, text_b, [features.dense, g1, g2])

    # ------------------------------------------------------------------ forward
    def forward(
        self, images: torch.Tensor, class_names: Sequence[str], targets: torch.Tensor | None = None
    ) -> OVSSOutput:
        """Segment ``images`` into ``class_names``; with ``targets``, also compute the training loss.

        Args:
            images: ``(B, 3, H, W)`` RGB images with values in [0, 255] (resized to ``image_size``).
            class_names: the ``T`` class names (CAT-Seg synonyms ``"a, b"``: first one used).
            targets: optional ``(B, H', W')`` class ids in ``[0, T)`` or ``loss.ignore_index``.

        Returns:
            `OVSSOutput`.
        """
        clip_images = self.preprocess(images)
        distill = targets is not None and self.distiller is not None
        need_global = distill and self._wants_global
        features = self.clip.encode_image_dense(clip_images, return_global=need_global)
        text = self.class_embeddings(class_names)
        logits = self.decode(features, text)
        if targets is None:
            return OVSSOutput(logits=logits)
        lcfg = self.config.loss
        task = segmentation_bce_loss(
            logits, targets, ignore_index=lcfg.ignore_index, ignore_mode=lcfg.ignore_mode
        )
        losses = {"loss_sem_seg": task}
        if not distill:
            return OVSSOutput(logits=logits, loss=task, losses=losses)
        dist = self._distill(clip_images, class_names, features, text, need_global)
        losses.update(dist.terms)
        return OVSSOutput(logits=logits, loss=task + dist.total, losses=losses, distillation=dist)

    def _distill(
        self,
        clip_images: torch.Tensor,
        class_names: Sequence[str],
        features: DenseImageFeatures,
        text: torch.Tensor,
        need_global: bool,
    ) -> DistillationOutput:
        assert self.teacher is not None and self.distiller is not None
        with torch.no_grad():
            t_feat = self.teacher.encode_image_dense(clip_images, return_global=need_global)
        t_text = self.teacher_class_embeddings(class_names)
        extras: dict[str, Any] = {}
        if need_global:
            assert t_feat.global_embedding is not None and features.global_embedding is not None
            extras["teacher_image_embedding"] = t_feat.global_embedding.float()
            extras["student_image_embedding"] = features.global_embedding.float()
        return self.distiller(
            t_feat.dense.float(),
            F.normalize(t_text.mean(dim=1), dim=-1),
            features.dense.float(),
            F.normalize(text.mean(dim=1), dim=-1),
            **extras,
        )

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        class_names: Sequence[str],
        output_size: tuple[int, int] | None = None,
        *,
        mode: str = "whole",
        pooling_size: tuple[int, int] | None = (1, 1),
        min_size: int | None = 640,
        max_size: int = 2560,
        kernel: int = 384,
        overlap: float = 0.333,
        out_res: int | tuple[int, int] = 640,
        size_divisibility: int = 32,
    ) -> torch.Tensor:
        """Per-class probabilities ``(B, T, H, W)`` by CAT-Seg's test protocol: the same path as
        `ovss.evaluation.evaluate_dataset` and `ovss.inference.segment_image`
        (`ovss.evaluation.predict_probabilities` per image, class-aggregation pooling ``pooling_size``,
        in eval mode, in the model's floating type).

        The defaults are CAT-Seg's: the uint8 image is pre-resized (shorter side ``min_size``), then
        ``mode="whole"`` pads it to a multiple of ``size_divisibility``, applies the sigmoid to the logits
        before any upsampling and resizes the probabilities to ``output_size``; ``mode="sliding"`` is the
        sliding-window protocol (`predict_sliding_window`).

        Args:
            images: ``(B, 3, H, W)`` RGB in [0, 255]: uint8 (as decoded), or any type with
                ``min_size=None`` (no pre-resize).
            class_names: the ``T`` class names.
            output_size: resolution of the result (default: the input size).
            mode: ``"whole"`` or ``"sliding"``.
            pooling_size: class-aggregation pooling while predicting (CAT-Seg tests with ``(1, 1)``;
                ``None``: the training pooling).
            min_size: the test pre-resize's shorter side (`ovss.evaluation.pre_resize`; ``None``: off).
            max_size: the pre-resize's cap of the longer side.
            kernel: the sliding window's size.
            overlap: the sliding windows' overlap fraction.
            out_res: the sliding window's canvas.
            size_divisibility: the whole-image padding multiple.

        Raises:
            ValueError: images not ``(B, 3, H, W)``, or an unknown mode.
            TypeError: a pre-resize of images that are not uint8.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W) (RGB, 0-255); got {tuple(images.shape)}")
        size = tuple(output_size) if output_size is not None else tuple(images.shape[-2:])
        was_training = self.training
        self.eval()
        try:
            fn = model_logits_fn(self, class_names)
            with eval_pooling(self, pooling_size):
                probs = [
                    predict_probabilities(
                        fn,
                        image,
                        size,
                        mode=mode,
                        kernel=kernel,
                        overlap=overlap,
                        out_res=out_res,
                        min_size=min_size,
                        max_size=max_size,
                        size_divisibility=size_divisibility,
                        dtype=model_dtype(self),
                    )
                    for image in images
                ]
        finally:
            self.train(was_training)
        return torch.stack(probs)

    @torch.no_grad()
    def predict_sliding_window(
        self,
        images: torch.Tensor,
        class_names: Sequence[str],
        *,
        kernel: int = 384,
        overlap: float = 0.333,
        out_res: int | tuple[int, int] = 640,
        output_size: tuple[int, int] | None = None,
        min_size: int | None = 640,
        max_size: int = 2560,
        pooling_size: tuple[int, int] | None = (1, 1),
    ) -> torch.Tensor:
        r"""CAT-Seg's sliding-window inference: `predict` with ``mode="sliding"``.

        Each (pre-resized) image is resized to ``out_res`` (bilinear), cut into ``kernel``-sized windows
        at stride ``int(kernel * (1 - overlap))`` (640/384/0.333: four windows at stride 256), and also
        resized whole to ``kernel`` (the global view); the sigmoid outputs of the windows are averaged where
        they overlap and the result is $(\bar p_{windows} + p_{global}) / 2$, resized to ``output_size``
        (default: the input size); `ovss.evaluation.sliding_window_probabilities`.

        Returns:
            ``(B, T, *output_size)`` probabilities in [0, 1].
        """
        return self.predict(
            images,
            class_names,
            output_size,
            mode="sliding",
            kernel=kernel,
            overlap=overlap,
            out_res=out_res,
            min_size=min_size,
            max_size=max_size,
            pooling_size=pooling_size,
        )

    def num_decoder_parameters(self) -> dict[str, int]:
        """Parameter counts: CAT-Seg's ``Aggregator``, the guidance upsampling convs, and LPAM/distiller."""
        ups = sum(
            p.numel() for m in (self.upsample1, self.upsample2) if m is not None for p in m.parameters()
        )
        dist = sum(p.numel() for p in self.distiller.parameters()) if self.distiller is not None else 0
        return {"aggregator": self.aggregator.num_parameters(), "guidance_upsampling": ups, "distiller": dist}


def _drop_teacher_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and _TEACHER_KEY.search(k[len(prefix) :])]:
        del state_dict[key]


def _ignore_missing_teacher_keys(module: nn.Module, incompatible_keys: Any) -> None:
    # New weights invalidate the eval-mode text cache.
    module._text_cache.clear()
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not _TEACHER_KEY.search(k)]
