"""Video frames: pictures with a presentation time, flowing beside audio.

A :class:`VideoFrame` is an :class:`~apipeline.frames.data.ImageRawFrame` whose ``image`` is an RGB
``uint8`` array of shape ``(height, width, 3)``, with its place on two clocks:

* ``pts`` follows the core's rule: the monotonic time (ns) at which the audio the picture belongs to
  entered this process's pipeline, plus the picture's offset inside that audio. A pacing output shows
  the picture when that audio is played, so lip sync is measured from ``pts`` alone.
* ``media_ns`` is the picture's position on the stream's own timeline (ns since the first sample);
  muxers stamp files with it, so a file has the same timing whatever the machine's speed was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apipeline.errors import FrameError
from apipeline.frames.base import Frame
from apipeline.frames.data import ImageRawFrame


@dataclass(slots=True, eq=False)
class VideoFrame(ImageRawFrame):
    """One RGB picture of a video stream at ``index`` (``fps`` pictures per second)."""

    index: int = 0
    fps: float = 25.0
    media_ns: int = 0

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            shape = getattr(img, "shape", None)
            dtype = getattr(img, "dtype", type(img).__name__)
            raise FrameError(
                f"VideoFrame.image must be a (height, width, 3) uint8 array, got {shape} {dtype}"
            )
        if not self.fps > 0:
            raise FrameError(f"VideoFrame.fps must be positive, got {self.fps}")
        self.size = (int(img.shape[1]), int(img.shape[0]))
        self.format = "RGB"

    @property
    def duration_ns(self) -> int:
        """How long the picture is shown (one frame period)."""
        return round(1e9 / self.fps)
