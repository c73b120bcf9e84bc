"""Ingest rules without I/O: global keys, image checks, the box rule."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.ingest.domain import ImageLimits, check_boxes, check_global_key, check_image, key_stem
from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia

LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=1_000_000, thumbnail_px=64)


def _img(w: int, h: int, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (w, h)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("key", ["a.jpg", "dir/sub/a b.jpg", "üñí/ç.png", "a..b.jpg"])
def test_good_keys(key: str) -> None:
    assert check_global_key(key) == key


@pytest.mark.parametrize(
    "key", ["", " ", "../a", "a/../b", "/etc/passwd", "C:/x", "a\\b", "./a", "a\x00b", "x" * 1025]
)
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidInput):
        check_global_key(key, "f.jpg")


def test_key_stem() -> None:
    assert key_stem("a/b/c.jpg") == "a/b/c" and key_stem("c") == "c" and key_stem(".hidden") == ".hidden"


def test_check_image_reads_size_and_makes_a_webp_thumbnail() -> None:
    data = _img(320, 200)
    img = check_image("x.jpg", data, LIMITS)
    assert (img.width, img.height, img.media_type) == (320, 200, "image/jpeg")
    thumb = Image.open(io.BytesIO(img.thumbnail))
    assert thumb.format == "WEBP" and thumb.size == (64, 40)


def test_check_image_handles_palette_and_alpha() -> None:
    for mode, fmt in (("P", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG")):
        assert check_image("x", _img(10, 10, fmt, mode), LIMITS).width == 10


def test_check_image_rejections() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        check_image("e.jpg", b"", LIMITS)
    with pytest.raises(UnsupportedMedia, match="not an image"):
        check_image("t.jpg", b"plain text", LIMITS)
    with pytest.raises(PayloadTooLarge, match="pixel"):
        check_image("big.png", _img(1001, 1000, "PNG"), LIMITS)
    with pytest.raises(PayloadTooLarge, match="byte"):
        check_image("heavy.png", b"\x89PNG" + b"\0" * 1_000_001, LIMITS)
    data = _img(300, 300, "PNG", "RGB")
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        check_image("cut.png", data[: len(data) - 20], LIMITS)


def _where(i: int) -> str:
    return f"obj {i}"


def test_box_rule_rejects_and_clips() -> None:
    w = np.array([100.0, 100.0])
    h = np.array([50.0, 50.0])
    ok = check_boxes(np.array([[0, 0, 10, 10], [95, 45, 10, 10]], dtype=float), None, w, h, _where)
    assert ok.clipped == 1
    assert ok.xywh.tolist() == [[0, 0, 10, 10], [95, 45, 5, 5]]
    cases = [
        ([[np.nan, 0, 1, 1]], None, "NaN"),
        ([[0, 0, -1, 1]], None, "negative"),
        ([[0, 0, 0, 1]], None, "zero"),
        ([[200, 0, 5, 5]], None, "entirely outside"),
        ([[-10, -10, 10, 10]], None, "entirely outside"),
        ([[0, 0, 1, 1]], np.array([1.01]), "confidence"),
        ([[0, 0, 1, 1]], np.array([np.nan]), "confidence"),
    ]
    for boxes, conf, reason in cases:
        with pytest.raises(InvalidInput, match=reason) as err:
            check_boxes(np.array(boxes, dtype=float), conf, w[:1], h[:1], _where)
        assert err.value.detail.startswith("obj 0: ")


def test_box_rule_names_the_first_bad_box() -> None:
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, -3, 1]], dtype=float)
    with pytest.raises(InvalidInput, match="obj 2: negative"):
        check_boxes(boxes, None, np.full(3, 10.0), np.full(3, 10.0), _where)
