"""F0 estimation per window: :class:`F0Processor` (shell over :mod:`apipeline.audio.f0`).

:func:`estimate_mirrored` is the streaming voice changer's estimate with the window's end mirrored past
the edge (``f0_pad_ms``): DIO drops voicing over the last ~15 frames of a window, and the mirror moves that
edge past the frames a block keeps. The same arithmetic as
:meth:`apipeline.audio.voice_changer.StreamingVoiceChanger._estimate_f0`, so the DAG renders the core's
samples (``tests/apps/test_voice_changer.py`` checks it sample for sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Estimator, F0Track, get_f0_estimator
from apipeline.audio.format import AudioFormat
from apipeline.audio.incremental import StreamingF0, estimate_mirrored
from apipeline.audio.world import frame_period_for
from apipeline.errors import AudioFormatError, ParameterError
from apipeline.frames import AudioRawFrame, EndFrame, Frame, StartFrame
from apipeline.processors.audio.features import (
    COMPUTE_KEY,
    GATE_KEY,
    SEQ_KEY,
    BlockGeometry,
    F0Frame,
    ThreadedBlockProcessor,
    block_metadata,
)
from apipeline.processors.frame_processor import FrameDirection


def pad_samples(pad_ms: float, sample_rate: int, hop: int) -> int:
    """``pad_ms`` as the nearest whole number of WORLD hops, in samples (0 turns the mirror off)."""
    if pad_ms < 0:
        raise ParameterError(f"f0 mirror pad must be >= 0 ms, got {pad_ms}")
    return round(pad_ms * sample_rate / 1000.0 / hop) * hop


class F0Processor(ThreadedBlockProcessor):
    """Estimate F0 over each window frame and emit an :class:`F0Frame` for its block.

    Takes mono float windows at ``sample_rate`` (as :class:`~apipeline.processors.audio.ReblockProcessor`
    cuts them, with ``metadata["block_seq"]``); the track covers the whole window on the WORLD frame grid
    (hop ``frame_ms`` rounded to whole samples). ``pass_audio=True`` pushes the window on after the F0
    frame (a later stage needs it); otherwise the window is consumed. A window whose
    ``metadata["gate_open"]`` is False gets an empty F0 frame without any estimation. ``pad_ms`` > 0
    estimates each window with its end mirrored that far past the edge (:func:`estimate_mirrored`; the
    voice changer uses 50 ms), which keeps DIO's voicing on the newest frames.

    The estimator (``dio``, ``harvest``, ``fcpe``, ``crepe``...) is built at ``setup`` (neural ones load
    their weights then), never replaced by another. A failure on one window is reported as an
    ``ErrorFrame`` and that block gets an empty F0 frame, so the stream keeps its clock.

    Args:
        method: estimator name, see :func:`apipeline.audio.f0.get_f0_estimator`.
        sample_rate: rate of the windows.
        frame_ms: WORLD frame period the track is computed on.
        pass_audio: push the window frame on after the F0 frame.
        options: extra estimator keyword arguments (e.g. ``{"num_threads": 1}``).
        pad_ms: mirrored tail (rounded to whole hops); 0 = off.
        geometry: the voice changer's window geometry: each frame is estimated once and carried to the
            next windows (:class:`~apipeline.audio.incremental.StreamingF0`, keyed by ``block_seq``);
            ``None`` estimates every window whole.
    """

    latency = 0.0  # works on the window it is given: no look-ahead of its own

    def __init__(
        self,
        method: str = "dio",
        *,
        sample_rate: int,
        frame_ms: float = 5.0,
        pass_audio: bool = False,
        options: dict[str, Any] | None = None,
        pad_ms: float = 0.0,
        geometry: BlockGeometry | None = None,
        threaded: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(threaded=threaded, name=name)
        self.method = method
        self.sample_rate = sample_rate
        self.hop, period_ms = frame_period_for(sample_rate, frame_ms)
        self.pad = pad_samples(pad_ms, sample_rate, self.hop)
        self.hop_seconds = period_ms / 1000.0
        self.pass_audio = pass_audio
        self.options = dict(options or {})
        self.input_format = AudioFormat(sample_rate, 1, "float32")
        self.output_format = self.input_format if pass_audio else None
        self.estimator: F0Estimator | None = None
        self.geometry = geometry
        if geometry is not None and (geometry.sample_rate != sample_rate or geometry.hop != self.hop):
            raise ParameterError(
                f"F0Processor: geometry is for {geometry.sample_rate} Hz with hop {geometry.hop}, the "
                f"processor "
                f"for {sample_rate} Hz with hop {self.hop}"
            )
        self._streaming: StreamingF0 | None = None
        self.blocks_estimated = 0

    async def setup(self) -> None:
        await super().setup()
        if self.estimator is None:
            self.estimator, _ = await self.run_in_thread(self._build)

    def _build(self) -> F0Estimator:
        return get_f0_estimator(self.method, hop_seconds=self.hop_seconds, **self.options)

    def _track(self, estimator: F0Estimator, x: NDArray[np.float64], seq: int) -> F0Track:
        g = self.geometry
        if g is None or x.shape[0] != g.window:
            return estimate_mirrored(estimator, x, self.sample_rate, self.hop, self.pad)
        if self._streaming is None or self._streaming.estimator is not estimator:
            self._streaming = StreamingF0(
                estimator, g.sample_rate, g.hop, g.block // g.hop, g.f0_carry_stop, self.pad
            )
        return self._streaming.track(x, seq)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self.reset_stream()

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self.reset_stream()

    def reset_stream(self) -> None:
        """Forget the carried frames (a new stream starts at ``block_seq`` 0 again)."""
        if self._streaming is not None:
            self._streaming.reset()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._estimate(frame)
            if self.pass_audio:
                await self.push_frame(frame, direction)
            return
        await self.push_frame(frame, direction)

    async def _estimate(self, frame: AudioRawFrame) -> None:
        seq = int(frame.metadata.get(SEQ_KEY, self.blocks_estimated))
        track: F0Track | None = None
        spent = 0
        if frame.metadata.get(GATE_KEY, True):
            if frame.sample_rate != self.sample_rate or frame.num_channels != 1:
                await self.push_error(
                    AudioFormatError(
                        f"{self.name}: expects mono {self.sample_rate} Hz windows, got "
                        f"{frame.num_channels} ch at {frame.sample_rate} Hz in {frame.name}"
                    )
                )
            else:
                if self.estimator is None:
                    self.estimator = (await self.run_in_thread(self._build))[0]
                estimator: F0Estimator = self.estimator
                x = np.asarray(frame.audio, dtype=np.float64)
                try:
                    track, spent = await self.run_in_thread(self._track, estimator, x, seq)
                except Exception as exc:  # reported, and the block is rendered silent: the clock goes on
                    await self.push_error(f"{self.name}: F0 estimation failed on block {seq}: {exc}")
        self.blocks_estimated += 1
        meta = block_metadata(seq, int(frame.metadata.get(COMPUTE_KEY, 0)) + spent, frame.metadata)
        await self.push_frame(
            F0Frame(seq=seq, track=track, sample_rate=self.sample_rate, pts=frame.pts, metadata=meta)
        )
