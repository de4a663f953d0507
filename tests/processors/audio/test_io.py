import itertools
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from apipeline.audio.io import read_audio, write_audio
from apipeline.errors import AudioFileError, LinkError
from apipeline.frames import AudioRawFrame
from apipeline.processors.audio import AudioFileSink, AudioFileSource, MemoryAudioSink, MemoryAudioSource
from apipeline.testing import run_pipeline, run_processor

SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech_16k.wav"


def _tone(n: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / 16000
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x, -x], axis=1)


async def test_file_source_emits_whole_file_in_blocks():
    src = AudioFileSource(SPEECH, block_ms=20)
    assert src.output_format.sample_rate == 16000 and src.output_format.channels == 1
    result = await run_pipeline(src, [], end=False)  # the source ends the run at EOF
    audio = [f for f in result.data if isinstance(f, AudioRawFrame)]
    assert [f.num_frames for f in audio] == [320] * 100
    expected, _ = read_audio(SPEECH)
    np.testing.assert_array_equal(np.concatenate([f.audio for f in audio]), expected[:, 0])
    pts = [f.pts for f in audio]
    assert all(p is not None for p in pts)
    assert all(b - a == 20_000_000 for a, b in itertools.pairwise(pts))
    assert not result.errors


async def test_file_source_realtime_is_paced():
    src = AudioFileSource(SPEECH, block_ms=50, realtime=True, dtype="int16")
    t0 = time.monotonic()
    result = await run_pipeline(src, [], end=False)
    elapsed = time.monotonic() - t0
    frames = result.data
    assert len(frames) == 40 and frames[0].audio.dtype == np.int16
    # the last block is due 1.95 s after the first: a paced source cannot finish earlier
    assert elapsed >= 1.95
    assert frames[-1].pts - frames[0].pts == 1_950_000_000


def test_file_source_bad_files(tmp_path: Path):
    with pytest.raises(AudioFileError, match="no such file"):
        AudioFileSource(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio" * 50)
    with pytest.raises(AudioFileError, match="not readable as audio"):
        AudioFileSource(junk)


async def test_truncated_flac_keeps_frames_and_reports(tmp_path: Path):
    p = tmp_path / "t.flac"
    write_audio(p, _tone(32000), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    sink = MemoryAudioSink()
    result = await run_pipeline([AudioFileSource(p, block_ms=10), sink], [], end=False)
    assert any("truncated" in e.error for e in result.errors)
    assert 0 < len(sink.audio) < 32000
    np.testing.assert_allclose(sink.audio, _tone(32000)[: len(sink.audio)], atol=1e-4)


async def test_memory_source_to_file_sink_round_trip(tmp_path: Path):
    x = _tone(16000 + 123, channels=2)
    out = tmp_path / "out.wav"
    sink = AudioFileSink(out, flush_every_s=0.25)
    await run_pipeline([MemoryAudioSource(x, 16000, block_ms=30), sink], [], end=False)
    y, sr = read_audio(out)
    assert sr == 16000 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1 / 32768)
    with wave.open(str(out)) as w:
        assert w.getnframes() == len(x)


async def test_file_sink_refuses_other_format_and_keeps_going(tmp_path: Path):
    out = tmp_path / "o.wav"
    sink = AudioFileSink(out)
    bad_nan = np.zeros(160, np.float32)
    bad_nan[7] = np.nan
    frames = [
        AudioRawFrame(_tone(160), 16000, 1),
        AudioRawFrame(_tone(160), 22050, 1),  # another rate: cannot convert
        AudioRawFrame(bad_nan, 16000, 1),
        AudioRawFrame(np.zeros(0, np.float32), 16000, 1),
        AudioRawFrame(_tone(160), 16000, 1),
    ]
    result = await run_pipeline(sink, frames)
    messages = " | ".join(e.error for e in result.errors)
    assert "expects 16000 Hz audio, got 22050 Hz" in messages
    assert "sample 7" in messages and "empty audio frame" in messages
    assert len(result.errors) == 3
    y, _ = read_audio(out)
    assert len(y) == 320  # both good frames, nothing from the bad ones


async def test_memory_sink_collects_and_passes_through():
    sink = MemoryAudioSink(passthrough=True)
    frames = [
        AudioRawFrame(_tone(100), 16000, 1),
        AudioRawFrame((_tone(50) * 32767).astype(np.int16), 16000, 1),
    ]
    out = await run_processor(sink, frames)
    assert len(out) == 2
    assert sink.audio.shape == (150,) and sink.audio.dtype == np.float32


def test_link_check_sees_sink_format():
    from apipeline.pipeline.negotiation import check_links
    from apipeline.pipeline.pipeline import Pipeline

    src = MemoryAudioSource(_tone(1000), 16000)
    with pytest.raises(LinkError, match="22050"):
        check_links(Pipeline([src, MemoryAudioSink(sample_rate=22050)]))
