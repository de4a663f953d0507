"""Audio formats (the "caps" of GStreamer): :class:`AudioFormat`, what a processor accepts and produces.

The class lives in :mod:`apipeline.frames.format` (the processor bases and the pipeline core use it and
must not depend on the audio package); this module keeps the import path.
"""

from __future__ import annotations

from apipeline.frames.format import ANY_AUDIO as ANY_AUDIO
from apipeline.frames.format import SAMPLE_TYPES as SAMPLE_TYPES
from apipeline.frames.format import AudioFormat as AudioFormat

__all__ = ["ANY_AUDIO", "SAMPLE_TYPES", "AudioFormat"]
