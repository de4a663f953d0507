"""Pure audio cores: numpy in, numpy out, no event loop (the processors in
``apipeline.processors.audio`` are thin shells around them).

* :mod:`~apipeline.audio.format`: :class:`AudioFormat`, the caps of a link.
* :mod:`~apipeline.audio.io`: read/write files, streaming reader, crash-safe incremental writer.
* :mod:`~apipeline.audio.convert`: int16/float32, channel mixing, NaN/Inf checks.
* :mod:`~apipeline.audio.resample`: streaming soxr resampler (no clicks at chunk borders).
* :mod:`~apipeline.audio.reblock`: fixed blocks with left context.
* :mod:`~apipeline.audio.sola`: the SOLA crossfade stitcher.
* :mod:`~apipeline.audio.vad`: Silero VAD on onnxruntime.
* :mod:`~apipeline.audio.f0`: F0 estimators by name (dio, harvest, fcpe, crepe).
* :mod:`~apipeline.audio.world`, :mod:`~.svc`, :mod:`~.vocoder`: WORLD analysis, feature conversion,
  vocoders.
* :mod:`~apipeline.audio.voice_changer`: the streaming voice-changer core and the offline render.
* :mod:`~apipeline.audio.metrics`: click score and pitch error (quality measures).

Names are exported lazily: importing :mod:`apipeline.audio.format` (as the pipeline core does) must not
pull soundfile, soxr or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

from apipeline.audio.format import AudioFormat as AudioFormat

_LAZY = {
    "read_audio": "io",
    "write_audio": "io",
    "AudioFileReader": "io",
    "AudioFileWriter": "io",
    "as_2d": "convert",
    "to_float32": "convert",
    "to_int16": "convert",
    "mix_channels": "convert",
    "check_finite": "convert",
    "StreamingResampler": "resample",
    "Reblocker": "reblock",
    "FinalBlock": "reblock",
    "SolaStitcher": "sola",
    "fade_weights": "sola",
    "click_score": "metrics",
    "cents_error": "metrics",
    "PitchError": "metrics",
    "SileroVad": "vad",
    "VadEvent": "vad",
}

__all__ = ["AudioFormat", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'apipeline.audio' has no attribute {name!r}")
    return getattr(importlib.import_module(f"apipeline.audio.{module}"), name)
