"""The voice changer's small stages: input guard and gain, end padding, block gate, output limiter.

* :class:`InputGuard` is the entry: one format, NaN -> silence, mono float32, optional input gain / AGC.
* :class:`StreamPadder` sits before the re-blocker: at ``EndFrame`` it appends the silence that completes
  the last block and drains the stitch delay, so the output holds the whole input.
* :class:`BlockGate` sits after the re-blocker: it numbers the windows (``metadata["block_seq"]``), stamps
  when each became ready, and decides whether a block is worth converting (``metadata["gate_open"]``).
  The default ``adaptive`` gate closes blocks that are not clearly above the tracked noise floor
  (:class:`~apipeline.audio.level.NoiseFloorTracker`), so quiet recordings are converted and a room's
  hum between words is not; ``fixed`` closes blocks below ``silence_db``. A closed block is not analysed:
  the renderer emits silence and SOLA fades the previous tail out. With ``vad_gate`` a block Silero VAD
  does not call speech is closed too.
* :class:`Limiter` is the exit: a soft limiter (:func:`~apipeline.audio.level.soft_limit`), so loud
  input or a large pitch shift is never hard-clipped when written to an integer file.

VAD runs on a 16 kHz side chain (the block samples resampled with soxr "LQ"): the audio path is not
delayed, only the decision, by the resampler's hold-back (a few ms) and by Silero's 32 ms windows. So
with ``vad_gate`` the first 30-60 ms of an utterance can be rendered silent; that is why the gate is off
by default and the VAD then only reports ``UserStarted/StoppedSpeakingFrame`` in band.
"""

from __future__ import annotations

import numpy as np

from apipeline.audio.convert import to_float32
from apipeline.audio.level import AutoGain, NoiseFloorTracker, rms_db, soft_limit
from apipeline.audio.resample import StreamingResampler
from apipeline.audio.vad import SileroVad
from apipeline.errors import AudioFormatError, ParameterError
from apipeline.frames import (
    AudioRawFrame,
    EndFrame,
    Frame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.params import ParamSchema
from apipeline.processors.audio.features import GATE_KEY, READY_KEY, SEQ_KEY, BlockGeometry
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns

VAD_RATE = 16000


def _stage_schema(*names: str) -> ParamSchema:
    """The live settings a stage takes from ``UpdateSettingsFrame``: its slice of the one schema
    (:meth:`~apipeline.voice_changer.settings.VoiceChangerSettings.schema`)."""
    from apipeline.voice_changer.settings import VoiceChangerSettings

    own = VoiceChangerSettings.schema()
    return ParamSchema(own[n] for n in names)


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
        mode: ``adaptive`` (open ``margin_db`` above the tracked noise floor), ``fixed`` (open at
            ``silence_db``) or ``off``.
        silence_db: the fixed gate's RMS level (dBFS); None disables it.
        margin_db: the adaptive gate's margin above the noise floor.
        vad: run Silero VAD on the block samples and emit speaking frames in band.
        vad_gate: also close the gate on blocks the VAD does not call speech (see the module doc).
        vad_threshold: Silero speech probability threshold.
    """

    @property
    def settings_schema(self) -> ParamSchema:
        return _stage_schema("silence_db", "gate_margin_db")

    def __init__(
        self,
        geometry: BlockGeometry,
        *,
        mode: str = "fixed",
        silence_db: float | None = -60.0,
        margin_db: float = 12.0,
        vad: bool = True,
        vad_gate: bool = False,
        vad_threshold: float = 0.5,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if mode not in ("adaptive", "fixed", "off"):
            raise ParameterError(f"gate must be one of 'adaptive', 'fixed', 'off', got {mode!r}")
        self.geometry = geometry
        self.mode = mode
        self.silence_db = silence_db
        self.vad_gate = vad_gate
        self._tracker = NoiseFloorTracker(geometry.block / geometry.sample_rate, margin_db=margin_db)
        self.blocks = 0
        self._vad = SileroVad(VAD_RATE, vad_threshold) if (vad or vad_gate) else None
        self._resampler: StreamingResampler | None = None
        self.seq = 0
        self.blocks_gated = 0
        self.speaking = False

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._reset()

    @property
    def gate_margin_db(self) -> float:
        """The adaptive gate's margin (dB above the noise floor); settable mid-stream."""
        return self._tracker.margin_db

    @gate_margin_db.setter
    def gate_margin_db(self, value: float) -> None:
        self._tracker.margin_db = float(value)

    @property
    def noise_floor_db(self) -> float:
        """The adaptive gate's current noise-floor estimate (dBFS)."""
        return self._tracker.noise_db

    def _reset(self) -> None:
        self.seq = 0
        self.speaking = False
        self._tracker.reset()
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
        kept = x[g.kept_start : g.kept_start + g.kept_size]
        if self.mode == "adaptive":
            is_open = self._tracker.update(rms_db(kept))
        elif self.mode == "fixed" and self.silence_db is not None:
            level = 10.0 ** (self.silence_db / 20.0)
            rms = np.sqrt(np.mean(np.square(kept.astype(np.float64)))) if kept.size else 0.0
            is_open = bool(rms >= level) if kept.size else False
        if self._vad is not None and self._resampler is not None:
            speech = await self._detect(x[g.context :])
            if self.vad_gate and not speech:
                is_open = False
        self.blocks += 1
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
      peak level in :attr:`peak` (both before the gain);
    * with several channels the voice is their mean (the mid); each channel's difference from it (the
      side) goes to :attr:`side`, a :class:`SideBuffer` that :class:`SideRestore` adds back at the output;
    * ``input_gain_db`` multiplies the signal, then ``agc`` (:class:`~apipeline.audio.level.AutoGain`)
      brings speech towards -20 dBFS; both may change mid-stream.
    """

    @property
    def settings_schema(self) -> ParamSchema:
        return _stage_schema("input_gain_db", "agc")

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        input_gain_db: float = 0.0,
        agc: bool = False,
        name: str | None = None,
    ) -> None:
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
        self.input_gain_db = float(input_gain_db)
        self.agc = bool(agc)
        self._agc = AutoGain(sample_rate)
        self.side = SideBuffer(channels) if channels > 1 else None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._agc.reset()
        if self.side is not None:
            self.side.reset()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._guard(frame)
            return
        await self.push_frame(frame, direction)

    async def _guard(self, frame: AudioRawFrame) -> None:
        if frame.sample_rate != self.sample_rate or frame.num_channels != self.channels:
            raise AudioFormatError(
                f"{self.name}: the stream is {self.sample_rate} Hz, {self.channels} ch; {frame.name} is "
                f"{frame.sample_rate} Hz, {frame.num_channels} ch (frame dropped)"
            )
        audio = np.asarray(frame.audio)
        if audio.shape[0] == 0:
            raise AudioFormatError(f"{self.name}: empty audio frame {frame.name} (dropped)")
        x = to_float32(audio)
        finite = np.isfinite(x)
        bad = int(x.size - np.count_nonzero(finite))
        if bad:
            x = np.where(finite, x, np.float32(0.0)).astype(np.float32)
            self.non_finite_frames += 1
        level = np.abs(x) if x.ndim == 1 else np.abs(x).max(axis=1)  # per frame, over the channels
        self.clipped += int(np.count_nonzero(level >= 0.999))
        self.peak = max(self.peak, float(np.max(level)))
        side = None
        if x.ndim == 2:
            if x.shape[1] > 1:
                mid = x.mean(axis=1, dtype=np.float32)
                side = x - mid[:, None]
                x = mid
            else:
                x = x[:, 0]
        if self.side is not None:
            self.side.push(side if side is not None else np.zeros((x.shape[0], self.channels), np.float32))
        self.samples += x.shape[0]
        if self.input_gain_db:
            x = (x * np.float32(10.0 ** (self.input_gain_db / 20.0))).astype(np.float32)
        if self.agc:
            x = self._agc.process(x)
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


class Limiter(FrameProcessor):
    """Soft-limit every audio frame (:func:`~apipeline.audio.level.soft_limit`, -0.5 dBFS ceiling).

    Memoryless: no latency, no state. ``enabled`` may change mid-stream (``limiter``); :attr:`limited`
    counts the samples it had to bend (above the knee).

    Args:
        enabled: limit (False: pass the audio as it is).
        ceiling: the level the output approaches and never reaches (linear, full scale = 1).
    """

    @property
    def settings_schema(self) -> ParamSchema:
        return _stage_schema("limiter")

    latency = 0.0

    def __init__(self, *, enabled: bool = True, ceiling: float = 0.944, name: str | None = None) -> None:
        super().__init__(name=name)
        if not 0.1 <= ceiling <= 1.0:
            raise ParameterError(f"limiter ceiling must be within 0.1..1, got {ceiling}")
        self.limiter = enabled
        self.ceiling = ceiling
        self.limited = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self.limiter and direction is FrameDirection.DOWNSTREAM and isinstance(frame, AudioRawFrame):
            x = to_float32(np.asarray(frame.audio))
            self.limited += int(np.count_nonzero(np.abs(x) > 0.75 * self.ceiling))
            y = soft_limit(x, self.ceiling)
            frame = AudioRawFrame(
                y, frame.sample_rate, frame.num_channels, pts=frame.pts, metadata=frame.metadata
            )
        await self.push_frame(frame, direction)


class SideBuffer:
    """FIFO of per-channel residuals ``(frames, channels)`` from the input guard to :class:`SideRestore`."""

    def __init__(self, channels: int, delay: int = 0) -> None:
        self.channels = channels
        self.delay = delay
        self.reset()

    def reset(self) -> None:
        """Empty, then ``delay`` frames of zeros (the input guard calls it at start)."""
        d = self.delay
        self._chunks: list[np.ndarray] = [np.zeros((d, self.channels), np.float32)] if d else []
        self._size = d

    def push(self, side: np.ndarray) -> None:
        self._chunks.append(np.asarray(side, np.float32))
        self._size += side.shape[0]

    def pop(self, n: int) -> np.ndarray:
        """The next ``n`` frames (zeros past the end of what was pushed)."""
        data = (
            np.concatenate(self._chunks)
            if len(self._chunks) > 1
            else (self._chunks[0] if self._chunks else np.zeros((0, self.channels), np.float32))
        )
        out, rest = data[:n], data[n:]
        self._chunks = [rest] if rest.shape[0] else []
        self._size = rest.shape[0]
        if out.shape[0] < n:
            out = np.concatenate([out, np.zeros((n - out.shape[0], self.channels), np.float32)])
        return out


class SideRestore(FrameProcessor):
    """Mono converted voice + each channel's residual, delayed as the voice is: stereo in, stereo out.

    The voice changer converts the mid (the channels' mean: one voice, one F0 track, one phase-locked
    pulse train) and restores what made the channels differ -- room, ambience, width -- delayed by the
    DAG's nominal delay ``delay`` so it lines up with the converted mid (within SOLA's small search).
    Why mid/side rather than per channel: docs/design.md ("Stereo").
    """

    latency = 0.0

    def __init__(self, side: SideBuffer, delay: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        from apipeline.audio.format import AudioFormat

        self.side = side
        side.delay = delay  # the guard resets the buffer to this many zeros at start
        side.reset()
        self.channels = side.channels
        self.output_format = AudioFormat(channels=side.channels)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, AudioRawFrame):
            y = to_float32(np.asarray(frame.audio))
            mono = y if y.ndim == 1 else y.mean(axis=1, dtype=np.float32)
            out = mono[:, None] + self.side.pop(mono.shape[0])
            frame = AudioRawFrame(
                np.ascontiguousarray(out, np.float32), frame.sample_rate, self.channels, pts=frame.pts,
                metadata=frame.metadata,
            )  # fmt: skip
        await self.push_frame(frame, direction)
