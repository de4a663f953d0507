"""Still images in: read, checked against size limits, converted to RGB ``uint8``.

Limits keep one session's memory and per-frame cost bounded: a 10,000×10,000 portrait would be 300 MB
per copy and could never be animated at 25 frames/s, so it is refused before anything is allocated
beyond the file's header.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ImageError

MIN_SIDE = 48  # below this no detector finds eyes or a mouth
MAX_SIDE = 4096
MAX_PIXELS = 4096 * 4096


def check_size(width: int, height: int, *, what: str = "image") -> None:
    """Refuse images outside ``MIN_SIDE..MAX_SIDE`` on either side."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"{what} is {width}x{height}: too small, need at least {MIN_SIDE}x{MIN_SIDE} pixels")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(f"{what} is {width}x{height}: too large, at most {MAX_SIDE}x{MAX_SIDE} pixels")


def to_rgb(image: NDArray[Any], *, what: str = "image") -> NDArray[np.uint8]:
    """An ``(h, w, 3)`` RGB ``uint8`` copy of a gray, gray+alpha, RGB or RGBA array (``uint8``,
    ``uint16`` or float in [0, 1]); alpha is composited over white."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{what}: expected (h, w) or (h, w, 1..4) pixels, got shape {img.shape}")
    check_size(img.shape[1], img.shape[0], what=what)
    if img.dtype == np.uint8:
        f = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        f = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise ImageError(f"{what}: pixels contain NaN or infinity")
        f = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise ImageError(f"{what}: unsupported pixel type {img.dtype}")
    channels = f.shape[2]
    if channels in (2, 4):
        alpha = f[:, :, -1:]
        f = f[:, :, :-1] * alpha + (1.0 - alpha)
    if f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.ascontiguousarray((f * 255.0 + 0.5).astype(np.uint8))


def read_image(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """Read an image file (PNG, JPEG, BMP, TIFF, WebP) as RGB ``uint8``.

    The header is read first, so an oversized image is refused without decoding its pixels.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image {str(p)!r} does not exist")
    data = np.fromfile(p, dtype=np.uint8)
    _check_header(data, p)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"image {str(p)!r} is not an image OpenCV can decode")
    if img.ndim == 3 and img.shape[2] >= 3:  # OpenCV's order is BGR(A)
        img = img[:, :, [2, 1, 0, *range(3, img.shape[2])]]
    return to_rgb(img, what=f"image {str(p)!r}")


def _check_header(data: NDArray[np.uint8], path: Path) -> None:
    """Check the size a PNG/JPEG header declares before decoding (others are checked after)."""
    raw = data[:65536].tobytes()
    size = None
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        size = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    elif raw[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(raw):
            if raw[i] != 0xFF:
                break
            marker, length = raw[i + 1], int.from_bytes(raw[i + 2 : i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2):
                size = int.from_bytes(raw[i + 7 : i + 9], "big"), int.from_bytes(raw[i + 5 : i + 7], "big")
                break
            i += 2 + length
    if size is not None:
        check_size(*size, what=f"image {str(path)!r}")
