"""The bot's voice through the voice changer (real eSpeak NG and the real voice changer DAG).

In a live conversation nothing follows an answer until the next one, so whatever the block-based voice
changer holds back (its latency) must be pushed out when the answer ends, or the answer's last syllable
would only play at the start of the next answer.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from apipeline.frames import (
    AudioRawFrame,
    EndFrame,
    Frame,
    StartInterruptionFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.services.bot_voice import SpeechTail, bot_voice_changer
from apipeline.services.espeak import ESpeakTTSService
from apipeline.voice_changer import VoiceChangerSettings
from tests.services.helpers import ScriptSource

pytestmark = pytest.mark.timeout(300)

TEXT = "The weather is sunny today."


class Until(FrameProcessor):
    """Counts audio samples, and notes how many had passed when each answer's TTSStoppedFrame came."""

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0
        self.at_stop: list[int] = []
        self.stopped = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, AudioRawFrame):
                self.samples += len(frame.audio)
            elif isinstance(frame, TTSStoppedFrame):
                self.at_stop.append(self.samples)
                self.stopped.set()
        await self.push_frame(frame, direction)


async def _speak(voice: FrameProcessor | None) -> Until:
    """Say TEXT; wait for its TTSStoppedFrame at the end (nothing else follows), then end the run."""
    until = Until()
    procs = [ESpeakTTSService(sample_rate=16000), *([voice] if voice else []), until]
    task = PipelineTask(Pipeline(procs), PipelineParams(allow_interruptions=True))
    run = asyncio.ensure_future(task.run())
    await task.queue_frame(TTSSpeakFrame(TEXT))
    await asyncio.wait_for(until.stopped.wait(), 120)
    await task.queue_frame(EndFrame())
    await asyncio.wait_for(run, 120)
    return until


async def test_the_whole_answer_leaves_the_voice_changer_before_the_answer_ends() -> None:
    plain = await _speak(None)
    shifted = await _speak(bot_voice_changer(VoiceChangerSettings(pitch=3.0), sample_rate=16000))
    # by the time the answer is over, every sample of it (plus the flushing silence) has come out
    assert shifted.at_stop[0] >= plain.at_stop[0], (shifted.at_stop, plain.at_stop)
    spoken = plain.at_stop[0]
    assert shifted.at_stop[0] - spoken < 0.5 * 16000  # and not much more than the voice changer's latency


async def test_speech_tail_pads_only_an_uninterrupted_answer_with_audio() -> None:
    from apipeline.frames import TTSAudioRawFrame

    script = ScriptSource(
        [
            TTSAudioRawFrame(np.ones(160, np.int16), 16000, response_id=1),
            TTSStoppedFrame(),
            TTSStoppedFrame(),  # no audio since: nothing added
            TTSAudioRawFrame(np.ones(160, np.int16), 16000, response_id=2),
            StartInterruptionFrame(),
            TTSStoppedFrame(),  # the answer was cut: nothing added
        ]
    )
    until = Until()
    task = PipelineTask(Pipeline([script, SpeechTail(0.1), until]), PipelineParams(allow_interruptions=True))
    await asyncio.wait_for(task.run(), 30)
    assert until.at_stop == [160 + 1600, 160 + 1600, 2 * 160 + 1600]


def test_speech_tail_refuses_a_negative_tail() -> None:
    with pytest.raises(ValueError, match="tail_s"):
        SpeechTail(-1.0)
