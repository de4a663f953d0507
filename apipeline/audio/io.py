"""Audio files on disk: whole-file read/write and block-wise streaming reader/writer (soundfile).

Every array read or accepted here is 2-D ``(frames, channels)``. Files libsndfile reads (WAV, FLAC,
OGG/Vorbis, ...) are supported. Failures become :class:`~apipeline.errors.AudioFileError` naming the
path and the problem: missing, empty (no audio frames), truncated (fewer bytes than the header
declares, or a compressed stream that breaks off), or not audio at all.

:class:`AudioFileWriter` rewrites the file header on every :meth:`~AudioFileWriter.flush` (and every
``flush_every_s`` seconds of audio written), so an interrupted run leaves a file that opens and holds
everything written up to the last flush.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from apipeline.audio.convert import as_2d, check_finite, to_float32
from apipeline.errors import AudioFileError, AudioFormatError, ParameterError

if TYPE_CHECKING:
    from typing import Self

# sndfile.h: SFC_UPDATE_HEADER_NOW. soundfile does not wrap it; libsndfile has kept this value since 1.0.
_SFC_UPDATE_HEADER_NOW = 0x1060
_DTYPES = ("float32", "float64", "int16", "int32")
PathLike = str | os.PathLike[str]


def _wav_truncation(path: Path) -> str | None:
    """A message when a RIFF/WAVE file's ``data`` chunk declares more bytes than the file holds."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # RF64, W64 or not WAV at all: libsndfile judges those
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                have = size - pos - 8
                if clen > have and clen not in (0, 0xFFFFFFFF):
                    return f"truncated: the WAV data chunk declares {clen} bytes but only {have} are present"
                return None
            pos += 8 + clen + (clen & 1)
    return None


def _open_for_read(path: PathLike) -> sf.SoundFile:
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"{p}: no such file")
    if p.is_dir():
        raise AudioFileError(f"{p}: is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioFileError(f"{p}: empty file (0 bytes), expected audio")
    try:
        f = sf.SoundFile(str(p))
    except sf.LibsndfileError as exc:
        raise AudioFileError(f"{p}: not readable as audio ({exc.error_string})") from exc
    problem = _wav_truncation(p) if f.format == "WAV" else None
    if problem is None and f.frames == 0:
        problem = "contains no audio frames"
    if problem is not None:
        f.close()
        raise AudioFileError(f"{p}: {problem}")
    return f


def _check_dtype(dtype: str) -> None:
    if dtype not in _DTYPES:
        raise ParameterError(f"dtype must be one of {_DTYPES}, got {dtype!r}")


def read_audio(path: PathLike, *, dtype: str = "float32") -> tuple[NDArray, int]:
    """Read a whole audio file; return ``(audio, sample_rate)`` with audio shaped ``(frames, channels)``."""
    _check_dtype(dtype)
    with AudioFileReader(path, block_frames=1 << 16, dtype=dtype) as reader:
        blocks = list(reader)
        return np.concatenate(blocks, axis=0), reader.sample_rate


def write_audio(path: PathLike, audio: NDArray, sample_rate: int, *, subtype: str = "PCM_16") -> None:
    """Write ``audio`` ((frames,) or (frames, channels); float in [-1, 1] or int16) to ``path`` at once."""
    a = as_2d(audio)
    with AudioFileWriter(path, sample_rate, a.shape[1], subtype=subtype) as w:
        w.write(a)


class AudioFileReader:
    """Iterate over an audio file in blocks of ``block_frames`` frames without loading it whole.

    Each block is ``(block_frames, channels)`` in ``dtype``; the last one may be shorter. Raises
    AudioFileError at construction for missing/empty/non-audio/truncated-WAV files and during
    iteration when a compressed stream breaks off before its declared length.
    """

    def __init__(self, path: PathLike, block_frames: int, *, dtype: str = "float32") -> None:
        if block_frames <= 0:
            raise ParameterError(f"block_frames must be positive, got {block_frames}")
        _check_dtype(dtype)
        self.path = Path(path)
        self.block_frames = block_frames
        self.dtype = dtype
        self._file = _open_for_read(self.path)
        self.sample_rate: int = self._file.samplerate
        self.channels: int = self._file.channels
        self.frames: int = self._file.frames
        self.frames_read = 0

    @property
    def duration(self) -> float:
        """Declared length in seconds."""
        return self.frames / self.sample_rate

    def __iter__(self) -> Iterator[NDArray]:
        return self

    def __next__(self) -> NDArray:
        if self._file.closed:
            raise StopIteration
        try:
            block = self._file.read(self.block_frames, dtype=self.dtype, always_2d=True)
        except sf.LibsndfileError as exc:
            self.close()
            raise AudioFileError(
                f"{self.path}: truncated or corrupt after frame {self.frames_read} of {self.frames} "
                f"({exc.error_string})"
            ) from exc
        if len(block) == 0:
            self.close()
            if self.frames_read < self.frames:
                raise AudioFileError(
                    f"{self.path}: truncated: read {self.frames_read} of {self.frames} declared frames"
                )
            raise StopIteration
        self.frames_read += len(block)
        return block

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AudioFileWriter:
    """Append audio to a file block by block; the file stays valid after each flush.

    Args:
        path: destination; the container comes from the extension (:data:`OUTPUT_FORMATS`: ``.wav``,
            ``.flac``, ``.ogg``, ``.opus``, ``.mp3``...; :func:`output_subtype` picks and checks a subtype).
        sample_rate, channels: the stream's format; every written block must have ``channels``.
        subtype: libsndfile sample encoding (``PCM_16``, ``PCM_24``, ``FLOAT``, ``VORBIS``...).
        flush_every_s: also flush automatically after this many seconds of audio (``None``: never).
    """

    def __init__(
        self,
        path: PathLike,
        sample_rate: int,
        channels: int,
        *,
        subtype: str = "PCM_16",
        flush_every_s: float | None = 1.0,
    ) -> None:
        if sample_rate <= 0 or channels <= 0:
            raise ParameterError(f"sample_rate and channels must be positive, got {sample_rate}, {channels}")
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames_written = 0
        self._flush_every = None if flush_every_s is None else max(1, int(flush_every_s * sample_rate))
        self._since_flush = 0
        try:
            fmt = OUTPUT_FORMATS.get(self.path.suffix.lower())
            self._file = sf.SoundFile(str(self.path), "w", sample_rate, channels, subtype, format=fmt)
        except (sf.LibsndfileError, TypeError, ValueError) as exc:
            raise AudioFileError(f"{self.path}: cannot open for writing ({exc})") from exc

    def write(self, audio: NDArray) -> None:
        """Append ``audio`` ((frames,) for mono or (frames, channels); float in [-1, 1] or int16)."""
        a = as_2d(audio)
        if a.shape[1] != self.channels:
            raise AudioFormatError(
                f"{self.path}: writer expects {self.channels} channel(s), got {a.shape[1]}"
            )
        check_finite(a, f"writing {self.path}")
        if a.dtype not in (np.int16, np.float32, np.float64, np.int32):
            a = to_float32(a)
        if self._file.closed:
            raise AudioFileError(f"{self.path}: write after close")
        self._file.write(a)
        self.frames_written += len(a)
        self._since_flush += len(a)
        if self._flush_every is not None and self._since_flush >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Rewrite the header for the frames written so far and push buffered data to the OS."""
        if self._file.closed:
            return
        if self._file.format in ("WAV", "AIFF", "W64", "RF64", "CAF"):
            sf._snd.sf_command(self._file._file, _SFC_UPDATE_HEADER_NOW, sf._ffi.NULL, 0)
        self._file.flush()
        self._since_flush = 0

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- output formats ---------------------------------------------------------------------------------

OUTPUT_FORMATS = {
    ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG", ".mp3": "MP3",
    ".aif": "AIFF", ".aiff": "AIFF", ".caf": "CAF", ".w64": "W64", ".rf64": "RF64",
}  # fmt: skip
"""Output suffixes and their libsndfile container."""
_PCM_LIKE = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
_COMPRESSED_DEFAULT = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def output_subtype(
    path: PathLike,
    *,
    sample_rate: int,
    channels: int,
    subtype: str | None = None,
    input_subtype: str | None = None,
) -> str:
    """The libsndfile subtype to write ``path`` with; AudioFormatError for a choice libsndfile refuses.

    The container comes from the suffix (:data:`OUTPUT_FORMATS`). Without ``subtype`` the input's sample
    format is kept where the container holds it (16/24/32-bit, float); FLAC, which has no float, gets
    24 bits for float input; compressed inputs and anything else give 16 bits; OGG is Vorbis (Opus for
    ``.opus``) and MP3 MPEG layer III. Checked without writing anything: call before any processing.
    """
    suffix = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(OUTPUT_FORMATS))
        raise AudioFormatError(
            f"{path}: cannot tell the output format from {suffix or 'no suffix'!r} ({known})"
        )
    if fmt not in sf.available_formats():
        raise AudioFormatError(f"{path}: this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}")
    if subtype is None:
        if suffix == ".opus":
            subtype = "OPUS"
        elif fmt in _COMPRESSED_DEFAULT:
            subtype = _COMPRESSED_DEFAULT[fmt]
        elif input_subtype in _PCM_LIKE and sf.check_format(fmt, input_subtype):
            subtype = input_subtype
        elif fmt == "FLAC" and input_subtype in ("FLOAT", "DOUBLE", "PCM_32"):
            subtype = "PCM_24"
        else:
            subtype = "PCM_16"
    subtype = subtype.upper()
    if not sf.check_format(fmt, subtype):
        usable = ", ".join(sf.available_subtypes(fmt))
        raise AudioFormatError(f"{path}: {fmt} cannot hold {subtype} samples (it takes: {usable})")
    if subtype == "OPUS" and sample_rate not in _OPUS_RATES:
        raise AudioFormatError(
            f"{path}: Opus takes {', '.join(map(str, _OPUS_RATES))} Hz, not {sample_rate} "
            "(use .ogg for Vorbis)"
        )
    if fmt == "MP3" and sample_rate not in _MP3_RATES:
        raise AudioFormatError(f"{path}: MP3 takes {', '.join(map(str, _MP3_RATES))} Hz, not {sample_rate}")
    if fmt == "MP3" and channels > 2:
        raise AudioFormatError(f"{path}: MP3 holds at most 2 channels, not {channels}")
    return subtype


def input_subtype(path: PathLike) -> str | None:
    """The libsndfile subtype of an existing audio file (``PCM_24``, ``FLOAT``...), or None."""
    try:
        return str(sf.info(str(path)).subtype)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
