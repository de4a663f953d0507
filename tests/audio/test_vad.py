import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apipeline.audio.io import read_audio
from apipeline.audio.resample import StreamingResampler
from apipeline.audio.vad import SileroVad, silero_model_path
from apipeline.errors import AudioFormatError, ModelError

DATA = Path(__file__).resolve().parents[1] / "data"
SPEECH_ONSET = 6400  # tests/data/speech_16k.wav: 0.4 s of silence, then speech


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    audio, sr = read_audio(DATA / "speech_16k.wav")
    assert sr == 16000
    return audio[:, 0]


def _chunks(x: np.ndarray, rng: np.random.Generator):
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 1500))
        yield x[pos : pos + n]
        pos += n


def test_model_ships_with_package():
    assert silero_model_path().name == "silero_vad.onnx"


def test_no_torch_needed():
    """The VAD loads the ONNX file without importing torch (checked in a fresh interpreter)."""
    code = (
        "import sys, numpy as np; from apipeline.audio.vad import SileroVad; "
        "v = SileroVad(); v.process(np.zeros(1024, np.float32)); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "False"


def test_silence_has_no_speech():
    vad = SileroVad()
    assert vad.process(np.zeros(16000 * 2, np.float32)) == []
    assert len(vad.last_probabilities) == 2 * 16000 // 512
    assert vad.last_probabilities.max() < 0.1 and not vad.is_speech
    assert vad.flush() == []


def test_low_white_noise_has_no_speech():
    rng = np.random.default_rng(0)
    vad = SileroVad()
    events = vad.process((0.01 * rng.standard_normal(16000 * 3)).astype(np.float32))
    assert events == [] and vad.last_probabilities.max() < 0.5


def test_speech_detected_near_onset(clip: np.ndarray):
    vad = SileroVad(speech_pad_ms=30)
    events = []
    for chunk in _chunks(clip, np.random.default_rng(1)):
        events += vad.process(chunk)
    assert events and events[0].kind == "start"
    assert SPEECH_ONSET - 1600 <= events[0].sample <= SPEECH_ONSET + 1600  # within 100 ms
    events += vad.flush()
    assert events[-1].kind == "stop"
    kinds = [e.kind for e in events]
    assert kinds == ["start", "stop"] * (len(kinds) // 2)  # strictly alternating
    samples = [e.sample for e in events]
    assert samples == sorted(samples) and samples[-1] <= len(clip)


def test_chunking_does_not_change_result(clip: np.ndarray):
    a, b = SileroVad(), SileroVad()
    ev_a = a.process(clip) + a.flush()
    probs_a = a.last_probabilities
    ev_b, probs_b = [], []
    for chunk in _chunks(clip, np.random.default_rng(2)):
        ev_b += b.process(chunk)
        probs_b.append(b.last_probabilities)
    ev_b += b.flush()
    assert ev_a == ev_b
    np.testing.assert_allclose(np.concatenate(probs_b), probs_a, atol=1e-5)


def test_speech_then_silence_stops_after_min_silence(clip: np.ndarray):
    vad = SileroVad(min_silence_ms=200, speech_pad_ms=0)
    events = vad.process(clip[SPEECH_ONSET : SPEECH_ONSET + 8000])
    assert (
        events[0].kind == "start" and events[0].sample <= 3 * 512
    )  # the recurrent state needs a window or two
    assert vad.is_speech
    events = vad.process(np.zeros(16000, np.float32))
    assert [e.kind for e in events] == ["stop"]
    assert 8000 - 1024 <= events[0].sample <= 8000 + 1024


def test_reset_repeats_exactly(clip: np.ndarray):
    vad = SileroVad()
    first = vad.process(clip)
    p1 = vad.last_probabilities.copy()
    vad.reset()
    assert vad.process(clip) == first
    np.testing.assert_array_equal(vad.last_probabilities, p1)


def test_int16_and_8k_input(clip: np.ndarray):
    vad = SileroVad()
    vad.process((clip * 32767).astype(np.int16))
    assert vad.last_probabilities.max() > 0.9
    r = StreamingResampler(16000, 8000)
    x8 = np.concatenate([r.process(clip), r.flush()])
    v8 = SileroVad(8000)
    events = v8.process(x8)
    assert v8.window_size == 256 and events and events[0].kind == "start"


def test_bad_input():
    with pytest.raises(AudioFormatError, match=r"22050 Hz: resample first"):
        SileroVad(22050)
    vad = SileroVad()
    with pytest.raises(AudioFormatError, match=r"mono.*\(10, 2\)"):
        vad.process(np.zeros((10, 2), np.float32))
    bad = np.zeros(600, np.float32)
    bad[100] = np.nan
    with pytest.raises(AudioFormatError, match=r"VAD.*sample 100"):
        vad.process(bad)
    assert vad.position == 0  # nothing of the refused chunk was consumed
    with pytest.raises(ModelError, match=r"cannot load"):
        SileroVad(model_path=DATA / "speech_16k.wav")
