"""Shared inputs for the video tests: the bundled portrait and speech with a second of silence."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
PORTRAIT = ROOT / "examples" / "data" / "portrait.png"
SPEECH = ROOT / "examples" / "data" / "speech.wav"


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    return PORTRAIT


@pytest.fixture(scope="session")
def speech_with_pause(tmp_path_factory) -> tuple[Path, int, float, float]:
    """2.5 s of speech, 1 s of digital silence, 1.5 s of speech; returns (path, rate, pause start, end)."""
    audio, sr = sf.read(SPEECH, dtype="float32")
    a, b = audio[: int(2.5 * sr)], audio[int(2.5 * sr) : int(4.0 * sr)]
    sig = np.concatenate([a, np.zeros(sr, np.float32), b])
    path = tmp_path_factory.mktemp("video") / "speech_pause.wav"
    sf.write(path, sig, sr)
    return path, sr, 2.5, 3.5
