r"""Dense CLIP over open_clip: CAT-Seg's dense image features, guidance features and Q/V fine-tuning.

CAT-Seg (Cho et al., CVPR 2024; ``cat_seg/third_party/model_vpt.py``) turns CLIP's ViT into a dense
feature extractor by changing only its last block: the attention is replaced by its value path and
the residual is the *class token's* input, broadcast to every token,

$$
v = \mathrm{out\_proj}(W_v\,\mathrm{LN}_1(x) + b_v) + x_{\mathrm{cls}},\qquad
y = v + \mathrm{MLP}(\mathrm{LN}_2(v)),\qquad
D_V = \mathrm{LN}_{\mathrm{post}}(y)\,P,
$$

then every token goes through ``ln_post`` and the projection ``P`` to the joint embedding. The
positional embeddings are resized bicubically to the input's patch grid (ViT-B/16 at 384 px: 14×14 →
24×24). Only the query and value projection weights of every attention layer of both encoders are
fine-tuned; open_clip packs ``q, k, v`` into one ``in_proj_weight``, which `split_qkv_` splits
into three parameters (as CAT-Seg's own ``Attention`` does) so that the key weights are separate,
frozen parameters that no optimizer ever sees (not even its weight decay).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

__all__ = [
    "DenseCLIP",
    "DenseImageFeatures",
    "create_clip",
    "merge_qkv_state_dict",
    "qv_parameter_names",
    "set_trainable_",
    "split_qkv_",
]

_RANDOM = (None, "", "none", "random")


@dataclass
class DenseImageFeatures:
    """What `DenseCLIP.encode_image_dense` returns.

    Attributes:
        dense: ``(B, d, h, w)`` dense joint-space features of the patch tokens (CAT-Seg's
            ``forward_dense`` output after ``ln_post`` and the projection), ``h, w`` the patch grid.
        intermediates: one ``(B, width, h, w)`` map per requested guidance block: the output of that
            residual block (0-indexed), class token dropped.
        global_embedding: ``(B, d)`` the standard CLIP image embedding (the unmodified last block's
            class token after ``ln_post`` and the projection), only when requested, else ``None``.
    """

    dense: torch.Tensor
    intermediates: list[torch.Tensor]
    global_embedding: torch.Tensor | None = None


def create_clip(
    model_name: str, pretrained: str | None = None, *, cache_dir: str | None = None
) -> tuple[nn.Module, Any]:
    """An open_clip model and its tokenizer, from a pretrained tag, a local file, or random init.

    Args:
        model_name: an open_clip architecture name (``open_clip.list_models()``), e.g.
            ``"ViT-B-16-quickgelu"`` (OpenAI weights use QuickGELU) or ``"ViT-L-14-336-quickgelu"``.
        pretrained: ``None``/``"none"`` for random initialisation (tests), the path of a local
            checkpoint file (an open_clip / Hugging Face state dict such as ``open_clip_pytorch_model.bin``
            or ``open_clip_model.safetensors``, or OpenAI's TorchScript ``ViT-B-16.pt``), or an
            open_clip pretrained tag such as ``"openai"`` (needs a network to download, or the file in
            the open_clip / Hugging Face cache).
        cache_dir: where open_clip caches downloaded weights.

    Returns:
        ``(model, tokenizer)``: the open_clip ``CLIP`` module (float32, CPU) and its tokenizer.

    Raises:
        ValueError: unknown architecture name or unknown pretrained tag, or an OpenAI archive that does
            not fit the architecture.
        FileNotFoundError: ``pretrained`` looks like a path but no such file exists.
        RuntimeError: the weights of a pretrained tag could not be obtained (for example offline);
            the message says how to pass a local file instead.

    Example:
        >>> model, tokenizer = create_clip("ViT-B-16-quickgelu", None)  # doctest: +SKIP
    """
    if not isinstance(model_name, str) or model_name not in open_clip.list_models():
        raise ValueError(
            f"model_name must be an open_clip architecture (see open_clip.list_models()); got {model_name!r}"
        )
    if pretrained in _RANDOM:
        model = open_clip.create_model(model_name, pretrained=None)
    elif not isinstance(pretrained, str):
        raise TypeError(f"pretrained must be None, a file path or an open_clip tag; got {type(pretrained)}")
    elif os.path.isfile(pretrained):
        from .weights import is_torchscript_archive, openai_state_dict

        if is_torchscript_archive(pretrained):  # OpenAI's released .pt (open_clip's loader refuses these)
            model = open_clip.create_model(model_name, pretrained=None)
            try:
                model.load_state_dict(openai_state_dict(pretrained))
            except RuntimeError as exc:
                raise ValueError(
                    f"the OpenAI CLIP archive {pretrained} does not fit the architecture {model_name!r} "
                    f"(pick the matching clip.model_name, e.g. ViT-B-16-quickgelu for ViT-B-16.pt): {exc}"
                ) from None
        else:
            model = open_clip.create_model(model_name, pretrained=pretrained)
    elif os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors")):
        raise FileNotFoundError(f"pretrained={pretrained!r} looks like a file path but no such file exists")
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags:
            raise ValueError(
                f"pretrained={pretrained!r} is neither a file nor a known open_clip tag for {model_name!r}; "
                f"known tags: {tags}"
            )
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir)
        except Exception as err:  # network errors surface under many types
            cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
            hub = cfg.get("hf_hub", "").rstrip("/")
            where = f"the Hugging Face repo {hub!r} (file open_clip_pytorch_model.bin)" if hub else ""
            url = cfg.get("url", "")
            raise RuntimeError(
                f"could not obtain the pretrained weights {model_name!r} / {pretrained!r}: {err}. "
                "Downloading a pretrained tag needs network access. On a machine with network access, "
                f"download the checkpoint from {where or url}"
                + (f" or {url}" if where and url else "")
                + ", copy it here and pass its local path instead of the tag, e.g. "
                "pretrained='/path/to/open_clip_pytorch_model.bin' (or the model.pretrained entry of the "
                "YAML config)."
            ) from err
    tokenizer = open_clip.get_tokenizer(model_name)
    return model, tokenizer


def _attention_modules(module: nn.Module) -> Iterator[tuple[str, nn.MultiheadAttention]]:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.MultiheadAttention):
            yield name, sub


def split_qkv_(module: nn.Module) -> nn.Module:
    """Split every packed ``in_proj_weight`` of ``module``'s attention layers into ``q/k/v`` weights.

    Each ``nn.MultiheadAttention`` gets three parameters ``q_proj_weight``, ``k_proj_weight``,
    ``v_proj_weight`` (the row blocks of ``in_proj_weight``) and keeps its packed ``in_proj_bias``;
    PyTorch's attention then runs its separate-projection path, which computes the same function.
    Layers already split are left alone. In place; returns ``module``.
    """
    for _, attn in _attention_modules(module):
        if not attn._qkv_same_embed_dim:
            continue
        weight = attn.in_proj_weight
        q, k, v = weight.detach().chunk(3, dim=0)
        requires_grad = weight.requires_grad
        del attn.in_proj_weight
        attn.register_parameter("in_proj_weight", None)
        attn.q_proj_weight = nn.Parameter(q.clone(), requires_grad=requires_grad)
        attn.k_proj_weight = nn.Parameter(k.clone(), requires_grad=requires_grad)
        attn.v_proj_weight = nn.Parameter(v.clone(), requires_grad=requires_grad)
        attn._qkv_same_embed_dim = False
    return module


def merge_qkv_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `split_qkv_` on a state dict: ``*.q/k/v_proj_weight`` → ``*.in_proj_weight``.

    Use it to export a fine-tuned CLIP back to the open_clip checkpoint layout.

    Raises:
        KeyError: a ``q_proj_weight`` without its ``k``/``v`` partners.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(("k_proj_weight", "v_proj_weight")):
            continue
        if key.endswith("q_proj_weight"):
            prefix = key[: -len("q_proj_weight")]
            out[prefix + "in_proj_weight"] = torch.cat(
                [value, state_dict[prefix + "k_proj_weight"], state_dict[prefix + "v_proj_weight"]], dim=0
            )
        else:
            out[key] = value
    return out


def qv_parameter_names(model: nn.Module) -> list[str]:
    """Names of the query and value projection weights of every attention layer of ``model``."""
    return [n for n, _ in model.named_parameters() if n.endswith(("q_proj_weight", "v_proj_weight"))]


def set_trainable_(model: nn.Module, mode: str = "qv") -> nn.Module:
    """Choose which CLIP parameters train, as CAT-Seg's ``CLIP_FINETUNE`` does.

    Args:
        model: an open_clip CLIP whose attention weights were split by `split_qkv_`.
        mode: ``"qv"`` (CAT-Seg's ``"attention"``: only the query and value projection weights of
            every attention layer of both encoders; biases, keys and everything else frozen),
            ``"none"`` (all frozen) or ``"full"`` (all trainable).

    Raises:
        ValueError: an unknown mode, or ``"qv"`` on a model whose attention weights are still packed.
    """
    if mode not in ("qv", "none", "full"):
        raise ValueError(f"mode must be 'qv', 'none' or 'full'; got {mode!r}")
    if mode == "qv" and any(a._qkv_same_embed_dim for _, a in _attention_modules(model)):
        raise ValueError("mode='qv' needs split attention weights: call split_qkv_(model) first")
    for name, p in model.named_parameters():
        if mode == "full":
            p.requires_grad_(True)
        elif mode == "none":
            p.requires_grad_(False)
        else:
            p.requires_grad_(name.endswith(("q_proj_weight", "v_proj_weight")))
    return model


def _value_projection(attn: nn.MultiheadAttention) -> tuple[torch.Tensor, torch.Tensor | None]:
    d = attn.embed_dim
    weight = attn.in_proj_weight[2 * d :] if attn._qkv_same_embed_dim else attn.v_proj_weight
    bias = attn.in_proj_bias[2 * d :] if attn.in_proj_bias is not None else None
    return weight, bias


def dense_block_forward(block: ResidualAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """CAT-Seg's ``forward_dense`` of one residual block on batch-first tokens ``(B, 1 + HW, width)``.

    The attention is replaced by its value path, ``out_proj(v_proj(ln_1 x))``, and the residual is the
    class token's input ``x[:, :1]`` broadcast over all tokens; the MLP branch is unchanged.
    """
    weight, bias = _value_projection(block.attn)
    v = F.linear(block.ln_1(x), weight, bias)
    v = block.attn.out_proj(v)
    v = block.ls_1(v) + x[:, :1]
    return v + block.ls_2(block.mlp(block.ln_2(v)))


def resize_positional_embedding(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a ViT positional embedding ``(1 + g0², width)`` to ``(1 + gh·gw, width)``, bicubically.

    The class-token row is kept; the patch rows are reshaped to their square grid and interpolated
    (``mode="bicubic", align_corners=False``, as CAT-Seg's ``resized_pos_embed``).
    """
    n, width = pos.shape
    side = round((n - 1) ** 0.5)
    if side * side != n - 1:
        raise ValueError(f"positional embedding of {n} rows is not 1 + a square grid")
    if (side, side) == tuple(grid):
        return pos
    patch = pos[1:].reshape(1, side, side, width).permute(0, 3, 1, 2)
    work = torch.promote_types(pos.dtype, torch.float32)  # float64 stays float64; half goes via float32
    patch = F.interpolate(patch.to(work), size=grid, mode="bicubic", align_corners=False).to(pos.dtype)
    return torch.cat([pos[:1], patch.flatten(2)[0].T], dim=0)


class DenseCLIP(nn.Module):
    """An open_clip CLIP (ViT image tower) with CAT-Seg's dense image path and a text encoder.

    Args:
        clip: an open_clip ``CLIP`` with a ``VisionTransformer`` image tower built of standard
            ``ResidualAttentionBlock`` blocks (all OpenAI and LAION ViT models).
        tokenizer: its open_clip tokenizer.
        guidance_layers: 0-indexed image blocks whose outputs are returned as decoder guidance
            (CAT-Seg: ``(3, 7)`` for ViT-B/16, ``(7, 15)`` for ViT-L/14); each must precede the last block.

    Raises:
        TypeError: an unsupported tower or block type.
        ValueError: a guidance layer out of range.

    Example:
        >>> clip, tok = create_clip("ViT-B-16-quickgelu", None)  # doctest: +SKIP
        >>> dense = DenseCLIP(clip, tok, guidance_layers=(3, 7))  # doctest: +SKIP
        >>> dense.encode_image_dense(torch.randn(1, 3, 384, 384)).dense.shape  # doctest: +SKIP
        torch.Size([1, 512, 24, 24])
    """

    def __init__(self, clip: nn.Module, tokenizer: Any, *, guidance_layers: Sequence[int] = ()) -> None:
        super().__init__()
        visual = getattr(clip, "visual", None)
        if not isinstance(visual, VisionTransformer):
            raise TypeError(
                f"DenseCLIP needs an open_clip VisionTransformer image tower; got {type(visual).__name__}"
            )
        blocks = visual.transformer.resblocks
        for blk in list(blocks) + list(clip.transformer.resblocks):
            if not isinstance(blk, ResidualAttentionBlock):
                raise TypeError(
                    f"DenseCLIP supports ResidualAttentionBlock blocks only; got {type(blk).__name__}"
                )
        if visual.attn_pool is not None or visual.proj is None:
            raise TypeError("DenseCLIP needs a class-token ViT with a projection (no attentional pooling)")
        layers = tuple(int(i) for i in guidance_layers)
        if len(set(layers)) != len(layers):
            raise ValueError(f"guidance_layers must be distinct; got {layers}")
        for i in layers:
            if not 0 <= i < len(blocks) - 1:
                raise ValueError(
                    f"guidance_layers must index blocks 0..{len(blocks) - 2} (before the last, dense block); "
                    f"got {layers}"
                )
        self.clip = clip
        self.tokenizer = tokenizer
        self.guidance_layers = layers

    @property
    def embed_dim(self) -> int:
        """Width ``d`` of the joint image-text space."""
        return int(self.clip.visual.proj.shape[1])

    @property
    def vision_width(self) -> int:
        """Width of the image transformer (channels of the guidance maps)."""
        return int(self.clip.visual.proj.shape[0])

    @property
    def patch_size(self) -> int:
        """Patch size of the image tower."""
        return int(self.clip.visual.conv1.kernel_size[0])

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype of the image tower."""
        return self.clip.visual.conv1.weight.dtype

    def _tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        visual = self.clip.visual
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(images.shape)}")
        p = self.patch_size
        if images.shape[-2] % p or images.shape[-1] % p:
            raise ValueError(
                f"image height and width must be multiples of the patch size {p}; got {tuple(images.shape)}"
            )
        x = visual.conv1(images.to(self.dtype))
        grid = (int(x.shape[-2]), int(x.shape[-1]))
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + resize_positional_embedding(visual.positional_embedding, grid).to(x.dtype)
        return visual.ln_pre(x), grid

    def encode_image_dense(self, images: torch.Tensor, *, return_global: bool = False) -> DenseImageFeatures:
        """Dense features, guidance maps and optionally the global embedding of CLIP-normalised images.

        Args:
            images: ``(B, 3, H, W)`` images normalised with CLIP's mean and std, ``H, W`` multiples of
                the patch size (the positional embedding is resized to the ``H/p × W/p`` grid).
            return_global: also run the unmodified last block and return the usual image embedding.

        Returns:
            `DenseImageFeatures`.
        """
        visual = self.clip.visual
        x, (gh, gw) = self._tokens(images)
        batch_first = getattr(visual.transformer, "batch_first", True)
        blocks = visual.transformer.resblocks
        intermediates: list[torch.Tensor] = []
        for i, blk in enumerate(blocks[:-1]):
            x = blk(x) if batch_first else blk(x.transpose(0, 1)).transpose(0, 1)
            if i in self.guidance_layers:
                intermediates.append(x[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw))
        intermediates = [intermediates[sorted(self.guidance_layers).index(i)] for i in self.guidance_layers]
        last = blocks[-1]
        dense = visual.ln_post(dense_block_forward(last, x)) @ visual.proj
        dense = dense[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        global_embedding = None
        if return_global:
            y = last(x) if batch_first else last(x.transpose(0, 1)).transpose(0, 1)
            global_embedding = visual.ln_post(y[:, 0]) @ visual.proj
        return DenseImageFeatures(dense, intermediates, global_embedding)

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids ``(len(prompts), context_length)`` of the prompts (on the model's device)."""
        return self.tokenizer(list(prompts)).to(self.clip.visual.conv1.weight.device)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings ``(N, d)`` (not normalised) of token ids ``(N, context_length)``."""
        return self.clip.encode_text(tokens)

    def forward(self, images: torch.Tensor) -> DenseImageFeatures:
        """Same as `encode_image_dense`."""
        return self.encode_image_dense(images)
