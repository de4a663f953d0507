"""Items 3 and 6: output formats and sample formats, stereo kept, the output-file rule, Ctrl-C, progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apipeline.errors import AudioFormatError, OutputPathError
from tests.voice_changer.conftest import cli, speech


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    x, sr = speech(1.0)
    d = tmp_path_factory.mktemp("vc_formats")
    out = {}
    for subtype in ("PCM_16", "PCM_24", "FLOAT"):
        out[subtype] = d / f"in_{subtype}.wav"
        sf.write(out[subtype], x, sr, subtype=subtype)
    stereo = np.stack([x, 0.3 * np.roll(x, 200)], axis=1)
    out["stereo"] = d / "stereo.wav"
    sf.write(out["stereo"], stereo, sr, subtype="PCM_16")
    return out


@pytest.mark.parametrize(
    ("suffix", "fmt", "subtype"),
    [(".ogg", "OGG", "VORBIS"), (".flac", "FLAC", "PCM_16"), (".mp3", "MP3", "MPEG_LAYER_III")],
)
def test_compressed_outputs_are_written(sources, tmp_path, suffix, fmt, subtype):
    from apipeline.voice_changer import VoiceChangerSettings
    from apipeline.voice_changer.run import run_file

    out = tmp_path / f"out{suffix}"
    result = run_file(sources["PCM_16"], out, VoiceChangerSettings(pitch=3.0, vad=False))
    assert not result.errors and result.subtype == subtype
    info = sf.info(str(out))
    assert (info.format, info.subtype) == (fmt, subtype)
    y, _ = sf.read(out, dtype="float32")
    n = sf.info(str(sources["PCM_16"])).frames
    assert abs(len(y) - n) < 0.1 * n and np.sqrt(np.mean(y**2)) > 0.01
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial file left beside


def test_the_sample_format_follows_the_input_unless_subtype(sources, tmp_path):
    from apipeline.voice_changer.run import run_file

    for subtype in ("PCM_24", "FLOAT"):
        result = run_file(sources[subtype], tmp_path / f"{subtype}.wav")
        assert sf.info(str(tmp_path / f"{subtype}.wav")).subtype == subtype == result.subtype
    run_file(sources["FLOAT"], tmp_path / "f.flac")  # FLAC has no float: 24 bits
    assert sf.info(str(tmp_path / "f.flac")).subtype == "PCM_24"
    run_file(sources["PCM_24"], tmp_path / "s.wav", subtype="PCM_16")
    assert sf.info(str(tmp_path / "s.wav")).subtype == "PCM_16"


def test_stereo_is_kept(sources, tmp_path):
    out = tmp_path / "stereo.wav"
    res = cli("-i", str(sources["stereo"]), "-o", str(out), "--pitch", "3", "--quiet")
    assert res.returncode == 0, res.stderr
    x, _ = sf.read(sources["stereo"], dtype="float32")
    y, _ = sf.read(out, dtype="float32")
    assert y.shape == x.shape
    # the side (L - R) is restored, aligned: within 16-bit rounding of the input's
    np.testing.assert_allclose(y[:, 0] - y[:, 1], x[:, 0] - x[:, 1], atol=3e-4)


def _must_not_run(*args, **kwargs):
    raise AssertionError("processing started before the output was checked")


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "needle"),
    [
        ("o.ogg", {"subtype": "PCM_16"}, AudioFormatError, "OGG cannot hold PCM_16"),
        ("o.xyz", {}, AudioFormatError, "cannot tell the output format"),
        ("o.opus", {}, AudioFormatError, "Opus takes"),  # 22.05 kHz input
        ("missing/o.wav", {}, OutputPathError, "does not exist"),
    ],
)
def test_refused_outputs_are_refused_before_any_processing(
    sources, tmp_path, monkeypatch, name, kwargs, error, needle
):
    import apipeline.voice_changer.run as run

    monkeypatch.setattr(run, "build_voice_changer", _must_not_run)
    monkeypatch.setattr(run, "render_offline_array", _must_not_run)
    with pytest.raises(error, match=needle):
        run.run_file(sources["PCM_16"], tmp_path / name, **kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder created


def test_output_equal_to_input_is_refused_and_the_input_untouched(sources, tmp_path):
    src = tmp_path / "same.wav"
    src.write_bytes(sources["PCM_16"].read_bytes())
    before = src.read_bytes()
    res = cli("-i", str(src), "-o", str(src))
    assert res.returncode == 2 and "is the input" in res.stderr and src.read_bytes() == before


def test_a_failed_run_leaves_an_existing_output_unchanged(tmp_path):
    out = tmp_path / "o.wav"
    out.write_bytes(b"precious")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio" * 100)
    res = cli("-i", str(junk), "-o", str(out))
    assert res.returncode == 2 and out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav", "o.wav"]


def test_progress_goes_to_stderr_and_json_stays_clean(sources, tmp_path):
    res = cli("-i", str(sources["PCM_16"]), "-o", str(tmp_path / "o.wav"), "--json")
    assert res.returncode == 0, res.stderr
    json.loads(res.stdout)  # stdout is the JSON object only
    assert "converted 1.0 / 1.0 s (100 %)" in res.stderr


def _interrupt(args: list[str], partial_dir: Path) -> subprocess.CompletedProcess[str]:
    """Start the CLI, wait until its partial output holds audio, Ctrl-C it, return the result."""
    cmd = [sys.executable, "-m", "apipeline.cli.main", "voice-changer", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # a condition, polled: the partial file has some audio
            partial = [p for p in partial_dir.iterdir() if ".partial-" in p.name]
            if partial and partial[0].stat().st_size > 50_000:
                break
            if proc.poll() is not None:
                pytest.fail(f"finished before the interrupt: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail("no partial output appeared")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    x, sr = speech(3.0)
    path = tmp_path_factory.mktemp("vc_long") / "long.wav"
    sf.write(path, np.tile(x, 3), sr)  # 9 s, played in real time
    return path


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_ctrl_c_keeps_a_valid_partial_file_where_nothing_existed(long_clip, tmp_path):
    out = tmp_path / "o.wav"
    res = _interrupt(["-i", str(long_clip), "-o", str(out), "--realtime"], tmp_path)
    assert res.returncode == 130, res.stderr
    assert "kept the partial output" in res.stderr and "Traceback" not in res.stderr
    y, _ = sf.read(out, dtype="float32")
    assert 0 < len(y) < sf.info(str(long_clip)).frames
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_ctrl_c_leaves_an_existing_output_unchanged(long_clip, tmp_path):
    out = tmp_path / "o.wav"
    out.write_bytes(b"previous result")
    res = _interrupt(["-i", str(long_clip), "-o", str(out), "--realtime"], tmp_path)
    assert res.returncode == 130 and "left unchanged" in res.stderr, res.stderr
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


def test_the_offline_render_keeps_stereo_too(sources):
    from apipeline.voice_changer import VoiceChangerSettings, render_offline_array

    x, sr = sf.read(sources["stereo"], dtype="float32")
    y = render_offline_array(x, sr, VoiceChangerSettings(pitch=3.0))
    assert y.shape == x.shape
    np.testing.assert_allclose(y[:, 0] - y[:, 1], x[:, 0] - x[:, 1], atol=1e-5)


async def test_nan_in_one_channel_of_stereo_is_reported_and_silenced():
    from apipeline.voice_changer import VoiceChangerSettings, convert_array

    x, sr = speech(0.5)
    stereo = np.stack([x, x], axis=1)
    stereo[1000:1010, 1] = np.nan
    result = await convert_array(stereo, sr, VoiceChangerSettings(vad=False))
    assert any("NaN/Inf" in message for _, message in result.errors)
    assert result.output is not None and np.isfinite(result.output).all()
