"""Running the voice changer on files and arrays: streamed through the DAG, or offline in one shot.

:func:`run_file` is what ``apipeline voice-changer`` calls: it opens the input (AudioFileError for a
missing, empty, truncated-header or non-audio file), runs the DAG of
:func:`~apipeline.voice_changer.build_voice_changer` behind a file source (as fast as possible or
paced in real time), aligns the output to the input (it is delayed by the stitch) and writes it with the
input's length, rate and channel count. ``offline=True`` renders the whole file in one shot with the same
settings instead (:func:`render_offline_array`), the reference the streamed output is compared with.

Output files follow :mod:`apipeline.outputs`: the path (not the input, folder exists and is writable) and
the format (:func:`~apipeline.audio.io.output_subtype`: container from the suffix, sample format from the
input or ``subtype``) are checked before any processing; the streamed output is written block by block to
a file beside the target, renamed into place at the end. A failed run leaves nothing; Ctrl-C
(:class:`ConversionInterrupted`) keeps the converted prefix as a valid file only where nothing existed.

The :class:`VoiceChangerResult` lists what was measured and every problem met: ``errors`` are
``(where, message)`` pairs from ErrorFrames (the stream goes on after each), ``warnings`` name valid but
suspicious input (silence, clipping, most blocks gated).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from numpy.typing import NDArray

from apipeline.audio.convert import to_float32
from apipeline.audio.io import AudioFileWriter, PathLike, input_subtype, output_subtype, read_audio
from apipeline.audio.level import ABSOLUTE_FLOOR_DB, soft_limit
from apipeline.errors import AudioFileError, AudioFormatError, ModelError
from apipeline.frames import AudioRawFrame, Frame
from apipeline.outputs import AtomicOutput, check_output_path
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.audio.io import AudioFileSource, MemoryAudioSink, MemoryAudioSource
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.voice_changer.build import build_voice_changer
from apipeline.voice_changer.dag import VoiceChangerPipeline
from apipeline.voice_changer.monitor import RealtimeReport
from apipeline.voice_changer.nodes import OutputAligner
from apipeline.voice_changer.settings import VoiceChangerSettings, processing_rate

INPUT_STAGES = ("input_guard", "source")
"""Processors whose errors are the input's fault (the CLI exits 2 for them, 1 for any other)."""
GATED_WARNING = 0.5
"""Warn when more than this share of the blocks of a non-silent input was gated as silence."""
Progress = Callable[[float, float], None]
"""``progress(seconds_done, seconds_total)``, called as the output grows."""


class ConversionInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_file`; :attr:`message` says what happened to the output file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class VoiceChangerResult:
    """What one run did and measured. Times in ms/s as named; ``report`` is None for offline runs."""

    mode: str
    sample_rate: int
    channels: int
    processing_rate: int
    duration_s: float
    latency_ms: float | None
    report: RealtimeReport | None
    wall_s: float
    rtf: float
    blocks_gated: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    output: NDArray[np.float32] | None = None
    remote: dict[str, Any] | None = None
    blocks: int = 0
    output_path: str | None = None
    subtype: str | None = None

    @property
    def late_blocks(self) -> int:
        """Blocks whose compute overran their deadline in a paced (``realtime``) run; 0 when not paced."""
        return 0 if self.report is None or self.report.underruns is None else self.report.underruns

    @property
    def input_errors(self) -> list[str]:
        return [msg for where, msg in self.errors if where in INPUT_STAGES]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("output", "report", "errors")}
        out["report"] = None if self.report is None else self.report.to_dict()
        out["errors"] = [{"where": w, "message": m} for w, m in self.errors]
        return out


def input_warnings(
    peak: float, clipped: int, samples: int, *, blocks: int = 0, gated: int = 0, settings: Any = None
) -> list[str]:
    """Warnings for valid but suspicious input: digital or near silence, clipping, most blocks gated."""
    warnings = []
    floor = ABSOLUTE_FLOOR_DB
    if settings is not None and settings.gate == "fixed" and settings.silence_db is not None:
        floor = settings.silence_db
    silent = False
    if samples and peak == 0.0:
        warnings.append("input is digital silence: the output is silence")
        silent = True
    elif samples and 20.0 * np.log10(peak) < floor:
        warnings.append(
            f"input peaks at {20 * np.log10(peak):.1f} dBFS (near silence): the output is silence"
        )
        silent = True
    if not silent and blocks and gated > GATED_WARNING * blocks:
        hint = (
            "lower --silence-db or use --gate adaptive"
            if settings is not None and settings.gate == "fixed"
            else "raise --input-gain-db or try --agc, or lower --gate-margin-db"
        )
        warnings.append(
            f"{gated} of {blocks} blocks ({100.0 * gated / blocks:.0f} %) were gated as silence and are "
            f"silent in the output (input peak {20 * np.log10(max(peak, 1e-12)):.1f} dBFS); {hint}"
        )
    if clipped:
        warnings.append(
            f"input is clipped: {clipped} sample(s) ({100.0 * clipped / max(samples, 1):.2f} %) "
            f"at full scale; converted as they are"
        )
    return warnings


def late_warnings(late: int, blocks: int, block_s: float, settings: VoiceChangerSettings) -> list[str]:
    """The warning for a paced run whose blocks came late (a live output would have dropped out)."""
    if not late:
        return []
    return [
        f"{late} of {blocks} blocks were late: their compute exceeded the {1000 * block_s:.1f} ms block, "
        f"so a live output would have dropped out; F0 method {settings.f0!r} cannot keep real time here "
        "(use --f0 dio, or a longer --block-ms)"
    ]


def realtime_warning(settings: VoiceChangerSettings, sample_rate: int, seconds: float = 0.3) -> str | None:
    """Before a real-time run: measure the core's real-time factor with ``settings`` at the processing rate
    (:func:`apipeline.audio.voice_changer.measure_rtf`) and say so when it cannot keep up (> 0.9)."""
    from apipeline.audio.voice_changer import measure_rtf

    rate = processing_rate(settings, sample_rate)
    rtf = measure_rtf(rate, seconds, **settings.core_settings())
    if rtf <= 0.9:
        return None
    return (
        f"F0 method {settings.f0!r} at {settings.block_ms:g} ms blocks needs {rtf:.2f} s of compute per "
        f"second of audio at {rate} Hz on this machine (measured just now): it cannot keep real time, "
        "expect late blocks (use --f0 dio, or a longer --block-ms)"
    )


class WriterSink(FrameProcessor):
    """Write every downstream audio frame to an :class:`AudioFileWriter` and report progress."""

    def __init__(
        self,
        writer: AudioFileWriter,
        *,
        total_s: float = 0.0,
        progress: Progress | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.writer = writer
        self.total_s = total_s
        self.progress = progress

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, AudioRawFrame):
            self.writer.write(np.asarray(frame.audio))
            if self.progress is not None:
                self.progress(self.writer.frames_written / self.writer.sample_rate, self.total_s)
            return
        await self.push_frame(frame, direction)


async def run_stream(
    source: FrameProcessor,
    settings: VoiceChangerSettings,
    *,
    sample_rate: int,
    channels: int,
    realtime: bool = False,
    backend: Any = None,
    tail: Callable[[VoiceChangerPipeline], list[FrameProcessor]] | None = None,
) -> tuple[VoiceChangerPipeline, MemoryAudioSink, PipelineTask]:
    """Run ``source -> voice changer -> [tail] -> memory sink`` to the end; return the DAG, sink and task.

    ``backend`` places the conversion on a model backend (see :func:`build_voice_changer`); it is
    closed when the run ends, however it ends. ``tail(vc)`` gives processors (e.g. an aligner and a file
    writer) that see the output before the memory sink, which then only keeps what they pass on.
    """
    vc = build_voice_changer(
        settings, sample_rate=sample_rate, channels=channels, realtime=realtime, backend=backend
    )
    sink = MemoryAudioSink(name="sink")
    from apipeline.models.backends import bring_up_timeout

    # A remote conversion's bring-up (joining a cluster, placing and loading replicas) is bounded by
    # its backend's start_timeout, not by the generic setup limit.
    start = bring_up_timeout(getattr(vc, "registry", None))
    task = PipelineTask(
        Pipeline([source, vc, *(tail(vc) if tail else []), sink]),
        PipelineParams(end_timeout=600.0, start_timeout=start),
    )
    try:
        await task.run()
    finally:
        close = getattr(vc, "aclose", None)
        if close is not None:
            await close()
    return vc, sink, task


def _aligned(y: NDArray, start: int, length: int, channels: int) -> NDArray[np.float32]:
    y = to_float32(y) if y.size else np.zeros((0,) if channels == 1 else (0, channels), np.float32)
    out = y[start : start + length]
    if out.shape[0] < length:
        pad = [(0, length - out.shape[0])] + [(0, 0)] * (out.ndim - 1)
        out = np.pad(out, pad)
    return np.ascontiguousarray(out, dtype=np.float32)


async def _stream_result(
    source: FrameProcessor,
    settings: VoiceChangerSettings,
    rate: int,
    channels: int,
    realtime: bool,
    n: int,
    backend: Any = None,
    writer: AudioFileWriter | None = None,
    progress: Progress | None = None,
) -> VoiceChangerResult:
    t0 = time.perf_counter()
    tail = None
    if writer is not None:  # aligned and written as it comes; nothing kept in memory

        def tail(vc: VoiceChangerPipeline) -> list[FrameProcessor]:
            aligner = OutputAligner(vc.align_samples, length=(n, rate), name="align")
            return [aligner, WriterSink(writer, total_s=n / rate, progress=progress, name="writer")]

    vc, sink, task = await run_stream(
        source, settings, sample_rate=rate, channels=channels, realtime=realtime, backend=backend, tail=tail
    )
    wall = time.perf_counter() - t0
    report = vc.report()
    guard = vc.guard
    stage = getattr(vc, "stage", None)
    started = stage is None or (getattr(stage, "_ready", True) and stage.refused is None)
    if not started and task.errors:
        # the remote conversion never started: nothing was converted, there is no run to summarise
        raise ModelError(f"the conversion could not start: {task.errors[0].error}")
    errors, notes = [], []
    for e in task.errors:
        if stage is not None and e.processor == stage.name and not e.fatal:
            notes.append(e.error)  # blocks degraded, the stream went on: counted in ``remote``
        else:
            errors.append((e.processor or "?", e.error))
    late = (report.underruns or 0) if realtime else 0
    return VoiceChangerResult(
        mode="realtime" if realtime else "streamed",
        sample_rate=rate,
        channels=channels,
        processing_rate=vc.geometry.sample_rate,
        duration_s=n / rate,
        latency_ms=1000.0 * vc.latency_seconds,
        report=report,
        wall_s=wall,
        rtf=report.rtf,
        blocks_gated=vc.gate.blocks_gated,
        errors=errors,
        warnings=input_warnings(
            guard.peak,
            guard.clipped,
            guard.samples,
            blocks=vc.gate.blocks,
            gated=vc.gate.blocks_gated,
            settings=settings,
        )
        + notes
        + late_warnings(late, report.blocks, vc.geometry.block / vc.geometry.sample_rate, settings),
        settings=asdict(settings),
        output=None if writer is not None else _aligned(sink.audio, vc.align_samples, n, channels),
        remote=_remote_stats(vc),
        blocks=vc.gate.blocks,
    )


def _remote_stats(vc: VoiceChangerPipeline) -> dict[str, Any] | None:
    """The conversion stage's call counts when it ran on a model backend (degraded blocks...)."""
    stage = getattr(vc, "stage", None)
    if stage is None:
        return None
    stats = asdict(stage.stats())
    stats["backend"] = type(stage.registry.backend).__name__
    return stats


async def convert_array(
    audio: NDArray,
    sample_rate: int,
    settings: VoiceChangerSettings | None = None,
    *,
    realtime: bool = False,
    chunk_ms: float = 10.0,
    backend: Any = None,
) -> VoiceChangerResult:
    """Stream ``audio`` ((n,) or (n, channels)) through the DAG; ``result.output`` is aligned, same shape.

    ``backend``: run the conversion on a model backend (see :func:`build_voice_changer`).
    """
    s = settings or VoiceChangerSettings()
    source = MemoryAudioSource(audio, sample_rate, chunk_ms, realtime, name="source")
    return await _stream_result(source, s, sample_rate, source.channels, realtime, len(audio), backend)


def render_offline_array(
    audio: NDArray, sample_rate: int, settings: VoiceChangerSettings | None = None
) -> NDArray[np.float32]:
    """The whole signal converted in one shot with the same settings (no blocks, no SOLA, no delay).

    Several channels: their mean is converted and each channel's side (its difference from the mean)
    added back, as in the streamed DAG (then limited, as there); a processing rate is honoured by
    resampling in one shot. Raises AudioFormatError for empty input or NaN/Inf samples.
    """
    from apipeline.audio.voice_changer import render_offline

    s = settings or VoiceChangerSettings()
    s.validate()
    x = to_float32(np.asarray(audio))
    if x.shape[0] == 0:
        raise AudioFormatError("offline render: empty input")
    if not np.isfinite(x).all():
        raise AudioFormatError(
            f"offline render: {int((~np.isfinite(x)).sum())} NaN/Inf sample(s) in the input"
        )
    channels = 1 if x.ndim == 1 else x.shape[1]
    mid = x if x.ndim == 1 else x.mean(axis=1, dtype=np.float32)
    mono = mid
    rate = processing_rate(s, sample_rate)
    if rate != sample_rate:
        mono = np.asarray(soxr.resample(mono, sample_rate, rate, quality="HQ"), np.float32)
    if s.vocoder == "world":
        y = render_offline(mono, rate, **s.core_settings())
    else:
        y = _render_griffin_lim(mono, rate, s)
    if rate != sample_rate:
        y = np.asarray(soxr.resample(y, rate, sample_rate, quality="HQ"), np.float32)
    y = _aligned(y, 0, x.shape[0], 1)
    if channels > 1:
        y = y[:, None] + (x - mid[:, None])
    return soft_limit(y) if s.limiter else y


def _render_griffin_lim(x: NDArray[np.float32], rate: int, s: VoiceChangerSettings) -> NDArray[np.float32]:
    from apipeline.audio.svc import VoiceConversion
    from apipeline.audio.vocoder import GriffinLimVocoder
    from apipeline.audio.world import analyze, frame_period_for

    _, period_ms = frame_period_for(rate, s.frame_ms)
    from apipeline.audio.f0 import get_f0_estimator

    est = get_f0_estimator(s.f0, hop_seconds=period_ms / 1000.0, **s.estimator_options())
    conv = VoiceConversion(
        s.pitch, s.formant, s.target_f0_mean, s.target_f0_range, rms_mix_rate=s.rms_mix_rate
    )
    y = GriffinLimVocoder().synthesize(conv.convert(analyze(x, rate, est, period_ms)))
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return np.asarray(conv.match_loudness(x64, rate, y64, rate), np.float32)


def run_file(
    input_path: PathLike,
    output_path: PathLike | None,
    settings: VoiceChangerSettings | None = None,
    *,
    realtime: bool = False,
    offline: bool = False,
    chunk_ms: float = 10.0,
    backend: Any = None,
    subtype: str | None = None,
    progress: Progress | None = None,
) -> VoiceChangerResult:
    """Convert ``input_path`` into ``output_path`` (format from the suffix; None: keep it in memory).

    The output keeps the input's rate, channels and sample format (``subtype`` overrides it: ``PCM_16``,
    ``PCM_24``, ``FLOAT``, ``VORBIS``...). ``backend`` (a ``ModelBackend`` or an address such as
    ``"local"``, ``"auto"``, ``"host:port"``) runs the streamed conversion on a model backend, closed at
    the end of the run; offline renders ignore it. ``progress(done_s, total_s)`` is called as the
    streamed output is written.

    Raises, before any processing: AudioFileError (missing/empty/truncated header/not audio),
    AudioFormatError (unsupported rate without a processing rate; an output format or subtype that
    cannot be written), OutputPathError (output is the input, missing folder, not writable) and
    ParameterError (settings). Raises :class:`ConversionInterrupted` on Ctrl-C, saying what was kept.
    """
    s = settings or VoiceChangerSettings()
    s.validate()
    source = AudioFileSource(input_path, chunk_ms, realtime, name="source")  # checks the input
    rate, channels = source.sample_rate, source.channels
    processing_rate(s, rate)  # refuse an unsupported rate before running
    if output_path is None:
        return _run_to(None, input_path, source, s, realtime, offline, backend, None, progress)
    check_output_path(output_path, inputs=[input_path])
    chosen = output_subtype(
        output_path,
        sample_rate=rate,
        channels=channels,
        subtype=subtype,
        input_subtype=input_subtype(input_path),
    )
    atomic = AtomicOutput(output_path, inputs=[input_path], validate=_readable)
    try:
        with atomic:
            with AudioFileWriter(atomic.path, rate, channels, subtype=chosen) as writer:
                result = _run_to(writer, input_path, source, s, realtime, offline, backend, chosen, progress)
    except KeyboardInterrupt:
        raise ConversionInterrupted(atomic.message or "interrupted: nothing was written") from None
    result.output_path = str(output_path)
    return result


def _readable(path: Path) -> None:
    import soundfile as sf

    if sf.info(str(path)).frames <= 0:
        raise AudioFileError("no audio frames were written")


def _run_to(
    writer: AudioFileWriter | None,
    input_path: PathLike,
    source: AudioFileSource,
    s: VoiceChangerSettings,
    realtime: bool,
    offline: bool,
    backend: Any,
    subtype: str | None,
    progress: Progress | None,
) -> VoiceChangerResult:
    if offline:
        audio, rate = read_audio(input_path)
        t0 = time.perf_counter()
        y = render_offline_array(audio, rate, s)
        wall = time.perf_counter() - t0
        channels = 1 if audio.ndim == 1 else audio.shape[1]
        x = to_float32(audio)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        clipped = int(np.count_nonzero(np.abs(x) >= 0.999)) // channels
        if writer is not None:
            writer.write(y)
        result = VoiceChangerResult(
            mode="offline", sample_rate=rate, channels=channels, processing_rate=processing_rate(s, rate),
            duration_s=len(audio) / rate, latency_ms=None, report=None, wall_s=wall,
            rtf=wall / (len(audio) / rate), warnings=input_warnings(peak, clipped, len(audio), settings=s),
            settings=asdict(s), output=None if writer is not None else y, subtype=subtype,
        )  # fmt: skip
        return result
    n = _frames_in(input_path)
    result = asyncio.run(
        _stream_result(source, s, source.sample_rate, source.channels, realtime, n, backend, writer, progress)
    )
    result.subtype = subtype
    return result


def _frames_in(path: PathLike) -> int:
    import soundfile as sf

    return int(sf.info(str(path)).frames)
