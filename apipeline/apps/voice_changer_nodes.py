"""The voice changer's stages with parameters a graph file can write (milliseconds, rates, names).

The stages of :mod:`apipeline.apps.voice_changer` take a :class:`BlockGeometry` (sizes in samples on the
WORLD frame grid) because code builds them from one :class:`VoiceChangerSettings`. A graph file holds
plain data, so each stage here takes the geometry's plain parameters instead -- ``sample_rate``,
``block_ms``, ``context_ms``, ``crossfade_ms``, ``search_ms``, ``lookahead_ms``, ``warmup_ms``,
``frame_ms``, ``sola`` -- and builds the geometry inside with :meth:`BlockGeometry.from_ms`. Stages
given the same values agree on every size (the defaults are the voice changer's), so a file may define
the values once as a YAML anchor and merge them into each node (``examples/graphs/voice_changer.yaml``).

Phase lock: ``audio.vocoder`` locks each block's pulse train to the previous one's (``phase_lock``, on by
default as in the voice changer) with the offsets ``audio.sola`` answers upstream (``report_offset``, on
by default); SOLA must directly follow the vocoder, as in the example. The F0 stage (``audio.f0``) takes
the mirrored tail as ``pad_ms`` (50 in the example, the voice changer's ``f0_pad_ms``), and so does an
analysis with an F0 of its own (``f0_pad_ms``). With these the file renders the samples of
``apipeline voice-changer`` (tested).

Two stages exist only for graphs written stage by stage:

* :class:`StreamEndPadder` (``voice_changer.pad``): the DAG's end padding, which also announces the
  stream's length in band (a :class:`StreamLengthFrame` before the padding);
* :class:`OutputAligner` (``voice_changer.align``): drops the stitch delay from the head of the output
  and cuts it at the announced length, so a file in gives a file out of the same length, aligned.

:class:`VoiceChangerNode` (``voice_changer``) is the whole DAG as one node, built from settings by
:func:`~apipeline.apps.voice_changer.build_voice_changer` (or, with ``ray_address``, by
:func:`~apipeline.apps.voice_changer_remote.build_remote_voice_changer`), followed by an aligner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from apipeline.apps.gate import BlockGate, StreamPadder
from apipeline.audio.format import AudioFormat
from apipeline.frames import AudioRawFrame, ControlFrame, EndFrame, Frame, StartFrame
from apipeline.processors.audio.features import BlockGeometry
from apipeline.processors.audio.reblock import ReblockProcessor
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.processors.audio.vocoder import VocoderProcessor
from apipeline.processors.audio.world import WorldAnalysisProcessor
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


def geometry(
    sample_rate: int,
    block_ms: float = 35.0,
    context_ms: float = 110.0,
    crossfade_ms: float = 14.5,
    search_ms: float = 0.5,
    lookahead_ms: float = 10.0,
    warmup_ms: float = 20.0,
    frame_ms: float = 5.0,
    sola: bool = True,
) -> BlockGeometry:
    """:meth:`BlockGeometry.from_ms` with positional ``sample_rate`` (what every node below calls)."""
    return BlockGeometry.from_ms(
        sample_rate,
        block_ms=block_ms,
        context_ms=context_ms,
        crossfade_ms=crossfade_ms,
        search_ms=search_ms,
        lookahead_ms=lookahead_ms,
        warmup_ms=warmup_ms,
        frame_ms=frame_ms,
        sola=sola,
    )


@dataclass(slots=True, eq=False)
class StreamLengthFrame(ControlFrame):
    """In-band: the stream held ``samples`` samples at ``sample_rate`` (sent once, before end padding)."""

    samples: int = 0
    sample_rate: int = 0


class ReblockNode(ReblockProcessor):
    """Cut ``[context | block]`` windows sized as the voice changer's geometry rounds them.

    The geometry may enlarge the context beyond ``context_ms`` (the kept span, warm-up and DIO's minimum
    window must fit) and rounds both to whole WORLD hops; a plain ``audio.reblock`` with the same
    milliseconds would cut windows the analysis refuses. Args: the geometry (see the module docstring).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        super().__init__(g.ms(g.block), g.ms(g.context), sample_rate=sample_rate, name=name)
        self.geometry = g


class BlockGateNode(BlockGate):
    """:class:`~apipeline.apps.gate.BlockGate` from plain parameters.

    Args:
        silence_db: RMS (dBFS) under which a block is not converted; null disables the level gate.
        vad: run Silero VAD and emit speaking frames in band.
        vad_gate: also render blocks the VAD does not call speech silent.
        vad_threshold: Silero speech probability threshold.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        silence_db: float | None = -60.0,
        vad: bool = True,
        vad_gate: bool = False,
        vad_threshold: float = 0.5,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        super().__init__(
            g, silence_db=silence_db, vad=vad, vad_gate=vad_gate, vad_threshold=vad_threshold, name=name
        )


class WorldAnalysisNode(WorldAnalysisProcessor):
    """:class:`~apipeline.processors.audio.world.WorldAnalysisProcessor` from plain parameters.

    Args:
        analysis_f0: null: use the F0 frames of an ``audio.f0`` upstream (``pass_audio: true``); an
            estimator name: estimate a fast F0 of its own (the side-by-side layout).
        f0_options: keyword arguments of that estimator.
        f0_pad_ms: mirrored tail for that estimator (the voice changer's ``f0_pad_ms``).
        threaded: run the analysis in its own thread (pays off only beside a GIL-free estimator).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        analysis_f0: str | None = None,
        f0_options: dict[str, Any] | None = None,
        f0_pad_ms: float = 50.0,
        threaded: bool = False,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        super().__init__(
            g,
            analysis_f0=analysis_f0,
            f0_options=f0_options,
            f0_pad_ms=f0_pad_ms,
            threaded=threaded,
            name=name,
        )


class VocoderNode(VocoderProcessor):
    """:class:`~apipeline.processors.audio.vocoder.VocoderProcessor` from plain parameters.

    Args:
        kind: ``world`` (real-time default) or ``griffin-lim``.
        rms_mix_rate: loudness matching, 1 = off.
        phase_lock: lock each block's pulse train to the previous one's (WORLD only; ignored for
            griffin-lim); needs ``audio.sola`` with ``report_offset`` right after this node.
        threaded: synthesise in its own thread.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        kind: str = "world",
        rms_mix_rate: float = 1.0,
        phase_lock: bool = True,
        threaded: bool = False,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        super().__init__(
            sample_rate=sample_rate,
            kind=kind,
            rms_mix_rate=rms_mix_rate,
            lookahead=g.lookahead,
            phase_lock=phase_lock and kind == "world",
            threaded=threaded,
            name=name,
        )


class SolaNode(SolaProcessor):
    """:class:`~apipeline.processors.audio.sola.SolaProcessor` sized by the geometry (block rounded to hops).

    Args:
        fade: crossfade shape, ``sin2``, ``linear`` or ``equal_power``.
        report_offset: answer each block upstream with its offset (for a phase-locked ``audio.vocoder``
            right before this node).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        fade: str = "sin2",
        report_offset: bool = True,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        super().__init__(
            g.block,
            g.crossfade,
            g.search,
            sample_rate=sample_rate,
            fade=fade,
            report_offset=report_offset,
            name=name,
        )


class StreamEndPadder(StreamPadder):
    """The DAG's end padding (whole blocks plus the stitch drain), announcing the stream length first.

    At ``EndFrame`` it pushes a :class:`StreamLengthFrame` (samples seen so far), then the padding; an
    :class:`OutputAligner` downstream cuts the output there. Args: the geometry.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        super().__init__(g.block, g.latency_samples - g.block, name=name)
        self.sample_rate = sample_rate

    async def stop(self, frame: EndFrame) -> None:
        if self._last is not None:
            await self.push_frame(StreamLengthFrame(samples=self.samples, sample_rate=self.sample_rate))
        await super().stop(frame)


class OutputAligner(FrameProcessor):
    """Drop the first ``delay`` output samples; after a :class:`StreamLengthFrame`, stop at that length.

    The voice changer's output lags its input by the stitch delay (crossfade + look-ahead + half the
    search) and ends with the end padding; this makes output sample ``i`` the conversion of input sample
    ``i`` and the output exactly as long as the input (lengths announced at another rate are converted).
    Without an announcement (a live stream) only the head is dropped. Consumes the announcement.
    """

    def __init__(self, delay: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if delay < 0:
            raise ValueError(f"OutputAligner: delay must be >= 0 samples, got {delay}")
        self.delay = delay
        self._skip = delay
        self._left: int | None = None
        self._length: tuple[int, int] | None = None
        self._emitted = 0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._skip, self._left, self._length, self._emitted = self.delay, None, None, 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, StreamLengthFrame):
            self.set_length(frame.samples, frame.sample_rate)
            return
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, AudioRawFrame):
            await self._trim(frame)
            return
        await self.push_frame(frame, direction)

    def set_length(self, samples: int, sample_rate: int) -> None:
        """The input held ``samples`` at ``sample_rate``: cut the output there (the first call counts)."""
        if self._length is None:
            self._length = (samples, sample_rate)

    async def _trim(self, frame: AudioRawFrame) -> None:
        audio = np.asarray(frame.audio)
        if self._left is None and self._length is not None:
            samples, rate = self._length
            total = samples if rate in (0, frame.sample_rate) else round(samples * frame.sample_rate / rate)
            self._left = total - self._emitted
        head = min(self._skip, audio.shape[0])
        self._skip -= head
        audio = audio[head:]
        if self._left is not None:
            audio = audio[: max(self._left, 0)]
            self._left -= audio.shape[0]
        self._emitted += audio.shape[0]
        if audio.shape[0]:
            out = AudioRawFrame(
                audio, frame.sample_rate, frame.num_channels, pts=frame.pts, metadata=frame.metadata
            )
            await self.push_frame(out)


class AlignNode(OutputAligner):
    """:class:`OutputAligner` whose delay is the voice changer's (crossfade + look-ahead + search / 2).

    Args:
        out_rate: rate of the stream at this point when it differs from ``sample_rate`` (the geometry's).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        block_ms: float = 35.0,
        context_ms: float = 110.0,
        crossfade_ms: float = 14.5,
        search_ms: float = 0.5,
        lookahead_ms: float = 10.0,
        warmup_ms: float = 20.0,
        frame_ms: float = 5.0,
        sola: bool = True,
        out_rate: int | None = None,
        name: str | None = None,
    ) -> None:
        g = geometry(
            sample_rate,
            block_ms,
            context_ms,
            crossfade_ms,
            search_ms,
            lookahead_ms,
            warmup_ms,
            frame_ms,
            sola,
        )
        rate = out_rate or sample_rate
        super().__init__(round((g.crossfade + g.lookahead + g.search // 2) * rate / sample_rate), name=name)
        self.input_format = self.output_format = AudioFormat(rate)
