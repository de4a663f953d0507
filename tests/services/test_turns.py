"""Turn taking and interruption strategies (no engines: scripted frames)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from apipeline.frames import (
    AppFrame,
    AudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    StartInterruptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.pipeline import PipelineParams
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.services.turns import (
    ImmediateInterruption,
    MinDurationInterruption,
    MinWordsInterruption,
    TurnTakingProcessor,
    parse_interruption_strategy,
)
from apipeline.testing import run_pipeline
from tests.services.helpers import ScriptSource


@dataclass(slots=True)
class SendUp(AppFrame):
    """Marker: the bot's output (after the processor under test) pushes ``frame`` upstream."""

    frame: Frame = field(default_factory=BotStartedSpeakingFrame)


class FakeOutput(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, SendUp):
            await self.push_frame(frame.frame, FrameDirection.UPSTREAM)
            return
        await self.push_frame(frame, direction)


def _audio(ms: float) -> list[AudioRawFrame]:
    return [AudioRawFrame(b"\x00\x00" * 320, 16000) for _ in range(round(ms / 20))]


async def _run(turns: TurnTakingProcessor, script: list[Frame]) -> list[Frame]:
    result = await run_pipeline(
        [ScriptSource(script), turns, FakeOutput()],
        [],
        params=PipelineParams(allow_interruptions=True),
        end=False,
    )
    assert not result.errors
    return [f for f in result.downstream if not isinstance(f, AudioRawFrame)]


def _kinds(frames: list[Frame]) -> list[str]:
    return [type(f).__name__ for f in frames if not type(f).__name__.endswith(("StartFrame", "EndFrame"))]


async def test_nothing_in_flight_no_interruption_then_a_pending_answer_is_cancelled() -> None:
    turns = TurnTakingProcessor()
    out = await _run(
        turns,
        [
            UserStartedSpeakingFrame(),
            TranscriptionFrame("hello"),
            UserStoppedSpeakingFrame(),
            UserStartedSpeakingFrame(),  # the user goes on before the bot answered
        ],
    )
    kinds = _kinds(out)
    assert kinds.count("StartInterruptionFrame") == 1
    assert kinds.index("StartInterruptionFrame") > kinds.index("UserStoppedSpeakingFrame")


async def test_immediate_strategy_interrupts_the_speaking_bot_at_the_vad_start() -> None:
    turns = TurnTakingProcessor(ImmediateInterruption())
    out = await _run(turns, [SendUp(BotStartedSpeakingFrame()), UserStartedSpeakingFrame()])
    assert _kinds(out)[-2:] == ["StartInterruptionFrame", "UserStartedSpeakingFrame"]
    assert turns.interruptions == 1


async def test_min_words_ignores_backchannel_and_interrupts_on_enough_words() -> None:
    turns = TurnTakingProcessor(MinWordsInterruption(words=3))
    out = await _run(
        turns,
        [
            SendUp(BotStartedSpeakingFrame()),
            UserStartedSpeakingFrame(),
            InterimTranscriptionFrame("uh"),
            TranscriptionFrame("uh huh"),
            UserStoppedSpeakingFrame(),  # a backchannel: not an interruption, not a question
            UserStartedSpeakingFrame(),
            InterimTranscriptionFrame("no wait"),
            InterimTranscriptionFrame("no wait stop"),
            TranscriptionFrame("no wait stop"),
            UserStoppedSpeakingFrame(),
        ],
    )
    assert turns.ignored_turns == 1 and turns.interruptions == 1
    texts = [f.text for f in out if isinstance(f, TranscriptionFrame)]
    assert texts == ["no wait stop"]  # "uh huh" was dropped
    kinds = _kinds(out)
    assert kinds.index("StartInterruptionFrame") > kinds.index("InterimTranscriptionFrame")


async def test_min_duration_counts_the_users_audio() -> None:
    turns = TurnTakingProcessor(MinDurationInterruption(ms=300))
    script: list[Frame] = [SendUp(BotStartedSpeakingFrame()), UserStartedSpeakingFrame(), *_audio(200)]
    script += [
        UserStoppedSpeakingFrame(),
        UserStartedSpeakingFrame(),
        *_audio(400),
        UserStoppedSpeakingFrame(),
    ]
    result = await run_pipeline(
        [ScriptSource(script), turns, FakeOutput()],
        [],
        params=PipelineParams(allow_interruptions=True),
        end=False,
    )
    frames = result.downstream
    cut = next(i for i, f in enumerate(frames) if isinstance(f, StartInterruptionFrame))
    second_start = [i for i, f in enumerate(frames) if isinstance(f, UserStartedSpeakingFrame)][1]
    audio_before = sum(1 for f in frames[second_start:cut] if isinstance(f, AudioRawFrame))
    assert audio_before == 15  # 300 ms of 20 ms frames
    assert turns.ignored_turns == 1


async def test_bot_stopped_means_nothing_to_interrupt() -> None:
    turns = TurnTakingProcessor()
    out = await _run(
        turns,
        [SendUp(BotStartedSpeakingFrame()), SendUp(BotStoppedSpeakingFrame()), UserStartedSpeakingFrame()],
    )
    assert "StartInterruptionFrame" not in _kinds(out)


def test_strategy_specs() -> None:
    assert parse_interruption_strategy("immediate") == ImmediateInterruption()
    assert parse_interruption_strategy("ms:250") == MinDurationInterruption(250.0)
    assert parse_interruption_strategy("words:3") == MinWordsInterruption(3)
    for bad in ("soon", "words:x", "words:0", "ms:-1", "immediate:2"):
        with pytest.raises(ValueError, match=r"interruption strategy|must be"):
            parse_interruption_strategy(bad)
