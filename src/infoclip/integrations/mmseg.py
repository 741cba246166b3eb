r"""mmsegmentation integration: InfoCLIP as an mmseg loss module and an ``EncoderDecoder`` segmentor.

Importing this module registers two classes in mmseg's ``MODELS`` registry:

`InfoCLIPSegLoss`
    an mmseg-style loss module (``loss_name`` starts with ``loss_``) wrapping
    `infoclip.InfoCLIPLoss`; it owns the shared LPAM and returns the two weighted terms
    ``{loss_name}_compress`` ($\lambda_1 L_c$) and ``{loss_name}_distill`` ($\lambda_2 L_d$).
`InfoCLIPSegmentor`
    an `mmseg.models.EncoderDecoder` that also holds a frozen copy of the backbone (the teacher
    CLIP) and adds those two terms to its loss dict.

Use it from a config with ``custom_imports = dict(imports=["infoclip.integrations.mmseg"],
allow_failed_imports=False)``; see the InfoCLIP guide of the documentation for a complete config.

**Backbone contract.** The backbone (a CLIP image and text encoder wrapped as one mmseg backbone, as
open-vocabulary segmentors do) returns, for a batch of images, an output that holds its dense visual
features and its class (text) embeddings. A *feature adapter* picks them out:

- ``feature_adapter=dict(visual=0, text=1)`` (the default): ``output[0]`` and ``output[1]``; each key is
  an ``int`` index into a tuple/list output or a ``str`` key into a dict output;
- or any callable ``adapter(output) -> (visual, text)``.

``visual`` is ``(B, d, H, W)`` or ``(B, HW, d)``; ``text`` is ``(N_C, d)`` (one class set for the batch)
or ``(B, N_C, d)``, both in CLIP's joint embedding space of width ``d = embed_dim``. Text with one
embedding per prompt template, ``(N_C, T, d)``, as mmsegmentation's CAT-Seg port gives it
(``CLIPOVCATSeg``: a dict with ``clip_img_feat`` ``(B, d, 24, 24)`` and ``clip_text_feat``
``(N_C, T, d)``), needs ``infoclip=dict(type="InfoCLIPSegLoss", ..., text_templates=True)``: the
templates are averaged and the mean re-normalised (`infoclip.InfoCLIPLoss`'s ``text_templates``). The whole output
goes to the neck / decode head unchanged, so a tuple ``(visual, text)`` works with stock heads through
``in_index=0`` (for example ``FCNHead``) and with pixel-text heads that read both entries.

Why a segmentor subclass and not a hook: the InfoCLIP terms must be part of the loss dict that
``train_step`` sums and back-propagates, in the same forward as the task loss (they reuse the student's
features), and LPAM's parameters must belong to the model so that the optimizer, the checkpoint and
DDP see them. An mmengine hook can do neither.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..losses import InfoCLIPLoss
from ..lpam import LPAM

INSTALL_HINT = (
    "infoclip.integrations.mmseg needs mmsegmentation 1.2.2 with a compiled mmcv 2.1.0. Install the extra "
    'with `pip install "renyi-info[mmseg]"` after building mmcv from source (no mmcv 2.1.0 wheel exists for '
    "recent torch; about 13 min on 2 cores): `pip install setuptools==80.9.0 ninja wheel`, download and "
    "unpack the sdist (`pip download --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0`), "
    "replace '-std=c++17' by '-std=c++20' in its setup.py (the headers of torch 2.14 require C++20), then "
    "`MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 pip install --no-build-isolation --no-deps ./mmcv-2.1.0` "
    "(FORCE_CUDA=1 for the CUDA ops). The guide (docs/guides/infoclip.md, 'mmsegmentation') has the exact "
    "commands; .ci/install_deps.sh of the repository automates them and caches the wheel"
)

try:
    from mmseg.models.segmentors import EncoderDecoder
    from mmseg.registry import MODELS
except (ImportError, AssertionError) as _exc:  # mmseg asserts its mmcv/mmengine version ranges at import
    raise ImportError(f"{INSTALL_HINT}. Import failed with: {type(_exc).__name__}: {_exc}") from _exc

__all__ = [
    "INSTALL_HINT",
    "FeatureAdapter",
    "InfoCLIPSegLoss",
    "InfoCLIPSegmentor",
    "KeyFeatureAdapter",
    "build_feature_adapter",
]

FeatureAdapter = Callable[[Any], "tuple[torch.Tensor, torch.Tensor]"]
"""A callable ``adapter(backbone_output) -> (visual, text)``."""

AdapterSpec = Mapping[str, int | str] | FeatureAdapter | None


class KeyFeatureAdapter:
    """Picks the dense visual features and the text embeddings out of a backbone output by index or key.

    Args:
        visual: ``int`` index (tuple/list output) or ``str`` key (dict output) of the dense visual
            features ``(B, d, H, W)`` or ``(B, HW, d)``.
        text: likewise for the class embeddings ``(N_C, d)`` or ``(B, N_C, d)``.

    Raises:
        TypeError: an index that is neither ``int`` nor ``str``.

    Example:
        >>> import torch
        >>> adapter = KeyFeatureAdapter(visual="dense", text="classes")
        >>> v, t = adapter({"dense": torch.zeros(2, 8, 4, 4), "classes": torch.zeros(5, 8)})
        >>> tuple(v.shape), tuple(t.shape)
        ((2, 8, 4, 4), (5, 8))
    """

    def __init__(self, visual: int | str = 0, text: int | str = 1) -> None:
        for name, key in (("visual", visual), ("text", text)):
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise TypeError(
                    f"feature_adapter['{name}'] must be an int index (tuple/list backbone output) or a str "
                    f"key (dict backbone output); got {key!r} of type {type(key).__name__}"
                )
        self.visual = visual
        self.text = text

    def _pick(self, output: Any, name: str, key: int | str) -> torch.Tensor:
        try:
            value = output[key]
        except (IndexError, KeyError, TypeError) as exc:
            raise ValueError(
                f"feature_adapter could not read the {name} features at {key!r} of the backbone output (a "
                f"{type(output).__name__}{_describe(output)}): {type(exc).__name__}: {exc}. Set "
                f"feature_adapter=dict(visual=..., text=...) to the right indices/keys, or pass a callable"
            ) from exc
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"feature_adapter: the backbone output at {key!r} ({name}) must be a torch.Tensor; got "
                f"{type(value).__name__}"
            )
        return value

    def __call__(self, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self._pick(output, "visual", self.visual), self._pick(output, "text", self.text)

    def __repr__(self) -> str:
        return f"KeyFeatureAdapter(visual={self.visual!r}, text={self.text!r})"


def _describe(output: Any) -> str:
    if isinstance(output, Mapping):
        return f" with keys {list(output.keys())}"
    if isinstance(output, (tuple, list)):
        return f" of length {len(output)}"
    if isinstance(output, torch.Tensor):
        return f" of shape {tuple(output.shape)}"
    return ""


def build_feature_adapter(spec: AdapterSpec) -> FeatureAdapter:
    """Turns a config value into a feature adapter (see the module docs for the backbone contract).

    Args:
        spec: ``None`` (``dict(visual=0, text=1)``), a mapping with exactly the keys ``visual`` and
            ``text`` (int indices or str keys), or a callable ``output -> (visual, text)``.

    Returns:
        A callable ``adapter(backbone_output) -> (visual, text)``.

    Raises:
        TypeError: anything else.
        ValueError: a mapping with other keys.

    Example:
        >>> build_feature_adapter(None)
        KeyFeatureAdapter(visual=0, text=1)
    """
    if spec is None:
        return KeyFeatureAdapter()
    if isinstance(spec, Mapping):
        if set(spec.keys()) != {"visual", "text"}:
            raise ValueError(
                "feature_adapter as a dict must have exactly the keys 'visual' and 'text' (indices or keys "
                f"into the backbone output); got keys {sorted(spec.keys())}"
            )
        return KeyFeatureAdapter(visual=spec["visual"], text=spec["text"])
    if callable(spec):
        return spec
    raise TypeError(
        "feature_adapter must be None, dict(visual=..., text=...) or a callable backbone_output -> (visual, "
        f"text); got {type(spec).__name__}"
    )


def _adapt(adapter: FeatureAdapter, output: Any, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    result = adapter(output)
    if (
        not isinstance(result, (tuple, list))
        or len(result) != 2
        or not all(isinstance(x, torch.Tensor) for x in result)
    ):
        raise TypeError(
            f"the feature adapter must return a pair of tensors (visual, text) for the {who} backbone "
            f"output; got {type(result).__name__}{_describe(result)}"
        )
    return result[0], result[1]


@MODELS.register_module()
class InfoCLIPSegLoss(nn.Module):
    r"""mmseg loss module for InfoCLIP: $\lambda_1 L_c + \lambda_2 L_d$, as two logged loss terms.

    A thin wrapper of `infoclip.InfoCLIPLoss` following mmseg's loss conventions (registered in
    ``MODELS``, a ``loss_name`` starting with ``loss_``). Unlike a decode-head loss it is not called on
    logits and labels but on the teacher's and the student's CLIP features; `InfoCLIPSegmentor`
    does that. It owns the LPAM shared by teacher and student (`lpam`); the teacher features are
    detached inside, the LPAM output $R^T$ is not.

    $$
    \{\text{loss\_name}\}\_\text{compress} = \lambda_1 L_c(D_V^T, D_L^T, R^T),\qquad
    \{\text{loss\_name}\}\_\text{distill} = \lambda_2 L_d(R^T, R^S) = -\lambda_2 I_\alpha(R^T; R^S)
    $$

    mmengine's ``parse_losses`` sums every key containing ``loss``, so the model's total loss becomes
    $L_{task} + \lambda_1 L_c + \lambda_2 L_d$ (Eq. 12).

    Args:
        embed_dim: CLIP's joint embedding width ``d`` (LPAM's width).
        loss_name: prefix of the two loss keys; must start with ``loss_`` so that mmengine adds them to
            the total.
        **options: the options of `infoclip.InfoCLIPLoss`, with its defaults (the paper's):
            ``lambda_compress``, ``lambda_distill``, ``alpha``, ``base``, ``gram_over`` (``"batch"`` needs
            a batch of at least 2 per GPU, or ``gather=True``), ``gather`` (Grams over the global batch of
            all GPUs under ``torch.distributed``), ``text_templates`` (text features with one embedding
            per prompt template, ``(N_C, T, d)`` or ``(B, N_C, T, d)``, as mmsegmentation's CAT-Seg port
            gives them), ``estimator``, ``permutations`` and ``seed``.

    Raises:
        ValueError: a ``loss_name`` not starting with ``loss_``; invalid InfoCLIP options (from
            `infoclip.InfoCLIPLoss`).
        TypeError: an option `infoclip.InfoCLIPLoss` does not take.

    Example:
        >>> import torch
        >>> loss = InfoCLIPSegLoss(embed_dim=16)
        >>> tv, sv = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
        >>> text = torch.randn(3, 16)
        >>> sorted(loss(tv, text, sv, text))
        ['loss_infoclip_compress', 'loss_infoclip_distill']
    """

    def __init__(self, embed_dim: int, *, loss_name: str = "loss_infoclip", **options: Any) -> None:
        super().__init__()
        if not isinstance(loss_name, str) or not loss_name.startswith("loss_"):
            raise ValueError(
                "loss_name must be a str starting with 'loss_' (mmengine only adds keys containing 'loss' to "
                f"the total); got {loss_name!r}"
            )
        self.infoclip = InfoCLIPLoss(embed_dim, **options)
        self._loss_name = loss_name

    @property
    def lpam(self) -> LPAM:
        """The LPAM shared by teacher and student (train it at the decoder's learning rate)."""
        return self.infoclip.lpam

    @property
    def loss_name(self) -> str:
        """Prefix of the loss keys (mmseg convention: starts with ``loss_``)."""
        return self._loss_name

    def forward(
        self,
        teacher_visual: torch.Tensor,
        teacher_text: torch.Tensor,
        student_visual: torch.Tensor,
        student_text: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The two weighted InfoCLIP terms for the loss dict.

        Args:
            teacher_visual: frozen CLIP's dense features ``(B, d, H, W)`` or ``(B, HW, d)``.
            teacher_text: its class embeddings ``(N_C, d)`` or ``(B, N_C, d)``.
            student_visual: the fine-tuned CLIP's dense features, same shape as ``teacher_visual``.
            student_text: its class embeddings, same number of classes as ``teacher_text``.

        Returns:
            ``{f"{loss_name}_compress": λ1·L_c, f"{loss_name}_distill": λ2·L_d}`` (scalar tensors).
        """
        terms = self.infoclip(teacher_visual, teacher_text, student_visual, student_text).terms
        return {
            f"{self.loss_name}_compress": terms["loss_compress"],
            f"{self.loss_name}_distill": terms["loss_distill"],
        }

    def extra_repr(self) -> str:
        return f"loss_name={self.loss_name!r}"


@MODELS.register_module()
class InfoCLIPSegmentor(EncoderDecoder):
    r"""An mmseg ``EncoderDecoder`` trained with InfoCLIP against a frozen copy of its CLIP backbone.

    Training (`loss`): one student backbone forward feeds the neck/decode head as in
    ``EncoderDecoder`` and, through the feature adapter, the InfoCLIP loss; the teacher backbone runs
    under ``torch.no_grad`` on the same preprocessed images. The loss dict gets, beside ``decode.*`` (and
    ``aux.*``), the keys ``loss_infoclip_compress`` and ``loss_infoclip_distill`` (prefix set by
    ``infoclip.loss_name``). Inference (``predict``/``_forward``) is plain ``EncoderDecoder``: neither the
    teacher nor LPAM runs.

    The teacher:

    - is built from ``teacher_backbone`` or, by default, from the backbone config without its
      ``init_cfg``/``pretrained`` (it is not loaded twice), and then receives the backbone's weights:
      at construction and again after `init_weights` (where mmseg loads pretrained backbone
      weights), so it is the pretrained CLIP the student starts from. Call `sync_teacher` yourself
      if you load the CLIP weights some other way (e.g. with ``load_from`` of a checkpoint that has
      no ``teacher.*`` keys);
    - has ``requires_grad=False`` everywhere and stays in eval mode (``train()`` does not switch it);
    - is part of ``state_dict`` (key prefix ``teacher.``), so a resumed run keeps the same teacher.

    Parameter names for ``paramwise_cfg``: ``backbone.*`` (student CLIP), ``decode_head.*``,
    ``infoclip_loss.infoclip.lpam.*`` (LPAM; the paper trains it at the decoder's rate) and ``teacher.*``
    (frozen).

    Args:
        backbone: config of the student backbone (see the backbone contract in the module docs).
        decode_head: config of the decode head; it receives the whole backbone (or neck) output.
        infoclip: config of the InfoCLIP loss, for example ``dict(type="InfoCLIPSegLoss", embed_dim=512)``
            (``type`` defaults to ``"InfoCLIPSegLoss"``). Any registered module with the same call and a
            dict result works.
        feature_adapter: how to read ``(visual, text)`` from a backbone output: ``None`` (``dict(visual=0,
            text=1)``), ``dict(visual=..., text=...)`` with int indices or str keys, or a callable.
        teacher_backbone: config of the teacher (defaults to the backbone's). With a different config the
            teacher is initialised by its own ``init_cfg`` and never synced.
        neck: as in ``EncoderDecoder``.
        auxiliary_head: as in ``EncoderDecoder``.
        train_cfg: as in ``EncoderDecoder``.
        test_cfg: as in ``EncoderDecoder``.
        data_preprocessor: as in ``EncoderDecoder`` (for example ``SegDataPreProcessor``).
        pretrained: as in ``EncoderDecoder`` (a path set as the backbone's ``pretrained``).
        init_cfg: as in ``EncoderDecoder``.

    Raises:
        TypeError: an ``infoclip`` module without a ``loss_name`` or a bad ``feature_adapter``.

    Example:
        A complete config (toy backbone and head) is in the InfoCLIP guide of the documentation and in
        ``tests/infoclip/test_infoclip_mmseg.py``; in short:

        ```python
        model = dict(
            type="InfoCLIPSegmentor",
            backbone=dict(type="MyCLIPBackbone"),  # returns (dense (B, d, H, W), text (N_C, d))
            decode_head=dict(type="FCNHead", in_channels=512, in_index=0, channels=256,
                             num_classes=171),
            infoclip=dict(type="InfoCLIPSegLoss", embed_dim=512),
            feature_adapter=dict(visual=0, text=1),
        )
        ```
    """

    def __init__(
        self,
        backbone: Mapping[str, Any],
        decode_head: Mapping[str, Any],
        infoclip: Mapping[str, Any],
        feature_adapter: AdapterSpec = None,
        teacher_backbone: Mapping[str, Any] | None = None,
        neck: Mapping[str, Any] | None = None,
        auxiliary_head: Any = None,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        data_preprocessor: Mapping[str, Any] | None = None,
        pretrained: str | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg,
        )
        self.teacher_is_copy = teacher_backbone is None
        if teacher_backbone is None:
            teacher_cfg = copy.deepcopy(dict(backbone))
            # The copy receives the backbone's weights (sync_teacher): do not load pretrained weights twice.
            teacher_cfg.pop("init_cfg", None)
            teacher_cfg.pop("pretrained", None)
        else:
            teacher_cfg = copy.deepcopy(dict(teacher_backbone))
        self.teacher = MODELS.build(teacher_cfg)
        self.teacher.requires_grad_(False)
        self.teacher.eval()

        loss_cfg = dict(infoclip)
        loss_cfg.setdefault("type", "InfoCLIPSegLoss")
        self.infoclip_loss = MODELS.build(loss_cfg)
        if not isinstance(getattr(self.infoclip_loss, "loss_name", None), str):
            raise TypeError(
                f"infoclip must build an mmseg loss module with a str loss_name property (mmseg convention); "
                f"{type(self.infoclip_loss).__name__} has none"
            )
        self.feature_adapter = build_feature_adapter(feature_adapter)
        if self.teacher_is_copy:
            self.sync_teacher()

    @torch.no_grad()
    def sync_teacher(self) -> None:
        """Copy the student backbone's current weights (and buffers) into the frozen teacher.

        Raises:
            RuntimeError: the teacher's architecture differs from the backbone's (``load_state_dict``).
        """
        self.teacher.load_state_dict(self.backbone.state_dict())
        self.teacher.requires_grad_(False)

    def init_weights(self) -> None:
        """``EncoderDecoder.init_weights`` (loads pretrained backbone weights), then the teacher sync."""
        super().init_weights()
        if self.teacher_is_copy:
            self.sync_teacher()

    def train(self, mode: bool = True) -> InfoCLIPSegmentor:
        """Set the train mode of everything but the teacher, which stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def loss(self, inputs: torch.Tensor, data_samples: list[Any]) -> dict[str, torch.Tensor]:
        """Losses of a batch: the decode (and auxiliary) head losses plus the two InfoCLIP terms.

        Args:
            inputs: preprocessed images ``(B, 3, H, W)``.
            data_samples: ``SegDataSample`` list with ``gt_sem_seg``.

        Returns:
            ``dict[str, Tensor]``: ``decode.*``, ``aux*.*`` (if any), ``{loss_name}_compress`` and
            ``{loss_name}_distill``.
        """
        output = self.backbone(inputs)
        student_visual, student_text = _adapt(self.feature_adapter, output, "student")
        with torch.no_grad():
            teacher_visual, teacher_text = _adapt(self.feature_adapter, self.teacher(inputs), "teacher")
        x = self.neck(output) if self.with_neck else output

        losses: dict[str, torch.Tensor] = {}
        losses.update(self._decode_head_forward_train(x, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        info = self.infoclip_loss(teacher_visual, teacher_text, student_visual, student_text)
        clash = sorted(set(info) & set(losses))
        if clash:
            raise ValueError(
                f"InfoCLIP loss keys {clash} clash with the head losses; change infoclip.loss_name"
            )
        losses.update(info)
        return losses
