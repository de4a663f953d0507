"""``apipeline chat --voice-changer --pitch P``: the bot speaks through the voice changer's DAG.

The same spoken question is asked twice in this process (the LLM loads once: ``load_local_llm`` caches
it), without and with the option; the answers are the same words (greedy decoding), so frame by frame
the F0 of the two outputs differs by the requested shift.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apipeline.cli.main import main
from apipeline.services.espeak import synthesize_speech

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chat_vc") / "question.wav"
    speech = synthesize_speech("what is two plus two", sample_rate=16000)
    pad = np.zeros(4800, np.float32)
    sf.write(path, np.concatenate([pad, speech, pad, pad]), 16000)
    return path


def _shift_cents(plain_path: Path, shifted_path: Path) -> float:
    """The median pitch shift, in cents, of ``shifted_path`` against ``plain_path``: frame by frame
    (10 ms harvest F0, frames voiced in both) after aligning the two by their loudness envelopes (the
    voice changer delays its output). Same words, so the same frames; a whole-file median would compare
    two different sets of voiced frames."""
    import pyworld

    plain, rate = sf.read(plain_path, dtype="float64")
    shifted, _ = sf.read(shifted_path, dtype="float64")
    hop = rate // 100

    def envelope(x: np.ndarray) -> np.ndarray:
        n = len(x) // hop
        return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))

    ea, eb = envelope(plain), envelope(shifted)
    corr = [
        np.corrcoef(ea[: (n := min(len(ea), len(eb) - lag))], eb[lag : lag + n])[0, 1] for lag in range(40)
    ]
    lag = int(np.argmax(corr))
    assert corr[lag] > 0.8, f"the two answers do not line up (best envelope correlation {max(corr):.2f})"
    fa, _ = pyworld.harvest(plain, rate, f0_floor=50.0, f0_ceil=800.0, frame_period=10.0)
    fb, _ = pyworld.harvest(shifted, rate, f0_floor=50.0, f0_ceil=800.0, frame_period=10.0)
    n = min(len(fa), len(fb) - lag)
    a, b = fa[:n], fb[lag : lag + n]
    voiced = (a > 0) & (b > 0)
    assert voiced.sum() > 20, "almost no voiced speech in both"
    return float(np.median(1200 * np.log2(b[voiced] / a[voiced])))


def _ask(question: Path, out: Path, *extra: str) -> dict:
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["chat", "--input", str(question), "--output", str(out), "--json", *extra])
    result = json.loads(text.getvalue())
    assert code == 0 and result["answer_s"] > 0.3, result
    return result


@pytest.fixture(scope="module")
def plain(question: Path) -> tuple[Path, dict]:
    out = question.parent / "plain.wav"
    return out, _ask(question, out)


@pytest.mark.parametrize("pitch", [4.0, -5.0])
def test_the_bot_speaks_through_the_voice_changer_at_the_requested_pitch(
    question: Path, plain: tuple[Path, dict], tmp_path: Path, pitch: float
) -> None:
    plain_wav, plain_result = plain
    shifted = _ask(question, tmp_path / "vc.wav", "--voice-changer", "--pitch", f"{pitch:g}")
    assert [t["answer"] for t in shifted["turns"]] == [t["answer"] for t in plain_result["turns"]]
    # the whole answer leaves the voice changer (its latency is flushed at the end of the answer)
    assert shifted["answer_s"] >= plain_result["answer_s"] - 0.02
    cents = _shift_cents(plain_wav, tmp_path / "vc.wav")
    assert abs(cents - 100 * pitch) <= 50, f"asked {100 * pitch:+.0f} cents, measured {cents:+.0f}"
