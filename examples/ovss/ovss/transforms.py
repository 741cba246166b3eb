r"""CAT-Seg's training augmentation (``MaskFormerSemanticDatasetMapper`` with ``configs/config.yaml``).

In order:

1. **resize** the shortest edge to ``min_size`` (384; the longest capped at ``max_size`` = 1333,
   detectron2's default): the image bilinearly with PIL on uint8, the label with floor-index nearest
   (detectron2 resizes a label read as float64 with ``F.interpolate(mode="nearest")``: output pixel
   $i$ takes input pixel $\lfloor i \cdot n_{in} / n_{out} \rfloor$), see `resize_label`;
2. **random crop** ``crop_size``² (384²) with detectron2's category-area rule: when
   ``single_category_max_area < 1`` up to 10 crops are drawn until one holds at least two labelled
   classes and none covers ``>= single_category_max_area`` of its labelled pixels (CAT-Seg sets 1.0, which
   turns the rule off: one crop);
3. **SSD colour jitter** (detectron2's ``ColorAugSSDTransform``, `color_aug_ssd`): brightness
   $+U(-32, 32)$, then either contrast $\times U(0.5, 1.5)$, saturation, hue or saturation, hue,
   contrast (each step with probability 1/2); saturation $\times U(0.5, 1.5)$ and hue $+U\{-18..18\}$ (of
   180) act on an 8-bit HSV image (OpenCV's conversion, `rgb_to_hsv_uint8` / `hsv_to_rgb_uint8`);
   every step ends truncated to uint8, as detectron2's;
4. **horizontal flip** with probability 1/2;
5. **pad** to a multiple of ``crop_size`` (image 128, label ignore) as ``SIZE_DIVISIBILITY``.

All randomness comes from the ``numpy.random.Generator`` passed in, so a sample's augmentation is a
function of its seed (the trainer derives one per sample: exact resumption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "TrainTransform",
    "color_aug_ssd",
    "hsv_to_rgb_uint8",
    "random_crop_category_area",
    "resize_image",
    "resize_label",
    "resize_shortest_edge",
    "shortest_edge_size",
]

LabelResize = Literal["floor", "center"]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 image resized to ``size = (h, w)`` bilinearly by PIL (detectron2's
    ``ResizeTransform`` on uint8 images; PIL filters over the scaled support when shrinking)."""
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def resize_label(label: np.ndarray, size: tuple[int, int], rule: LabelResize = "floor") -> np.ndarray:
    r"""A ``(H, W)`` label map resized to ``size = (h, w)`` by nearest neighbour.

    Args:
        label: integer class ids.
        size: output ``(h, w)``.
        rule: ``"floor"`` (CAT-Seg: detectron2 reads labels as float64 and resizes them with
            ``F.interpolate(mode="nearest")``, so output index $i$ reads input index
            $\min(\lfloor i \cdot n_{in}/n_{out} \rfloor, n_{in} - 1)$) or ``"center"`` (PIL's
            ``NEAREST``: input index $\lfloor (i + \tfrac12)\, n_{in}/n_{out} \rfloor$, the sample
            nearest to the output pixel's centre).

    Example:
        >>> resize_label(np.array([[0, 1, 2]]), (1, 2)).tolist(), resize_label(np.array([[0, 1, 2]]), (1, 2), "center").tolist()
        ([[0, 1]], [[0, 2]])
    """
    h, w = size
    if label.shape == (h, w):
        return label
    if rule == "floor":
        t = torch.from_numpy(np.ascontiguousarray(label, dtype=np.float64))[None, None]
        return F.interpolate(t, size=(h, w), mode="nearest")[0, 0].numpy().astype(label.dtype)
    if rule == "center":
        ys = np.minimum(((np.arange(h) + 0.5) * label.shape[0] / h).astype(np.int64), label.shape[0] - 1)
        xs = np.minimum(((np.arange(w) + 0.5) * label.shape[1] / w).astype(np.int64), label.shape[1] - 1)
        return label[ys[:, None], xs[None, :]]
    raise ValueError(f"rule must be 'floor' or 'center'; got {rule!r}")


def shortest_edge_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """detectron2's ``ResizeShortestEdge`` output ``(h, w)``: the shorter side becomes ``min_size``,
    then both shrink so that the longer is at most ``max_size``; each side rounded half up.

    Example:
        >>> shortest_edge_size(427, 640, 640, 2560)
        (640, 959)
    """
    scale = min_size / min(height, width)
    nh, nw = (min_size, scale * width) if height < width else (scale * height, min_size)
    if max(nh, nw) > max_size:
        scale = max_size / max(nh, nw)
        nh, nw = nh * scale, nw * scale
    return int(nh + 0.5), int(nw + 0.5)


def resize_shortest_edge(
    image: np.ndarray,
    label: np.ndarray,
    min_size: int,
    max_size: int = 1333,
    *,
    label_rule: LabelResize = "floor",
) -> tuple[np.ndarray, np.ndarray]:
    """Scale so the shorter side is ``min_size`` (longer side at most ``max_size``), as detectron2.

    Example:
        >>> im, lab = resize_shortest_edge(np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20), np.int64), 5)
        >>> im.shape, lab.shape
        ((5, 10, 3), (5, 10))
    """
    size = shortest_edge_size(image.shape[0], image.shape[1], min_size, max_size)
    return resize_image(image, size), resize_label(label, size, label_rule)


def random_crop_category_area(
    label: np.ndarray,
    crop_size: int,
    rng: np.random.Generator,
    *,
    single_category_max_area: float = 1.0,
    ignore_index: int = 255,
) -> tuple[int, int, int, int]:
    """Top-left corner and size ``(y0, x0, h, w)`` of a random crop (detectron2's area-constrained rule).

    With ``single_category_max_area >= 1`` one uniformly placed crop is returned. Otherwise up to 10
    are drawn and the first whose labelled pixels hold more than one class, none of them covering
    ``single_category_max_area`` or more, is kept (else the 10th).
    """
    h, w = label.shape
    ch, cw = min(crop_size, h), min(crop_size, w)

    def draw() -> tuple[int, int, int, int]:
        return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw

    box = draw()
    if single_category_max_area >= 1.0:
        return box
    for attempt in range(10):
        if attempt:
            box = draw()
        y0, x0, _, _ = box
        values, counts = np.unique(label[y0 : y0 + ch, x0 : x0 + cw], return_counts=True)
        counts = counts[values != ignore_index]
        if len(counts) > 1 and counts.max() < counts.sum() * single_category_max_area:
            break
    return box


# OpenCV's 8-bit HSV (hue 0..179 in 2-degree steps, saturation and value 0..255), written from its
# documented fixed-point rule so that no OpenCV or matplotlib is needed.
_HSV_SHIFT = 12


def rgb_to_hsv_uint8(rgb: np.ndarray) -> np.ndarray:
    r"""RGB uint8 ``(..., 3)`` → 8-bit HSV as OpenCV's ``COLOR_RGB2HSV``.

    $V = \max$, $S = \mathrm{round}(255\,(V - \min)/V)$, $H = \mathrm{round}(30\,h_6)$ with $h_6 \in [0, 6)$
    the hexcone sector position (red sector first, then green, then blue when channels tie); the
    divisions use OpenCV's 12-bit fixed-point reciprocal tables, so the result is OpenCV's exactly.
    """
    x = rgb.astype(np.int64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(-1)
    diff = v - x.min(-1)
    idx = np.arange(256)
    with np.errstate(divide="ignore"):
        sdiv = np.where(idx > 0, np.rint((255 << _HSV_SHIFT) / np.maximum(idx, 1)), 0).astype(np.int64)
        hdiv = np.where(idx > 0, np.rint((180 << _HSV_SHIFT) / (6.0 * np.maximum(idx, 1))), 0).astype(
            np.int64
        )
    half = 1 << (_HSV_SHIFT - 1)
    s = (diff * sdiv[v] + half) >> _HSV_SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + half) >> _HSV_SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], -1).astype(np.uint8)


_SECTORS = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])  # (r, g, b) taps


def hsv_to_rgb_uint8(hsv: np.ndarray) -> np.ndarray:
    r"""8-bit HSV ``(..., 3)`` (hue 0..179) → RGB uint8 as OpenCV's ``COLOR_HSV2RGB`` (float32 maths,
    rounded to nearest).

    With $s = S/255$, $v = V/255$, $h_6 = 6H/180 = 6 \cdot$ sector $+ f$: the channels are $v$,
    $v(1-s)$, $v(1-sf)$, $v(1-s(1-f))$ in the sector's order.
    """
    h = hsv[..., 0].astype(np.float32) * np.float32(6.0 / 180.0)
    s = hsv[..., 1].astype(np.float32) * np.float32(1.0 / 255.0)
    v = hsv[..., 2].astype(np.float32) * np.float32(1.0 / 255.0)
    h = np.where(h >= 6, h - 6, h)
    sector = np.floor(h).astype(np.int64)
    f = (h - sector).astype(np.float32)
    bad = (sector < 0) | (sector > 5)
    sector = np.where(bad, 0, sector)
    f = np.where(bad, np.float32(0), f)
    one = np.float32(1)
    taps = np.stack([v, v * (one - s), v * (one - s * f), v * (one - s * (one - f))], -1)
    rgb = np.take_along_axis(taps, _SECTORS[sector], axis=-1)
    rgb = np.where((s == 0)[..., None], v[..., None], rgb)
    return np.clip(np.rint(rgb * np.float32(255)), 0, 255).astype(np.uint8)


def _convert(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """detectron2's ``ColorAugSSDTransform.convert``: float32 ``x * alpha + beta``, clipped to 0..255,
    truncated to uint8."""
    return np.clip(x.astype(np.float32) * np.float32(alpha) + np.float32(beta), 0, 255).astype(np.uint8)


def color_aug_ssd(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness_delta: float = 32.0,
    contrast: tuple[float, float] = (0.5, 1.5),
    saturation: tuple[float, float] = (0.5, 1.5),
    hue_delta: int = 18,
) -> np.ndarray:
    """SSD photometric distortion of an RGB uint8 image, as detectron2's ``ColorAugSSDTransform``.

    The draws, in order: brightness (apply?, delta); the branch (contrast first?); then contrast,
    saturation, hue, or saturation, hue, contrast, each (apply?, amount). Every step ends truncated to
    uint8; saturation scales the 8-bit HSV saturation (truncated), hue shifts the 8-bit hue modulo 180.
    The draws come from ``rng`` (numpy) instead of Python's ``random``: the same distributions.

    Example:
        >>> out = color_aug_ssd(np.full((2, 2, 3), 100, np.uint8), np.random.default_rng(0))
        >>> out.dtype, out.shape
        (dtype('uint8'), (2, 2, 3))
    """
    img = image

    def do_contrast(x: np.ndarray) -> np.ndarray:
        return _convert(x, alpha=rng.uniform(*contrast)) if rng.integers(2) else x

    def do_saturation(x: np.ndarray) -> np.ndarray:
        if not rng.integers(2):
            return x
        hsv = rgb_to_hsv_uint8(x)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(*saturation))
        return hsv_to_rgb_uint8(hsv)

    def do_hue(x: np.ndarray) -> np.ndarray:
        if not rng.integers(2):
            return x
        hsv = rgb_to_hsv_uint8(x)
        shift = int(rng.integers(-hue_delta, hue_delta + 1))
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + shift) % 180
        return hsv_to_rgb_uint8(hsv)

    if rng.integers(2):
        img = _convert(img, beta=rng.uniform(-brightness_delta, brightness_delta))
    if rng.integers(2):
        img = do_hue(do_saturation(do_contrast(img)))
    else:
        img = do_contrast(do_hue(do_saturation(img)))
    return np.ascontiguousarray(img, dtype=np.uint8)


@dataclass
class TrainTransform:
    """CAT-Seg's training augmentation (module docstring); call as ``t(image, label, rng)``.

    Args:
        crop_size: the square crop (384).
        min_size: shortest-edge size before cropping (defaults to ``crop_size``).
        max_size: longest-edge cap of the resize.
        single_category_max_area: detectron2's crop rule (CAT-Seg: 1.0 = off).
        color_aug: SSD colour jitter on/off.
        flip: horizontal flips on/off.
        ignore_index: label of padded / unlabelled pixels.
        label_resize: ``"floor"`` (CAT-Seg) or ``"center"`` (PIL's nearest), see `resize_label`.

    Example:
        >>> t = TrainTransform(crop_size=8)
        >>> im, lab = t(np.zeros((12, 20, 3), np.uint8), np.zeros((12, 20), np.int64), np.random.default_rng(0))
        >>> im.shape, lab.shape
        ((8, 8, 3), (8, 8))
    """

    crop_size: int = 384
    min_size: int | None = None
    max_size: int = 1333
    single_category_max_area: float = 1.0
    color_aug: bool = True
    flip: bool = True
    ignore_index: int = 255
    label_resize: LabelResize = "floor"

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image, label = resize_shortest_edge(
            image, label, self.min_size or self.crop_size, self.max_size, label_rule=self.label_resize
        )
        y0, x0, ch, cw = random_crop_category_area(
            label,
            self.crop_size,
            rng,
            single_category_max_area=self.single_category_max_area,
            ignore_index=self.ignore_index,
        )
        image, label = image[y0 : y0 + ch, x0 : x0 + cw], label[y0 : y0 + ch, x0 : x0 + cw]
        if self.color_aug:
            image = color_aug_ssd(image, rng)
        if self.flip and rng.integers(2):
            image, label = image[:, ::-1], label[:, ::-1]
        ph = -image.shape[0] % self.crop_size
        pw = -image.shape[1] % self.crop_size
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=128)
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=self.ignore_index)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
