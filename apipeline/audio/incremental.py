"""Incremental WORLD analysis for block streaming: each frame is analysed once and carried across windows.

The streaming voice changer cuts its input into windows ``[left context | block]`` that advance by one
block (``block_frames`` WORLD frames) at a time, so consecutive windows share all but their newest
frames. Re-analysing the shared frames in every window (the left context is ~3x the block) is where most
of the time went. These two objects remember, per *absolute* frame (``seq * block_frames`` + the frame's
index in window ``seq``), what was already computed:

* :class:`StreamingF0` -- the F0 track of each window. Frames already estimated in an earlier window keep
  that estimate; only the newest frames are estimated, with the window's end mirrored past its edge
  (:func:`estimate_mirrored`). DIO runs over the whole window (its voicing needs >= ~120 ms), but
  StoneMask refines only the new frames (:meth:`~apipeline.audio.f0.F0Estimator.estimate_frames`).
* :class:`StreamingAnalysis` -- CheapTrick envelope and D4C aperiodicity of the frames a window renders.
  A frame already analysed with the same F0 is reused; only the new ones are analysed. And only every
  other one (:data:`SPECTRAL_STRIDE`, a 10 ms analysis period on the 5 ms synthesis grid): the frames
  between two analysed ones ("anchors", the even absolute frames) are interpolated -- the envelope
  geometrically, the aperiodicity linearly -- unless an anchor's voicing differs from theirs (a voicing
  edge is analysed where it is). Envelope and aperiodicity change slowly against 10 ms; the F0 track,
  which does not, stays on every frame. Measured on CMU ARCTIC + the example speech at 22.05 kHz: the
  interpolated voiced frames are a median 0.8 dB (p95 3.6 dB) log-spectral distance over 0-8 kHz from
  their direct analysis, while adjacent 5 ms frames differ by a median 3.4 dB; the aperiodicity by a
  mean 0.005. It halves CheapTrick and D4C time (tested: ``tests/audio/test_incremental.py``).

Frames at or after ``carry_stop`` (:func:`carry_stop`: those less than :data:`SETTLE_MS` before the window's
newest sample) are not carried: they are analysed again in the next window, when more signal follows them.

Each keeps the frames of the latest window only (memory stays bounded), and starts afresh when a window
does not follow the previous one (a gated block, a ``seq`` jump, :meth:`reset`). Their output is a pure
function of the windows they were given and their ``seq``, so two copies fed the same windows (the core
and the processors of the DAG) give the same frames, bit for bit.

Exactness against re-analysis: CheapTrick and D4C compute each frame from the samples around it, so a
frame analysed in an earlier window is exactly what a later window would compute whenever the earlier
window already held the whole neighbourhood of the frame; only the newest frames (within ~one analysis
window of the kept span's end) were computed with less future than re-analysis would give them.
``benchmarks/voice_quality.py`` measures the effect on pitch accuracy.
"""

from __future__ import annotations

import functools

import numpy as np
import soxr
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Estimator, F0Track, frames_for
from apipeline.audio.f0.base import check_mono
from apipeline.audio.f0.wavelet import DioEstimator
from apipeline.audio.world import (
    APERIODICITY_RATE,
    WorldFeatures,
    aperiodicity_at,
    envelope_at,
    synthesis_fft_size,
)
from apipeline.errors import ParameterError

SETTLE_MS = 16.0
"""A frame closer than this to a window's newest sample is analysed again in the next window.

CheapTrick and D4C read about +-15-20 ms around a frame (three pitch periods at 90 Hz, more for D4C): a
frame that close to the edge sees a truncated neighbourhood. Measured on speech at 22.05 kHz: frames 10
and 15 ms before the edge differ from their re-analysis (envelope up to 1.8 / 0.07 in log power,
aperiodicity 0.25 / 0.04); frames 20 ms and more before it are equal to 1e-4.
"""


F0_TOLERANCE = 0.02
"""Relative F0 change (2 %, 34 cents) up to which a frame's carried envelope and aperiodicity are reused."""


SPECTRAL_STRIDE = 2
"""CheapTrick and D4C run on every ``SPECTRAL_STRIDE``-th frame; the frames between are interpolated
(:class:`StreamingAnalysis`). 2 = a 10 ms analysis period for the 5 ms synthesis grid, half the cost."""


APERIODICITY_STRIDE = 8
"""D4C runs on every ``APERIODICITY_STRIDE``-th frame (40 ms; 20 ms until the third round): WORLD's
aperiodicity is a few 3 kHz bands that change slower still than the envelope (:class:`StreamingAnalysis`),
and D4C's own estimate jitters between adjacent 5 ms frames by a mean 0.045-0.070 (over the bins below
8 kHz, voiced frames of the 3 real recordings), about what the interpolation over 40 ms differs from a
direct analysis (0.047-0.082; 0.042-0.068 over 20 ms). Through the streaming core the 40-mel spectrum of
the output moves by a median 0.00 / 0.01 dB, p95 0.29 / 0.60 dB at 22.05 / 48 kHz, while merely changing
the realisation of WORLD's noise excitation (a 15 ms warm-up instead of 10) moves it by p95 2.8 / 3.1 dB
(``docs/benchmarks.md``). Saves ~0.2 ms of D4C per 35 ms block."""


REFINE_RATE: int | None = 24000
"""Highest rate at which :class:`StreamingF0` runs StoneMask (DIO's refinement); None: the input rate.

StoneMask's FFT grows with the rate (2048 points a frame at 48 kHz, 1024 at 24 kHz), and it reads the F0
from the lowest harmonics, which a 24 kHz copy keeps: at 48 kHz it costs 1.19 -> 0.68 ms per block
(resampling included). Measured over the 3 real recordings and the example speech at 48 kHz, the refined
F0 differs from the full-rate one by a median 0.01-0.04 cents, a 99th percentile of 0.2-3.2 cents and at
worst 19 cents (one frame); no frame changes voicing. (A 11.025 kHz copy at 22.05 kHz was measured and
not taken: 99th percentile 8-35 cents, worst 150.) No effect at or below 24 kHz."""


def refine_factor(sample_rate: int, hop: int, refine_rate: int | None) -> int:
    """Whole decimation factor from ``sample_rate`` to at most ``refine_rate`` that keeps ``hop`` whole
    (1: none). 48 kHz, hop 240 -> 2 (24 kHz); 44.1 kHz, hop 220 -> 2; 22.05 kHz -> 1."""
    if refine_rate is None or sample_rate <= refine_rate:
        return 1
    for k in range(-(-sample_rate // refine_rate), sample_rate + 1):
        if sample_rate % k == 0 and hop % k == 0:
            return k
    return 1


MEDIAN_FRAMES = 5
"""Width of the median repair of a streamed F0 track (:func:`median_repair`)."""


def median_repair(
    f0: NDArray[np.float64], voiced: NDArray[np.bool_], start: int = 0, width: int = MEDIAN_FRAMES
) -> NDArray[np.float64]:
    """``f0`` with each voiced frame from ``start`` on replaced by the median of the ``width`` frames around
    it that belong to the same voiced run (fewer at a run's or the track's ends).

    DIO+StoneMask disagree with harvest mostly in single-frame glitches and at the edges of voiced runs
    (CMU ARCTIC at 22.05 kHz: 11.7 / 17.5 % of the frames voiced in both > 50 cents apart, 8.3 / 13.1 %
    after this repair; the voicing is left as it is). With ``width`` 5 a frame needs two frames after it:
    the voice changer's look-ahead frames, so the repair adds no latency.
    """
    out = np.array(f0, dtype=np.float64, copy=True)
    n = out.shape[0]
    half = width // 2
    if half == 0 or n == 0:
        return out
    # run id of every frame: voiced frames of one contiguous run share it
    run = np.cumsum(np.concatenate([[True], voiced[1:] != voiced[:-1]]))
    idx = np.arange(max(0, start), n)
    idx = idx[voiced[idx]]
    if idx.size == 0:
        return out
    log_f0 = np.log(np.where(voiced, np.maximum(f0, 1e-12), 1.0))
    cols = idx[:, None] + np.arange(-half, half + 1)[None, :]
    inside = np.minimum(np.maximum(cols, 0), n - 1)
    valid = (cols == inside) & (run[inside] == run[idx][:, None])
    values = np.sort(np.where(valid, log_f0[inside], np.inf), axis=1)  # the valid ones first, in order
    count = valid.sum(axis=1)
    rows = np.arange(idx.size)
    out[idx] = np.exp(0.5 * (values[rows, (count - 1) // 2] + values[rows, count // 2]))
    return out


def carry_stop(window: int, hop: int, frame_stop: int, sample_rate: int, settle_ms: float = SETTLE_MS) -> int:
    """First frame of a ``window``-sample window (hop ``hop``) that is not carried to the next window:
    frames whose centre is less than ``settle_ms`` before the window's end, and none from ``frame_stop``."""
    settle = round(settle_ms * sample_rate / 1000.0)
    return max(0, min(frame_stop, (window - settle) // hop + 1))


def estimate_mirrored(
    estimator: F0Estimator,
    x: NDArray[np.float64],
    sample_rate: int,
    hop: int,
    pad: int,
    first: int = 0,
) -> F0Track:
    """F0 of window ``x`` on the hop grid, estimated with its last ``pad`` samples mirrored past its end.

    DIO drops voicing over the last ~15 frames of a window; the mirror (``x[-pad-1:-1]`` reversed)
    continues the signal with the same period, so the frames near the edge keep their F0 and voicing.
    ``pad`` is capped at ``len(x) - hop``; 0 estimates ``x`` as is. Only frames ``first`` onwards are
    returned (frame ``first`` becomes index 0): estimators that can refine a subset of frames do so.
    """
    hop_s = hop / sample_rate
    n = frames_for(x.shape[0], sample_rate, hop_s)
    pad = max(0, min(pad, x.shape[0] - hop))
    signal = np.concatenate([x, x[-pad - 1 : -1][::-1]]) if pad > 0 else x
    if abs(estimator.hop_seconds - hop_s) > 1e-12:
        full = estimator.estimate(signal, sample_rate)
        full = full.resample(hop_s, frames_for(signal.shape[0], sample_rate, hop_s))
        return F0Track(full.f0_hz[first:n], full.voiced[first:n], hop_s)
    track = estimator.estimate_frames(signal, sample_rate, first, n)
    return F0Track(track.f0_hz, track.voiced, hop_s)


class _Carry:
    """Per-frame arrays of the latest window, keyed by absolute frame index."""

    def __init__(self) -> None:
        self.start = 0
        self.arrays: tuple[NDArray, ...] | None = None

    def overlap(self, start: int, n: int) -> int:
        """How many of the ``n`` frames from absolute frame ``start`` on are carried (a prefix)."""
        if self.arrays is None:
            return 0
        stop = self.start + self.arrays[0].shape[0]
        if not self.start <= start <= stop:
            return 0
        return min(stop - start, n)

    def take(self, start: int, count: int) -> tuple[NDArray, ...]:
        assert self.arrays is not None
        i = start - self.start
        return tuple(a[i : i + count] for a in self.arrays)

    def keep(self, start: int, *arrays: NDArray) -> None:
        self.start = start
        self.arrays = tuple(np.array(a, copy=True) for a in arrays)

    def reset(self) -> None:
        self.arrays = None


class StreamingF0:
    """F0 of consecutive windows, each frame estimated once (see the module docstring).

    Args:
        estimator: any F0 estimator (DIO saves the most: StoneMask refines only the new frames).
        sample_rate: rate of the windows.
        hop: WORLD hop in samples (the track's grid).
        block_frames: frames a window advances per ``seq`` (block / hop).
        carry_stop: frames ``[0, carry_stop)`` of a window are kept for the next window; later frames
            (past the kept span) are estimated again there.
        pad: mirrored tail in samples (:func:`estimate_mirrored`).
        median_frames: width of the :func:`median_repair` applied to the new frames (1 = off).
        reuse_refinement: with DIO, a new frame whose StoneMask refinement the previous window already
            computed from the same inputs reuses it (:meth:`_dio_track`; exact, tested).
        refine_rate: with DIO, StoneMask runs on the window decimated by a whole factor to at most this
            rate (:func:`refine_factor`; None: the input rate). DIO itself already works near 8 kHz.
    """

    def __init__(
        self,
        estimator: F0Estimator,
        sample_rate: int,
        hop: int,
        block_frames: int,
        carry_stop: int,
        pad: int,
        median_frames: int = MEDIAN_FRAMES,
        reuse_refinement: bool = True,
        refine_rate: int | None = REFINE_RATE,
    ) -> None:
        if block_frames <= 0 or carry_stop < 0:
            raise ParameterError(
                f"StreamingF0: need block_frames > 0 and carry_stop >= 0, got {block_frames}, {carry_stop}"
            )
        self.estimator = estimator
        self.sample_rate = sample_rate
        self.hop = hop
        self.block_frames = block_frames
        self.carry_stop = carry_stop
        self.pad = pad
        self.median_frames = median_frames
        self.frames_estimated = 0
        self.frames_refined = 0
        self.reuse_refinement = reuse_refinement
        self.refine_rate = refine_rate
        self._carry = _Carry()
        self._refined = _Carry()

    def reset(self) -> None:
        self._carry.reset()
        self._refined.reset()

    def _dio_track(
        self, est: DioEstimator, x: NDArray[np.float64], start: int, first: int, n: int
    ) -> F0Track:
        """:func:`estimate_mirrored` for DIO+StoneMask, StoneMask skipped where its result is known: a
        frame refined in the previous window from the same DIO F0 with every sample StoneMask reads
        inside both windows' real (unmirrored) signal gets exactly the same refinement again."""
        hop_s = self.hop / self.sample_rate
        audio = check_mono(x, self.sample_rate, "StreamingF0.track")
        pad = max(0, min(self.pad, audio.shape[0] - self.hop))
        signal = np.concatenate([audio, audio[-pad - 1 : -1][::-1]]) if pad > 0 else audio
        if abs(est.hop_seconds - hop_s) > 1e-12:
            return estimate_mirrored(est, x, self.sample_rate, self.hop, self.pad, first)
        raw, t = est.raw_frames(signal, self.sample_rate, n)
        raw, t = np.ascontiguousarray(raw[first:n]), np.ascontiguousarray(t[first:n])
        m = n - first
        # StoneMask at most at refine_rate: on a signal decimated by a whole factor (same frame instants)
        rate, hop, real = self.sample_rate, self.hop, audio.shape[0]
        factor = refine_factor(self.sample_rate, self.hop, self.refine_rate)
        if factor > 1:
            rate, hop, real = rate // factor, hop // factor, real // factor
            signal = soxr.resample(signal, self.sample_rate, rate, quality="HQ")
        reach = est.refine_reach(raw, rate)
        centre = (first + np.arange(m)) * hop
        inside = (centre - reach >= 0) & (centre + reach < real)
        refined = np.zeros(m)
        known = np.zeros(m, dtype=bool)
        # (the decimated signal differs between windows in its last bits: no exact reuse there)
        k = self._refined.overlap(start + first, m) if factor == 1 and self.reuse_refinement else 0
        if k:
            old_raw, old_refined, old_inside = self._refined.take(start + first, k)
            known[:k] = old_inside & inside[:k] & (old_raw == raw[:k])
            refined[:k][known[:k]] = old_refined[known[:k]]
        todo = (~known).nonzero()[0]
        if todo.size:
            refined[todo] = est.refine_frames(signal, rate, raw[todo], t[todo])
        self.frames_refined += int(todo.size)
        self._refined.keep(start + first, raw, refined, inside)
        voiced = refined > 0
        return F0Track(np.where(voiced, refined, 0.0), voiced, hop_s)

    def track(self, x: NDArray[np.float64], seq: int) -> F0Track:
        """The F0 track over window ``x`` (block number ``seq``), frames carried where known."""
        hop_s = self.hop / self.sample_rate
        n = frames_for(x.shape[0], self.sample_rate, hop_s)
        start = seq * self.block_frames
        carried = self._carry.overlap(start, min(n, self.carry_stop))
        est = self.estimator
        if isinstance(est, DioEstimator) and est.refine and n > carried:
            new = self._dio_track(est, x, start, carried, n)
        else:
            new = estimate_mirrored(est, x, self.sample_rate, self.hop, self.pad, carried)
        self.frames_estimated += n - carried
        if carried:
            f0_old, voiced_old = self._carry.take(start, carried)
            f0 = np.concatenate([f0_old, new.f0_hz])
            voiced = np.concatenate([voiced_old, new.voiced])
        else:
            f0, voiced = new.f0_hz, new.voiced
        if self.median_frames > 1:
            f0 = median_repair(f0, voiced, carried, self.median_frames)
        stop = min(n, self.carry_stop)
        self._carry.keep(start, f0[:stop], voiced[:stop])
        return F0Track(f0, voiced, hop_s)


class StreamingAnalysis:
    """CheapTrick and D4C of frames ``frames`` of consecutive windows, each frame analysed once.

    A frame analysed for the previous window is reused when its F0 now is the same within
    ``f0_tolerance`` (relative; both unvoiced also counts as the same) -- the envelope and aperiodicity
    depend on F0 only through the analysis window's length, a few pitch periods -- and re-analysed
    otherwise. Output: :class:`~apipeline.audio.world.WorldFeatures` of the window frames ``frames``
    (``start_frame`` = ``frames[0]``) with the F0 of ``track``, as :func:`~apipeline.audio.world.analyze`
    with ``frames=`` gives them. Frames from ``carry_stop`` on (a window index; default ``frames[1]``) are
    analysed again in the next window. D4C runs at most at ``aperiodicity_rate``
    (:data:`~apipeline.audio.world.APERIODICITY_RATE`; ``None``: at the input rate).
    ``spectral_stride`` (default :data:`SPECTRAL_STRIDE`): CheapTrick and D4C run only on the frames whose
    absolute index is a multiple of it, plus voicing edges (:func:`interpolation_plan`); 1 analyses every
    frame, as :func:`~apipeline.audio.world.analyze` does.
    ``aperiodicity_hold`` (default on): D4C runs on no frame from ``carry_stop`` on (those would be
    analysed again in the next window anyway); the frames that would need such an anchor hold the last
    aperiodicity before it. Those frames are the newest of the kept span, the crossfade tail the next
    block fades out, and the next window analyses them again with their full neighbourhood; the
    aperiodicity (D4C's 3 kHz bands) changes slowly, and D4C is the costliest analysis per frame (~0.3 ms
    per voiced frame at 22.05 kHz, 4x CheapTrick). On the example speech ~0.8 of ~2.3 voiced D4C frames
    per block were such tail anchors.
    """

    def __init__(
        self,
        sample_rate: int,
        frame_period_ms: float,
        block_frames: int,
        frames: tuple[int, int],
        carry_stop: int | None = None,
        aperiodicity_rate: int | None = APERIODICITY_RATE,
        f0_tolerance: float = F0_TOLERANCE,
        spectral_stride: int = SPECTRAL_STRIDE,
        decimate: bool = True,
        aperiodicity_stride: int = APERIODICITY_STRIDE,
        aperiodicity_hold: bool = True,
    ):
        strides = (spectral_stride, aperiodicity_stride)
        bad_stride = not all(isinstance(v, int) and v >= 1 for v in strides)
        if block_frames <= 0 or not 0 <= frames[0] < frames[1] or not f0_tolerance >= 0 or bad_stride:
            raise ParameterError(
                f"StreamingAnalysis: bad block_frames {block_frames}, frames {frames}, f0_tolerance "
                f"{f0_tolerance}, spectral_stride {spectral_stride} or aperiodicity_stride "
                f"{aperiodicity_stride}"
            )
        self.sample_rate = sample_rate
        self.frame_period_ms = frame_period_ms
        self.block_frames = block_frames
        self.frames = frames
        self.aperiodicity_rate = aperiodicity_rate
        self.f0_tolerance = f0_tolerance
        self.spectral_stride = int(spectral_stride)
        self.decimate = bool(decimate)
        self.aperiodicity_stride = int(aperiodicity_stride)
        self.aperiodicity_hold = bool(aperiodicity_hold)
        self.aperiodicity_frames_analysed = 0
        self._fft_size = 0  # CheapTrick's FFT size (known after the first envelope)
        self._step = 1  # every ``_step``-th of its bins is kept (the synthesis FFT's bins)
        self._bins = 0
        self.carry_stop = frames[1] if carry_stop is None else max(frames[0], min(carry_stop, frames[1]))
        self.frames_analysed = 0
        self._unvoiced: dict[int, NDArray[np.float64]] = {}
        self._carry = _Carry()

    def reset(self) -> None:
        self._carry.reset()

    def _set_fft_size(self, fft_size: int) -> None:
        """CheapTrick's FFT size; rows are kept on the synthesis FFT's bins when ``decimate`` (the
        envelope and the aperiodicity are per-bin values: every ``step``-th bin of a row is exactly what
        :func:`~apipeline.audio.world.decimate_bins` would keep after interpolating full rows)."""
        if fft_size == self._fft_size:
            return
        target = synthesis_fft_size(self.sample_rate) if self.decimate else fft_size
        step = fft_size // target if target < fft_size else 1
        if step * target != fft_size and step != 1:
            raise ParameterError(f"StreamingAnalysis: {target} does not divide CheapTrick's {fft_size}")
        self._fft_size, self._step = fft_size, step
        self._bins = fft_size // step // 2 + 1
        self._carry.reset()  # carried rows were on other bins

    def _unvoiced_row(self, audio: NDArray[np.float64], fft_size: int) -> NDArray[np.float64]:
        """D4C's aperiodicity of an unvoiced frame on ``fft_size``'s bins (the same for any signal)."""
        row = self._unvoiced.get(fft_size)
        if row is None:
            row = aperiodicity_at(
                audio,
                self.sample_rate,
                np.zeros(1),
                np.zeros(1),
                fft_size,
                aperiodicity_rate=self.aperiodicity_rate,
            )[0]
            self._unvoiced[fft_size] = row
        return row

    def analyze(self, x: NDArray[np.floating], seq: int, track: F0Track) -> WorldFeatures:
        f_start, f_stop = self.frames
        count = f_stop - f_start
        audio = check_mono(x, self.sample_rate, "StreamingAnalysis.analyze")
        hop_s = self.frame_period_ms / 1000.0
        n = frames_for(audio.shape[0], self.sample_rate, hop_s)
        if track.num_frames != n or abs(track.hop_seconds - hop_s) > 1e-12:
            track = track.resample(hop_s, n)
        if f_stop > n:
            raise ParameterError(f"StreamingAnalysis: frames {self.frames} past the window's {n} frames")
        widest = max(self.spectral_stride, self.aperiodicity_stride)
        # the frames the window renders, widened by the anchors just outside them (interpolation)
        e_start, e_stop = max(0, f_start - widest + 1), min(n, f_stop + widest - 1)
        m = e_stop - e_start
        base = seq * self.block_frames  # absolute index of window frame 0
        f0_all = np.ascontiguousarray(np.where(track.voiced, track.f0_hz, 0.0)[e_start:e_stop])
        first, out_start = base + e_start, f_start - e_start
        plan_sp = interpolation_plan(f0_all, first, self.spectral_stride, out_start, count)
        hold = self.carry_stop - e_start if self.aperiodicity_hold and self.carry_stop < n else None
        plan_ap = interpolation_plan(f0_all, first, self.aperiodicity_stride, out_start, count, hold)
        same = np.zeros(m, dtype=bool)  # carried with (nearly) the F0 it has now
        carried = self._carry.overlap(first, m)
        old: tuple[NDArray, ...] = ()
        if carried:
            old = self._carry.take(first, carried)
            prev, now = old[0], f0_all[:carried]
            same_voicing = (prev > 0) == (now > 0)
            close = np.abs(now - prev) <= self.f0_tolerance * np.maximum(prev, 1e-12)
            same[:carried] = same_voicing & ((now == 0) | close)
        reuse_sp, reuse_ap = same.copy(), same.copy()
        if carried:
            reuse_sp[:carried] &= old[3]
            reuse_ap[:carried] &= old[4]
        todo_sp = (plan_sp[0] & ~reuse_sp).nonzero()[0]
        todo_ap = (plan_ap[0] & ~reuse_ap).nonzero()[0]
        if todo_sp.size:
            sp_new, fft_size = envelope_at(
                audio, self.sample_rate, f0_all[todo_sp], ((e_start + todo_sp) * hop_s).astype(np.float64)
            )
            self._set_fft_size(fft_size)
        # rows are kept on the synthesis FFT's bins from here on (every ``step``-th bin: decimate_bins)
        step, bins = self._step, self._bins
        sp = np.full((m, bins), np.nan)
        ap = np.full((m, bins), np.nan)
        if todo_sp.size:
            sp[todo_sp] = sp_new[:, ::step]
        # D4C gives every unvoiced frame the same row (WORLD: 1 - 1e-12 on every bin): computed once
        silent = todo_ap[f0_all[todo_ap] == 0]
        todo_ap = todo_ap[f0_all[todo_ap] > 0]
        if silent.size:
            ap[silent] = self._unvoiced_row(audio, self._fft_size)[::step]
        if todo_ap.size:
            ap[todo_ap] = aperiodicity_at(
                audio,
                self.sample_rate,
                f0_all[todo_ap],
                ((e_start + todo_ap) * hop_s).astype(np.float64),
                self._fft_size,
                aperiodicity_rate=self.aperiodicity_rate,
            )[:, ::step]
        self.frames_analysed += int(todo_sp.size)
        self.aperiodicity_frames_analysed += int(todo_ap.size)
        for arr, (direct, left, right), reuse, stride, old_values in (
            (sp, plan_sp, reuse_sp, self.spectral_stride, old[1] if carried else None),
            (ap, plan_ap, reuse_ap, self.aperiodicity_stride, old[2] if carried else None),
        ):
            kept = (reuse & direct).nonzero()[0]
            if kept.size:
                assert old_values is not None
                arr[kept] = old_values[kept]
            between = (left >= 0).nonzero()[0]
            if between.size:
                _interpolate(arr, between, left[between], right[between], stride, log=arr is sp)
        out = slice(out_start, out_start + count)
        features = WorldFeatures(
            f0_all[out].copy(),
            sp[out].copy(),
            ap[out].copy(),
            self.frame_period_ms,
            (bins - 1) * 2,
            self.sample_rate,
            f_start,
        )
        keep = self.carry_stop - e_start
        # a reused frame keeps the F0 it was analysed with, so a slow drift cannot add up past the tolerance
        analysed_f0 = f0_all.copy()
        if carried:
            analysed_f0[:carried] = np.where(same[:carried], old[0], f0_all[:carried])
        self._carry.keep(
            first, analysed_f0[:keep], sp[:keep], ap[:keep], plan_sp[0][:keep], plan_ap[0][:keep]
        )
        return features


def _interpolate(
    arr: NDArray[np.float64],
    at: NDArray[np.int64],
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
    stride: int,
    log: bool,
) -> None:
    """Rows ``at`` of ``arr`` interpolated between rows ``lo`` and ``hi`` (geometrically with ``log``);
    rows with ``lo == hi`` copy row ``lo``."""
    same = lo == hi
    if same.any():
        arr[at[same]] = arr[lo[same]]
        at, lo, hi = at[~same], lo[~same], hi[~same]
        if at.size == 0:
            return
    if stride == 2:  # halfway: the geometric mean / the mean
        arr[at] = np.sqrt(arr[lo] * arr[hi]) if log else 0.5 * (arr[lo] + arr[hi])
        return
    w = ((at - lo) / stride)[:, None]
    if log:
        arr[at] = np.exp((1.0 - w) * np.log(arr[lo]) + w * np.log(arr[hi]))
    else:
        arr[at] = (1.0 - w) * arr[lo] + w * arr[hi]


def interpolation_plan(
    f0: NDArray[np.float64],
    first: int,
    stride: int,
    out_start: int,
    out_count: int,
    hold_from: int | None = None,
) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]:
    """Which frames of a run are analysed and which are interpolated (see :class:`StreamingAnalysis`).

    ``f0`` covers consecutive frames whose first has absolute index ``first``; the frames
    ``[out_start, out_start + out_count)`` are wanted. Anchors are the frames whose absolute index is a
    multiple of ``stride``. A wanted frame between two anchors of the run is interpolated when both
    anchors have its voicing; every other wanted frame, and every anchor an interpolated frame needs,
    is analysed. Returns ``(direct, left, right)``: ``direct[i]`` when frame ``i`` is to be analysed;
    for an interpolated frame ``left[i]``/``right[i]`` are its anchors' indices (else -1).

    ``hold_from`` (an index into ``f0``; default: none): no anchor at or after it is analysed. A wanted
    frame that would need one takes the value of the last anchor before it (``left[i] == right[i]``) when
    that anchor is in the frame's voiced or unvoiced run; otherwise the frame is analysed itself.

    The plan depends on ``f0`` only through its voicing: plans are cached (a streaming window's voicing
    pattern recurs, e.g. all voiced), and the arrays returned are read-only.
    """
    voiced = np.asarray(f0) > 0
    phase = first % stride if stride > 1 else 0
    return _plan(voiced.tobytes(), voiced.shape[0], phase, stride, out_start, out_count, hold_from)


@functools.lru_cache(maxsize=512)
def _plan(
    voicing: bytes,
    m: int,
    first: int,
    stride: int,
    out_start: int,
    out_count: int,
    hold_from: int | None,
) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]:
    voiced = np.frombuffer(voicing, dtype=np.bool_, count=m)
    direct, left, right = _plan_arrays(voiced, first, stride, out_start, out_count, hold_from)
    for a in (direct, left, right):
        a.flags.writeable = False
    return direct, left, right


def _plan_arrays(
    voiced: NDArray[np.bool_],
    first: int,
    stride: int,
    out_start: int,
    out_count: int,
    hold_from: int | None,
) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]:
    m = voiced.shape[0]
    idx = np.arange(m)
    left = np.full(m, -1, dtype=np.int64)
    right = np.full(m, -1, dtype=np.int64)
    wanted = (idx >= out_start) & (idx < out_start + out_count)
    if stride <= 1:
        return wanted, left, right
    hold = m if hold_from is None else max(0, min(int(hold_from), m))
    lo = idx - (first + idx) % stride
    hi = lo + stride
    ok = wanted & (lo != idx) & (lo >= 0) & (hi < hold)
    cand = ok.nonzero()[0]
    ok[cand] = (voiced[lo[cand]] == voiced[cand]) & (voiced[hi[cand]] == voiced[cand])
    interp = ok.nonzero()[0]
    left[interp], right[interp] = lo[interp], hi[interp]
    direct = wanted & ~ok
    direct[lo[interp]] = True
    direct[hi[interp]] = True
    if hold < m and hold > 0:
        # frames whose interpolation needs an anchor at or past ``hold``: the last anchor before it
        last = hold - 1 - (first + hold - 1) % stride
        src = np.minimum(lo, last)
        run = np.cumsum(np.concatenate([[0], voiced[1:] != voiced[:-1]]))
        need = wanted & ~ok & ((idx >= hold) | ((hi >= hold) & (lo != idx)))
        cand = (need & (src >= 0)).nonzero()[0]
        held = cand[run[src[cand]] == run[cand]]
        held = held[src[held] != held]
        left[held], right[held] = src[held], src[held]
        direct[held] = False
        direct[src[held]] = True
    return direct, left, right
