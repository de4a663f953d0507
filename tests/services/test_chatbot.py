"""The whole chatbot on its real local engines: spoken question in, spoken answer out, barge-in.

The questions are spoken by eSpeak NG at test time. pocketsphinx hears synthetic speech poorly, so the
assertions use the words it gets right ("what", "weather"). The LLM loads once per session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from apipeline.frames import (
    AudioRawFrame,
    BotStartedSpeakingFrame,
    Frame,
    LLMTextFrame,
    MetricsFrame,
    StartInterruptionFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.audio.io import MemoryAudioSource
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.processors.io import InputProcessor
from apipeline.services import ChatbotConfig, build_chatbot
from apipeline.services.espeak import synthesize_speech
from apipeline.services.local_llm import LocalLLM, LocalLLMService, load_local_llm
from apipeline.testing import RecordingSink

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def llm_engine() -> LocalLLM:
    return load_local_llm()


def _speech(text: str, before_s: float = 0.3, after_s: float = 0.6) -> np.ndarray:
    speech = synthesize_speech(text)
    pad = np.zeros(round(before_s * 16000), np.float32), np.zeros(round(after_s * 16000), np.float32)
    return np.concatenate([pad[0], speech, pad[1]])


def _bot(engine: LocalLLM, *, realtime: bool, max_tokens: int = 24):
    llm = LocalLLMService(engine=engine, max_tokens=max_tokens)
    return build_chatbot(ChatbotConfig(realtime_output=realtime), llm=llm)


class Tap(FrameProcessor):
    """Records the downstream frames of the given types that pass it, in order."""

    def __init__(self, *types: type[Frame]) -> None:
        super().__init__()
        self.types = types
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, self.types):
            self.frames.append(frame)
        await self.push_frame(frame, direction)


async def test_spoken_question_gets_a_spoken_answer_through_pipeline_task(llm_engine: LocalLLM) -> None:
    bot = _bot(llm_engine, realtime=False)
    tokens = Tap(LLMTextFrame)
    sink = RecordingSink()
    procs = bot.processors()
    procs.insert(procs.index(bot.llm) + 1, tokens)
    task = PipelineTask(
        Pipeline([MemoryAudioSource(_speech("what is two plus two"), 16000), *procs, sink]),
        PipelineParams(
            allow_interruptions=True, enable_metrics=True, metrics_interval_s=0.0, end_timeout=240
        ),
    )
    await asyncio.wait_for(task.run(), 300)
    assert not task.errors, [e.error for e in task.errors]
    messages = bot.context.get_messages()
    assert messages[0]["role"] == "user" and "what" in messages[0]["content"].split()
    assert len(tokens.frames) >= 2  # streamed, not one block
    answer = "".join(f.text for f in tokens.frames).strip()
    assert answer and messages[1] == {"role": "assistant", "content": messages[1]["content"]}
    assert messages[1]["content"].split() == [
        w for f in sink.downstream if isinstance(f, TTSTextFrame) for w in f.text.split()
    ]
    audio = [f for f in sink.downstream if isinstance(f, TTSAudioRawFrame)]
    assert sum(f.duration for f in audio) > 0.3
    assert not [
        f for f in sink.downstream if isinstance(f, AudioRawFrame) and not isinstance(f, TTSAudioRawFrame)
    ]
    # every stage reports its time to first byte in the metrics
    records = [r for m in task.metrics if isinstance(m, MetricsFrame) for r in m.data]
    ttfb = {r["processor"]: r.get("ttfb_ns") for r in records if r.get("ttfb_ns")}
    assert {bot.stt.name, bot.llm.name, bot.tts.name} <= set(ttfb)


async def test_the_bot_speaks_through_a_talking_head(llm_engine: LocalLLM, tmp_path) -> None:
    import av

    from apipeline.talking_head import speaking_head

    bot = _bot(llm_engine, realtime=False, max_tokens=12)
    out = tmp_path / "answer.mp4"
    sink = RecordingSink()
    task = PipelineTask(
        Pipeline(
            [
                MemoryAudioSource(_speech("what is the weather"), 16000),
                *bot.processors(),
                *speaking_head(out),
                sink,
            ]
        ),
        PipelineParams(allow_interruptions=True, end_timeout=240),
    )
    await asyncio.wait_for(task.run(), 300)
    assert not task.errors, [e.error for e in task.errors]
    spoken = sum(f.duration for f in sink.downstream if isinstance(f, TTSAudioRawFrame))
    assert spoken > 0.3
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        video_s, audio_s = float(v.duration * v.time_base), float(a.duration * a.time_base)
    assert abs(audio_s - spoken) < 0.05 and abs(video_s - audio_s) <= 0.04  # the answer, lip-synced


class TwoTurns(InputProcessor):
    """Say a question, wait until the bot starts answering, then talk over it."""

    def __init__(self, first: np.ndarray, second: np.ndarray, bot_started: asyncio.Event) -> None:
        super().__init__()
        self.first, self.second, self.bot_started = first, second, bot_started

    async def frames(self) -> AsyncIterator[Frame]:
        for audio in (self.first, self.second):
            for i in range(0, len(audio), 320):
                yield AudioRawFrame(audio[i : i + 320], 16000)
            if audio is self.first:
                await self.bot_started.wait()


async def test_barge_in_stops_bot_audio_and_keeps_only_what_was_heard(llm_engine: LocalLLM) -> None:
    bot = _bot(llm_engine, realtime=True, max_tokens=40)
    started = asyncio.Event()
    tokens = Tap(LLMTextFrame, StartInterruptionFrame)
    after = Tap(TTSAudioRawFrame, TTSTextFrame, StartInterruptionFrame, BotStartedSpeakingFrame)

    class Watch(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, BotStartedSpeakingFrame):
                started.set()
            await self.push_frame(frame, direction)

    procs = bot.processors()
    procs.insert(procs.index(bot.llm) + 1, tokens)
    procs.insert(procs.index(bot.output) + 1, after)
    procs.insert(procs.index(after) + 1, Watch())
    turns: list[tuple[str, bool]] = []
    bot.aggregators.assistant().add_event_handler(
        "on_assistant_turn", lambda _a, t, cut: turns.append((t, cut))
    )
    source = TwoTurns(_speech("what is two plus two"), _speech("what is the weather like today"), started)
    task = PipelineTask(Pipeline([source, *procs]), PipelineParams(allow_interruptions=True, end_timeout=240))
    await asyncio.wait_for(task.run(), 300)
    assert not task.errors, [e.error for e in task.errors]

    # the first answer was cut: its context message is exactly the words that left the output
    assert turns and turns[0][1] is True, turns
    cut = next(i for i, f in enumerate(after.frames) if isinstance(f, StartInterruptionFrame))
    first_rid = next(f.response_id for f in after.frames if isinstance(f, TTSAudioRawFrame))
    heard = [f.text for f in after.frames[:cut] if isinstance(f, TTSTextFrame)]
    assert turns[0][0].split() == " ".join(heard).split()
    # no audio (nor word) of the cut answer left the output after the interruption reached it
    later = after.frames[cut + 1 :]
    assert not [
        f for f in later if isinstance(f, (TTSAudioRawFrame, TTSTextFrame)) and f.response_id == first_rid
    ]
    # nothing of the cancelled generation left the LLM after the interruption either
    llm_cut = next(i for i, f in enumerate(tokens.frames) if isinstance(f, StartInterruptionFrame))
    assert not [
        f for f in tokens.frames[llm_cut:] if isinstance(f, LLMTextFrame) and f.response_id == first_rid
    ]
    # the conversation went on: the second question got an answer of its own
    assert any(isinstance(f, TTSAudioRawFrame) and f.response_id != first_rid for f in later)
    assert bot.output.interruptions == 1
