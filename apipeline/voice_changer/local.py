"""The in-process voice changer DAG: F0 + WORLD analysis, conversion, vocoder and SOLA as stages.

:func:`build_local_voice_changer` returns (``[...]`` only when needed; front and back are
:mod:`apipeline.voice_changer.dag`'s)::

    front (settings guard, input guard + gain, [resample], pad, re-block, gate)
      -> F0 + spectral analysis, by estimator:
           WORLD F0 (dio, harvest; pyworld holds the GIL):  F0Processor -> WorldAnalysisProcessor
                                      (the analysis uses the same track: nothing is computed twice)
           neural F0 (fcpe, crepe; torch releases the GIL):  SyncParallelPipeline(
                                      [F0Processor], [WorldAnalysisProcessor with its own fast dio])
      -> VoiceConversionProcessor (joins F0 + features by block_seq) -> VocoderProcessor -> SolaProcessor
      -> back (monitor, [resample], limiter, [up-mix])
      (SolaProcessor answers each block upstream to the vocoder: a SolaOffsetFrame, for the phase lock)

Latency is the sum the processors declare (:func:`~apipeline.pipeline.pipeline_latency`): block (re-block),
crossfade + search (SOLA), look-ahead (vocoder), and the resamplers' hold-back when the processing rate
differs from the stream's. Stereo input is converted as mono (one voice) and duplicated on output.

With the fixed gate (``gate="fixed"``) the DAG renders the samples of the pure core
:class:`~apipeline.audio.voice_changer.StreamingVoiceChanger` with the same settings (tested sample for
sample; the limiter bends only samples above -3 dBFS): the F0 stage mirrors each window's end
(``f0_pad_ms``) and, with ``phase_lock`` (the default, WORLD vocoder), the vocoder locks each window's
pulse train to the previous one's where SOLA crossfades them. That lock needs SOLA's offset for block
``n`` before block ``n + 1`` is synthesised; SOLA answers upstream and the vocoder keeps the books
(:mod:`apipeline.processors.audio.vocoder` says why that answer is always in time in this layout, which
:func:`build_local_voice_changer` checks). Without the lock the search must span a pitch period
(``phase_lock=False`` wants ``search_ms=15``, as the remote placement, which is free-running).
"""

from __future__ import annotations

from apipeline.errors import PipelineError
from apipeline.pipeline import SyncParallelPipeline
from apipeline.processors.async_frame_processor import AsyncFrameProcessor
from apipeline.processors.audio.f0 import F0Processor
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.processors.audio.svc import VoiceConversionProcessor
from apipeline.processors.audio.vocoder import VocoderProcessor
from apipeline.processors.audio.world import WorldAnalysisProcessor
from apipeline.processors.frame_processor import FrameProcessor
from apipeline.voice_changer.dag import Front, VoiceChangerPipeline
from apipeline.voice_changer.monitor import BlockMonitor
from apipeline.voice_changer.settings import VoiceChangerSettings


def build_local_voice_changer(
    settings: VoiceChangerSettings | None = None,
    *,
    sample_rate: int,
    channels: int = 1,
    realtime: bool = False,
) -> VoiceChangerPipeline:
    """The in-process voice changer DAG for a stream of ``channels`` at ``sample_rate``.

    AudioRawFrames in, converted float32 AudioRawFrames out at the same rate and channel count, delayed
    by :attr:`VoiceChangerPipeline.align_samples` (nominal) and padded to whole blocks at the end.
    ``realtime`` tells the monitor the source is paced (underruns are then counted). Raises
    ParameterError for settings out of range and AudioFormatError for an unsupported rate without a
    processing rate.
    """
    s = settings or VoiceChangerSettings()
    front = Front.build(s, sample_rate, channels)
    rate, g = front.rate, front.geometry
    options = s.estimator_options()
    threaded = s.use_threads()
    procs: list[FrameProcessor] = []
    if s.use_parallel():
        f0 = F0Processor(
            s.f0,
            sample_rate=rate,
            frame_ms=s.frame_ms,
            options=options,
            pad_ms=s.f0_pad_ms,
            geometry=g,
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
                geometry=g,
                threaded=threaded,
                name="f0",
            )
        )
        procs.append(WorldAnalysisProcessor(g, threaded=threaded, name="analysis"))
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
    ]
    monitor = BlockMonitor(g.block / rate, realtime=realtime, name="monitor")
    vc = VoiceChangerPipeline(front, procs, monitor)
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
