import numpy as np
import soxr

from apipeline.frames import AudioRawFrame
from apipeline.processors.audio import MemoryAudioSink, MemoryAudioSource, ResampleProcessor
from apipeline.testing import run_pipeline


def _noise(n: int) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(n) * 0.1).astype(np.float32)


async def test_stream_equals_one_shot_including_tail():
    x = _noise(22050)
    sink = MemoryAudioSink()
    proc = ResampleProcessor(16000)
    await run_pipeline([MemoryAudioSource(x, 22050, block_ms=7), proc, sink], [], end=False)
    ref = soxr.resample(x, 22050, 16000)
    assert sink.audio.shape == ref.shape
    np.testing.assert_allclose(sink.audio, ref, atol=1e-6)
    assert 0.0 < proc.latency < 0.1


async def test_latency_known_before_run_and_int16_kept():
    proc = ResampleProcessor(48000, in_rate=16000)
    assert proc.latency > 0.0 and proc.input_format.sample_rate == 16000
    x = (_noise(1600) * 32767).astype(np.int16)
    result = await run_pipeline(proc, [AudioRawFrame(x, 16000, 1)])
    out = np.concatenate([f.audio for f in result.data])
    assert out.dtype == np.int16 and len(out) == 4800


async def test_rate_change_flushes_old_stream():
    a, b = _noise(1600), _noise(2205)
    frames = [AudioRawFrame(a, 16000, 1), AudioRawFrame(b, 22050, 1)]
    result = await run_pipeline(ResampleProcessor(8000), frames)
    out = np.concatenate([f.audio for f in result.data])
    ref = np.concatenate([soxr.resample(a, 16000, 8000), soxr.resample(b, 22050, 8000)])
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert all(f.sample_rate == 8000 for f in result.data)


async def test_bad_frame_reported_and_stream_intact():
    x = _noise(3200)
    bad = x[:100].copy()
    bad[3] = np.nan
    frames = [
        AudioRawFrame(x[:1600], 16000, 1),
        AudioRawFrame(bad, 16000, 1),
        AudioRawFrame(x[1600:], 16000, 1),
    ]
    result = await run_pipeline(ResampleProcessor(24000), frames)
    assert len(result.errors) == 1 and "sample 3" in result.errors[0].error
    out = np.concatenate([f.audio for f in result.data])
    np.testing.assert_allclose(out, soxr.resample(x, 16000, 24000), atol=1e-6)


async def test_same_rate_passes_frames_unchanged():
    f = AudioRawFrame(_noise(100), 16000, 1)
    result = await run_pipeline(ResampleProcessor(16000), [f])
    assert result.data == [f]
