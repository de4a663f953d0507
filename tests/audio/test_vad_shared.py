"""Every SileroVad of a process shares one onnxruntime session; each keeps its own stream state."""

import threading
from pathlib import Path

import numpy as np

from apipeline.audio.io import read_audio
from apipeline.audio.vad import SileroVad

DATA = Path(__file__).resolve().parents[1] / "data"


def _clip() -> np.ndarray:
    audio, sr = read_audio(DATA / "speech_16k.wav")
    assert sr == 16000
    return audio[:, 0]


def _alone(x: np.ndarray) -> np.ndarray:
    vad = SileroVad()
    vad.process(x)
    return vad.last_probabilities.copy()


def test_detectors_share_one_session():
    a, b = SileroVad(), SileroVad(8000)
    assert a._session is b._session


def test_interleaved_detectors_keep_their_own_state():
    """Two streams fed in alternation through the shared session give exactly what each gives alone."""
    clip = _clip()
    other = np.ascontiguousarray(clip[::-1])
    want_a, want_b = _alone(clip), _alone(other)
    a, b = SileroVad(), SileroVad()
    got_a: list[np.ndarray] = []
    got_b: list[np.ndarray] = []
    for pos in range(0, len(clip), 700):
        a.process(clip[pos : pos + 700])
        got_a.append(a.last_probabilities.copy())
        b.process(other[pos : pos + 700])
        got_b.append(b.last_probabilities.copy())
    np.testing.assert_array_equal(np.concatenate(got_a), want_a)
    np.testing.assert_array_equal(np.concatenate(got_b), want_b)


def test_detectors_in_threads_keep_their_own_state():
    """Sessions of a server run their detectors in worker threads at the same time."""
    clip = _clip()
    streams = [np.ascontiguousarray(np.roll(clip, k * 4000)) for k in range(4)]
    want = [_alone(s) for s in streams]
    got: list[np.ndarray | None] = [None] * len(streams)

    def run(k: int) -> None:
        vad = SileroVad()
        parts = []
        for pos in range(0, len(streams[k]), 512):
            vad.process(streams[k][pos : pos + 512])
            parts.append(vad.last_probabilities.copy())
        got[k] = np.concatenate(parts)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for k in range(len(streams)):
        np.testing.assert_array_equal(got[k], want[k])
