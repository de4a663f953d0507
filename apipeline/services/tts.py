"""Text to speech: the base processor that speaks streamed LLM text clause by clause.

:class:`TTSService` gathers :class:`~apipeline.frames.LLMTextFrame` pieces into clauses
(:class:`~apipeline.services.text.ClauseSplitter`) and synthesizes each one as soon as it is complete,
so the bot starts speaking after the first clause, not the first sentence. Engines implement
:meth:`TTSService.run_tts`, an async iterator of audio arrays at ``engine_sample_rate`` and, where the
engine knows them, :class:`WordMark` word timings. The base resamples to ``sample_rate``, cuts the audio
into ``chunk_ms`` frames (:class:`~apipeline.frames.TTSAudioRawFrame`) and places a
:class:`~apipeline.frames.TTSTextFrame` before the audio of each word (engines without word timing: one
per clause, before its audio), so the output can tell which words were actually played.

Per answer: ``TTSStartedFrame`` with the first audio (the TTFB metric is the time from the clause's
text to that audio), ``TTSStoppedFrame`` after the last. ``TTSSpeakFrame`` says a text as an answer of
its own. An interruption cancels the synthesis in flight (the engine stops within one audio buffer) and
forgets the text gathered so far.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import to_float32, to_int16
from apipeline.audio.format import AudioFormat
from apipeline.audio.resample import StreamingResampler
from apipeline.errors import ParameterError
from apipeline.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartInterruptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from apipeline.processors.frame_processor import FrameDirection
from apipeline.services.ai_service import AIService
from apipeline.services.llm import _response_ids
from apipeline.services.text import ClauseSplitter


@dataclass(frozen=True, slots=True)
class WordMark:
    """A word of the clause being synthesized, starting at ``sample`` (engine rate, from the clause start)."""

    text: str
    sample: int


class TTSService(AIService):
    """Base of text-to-speech services (see the module docstring).

    Args:
        sample_rate: rate of the audio frames it pushes (mono int16).
        chunk_ms: length of each audio frame.
        first_max_words / max_words: see :class:`~apipeline.services.text.ClauseSplitter`.
    """

    engine_sample_rate = 16000
    word_timing = False

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        chunk_ms: float = 20.0,
        first_max_words: int = 6,
        max_words: int = 14,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if sample_rate <= 0 or chunk_ms <= 0:
            raise ParameterError(
                f"sample_rate and chunk_ms must be positive, got {sample_rate} and {chunk_ms}"
            )
        self.sample_rate = sample_rate
        self.output_format = AudioFormat(sample_rate, 1)
        self.chunk = max(1, round(chunk_ms * sample_rate / 1000))
        self._splitter = ClauseSplitter(first_max_words=first_max_words, max_words=max_words)
        self._response_id: int | None = None
        self._speaking = False
        self.clauses = 0

    def run_tts(self, text: str) -> AsyncIterator[NDArray | WordMark]:
        """Synthesize ``text``: audio arrays (int16 or float, mono, ``engine_sample_rate``) and word marks."""
        raise NotImplementedError

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, LLMTextFrame):
            if frame.response_id is not None:
                self._response_id = frame.response_id
            for clause in self._splitter.push(frame.text):
                await self._say(clause)
            return
        if isinstance(frame, LLMFullResponseStartFrame):
            self._splitter.reset()
            self._speaking = False
            self._response_id = frame.response_id
        elif isinstance(frame, LLMFullResponseEndFrame):
            rest = self._splitter.flush()
            if rest:
                await self._say(rest)
            await self._stopped()
        elif isinstance(frame, TTSSpeakFrame):
            self._splitter.reset()
            self._speaking = False
            self._response_id = next(_response_ids)
            if frame.text.strip():
                await self._say(frame.text.strip())
            await self._stopped()
            return
        elif isinstance(frame, StartInterruptionFrame):
            self._splitter.reset()
            self._speaking = False
        await self.push_frame(frame, direction)

    async def _stopped(self) -> None:
        if self._speaking:
            self._speaking = False
            await self.push_frame(TTSStoppedFrame(response_id=self._response_id))

    async def _say(self, text: str) -> None:
        self.clauses += 1
        rid = self._response_id
        resampler = (
            StreamingResampler(self.engine_sample_rate, self.sample_rate, 1, "MQ")
            if self.engine_sample_rate != self.sample_rate
            else None
        )
        ratio = self.sample_rate / self.engine_sample_rate
        marks: deque[tuple[int, str]] = deque()
        if not self.word_timing:
            marks.append((0, text))
        pending = np.zeros(0, dtype=np.int16)
        emitted = 0
        if not self._speaking:
            self.start_ttfb()

        async def emit(audio: NDArray[np.int16]) -> None:
            nonlocal emitted
            end = emitted + len(audio)
            while marks and marks[0][0] < end:
                await self.push_frame(TTSTextFrame(marks.popleft()[1], response_id=rid))
            if not self._speaking:
                self._speaking = True
                self.stop_ttfb()
                await self.push_frame(TTSStartedFrame(response_id=rid))
            await self.push_frame(TTSAudioRawFrame(audio, self.sample_rate, 1, response_id=rid))
            emitted = end

        try:
            async with contextlib.aclosing(self.run_tts(text)) as stream:  # type: ignore[type-var]
                async for item in stream:
                    if isinstance(item, WordMark):
                        marks.append((round(item.sample * ratio), item.text))
                        continue
                    audio = to_float32(np.asarray(item).reshape(-1))
                    if resampler is not None:
                        audio = resampler.process(audio)
                    pending = np.concatenate([pending, to_int16(audio)])
                    while len(pending) >= self.chunk:
                        await emit(pending[: self.chunk])
                        pending = pending[self.chunk :]
            if resampler is not None:
                pending = np.concatenate([pending, to_int16(resampler.flush())])
            while len(pending):
                await emit(pending[: self.chunk])
                pending = pending[self.chunk :]
        except Exception as exc:
            await self.push_service_error(exc)
        while marks:  # words past the last audio (rare): still part of what was said
            await self.push_frame(TTSTextFrame(marks.popleft()[1], response_id=rid))
