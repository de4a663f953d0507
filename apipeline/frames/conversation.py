"""Frames of a spoken conversation: transcripts, LLM turns, speech synthesis and who is speaking.

Names follow pipecat's, so its users find them where they expect:

* speech to text: :class:`TranscriptionFrame` (final) and :class:`InterimTranscriptionFrame`;
* the LLM turn: :class:`LLMMessagesFrame` / :class:`LLMContextFrame` in, then
  :class:`LLMFullResponseStartFrame`, :class:`LLMTextFrame` tokens, :class:`LLMFullResponseEndFrame`;
* text to speech: :class:`TTSSpeakFrame` (say this), :class:`TTSStartedFrame`, :class:`TTSAudioRawFrame`,
  :class:`TTSTextFrame` (a word whose audio follows), :class:`TTSStoppedFrame`;
* who speaks: :class:`BotStartedSpeakingFrame` / :class:`BotStoppedSpeakingFrame` (system frames, so
  they reach the turn-taking logic upstream at once). The user's side,
  :class:`~apipeline.frames.UserStartedSpeakingFrame` / :class:`~apipeline.frames.UserStoppedSpeakingFrame`,
  lives in :mod:`~apipeline.frames.control` (in band with the audio).

``response_id`` ties every frame of one bot answer together (LLM start/end, TTS start/stop, audio and
words), so a consumer can tell the frames of a cancelled answer from those of the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apipeline.frames.base import ControlFrame, DataFrame, SystemFrame
from apipeline.frames.data import AudioRawFrame, TextFrame


@dataclass(slots=True)
class TranscriptionFrame(TextFrame):
    """A final transcript of one user utterance (``text``), from speech to text."""

    user_id: str = ""
    timestamp: str = ""
    language: str | None = None


@dataclass(slots=True)
class InterimTranscriptionFrame(TextFrame):
    """A partial transcript: the best hypothesis so far; a later one or the final replaces it."""

    user_id: str = ""
    timestamp: str = ""
    language: str | None = None


@dataclass(slots=True)
class LLMMessagesFrame(DataFrame):
    """Ask the LLM to answer these messages (OpenAI shape: ``{"role": ..., "content": ...}``)."""

    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class LLMContextFrame(DataFrame):
    """Ask the LLM to answer a conversation context (an :class:`~apipeline.services.LLMContext`)."""

    context: Any = None


@dataclass(slots=True)
class LLMFullResponseStartFrame(ControlFrame):
    """An LLM answer begins (pushed with its first token)."""

    response_id: int | None = None


@dataclass(slots=True)
class LLMFullResponseEndFrame(ControlFrame):
    """An LLM answer is complete (not pushed for an answer cancelled by an interruption)."""

    response_id: int | None = None


@dataclass(slots=True)
class LLMTextFrame(TextFrame):
    """A piece of an LLM answer as it streams (one or more tokens)."""

    response_id: int | None = None


@dataclass(slots=True)
class TTSSpeakFrame(DataFrame):
    """Ask text to speech to say ``text`` now (a greeting, a canned answer)."""

    text: str = ""


@dataclass(slots=True)
class TTSStartedFrame(ControlFrame):
    """Speech synthesis of an answer begins (pushed with its first audio)."""

    response_id: int | None = None


@dataclass(slots=True)
class TTSStoppedFrame(ControlFrame):
    """Speech synthesis of an answer is complete."""

    response_id: int | None = None


@dataclass(slots=True, eq=False)
class TTSAudioRawFrame(AudioRawFrame):
    """Synthesized speech: audio of the bot's voice."""

    response_id: int | None = None


@dataclass(slots=True)
class TTSTextFrame(TextFrame):
    """A word (or a clause, for engines without word timing) whose audio follows this frame.

    The bot's output passes it on when that audio starts playing, so what reaches the assistant's
    context aggregator is what the user actually heard.
    """

    response_id: int | None = None


@dataclass(slots=True)
class BotStartedSpeakingFrame(SystemFrame):
    """The first audio of a bot answer left the output."""

    response_id: int | None = None


@dataclass(slots=True)
class BotStoppedSpeakingFrame(SystemFrame):
    """The bot's audio ended (its answer was played out, or it was interrupted)."""

    response_id: int | None = None
    interrupted: bool = False
