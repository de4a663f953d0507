from pathlib import Path

import numpy as np
import pytest

from apipeline.audio.io import read_audio
from apipeline.errors import LinkError
from apipeline.frames import AudioRawFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from apipeline.processors.audio import MemoryAudioSource, VADProcessor
from apipeline.processors.audio.vad import SAMPLE_KEY
from apipeline.testing import run_pipeline

SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech_16k.wav"


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_audio(SPEECH)[0][:, 0]


def _with_silence(clip: np.ndarray) -> np.ndarray:
    return np.concatenate([clip, np.zeros(16000, np.float32)])


async def test_events_in_band_and_audio_untouched(clip: np.ndarray):
    x = _with_silence(clip)
    result = await run_pipeline([MemoryAudioSource(x, 16000, block_ms=20), VADProcessor()], [], end=False)
    out = result.downstream
    audio = [f for f in out if isinstance(f, AudioRawFrame)]
    np.testing.assert_array_equal(np.concatenate([f.audio for f in audio]), x)
    kinds = [type(f) for f in out if isinstance(f, (UserStartedSpeakingFrame, UserStoppedSpeakingFrame))]
    assert kinds[0] is UserStartedSpeakingFrame and kinds[-1] is UserStoppedSpeakingFrame
    assert kinds == [UserStartedSpeakingFrame, UserStoppedSpeakingFrame] * (len(kinds) // 2)
    # in band: the start frame sits next to the audio around its sample position
    pos = 0
    for f in out:
        if isinstance(f, AudioRawFrame):
            pos += f.num_frames
        elif isinstance(f, UserStartedSpeakingFrame):
            assert pos - 2048 <= f.metadata[SAMPLE_KEY] <= pos + 320
            assert 6400 - 1600 <= f.metadata[SAMPLE_KEY] <= 6400 + 1600


async def test_gate_drops_silence_but_keeps_speech(clip: np.ndarray):
    x = np.concatenate([np.zeros(16000, np.float32), _with_silence(clip)])
    vad = VADProcessor(gate=True, preroll_ms=100)
    result = await run_pipeline([MemoryAudioSource(x, 16000, block_ms=20), vad], [], end=False)
    audio = [f for f in result.downstream if isinstance(f, AudioRawFrame)]
    passed = sum(f.num_frames for f in audio)
    assert vad.frames_gated * 320 + passed == len(x)
    assert passed < len(x) - 16000  # most leading silence gone
    first_start = next(f for f in result.downstream if isinstance(f, UserStartedSpeakingFrame))
    i = result.downstream.index(first_start)
    assert isinstance(result.downstream[i + 1], AudioRawFrame)  # preroll released right after the event
    assert audio[0].pts is not None


async def test_wrong_rate_rejected_at_link_and_at_run():
    from apipeline.pipeline.negotiation import check_links
    from apipeline.pipeline.pipeline import Pipeline

    with pytest.raises(LinkError, match="16000"):
        check_links(Pipeline([MemoryAudioSource(np.zeros(2205, np.float32), 22050), VADProcessor()]))
    frames = [
        AudioRawFrame(np.zeros(441, np.float32), 22050, 1),
        AudioRawFrame(np.zeros(512, np.float32), 16000, 1),
    ]
    result = await run_pipeline(VADProcessor(), frames)
    assert len(result.errors) == 1 and "expects 16000 Hz audio, got 22050 Hz" in result.errors[0].error
    assert len(result.data) == 1
