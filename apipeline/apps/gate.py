"""The voice changer's block gate and end-of-stream padding (two small processors of the DAG).

* :class:`StreamPadder` sits before the re-blocker: at ``EndFrame`` it appends the silence that completes
  the last block and drains the stitch delay, so the output holds the whole input.
* :class:`BlockGate` sits after the re-blocker: it numbers the windows (``metadata["block_seq"]``), stamps
  when each became ready, and decides whether a block is worth converting (``metadata["gate_open"]``):
  a block whose kept span is below ``silence_db`` is closed (no analysis: the renderer emits silence, SOLA
  fades the previous tail out), and with ``vad_gate`` so is a block Silero VAD does not call speech.

VAD runs on a 16 kHz side chain (the block samples resampled with soxr "LQ"): the audio path is not
delayed, only the decision, by the resampler's hold-back (a few ms) and by Silero's 32 ms windows. So
with ``vad_gate`` the first 30-60 ms of an utterance can be rendered silent; that is why the gate is off
by default and the VAD then only reports ``UserStarted/StoppedSpeakingFrame`` in band.
"""

from __future__ import annotations

import numpy as np

from apipeline.audio.resample import StreamingResampler
from apipeline.audio.vad import SileroVad
from apipeline.frames import (
    AudioRawFrame,
    EndFrame,
    Frame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.processors.audio.features import GATE_KEY, READY_KEY, SEQ_KEY, BlockGeometry
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns

VAD_RATE = 16000


class StreamPadder(FrameProcessor):
    """Count the samples that pass; at ``EndFrame`` push ``pad`` + completion silence before it."""

    def __init__(self, block: int, drain: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.block = block
        self.drain_blocks = -(-drain // block)
        self.samples = 0
        self._last: AudioRawFrame | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            self.samples += frame.num_frames
            self._last = frame
        await self.push_frame(frame, direction)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        last = self._last
        if last is None:
            return
        n = (-self.samples) % self.block + self.drain_blocks * self.block
        shape = (n,) if last.num_channels == 1 else (n, last.num_channels)
        zeros = np.zeros(shape, dtype=last.audio.dtype)  # type: ignore[union-attr]
        self.samples = 0
        self._last = None
        await self.push_frame(AudioRawFrame(zeros, last.sample_rate, last.num_channels))


class BlockGate(FrameProcessor):
    """Number the windows, stamp their readiness, gate silence (and optionally non-speech).

    Args:
        geometry: the window geometry (for the kept span whose level is measured).
        silence_db: RMS (dBFS) under which a block is not converted; None disables the level gate.
        vad: run Silero VAD on the block samples and emit speaking frames in band.
        vad_gate: also close the gate on blocks the VAD does not call speech (see the module doc).
        vad_threshold: Silero speech probability threshold.
    """

    def __init__(
        self,
        geometry: BlockGeometry,
        *,
        silence_db: float | None = -60.0,
        vad: bool = True,
        vad_gate: bool = False,
        vad_threshold: float = 0.5,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.geometry = geometry
        self.silence_db = silence_db
        self.vad_gate = vad_gate
        self._level = None if silence_db is None else 10.0 ** (silence_db / 20.0)
        self._vad = SileroVad(VAD_RATE, vad_threshold) if (vad or vad_gate) else None
        self._resampler: StreamingResampler | None = None
        self.seq = 0
        self.blocks_gated = 0
        self.speaking = False

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._reset()

    def _reset(self) -> None:
        self.seq = 0
        self.speaking = False
        if self._vad is not None:
            self._vad.reset()
            self._resampler = StreamingResampler(self.geometry.sample_rate, VAD_RATE, 1, "LQ")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._gate(frame)
        await self.push_frame(frame, direction)

    async def _gate(self, frame: AudioRawFrame) -> None:
        g = self.geometry
        x = np.asarray(frame.audio)
        is_open = True
        if self._level is not None:
            kept = x[g.kept_start : g.kept_start + g.kept_size].astype(np.float64)
            is_open = bool(np.sqrt(np.mean(np.square(kept))) >= self._level) if kept.size else False
        if self._vad is not None and self._resampler is not None:
            speech = await self._detect(x[g.context :])
            if self.vad_gate and not speech:
                is_open = False
        if not is_open:
            self.blocks_gated += 1
        frame.metadata[SEQ_KEY] = self.seq
        frame.metadata[GATE_KEY] = is_open
        frame.metadata[READY_KEY] = monotonic_ns()
        self.seq += 1

    async def _detect(self, block: np.ndarray) -> bool:
        assert self._vad is not None and self._resampler is not None
        vad = self._vad
        for event in vad.process(self._resampler.process(block.astype(np.float32))):
            self.speaking = event.kind == "start"
            cls = UserStartedSpeakingFrame if self.speaking else UserStoppedSpeakingFrame
            await self.push_frame(cls(metadata={"vad_sample": event.sample}))
        return vad.is_speech or bool((vad.last_probabilities >= vad.threshold).any())

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        if self._vad is not None:
            for _ in self._vad.flush():
                await self.push_frame(UserStoppedSpeakingFrame())
        self._reset()


class InputGuard(FrameProcessor):
    """The voice changer's entry: fix the stream's format, sanitise samples, mix to mono float32.

    * a frame at another rate or channel count than the stream's raises AudioFormatError (an
      ``ErrorFrame``; the frame is dropped: nothing downstream could take it);
    * an empty frame raises AudioFormatError and is dropped (it carries no time);
    * NaN/Inf samples are replaced by silence and reported (``ErrorFrame``), so the output keeps the
      input's clock and nothing after the bad frame is corrupted;
    * samples at full scale are counted in :attr:`clipped` (valid audio, reported by the app), and the
      peak level in :attr:`peak`.
    """

    def __init__(self, sample_rate: int, channels: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        from apipeline.audio.format import AudioFormat

        self.sample_rate = sample_rate
        self.channels = channels
        self.input_format = AudioFormat(sample_rate, channels)
        self.output_format = AudioFormat(sample_rate, 1, "float32")
        self.samples = 0
        self.clipped = 0
        self.non_finite_frames = 0
        self.peak = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._guard(frame)
            return
        await self.push_frame(frame, direction)

    async def _guard(self, frame: AudioRawFrame) -> None:
        from apipeline.audio.convert import to_float32
        from apipeline.errors import AudioFormatError

        if frame.sample_rate != self.sample_rate or frame.num_channels != self.channels:
            raise AudioFormatError(
                f"{self.name}: the stream is {self.sample_rate} Hz, {self.channels} ch; {frame.name} is "
                f"{frame.sample_rate} Hz, {frame.num_channels} ch (frame dropped)"
            )
        audio = np.asarray(frame.audio)
        if audio.shape[0] == 0:
            raise AudioFormatError(f"{self.name}: empty audio frame {frame.name} (dropped)")
        x = to_float32(audio)
        if x.ndim == 2:
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        finite = np.isfinite(x)
        bad = int(x.size - np.count_nonzero(finite))
        if bad:
            x = np.where(finite, x, np.float32(0.0)).astype(np.float32)
            self.non_finite_frames += 1
        self.samples += x.shape[0]
        self.clipped += int(np.count_nonzero(np.abs(x) >= 0.999))
        self.peak = max(self.peak, float(np.max(np.abs(x))))
        await self.push_frame(
            AudioRawFrame(
                np.ascontiguousarray(x), frame.sample_rate, 1, pts=frame.pts, metadata=frame.metadata
            )
        )
        if bad:
            await self.push_error(
                AudioFormatError(
                    f"{self.name}: {frame.name} had {bad} NaN/Inf sample(s) at stream position "
                    f"{self.samples - x.shape[0]}; replaced by silence"
                )
            )
