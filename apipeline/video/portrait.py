"""A still portrait animated from mouth shapes and blinks, with no model weights.

:class:`PortraitAnimator` renders one picture per :class:`~apipeline.video.mouth.MouthShape`:

* **the jaw opens**: everything below the lip line, down to the chin, is moved down by the opening with
  a smooth fall-off (a displacement map applied with ``cv2.remap`` on the lower face only, so a frame
  costs well under a millisecond at 512×512), and the gap is filled with a feathered dark ellipse (the
  mouth's inside);
* **the lips spread or round**: the mouth region is stretched or narrowed horizontally by the width;
* **the eyes blink**: each eyelid is drawn by stretching the skin just above the eye down over it,
  following :class:`BlinkSchedule` (seeded, so renders are reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from apipeline.video.face import Box, FaceLayout


class BlinkSchedule:
    """Blinks every 2.5–5.5 s (uniform, seeded), each 150 ms with a triangular closing profile."""

    def __init__(self, fps: float, seed: int = 0, duration_s: float = 0.15) -> None:
        self.fps = fps
        self._rng = np.random.default_rng(seed)
        self._len = max(2, round(duration_s * fps))
        self._next_start = round(self._rng.uniform(1.0, 3.0) * fps)

    def closure(self, index: int) -> float:
        """How closed the eyes are (0 open .. 1 shut) at video frame ``index`` (call in order)."""
        while index >= self._next_start + self._len:
            self._next_start += self._len + round(self._rng.uniform(2.5, 5.5) * self.fps)
        t = index - self._next_start
        if t < 0:
            return 0.0
        half = (self._len - 1) / 2
        return float(max(0.0, 1.0 - abs(t - half) / (half + 0.5)))


@dataclass(frozen=True, slots=True)
class _Region:
    x0: int
    y0: int
    x1: int
    y1: int


class PortraitAnimator:
    """Renders the portrait with the mouth opened/spread and the eyes closed by given amounts."""

    def __init__(self, image: NDArray[np.uint8], layout: FaceLayout) -> None:
        self.image = np.ascontiguousarray(image)
        self.layout = layout
        h, w = image.shape[:2]
        mx, my, mw, mh = layout.mouth
        _, fy, fw, fh = layout.face
        self._cx = mx + mw / 2.0
        self._cy = my + mh / 2.0  # the lip line
        self._mw = float(mw)
        self._max_open = 0.12 * fh
        chin = min(h - 1, fy + fh + round(0.12 * fh))
        self._chin = float(max(chin, self._cy + mh))
        self._roi = _Region(
            max(0, round(self._cx - 0.6 * fw)), max(0, round(self._cy - 0.5 * mh)),
            min(w, round(self._cx + 0.6 * fw)), min(h, round(self._chin + 0.05 * fh)),
        )  # fmt: skip
        r = self._roi
        ys, xs = np.mgrid[r.y0 : r.y1, r.x0 : r.x1].astype(np.float32)
        self._xs, self._ys = xs, ys
        # the jaw: full movement across the lower face, cosine fall-off towards the cheeks
        u = np.abs(xs - self._cx) / (0.3 * fw)
        self._jaw = np.where(u <= 1.0, 1.0, 0.5 + 0.5 * np.cos(np.pi * np.clip(u - 1.0, 0.0, 1.0)))
        self._jaw = self._jaw.astype(np.float32)
        # the lips: the mouth's own width, for rounding and spreading
        v = np.abs(xs - self._cx) / (0.5 * mw)
        dv = np.abs(ys - self._cy) / (0.8 * mh)
        self._lips = ((0.5 + 0.5 * np.cos(np.pi * np.clip(v / 1.6, 0, 1))) * np.clip(1 - dv, 0, 1)).astype(
            np.float32
        )
        # below the lips the shift fades out towards the chin
        t = np.clip((ys - self._cy) / max(1.0, self._chin - self._cy), 0.0, 1.0)
        self._fade = (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)
        self._eyes = [self._eye_region(e, w, h) for e in layout.eyes]

    @staticmethod
    def _eye_region(box: Box, w: int, h: int) -> tuple[int, int, int, int, int]:
        x, y, bw, bh = box
        top = max(0, y + round(0.2 * bh))
        lid_src = max(0, top - max(2, bh // 3))
        return max(0, x), min(w, x + bw), top, min(h, y + round(0.8 * bh)), lid_src

    def render(self, opening: float, width: float = 0.5, blink: float = 0.0) -> NDArray[np.uint8]:
        """The picture with the mouth ``opening`` (0..1), ``width`` (0 round .. 1 spread) and eyes
        ``blink`` (0 open .. 1 shut)."""
        import cv2

        out = self.image.copy()
        r = self._roi
        d = float(np.clip(opening, 0.0, 1.0)) * self._max_open
        k = 1.0 + 0.3 * (float(np.clip(width, 0.0, 1.0)) - 0.5)  # lips: 0.85 round .. 1.15 spread
        if d > 0.25 or abs(k - 1.0) > 0.01:
            # the lower lip and jaw move down by d below the lip line, the band just under the line
            # stretching over the opening (which the mouth's inside then covers); nothing above moves
            below = np.clip(self._ys - self._cy, 0.0, d)
            dy = self._jaw * below * self._fade
            map_x = self._cx + (self._xs - self._cx) / (1.0 + (k - 1.0) * self._lips)
            map_y = self._ys - dy
            roi = cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            if d > 0.75:  # the inside of the mouth, between the lips
                inner = np.zeros(roi.shape[:2], np.float32)
                center = (round(self._cx - r.x0), round(self._cy + 0.5 * d - r.y0))
                axes = (max(1, round(0.3 * self._mw * k)), max(1, round(0.45 * d)))
                cv2.ellipse(inner, center, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
                blur = max(3, round(0.25 * d) | 1)
                alpha = cv2.GaussianBlur(inner, (blur, blur), 0)[:, :, None] * 0.8
                dark = np.array([70, 25, 28], np.float32)
                roi = (roi.astype(np.float32) * (1.0 - alpha) + dark * alpha).astype(np.uint8)
            out[r.y0 : r.y1, r.x0 : r.x1] = roi
        c = float(np.clip(blink, 0.0, 1.0))
        if c > 0.02:
            for x0, x1, top, bottom, src in self._eyes:
                lid = round(c * (bottom - top))
                if lid < 1 or top <= src:
                    continue
                skin = self.image[src:top, x0:x1]
                cover = cv2.resize(skin, (x1 - x0, lid), interpolation=cv2.INTER_LINEAR)
                shade = np.linspace(1.0, 0.75, lid, dtype=np.float32)[:, None, None]
                across = np.clip(np.sin(np.linspace(0.0, np.pi, x1 - x0, dtype=np.float32)), 0.0, 1.0) ** 0.5
                alpha = across[None, :, None]
                under = out[top : top + lid, x0:x1].astype(np.float32)
                lidded = cover.astype(np.float32) * shade * alpha + under * (1.0 - alpha)
                out[top : top + lid, x0:x1] = lidded.astype(np.uint8)
        return out
