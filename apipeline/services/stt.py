"""Speech to text: the base processor and its two engine shapes (streaming and segmented).

:class:`STTService` takes mono audio at ``sample_rate`` and the user's turn boundaries
(``UserStartedSpeakingFrame`` / ``UserStoppedSpeakingFrame``, from a VAD upstream). An utterance
starts at the start frame with up to ``preroll_ms`` of the audio before it (the VAD decides a window or
two late) and ends at the stop frame, where the final :class:`~apipeline.frames.TranscriptionFrame`
is pushed *before* the stop frame is passed on, so whatever follows sees the transcript of a turn
before its end.

* Streaming engines (pocketsphinx) implement :meth:`STTService.begin_utterance`,
  :meth:`STTService.feed` (returns a partial hypothesis or ``None``) and
  :meth:`STTService.end_utterance` (returns the final text); partials become
  :class:`~apipeline.frames.InterimTranscriptionFrame`.
* Segmented engines (an HTTP transcription API) implement :meth:`STTService.transcribe` on the
  utterance's audio.

An utterance longer than ``max_utterance_s`` (a monologue) is finalized at that length and a new one
begins, so memory stays bounded whatever the user does. ``ttfb_ns`` is the time from the end of speech
(the stop frame's arrival) to the final transcript.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import to_int16
from apipeline.audio.format import AudioFormat
from apipeline.errors import ParameterError
from apipeline.frames import (
    AudioRawFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.processors.audio.convert import check_audio_frame
from apipeline.processors.frame_processor import FrameDirection
from apipeline.services.ai_service import AIService

T = TypeVar("T")


class STTService(AIService):
    """Base of speech-to-text services (see the module docstring).

    Args:
        sample_rate: the audio rate it takes (mono); other rates are refused with an ``ErrorFrame``.
        audio_passthrough: pass the user's audio on downstream (turn-taking counts it).
        preroll_ms: audio kept from before the turn's start frame and fed first.
        max_utterance_s: longest utterance fed to the engine before it is finalized (turn limit).
        interim_results: push partial hypotheses as they change.
        user_id: set on every transcript.
    """

    segmented = False

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        audio_passthrough: bool = True,
        preroll_ms: float = 300.0,
        max_utterance_s: float = 30.0,
        interim_results: bool = True,
        user_id: str = "user",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if max_utterance_s <= 0:
            raise ParameterError(f"max_utterance_s must be positive, got {max_utterance_s}")
        self.sample_rate = sample_rate
        self.input_format = AudioFormat(sample_rate, 1)
        self.audio_passthrough = audio_passthrough
        self.max_utterance_samples = round(max_utterance_s * sample_rate)
        self.interim_results = interim_results
        self.user_id = user_id
        self._preroll: deque[NDArray[np.int16]] = deque()
        self._preroll_samples = 0
        self._preroll_max = round(preroll_ms * sample_rate / 1000)
        self._in_utterance = False
        self._utterance_samples = 0
        self._segment: list[NDArray[np.int16]] = []
        self._last_interim = ""
        self.utterances = 0

    # -- engine hooks (override) ---------------------------------------------------------------

    def begin_utterance(self) -> None:
        """Streaming engines: a new utterance starts (engine thread)."""

    def feed(self, pcm: NDArray[np.int16]) -> str | None:
        """Streaming engines: decode more audio; return the partial hypothesis or ``None``."""
        raise NotImplementedError

    def end_utterance(self) -> str:
        """Streaming engines: the utterance is over; return its final text (engine thread)."""
        raise NotImplementedError

    async def transcribe(self, audio: NDArray[np.int16]) -> str:
        """Segmented engines: the text of one utterance's audio (int16 mono at ``sample_rate``)."""
        raise NotImplementedError

    async def run_in_engine(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking engine call; streaming engines override to use their own thread."""
        return fn(*args)

    # -- frames ----------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, AudioRawFrame):
                await self._audio(frame)
                if self.audio_passthrough:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, UserStartedSpeakingFrame):
                await self._begin()
            elif isinstance(frame, UserStoppedSpeakingFrame):
                await self._end()
        await self.push_frame(frame, direction)

    async def _audio(self, frame: AudioRawFrame) -> None:
        pcm = to_int16(check_audio_frame(frame, self.name, self.input_format))
        if not self._in_utterance:
            self._preroll.append(pcm)
            self._preroll_samples += len(pcm)
            while self._preroll and self._preroll_samples - len(self._preroll[0]) >= self._preroll_max:
                self._preroll_samples -= len(self._preroll.popleft())
            return
        await self._feed(pcm)

    async def _feed(self, pcm: NDArray[np.int16]) -> None:
        room = self.max_utterance_samples - self._utterance_samples
        if len(pcm) > room:
            # The turn limit: finalize what we have and go on with a fresh utterance.
            if room > 0:
                await self._feed(pcm[:room])
            await self._finalize()
            await self._start_utterance()
            await self._feed(pcm[room:])
            return
        self._utterance_samples += len(pcm)
        if self.segmented:
            self._segment.append(pcm)
            return
        partial = await self.run_in_engine(self.feed, pcm)
        if self.interim_results and partial and partial != self._last_interim:
            self._last_interim = partial
            await self.push_frame(InterimTranscriptionFrame(partial, user_id=self.user_id, timestamp=_now()))

    async def _start_utterance(self) -> None:
        self._in_utterance = True
        self._utterance_samples = 0
        self._last_interim = ""
        self._segment = []
        if not self.segmented:
            await self.run_in_engine(self.begin_utterance)

    async def _begin(self) -> None:
        if self._in_utterance:
            return
        await self._start_utterance()
        preroll = list(self._preroll)
        self._preroll.clear()
        self._preroll_samples = 0
        for pcm in preroll:
            await self._feed(pcm)

    async def _end(self) -> None:
        if not self._in_utterance:
            return
        self.start_ttfb()
        await self._finalize()
        self.stop_ttfb()
        self._in_utterance = False

    async def _finalize(self) -> None:
        self.utterances += 1
        self._utterance_samples = 0
        try:
            if self.segmented:
                audio = np.concatenate(self._segment) if self._segment else np.zeros(0, np.int16)
                self._segment = []
                text = (await self.transcribe(audio)).strip() if len(audio) else ""
            else:
                text = (await self.run_in_engine(self.end_utterance)).strip()
        except Exception as exc:  # the turn is lost, the conversation is not
            await self.push_service_error(exc)
            return
        if text:
            await self.push_frame(TranscriptionFrame(text, user_id=self.user_id, timestamp=_now()))

    async def stop(self, frame: EndFrame) -> None:
        await self._end()
        await super().stop(frame)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
