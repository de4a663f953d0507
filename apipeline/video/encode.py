"""Audio and video encoded and muxed with PyAV (FFmpeg's libraries): files and fragmented MP4.

:class:`EncoderSettings` holds the options users set (codecs, bitrates, keyframe interval, x264 preset,
frame rate) and refuses out-of-range values with :class:`~apipeline.errors.ParameterError`.
:func:`check_container` proves, before any work, that the chosen container can hold the chosen codecs
by writing an empty file of that kind in memory (a real FFmpeg header write, not a lookup table), so
``out.webm`` with H.264 is refused at once instead of after the render.

:class:`MediaWriter` muxes :class:`~apipeline.frames.video.VideoFrame` pictures and mono/stereo float
audio into a file or, with ``fragmented=True``, into fragmented MP4 chunks (``moov`` first, then one
``moof``+``mdat`` per keyframe) that can be streamed as they come (to a WebSocket, say). Timestamps are
media time: video frame ``index`` at ``index / fps`` and audio at its sample count, so the A/V offset in
the file is zero by construction and a slow machine cannot shift it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ConfigurationError, ParameterError
from apipeline.params import Param, ParamSchema

VIDEO_CODECS = ("h264", "vp9", "mpeg4")
AUDIO_CODECS = ("aac", "opus", "mp3")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_ENCODERS = {
    "h264": "libx264",
    "vp9": "libvpx-vp9",
    "mpeg4": "mpeg4",
    "aac": "aac",
    "opus": "libopus",
    "mp3": "libmp3lame",
}
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Opus only encodes at these rates; other rates are resampled by the writer.
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

SCHEMA = ParamSchema(
    [
        Param("video_codec", str, "h264", choices=VIDEO_CODECS, doc="video codec"),
        Param("audio_codec", str, "aac", choices=AUDIO_CODECS, doc="audio codec"),
        Param("video_bitrate", int, 1_000_000, minimum=50_000, maximum=50_000_000, unit="bit/s"),
        Param("audio_bitrate", int, 96_000, minimum=16_000, maximum=512_000, unit="bit/s"),
        Param("keyframe_interval", int, 50, minimum=1, maximum=600, unit="frames", doc="GOP length"),
        Param("preset", str, "veryfast", choices=PRESETS, doc="x264 speed/size trade-off"),
        Param("fps", float, 25.0, minimum=1.0, maximum=60.0, unit="frames/s"),
    ]
)


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """What the encoder makes; every field is checked against :data:`SCHEMA` on construction."""

    video_codec: str = "h264"
    audio_codec: str = "aac"
    video_bitrate: int = 1_000_000
    audio_bitrate: int = 96_000
    keyframe_interval: int = 50
    preset: str = "veryfast"
    fps: float = 25.0

    def __post_init__(self) -> None:
        checked = SCHEMA.check({f.name: getattr(self, f.name) for f in fields(self)})
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def schema(cls) -> ParamSchema:
        return SCHEMA


def container_format(path: str | os.PathLike[str]) -> str:
    """FFmpeg's muxer name for an output path's extension."""
    ext = Path(path).suffix.lower()
    if ext not in _FORMATS:
        raise ConfigurationError(
            f"output {str(path)!r}: unknown video container {ext or '(no extension)'!r}; "
            f"use one of {', '.join(sorted(_FORMATS))}"
        )
    return _FORMATS[ext]


def check_container(fmt: str, settings: EncoderSettings, *, width: int = 64, height: int = 64) -> None:
    """Raise :class:`ConfigurationError` unless container ``fmt`` can hold the codecs of ``settings``."""
    import av

    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=fmt) as c:
            v: Any = c.add_stream(
                _ENCODERS[settings.video_codec], rate=Fraction(settings.fps).limit_denominator(1001)
            )
            v.width, v.height, v.pix_fmt = width, height, "yuv420p"
            rate = 48000 if settings.audio_codec == "opus" else 44100
            c.add_stream(_ENCODERS[settings.audio_codec], rate=rate)
            c.start_encoding()
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigurationError(
            f"a {fmt} file cannot hold {settings.video_codec} video with {settings.audio_codec} audio "
            f"({type(exc).__name__}: {exc}); choose another container or codec"
        ) from None


class MediaWriter:
    """Mux pictures and audio into a file (or fragmented-MP4 chunks handed to ``on_chunk``).

    Args:
        target: a path, or ``None`` with ``fragmented=True`` and ``on_chunk``.
        width, height: picture size (even numbers; odd sizes are refused by H.264's 4:2:0).
        sample_rate, channels: the audio.
        settings: codecs and rates.
        fragmented: write fragmented MP4 (``moov`` first, a fragment per keyframe).
        on_chunk: receives each chunk of bytes as soon as the muxer writes it.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | None,
        *,
        width: int,
        height: int,
        sample_rate: int,
        channels: int = 1,
        settings: EncoderSettings | None = None,
        fragmented: bool = False,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> None:
        import av

        self.settings = s = settings or EncoderSettings()
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ParameterError(f"video size must be even and at least 16x16, got {width}x{height}")
        if channels not in (1, 2):
            raise ParameterError(f"audio must be mono or stereo, got {channels} channels")
        fmt = "mp4" if fragmented else container_format(str(target))
        options: dict[str, str] = {}
        if fragmented:
            options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
            if on_chunk is None:
                raise ParameterError("fragmented output needs on_chunk to receive the bytes")
            self._sink: Any = _ChunkSink(on_chunk)
            self.container: Any = av.open(self._sink, "w", format=fmt, options=options)
        else:
            self._sink = None
            self.container = av.open(str(target), "w", format=fmt)
        self.fps = s.fps
        self.video: Any = self.container.add_stream(
            _ENCODERS[s.video_codec], rate=Fraction(s.fps).limit_denominator(1001)
        )
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = s.video_bitrate
        self.video.codec_context.gop_size = s.keyframe_interval
        if s.video_codec == "h264":
            self.video.codec_context.options = {
                "preset": s.preset,
                "tune": "zerolatency" if fragmented else "film",
            }
        self.video.time_base = Fraction(1, 1) / Fraction(s.fps).limit_denominator(1001)
        out_rate = sample_rate
        if s.audio_codec == "opus" and sample_rate not in _OPUS_RATES:
            out_rate = 48000
        layout = "mono" if channels == 1 else "stereo"
        self.audio: Any = self.container.add_stream(_ENCODERS[s.audio_codec], rate=out_rate, layout=layout)
        self.audio.bit_rate = s.audio_bitrate
        self.sample_rate, self.channels = sample_rate, channels
        frame_size = self.audio.codec_context.frame_size or 1024
        fmt_name = self.audio.codec_context.format.name
        self._resampler = av.AudioResampler(
            format=fmt_name, layout=layout, rate=out_rate, frame_size=frame_size
        )
        self._samples_in = 0
        self.video_frames = 0
        self._closed = False

    def write_video(self, image: NDArray[np.uint8], index: int | None = None) -> None:
        """Encode one RGB picture at frame ``index`` (default: the next one)."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.video_frames if index is None else index
        self.video_frames = frame.pts + 1
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def write_audio(self, samples: NDArray[np.floating]) -> None:
        """Encode float samples in -1..1, shape ``(n,)`` or ``(n, channels)``."""
        import av

        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ParameterError(
                f"audio has {x.shape[1]} channels, the writer was opened for {self.channels}"
            )
        if x.shape[0] == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(np.clip(x, -1.0, 1.0).T.reshape(1, -1)),
            format="flt",
            layout="mono" if self.channels == 1 else "stereo",
        )
        frame.sample_rate = self.sample_rate
        frame.pts = self._samples_in
        frame.time_base = Fraction(1, self.sample_rate)
        self._samples_in += x.shape[0]
        self._encode_audio(self._resampler.resample(frame))

    def _encode_audio(self, frames: Any) -> None:
        for f in frames:
            for packet in self.audio.encode(f):
                self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the container (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._encode_audio(self._resampler.resample(None))
            for packet in self.audio.encode(None):
                self.container.mux(packet)
            for packet in self.video.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ChunkSink(io.RawIOBase):
    """A write-only file object that hands every write to a callback (for fragmented MP4)."""

    def __init__(self, on_chunk: Callable[[bytes], None]) -> None:
        self._on_chunk = on_chunk
        self._pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._on_chunk(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos
