import numpy as np
import pytest

from apipeline.audio.world import analyze
from apipeline.frames import UpdateSettingsFrame
from apipeline.processors.audio.features import (
    SEQ_KEY,
    BlockGeometry,
    ConvertedFeaturesFrame,
    SolaOffsetFrame,
)
from apipeline.processors.audio.sola import SolaProcessor
from apipeline.processors.audio.vocoder import PhaseLockTracker, VocoderProcessor
from apipeline.testing import RecordingSink, run_pipeline

SR = 16000
G = BlockGeometry.from_ms(SR)


def converted(seq: int) -> ConvertedFeaturesFrame:
    t = np.arange(G.window) / SR
    x = sum(0.3 / k * np.sin(2 * np.pi * k * 150 * t) for k in range(1, 8))
    feats = analyze(x, SR, "dio", G.frame_period_ms, frames=G.frames)
    source = x[G.kept_start : G.kept_start + G.kept_size]
    return ConvertedFeaturesFrame(
        seq=seq, features=feats, source=source, kept_start=G.kept_start, kept_size=G.kept_size
    )


@pytest.mark.parametrize("kind", ["world", "griffin-lim"])
async def test_renders_the_kept_span(kind):
    voc = VocoderProcessor(sample_rate=SR, kind=kind, lookahead=G.lookahead)
    frame = converted(3)
    out = (await run_pipeline(voc, [frame])).data
    y = out[0].audio
    assert out[0].metadata[SEQ_KEY] == 3 and y.shape == (G.kept_size,) and y.dtype == np.float32
    assert np.isfinite(y).all()
    rms_in, rms_out = np.sqrt(np.mean(frame.source**2)), np.sqrt(np.mean(y.astype(np.float64) ** 2))
    assert 0.2 < rms_out / rms_in < 5.0


async def test_silent_block_loudness_matching_and_bad_setting():
    voc = VocoderProcessor(sample_rate=SR, threaded=False)
    empty = ConvertedFeaturesFrame(seq=0, features=None, kept_size=G.kept_size)
    quiet = converted(1)
    quiet.source = quiet.source * 0.01  # loudness matching must follow the (quiet) input
    stream = [
        empty,
        UpdateSettingsFrame({"rms_mix_rate": 0.0}),
        quiet,
        UpdateSettingsFrame({"rms_mix_rate": 2}),
    ]
    result = await run_pipeline(voc, stream)
    silent, matched = result.data
    assert (silent.audio == 0).all() and silent.num_frames == G.kept_size
    assert np.sqrt(np.mean(matched.audio.astype(np.float64) ** 2)) < 0.05
    assert voc.rms_mix_rate == 0.0 and "rms_mix_rate must be within [0, 1]" in result.errors[0].error
    with pytest.raises(ValueError, match="kind must be one of"):
        VocoderProcessor(sample_rate=SR, kind="hifigan")


def stream_of_windows(n: int) -> list[ConvertedFeaturesFrame]:
    """``n`` consecutive windows (one block apart) of a gliding voice, analysed as the DAG does."""
    t = np.arange(G.window + n * G.block) / SR
    phase = 2 * np.pi * np.cumsum(110.0 + 40.0 * t) / SR
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8))
    frames = []
    for i in range(n):
        w = x[i * G.block : i * G.block + G.window]
        feats = analyze(w, SR, "dio", G.frame_period_ms, frames=G.frames)
        source = w[G.kept_start : G.kept_start + G.kept_size]
        meta = {SEQ_KEY: i}
        frames.append(
            ConvertedFeaturesFrame(
                seq=i,
                features=feats,
                source=source,
                kept_start=G.kept_start,
                kept_size=G.kept_size,
                metadata=meta,
            )
        )
    return frames


def test_tracker_locks_the_next_block_only_after_sola_answered():
    lock = PhaseLockTracker()
    phase = np.arange(100, dtype=np.float64)
    assert lock.take(0) is None
    lock.rendered(0, 40, phase)
    lock.stitched(0, anchor=5, advance=30)
    assert lock.take(1) == (45, 35.0) and lock.locked == 1
    assert lock.take(2) is None and lock.misses == 0  # block 1 was never rendered: nothing pending
    lock.rendered(2, 40, phase)
    assert lock.take(3) is None and lock.misses == 1  # block 2's answer never came
    lock.rendered(3, 40, phase)
    lock.stitched(2, anchor=5, advance=30)  # a stale answer changes nothing
    lock.stitched(3, anchor=5, advance=30)
    assert lock.take(5) is None  # a lock is for the very next block only
    lock.rendered(5, 40, phase)
    lock.stitched(5, anchor=80, advance=30)  # past the kept span: no lock
    assert lock.take(6) is None
    lock.rendered(6, 40, phase)
    lock.stitched(6, anchor=1, advance=2)
    lock.silent()  # a silent block breaks the lock
    assert lock.take(7) is None and (lock.misses, lock.locked) == (1, 1)


@pytest.mark.parametrize("threaded", [False, True])
async def test_phase_lock_with_sola_right_after_never_misses(threaded):
    voc = VocoderProcessor(sample_rate=SR, lookahead=G.lookahead, phase_lock=True, threaded=threaded)
    sola = SolaProcessor(G.block, G.crossfade, G.search, sample_rate=SR, report_offset=True)
    before = RecordingSink()
    result = await run_pipeline([before, voc, sola], stream_of_windows(5))
    assert not result.errors and [f.num_frames for f in result.data] == [G.block] * 5
    assert (voc.lock.locked, voc.lock_misses) == (4, 0)
    assert not any(isinstance(f, SolaOffsetFrame) for f in before.upstream)  # consumed by the vocoder


async def test_phase_lock_without_answers_runs_free_and_says_so_once():
    voc = VocoderProcessor(sample_rate=SR, lookahead=G.lookahead, phase_lock=True, threaded=False)
    result = await run_pipeline(voc, stream_of_windows(4))
    assert [f.num_frames for f in result.data] == [G.kept_size] * 4  # the stream goes on
    assert (voc.lock.locked, voc.lock_misses) == (0, 3)
    assert (
        len(result.errors) == 1
        and "phase lock: SOLA's answer for the block before 1" in result.errors[0].error
    )
    with pytest.raises(ValueError, match="phase_lock needs kind='world'"):
        VocoderProcessor(sample_rate=SR, kind="griffin-lim", phase_lock=True)
