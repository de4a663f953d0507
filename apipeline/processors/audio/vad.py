"""Voice activity as in-band frames, optionally gating silence (shell over :class:`SileroVad`)."""

from __future__ import annotations

from collections import deque

from apipeline.audio.format import AudioFormat
from apipeline.audio.vad import SileroVad, VadEvent
from apipeline.frames import (
    AudioRawFrame,
    EndFrame,
    Frame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

SAMPLE_KEY = "vad_sample"


class VADProcessor(FrameProcessor):
    """Detect speech in mono 16 (or 8) kHz audio; emit ``UserStarted/StoppedSpeakingFrame`` in band.

    Audio frames pass on unchanged. Each event frame is placed by its sample position: before the
    audio frame that begins after the event, after the one it falls in; its ``metadata["vad_sample"]``
    is the position (samples since the stream start, widened by ``speech_pad_ms``).

    With ``gate=True`` audio frames outside speech are held back instead of passed on, so downstream
    stages do no work on silence; when speech starts, up to ``preroll_ms`` of the held audio is released
    first (the detector decides a window or two late). ``frames_gated`` counts the frames dropped.

    Other sample rates or channel counts raise AudioFormatError: resample and mix upstream.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        threshold: float = 0.5,
        min_silence_ms: float = 100.0,
        speech_pad_ms: float = 30.0,
        gate: bool = False,
        preroll_ms: float = 100.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.vad = SileroVad(
            sample_rate, threshold, min_silence_ms=min_silence_ms, speech_pad_ms=speech_pad_ms
        )
        self.input_format = AudioFormat(sample_rate=sample_rate, channels=1)
        self.output_format = self.input_format
        self.latency = 0.0  # audio is never delayed; only the events come a window or two late
        self.gate = gate
        self.preroll = round(preroll_ms * sample_rate / 1000)
        self.frames_gated = 0
        self._held: deque[AudioRawFrame] = deque()
        self._held_samples = 0
        self._pos = 0
        self._speaking = False

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self.vad.reset()
        self._pos = 0
        self._speaking = False
        self._held.clear()
        self._held_samples = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._handle_audio(frame)
            return
        await self.push_frame(frame, direction)

    async def _handle_audio(self, frame: AudioRawFrame) -> None:
        audio = check_audio_frame(frame, self.name, self.input_format)
        events = self.vad.process(audio)
        start = self._pos
        self._pos += len(audio)
        pushed = False
        for event in events:
            if not pushed and event.sample > start:
                await self._emit_audio(frame)
                pushed = True
            await self._emit_event(event)
        if not pushed:
            await self._emit_audio(frame)

    async def _emit_audio(self, frame: AudioRawFrame) -> None:
        if not self.gate or self._speaking:
            await self.push_frame(frame)
            return
        self._held.append(frame)
        self._held_samples += frame.num_frames
        while self._held and self._held_samples - self._held[0].num_frames >= self.preroll:
            self._held_samples -= self._held.popleft().num_frames
            self.frames_gated += 1

    async def _emit_event(self, event: VadEvent) -> None:
        meta = {SAMPLE_KEY: event.sample}
        if event.kind == "start":
            self._speaking = True
            await self.push_frame(UserStartedSpeakingFrame(metadata=meta))
            while self._held:
                await self.push_frame(self._held.popleft())
            self._held_samples = 0
        else:
            self._speaking = False
            await self.push_frame(UserStoppedSpeakingFrame(metadata=meta))

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        for event in self.vad.flush():
            await self._emit_event(event)
        self.frames_gated += len(self._held)
        self._held.clear()
        self._held_samples = 0
