import numpy as np

from apipeline.frames import AudioRawFrame
from apipeline.processors.audio import MemoryAudioSource, ReblockProcessor
from apipeline.processors.audio.reblock import CONTEXT_KEY, VALID_KEY
from apipeline.testing import run_pipeline


async def test_windows_with_context_and_final_partial():
    x = np.arange(1000, dtype=np.float32) / 1000
    proc = ReblockProcessor(block_ms=10, context_ms=5)  # 160 + 80 at 16 kHz
    result = await run_pipeline([MemoryAudioSource(x, 16000, block_ms=7), proc], [], end=False)
    wins = result.data
    assert len(wins) == 7  # 6 full blocks + the padded rest (40 samples)
    assert all(w.num_frames == 240 and w.metadata[CONTEXT_KEY] == 80 for w in wins)
    assert [w.metadata[VALID_KEY] for w in wins] == [160] * 6 + [40]
    padded = np.concatenate([np.zeros(80, np.float32), x, np.zeros(120, np.float32)])
    for i, w in enumerate(wins):
        np.testing.assert_array_equal(w.audio, padded[i * 160 : i * 160 + 240])
    pts = [w.pts for w in wins]
    assert pts[1] - pts[0] == 10_000_000
    assert proc.latency == 0.01


async def test_format_change_is_refused_without_losing_blocks():
    frames = [
        AudioRawFrame(np.ones(100, np.float32), 16000, 1),
        AudioRawFrame(np.ones(100, np.float32), 8000, 1),
        AudioRawFrame(np.ones(100, np.int16), 16000, 1),
        AudioRawFrame(np.ones(60, np.float32), 16000, 1),
    ]
    result = await run_pipeline(ReblockProcessor(block_ms=10), frames)
    errors = " | ".join(e.error for e in result.errors)
    assert "expects 16000 Hz audio, got 8000 Hz" in errors and "expects float32 samples, got int16" in errors
    assert [w.metadata[VALID_KEY] for w in result.data] == [160]
    np.testing.assert_array_equal(result.data[0].audio, np.ones(160))
