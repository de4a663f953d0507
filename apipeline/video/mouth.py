"""Audio → mouth: how open and how wide the mouth is for each video frame, streamed.

Pure and sample-rate independent. For video frame ``k`` (``fps`` per second) :class:`MouthDriver` looks
at the audio of that frame's period and half a period before it:

* **opening** from loudness, linear in amplitude: the frame's RMS between a gate (twice the noise
  floor, the 10th percentile of the last 3 s) and the recent peak (their 95th percentile), so quiet
  recordings open the mouth as wide as loud ones and room noise keeps it shut; then smoothed with a
  fast attack and a slower release, as jaws move. Linear rather than in dB because the jaw follows
  the amplitude envelope: in dB every loud frame saturates and the mouth stops moving exactly when
  speech is loudest;
* **width** from the spectrum's balance: energy between 1.5 and 4 kHz against 200 Hz..1 kHz. Front
  vowels and sibilants (``ee``, ``s``) are bright and spread the lips; back rounded vowels (``oo``,
  ``o``) are dark and round them.

It emits a frame only once all of that frame's samples have arrived: the algorithmic latency is one
frame period.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import AudioFormatError

_WINDOW_S = 3.0


@dataclass(frozen=True, slots=True)
class MouthShape:
    """The mouth for one video frame: ``opening`` and ``width`` in 0..1, ``level_db`` the frame's RMS."""

    index: int
    opening: float
    width: float
    level_db: float


class MouthDriver:
    """Turns a mono audio stream into one :class:`MouthShape` per video frame.

    Args:
        sample_rate: the audio's rate (8 kHz and up).
        fps: video frames per second.
    """

    def __init__(self, sample_rate: int, fps: float = 25.0) -> None:
        if sample_rate < 8000:
            raise AudioFormatError(f"talking head: audio at {sample_rate} Hz, need at least 8000 Hz")
        if not 1.0 <= fps <= 60.0:
            raise AudioFormatError(f"talking head: fps must be within 1..60, got {fps}")
        self.sample_rate = sample_rate
        self.fps = fps
        self._buf = np.zeros(0, dtype=np.float32)
        self._consumed = 0  # samples before _buf[0]
        self._next = 0  # next frame index
        self._floor: deque[float] = deque(maxlen=max(1, round(_WINDOW_S * fps)))
        self._opening = 0.0
        self._width = 0.5
        self._attack, self._release = 0.8, 0.5
        span = self._frame_end(1) - self._frame_end(0)
        self._nfft = 1 << max(8, int(np.ceil(np.log2(span * 1.5))))
        freqs = np.fft.rfftfreq(self._nfft, 1.0 / sample_rate)
        self._low = (freqs >= 200) & (freqs < 1000)
        self._high = (freqs >= 1500) & (freqs < min(4000, sample_rate / 2))

    def _frame_end(self, k: int) -> int:
        return round((k + 1) * self.sample_rate / self.fps)

    @property
    def frames_emitted(self) -> int:
        return self._next

    def push(self, audio: NDArray[np.floating]) -> list[MouthShape]:
        """Add mono float samples; return the shapes of every video frame now complete."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size and not np.isfinite(x).all():
            raise AudioFormatError("talking head: audio contains NaN or infinity")
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x.copy()
        out: list[MouthShape] = []
        while self._consumed + self._buf.size >= self._frame_end(self._next):
            out.append(self._shape(self._next))
            self._next += 1
        keep_from = self._frame_end(self._next - 1) - self._consumed - self._half() if self._next else 0
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._consumed += keep_from
        return out

    def flush(self) -> list[MouthShape]:
        """Shapes for a last, partial frame (pads with silence); call once at the end of the stream."""
        need = self._frame_end(self._next) - (self._consumed + self._buf.size)
        if self._buf.size == 0 or need <= 0 or need >= self._frame_end(0):
            return []
        return self.push(np.zeros(need, dtype=np.float32))

    def _half(self) -> int:
        return round(self.sample_rate / self.fps / 2)

    def _shape(self, k: int) -> MouthShape:
        end = self._frame_end(k) - self._consumed
        start = max(
            0, end - (self._frame_end(k) - self._frame_end(k - 1) if k else self._frame_end(0)) - self._half()
        )
        seg = self._buf[start:end]
        rms = float(np.sqrt(np.mean(seg * seg))) if seg.size else 0.0
        level = 20.0 * np.log10(max(rms, 1e-6))
        self._floor.append(rms)
        recent = np.fromiter(self._floor, float)
        floor = float(np.percentile(recent, 10)) if recent.size > 2 else 0.0
        gate = max(2.0 * floor, 1e-4)  # -80 dBFS: digital silence never opens the mouth
        peak = max(float(np.percentile(recent, 95)), 4.0 * gate)
        target = min(1.0, max(0.0, (rms - gate) / (peak - gate)))
        rate = self._attack if target > self._opening else self._release
        self._opening += rate * (target - self._opening)
        if target > 0.05 and seg.size:
            spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), self._nfft)) ** 2
            lo, hi = float(spec[self._low].sum()) + 1e-12, float(spec[self._high].sum()) + 1e-12
            bright = 10.0 * np.log10(hi / lo)  # about -30 (dark, rounded) .. +5 dB (bright, spread)
            w_target = min(1.0, max(0.0, (bright + 25.0) / 30.0))
            self._width += 1.0 * (w_target - self._width)
        else:
            self._width += 0.2 * (0.5 - self._width)
        # the lips articulate while the mouth is open: the width's excursion scales with the opening
        width = 0.5 + (self._width - 0.5) * min(1.0, 2.0 * self._opening)
        return MouthShape(k, self._opening, width, level)
