"""The frame that carries one voice-conversion window through the model stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from apipeline.frames import AppFrame


@dataclass(slots=True, eq=False)
class VoiceChunkFrame(AppFrame):
    """One window ``[context | block]`` of input and what the model stages made of it so far.

    ``audio`` is the mono float32 input window at ``sample_rate`` (16 kHz for content encoders), its first
    ``context`` samples repeat earlier input and ``valid`` of the rest are real audio (less than the block
    only in the last, zero-padded window). Stages fill ``content`` (features, 50 Hz), ``f0`` (Hz per
    ``f0_hop`` seconds, frame i at i*f0_hop from the window start, 0 = unvoiced), then ``mel`` and/or
    ``output`` (audio at ``output_rate`` covering the window from its start).
    """

    audio: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    sample_rate: int = 16000
    context: int = 0
    valid: int = 0
    index: int = 0
    content: npt.NDArray[np.float32] | None = None
    f0: npt.NDArray[Any] | None = None
    f0_hop: float = 0.01
    model_f0: npt.NDArray[np.float32] | None = None
    mel: npt.NDArray[np.float32] | None = None
    output: npt.NDArray[np.float32] | None = None
    output_rate: int | None = None

    @property
    def block(self) -> int:
        """Samples of new input (block part) in the window."""
        return int(self.audio.shape[0]) - self.context

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate
