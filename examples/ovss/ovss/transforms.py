"""CAT-Seg's training augmentation (``MaskFormerSemanticDatasetMapper`` with ``configs/config.yaml``).

In order:

1. **resize** the shortest edge to ``min_size`` (384; the longest capped at ``max_size`` = 1333,
   detectron2's default), bilinear for the image, nearest for the label;
2. **random crop** ``crop_size``² (384²) with detectron2's category-area rule: when
   ``single_category_max_area < 1`` up to 10 crops are drawn until one holds at least two labelled
   classes and none covers ``>= single_category_max_area`` of its labelled pixels (CAT-Seg sets 1.0, which
   turns the rule off: one crop);
3. **SSD colour jitter** (detectron2's ``ColorAugSSDTransform``): each with probability 1/2, brightness
   ``+U(-32, 32)``, contrast ``×U(0.5, 1.5)`` (before or after the HSV steps, at random), saturation
   ``×U(0.5, 1.5)`` and hue ``+U{-18..18}`` (of 180);
4. **horizontal flip** with probability 1/2;
5. **pad** to a multiple of ``crop_size`` (image 128, label ignore) as ``SIZE_DIVISIBILITY``.

All randomness comes from the ``numpy.random.Generator`` passed in, so a sample's augmentation is a
function of its seed (the trainer derives one per sample: exact resumption).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TrainTransform", "color_aug_ssd", "random_crop_category_area", "resize_shortest_edge"]


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    if nearest:
        if image.dtype != np.uint8:
            # PIL cannot nearest-resize int64; index arithmetic gives the same result as PIL's NEAREST.
            ys = np.minimum(((np.arange(h) + 0.5) * image.shape[0] / h).astype(np.int64), image.shape[0] - 1)
            xs = np.minimum(((np.arange(w) + 0.5) * image.shape[1] / w).astype(np.int64), image.shape[1] - 1)
            return image[ys[:, None], xs[None, :]]
        return np.asarray(Image.fromarray(image).resize((w, h), Image.NEAREST))
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def resize_shortest_edge(
    image: np.ndarray, label: np.ndarray, min_size: int, max_size: int = 1333
) -> tuple[np.ndarray, np.ndarray]:
    """Scale so the shorter side is ``min_size`` (longer side at most ``max_size``), as detectron2.

    Example:
        >>> im, lab = resize_shortest_edge(np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20), np.int64), 5)
        >>> im.shape, lab.shape
        ((5, 10, 3), (5, 10))
    """
    h, w = image.shape[:2]
    scale = min_size / min(h, w)
    nh, nw = h * scale, w * scale
    if max(nh, nw) > max_size:
        scale = max_size / max(nh, nw)
        nh, nw = nh * scale, nw * scale
    size = (int(nh + 0.5), int(nw + 0.5))
    return _resize(image, size, nearest=False), _resize(label, size, nearest=True)


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


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    from matplotlib.colors import rgb_to_hsv

    return rgb_to_hsv(rgb)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb

    return hsv_to_rgb(hsv)


def color_aug_ssd(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness_delta: float = 32.0,
    contrast: tuple[float, float] = (0.5, 1.5),
    saturation: tuple[float, float] = (0.5, 1.5),
    hue_delta: int = 18,
) -> np.ndarray:
    """SSD photometric distortion of an RGB uint8 image (see the module docstring)."""
    img = image.astype(np.float32)

    def clip(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 255.0)

    if rng.integers(2):
        img = clip(img + rng.uniform(-brightness_delta, brightness_delta))
    contrast_first = bool(rng.integers(2))
    if contrast_first and rng.integers(2):
        img = clip(img * rng.uniform(*contrast))
    do_sat, do_hue = bool(rng.integers(2)), bool(rng.integers(2))
    if do_sat or do_hue:
        hsv = _rgb_to_hsv(img / 255.0)
        if do_sat:
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*saturation), 0.0, 1.0)
        if do_hue:
            hsv[..., 0] = (hsv[..., 0] + rng.integers(-hue_delta, hue_delta + 1) / 180.0) % 1.0
        img = clip(_hsv_to_rgb(hsv) * 255.0)
    if not contrast_first and rng.integers(2):
        img = clip(img * rng.uniform(*contrast))
    return (img + 0.5).astype(np.uint8)


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

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image, label = resize_shortest_edge(image, label, self.min_size or self.crop_size, self.max_size)
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
