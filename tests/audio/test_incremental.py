"""Incremental analysis: each frame estimated/analysed once, carried exactly, refreshed where it must be."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.audio.f0 import F0Track, get_f0_estimator
from apipeline.audio.f0.wavelet import DioEstimator
from apipeline.audio.incremental import (
    APERIODICITY_STRIDE,
    SPECTRAL_STRIDE,
    StreamingAnalysis,
    StreamingF0,
    carry_stop,
    estimate_mirrored,
    interpolation_plan,
    median_repair,
)
from apipeline.audio.voice_changer import StreamingVoiceChanger, measure_rtf
from apipeline.audio.world import analyze, spectral_at

SR = 16000
HOP = 80  # 5 ms
BLOCK_FRAMES = 7


def voice(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A gliding harmonic voice (110 -> 180 Hz) with a pause and a little noise: F0 and voicing change."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 110.0 + 70.0 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(h * phase) / h for h in range(1, 25))
    x = 0.2 * x * (np.sin(2 * np.pi * 1.5 * t) > -0.7)
    return (x + 0.003 * rng.standard_normal(t.shape)).astype(np.float64)


def windows(x: np.ndarray, window: int, block: int) -> list[np.ndarray]:
    return [x[i : i + window] for i in range(0, x.shape[0] - window + 1, block)]


def test_dio_estimate_frames_equals_slicing_the_whole_estimate() -> None:
    x = voice(0.4)
    for speed in (1, None):
        est = DioEstimator(hop_seconds=HOP / SR, speed=speed)
        whole = est.estimate(x, SR)
        part = est.estimate_frames(x, SR, 30, whole.num_frames)
        np.testing.assert_array_equal(part.f0_hz, whole.f0_hz[30:])
        np.testing.assert_array_equal(part.voiced, whole.voiced[30:])
    with pytest.raises(ValueError, match="bad range"):
        est.estimate_frames(x, SR, 5, whole.num_frames + 1)


def test_base_estimate_frames_slices() -> None:
    est = get_f0_estimator("harvest", hop_seconds=HOP / SR)
    x = voice(0.3)
    whole = est.estimate(x, SR)
    part = est.estimate_frames(x, SR, 3, 9)
    assert part.f0_hz.tolist() == whole.f0_hz[3:9].tolist()


def test_dio_speed_none_decimates_to_about_8k() -> None:
    est = DioEstimator(speed=None)
    assert [est.decimation(r) for r in (8000, 16000, 22050, 44100, 48000, 192000)] == [1, 2, 3, 6, 6, 12]
    assert DioEstimator(speed=4).decimation(48000) == 4
    with pytest.raises(ValueError, match=r"speed must be within 1\.\.12"):
        DioEstimator(speed=0)


def test_mirrored_estimate_from_a_frame_is_the_tail_of_the_whole() -> None:
    est = DioEstimator(hop_seconds=HOP / SR)
    x = voice(0.2)
    whole = estimate_mirrored(est, x, SR, HOP, 800)
    tail = estimate_mirrored(est, x, SR, HOP, 800, first=20)
    np.testing.assert_array_equal(tail.f0_hz, whole.f0_hz[20:])


def test_streaming_f0_carries_old_frames_and_estimates_only_new_ones() -> None:
    est = DioEstimator(hop_seconds=HOP / SR)
    window, block = 2400, BLOCK_FRAMES * HOP
    stop = 20
    f0 = StreamingF0(est, SR, HOP, BLOCK_FRAMES, stop, 800, median_frames=1)
    ws = windows(voice(1.0), window, block)
    tracks = [f0.track(w, seq) for seq, w in enumerate(ws)]
    n = tracks[0].num_frames
    for seq in range(1, len(ws)):
        fresh = estimate_mirrored(est, ws[seq], SR, HOP, 800)
        carried = stop - BLOCK_FRAMES
        # frames carried from the previous window: that window's values, not a new estimate
        np.testing.assert_array_equal(tracks[seq].f0_hz[:carried], tracks[seq - 1].f0_hz[BLOCK_FRAMES:stop])
        # the others: this window's own estimate
        np.testing.assert_array_equal(tracks[seq].f0_hz[carried:], fresh.f0_hz[carried:])
    assert f0.frames_estimated == n + (len(ws) - 1) * (n - (stop - BLOCK_FRAMES))


def test_streaming_f0_starts_afresh_after_a_gap_or_reset() -> None:
    est = DioEstimator(hop_seconds=HOP / SR)
    ws = windows(voice(1.0), 2400, BLOCK_FRAMES * HOP)
    f0 = StreamingF0(est, SR, HOP, BLOCK_FRAMES, 20, 800, median_frames=1)
    f0.track(ws[0], 0)
    before = f0.frames_estimated
    f0.track(ws[5], 5)  # 5 blocks later: nothing of window 0 overlaps window 5's start... fully new
    n = f0.frames_estimated - before
    assert n == estimate_mirrored(est, ws[5], SR, HOP, 800).num_frames
    f0.reset()
    before = f0.frames_estimated
    track = f0.track(ws[6], 6)
    assert f0.frames_estimated - before == track.num_frames
    # a stream starting again at seq 0 after reset() never sees the old stream's frames
    f0.reset()
    again = f0.track(ws[3], 0)
    np.testing.assert_array_equal(again.f0_hz, estimate_mirrored(est, ws[3], SR, HOP, 800).f0_hz)


def test_median_repair_fixes_glitches_within_voiced_runs_only() -> None:
    f0 = np.array([0, 100, 101, 150, 102, 103, 0, 0, 200, 201, 100, 202], dtype=np.float64)
    voiced = f0 > 0
    out = median_repair(f0, voiced)
    assert out[3] == pytest.approx(102.0)  # the glitch takes the median of its run's 5 frames
    assert out[10] == pytest.approx(np.sqrt(200 * 201))  # an octave drop inside a run is repaired
    assert out[1] == pytest.approx(np.exp(np.median(np.log([100, 101, 150]))))  # the run's start: fewer
    assert (out[~voiced] == 0).all() and (out[voiced] > 0).all()  # voicing untouched, runs not mixed
    assert out[8] == pytest.approx(np.exp(np.median(np.log([200, 201, 100]))))
    part = median_repair(f0, voiced, start=6)
    np.testing.assert_array_equal(part[:6], f0[:6])  # frames before start are left alone
    np.testing.assert_array_equal(median_repair(f0, voiced, width=1), f0)


def test_carried_frames_are_exactly_what_reanalysis_gives_away_from_the_edge() -> None:
    """The claim behind carrying: a frame's envelope/aperiodicity only depend on samples near it."""
    x = voice(0.6)
    est = DioEstimator(hop_seconds=HOP / SR)
    track = est.estimate(x, SR)
    f0 = np.where(track.voiced, track.f0_hz, 0.0)
    hop_s = HOP / SR
    frames = np.arange(20, 30)
    a = spectral_at(x[:3200], SR, f0[frames], frames * hop_s)  # window A ends 50 ms after frame 30
    b = spectral_at(x[560:4000], SR, f0[frames], frames * hop_s - 560 / SR)  # window B starts later
    np.testing.assert_allclose(a[0], b[0], rtol=1e-9)
    np.testing.assert_allclose(a[1], b[1], atol=1e-3)
    # ... but near a window's end they differ: that is why the newest frames are analysed again
    near = np.array([38])  # 10 ms before the end of x[:3200]
    c = spectral_at(x[:3200], SR, f0[near], near * hop_s)
    d = spectral_at(x[:4000], SR, f0[near], near * hop_s)
    assert np.max(np.abs(np.log(c[0] / d[0]))) > 0.01


def test_carry_stop_leaves_the_newest_frames_for_the_next_window() -> None:
    # 16 ms before the end of a 3300-sample window at 22.05 kHz (hop 110): frames 27, 28 are refreshed
    assert carry_stop(3300, 110, 29, 22050) == 27
    assert carry_stop(3300, 110, 20, 22050) == 20
    assert carry_stop(100, 110, 29, 22050) == 0


def test_streaming_analysis_reuses_frames_and_equals_analyze_on_new_ones() -> None:
    x = voice(1.0)
    est = DioEstimator(hop_seconds=HOP / SR)
    window, frames = 2400, (12, 26)
    ws = windows(x, window, BLOCK_FRAMES * HOP)
    sa = StreamingAnalysis(
        SR, 5.0, BLOCK_FRAMES, frames, carry_stop=24, spectral_stride=1, aperiodicity_stride=1, decimate=False
    )
    f0s = StreamingF0(est, SR, HOP, BLOCK_FRAMES, 24, 800)
    prev = None
    for seq, w in enumerate(ws):
        track = f0s.track(w, seq)
        feats = sa.analyze(w, seq, track)
        direct = analyze(w, SR, track, 5.0, frames=frames, aperiodicity_rate=sa.aperiodicity_rate)
        np.testing.assert_array_equal(feats.f0, direct.f0)
        assert feats.start_frame == frames[0] and feats.sp.shape == direct.sp.shape
        # WORLD adds 1e-16-scale noise whose draw depends on the frames in the call: hence rtol, not equality
        if prev is None:
            np.testing.assert_allclose(feats.sp, direct.sp, rtol=1e-6)
        else:
            # new frames (from the refreshed ones on) are this window's analysis
            np.testing.assert_allclose(feats.sp[-3:], direct.sp[-3:], rtol=1e-6)
            np.testing.assert_allclose(feats.ap[-3:], direct.ap[-3:], atol=1e-3)
        prev = feats
    blocks = len(ws)
    assert sa.frames_analysed < frames[1] - frames[0] + (blocks - 1) * (BLOCK_FRAMES + 4)


def test_streaming_analysis_reanalyses_a_frame_whose_f0_moved() -> None:
    x = voice(0.4)
    w0, w1 = x[:2400], x[560:2960]
    sa = StreamingAnalysis(
        SR,
        5.0,
        BLOCK_FRAMES,
        (12, 26),
        f0_tolerance=0.02,
        spectral_stride=1,
        aperiodicity_stride=1,
        decimate=False,
    )
    n = 31
    base = np.full(n, 150.0)
    sa.analyze(w0, 0, F0Track(base, base > 0, HOP / SR))
    before = sa.frames_analysed
    moved = base.copy()
    moved[12] = 150.0 * 1.05  # frame 12 of window 1 = frame 19 of window 0 (carried): moved 5 %
    moved[13] = 150.0 * 1.01  # within tolerance: reused
    moved[14] = 0.0  # voicing changed: re-analysed
    feats = sa.analyze(w1, 1, F0Track(moved, moved > 0, HOP / SR))
    carried = 26 - 12 - BLOCK_FRAMES  # frames 12..18 of window 1 were carried (7)
    assert sa.frames_analysed - before == (26 - 12 - carried) + 2
    assert feats.f0[0] == pytest.approx(157.5) and feats.f0[2] == 0.0
    with pytest.raises(ValueError, match="f0_tolerance"):
        StreamingAnalysis(SR, 5.0, BLOCK_FRAMES, (12, 26), f0_tolerance=-1.0)


def test_the_core_analyses_each_frame_about_once() -> None:
    """The point of the exercise: per block, about a block's frames (+2 refreshed), not the window's."""
    x = voice(2.0, 22050).astype(np.float32)
    vc = StreamingVoiceChanger(22050)
    b = vc.block_size
    for i in range(0, x.shape[0] - b + 1, b):
        vc.process_block(x[i : i + b])
    analysed = vc.blocks_processed - vc.blocks_gated
    per_block = vc._analysis.frames_analysed / analysed
    frames = vc._frames[1] - vc._frames[0]
    # the window renders 14 frames (16 with the old 20 ms warm-up); analysing them all was the old way
    assert frames >= 14 and per_block < 8
    # after reset a stream converts exactly as in a new changer: nothing of the first pass leaks (not
    # even the block count, which places frames on the analysis anchors' grid)
    fresh = StreamingVoiceChanger(22050)
    for start in (0, 3 * b):
        vc.reset()
        fresh.reset()
        first = np.concatenate([vc.process_block(x[i : i + b]) for i in range(start, start + 20 * b, b)])
        second = np.concatenate([fresh.process_block(x[i : i + b]) for i in range(start, start + 20 * b, b)])
        np.testing.assert_array_equal(first, second)
        vc.process_block(x[:b])  # one more block before the next reset: a count no stride divides


def test_measure_rtf_streams_and_reports_cpu_per_audio_second() -> None:
    rtf = measure_rtf(16000, seconds=0.3)
    assert np.isfinite(rtf) and rtf > 0.0
    with pytest.raises(ValueError, match="unknown F0 estimator"):
        measure_rtf(16000, seconds=0.3, f0="nope")


def test_interpolation_plan_analyses_anchors_and_voicing_edges() -> None:
    # frames 0..9 with absolute indices 7..16; wanted: 1..8 (absolute 8..15); anchors: even absolute
    f0 = np.array([100.0, 100, 100, 100, 0, 0, 0, 120, 120, 120])
    direct, left, right = interpolation_plan(f0, 7, 2, 1, 8)
    # absolute 9 (i=2) between voiced anchors 8, 10: interpolated; absolute 11 (i=4) is unvoiced between
    # a voiced and an unvoiced anchor: analysed; 13 (i=6) unvoiced between unvoiced 12 and voiced 14:
    # analysed; 15 (i=8) between voiced anchors 14 and 16 (i=9, outside the wanted frames): interpolated
    assert list(np.flatnonzero(direct)) == [1, 3, 4, 5, 6, 7, 9]
    assert (left[2], right[2]) == (1, 3) and (left[8], right[8]) == (7, 9)
    assert np.all(left[direct] == -1)
    # no anchor past the run's end: the last wanted frame is analysed
    direct, left, _ = interpolation_plan(np.full(4, 100.0), 1, 2, 0, 4)
    assert list(np.flatnonzero(direct)) == [0, 1, 3] and left[2] == 1
    # stride 1: every wanted frame analysed
    direct, left, _ = interpolation_plan(f0, 7, 1, 1, 8)
    assert list(np.flatnonzero(direct)) == list(range(1, 9)) and np.all(left == -1)


def test_spectral_stride_stays_close_to_the_full_rate_analysis() -> None:
    """Interpolated frames (envelope: every other one; aperiodicity: three in four) against analysing
    every frame, on the example speech.

    The tolerance (docs/design.md): median log-spectral distance <= 1.5 dB over 0-8 kHz on voiced
    interpolated frames, p95 <= 5 dB (here 1.44 / 3.46 dB; 0.8 / 3.6 dB over ARCTIC + this example, against
    a median 3.4 dB change between adjacent 5 ms frames); aperiodicity (mean |difference| over the bins of a
    voiced interpolated frame) <= 0.05 in the median, <= 0.15 at p95 (here 0.028 / 0.085).
    """
    from apipeline.audio.io import read_audio

    audio, sr = read_audio("examples/data/speech.wav")
    x = np.asarray(audio, np.float64).reshape(audio.shape[0], -1).mean(axis=1)
    est = DioEstimator(hop_seconds=110 / sr)
    hop, bf = 110, 7
    frames, window = (13, 29), 3300
    f0s = StreamingF0(est, sr, hop, bf, 24, 1100)
    full = StreamingAnalysis(
        sr,
        1000 * hop / sr,
        bf,
        frames,
        carry_stop=27,
        spectral_stride=1,
        aperiodicity_stride=1,
        decimate=False,
    )
    half = StreamingAnalysis(sr, 1000 * hop / sr, bf, frames, carry_stop=27, decimate=False)
    assert half.spectral_stride == SPECTRAL_STRIDE == 2
    assert half.aperiodicity_stride == APERIODICITY_STRIDE == 8
    lsd, apd = [], []
    nb = int(8000 / (sr / 2) * 513)
    for seq, w in enumerate(windows(x, window, bf * hop)):
        track = f0s.track(w, seq)
        a, b = full.analyze(w, seq, track), half.analyze(w, seq, track)
        np.testing.assert_array_equal(a.f0, b.f0)
        odd = (seq * bf + np.arange(*frames)) % 2 == 1
        v = odd & (a.f0 > 0)
        d = 10 * np.log10(b.sp[v, :nb] / a.sp[v, :nb])
        lsd.extend(np.sqrt(np.mean(d**2, axis=1)))
        between = ((seq * bf + np.arange(*frames)) % 4 != 0) & (a.f0 > 0)
        apd.extend(np.abs(b.ap[between] - a.ap[between]).mean(axis=1))
    assert len(lsd) > 200
    assert np.median(lsd) <= 1.5 and np.percentile(lsd, 95) <= 5.0
    assert np.median(apd) <= 0.05 and np.percentile(apd, 95) <= 0.15
    assert half.frames_analysed < 0.7 * full.frames_analysed
    assert half.aperiodicity_frames_analysed < 0.45 * full.aperiodicity_frames_analysed
    with pytest.raises(ValueError, match="spectral_stride"):
        StreamingAnalysis(sr, 5.0, bf, frames, spectral_stride=0)
    with pytest.raises(ValueError, match="aperiodicity_stride"):
        StreamingAnalysis(sr, 5.0, bf, frames, aperiodicity_stride=0)


def test_interpolation_plan_holds_the_last_anchor_before_hold_from() -> None:
    # absolute frames 0..11, all voiced, stride 4, every frame wanted, no anchor from frame 8 on
    f0 = np.full(12, 100.0)
    direct, left, right = interpolation_plan(f0, 0, 4, 0, 11, hold_from=8)
    assert list(np.flatnonzero(direct)) == [0, 4]  # no anchor at or past 8 is analysed
    assert (left[2], right[2]) == (0, 4)  # interpolated as before
    for i in (5, 6, 7, 8, 9, 10):  # would need anchor 8: hold anchor 4
        assert (left[i], right[i]) == (4, 4)
    # a frame past hold_from in another voicing run than the last anchor is analysed itself
    f0[9:] = 0.0
    direct, left, _ = interpolation_plan(f0, 0, 4, 0, 11, hold_from=8)
    assert list(np.flatnonzero(direct)) == [0, 4, 9, 10] and left[8] == 4
    # without hold_from: the plan of before (anchor 8 analysed)
    direct, _, _ = interpolation_plan(np.full(12, 100.0), 0, 4, 0, 11)
    assert 8 in np.flatnonzero(direct)


@pytest.mark.parametrize("stride", sorted({4, APERIODICITY_STRIDE}))
def test_aperiodicity_hold_analyses_nothing_voiced_past_the_carry_stop(stride: int) -> None:
    """D4C never runs on a voiced frame that the next window analyses again; the held frames take an
    analysed frame's aperiodicity, and only the frames from the carry stop's last anchor on change."""
    sr, hop, bf, frames, stop = SR, HOP, BLOCK_FRAMES, (13, 29), 27
    x = voice(1.5)
    est = DioEstimator(hop_seconds=hop / sr)
    f0s = StreamingF0(est, sr, hop, bf, 24, 800)
    kw = dict(carry_stop=stop, decimate=False, aperiodicity_stride=stride)
    held = StreamingAnalysis(sr, 5.0, bf, frames, **kw)  # type: ignore[arg-type]
    free = StreamingAnalysis(sr, 5.0, bf, frames, aperiodicity_hold=False, **kw)  # type: ignore[arg-type]
    asked: list[float] = []
    import apipeline.audio.incremental as inc

    real = inc.aperiodicity_at

    def spy(audio, rate, f0, times, *a, **k):  # type: ignore[no-untyped-def]
        asked.extend(float(t) for t, f in zip(times, f0, strict=True) if f > 0)
        return real(audio, rate, f0, times, *a, **k)

    voiced_tail = 0
    diffs: list[float] = []
    onsets = 0
    for seq, w in enumerate(windows(x, 3200, bf * hop)):
        track = f0s.track(w, seq)
        b = free.analyze(w, seq, track)
        asked.clear()
        inc.aperiodicity_at = spy
        try:
            a = held.analyze(w, seq, track)
        finally:
            inc.aperiodicity_at = real
        # a voiced frame from the carry stop on is analysed only at a voicing onset after the last anchor
        anchor = max(i for i in range(stop) if (seq * bf + i) % stride == 0)
        f0w = np.where(track.voiced, track.f0_hz, 0.0)
        for i in (round(t * 1000 / 5.0) for t in asked):
            assert i < stop or np.any(f0w[anchor : i + 1] == 0), (seq, i)
        onsets += sum(round(t * 1000 / 5.0) >= stop for t in asked)
        np.testing.assert_array_equal(a.sp, b.sp)
        tail = np.flatnonzero(a.f0[stop - frames[0] :] > 0) + stop - frames[0]
        voiced_tail += tail.size
        analysed = {round(t * 1000 / 5.0) - frames[0] for t in asked}
        for i in (i for i in tail if i not in analysed):  # a held row equals an earlier row
            assert any(np.array_equal(a.ap[i], a.ap[j]) for j in range(stop - frames[0]))
        # earlier frames: the same analysis (up to the 2 % F0 tolerance of reusing a carried frame)
        early = stop - frames[0] - 2 * stride  # (none in this 16-frame span at stride 8)
        if early > 0:
            np.testing.assert_allclose(a.ap[:early], b.ap[:early], atol=0.01)
        diffs.extend(np.abs(a.ap[tail] - b.ap[tail]).mean(axis=1))
    assert voiced_tail > 20 and onsets < voiced_tail / 4
    # the held tail stays within the interpolation tolerance (test_spectral_stride_stays_close...)
    assert np.median(diffs) <= 0.05 and np.percentile(diffs, 95) <= 0.15
    assert held.aperiodicity_frames_analysed < free.aperiodicity_frames_analysed


def test_streaming_f0_reuses_stonemask_only_where_it_is_exact() -> None:
    """StoneMask is skipped on frames whose refinement the previous window computed from the same DIO F0
    and samples: the track is bit for bit the one refining every new frame, with fewer refinements."""
    from apipeline.audio.io import read_audio

    audio, sr = read_audio("examples/data/speech.wav")
    x = np.asarray(audio, np.float64).reshape(audio.shape[0], -1).mean(axis=1)
    est = DioEstimator(hop_seconds=110 / sr)
    reuse = StreamingF0(est, sr, 110, 7, 25, 1100)
    every = StreamingF0(est, sr, 110, 7, 25, 1100, reuse_refinement=False)
    for seq, w in enumerate(windows(x, 3300, 770)):
        if seq == 40:  # a gap: the next window does not follow, nothing may be reused across it
            continue
        a, b = reuse.track(w, seq), every.track(w, seq)
        np.testing.assert_array_equal(a.f0_hz, b.f0_hz)
        np.testing.assert_array_equal(a.voiced, b.voiced)
    assert reuse.frames_estimated == every.frames_estimated
    assert reuse.frames_refined < 0.95 * every.frames_estimated


@pytest.mark.parametrize("sr", [16000, 48000])
def test_unvoiced_aperiodicity_rows_equal_d4c(sr: int) -> None:
    """Unvoiced frames get D4C's unvoiced row without running D4C on them: the same values, bit for bit."""
    from apipeline.audio.world import aperiodicity_at

    hop = sr // 200
    x = voice(1.0, sr)
    x[: sr // 10] = 0.0  # a silent start: unvoiced frames
    est = DioEstimator(hop_seconds=hop / sr)
    track = est.estimate(x[: 40 * hop], sr)
    an = StreamingAnalysis(
        sr, 5.0, BLOCK_FRAMES, (0, 38), spectral_stride=1, aperiodicity_stride=1, decimate=False
    )
    feats = an.analyze(x[: 40 * hop], 0, track)
    f0 = feats.f0
    assert (f0 == 0).sum() > 5 and (f0 > 0).sum() > 5
    times = np.arange(38) * hop / sr
    direct = aperiodicity_at(x[: 40 * hop], sr, f0, times, feats.fft_size, aperiodicity_rate=24000)
    np.testing.assert_array_equal(feats.ap, direct)
    assert an.aperiodicity_frames_analysed == (f0 > 0).sum()


def test_refine_factor_keeps_the_hop_whole() -> None:
    from apipeline.audio.incremental import refine_factor

    assert refine_factor(48000, 240, 24000) == 2
    assert refine_factor(44100, 220, 24000) == 2
    assert refine_factor(22050, 110, 24000) == 1
    assert refine_factor(48000, 240, None) == 1
    assert refine_factor(96000, 480, 24000) == 4
    assert refine_factor(48000, 241, 24000) == 1  # no factor divides both: the input rate


def test_streaming_f0_refined_at_24k_stays_close_to_full_rate() -> None:
    """At 48 kHz StoneMask runs on the window decimated to 24 kHz: voicing unchanged, F0 within a few
    cents of refining at 48 kHz (decimated windows differ in their last bits: nothing is reused there)."""
    import soxr

    from apipeline.audio.io import read_audio

    audio, sr0 = read_audio("examples/data/speech.wav")
    x = soxr.resample(np.asarray(audio, np.float64).reshape(audio.shape[0], -1).mean(axis=1), sr0, 48000)
    sr, hop = 48000, 240
    est = DioEstimator(hop_seconds=hop / sr)
    low = StreamingF0(est, sr, hop, 7, 25, 2400, refine_rate=24000)
    every = StreamingF0(est, sr, hop, 7, 25, 2400, reuse_refinement=False, refine_rate=24000)
    full = StreamingF0(est, sr, hop, 7, 25, 2400, refine_rate=None)
    cents: list[float] = []
    for seq, w in enumerate(windows(x, 30 * hop, 7 * hop)):
        a, b, c = low.track(w, seq), every.track(w, seq), full.track(w, seq)
        np.testing.assert_array_equal(a.f0_hz, b.f0_hz)
        np.testing.assert_array_equal(a.voiced, c.voiced)
        v = a.voiced & c.voiced
        cents.extend(np.abs(1200 * np.log2(a.f0_hz[v] / c.f0_hz[v])))
    assert len(cents) > 1000 and low.frames_refined == low.frames_estimated
    assert np.median(cents) <= 5.0 and np.percentile(cents, 95) <= 30.0
