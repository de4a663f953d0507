"""Turn taking and barge-in: when the user's speech interrupts the bot.

:class:`TurnTakingProcessor` sits after speech to text. It learns when the bot speaks from
``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` (pushed upstream by the output) and watches the
user's turns (``UserStartedSpeakingFrame`` from the VAD, the user's audio, transcripts). When the user
starts speaking it pushes ``StartInterruptionFrame`` downstream — to the context aggregator, LLM, TTS and
output, which drop and cancel what they have in flight — at once if the bot is not speaking (a pending
answer is cancelled: the user had not finished; nothing is pushed when nothing is in flight), and
while the bot speaks when the strategy agrees:

* :class:`ImmediateInterruption`: at the user's first word (the VAD's start);
* :class:`MinDurationInterruption`: after ``ms`` of user speech (coughs and short noises do not cut in);
* :class:`MinWordsInterruption`: after ``words`` transcribed words ("uh-huh" does not cut in).

A user turn spoken over the bot that never meets the strategy is not an answer to anything: its
transcripts are dropped (``ignored_turns`` counts them), so it does not start a new LLM request. The
interruption is pushed downstream only: the VAD and speech to text before this processor keep the
user's audio.
"""

from __future__ import annotations

from dataclasses import dataclass

from apipeline.errors import ParameterError
from apipeline.frames import (
    AudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    StartInterruptionFrame,
    StopInterruptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor, monotonic_ns


class InterruptionStrategy:
    """Decides whether the user's speech so far (while the bot speaks) interrupts the bot."""

    def should_interrupt(self, speech_s: float, words: int) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class ImmediateInterruption(InterruptionStrategy):
    """Interrupt as soon as the user starts speaking."""

    def should_interrupt(self, speech_s: float, words: int) -> bool:
        return True


@dataclass(frozen=True)
class MinDurationInterruption(InterruptionStrategy):
    """Interrupt after ``ms`` milliseconds of user speech (counted on the user's audio)."""

    ms: float = 300.0

    def __post_init__(self) -> None:
        if self.ms < 0:
            raise ParameterError(f"ms must be >= 0, got {self.ms}")

    def should_interrupt(self, speech_s: float, words: int) -> bool:
        return speech_s * 1000.0 >= self.ms


@dataclass(frozen=True)
class MinWordsInterruption(InterruptionStrategy):
    """Interrupt after ``words`` words of the user's (interim or final) transcript."""

    words: int = 2

    def __post_init__(self) -> None:
        if self.words < 1:
            raise ParameterError(f"words must be >= 1, got {self.words}")

    def should_interrupt(self, speech_s: float, words: int) -> bool:
        return words >= self.words


def parse_interruption_strategy(spec: str) -> InterruptionStrategy:
    """``"immediate"``, ``"ms:300"`` or ``"words:2"`` (the command line's ``--interrupt``)."""
    kind, _, value = spec.partition(":")
    try:
        if kind == "immediate" and not value:
            return ImmediateInterruption()
        if kind == "ms":
            return MinDurationInterruption(float(value))
        if kind == "words":
            return MinWordsInterruption(int(value))
    except ValueError as exc:
        raise ParameterError(f"bad interruption strategy {spec!r}: {exc}") from None
    raise ParameterError(f"bad interruption strategy {spec!r}: expected 'immediate', 'ms:N' or 'words:N'")


class TurnTakingProcessor(FrameProcessor):
    """Emit interruptions when the user speaks over the bot (see the module docstring).

    Attributes:
        bot_speaking: whether the bot's audio is playing.
        interruptions: interruptions pushed while the bot spoke; ``ignored_turns``: user turns over
            the bot that did not meet the strategy.
        last_user_start_ns: monotonic time the last ``UserStartedSpeakingFrame`` arrived.
    """

    def __init__(self, strategy: InterruptionStrategy | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.strategy = strategy or ImmediateInterruption()
        self.bot_speaking = False
        self.interruptions = 0
        self.ignored_turns = 0
        self.last_user_start_ns: int | None = None
        self._pending = False  # a user turn over the bot, not (yet) an interruption
        self._awaiting_answer = False  # a user turn ended and the bot has not answered it yet
        self._interrupted = False
        self._speech_s = 0.0
        self._held: list[Frame] = []
        self._words = 0
        self._interim_words = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                self.bot_speaking = True
            elif isinstance(frame, BotStoppedSpeakingFrame):
                self.bot_speaking = False
                self._awaiting_answer = False
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, UserStartedSpeakingFrame):
            await self._user_started(frame)
            return
        if self._pending:
            await self._pending_frame(frame, direction)
            return
        if isinstance(frame, UserStoppedSpeakingFrame):
            self._awaiting_answer = True
        if isinstance(frame, UserStoppedSpeakingFrame) and self._interrupted:
            self._interrupted = False
            await self.push_frame(frame, direction)
            await self.push_frame(StopInterruptionFrame(), direction)
            return
        await self.push_frame(frame, direction)

    async def _pending_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, UserStoppedSpeakingFrame):
            self._pending = False
            self.ignored_turns += 1
            self._held.clear()
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, TranscriptionFrame):
            self._held.append(frame)  # held until the turn qualifies, dropped if it never does
            self._words += len(frame.text.split())
            self._interim_words = 0
        else:
            if isinstance(frame, AudioRawFrame):
                self._speech_s += frame.duration
            elif isinstance(frame, InterimTranscriptionFrame):
                self._interim_words = len(frame.text.split())
            await self.push_frame(frame, direction)
        if self.strategy.should_interrupt(self._speech_s, self._words + self._interim_words):
            await self._interrupt()

    async def _user_started(self, frame: UserStartedSpeakingFrame) -> None:
        self.last_user_start_ns = monotonic_ns()
        self._speech_s, self._words, self._interim_words, self._held = 0.0, 0, 0, []
        if not self.allow_interruptions or not (self.bot_speaking or self._awaiting_answer):
            await self.push_frame(frame)
            return
        if self.bot_speaking and not self.strategy.should_interrupt(0.0, 0):
            self._pending = True
            await self.push_frame(frame)
            return
        if self.bot_speaking:
            self.interruptions += 1
        self._interrupted = True
        await self.push_frame(StartInterruptionFrame())
        await self.push_frame(frame)

    async def _interrupt(self) -> None:
        self._pending = False
        self._interrupted = True
        self.interruptions += 1
        await self.push_frame(StartInterruptionFrame())
        held, self._held = self._held, []
        for frame in held:
            await self.push_frame(frame)
