"""The language model service: a context in, the answer streamed out token by token.

:class:`LLMService` answers each :class:`~apipeline.frames.LLMContextFrame` (or
:class:`~apipeline.frames.LLMMessagesFrame`) with ``LLMFullResponseStartFrame``, the answer as
:class:`~apipeline.frames.LLMTextFrame` pieces as the engine streams them, then
``LLMFullResponseEndFrame``; all carry the answer's ``response_id``. The start frame is pushed together
with the first token, so the processor's TTFB metric is the time to the first token.

Interruption: the request being answered is a data frame, so ``StartInterruptionFrame`` cancels the
worker that streams it; the engine's stream is closed at once (a local model stops before its next
token, an HTTP stream is closed), no end frame is pushed for it, and nothing it produces later is seen.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from apipeline.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesFrame,
    LLMTextFrame,
)
from apipeline.processors.frame_processor import FrameDirection
from apipeline.services.ai_service import AIService

_response_ids = itertools.count(1)


class LLMService(AIService):
    """Base of LLM services; subclasses implement :meth:`run_llm`.

    ``last_response`` is the full text of the last answer streamed to completion; ``responses`` counts
    answers started.
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.last_response = ""
        self.responses = 0

    def run_llm(self, messages: list[dict[str, Any]]) -> AsyncIterator[str]:
        """Stream the answer to ``messages`` (OpenAI shape) as text pieces."""
        raise NotImplementedError

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, (LLMContextFrame, LLMMessagesFrame)):
            messages = frame.messages if isinstance(frame, LLMMessagesFrame) else frame.context.get_messages()
            await self._answer(messages)
            return
        await self.push_frame(frame, direction)

    async def _answer(self, messages: list[dict[str, Any]]) -> None:
        response_id = next(_response_ids)
        self.responses += 1
        self.start_ttfb()
        parts: list[str] = []
        try:
            async with contextlib.aclosing(self.run_llm(messages)) as stream:  # type: ignore[type-var]
                async for text in stream:
                    if not text:
                        continue
                    if not parts:
                        self.stop_ttfb()
                        await self.push_frame(LLMFullResponseStartFrame(response_id=response_id))
                    parts.append(text)
                    await self.push_frame(LLMTextFrame(text, response_id=response_id))
        except Exception as exc:
            await self.push_service_error(exc)
        if not parts:
            # Nothing to say (or an error before the first token): still a complete, empty answer,
            # so aggregators downstream close the turn.
            await self.push_frame(LLMFullResponseStartFrame(response_id=response_id))
        self.last_response = "".join(parts)
        await self.push_frame(LLMFullResponseEndFrame(response_id=response_id))
