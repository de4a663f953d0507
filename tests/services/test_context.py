"""The conversation context and its aggregators (no engines)."""

from __future__ import annotations

import pytest

from apipeline.frames import (
    AudioRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    StartInterruptionFrame,
    TranscriptionFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.pipeline import PipelineParams
from apipeline.services import LLMContext, LLMContextAggregatorPair
from apipeline.testing import run_pipeline
from tests.services.helpers import ScriptSource


def test_history_is_bounded_and_the_system_prompt_stays() -> None:
    context = LLMContext(system_prompt="sys", max_messages=4, max_message_chars=20)
    for i in range(10):
        context.add_message({"role": "user", "content": f"question {i}"})
    messages = context.get_messages()
    assert messages[0] == {"role": "system", "content": "sys"}
    assert [m["content"] for m in messages[1:]] == [f"question {i}" for i in range(6, 10)]
    context.add_message({"role": "user", "content": "word " * 100})
    assert len(context.get_messages()[-1]["content"]) <= 20
    with pytest.raises(ValueError):
        LLMContext(max_messages=0)


async def test_user_turn_becomes_one_message_and_one_llm_request() -> None:
    context = LLMContext()
    pair = LLMContextAggregatorPair(context)
    frames = [
        UserStartedSpeakingFrame(),
        AudioRawFrame(b"\x00\x00" * 160, 16000),
        InterimTranscriptionFrame("what"),
        TranscriptionFrame("what is"),
        TranscriptionFrame("two plus two"),
        UserStoppedSpeakingFrame(),
        UserStartedSpeakingFrame(),
        UserStoppedSpeakingFrame(),  # noise: no transcript, no request
    ]
    result = await run_pipeline(pair.user(), frames)
    requests = result.of_type(LLMContextFrame)
    assert len(requests) == 1
    assert context.get_messages() == [{"role": "user", "content": "what is two plus two"}]
    assert not result.of_type(AudioRawFrame)  # the user's audio ends at the aggregator
    assert not result.of_type(TranscriptionFrame)


async def test_assistant_message_holds_only_the_words_heard_before_an_interruption() -> None:
    context = LLMContext()
    assistant = LLMContextAggregatorPair(context).assistant()
    frames = [
        LLMFullResponseStartFrame(response_id=1),
        TTSTextFrame("The", response_id=1),
        TTSTextFrame("sky", response_id=1),
        StartInterruptionFrame(),
        TTSStoppedFrame(response_id=1),  # a stale end of the cut answer changes nothing
        LLMFullResponseEndFrame(response_id=1),
        LLMFullResponseStartFrame(response_id=2),
        TTSTextFrame("Four.", response_id=2),
        TTSStoppedFrame(response_id=2),
        LLMFullResponseEndFrame(response_id=2),
    ]
    turns: list[tuple[str, bool]] = []
    assistant.add_event_handler("on_assistant_turn", lambda _agg, text, cut: turns.append((text, cut)))
    await run_pipeline(
        [ScriptSource(frames), assistant], [], params=PipelineParams(allow_interruptions=True), end=False
    )
    assert turns == [("The sky", True), ("Four.", False)]
    assert context.get_messages() == [
        {"role": "assistant", "content": "The sky"},
        {"role": "assistant", "content": "Four."},
    ]
    assert assistant.last_response == "Four." and not assistant.last_interrupted
