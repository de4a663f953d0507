import numpy as np

from apipeline.frames import AudioRawFrame, TextFrame
from apipeline.processors.audio import ChannelMixer, SampleTypeConverter
from apipeline.testing import run_pipeline, run_processor


def _stereo(n: int) -> np.ndarray:
    return np.stack([np.linspace(-0.5, 0.5, n), np.full(n, 0.25)], axis=1).astype(np.float32)


async def test_mix_down_and_up():
    x = _stereo(100)
    out = await run_processor(ChannelMixer(1), [AudioRawFrame(x, 16000, 2, pts=5)])
    assert len(out) == 1 and out[0].num_channels == 1 and out[0].audio.shape == (100,)
    np.testing.assert_allclose(out[0].audio, x.mean(axis=1), atol=1e-7)
    assert out[0].pts == 5
    up = await run_processor(ChannelMixer(2), [AudioRawFrame(x[:, 0].copy(), 16000, 1)])
    assert up[0].audio.shape == (100, 2)


async def test_mixer_passes_other_frames_and_matching_audio():
    f = AudioRawFrame(np.zeros(10, np.float32), 16000, 1)
    out = await run_processor(ChannelMixer(1), [TextFrame("hi"), f])
    assert isinstance(out[0], TextFrame) and out[1] is f


async def test_mixer_refuses_unsupported_layout_and_continues():
    frames = [AudioRawFrame(np.zeros((10, 3), np.float32), 16000, 3), AudioRawFrame(_stereo(10), 16000, 2)]
    result = await run_pipeline(ChannelMixer(2), frames)
    assert len(result.errors) == 1 and "cannot mix 3 channels to 2" in result.errors[0].error
    assert len(result.data) == 1


async def test_sample_type_round_trip():
    x = np.array([0.0, 0.5, -1.0, 1.5], np.float32)
    out = await run_processor(SampleTypeConverter("int16"), [AudioRawFrame(x, 16000, 1)])
    np.testing.assert_array_equal(out[0].audio, [0, 16384, -32768, 32767])
    back = await run_processor(SampleTypeConverter("float32"), out)
    np.testing.assert_allclose(back[0].audio, [0.0, 0.5, -1.0, 32767 / 32768])


async def test_converter_reports_nan_and_empty():
    bad = np.array([0.0, np.inf], np.float32)
    frames = [AudioRawFrame(bad, 16000, 1), AudioRawFrame(np.zeros(0, np.float32), 16000, 1)]
    result = await run_pipeline(SampleTypeConverter("int16"), frames)
    errors = [e.error for e in result.errors]
    assert any("non-finite" in e and "sample 1" in e for e in errors)
    assert any("empty audio frame" in e for e in errors)
    assert result.data == []
