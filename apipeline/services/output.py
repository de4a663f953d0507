"""The bot's voice leaving the pipeline: real-time pacing, who is speaking, and barge-in.

:class:`BotAudioOutput` is where synthesized speech is "played" (pipecat's output transport plays this
part). With ``realtime=True`` each audio frame is passed on when it starts playing and the output then
waits out its duration on the monotonic clock, so frames behind it wait in this processor's queue — which
is exactly the audio an interruption must drop. ``TTSTextFrame`` words travel in the same queue, so they
pass on when their audio starts: what reaches the assistant's context aggregator downstream is what the
user heard. With ``realtime=False`` (files, tests) frames pass on at once.

It tells everyone who speaks: ``BotStartedSpeakingFrame`` with the first audio of an answer and
``BotStoppedSpeakingFrame`` after its last (``TTSStoppedFrame``) or at an interruption, both pushed
upstream (to turn taking) and downstream. ``StartInterruptionFrame`` drops every queued audio frame and
word and cancels the wait of the frame playing; no audio of the interrupted answer leaves afterwards.
"""

from __future__ import annotations

import asyncio

from apipeline.frames import (
    AudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    StartInterruptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from apipeline.processors.async_frame_processor import AsyncFrameProcessor
from apipeline.processors.frame_processor import FrameDirection, monotonic_ns


class BotAudioOutput(AsyncFrameProcessor):
    """Play the bot's audio in real time (or pass it through), report speaking state, obey barge-in.

    Args:
        realtime: pace audio frames at their duration (a live call) or pass them on at once (files).
        max_queue_size: frames held before the producer waits (an answer's audio is queued here).

    Attributes:
        frames_played: audio frames passed on; ``interruptions``: interruptions that cut audio.
        last_interruption_ns: monotonic time the last interruption reached this output.
    """

    def __init__(self, *, realtime: bool = True, max_queue_size: int = 4096, name: str | None = None) -> None:
        super().__init__(max_queue_size=max_queue_size, name=name)
        self.realtime = realtime
        self.frames_played = 0
        self.interruptions = 0
        self.last_interruption_ns: int | None = None
        self._speaking = False
        self._response_id: int | None = None
        self._next_ns = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, AudioRawFrame):
                await self._play(frame)
                return
            if isinstance(frame, StartInterruptionFrame):
                self.last_interruption_ns = monotonic_ns()
                self._next_ns = 0
                await self.push_frame(frame, direction)
                if self._speaking:
                    self.interruptions += 1
                    await self._set_speaking(False, interrupted=True)
                return
            if isinstance(frame, (TTSStoppedFrame, EndFrame)) and self._speaking:
                await self._set_speaking(False)
        await self.push_frame(frame, direction)

    async def _play(self, frame: AudioRawFrame) -> None:
        if not self._speaking:
            if isinstance(frame, TTSAudioRawFrame):
                self._response_id = frame.response_id
            await self._set_speaking(True)
        now = monotonic_ns()
        if self._next_ns < now:
            self._next_ns = now
        await self.push_frame(frame)
        self.frames_played += 1
        if self.realtime:
            self._next_ns += round(frame.duration * 1e9)
            delay = (self._next_ns - monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)

    async def _set_speaking(self, speaking: bool, *, interrupted: bool = False) -> None:
        self._speaking = speaking
        rid = self._response_id
        for direction in (FrameDirection.UPSTREAM, FrameDirection.DOWNSTREAM):
            event: Frame = (
                BotStartedSpeakingFrame(response_id=rid)
                if speaking
                else BotStoppedSpeakingFrame(response_id=rid, interrupted=interrupted)
            )
            await self.push_frame(event, direction)
