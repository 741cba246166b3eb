r"""CAT-Seg's cost-aggregation decoder (Cho et al., CVPR 2024), written from its published design.

Pipeline (CAT-Seg ``cat_seg/modeling/transformer/model.py``, ``Aggregator``), for dense image features
$D_V$ ``(B, d, H, W)`` and class embeddings $D_L$ ``(B, T, P, d)`` (``T`` classes, ``P``
prompt templates):

1. **cost volume**: $C_{b,p,t,h,w} = \cos(D_V[b,:,h,w], D_L[b,t,p])$ ``(B, P, T, H, W)``;
   above ``pad_len`` classes only the ``pad_len`` classes with the highest maximum cost are kept
   (the others' logits are set to -100);
2. **embedding**: a 7×7 convolution ``P → hidden`` per class;
3. **aggregation layers** (``num_layers``), each a spatial step and a class step:

   - spatial: two Swin blocks (window ``w``, the second shifted by ``w // 2``) per class over the
     ``H × W`` grid, whose queries and keys also see the projected appearance guidance (the dense
     features after a 3×3 conv + ReLU and a LayerNorm), concatenated to the tokens; no relative
     position bias;
   - class: linear attention (``elu + 1`` feature map) across the classes at every (2×2 average-
     pooled) position, queries and keys concatenated with the projected text guidance (the
     prompt-averaged class embedding after Linear + ReLU); the class axis is padded with learned
     tokens to ``pad_len``; the result is upsampled bilinearly and added back;
4. **upsampling decoder**: two (transposed conv ×2, concat projected CLIP intermediate-layer
   guidance, (conv 3×3 + GroupNorm + ReLU) ×2) stages and a 3×3 head giving one logit per class and
   pixel at 4× the feature resolution.

Well-kept building blocks are used where they fit: timm's ``window_partition``/``window_reverse`` and
``Mlp``. The parameter count equals CAT-Seg's: 2,308,961 at ViT-B/16 dimensions and 2,636,641 at
ViT-L/14 (`Aggregator.num_parameters`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.swin_transformer import window_partition, window_reverse
from torch import nn

__all__ = [
    "Aggregator",
    "AggregatorConfig",
    "ClassAggregation",
    "GuidedSwinBlock",
    "SpatialAggregation",
    "linear_attention",
]


@dataclass
class AggregatorConfig:
    """Hyper-parameters of `Aggregator`, named after CAT-Seg's ``MODEL.SEM_SEG_HEAD`` keys.

    The defaults are CAT-Seg's ``configs/vitb_384.yaml`` (ViT-B/16: 512-dim guidance); ViT-L/14 uses
    ``text_guidance_dim = appearance_guidance_dim = 768``.
    """

    text_guidance_dim: int = 512
    text_guidance_proj_dim: int = 128
    appearance_guidance_dim: int = 512
    appearance_guidance_proj_dim: int = 128
    decoder_dims: tuple[int, int] = (64, 32)
    decoder_guidance_dims: tuple[int, int] = (256, 128)
    decoder_guidance_proj_dims: tuple[int, int] = (32, 16)
    num_layers: int = 2
    num_heads: int = 4
    hidden_dim: int = 128
    pooling_size: tuple[int, int] = (2, 2)
    feature_resolution: tuple[int, int] = (24, 24)
    window_size: int = 12
    attention_type: str = "linear"
    pad_len: int = 256
    prompt_channel: int = 1

    def __post_init__(self) -> None:
        self.decoder_dims = tuple(self.decoder_dims)  # type: ignore[assignment]
        self.decoder_guidance_dims = tuple(self.decoder_guidance_dims)  # type: ignore[assignment]
        self.decoder_guidance_proj_dims = tuple(self.decoder_guidance_proj_dims)  # type: ignore[assignment]
        self.pooling_size = tuple(self.pooling_size)  # type: ignore[assignment]
        self.feature_resolution = tuple(self.feature_resolution)  # type: ignore[assignment]
        for name in ("decoder_dims", "decoder_guidance_dims", "decoder_guidance_proj_dims"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"{name} must have two entries; got {getattr(self, name)}")
        if self.attention_type not in ("linear", "full"):
            raise ValueError(f"attention_type must be 'linear' or 'full'; got {self.attention_type!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={self.hidden_dim} must be divisible by num_heads={self.num_heads}")
        for d in self.decoder_dims:
            if d % 16:
                raise ValueError(
                    f"decoder_dims must be multiples of 16 (GroupNorm of d // 16 groups); got {d}"
                )
        if self.pad_len < 0 or self.prompt_channel < 1:
            raise ValueError(
                f"need pad_len >= 0 and prompt_channel >= 1; got {self.pad_len}, {self.prompt_channel}"
            )


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    r"""Multi-head linear attention with the $\phi(x) = \mathrm{elu}(x) + 1$ feature map.

    $$
    \mathrm{out}_l = \frac{\phi(q_l)^\top \sum_s \phi(k_s) v_s^\top}{\phi(q_l)^\top \sum_s \phi(k_s) + \epsilon}
    $$

    (Katharopoulos et al., 2020). The values are divided by ``S`` before the sums and the result
    multiplied back, which keeps half-precision sums in range (as CAT-Seg does).

    Args:
        q: ``(N, L, H, D)``.
        k: ``(N, S, H, D)``.
        v: ``(N, S, H, Dv)``.
        eps: added to the normaliser.

    Returns:
        ``(N, L, H, Dv)``.
    """
    q = F.elu(q) + 1
    k = F.elu(k) + 1
    length = v.shape[1]
    v = v / length
    kv = torch.einsum("nshd,nshv->nhdv", k, v)
    z = 1.0 / (torch.einsum("nlhd,nhd->nlh", q, k.sum(dim=1)) + eps)
    return torch.einsum("nlhd,nhdv,nlh->nlhv", q, kv, z) * length


def _full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # (N, L, H, D) layout; softmax attention over S.
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class GuidedWindowAttention(nn.Module):
    """Window multi-head self-attention whose queries and keys also see a guidance vector per token.

    ``q = W_q [x; g]``, ``k = W_k [x; g]``, ``v = W_v x``; scaled dot product with an optional additive
    mask per window; no relative position bias (CAT-Seg's ``WindowAttention``).
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(num_windows·B, N, dim + guidance_dim)``; ``mask``: ``(num_windows, N, N)`` or None."""
        b, n, _ = x.shape
        h = self.num_heads
        q = self.q(x).reshape(b, n, h, -1).transpose(1, 2) * self.scale
        k = self.k(x).reshape(b, n, h, -1).transpose(1, 2)
        v = self.v(x[..., : self.dim]).reshape(b, n, h, -1).transpose(1, 2)
        attn = q @ k.transpose(-2, -1)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, h, n, n) + mask[None, :, None].to(attn.dtype)
            attn = attn.view(b, h, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class GuidedSwinBlock(nn.Module):
    """A (shifted-)window Swin block with appearance guidance concatenated to the attention input.

    Args:
        dim: token width.
        guidance_dim: appearance-guidance width (0: none).
        input_resolution: ``(H, W)`` of the token grid (fixed, as in Swin).
        num_heads: attention heads.
        window_size: window side; if ``min(H, W) <= window_size`` one window covers the grid, unshifted.
        shift_size: cyclic shift of the windows (0 or ``window_size // 2``).
    """

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
    ) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(self.input_resolution) <= window_size:
            window_size, shift_size = min(self.input_resolution), 0
        if not 0 <= shift_size < window_size:
            raise ValueError(
                f"shift_size must lie in [0, window_size); got {shift_size} for window {window_size}"
            )
        h, w = self.input_resolution
        if h % window_size or w % window_size:
            raise ValueError(
                f"input_resolution {self.input_resolution} must be a multiple of the window {window_size}"
            )
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=4 * dim, act_layer=nn.GELU)
        self.register_buffer("attn_mask", self._shift_mask() if shift_size else None, persistent=False)

    def _shift_mask(self) -> torch.Tensor:
        # Label the 3x3 regions the cyclic shift brings together; tokens of different regions that share a
        # window must not attend to each other (-100 before the softmax).
        h, w = self.input_resolution
        ws, s = self.window_size, self.shift_size
        img = torch.zeros(1, h, w, 1)
        label = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                img[:, hs, wsl, :] = label
                label += 1
        windows = window_partition(img, (ws, ws)).view(-1, ws * ws)
        diff = windows[:, None, :] - windows[:, :, None]
        return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(N, H·W, dim)``; ``guidance``: ``(N, H·W, guidance_dim)`` or None."""
        h, w = self.input_resolution
        n, length, c = x.shape
        if length != h * w:
            raise ValueError(
                f"expected {h * w} tokens for input_resolution {self.input_resolution}; got {length}"
            )
        ws = self.window_size
        shortcut = x
        y = self.norm1(x).view(n, h, w, c)
        if guidance is not None:
            y = torch.cat([y, guidance.view(n, h, w, -1)], dim=-1)
        if self.shift_size:
            y = torch.roll(y, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = window_partition(y, (ws, ws)).view(-1, ws * ws, y.shape[-1])
        windows = self.attn(windows, mask=self.attn_mask).view(-1, ws, ws, c)
        y = window_reverse(windows, (ws, ws), h, w)
        if self.shift_size:
            y = torch.roll(y, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = shortcut + y.reshape(n, h * w, c)
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """Two guided Swin blocks (plain, then shifted by half a window) applied to every class's cost map."""

    def __init__(
        self, dim: int, guidance_dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int
    ) -> None:
        super().__init__()
        self.block_1 = GuidedSwinBlock(dim, guidance_dim, input_resolution, num_heads, window_size, 0)
        self.block_2 = GuidedSwinBlock(
            dim, guidance_dim, input_resolution, num_heads, window_size, window_size // 2
        )
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(B, C, T, H, W)``; ``guidance``: ``(B, Cg, H, W)`` or None. Returns ``(B, C, T, H, W)``."""
        b, c, t, h, w = x.shape
        tokens = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        if guidance is not None and self.guidance_norm is not None:
            g = guidance.flatten(2).transpose(1, 2).repeat_interleave(t, dim=0)
            guidance = self.guidance_norm(g)
        else:
            guidance = None
        tokens = self.block_2(self.block_1(tokens, guidance), guidance)
        return tokens.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)


class ClassAttention(nn.Module):
    """Multi-head (linear or softmax) attention over classes, queries and keys guided by text."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, attention_type: str = "linear") -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.attention_type = attention_type

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(N, T, dim)``; ``guidance``: ``(N, T, guidance_dim)`` or None."""
        xg = torch.cat([x, guidance], dim=-1) if guidance is not None else x
        n, t, _ = x.shape
        h = self.num_heads
        q = self.q(xg).reshape(n, t, h, -1)
        k = self.k(xg).reshape(n, t, h, -1)
        v = self.v(x).reshape(n, t, h, -1)
        out = linear_attention(q, k, v) if self.attention_type == "linear" else _full_attention(q, k, v)
        return out.reshape(n, t, -1)


class ClassAggregation(nn.Module):
    """CAT-Seg's class aggregation: pre-norm attention + MLP across classes on a pooled grid.

    The class axis is padded with a learned token (and a learned guidance vector) up to ``pad_len``
    classes, so the attention always sees the same number of tokens; the padding is dropped after.
    """

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        num_heads: int,
        attention_type: str = "linear",
        pooling_size: tuple[int, int] | None = (2, 2),
        pad_len: int = 256,
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pooling_size) if pooling_size is not None else nn.Identity()
        self.attention = ClassAttention(dim, guidance_dim, num_heads, attention_type)
        self.MLP = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pad_len = pad_len
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, dim)) if pad_len > 0 else None
        self.padding_guidance = (
            nn.Parameter(torch.zeros(1, 1, guidance_dim)) if pad_len > 0 and guidance_dim > 0 else None
        )

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(B, C, T, H, W)``; ``guidance``: ``(B, T, Cg)`` or None. Returns ``(B, C, T, H, W)``."""
        b, c, t, h, w = x.shape
        pooled = self.pool(x.transpose(1, 2).reshape(b * t, c, h, w))
        hp, wp = pooled.shape[-2:]
        pooled = pooled.reshape(b, t, c, hp, wp)
        pad = self.pad_len - t if self.padding_tokens is not None and t < self.pad_len else 0
        if pad:
            tokens = self.padding_tokens.to(pooled.dtype).view(1, 1, c, 1, 1).expand(b, pad, c, hp, wp)
            pooled = torch.cat([pooled, tokens], dim=1)
        tt = pooled.shape[1]
        seq = pooled.permute(0, 3, 4, 1, 2).reshape(b * hp * wp, tt, c)
        if guidance is not None:
            if pad and self.padding_guidance is not None:
                g_pad = self.padding_guidance.to(guidance.dtype).expand(b, pad, -1)
                guidance = torch.cat([guidance, g_pad], dim=1)
            guidance = guidance.repeat_interleave(hp * wp, dim=0)
        seq = seq + self.attention(self.norm1(seq), guidance)
        seq = seq + self.MLP(self.norm2(seq))
        out = seq.reshape(b, hp, wp, tt, c).permute(0, 3, 4, 1, 2).reshape(b * tt, c, hp, wp)
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)
        out = out.reshape(b, tt, c, h, w)[:, :t].transpose(1, 2)
        return x + out


class AggregatorLayer(nn.Module):
    """One spatial aggregation followed by one class aggregation."""

    def __init__(self, cfg: AggregatorConfig) -> None:
        super().__init__()
        self.swin_block = SpatialAggregation(
            cfg.hidden_dim,
            cfg.appearance_guidance_proj_dim,
            cfg.feature_resolution,
            cfg.num_heads,
            cfg.window_size,
        )
        self.attention = ClassAggregation(
            cfg.hidden_dim,
            cfg.text_guidance_proj_dim,
            cfg.num_heads,
            cfg.attention_type,
            cfg.pooling_size,
            cfg.pad_len,
        )

    def forward(
        self, x: torch.Tensor, appearance_guidance: torch.Tensor | None, text_guidance: torch.Tensor | None
    ) -> torch.Tensor:
        return self.attention(self.swin_block(x, appearance_guidance), text_guidance)


class DoubleConv(nn.Module):
    """(conv 3×3 without bias → GroupNorm(out // 16) → ReLU) × 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(out_channels // 16, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(out_channels // 16, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Up(nn.Module):
    """×2 transposed conv to ``in - guidance`` channels, concat the guidance, then `DoubleConv`."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B·T, C, H, W)``; ``guidance``: ``(B, Cg, 2H, 2W)``, repeated for the ``T`` classes."""
        x = self.up(x)
        if guidance is not None:
            guidance = guidance.repeat_interleave(x.shape[0] // guidance.shape[0], dim=0)
            x = torch.cat([x, guidance], dim=1)
        return self.conv(x)


class Aggregator(nn.Module):
    """CAT-Seg's cost-aggregation decoder: cost volume → aggregation layers → upsampling decoder → logits.

    Args:
        config: an `AggregatorConfig` (defaults: CAT-Seg ViT-B/16).

    Shape:
        - image_features: ``(B, d, H, W)`` dense CLIP features, ``(H, W) = feature_resolution``.
        - text_features: ``(B, T, P, d)`` class embeddings (``P = prompt_channel`` templates).
        - appearance_guidance: ``[dense (B, appearance_guidance_dim, H, W), g1 (B,
          decoder_guidance_dims[0], 2H, 2W), g2 (B, decoder_guidance_dims[1], 4H, 4W)]``.
        - output: ``(B, T, 4H, 4W)`` logits; classes dropped by the top-``pad_len`` selection get -100.

    Example:
        >>> agg = Aggregator(AggregatorConfig())
        >>> agg.num_parameters()
        2308961
    """

    def __init__(self, config: AggregatorConfig | None = None) -> None:
        super().__init__()
        cfg = config or AggregatorConfig()
        self.config = cfg
        self.layers = nn.ModuleList([AggregatorLayer(cfg) for _ in range(cfg.num_layers)])
        self.conv1 = nn.Conv2d(cfg.prompt_channel, cfg.hidden_dim, kernel_size=7, stride=1, padding=3)
        self.guidance_projection = (
            nn.Sequential(
                nn.Conv2d(
                    cfg.appearance_guidance_dim, cfg.appearance_guidance_proj_dim, kernel_size=3, padding=1
                ),
                nn.ReLU(),
            )
            if cfg.appearance_guidance_dim > 0
            else None
        )
        self.text_guidance_projection = (
            nn.Sequential(nn.Linear(cfg.text_guidance_dim, cfg.text_guidance_proj_dim), nn.ReLU())
            if cfg.text_guidance_dim > 0
            else None
        )
        self.decoder_guidance_projection = (
            nn.ModuleList(
                [
                    nn.Sequential(nn.Conv2d(d, dp, kernel_size=3, padding=1), nn.ReLU())
                    for d, dp in zip(cfg.decoder_guidance_dims, cfg.decoder_guidance_proj_dims)
                ]
            )
            if cfg.decoder_guidance_dims[0] > 0
            else None
        )
        self.decoder1 = Up(cfg.hidden_dim, cfg.decoder_dims[0], cfg.decoder_guidance_proj_dims[0])
        self.decoder2 = Up(cfg.decoder_dims[0], cfg.decoder_dims[1], cfg.decoder_guidance_proj_dims[1])
        self.head = nn.Conv2d(cfg.decoder_dims[1], 1, kernel_size=3, stride=1, padding=1)
        self.pad_len = cfg.pad_len

    def num_parameters(self) -> int:
        """Number of parameters (CAT-Seg: 2,308,961 at ViT-B/16 dims, 2,636,641 at ViT-L/14)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def pooling_size(self) -> tuple[int, int] | None:
        """The class aggregation's current average-pooling window (``None``: no pooling)."""
        pool = self.layers[0].attention.pool if len(self.layers) else None
        return tuple(pool.kernel_size) if isinstance(pool, nn.AvgPool2d) else None  # type: ignore[arg-type]

    @contextmanager
    def use_pooling(self, size: tuple[int, int] | None) -> Iterator[None]:
        """Run the class aggregation with another pooling window inside a ``with`` block.

        CAT-Seg trains with ``POOLING_SIZES [2, 2]`` and evaluates every benchmark with ``[1, 1]``
        (its ``eval.sh``); the pooling has no parameters, so only the window changes. ``size=None``
        leaves the model as it is.

        Example:
            >>> agg = Aggregator(AggregatorConfig(num_layers=1))
            >>> with agg.use_pooling((1, 1)):
            ...     agg.pooling_size
            (1, 1)
            >>> agg.pooling_size
            (2, 2)
        """
        if size is None:
            yield
            return
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"pooling size must be two positive integers; got {size}")
        saved = [layer.attention.pool for layer in self.layers]
        try:
            for layer in self.layers:
                layer.attention.pool = nn.AvgPool2d(size)
            yield
        finally:
            for layer, pool in zip(self.layers, saved):
                layer.attention.pool = pool

    @staticmethod
    def correlation(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Cosine cost volume ``(B, P, T, H, W)`` of ``(B, d, H, W)`` features and ``(B, T, P, d)`` text."""
        img = F.normalize(image_features, dim=1)
        txt = F.normalize(text_features, dim=-1)
        return torch.einsum("bchw,btpc->bpthw", img, txt)

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        appearance_guidance: Sequence[torch.Tensor | None],
    ) -> torch.Tensor:
        """Per-class logits ``(B, T, 4H, 4W)`` (see the class docstring for shapes)."""
        if image_features.dim() != 4 or text_features.dim() != 4:
            raise ValueError(
                "image_features must be (B, d, H, W) and text_features (B, T, P, d); got "
                f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
            )
        if text_features.shape[2] != self.config.prompt_channel:
            raise ValueError(
                f"text_features carry {text_features.shape[2]} prompts per class but this Aggregator was built "
                f"with prompt_channel={self.config.prompt_channel}"
            )
        if tuple(image_features.shape[-2:]) != self.config.feature_resolution:
            raise ValueError(
                f"image_features must have spatial size {self.config.feature_resolution}; "
                f"got {tuple(image_features.shape[-2:])}"
            )
        classes = None
        num_classes = text_features.shape[1]
        corr = self.correlation(image_features, text_features)
        if self.pad_len > 0 and num_classes > self.pad_len:
            # Keep the pad_len classes whose best cost anywhere in the image is highest.
            best = corr.transpose(1, 2).flatten(2).amax(dim=-1)  # (B, T)
            classes = best.topk(self.pad_len, dim=-1, sorted=True).indices  # (B, pad_len)
            index = classes[..., None, None].expand(-1, -1, *text_features.shape[2:])
            text_features = torch.gather(F.normalize(text_features, dim=-1), 1, index)
            corr = self.correlation(image_features, text_features)

        b, p, t, h, w = corr.shape
        embed = self.conv1(corr.transpose(1, 2).reshape(b * t, p, h, w))
        embed = embed.reshape(b, t, -1, h, w).transpose(1, 2)  # (B, C, T, H, W)

        projected = None
        if self.guidance_projection is not None and appearance_guidance[0] is not None:
            projected = self.guidance_projection(appearance_guidance[0])
        decoder_guidance: list[torch.Tensor | None] = [None, None]
        if self.decoder_guidance_projection is not None:
            decoder_guidance = [
                proj(g) if g is not None else None
                for proj, g in zip(self.decoder_guidance_projection, appearance_guidance[1:3])
            ]
        text_guidance = None
        if self.text_guidance_projection is not None:
            text_guidance = self.text_guidance_projection(F.normalize(text_features.mean(dim=2), dim=-1))

        for layer in self.layers:
            embed = layer(embed, projected, text_guidance)

        x = embed.transpose(1, 2).reshape(b * t, -1, h, w)
        x = self.decoder1(x, decoder_guidance[0])
        x = self.decoder2(x, decoder_guidance[1])
        logits = self.head(x).reshape(b, t, x.shape[-2], x.shape[-1])
        if classes is not None:
            out = logits.new_full((b, num_classes, *logits.shape[-2:]), -100.0)
            out.scatter_(1, classes[..., None, None].expand(-1, -1, *logits.shape[-2:]), logits)
            logits = out
        return logits
