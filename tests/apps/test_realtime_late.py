"""--realtime runs whose blocks come late exit non-zero with a warning; a method that cannot keep real time
is announced before the run starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import apipeline.audio.voice_changer as core
from apipeline.cli.voice_changer import _finish
from apipeline.voice_changer.monitor import RealtimeReport
from apipeline.voice_changer.run import VoiceChangerResult, late_warnings, realtime_warning
from apipeline.voice_changer.settings import VoiceChangerSettings

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "speech.wav"


def _result(underruns: int | None, mode: str = "realtime") -> VoiceChangerResult:
    report = RealtimeReport(
        blocks=20, block_ms=35.0, deadline_ms=35.0, latency_ms=59.9, compute_p50_ms=40.0, compute_p99_ms=50.0,
        compute_max_ms=55.0, turnaround_p50_ms=40.0, turnaround_p99_ms=50.0, underruns=underruns,
        audio_s=0.7, wall_s=0.9, rtf=1.2, wall_rtf=1.3, cpu_rtf=1.2, realtime=underruns is not None,
    )  # fmt: skip
    return VoiceChangerResult(
        mode=mode, sample_rate=22050, channels=1, processing_rate=22050, duration_s=0.7, latency_ms=59.9,
        report=report, wall_s=0.9, rtf=1.2,
    )  # fmt: skip


def test_late_blocks_make_the_exit_code_1(capsys):
    assert _finish(_result(underruns=0)) == 0
    assert _finish(_result(underruns=None, mode="streamed")) == 0  # not paced: nothing was late
    late = _result(underruns=7)
    assert late.late_blocks == 7
    assert _finish(late) == 1


def test_late_warning_names_the_count_the_block_and_a_way_out():
    s = VoiceChangerSettings(f0="harvest")
    (text,) = late_warnings(7, 20, 0.035, s)
    assert "7 of 20 blocks were late" in text and "35.0 ms block" in text and "'harvest'" in text
    assert late_warnings(0, 20, 0.035, s) == []


def test_realtime_warning_follows_the_measured_rtf(monkeypatch):
    seen: dict[str, object] = {}

    def fake(rate: int, seconds: float, **settings: object) -> float:
        seen.update(rate=rate, **settings)
        return fake.value  # type: ignore[attr-defined]

    monkeypatch.setattr(core, "measure_rtf", fake)
    s = VoiceChangerSettings(f0="harvest", block_ms=20.0)
    fake.value = 1.4  # type: ignore[attr-defined]
    message = realtime_warning(s, 22050)
    assert message is not None and "cannot keep real time" in message and "1.40" in message
    assert seen["rate"] == 22050 and seen["f0"] == "harvest" and seen["block_ms"] == 20.0
    fake.value = 0.3  # type: ignore[attr-defined]
    assert realtime_warning(s, 22050) is None


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    x, sr = sf.read(SAMPLE, dtype="float32")
    path = tmp_path_factory.mktemp("late") / "in.wav"
    sf.write(path, x[int(0.5 * sr) : int(0.65 * sr)], sr)
    return path


@pytest.mark.timeout(240)  # ~8 s of CPU; the generous limit is for a machine shared by many jobs
def test_cli_realtime_with_a_method_far_too_slow_warns_first_and_exits_1(short_clip, tmp_path):
    """harvest on 5 ms blocks needs several times the block's duration per block on any CPU (it analyses
    a >= 150 ms window per block): the run says so before it starts, and exits 1 with late blocks."""
    out = tmp_path / "o.wav"
    cmd = [
        sys.executable, "-m", "apipeline.cli.main", "voice-changer", "-i", str(short_clip), "-o", str(out),
        "--realtime", "--f0", "harvest", "--block-ms", "5", "--crossfade-ms", "2", "--quiet",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=230)
    assert res.returncode == 1, res.stderr
    before = res.stderr.index("cannot keep real time")
    after = res.stderr.index("blocks were late")
    assert before < after  # said before the run, and counted after it
    y, _ = sf.read(out, dtype="float32")
    assert y.shape[0] == sf.info(short_clip).frames and np.isfinite(y).all()  # the output is still written
