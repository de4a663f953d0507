"""``apipeline chat`` in a subprocess: bad input and bad options fail fast with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def chat(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "apipeline.cli.main", "chat", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def silence(tmp_path: Path) -> Path:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(8000, np.float32), 8000)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--voice", "xx-nosuch"], "no voice 'xx-nosuch'"),
        (["--llm-url", "not-a-url"], "is not an http(s) URL"),
        (["--stt-url", "ftp://x"], "is not an http(s) URL"),
        (["--model", "/nonexistent/model.gguf"], "model file not found: /nonexistent/model.gguf"),
        (["--video", "/nonexistent/dir/a.mp4"], "does not exist"),
        (["--video", "answer.webm"], "a webm file cannot hold h264 video"),
        (["--video", "answer.mp4", "--image", "/nonexistent.png"], "image '/nonexistent.png' does not exist"),
    ],
)
def test_bad_options_exit_2_before_any_model_loads(silence: Path, tmp_path: Path, extra, message) -> None:
    out = chat("--input", str(silence), "--output", str(tmp_path / "a.wav"), *extra)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr


def test_missing_input_exits_2(tmp_path: Path) -> None:
    out = chat("--input", str(tmp_path / "nope.wav"), "--output", str(tmp_path / "a.wav"))
    assert out.returncode == 2 and "nope.wav" in out.stderr
