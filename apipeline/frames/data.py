"""Data frames: the payload (text, raw audio, raw images)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from apipeline.errors import FrameError
from apipeline.frames.base import DataFrame, Frame

_AUDIO_DTYPES = (np.dtype(np.int16), np.dtype(np.float32))


@dataclass(slots=True)
class TextFrame(DataFrame):
    """A piece of text (a token, a word, a sentence)."""

    text: str = ""


@dataclass(slots=True, eq=False)
class AudioRawFrame(DataFrame):
    """A chunk of raw audio.

    ``audio`` is a numpy array of int16 or float32 samples, shape ``(n,)`` for mono or
    ``(n, channels)``. PCM16 ``bytes`` (interleaved) are accepted and viewed without a copy.
    Validation is cheap (dtype, rank, channel count) and happens once, at construction.
    """

    audio: npt.NDArray[Any] | bytes = b""
    sample_rate: int = 16000
    num_channels: int = 1

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        audio = self.audio
        if isinstance(audio, (bytes, bytearray, memoryview)):
            if len(audio) % (2 * max(self.num_channels, 1)):
                raise FrameError(
                    f"AudioRawFrame: {len(audio)} bytes of PCM16 is not a whole number of "
                    f"{self.num_channels}-channel samples"
                )
            audio = np.frombuffer(audio, dtype=np.int16)
            if self.num_channels > 1:
                audio = audio.reshape(-1, self.num_channels)
            self.audio = audio
        elif not isinstance(audio, np.ndarray):
            raise FrameError(
                f"AudioRawFrame.audio must be a numpy array or PCM16 bytes, got {type(audio).__name__}"
            )
        if audio.dtype not in _AUDIO_DTYPES:
            raise FrameError(f"AudioRawFrame.audio must be int16 or float32, got {audio.dtype}")
        if type(self.sample_rate) is not int or self.sample_rate <= 0:
            if isinstance(self.sample_rate, (int, np.integer)) and self.sample_rate > 0:
                self.sample_rate = int(self.sample_rate)
            else:
                raise FrameError(
                    f"AudioRawFrame.sample_rate must be a positive int, got {self.sample_rate!r}"
                )
        ch = self.num_channels
        if audio.ndim == 1:
            if ch != 1:
                raise FrameError(f"AudioRawFrame: 1-D audio is mono but num_channels={ch}")
        elif audio.ndim == 2:
            if audio.shape[1] != ch:
                raise FrameError(f"AudioRawFrame: audio has {audio.shape[1]} channels but num_channels={ch}")
        else:
            raise FrameError(f"AudioRawFrame.audio must have shape (n,) or (n, channels), got {audio.shape}")

    @property
    def num_frames(self) -> int:
        """Samples per channel."""
        return int(self.audio.shape[0])  # type: ignore[union-attr]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.audio.shape[0] / self.sample_rate  # type: ignore[union-attr]

    def to_pcm16(self) -> bytes:
        """Interleaved little-endian PCM16 bytes (float32 is clipped to [-1, 1] and scaled)."""
        a = self.audio
        assert isinstance(a, np.ndarray)
        if a.dtype == np.float32:
            a = (np.clip(a, -1.0, 1.0) * 32767.0).round().astype("<i2")
        return a.astype("<i2", copy=False).tobytes()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, AudioRawFrame)
        return (
            self.id == other.id
            and self.name == other.name
            and self.pts == other.pts
            and self.metadata == other.metadata
            and self.sample_rate == other.sample_rate
            and self.num_channels == other.num_channels
            and self.audio.dtype == other.audio.dtype  # type: ignore[union-attr]
            and np.array_equal(self.audio, other.audio)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return f"{self.name}({self.num_frames} samples, {self.sample_rate} Hz, {self.num_channels} ch)"


@dataclass(slots=True, eq=False)
class ImageRawFrame(DataFrame):
    """A raw image: ``image`` as bytes or a numpy array, ``size`` (width, height), ``format`` e.g. "RGB"."""

    image: bytes | npt.NDArray[Any] = b""
    size: tuple[int, int] = (0, 0)
    format: str | None = None

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ImageRawFrame)
        a, b = self.image, other.image
        same = np.array_equal(a, b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b
        return bool(
            same
            and self.id == other.id
            and self.name == other.name
            and self.pts == other.pts
            and self.metadata == other.metadata
            and tuple(self.size) == tuple(other.size)
            and self.format == other.format
        )

    __hash__ = None  # type: ignore[assignment]
