"""The conversation context and the two aggregators that keep it (pipecat's shape).

:class:`LLMContext` holds OpenAI-shaped messages: a system prompt and a bounded history (the oldest
turns go first, so memory and prompt length stay bounded however long the call).

* :class:`LLMUserContextAggregator` (after speech to text) gathers the transcripts of one user turn
  and, at ``UserStoppedSpeakingFrame``, adds the user message and asks the LLM to answer
  (:class:`~apipeline.frames.LLMContextFrame`). The user's audio ends here.
* :class:`LLMAssistantContextAggregator` (after the bot's output) gathers the words of the answer as
  they are played (:class:`~apipeline.frames.TTSTextFrame`) and adds the assistant message when the
  answer ends — or, at an interruption, the words played so far: the context holds what the user heard,
  not what the model meant to say.

``context_aggregator = LLMContextAggregatorPair(context)`` gives both: ``.user()`` and ``.assistant()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apipeline.errors import ParameterError
from apipeline.frames import (
    AudioRawFrame,
    Frame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    StartInterruptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class LLMContext:
    """Messages of a conversation: the system prompt first, then at most ``max_messages`` others.

    Args:
        messages: initial messages (a ``"system"`` one becomes the system prompt).
        system_prompt: the system prompt (overrides one in ``messages``).
        max_messages: history kept (user and assistant messages); older ones are dropped.
        max_message_chars: longest message kept (longer ones are cut at a word boundary).
    """

    def __init__(
        self,
        messages: Iterable[dict[str, Any]] = (),
        *,
        system_prompt: str | None = None,
        max_messages: int = 20,
        max_message_chars: int = 2000,
    ) -> None:
        if max_messages < 1 or max_message_chars < 1:
            raise ParameterError("max_messages and max_message_chars must be >= 1")
        self.max_messages = max_messages
        self.max_message_chars = max_message_chars
        self.system_prompt = system_prompt
        self._history: list[dict[str, Any]] = []
        for message in messages:
            if message.get("role") == "system" and system_prompt is None:
                self.system_prompt = str(message.get("content", ""))
            elif message.get("role") != "system":
                self.add_message(message)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.get_messages()

    def get_messages(self) -> list[dict[str, Any]]:
        """A copy of the messages, system prompt first."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return head + [dict(m) for m in self._history]

    def add_message(self, message: dict[str, Any]) -> None:
        content = str(message.get("content", ""))
        if len(content) > self.max_message_chars:
            cut = content.rfind(" ", 0, self.max_message_chars)
            content = content[: cut if cut > 0 else self.max_message_chars]
        self._history.append({**message, "content": content})
        if len(self._history) > self.max_messages:
            del self._history[: len(self._history) - self.max_messages]

    def add_messages(self, messages: Iterable[dict[str, Any]]) -> None:
        for message in messages:
            self.add_message(message)


class LLMUserContextAggregator(FrameProcessor):
    """Turn a user's transcripts into a user message and an LLM request at the end of the turn.

    Events: ``on_user_turn`` ``(aggregator, text)`` when a turn is added to the context.
    """

    EVENTS = ("on_user_turn",)

    def __init__(self, context: LLMContext, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.context = context
        self._parts: list[str] = []
        self._chars = 0
        self.turns = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, TranscriptionFrame):
                self._add(frame.text)
                return
            if isinstance(frame, InterimTranscriptionFrame):
                return
            if isinstance(frame, AudioRawFrame) and not isinstance(frame, TTSAudioRawFrame):
                return  # the user's voice ends here
            if isinstance(frame, UserStartedSpeakingFrame):
                self._parts, self._chars = [], 0
            elif isinstance(frame, UserStoppedSpeakingFrame):
                await self.push_frame(frame, direction)
                await self._complete_turn()
                return
        await self.push_frame(frame, direction)

    def _add(self, text: str) -> None:
        text = text.strip()
        room = self.context.max_message_chars - self._chars
        if text and room > 0:
            self._parts.append(text[:room])
            self._chars += len(text[:room]) + 1

    async def _complete_turn(self) -> None:
        text = " ".join(self._parts).strip()
        self._parts, self._chars = [], 0
        if not text:
            return
        self.turns += 1
        self.context.add_message({"role": "user", "content": text})
        await self._call_event_handler("on_user_turn", text)
        await self.push_frame(LLMContextFrame(self.context))


class LLMAssistantContextAggregator(FrameProcessor):
    """Add the bot's answer to the context as it was heard (placed after the bot's output).

    Attributes:
        last_response: the text of the last assistant message added.
        last_interrupted: whether that answer was cut by an interruption.

    Events: ``on_assistant_turn`` ``(aggregator, text, interrupted)``.
    """

    EVENTS = ("on_assistant_turn",)

    def __init__(self, context: LLMContext, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.context = context
        self._words: list[str] = []
        self._active = False
        self.last_response = ""
        self.last_interrupted = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, (LLMFullResponseStartFrame, TTSStartedFrame)):
                if not self._active:
                    self._active, self._words = True, []
            elif isinstance(frame, TTSTextFrame):
                self._active = True
                self._words.append(frame.text.strip())
            elif isinstance(frame, (LLMFullResponseEndFrame, TTSStoppedFrame)):
                await self._commit(interrupted=False)
            elif isinstance(frame, StartInterruptionFrame) and self.allow_interruptions:
                await self._commit(interrupted=True)
        await self.push_frame(frame, direction)

    async def _commit(self, *, interrupted: bool) -> None:
        if not self._active:
            return
        self._active = False
        text = " ".join(w for w in self._words if w)
        self._words = []
        if not text:
            return
        self.context.add_message({"role": "assistant", "content": text})
        self.last_response, self.last_interrupted = text, interrupted
        await self._call_event_handler("on_assistant_turn", text, interrupted)


class LLMContextAggregatorPair:
    """Both aggregators of one context: ``.user()`` before the LLM, ``.assistant()`` after the output."""

    def __init__(self, context: LLMContext) -> None:
        self.context = context
        self._user = LLMUserContextAggregator(context)
        self._assistant = LLMAssistantContextAggregator(context)

    def user(self) -> LLMUserContextAggregator:
        return self._user

    def assistant(self) -> LLMAssistantContextAggregator:
        return self._assistant
