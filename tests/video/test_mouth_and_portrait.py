"""The mouth follows the audio, independent of chunking; the portrait moves only where it should."""

import numpy as np
import pytest
import soundfile as sf

from apipeline.errors import AudioFormatError
from apipeline.video.face import locate_face
from apipeline.video.image import read_image
from apipeline.video.mouth import MouthDriver
from apipeline.video.portrait import BlinkSchedule, PortraitAnimator


def _shapes(audio, sr, chunks):
    d = MouthDriver(sr, 25)
    out, pos = [], 0
    for n in chunks:
        out += d.push(audio[pos : pos + n])
        pos += n
    out += d.push(audio[pos:])
    return out


def test_shapes_do_not_depend_on_chunking(speech_with_pause):
    path, sr, _, _ = speech_with_pause
    audio, _ = sf.read(path, dtype="float32")
    rng = np.random.default_rng(1)
    whole = _shapes(audio, sr, [])
    chunked = _shapes(audio, sr, rng.integers(1, 2000, 400).tolist())
    assert len(whole) == len(chunked) == int(len(audio) * 25 / sr)
    assert [s.index for s in chunked] == list(range(len(whole)))
    assert np.allclose([s.opening for s in whole], [s.opening for s in chunked])
    assert np.allclose([s.width for s in whole], [s.width for s in chunked])


def test_mouth_opens_for_speech_and_closes_for_silence_at_any_level(speech_with_pause):
    path, sr, t0, t1 = speech_with_pause
    audio, _ = sf.read(path, dtype="float32")
    for gain_db in (0.0, -45.0):  # quiet recordings move the mouth as much as loud ones
        shapes = _shapes(audio * 10 ** (gain_db / 20), sr, [])
        opening = np.array([s.opening for s in shapes])
        pause = opening[int((t0 + 0.3) * 25) : int(t1 * 25)]
        speech = opening[: int(t0 * 25)]
        assert pause.max() < 0.05, gain_db
        assert speech.max() > 0.8 and speech.mean() > 0.2, gain_db


def test_bad_audio_is_refused():
    with pytest.raises(AudioFormatError, match="at least 8000 Hz"):
        MouthDriver(4000)
    with pytest.raises(AudioFormatError, match="fps"):
        MouthDriver(16000, fps=0)
    with pytest.raises(AudioFormatError, match="NaN"):
        MouthDriver(16000).push(np.full(100, np.nan, np.float32))


def test_portrait_moves_only_around_the_mouth_and_eyes(portrait_path):
    img = read_image(portrait_path)
    layout = locate_face(img)
    anim = PortraitAnimator(img, layout)
    assert np.array_equal(anim.render(0.0, 0.5, 0.0), img)  # rest pose is the portrait itself
    opened = anim.render(1.0, 0.5, 0.0)
    changed = np.argwhere(np.abs(opened.astype(int) - img).sum(axis=2) > 30)
    fx, fy, fw, fh = layout.face
    _, my, mw, mh = layout.mouth
    assert len(changed) > 0.2 * mw * mh
    assert changed[:, 0].min() >= my and changed[:, 0].max() <= fy + 1.3 * fh  # rows: lips to chin
    assert changed[:, 1].min() >= fx - 0.2 * fw and changed[:, 1].max() <= fx + 1.2 * fw
    shut = anim.render(0.0, 0.5, 1.0)
    for ex, ey, ew, eh in layout.eyes:
        before, after = img[ey : ey + eh, ex : ex + ew], shut[ey : ey + eh, ex : ex + ew]
        assert np.abs(after.astype(int) - before).mean() > 5  # the lid covers the eye
    assert np.array_equal(shut[my:, :], img[my:, :])  # blinking leaves the mouth alone


def test_blinks_are_brief_regular_and_reproducible():
    a = [BlinkSchedule(25, seed=3).closure(i) for i in range(25 * 30)]
    b = [BlinkSchedule(25, seed=3).closure(i) for i in range(25 * 30)]
    assert a == b
    closed = np.array(a) > 0.5
    starts = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 5 <= len(starts) <= 13  # every 2.5-5.5 s over 30 s
    assert np.mean(closed) < 0.05
