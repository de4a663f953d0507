"""The real-time voice changer as a pipeline: settings, the DAG, and file/memory runners.

The DAG :func:`build_voice_changer` returns (``[...]`` only when needed)::

    InputGuard (mono float32, NaN -> silence)
      -> [Resample in -> processing rate]
      -> StreamPadder -> Reblock [context | block] -> BlockGate (seq, level/VAD gate, ready stamp)
      -> F0 + spectral analysis, by estimator:
           WORLD F0 (dio, harvest; pyworld holds the GIL):  F0Processor -> WorldAnalysisProcessor
                                      (the analysis uses the same track: nothing is computed twice)
           neural F0 (fcpe, crepe; torch releases the GIL):  SyncParallelPipeline(
                                      [F0Processor], [WorldAnalysisProcessor with its own fast dio])
      -> VoiceConversionProcessor (joins F0 + features by block_seq) -> VocoderProcessor
      -> SolaProcessor -> BlockMonitor -> [Resample out -> input rate] -> [ChannelMixer -> channels]
      (SolaProcessor answers each block upstream to the vocoder: a SolaOffsetFrame, for the phase lock)

Latency is the sum the processors declare (:func:`~apipeline.pipeline.pipeline_latency`): block (re-block),
crossfade + search (SOLA), look-ahead (vocoder), and the resamplers' hold-back when the processing rate
differs from the stream's. Stereo input is converted as mono (one voice) and duplicated on output.

The DAG renders the samples of the pure core :class:`~apipeline.audio.voice_changer.StreamingVoiceChanger`
with the same settings (tested sample for sample): the F0 stage mirrors each window's end
(``f0_pad_ms``) and, with ``phase_lock`` (the default, WORLD vocoder), the vocoder locks each window's
pulse train to the previous one's where SOLA crossfades them. That lock needs SOLA's offset for block
``n`` before block ``n + 1`` is synthesised; SOLA answers upstream and the vocoder keeps the books
(:mod:`apipeline.processors.audio.vocoder` says why that answer is always in time in this layout, which
:func:`build_voice_changer` checks). The defaults are the core's: 35 ms block, 14.5 ms crossfade,
0.5 ms search, 10 ms look-ahead (59.9 ms at 22.05 kHz); without the lock the search must span a pitch
period (``phase_lock=False`` wants ``search_ms=15``, as the remote placement, which is free-running).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from apipeline.apps.gate import BlockGate, InputGuard, StreamPadder
from apipeline.apps.monitor import BlockMonitor, RealtimeReport
from apipeline.audio.resample import QUALITIES
from apipeline.errors import AudioFormatError, PipelineError
from apipeline.pipeline import Pipeline, SyncParallelPipeline, pipeline_latency
from apipeline.processors.async_frame_processor import AsyncFrameProcessor
from apipeline.processors.audio.convert import ChannelMixer
from apipeline.processors.audio.f0 import F0Processor
from apipeline.processors.audio.features import BlockGeometry
from apipeline.processors.audio.reblock import ReblockProcessor
from apipeline.processors.audio.resample import ResampleProcessor
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.processors.audio.svc import VoiceConversionProcessor
from apipeline.processors.audio.vocoder import VOCODERS, VocoderProcessor
from apipeline.processors.audio.world import WorldAnalysisProcessor
from apipeline.processors.frame_processor import FrameProcessor

MIN_RATE, MAX_RATE = 16000, 48000
F0_METHODS = ("dio", "harvest", "fcpe", "crepe", "crepe-tiny", "crepe-full")
GIL_FREE_F0 = ("fcpe", "crepe", "crepe-tiny", "crepe-full")
"""Estimators whose work releases the GIL (torch): worth running beside the WORLD analysis."""
PHASE_LOCKED_GEOMETRY = {"crossfade_ms": 14.5, "search_ms": 0.5, "lookahead_ms": 10.0}
"""The default stitch geometry (phase-locked synthesis: SOLA only absorbs a few samples of residue)."""
FREE_RUNNING_GEOMETRY = {"crossfade_ms": 10.0, "search_ms": 15.0, "lookahead_ms": 0.0}
"""The same 60 ms spent for free-running synthesis: the search must span an output pitch period."""


@dataclass
class VoiceChangerSettings:
    """Everything that shapes the voice changer; the streamed and the offline render share it.

    Sound: ``pitch`` (semitones), ``formant`` (envelope warp ratio), ``target_f0_mean`` (Hz) and
    ``target_f0_range`` (semitones) to map F0 onto a target speaker, ``rms_mix_rate`` (1 = off) for
    loudness matching, ``f0`` (estimator driving the conversion), ``vocoder`` (``world`` or
    ``griffin-lim``). Blocks: ``block_ms``, ``crossfade_ms``, ``search_ms``, ``context_ms`` (compute only),
    ``lookahead_ms``, ``warmup_ms``, ``frame_ms`` (WORLD hop), ``sola``, ``fade``. Synthesis: ``phase_lock``
    (lock each window's pulse train to the previous one's; WORLD only), ``f0_pad_ms`` (mirrored tail
    for the F0 estimate of each window; 0 = off). Rate: ``sample_rate`` is
    the processing rate (None: the stream's own, no resampler and no hold-back), ``resample_quality``
    the soxr quality when resampling. Gate: ``silence_db``, ``vad`` (events), ``vad_gate``. Layout:
    ``parallel`` (None: auto, side-by-side branches only for GIL-releasing estimators), ``analysis_f0``
    (the spectral branch's own estimator in the parallel layout), ``f0_options`` (estimator kwargs).
    """

    pitch: float = 0.0
    formant: float = 1.0
    f0: str = "dio"
    block_ms: float = 35.0
    crossfade_ms: float = 14.5
    search_ms: float = 0.5
    context_ms: float = 110.0
    lookahead_ms: float = 10.0
    warmup_ms: float = 20.0
    frame_ms: float = 5.0
    sola: bool = True
    fade: str = "sin2"
    phase_lock: bool = True
    f0_pad_ms: float = 50.0
    sample_rate: int | None = None
    resample_quality: str = "LQ"
    silence_db: float | None = -60.0
    vad: bool = True
    vad_gate: bool = False
    rms_mix_rate: float = 1.0
    target_f0_mean: float | None = None
    target_f0_range: float | None = None
    vocoder: str = "world"
    parallel: bool | None = None
    threads: bool | None = None
    analysis_f0: str = "dio"
    f0_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.f0 not in F0_METHODS:
            raise ValueError(f"f0 must be one of {F0_METHODS}, got {self.f0!r}")
        if self.vocoder not in VOCODERS:
            raise ValueError(f"vocoder must be one of {VOCODERS}, got {self.vocoder!r}")
        if not 5.0 <= self.block_ms <= 1000.0:
            raise ValueError(f"block_ms must be within 5..1000 ms, got {self.block_ms}")
        if not self.formant > 0 or not 0.25 <= self.formant <= 4.0:
            raise ValueError(f"formant must be within 0.25..4, got {self.formant}")
        if not -36.0 <= self.pitch <= 36.0:
            raise ValueError(f"pitch must be within -36..36 semitones, got {self.pitch}")
        if not 0.0 <= self.rms_mix_rate <= 1.0:
            raise ValueError(f"rms_mix_rate must be within [0, 1], got {self.rms_mix_rate}")
        if self.resample_quality not in QUALITIES:
            raise ValueError(f"resample_quality must be one of {QUALITIES}, got {self.resample_quality!r}")
        if self.sample_rate is not None and not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate must be within {MIN_RATE}..{MAX_RATE} Hz, got {self.sample_rate}")
        if self.target_f0_mean is not None and self.target_f0_mean <= 0:
            raise ValueError(f"target_f0_mean must be positive, got {self.target_f0_mean}")
        if not self.f0_pad_ms >= 0:
            raise ValueError(f"f0_pad_ms must be >= 0, got {self.f0_pad_ms}")

    def use_parallel(self) -> bool:
        return self.f0 in GIL_FREE_F0 if self.parallel is None else self.parallel

    def use_phase_lock(self) -> bool:
        """Whether the vocoder locks phase across windows (``phase_lock`` with the WORLD vocoder)."""
        return self.phase_lock and self.vocoder == "world"

    def free_running(self) -> VoiceChangerSettings:
        """These settings for a free-running synthesis (``phase_lock`` off).

        Settings still at the phase-locked default geometry (:data:`PHASE_LOCKED_GEOMETRY`) get the
        free-running one (:data:`FREE_RUNNING_GEOMETRY`, same latency): a 0.5 ms search cannot align
        pulse trains that were not locked (measured with ``benchmarks/voice_changer_dag.py --quality
        --remote`` on the example speech, +4 semitones: 49 cents median error with the 0.5 ms search,
        21 with the free-running geometry, 16 phase-locked). A geometry set otherwise is kept as is.
        """
        geometry = {k: getattr(self, k) for k in PHASE_LOCKED_GEOMETRY}
        changes: dict[str, Any] = {"phase_lock": False}
        if geometry == PHASE_LOCKED_GEOMETRY:
            changes.update(FREE_RUNNING_GEOMETRY)
        return self.replace(**changes)

    def use_threads(self) -> bool:
        """Whether the F0/analysis/vocoder stages run their work in threads (auto: with parallel branches)."""
        return self.use_parallel() if self.threads is None else self.threads

    def estimator_options(self) -> dict[str, Any]:
        """``f0_options`` plus one torch thread for neural estimators (two cores: one for torch, one
        for WORLD; measured, FCPE on 145 ms windows takes ~30 ms with 1 thread and 50-125 ms with 2)."""
        options = dict(self.f0_options)
        if self.f0 in GIL_FREE_F0:
            options.setdefault("num_threads", 1)
        return options

    def geometry(self, sample_rate: int) -> BlockGeometry:
        return BlockGeometry.from_ms(
            sample_rate,
            block_ms=self.block_ms,
            crossfade_ms=self.crossfade_ms,
            search_ms=self.search_ms,
            context_ms=self.context_ms,
            lookahead_ms=self.lookahead_ms,
            warmup_ms=self.warmup_ms,
            frame_ms=self.frame_ms,
            sola=self.sola,
        )

    def core_settings(self) -> dict[str, Any]:
        """Keyword arguments for :mod:`apipeline.audio.voice_changer` (``render_offline`` and the core)."""
        return dict(
            block_ms=self.block_ms, crossfade_ms=self.crossfade_ms, search_ms=self.search_ms,
            context_ms=self.context_ms, lookahead_ms=self.lookahead_ms, warmup_ms=self.warmup_ms,
            frame_ms=self.frame_ms, f0=self.f0, pitch=self.pitch, formant=self.formant,
            target_f0_mean=self.target_f0_mean, target_f0_range=self.target_f0_range,
            rms_mix_rate=self.rms_mix_rate, sola=self.sola, silence_db=self.silence_db,
            phase_lock=self.phase_lock, f0_pad_ms=self.f0_pad_ms, f0_options=self.estimator_options(),
        )  # fmt: skip

    def replace(self, **changes: Any) -> VoiceChangerSettings:
        return dataclasses.replace(self, **changes)


def processing_rate(settings: VoiceChangerSettings, sample_rate: int) -> int:
    """The rate the conversion runs at; AudioFormatError when the stream's rate needs one and none is set."""
    if settings.sample_rate is not None:
        return settings.sample_rate
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(
            f"voice changer: {sample_rate} Hz input is outside the supported {MIN_RATE}..{MAX_RATE} Hz; "
            f"set a processing sample rate (settings.sample_rate / --sample-rate) to resample it"
        )
    return sample_rate


class VoiceChangerPipeline(Pipeline):
    """The voice changer DAG (a :class:`Pipeline`) with handles on its geometry and its monitor.

    ``latency_seconds`` is the declared algorithmic latency (:func:`pipeline_latency`); ``align_samples``
    (at the stream's rate) is the nominal delay of the output behind the input, crossfade + look-ahead +
    half the search (SOLA's offset varies the delay within ``crossfade + lookahead .. + search``).
    """

    def __init__(
        self,
        processors: list[FrameProcessor],
        *,
        settings: VoiceChangerSettings,
        geometry: BlockGeometry,
        monitor: BlockMonitor,
        guard: InputGuard,
        gate: BlockGate,
        sample_rate: int,
        channels: int,
        name: str | None = None,
    ) -> None:
        super().__init__(processors, name=name or "voice_changer")
        self.settings = settings
        self.geometry = geometry
        self.monitor = monitor
        self.guard = guard
        self.gate = gate
        self.sample_rate = sample_rate
        self.channels = channels
        self.parallel = settings.use_parallel()
        self.latency_seconds = pipeline_latency(self)
        g = geometry
        self.align_samples = round((g.crossfade + g.lookahead + g.search // 2) * sample_rate / g.sample_rate)

    def report(self) -> RealtimeReport:
        """The monitor's :class:`~apipeline.apps.monitor.RealtimeReport` for the run so far."""
        return self.monitor.report(self.latency_seconds)


def build_voice_changer(
    settings: VoiceChangerSettings | None = None,
    *,
    sample_rate: int,
    channels: int = 1,
    realtime: bool = False,
    backend: Any = None,
) -> VoiceChangerPipeline:
    """The voice changer DAG for a stream of ``channels`` at ``sample_rate`` (see the module docstring).

    ``backend`` (a ``ModelBackend``, an address: ``"local"``, ``"auto"``, ``"host:port"``..., or a
    :class:`~apipeline.apps.voice_changer_remote.RemotePlacement`) puts the per-window conversion on a
    model backend instead: :func:`~apipeline.apps.voice_changer_remote.build_remote_voice_changer`.

    AudioRawFrames in, converted float32 AudioRawFrames out at the same rate and channel count, delayed
    by :attr:`VoiceChangerPipeline.align_samples` (nominal) and padded to whole blocks at the end.
    ``realtime`` tells the monitor the source is paced (underruns are then counted). Raises ValueError
    for settings out of range and AudioFormatError for an unsupported rate without a processing rate.
    """
    if backend is not None:
        from apipeline.apps.voice_changer_remote import RemotePlacement, build_remote_voice_changer

        place = backend if isinstance(backend, RemotePlacement) else RemotePlacement(backend)
        return build_remote_voice_changer(
            settings, sample_rate=sample_rate, channels=channels, realtime=realtime, **place.options()
        )
    s = settings or VoiceChangerSettings()
    s.validate()
    if channels < 1:
        raise AudioFormatError(f"voice changer: channels must be >= 1, got {channels}")
    rate = processing_rate(s, sample_rate)
    g = s.geometry(rate)
    guard = InputGuard(sample_rate, channels, name="input_guard")
    procs: list[FrameProcessor] = [guard]
    if rate != sample_rate:
        procs.append(
            ResampleProcessor(rate, in_rate=sample_rate, quality=s.resample_quality, name="resample_in")
        )
    gate = BlockGate(g, silence_db=s.silence_db, vad=s.vad, vad_gate=s.vad_gate, name="gate")
    procs += [
        StreamPadder(g.block, g.latency_samples - g.block, name="pad"),
        ReblockProcessor(g.ms(g.block), g.ms(g.context), sample_rate=rate, name="reblock"),
        gate,
    ]
    options = s.estimator_options()
    threaded = s.use_threads()
    if s.use_parallel():
        f0 = F0Processor(
            s.f0,
            sample_rate=rate,
            frame_ms=s.frame_ms,
            options=options,
            pad_ms=s.f0_pad_ms,
            threaded=threaded,
            name="f0",
        )
        analysis = WorldAnalysisProcessor(
            g, analysis_f0=s.analysis_f0, f0_pad_ms=s.f0_pad_ms, threaded=threaded, name="analysis"
        )
        procs.append(SyncParallelPipeline([f0], [analysis], name="f0_and_analysis"))
    else:
        procs.append(
            F0Processor(
                s.f0,
                sample_rate=rate,
                frame_ms=s.frame_ms,
                pass_audio=True,
                options=options,
                pad_ms=s.f0_pad_ms,
                threaded=threaded,
                name="f0",
            )
        )
        procs.append(WorldAnalysisProcessor(g, threaded=threaded, name="analysis"))
    monitor = BlockMonitor(g.block / rate, realtime=realtime, name="monitor")
    lock = s.use_phase_lock()
    vocoder = VocoderProcessor(
        sample_rate=rate,
        kind=s.vocoder,
        rms_mix_rate=s.rms_mix_rate,
        lookahead=g.lookahead,
        phase_lock=lock,
        threaded=threaded,
        name="vocoder",
    )
    sola = SolaProcessor(
        g.block, g.crossfade, g.search, sample_rate=rate, fade=s.fade, report_offset=lock, name="sola"
    )
    procs += [
        VoiceConversionProcessor(
            pitch=s.pitch,
            formant=s.formant,
            target_f0_mean=s.target_f0_mean,
            target_f0_range=s.target_f0_range,
            block_frames=g.block // g.hop,
            name="svc",
        ),
        vocoder,
        sola,
        monitor,
    ]
    if rate != sample_rate:
        procs.append(
            ResampleProcessor(sample_rate, in_rate=rate, quality=s.resample_quality, name="resample_out")
        )
    if channels > 1:
        procs.append(ChannelMixer(channels, name="upmix"))
    vc = VoiceChangerPipeline(
        procs, settings=s, geometry=g, monitor=monitor, guard=guard, gate=gate,
        sample_rate=sample_rate, channels=channels,
    )  # fmt: skip
    if lock:
        check_phase_lock_layout(vocoder, sola)
    return vc


def check_phase_lock_layout(vocoder: VocoderProcessor, sola: SolaProcessor) -> None:
    """Raise PipelineError unless SOLA's answers reach the vocoder before its next block (linked DAG).

    The condition (see :mod:`apipeline.processors.audio.vocoder`): SOLA directly follows the vocoder,
    is synchronous (the vocoder's push runs its stitch in the vocoder's task) and reports its offsets.
    """
    problems = []
    if vocoder.next is not sola or sola.prev is not vocoder:
        problems.append(f"{sola.name} does not directly follow {vocoder.name}")
    if isinstance(sola, AsyncFrameProcessor):
        problems.append(f"{sola.name} is asynchronous")
    if not sola.report_offset:
        problems.append(f"{sola.name} does not report its offsets (report_offset=False)")
    if problems:
        raise PipelineError(f"phase-locked voice changer: {'; '.join(problems)}")
