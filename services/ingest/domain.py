"""Ingest rules with no I/O: global keys, image checks and thumbnails, object keys, box rules.

Box rule (docs/ingest.md, "Box rules"): boxes are stored as absolute pixel ``xywh``. A box is rejected
when a coordinate or the confidence is not finite, when its width or height is negative (an inverted
``xyxy`` box) or zero, when its confidence is outside [0, 1], or when it lies entirely outside its
image. A box that overlaps the image but crosses its edge is clipped to the image (the import result
counts them as ``clipped``). A missing confidence is 1.0.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia

MAX_KEY_LEN = 1024
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


# ---------------------------------------------------------------- keys


def check_global_key(key: str, where: str = "") -> str:
    """A global key is a relative, normalized path-like name: no traversal, no control characters."""
    prefix = f"{where}: " if where else ""
    if not key or not key.strip():
        raise InvalidInput(f"{prefix}empty global key", context={"global_key": key})
    if len(key) > MAX_KEY_LEN:
        raise InvalidInput(
            f"{prefix}global key longer than {MAX_KEY_LEN} characters", context={"global_key": key[:80]}
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput(
            f"{prefix}global key {key!r} contains control characters", context={"global_key": key}
        )
    parts = key.replace("\\", "/").split("/")
    if key.startswith(("/", "\\")) or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise InvalidInput(f"{prefix}global key {key!r} is an absolute path", context={"global_key": key})
    if any(p in {"..", "."} for p in parts) or "\\" in key:
        raise InvalidInput(
            f"{prefix}global key {key!r} contains path traversal ('..', '.', or a backslash)",
            context={"global_key": key},
        )
    return key


def key_stem(key: str) -> str:
    """``a/b/c.jpg`` -> ``a/b/c``: how YOLO label files name their image."""
    head, _, tail = key.rpartition("/")
    dot = tail.rfind(".")
    stem = tail[:dot] if dot > 0 else tail
    return f"{head}/{stem}" if head else stem


def basename_stem(key: str) -> str:
    return key_stem(key).rpartition("/")[2]


def object_key(workspace_id: int, sha256: str) -> str:
    """Content-addressed key of the original bytes (the same bytes are stored once per workspace)."""
    return f"ws/{workspace_id}/images/{sha256[:2]}/{sha256}"


def thumbnail_key(workspace_id: int, sha256: str, px: int) -> str:
    return f"ws/{workspace_id}/thumbs/{px}/{sha256[:2]}/{sha256}.webp"


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    thumbnail_px: int = 256
    thumbnail_quality: int = 80


@dataclass(frozen=True)
class CheckedImage:
    """A decoded, verified image ready to store."""

    name: str
    data: bytes
    sha256: str
    width: int
    height: int
    media_type: str
    thumbnail: bytes


def check_image(name: str, data: bytes, limits: ImageLimits) -> CheckedImage:
    """Decode and verify ``data`` fully, make its WebP thumbnail. Raises a 4xx error naming ``name``.

    Checks, in order: empty file, byte limit, recognizable image format, pixel limit (read from the
    header, before decoding: decompression-bomb guard), structural ``verify()``, full decode (catches
    truncated files).
    """
    if not data:
        raise InvalidInput(f"{name}: empty file (0 bytes)", context={"file": name, "reason": "empty"})
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"{name}: {len(data)} bytes exceeds the {limits.max_bytes}-byte image limit",
            context={"file": name, "reason": "too_many_bytes"},
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            width, height = probe.size
            if width * height > limits.max_pixels:
                raise PayloadTooLarge(
                    f"{name}: {width}x{height} pixels exceeds the {limits.max_pixels}-pixel limit",
                    context={"file": name, "reason": "too_many_pixels"},
                )
            probe.verify()
            img = Image.open(io.BytesIO(data))
            if fmt == "JPEG":
                # DCT-domain downscale: decodes every byte of the file at 1/2..1/8 scale.
                img.draft("RGB", (limits.thumbnail_px, limits.thumbnail_px))
            img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise UnsupportedMedia(
                f"{name}: not an image (unrecognized bytes)", context={"file": name, "reason": "not_an_image"}
            ) from None
        raise PayloadTooLarge(
            f"{name}: image exceeds the pixel limit ({exc})",
            context={"file": name, "reason": "too_many_pixels"},
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(
            f"{name}: corrupt or truncated image ({exc})", context={"file": name, "reason": "corrupt"}
        ) from None
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedMedia(
            f"{name}: image format {fmt or 'unknown'} is not accepted",
            context={"file": name, "reason": "format"},
        )
    if width <= 0 or height <= 0:
        raise InvalidInput(f"{name}: image has zero size", context={"file": name, "reason": "zero_size"})
    media_type = Image.MIME.get(fmt, "application/octet-stream")
    if fmt == "MPO":
        media_type = "image/jpeg"
    thumb = _thumbnail(img, limits)
    return CheckedImage(
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        media_type=media_type,
        thumbnail=thumb,
    )


def _thumbnail(img: Image.Image, limits: ImageLimits) -> bytes:
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    img.thumbnail((limits.thumbnail_px, limits.thumbnail_px), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    img.save(out, "WEBP", quality=limits.thumbnail_quality, method=0)
    return out.getvalue()


# ---------------------------------------------------------------- boxes


@dataclass(frozen=True)
class BoxCheck:
    """Result of ``check_boxes``: clipped boxes and how many were clipped."""

    xywh: np.ndarray  # (n, 4) float64, absolute pixels, inside the image
    clipped: int


def check_boxes(
    xywh: np.ndarray,
    conf: np.ndarray | None,
    width: np.ndarray,
    height: np.ndarray,
    where: Callable[[int], str],
) -> BoxCheck:
    """Apply the box rule. Shapes: ``xywh`` (n, 4); ``conf``, ``width``, ``height`` (n,).

    Raises InvalidInput naming the first bad box (``where(i)``) and the reason.
    """
    n = len(xywh)
    if n == 0:
        return BoxCheck(xywh=np.zeros((0, 4)), clipped=0)
    x, y, w, h = xywh[:, 0], xywh[:, 1], xywh[:, 2], xywh[:, 3]
    checks: list[tuple[np.ndarray, str]] = [
        (~np.isfinite(xywh).all(axis=1), "a coordinate is NaN or infinite"),
        ((w < 0) | (h < 0), "negative width/height (inverted box)"),
        ((w == 0) | (h == 0), "zero width/height"),
    ]
    if conf is not None:
        checks.append((~np.isfinite(conf) | (conf < 0) | (conf > 1), "confidence is not a number in [0, 1]"))
    x2, y2 = x + w, y + h
    outside = (x2 <= 0) | (y2 <= 0) | (x >= width) | (y >= height)
    checks.append(
        (outside, "box lies entirely outside the image (rejected; boxes crossing an edge are clipped)")
    )
    for mask, reason in checks:
        bad = np.flatnonzero(mask)
        if bad.size:
            i = int(bad[0])
            box = [float(v) for v in xywh[i]]
            detail = f"{where(i)}: {reason}: box xywh={box}"
            if reason.startswith("box lies"):
                detail += f" in a {int(width[i])}x{int(height[i])} image"
            if conf is not None and reason.startswith("confidence"):
                detail += f", confidence={float(conf[i])}"
            raise InvalidInput(detail, context={"where": where(i), "reason": reason, "count": int(bad.size)})
    cx1 = np.clip(x, 0, width)
    cy1 = np.clip(y, 0, height)
    cx2 = np.clip(x2, 0, width)
    cy2 = np.clip(y2, 0, height)
    changed = (cx1 != x) | (cy1 != y) | (cx2 != x2) | (cy2 != y2)
    if not changed.any():
        return BoxCheck(xywh=xywh, clipped=0)
    out = np.stack([cx1, cy1, cx2 - cx1, cy2 - cy1], axis=1)
    # Only clipped boxes take the recomputed values: the others stay bit-for-bit as given.
    out = np.where(changed[:, None], out, xywh)
    return BoxCheck(xywh=out, clipped=int(changed.sum()))


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
