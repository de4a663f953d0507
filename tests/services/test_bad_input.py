"""Bad input to the local engines: clear errors at build time, ErrorFrames at run time, no hang."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from apipeline.errors import ModelError
from apipeline.frames import (
    AudioRawFrame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.pipeline import PipelineParams
from apipeline.processors.audio.vad import VADProcessor
from apipeline.services.context import LLMContext, LLMContextAggregatorPair
from apipeline.services.espeak import ESpeakTTSService, synthesize_speech
from apipeline.services.local_llm import LocalLLMService, load_local_llm
from apipeline.services.pocketsphinx import PocketSphinxSTTService
from apipeline.services.stt import STTService
from apipeline.services.turns import TurnTakingProcessor
from apipeline.testing import run_pipeline


def _frames(audio: np.ndarray, rate: int = 16000) -> list[AudioRawFrame]:
    return [AudioRawFrame(audio[i : i + rate // 50], rate) for i in range(0, len(audio), rate // 50)]


async def test_wrong_sample_rate_is_an_error_frame_and_the_stream_goes_on() -> None:
    stt = PocketSphinxSTTService(audio_passthrough=False)
    speech = synthesize_speech("what is the weather like today")
    frames = [
        UserStartedSpeakingFrame(),
        AudioRawFrame(np.zeros(441, np.float32), 22050),  # refused
        *_frames(speech),
        UserStoppedSpeakingFrame(),
    ]
    result = await asyncio.wait_for(run_pipeline(stt, frames), 60)
    assert len(result.errors) == 1 and "expects 16000 Hz audio, got 22050 Hz" in result.errors[0].error
    texts = [f.text for f in result.of_type(TranscriptionFrame)]
    assert len(texts) == 1 and "weather" in texts[0].split()
    with pytest.raises(ValueError, match="16000 Hz"):
        PocketSphinxSTTService(sample_rate=8000)


async def test_silence_only_gives_no_turn_no_request_no_error() -> None:
    context = LLMContext()
    pair = LLMContextAggregatorPair(context)
    procs = [VADProcessor(), PocketSphinxSTTService(), TurnTakingProcessor(), pair.user()]
    result = await asyncio.wait_for(run_pipeline(procs, _frames(np.zeros(3 * 16000, np.float32))), 60)
    assert not result.errors
    assert not result.of_type(LLMContextFrame) and context.get_messages() == []


def test_missing_model_files_and_unknown_voices_fail_at_build_time(tmp_path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        LocalLLMService(model_path=tmp_path / "missing.gguf")
    with pytest.raises(ModelError, match="unknown LLM backend"):
        load_local_llm(backend="onnx")
    with pytest.raises(ModelError, match="lm not found"):
        PocketSphinxSTTService(lm=tmp_path / "missing.lm.bin")
    with pytest.raises(ModelError, match="no voice 'xx-nosuch'"):
        ESpeakTTSService(voice="xx-nosuch")
    with pytest.raises(ValueError, match="rate"):
        ESpeakTTSService(rate=5)
    with pytest.raises(ValueError, match="max_utterance_s"):
        STTService(max_utterance_s=0)


async def test_espeak_streams_words_before_their_audio_and_interruption_stops_it() -> None:
    tts = ESpeakTTSService(sample_rate=16000)
    result = await asyncio.wait_for(run_pipeline(tts, [TTSSpeakFrame("Two plus two is four.")]), 60)
    kinds = [type(f).__name__ for f in result.data]
    assert kinds[0] == "TTSTextFrame" and "TTSAudioRawFrame" in kinds
    words = [f.text for f in result.data if type(f).__name__ == "TTSTextFrame"]
    assert " ".join(words).replace(".", "").split() == ["Two", "plus", "two", "is", "four"]
    audio = [f for f in result.data if isinstance(f, TTSAudioRawFrame)]
    assert all(f.sample_rate == 16000 and f.num_frames <= 320 for f in audio)
    assert 0.8 < sum(f.duration for f in audio) < 3.0


async def test_a_long_synthesis_is_cancelled_at_once_by_an_interruption() -> None:
    from apipeline.frames import StartInterruptionFrame
    from apipeline.pipeline import Pipeline, PipelineTask
    from apipeline.services.output import BotAudioOutput
    from apipeline.testing import RecordingSink

    tts = ESpeakTTSService()
    output = BotAudioOutput(realtime=True)
    playing = asyncio.Event()

    class Sink(RecordingSink):
        async def process_frame(self, frame, direction):  # type: ignore[no-untyped-def]
            await super().process_frame(frame, direction)
            if sum(isinstance(f, TTSAudioRawFrame) for f in self.downstream) >= 5:
                playing.set()

    sink = Sink()
    task = PipelineTask(Pipeline([tts, output, sink]), PipelineParams(allow_interruptions=True))
    runner = asyncio.create_task(task.run())
    await task.queue_frame(TTSSpeakFrame("one two three four five six seven eight nine ten " * 20))
    await asyncio.wait_for(playing.wait(), 30)
    await task.queue_frame(StartInterruptionFrame())
    await task.stop_when_done()
    await asyncio.wait_for(runner, 30)  # a 40 s answer, cut: the run ends at once
    cut = next(i for i, f in enumerate(sink.downstream) if isinstance(f, StartInterruptionFrame))
    assert not [f for f in sink.downstream[cut:] if isinstance(f, TTSAudioRawFrame)]
    assert output.interruptions == 1
