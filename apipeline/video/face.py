"""Where the face, the eyes and the mouth are in a portrait.

:func:`locate_face` uses OpenCV's Haar cascades, whose trained models ship inside the ``opencv-python``
wheel (``cv2.data.haarcascades``: frontal face, eyes, smile), so nothing is downloaded. The largest
frontal face wins; eyes are searched in its upper half and the mouth in its lower third; where a cascade
finds nothing, the feature is placed by the proportions of an average frontal face (eyes at 38 % of
the face's height, the mouth at 76 %) and :attr:`FaceLayout.source` says so.

A landmark file (JSON: ``{"face": [x, y, w, h], "eyes": [[x, y, w, h], ...], "mouth": [x, y, w, h]}``)
replaces detection for portraits the cascades miss (drawings, profiles, masks).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import FaceNotFoundError, ImageError

Box = tuple[int, int, int, int]  # x, y, width, height in pixels
Fallback = Literal["error", "center"]


@dataclass(frozen=True, slots=True)
class FaceLayout:
    """Boxes ``(x, y, w, h)`` of the face, the eyes (zero to two) and the mouth."""

    face: Box
    mouth: Box
    eyes: tuple[Box, ...] = ()
    source: dict[str, str] = field(default_factory=dict)

    def scaled(self, sx: float, sy: float) -> FaceLayout:
        """The layout for the image resized by ``sx`` horizontally and ``sy`` vertically."""

        def s(b: Box) -> Box:
            return (round(b[0] * sx), round(b[1] * sy), max(1, round(b[2] * sx)), max(1, round(b[3] * sy)))

        return FaceLayout(s(self.face), s(self.mouth), tuple(s(e) for e in self.eyes), dict(self.source))


def _cascade(name: str) -> Any:
    import cv2

    path = os.path.join(cv2.data.haarcascades, name)  # type: ignore[attr-defined]
    clf = cv2.CascadeClassifier(path)
    if clf.empty():
        raise ImageError(f"OpenCV's cascade {name} did not load from {path}")
    return clf


def _largest(boxes: Any) -> Box | None:
    if boxes is None or len(boxes) == 0:
        return None
    b = max(boxes, key=lambda r: int(r[2]) * int(r[3]))
    return (int(b[0]), int(b[1]), int(b[2]), int(b[3]))


def _default_eyes(face: Box) -> tuple[Box, ...]:
    x, y, w, h = face
    ew, eh = round(0.22 * w), round(0.14 * h)
    cy = y + round(0.38 * h) - eh // 2
    return ((x + round(0.30 * w) - ew // 2, cy, ew, eh), (x + round(0.70 * w) - ew // 2, cy, ew, eh))


def _default_mouth(face: Box) -> Box:
    x, y, w, h = face
    mw, mh = round(0.40 * w), round(0.14 * h)
    return (x + (w - mw) // 2, y + round(0.76 * h) - mh // 2, mw, mh)


def locate_face(image: NDArray[np.uint8], *, fallback: Fallback = "error") -> FaceLayout:
    """Find the face, eyes and mouth in an RGB ``uint8`` image.

    Args:
        image: ``(h, w, 3)`` RGB pixels.
        fallback: ``"error"`` raises :class:`FaceNotFoundError` when no face is found; ``"center"``
            assumes a frontal face filling the middle 60 % of the picture (documented fallback for
            drawings and cropped faces).
    """
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    h, w = gray.shape
    min_face = max(24, min(h, w) // 8)
    face = _largest(
        _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
            gray, 1.1, 5, 0, (min_face, min_face)
        )
    )
    source = {"face": "haar"}
    if face is None:
        if fallback != "center":
            raise FaceNotFoundError(
                f"no frontal face found in the {w}x{h} image; give a landmark file, or use the "
                "'center' fallback to animate the middle of the picture"
            )
        fw, fh = round(0.6 * w), round(0.6 * h)
        face = ((w - fw) // 2, (h - fh) // 2, fw, fh)
        source["face"] = "center"
    fx, fy, fw, fh = face
    upper = gray[fy : fy + fh // 2, fx : fx + fw]
    eye_min = max(8, fw // 10)
    found = _cascade("haarcascade_eye.xml").detectMultiScale(upper, 1.1, 5, 0, (eye_min, eye_min))
    eyes = sorted(((fx + int(e[0]), fy + int(e[1]), int(e[2]), int(e[3])) for e in found), key=lambda e: e[0])
    if len(eyes) >= 2:
        eyes = [min(eyes, key=lambda e: e[0]), max(eyes, key=lambda e: e[0])]
        source["eyes"] = "haar"
    else:
        eyes = list(_default_eyes(face))
        source["eyes"] = "proportions"
    top = fy + round(0.62 * fh)
    lower = gray[top : fy + fh, fx : fx + fw]
    mouth_min = (max(12, fw // 5), max(6, fh // 12))
    m = _largest(_cascade("haarcascade_smile.xml").detectMultiScale(lower, 1.3, 12, 0, mouth_min))
    if m is not None and m[2] <= 0.7 * fw:
        mouth = (fx + m[0], top + m[1], m[2], m[3])
        source["mouth"] = "haar"
    else:
        mouth = _default_mouth(face)
        source["mouth"] = "proportions"
    return FaceLayout(face, mouth, tuple(eyes), source)


def load_landmarks(path: str | os.PathLike[str], width: int, height: int) -> FaceLayout:
    """Read a landmark file (JSON boxes, see the module docstring) and check it fits the image."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"landmark file {str(p)!r} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict) or "face" not in data:
        raise ImageError(f"landmark file {str(p)!r}: expected an object with a 'face' box")

    def box(value: Any, what: str) -> Box:
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise ImageError(f"landmark file {str(p)!r}: {what} must be [x, y, width, height], got {value!r}")
        x, y, w, h = (round(v) for v in value)
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise ImageError(
                f"landmark file {str(p)!r}: {what} {value} lies outside the {width}x{height} image"
            )
        return (x, y, w, h)

    face = box(data["face"], "face")
    eyes = tuple(box(e, f"eyes[{i}]") for i, e in enumerate(data.get("eyes", []))) or _default_eyes(face)
    mouth = box(data["mouth"], "mouth") if "mouth" in data else _default_mouth(face)
    return FaceLayout(face, mouth, eyes, {"face": "file", "eyes": "file", "mouth": "file"})
