"""Shared fixtures: a short clip of the example speech at chosen levels, and the CLI in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "speech.wav"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``apipeline voice-changer ARGS`` exactly as users call it."""
    cmd = [sys.executable, "-m", "apipeline.cli.main", "voice-changer", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def speech(seconds: float = 1.5) -> tuple[np.ndarray, int]:
    x, sr = sf.read(SAMPLE, dtype="float32")
    return x[: int(seconds * sr)], sr


def at_peak(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` scaled so its peak is ``dbfs``."""
    return (x * (10.0 ** (dbfs / 20.0) / np.max(np.abs(x)))).astype(np.float32)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, sr = speech(1.5)
    path = tmp_path_factory.mktemp("vc_clip") / "in.wav"
    sf.write(path, x, sr)
    return path
