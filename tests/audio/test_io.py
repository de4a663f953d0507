import signal
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apipeline.audio.io import AudioFileReader, AudioFileWriter, read_audio, write_audio
from apipeline.errors import AudioFileError, AudioFormatError


def _noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, channels))).astype(np.float32)


@pytest.mark.parametrize(
    "ext,subtype,tol",
    [
        ("wav", "PCM_16", 1 / 32768),
        ("flac", "PCM_16", 1 / 32768),
        ("wav", "FLOAT", 0.0),
        ("ogg", "VORBIS", None),
    ],
)
def test_round_trip_formats(tmp_path: Path, ext: str, subtype: str, tol: float | None):
    x = _noise(4000, 2)
    p = tmp_path / f"a.{ext}"
    write_audio(p, x, 22050, subtype=subtype)
    y, sr = read_audio(p)
    assert sr == 22050 and y.dtype == np.float32 and y.shape == (4000, 2)
    if tol is not None:
        np.testing.assert_allclose(y, x, atol=tol)
    else:  # lossy: only check the signal survived
        assert np.corrcoef(y[:, 0], x[:, 0])[0, 1] > 0.5


def test_read_mono_is_2d_and_int16(tmp_path: Path):
    x = (np.arange(100) * 100).astype(np.int16)
    p = tmp_path / "m.wav"
    write_audio(p, x, 16000)
    y, _ = read_audio(p, dtype="int16")
    assert y.shape == (100, 1) and y.dtype == np.int16
    np.testing.assert_array_equal(y[:, 0], x)


def test_reader_streams_blocks(tmp_path: Path):
    x = _noise(1000, 1)
    p = tmp_path / "s.wav"
    write_audio(p, x, 8000, subtype="FLOAT")
    with AudioFileReader(p, 300) as r:
        assert (r.sample_rate, r.channels, r.frames) == (8000, 1, 1000)
        blocks = list(r)
    assert [len(b) for b in blocks] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(blocks), x)


def test_missing_file(tmp_path: Path):
    with pytest.raises(AudioFileError, match=r"nope.wav: no such file"):
        read_audio(tmp_path / "nope.wav")


def test_empty_and_zero_frame_files(tmp_path: Path):
    p = tmp_path / "e.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"e.wav: empty file \(0 bytes\)"):
        read_audio(p)
    z = tmp_path / "z.wav"
    sf.write(z, np.zeros((0, 1)), 16000)
    with pytest.raises(AudioFileError, match=r"z.wav: contains no audio frames"):
        read_audio(z)


def test_non_audio_file(tmp_path: Path):
    p = tmp_path / "junk.wav"
    p.write_text("this is a text file, not audio\n" * 20)
    with pytest.raises(AudioFileError, match=r"junk.wav: not readable as audio"):
        AudioFileReader(p, 100)


def test_truncated_wav(tmp_path: Path):
    p = tmp_path / "t.wav"
    write_audio(p, _noise(8000, 2), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2 + 1])
    with pytest.raises(AudioFileError, match=r"t.wav: truncated: the WAV data chunk declares 32000 bytes"):
        read_audio(p)


def test_truncated_flac_fails_while_streaming(tmp_path: Path):
    p = tmp_path / "t.flac"
    write_audio(p, _noise(16000, 1), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError, match=r"t.flac: truncated"):
        read_audio(p)


def test_writer_refuses_bad_blocks(tmp_path: Path):
    with AudioFileWriter(tmp_path / "w.wav", 16000, 2) as w:
        with pytest.raises(AudioFormatError, match=r"expects 2 channel"):
            w.write(np.zeros((10, 1), dtype=np.float32))
        bad = np.zeros((10, 2), dtype=np.float32)
        bad[3, 1] = np.nan
        with pytest.raises(AudioFormatError, match=r"frame 3, channel 1"):
            w.write(bad)
        w.write(np.zeros((5, 2), dtype=np.float32))
    y, _ = read_audio(tmp_path / "w.wav")
    assert y.shape == (5, 2)  # the refused blocks left nothing behind


def test_writer_bad_extension(tmp_path: Path):
    with pytest.raises(AudioFileError, match=r"cannot open for writing"):
        AudioFileWriter(tmp_path / "x.unknownext", 16000, 1)


def test_writer_file_valid_after_flush_while_open(tmp_path: Path):
    p = tmp_path / "live.wav"
    w = AudioFileWriter(p, 16000, 1, flush_every_s=None)
    w.write(_noise(1600, 1))
    w.flush()
    w.write(_noise(800, 1, seed=1))
    w.flush()
    with wave.open(str(p)) as strict:  # the stdlib reader trusts the header, unlike libsndfile
        assert strict.getnframes() == 2400
    y, _ = read_audio(p)
    assert len(y) == 2400
    w.close()


def test_writer_survives_sigkill(tmp_path: Path):
    """A writer process killed after a flush leaves a WAV whose header covers the flushed audio."""
    p = tmp_path / "killed.wav"
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from apipeline.audio.io import AudioFileWriter
        w = AudioFileWriter({str(p)!r}, 16000, 1, flush_every_s=0.1)
        for i in range(5):
            w.write(np.full(800, 0.25, dtype=np.float32))  # 0.05 s each -> auto flush every 2 writes
        w.flush()
        print("flushed", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"flushed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with wave.open(str(p)) as strict:
        assert strict.getnframes() == 4000
    y, sr = read_audio(p)
    assert sr == 16000 and len(y) == 4000
    np.testing.assert_allclose(y, 0.25, atol=1 / 32768)
