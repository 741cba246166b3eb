"""ovss.images: images read as a viewer shows them (EXIF orientation, colour modes, 16-bit scaling), label
maps aligned with them; every hostile file built here, tiny, in a temporary folder."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from ovss.data import DatasetLayoutError
from ovss.images import ImageReadError, exif_orientation, pair_mismatch, read_image, read_label
from PIL import Image

# What a viewer shows for each EXIF orientation, from the EXIF specification's wording (not from Pillow):
# 2 mirror horizontal, 3 rotate 180, 4 mirror vertical, 5 mirror horizontal + rotate 270 CW,
# 6 rotate 90 CW, 7 mirror horizontal + rotate 90 CW, 8 rotate 270 CW.
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.rot90(a[:, ::-1], 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a[:, ::-1], -1),
    8: lambda a: np.rot90(a, 1),
}


def _exif(orientation: int):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _pattern(h: int = 5, w: int = 7) -> np.ndarray:
    """An RGB image whose every pixel is distinct, so any wrong transform shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y * 40, x * 30, (y * w + x) * 5], -1).astype(np.uint8)


def _png16(path, arr) -> None:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): grey (H, W), grey+alpha (H, W, 2),
    RGB (H, W, 3) or RGBA (H, W, 4)."""
    arr = np.asarray(arr, dtype=">u2")
    colour = 0 if arr.ndim == 2 else {2: 4, 3: 2, 4: 6}[arr.shape[2]]
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _scaled(v) -> np.ndarray:
    """The float64 reference of the 16 → 8-bit rule: round(255 v / 65535)."""
    return np.floor(np.asarray(v, dtype=np.float64) * 255 / 65535 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(tmp_path, orientation):
    a = _pattern()
    p = tmp_path / "o.png"  # lossless, so the comparison is exact
    Image.fromarray(a).save(p, exif=_exif(orientation))
    assert exif_orientation(p) == orientation
    np.testing.assert_array_equal(read_image(p), DISPLAYED[orientation](a))
    labels = tmp_path / "l.png"
    Image.fromarray(a[..., 2]).save(labels, exif=_exif(orientation))  # a mask with a tag is turned too
    np.testing.assert_array_equal(read_label(labels), DISPLAYED[orientation](a[..., 2]).astype(np.int64))


def test_rotated_phone_jpeg_is_read_upright(tmp_path):
    a = _pattern(20, 30)
    p = tmp_path / "phone.jpg"
    Image.fromarray(a).save(p, exif=_exif(6), quality=95)
    stored = np.asarray(Image.open(p).convert("RGB"))  # the decoded, un-rotated pixels
    got = read_image(p)
    assert got.shape == (30, 20, 3)  # not (20, 30, 3): the photo lying on its side
    np.testing.assert_array_equal(got, np.rot90(stored, -1))


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    v = np.array([[0, 1, 128, 257], [32768, 40000, 65534, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(v).save(p)  # Pillow writes an I;16 PNG
    got = read_image(p)
    np.testing.assert_array_equal(
        got[..., 0], _scaled(v)
    )  # scaled: a clip would turn everything >= 255 white
    np.testing.assert_array_equal(got[..., 0], got[..., 2])
    hand = tmp_path / "g16_hand.png"
    _png16(hand, v)
    np.testing.assert_array_equal(read_image(hand)[..., 0], _scaled(v))


def test_sixteen_bit_colour_and_alpha_pngs(tmp_path):
    rgb = np.array([[[65535, 32768, 300], [1000, 2000, 60000]]], dtype=np.uint16)
    _png16(tmp_path / "rgb16.png", rgb)
    got = read_image(tmp_path / "rgb16.png").astype(int)
    # Pillow keeps the high byte: the same scaling up to one grey level
    assert np.abs(got - _scaled(rgb).astype(int)).max() <= 1
    la = np.array([[[40000, 65535], [40000, 0]]], dtype=np.uint16)
    _png16(tmp_path / "la16.png", la)
    got = read_image(tmp_path / "la16.png")
    assert abs(int(got[0, 0, 0]) - int(_scaled(40000))) <= 1  # opaque: the grey value
    np.testing.assert_array_equal(got[0, 1], [255, 255, 255])  # transparent: the white page


def test_palette_grey_alpha_cmyk_and_bilevel(tmp_path):
    idx = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([10, 20, 30, 200, 100, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(
        read_image(tmp_path / "p.png"),
        np.array([[[10, 20, 30], [200, 100, 0]], [[0, 0, 255], [200, 100, 0]]]),
    )
    pal.save(tmp_path / "pt.png", transparency=1)  # palette entry 1 transparent
    got = read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(got[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(got[0, 0], [10, 20, 30])

    grey = np.array([[0, 77, 255]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_image(tmp_path / "l.png"), np.repeat(grey[..., None], 3, 2))

    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, :3] = [200, 100, 50]
    rgba[0, :, 3] = [255, 128, 0]
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    a = np.array([255, 128, 0], dtype=np.float64)[:, None] / 255
    expected = np.floor(np.array([200, 100, 50]) * a + 255 * (1 - a) + 0.5)  # over a white page
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png")[0], expected)

    la = np.stack([grey[0], np.array([255, 0, 255], np.uint8)], -1)[None]
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[0, :, 0], [0, 255, 255])

    cmyk = Image.new("CMYK", (2, 1), (255, 0, 0, 0))  # pure cyan ink
    cmyk.save(tmp_path / "c.jpg", quality=100)
    got = read_image(tmp_path / "c.jpg")
    assert got.shape == (1, 2, 3) and got[0, 0, 0] < 10 and got[0, 0, 1] > 245 and got[0, 0, 2] > 245

    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0, :, 0], [0, 255])


def test_what_cannot_be_shown_is_refused(tmp_path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "i32.tif")
    with pytest.raises(ImageReadError, match="32-bit integer"):
        read_image(tmp_path / "i32.tif")
    Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match="floating-point"):
        read_image(tmp_path / "f.tif")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"text\.jpg.*does not decode"):
        read_image(tmp_path / "text.jpg")
    Image.fromarray(_pattern(40, 40)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="missing image"):
        read_image(tmp_path / "nope.png")
    assert issubclass(ImageReadError, DatasetLayoutError)  # the callers' existing except clauses hold


def test_label_maps_keep_their_ids(tmp_path):
    ids = np.array([[0, 3], [700, 65534]], dtype=np.uint16)
    Image.fromarray(ids).save(tmp_path / "l16.png")
    np.testing.assert_array_equal(read_label(tmp_path / "l16.png"), ids.astype(np.int64))  # never scaled
    pal = Image.fromarray(np.array([[0, 1], [2, 255]], dtype=np.uint8), mode="P")
    pal.putpalette([255, 0, 0] * 256)
    pal.save(tmp_path / "p.png")  # palette indices are the ids, whatever the colours
    np.testing.assert_array_equal(read_label(tmp_path / "p.png"), [[0, 1], [2, 255]])
    Image.fromarray(_pattern()).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match="colour-coded mask"):
        read_label(tmp_path / "colour.png")
    import tifffile

    tifffile.imwrite(tmp_path / "l.tif", ids)
    np.testing.assert_array_equal(read_label(tmp_path / "l.tif"), ids.astype(np.int64))


def test_a_mask_that_fits_only_the_stored_pixels_is_explained(tmp_path):
    a = _pattern(20, 30)
    Image.fromarray(a).save(tmp_path / "x.jpg", exif=_exif(6))
    msg = pair_mismatch(
        tmp_path / "x.jpg", read_image(tmp_path / "x.jpg").shape[:2], tmp_path / "x.png", (20, 30)
    )
    assert msg is not None and "EXIF orientation 6" in msg and "rotated 90° clockwise" in msg
    assert "rotate the label" in msg
    assert pair_mismatch(tmp_path / "x.jpg", (30, 20), tmp_path / "x.png", (30, 20)) is None
