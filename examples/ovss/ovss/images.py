"""The one image reader of the example: images as a viewer shows them, label maps aligned with them.

Every path that reads pixels (``predict.py``, evaluation, training on the benchmarks or on your own
folders, the data check) goes through `read_image` and `read_label`:

- **Orientation.** A photo whose EXIF ``Orientation`` tag says "rotate" (phones store most photos
  sideways) is returned rotated / mirrored as every viewer shows it (`exif_orientation`,
  ``PIL.ImageOps.exif_transpose``; detectron2's reader, which CAT-Seg uses, does the same). A label map
  is read the same way: the tag is applied if the map has one (label maps rarely do). A mask is therefore
  expected to be drawn over the image *as displayed*; `pair_mismatch` explains a mask that only fits the
  image's stored (un-rotated) pixels, naming the orientation.
- **Colour modes**, converted explicitly to 8-bit RGB: RGB as is; grey (``L``, 1-bit) repeated to three
  channels; palette images (``P``) through their palette; alpha (``RGBA``, ``LA``, ``PA``, palette
  transparency) composited over white, as a page shows a transparent picture; CMYK and YCbCr by
  Pillow's conversion formulas (an embedded ICC colour profile is not applied).
- **Bit depth.** 16-bit grey images (``I;16``: PNG, TIFF) are scaled to 8 bits,
  $v_8 = \\mathrm{round}(255\\,v_{16} / 65535)$, not clipped (a PNG of fewer significant bits stores
  them scaled to the full 16-bit range, so the rule holds for 10-, 12- and 14-bit data too); 16-bit RGB(A)
  PNGs and TIFFs are reduced to their high byte by Pillow, the same scaling up to one grey level.
- **Refused** with a message saying so: 32-bit integer and floating-point images (no defined white
  level), and modes Pillow cannot convert to RGB (``LAB``, ``HSV``, multi-channel TIFFs).

Label maps are single-channel class ids: 8-bit (``L``, or ``P`` whose palette indices are the ids) or
16-bit PNGs, or TIFFs of any integer type (read by ``tifffile``); their values are never scaled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetLayoutError",
    "ImageReadError",
    "describe_orientation",
    "exif_orientation",
    "pair_mismatch",
    "read_image",
    "read_label",
]

#: File suffixes of images taken from a folder (``predict.py``), lower case.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: EXIF orientation → what a viewer does to the stored pixels.
_ORIENTATION_WORDS = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped upside down",
    5: "mirrored and rotated 90°",
    6: "rotated 90° clockwise",
    7: "mirrored and rotated 90°",
    8: "rotated 90° counter-clockwise",
}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_LABEL_MODES = ("L", "P", "I", *_SIXTEEN_BIT)


class DatasetLayoutError(FileNotFoundError):
    """A dataset file is missing or malformed; the message names the file and the expected layout
    (re-exported as `ovss.data.DatasetLayoutError`)."""


class ImageReadError(DatasetLayoutError):
    """An image or label file is missing, does not decode, or has a mode that cannot be used; the
    message names the file, what was found and what to do."""


def _open(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ImageReadError(f"missing {what} file {path}")
    try:
        im = Image.open(path)
        im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(
            f"cannot read {what} file {path}: it does not decode as an image ({type(e).__name__}: {e}); "
            "is it truncated, or not an image?"
        ) from e
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"cannot read {what} file {path}: {e}") from e
    return im


def exif_orientation(path: str | Path) -> int:
    """The EXIF ``Orientation`` tag of an image file (1 = as stored; 2-8 = mirrored and/or rotated), or 1
    when the file has none or is not readable.

    Example:
        >>> exif_orientation("no-such-file.jpg")
        1
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def describe_orientation(orientation: int) -> str:
    """Words for an EXIF orientation value (``"rotated 90° clockwise"``, ...; ``"as stored"`` for 1)."""
    return _ORIENTATION_WORDS.get(int(orientation), "as stored")


def _upright(im, path: Path, what: str):
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception as e:  # a malformed EXIF block: the pixels are fine, the tag is not
        raise ImageReadError(
            f"cannot apply the EXIF orientation of {what} file {path} ({type(e).__name__}: {e}); "
            "re-save the file without EXIF data"
        ) from e


def _scale16(arr: np.ndarray) -> np.ndarray:
    a = arr.astype(np.uint32)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _to_rgb(im, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("L", "1"):
        grey = np.asarray(im.convert("L"))
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in _SIXTEEN_BIT or (mode == "I" and im.format == "PNG"):
        grey = _scale16(np.asarray(im))
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
        if mode == "RGB":
            return np.asarray(im)
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = np.asarray(im.convert("RGBA"))
        return _over_white(rgba[..., :3], rgba[..., 3])
    if mode in ("CMYK", "YCbCr"):
        return np.asarray(im.convert("RGB"))
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "floating-point"
        raise ImageReadError(
            f"image file {path} is a {kind} image (mode {mode!r}): it has no defined white level, so it "
            "cannot be shown as an 8-bit RGB picture; save it as an 8-bit or 16-bit PNG"
        )
    raise ImageReadError(
        f"image file {path} has colour mode {mode!r}, which is not supported (supported: RGB, grey, "
        "palette, with or without alpha, CMYK, YCbCr, 16-bit grey); convert it to an RGB PNG or JPEG"
    )


def read_image(path: str | Path) -> np.ndarray:
    """An image as the ``(H, W, 3)`` uint8 RGB array a viewer shows (module docstring: EXIF orientation
    applied, colour mode converted, 16-bit data scaled).

    Raises:
        ImageReadError: the file is missing, does not decode, or has an unsupported mode (the message
            names the file and what to do).

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "g.png")
        >>> Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(p)
        >>> read_image(p)[..., 0].tolist()
        [[0, 255]]
    """
    path = Path(path)
    im = _open(path, "image")
    try:
        upright = _upright(im, path, "image")
        arr = _to_rgb(upright, path)
    finally:
        im.close()
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:  # a guard on Pillow's conversions
        raise ImageReadError(f"image file {path} decoded to {arr.dtype} {arr.shape}, not (H, W, 3) uint8")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"image file {path} is empty ({arr.shape[1]}x{arr.shape[0]} pixels)")
    return np.ascontiguousarray(arr)


def read_label(path: str | Path) -> np.ndarray:
    """A label map of class ids as a ``(H, W)`` int64 array, its EXIF orientation (if any) applied.

    PNG (and other Pillow formats): 8-bit ``L``, palette ``P`` (the indices are the ids) or 16-bit;
    ``.tif``/``.tiff``: any single-channel integer TIFF (``tifffile``). Values are never scaled.

    Raises:
        ImageReadError: missing or unreadable file, or a map that is not single-channel integers (an
            RGB colour mask, say; the message says to save class ids instead).
    """
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = _read_tiff_label(path)
    else:
        im = _open(path, "label")
        try:
            if im.mode not in _LABEL_MODES:
                raise ImageReadError(
                    f"label file {path} has image mode {im.mode!r}; expected a single-channel 8-bit (L/P) "
                    "or 16-bit PNG of class ids (a colour-coded mask must first be turned into ids)"
                )
            arr = np.asarray(_upright(im, path, "label"))
        finally:
            im.close()
    if arr.ndim != 2:
        raise ImageReadError(
            f"label file {path} has shape {arr.shape}; expected a single-channel (H, W) map of class ids"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ImageReadError(f"label file {path} holds {arr.dtype} values; expected integer class ids")
    return arr.astype(np.int64)


def pair_mismatch(
    image_path: str | Path, image_hw: tuple[int, int], label_path: str | Path, label_hw: tuple[int, int]
) -> str | None:
    """Why a label map of size ``label_hw`` does not fit its image of (displayed) size ``image_hw``, or
    ``None`` when the sizes agree.

    When the image carries an EXIF rotation and the mask fits the image's *stored* pixels instead, the
    message says so: masks are matched to the image as displayed.
    """
    ih, iw = (int(v) for v in image_hw)
    lh, lw = (int(v) for v in label_hw)
    if (ih, iw) == (lh, lw):
        return None
    msg = f"label {label_path} is {lw}x{lh} but image {image_path} is {iw}x{ih}"
    orientation = exif_orientation(image_path)
    if orientation in (5, 6, 7, 8) and (lh, lw) == (iw, ih):
        msg += (
            f" as displayed (its EXIF orientation {orientation}: {describe_orientation(orientation)}); the "
            f"label fits the image's stored, un-rotated pixels ({ih}x{iw}). Labels are matched to the "
            "image as a viewer shows it: rotate the label the same way, or save the image upright "
            "without the orientation tag"
        )
    return msg


def _read_tiff_label(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ImageReadError(f"missing label file {path}")
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            arr = np.asarray(tif.asarray())
            tag = tif.pages[0].tags.get("Orientation")  # type: ignore[union-attr]
            orientation = int(tag.value) if tag is not None else 1
    except Exception as e:  # tifffile raises many types for damaged files
        raise ImageReadError(f"cannot read label file {path}: {type(e).__name__}: {e}") from e
    return _orient(arr, orientation)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation (1-8) to an ``(H, W, ...)`` array, as a viewer does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(arr)) if op is not None else arr
