"""Audio formats (the "caps" of GStreamer): what a processor accepts and produces.

A field set to ``None`` means "any". Two formats are compatible when every field both fix agrees.
Pure data, no numpy import: it lives beside the frames because the processor bases and the pipeline
core check links with it and must not depend on the audio package (``apipeline.audio.format``
re-exports it, the import path users know).
"""

from __future__ import annotations

from dataclasses import dataclass

from apipeline.errors import AudioFormatError

SAMPLE_TYPES = ("int16", "float32")


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Sample rate (Hz), channel count and sample type; ``None`` in a field means any value."""

    sample_rate: int | None = None
    channels: int | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in SAMPLE_TYPES:
            raise AudioFormatError(
                f"AudioFormat.dtype must be one of {SAMPLE_TYPES} or None, got {self.dtype!r}"
            )
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise AudioFormatError(f"AudioFormat.sample_rate must be positive, got {self.sample_rate}")
        if self.channels is not None and self.channels <= 0:
            raise AudioFormatError(f"AudioFormat.channels must be positive, got {self.channels}")

    def mismatches(self, other: AudioFormat) -> list[str]:
        """Names of the fields both formats fix to different values (empty when compatible)."""
        out = []
        for name in ("sample_rate", "channels", "dtype"):
            a, b = getattr(self, name), getattr(other, name)
            if a is not None and b is not None and a != b:
                out.append(name)
        return out

    def is_compatible(self, other: AudioFormat) -> bool:
        return not self.mismatches(other)

    def intersect(self, other: AudioFormat) -> AudioFormat:
        """The most specific format both allow (raises AudioFormatError, a ValueError, when they conflict)."""
        if self.mismatches(other):
            raise AudioFormatError(
                f"formats {self} and {other} conflict on {', '.join(self.mismatches(other))}"
            )
        return AudioFormat(
            self.sample_rate if self.sample_rate is not None else other.sample_rate,
            self.channels if self.channels is not None else other.channels,
            self.dtype if self.dtype is not None else other.dtype,
        )

    def __str__(self) -> str:
        rate = f"{self.sample_rate} Hz" if self.sample_rate else "any rate"
        ch = f"{self.channels} ch" if self.channels else "any channels"
        return f"{rate}, {ch}, {self.dtype or 'any type'}"


ANY_AUDIO = AudioFormat()
