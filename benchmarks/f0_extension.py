"""Experiment (rejected): DIO's voiced runs extended into its unvoiced frames by a local periodicity search.

DIO calls unvoiced about a quarter of the frames harvest calls voiced on real speech, and filling those
frames with harvest's own values closes most of the default path's pitch gap (``docs/benchmarks.md``,
"Second round"). This script tries a cheap, harvest-free repair and measures it. :func:`extend_runs`
grows each DIO voiced run frame by frame, forward past its last frame and backward before its first:
each next frame's period is searched near the previous frame's (normalised cross-correlation, centred on
the frame, over lags within ``--search`` of the seed period, at most ``--step`` per frame, on the signal
decimated near 8 kHz, parabolic peak), and the run stops at the first frame whose peak is below
``--threshold``.

    python benchmarks/f0_extension.py --track     # track level: whole-file DIO + extension vs harvest
    python benchmarks/f0_extension.py --why       # what harvest's values on DIO's missed frames look like
    python benchmarks/f0_extension.py --stream    # the real metric (voice_quality.py's gap), streamed
    python benchmarks/f0_extension.py --where     # which input frames the streamed gap comes from

``--track``: per input and rate, the frames harvest calls voiced and DIO does not (*missed*), how many the
extension fills, the share of those within 50 cents of harvest, the harvest-unvoiced frames it voices
(*false*) and its CPU time per audio second. ``--stream``: the streamed voice changer (default settings,
``f0="dio"``) with the extension applied to each window's new frames (carried frames keep their values;
a run ending in a carried frame extends into the new ones), gap in points of frames > 50 cents off
against the ideal render, as ``benchmarks/voice_quality.py`` computes it, on the 3 real recordings x
shifts +4 / -5. ``--gaps-only`` keeps only extensions that bridge a whole gap between two runs.
``--where``: the frames counted and the frames > 50 cents off in the ideal and in the plain streamed render,
by what whole-file DIO calls the input frame (10 ms grid): unvoiced (harvest-voiced: DIO's *missed*
frames), or voiced at a distance of 1, 2, ... frames from the nearest DIO-unvoiced frame; then the gap
with harvest's *values* substituted on the DIO-voiced frames within ``--edge`` 5 ms frames of a DIO
voicing edge (voicing left as DIO has it).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apipeline.audio.f0 import DioEstimator, F0Track, HarvestEstimator, get_f0_estimator  # noqa: E402
from apipeline.audio.incremental import StreamingF0  # noqa: E402
from apipeline.audio.io import read_audio  # noqa: E402
from apipeline.audio.metrics import cents_error  # noqa: E402
from apipeline.audio.voice_changer import StreamingVoiceChanger, render_offline  # noqa: E402
from apipeline.audio.world import frame_period_for  # noqa: E402

RECORDINGS = sorted((ROOT / "benchmarks/data").glob("*.wav"))
INPUTS = [*RECORDINGS, ROOT / "examples/data/speech.wav"]


def load(path: Path, rate: int) -> np.ndarray:
    audio, sr = read_audio(str(path))
    x = np.asarray(audio.mean(axis=1) if audio.ndim == 2 else audio, np.float64)
    return soxr.resample(x, sr, rate, quality="HQ") if sr != rate else x


def decimated(x: NDArray[np.float64], sample_rate: int, rate: int = 8000) -> tuple[NDArray[np.float64], int]:
    """``x`` decimated by the whole factor nearest ``sample_rate / rate`` (at least 1), and that factor."""
    factor = max(1, round(sample_rate / rate))
    if factor == 1:
        return np.asarray(x, np.float64), 1
    return np.asarray(soxr.resample(x, sample_rate, sample_rate / factor, quality="LQ"), np.float64), factor


def nccf(y: NDArray[np.float64], centres: NDArray[np.int64], lags: NDArray[np.int64], width: int) -> NDArray:
    """Normalised cross-correlation per centre (rows) and lag (columns), symmetric about the centre."""
    n = y.shape[0]
    start = centres[:, None] - (width + lags[None, :]) // 2
    offs = np.arange(width)
    a = y[np.clip(start[:, :, None] + offs, 0, n - 1)]
    b = y[np.clip(start[:, :, None] + lags[None, :, None] + offs, 0, n - 1)]
    num = np.einsum("klw,klw->kl", a, b)
    den = np.sqrt(np.einsum("klw,klw->kl", a, a) * np.einsum("klw,klw->kl", b, b))
    return np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)


def walk(
    y: NDArray[np.float64], centres: NDArray[np.int64], period: float, lag_range: tuple[int, int], opts: dict
) -> list[float]:
    """Periods of consecutive frames at ``centres`` tracked from ``period``, up to the first weak frame."""
    lo = max(lag_range[0], int(np.floor(period * (1.0 - opts["search"]))))
    hi = min(lag_range[1], int(np.ceil(period * (1.0 + opts["search"]))))
    if hi - lo < 2 or centres.size == 0:
        return []
    lags = np.arange(lo - 1, hi + 2, dtype=np.int64)
    r = nccf(y, centres, lags, int(np.ceil(2.0 * period)))
    out: list[float] = []
    prev = period
    for k in range(centres.size):
        near = np.abs(lags - prev) <= max(1.0, opts["step"] * prev)
        near[0] = near[-1] = False
        cand = np.flatnonzero(near)
        if cand.size == 0:
            break
        j = int(cand[np.argmax(r[k, cand])])
        if r[k, j] < opts["threshold"]:
            break
        a, b, c = r[k, j - 1], r[k, j], r[k, j + 1]
        denom = a - 2.0 * b + c
        prev = float(lags[j]) + (float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0)
        out.append(prev)
    return out


def extend_runs(
    x: NDArray[np.float64], sample_rate: int, hop: int, f0: NDArray, voiced: NDArray, first: int, opts: dict
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``f0``/``voiced`` with each voiced run grown into the unvoiced frames beside it (from ``first``)."""
    f0_out, v_out = np.array(f0, np.float64), np.array(voiced, bool)
    n = f0_out.shape[0]
    if n == 0 or not v_out.any() or v_out[first:].all():
        return f0_out, v_out
    y, factor = decimated(x, sample_rate)
    rate = sample_rate / factor
    lag_range = (max(2, int(rate / 1000.0)), int(np.ceil(rate / 60.0)))
    edges = np.diff(v_out.astype(np.int8))
    for direction, seeds in ((1, np.flatnonzero(edges == -1)), (-1, np.flatnonzero(edges == 1) + 1)):
        for i in seeds:
            frames, j = [], i + direction
            while 0 <= j < n and j >= first and not v_out[j]:
                frames.append(j)
                j += direction
            if not frames:
                continue
            idx = np.asarray(frames, np.int64)
            periods = walk(y, np.rint(idx * hop / factor).astype(np.int64), rate / f0_out[i], lag_range, opts)
            got = idx[: len(periods)]
            f0_out[got], v_out[got] = rate / np.asarray(periods), True
    if opts.get("gaps_only"):  # keep only the frames of gaps bridged from one DIO run to the next
        run = np.cumsum(np.concatenate([[True], v_out[1:] != v_out[:-1]]))
        for r_id in np.unique(run[v_out & ~voiced]):
            members = np.flatnonzero(run == r_id)
            inner = np.flatnonzero(voiced[members])
            keep = np.zeros(members.size, bool)
            if inner.size:
                keep[inner[0] : inner[-1] + 1] = True
            drop = members[~keep]
            f0_out[drop], v_out[drop] = f0[drop], voiced[drop]
    return f0_out, v_out


class ExtendedF0(StreamingF0):
    """The voice changer's StreamingF0 with :func:`extend_runs` on each window's new frames."""

    opts: dict = {}
    frames_extended = 0

    def _dio_track(self, est: DioEstimator, x: NDArray, start: int, first: int, n: int) -> F0Track:
        new = super()._dio_track(est, x, start, first, n)
        if first:
            f0_old, v_old = self._carry.take(start, first)
            f0, voiced = np.concatenate([f0_old, new.f0_hz]), np.concatenate([v_old, new.voiced])
        else:
            f0, voiced = new.f0_hz, new.voiced
        pad = max(0, min(self.pad, x.shape[0] - self.hop))
        signal = np.concatenate([x, x[-pad - 1 : -1][::-1]]) if pad > 0 else x
        f0, voiced = extend_runs(signal, self.sample_rate, self.hop, f0, voiced, first, self.opts)
        self.frames_extended += int((voiced[first:] & ~new.voiced).sum())
        return F0Track(np.where(voiced, f0, 0.0)[first:], voiced[first:], new.hop_seconds)


def _estimators(rate: int) -> tuple[int, DioEstimator, HarvestEstimator]:
    """The voice changer's hop at ``rate`` and DIO / harvest on that grid."""
    hop, period_ms = frame_period_for(rate, 5.0)
    return hop, DioEstimator(hop_seconds=period_ms / 1e3), HarvestEstimator(hop_seconds=period_ms / 1e3)


def track_study(args: argparse.Namespace) -> None:
    print(
        "| input | rate | threshold | harvest voiced | missed | filled | filled within 50 c | false | ms/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rate in args.rates:
        hop, period_ms = frame_period_for(rate, 5.0)
        dio, harvest = (
            DioEstimator(hop_seconds=period_ms / 1e3),
            HarvestEstimator(hop_seconds=period_ms / 1e3),
        )
        for path in args.inputs:
            x = load(Path(path), rate)
            d, h = dio.estimate(x, rate), harvest.estimate(x, rate)
            m = min(d.num_frames, h.num_frames)
            hv, dv = h.voiced[:m], d.voiced[:m]
            for thr in args.threshold:
                t0 = time.process_time()
                f0, v = extend_runs(x, rate, hop, d.f0_hz, d.voiced, 0, _opts(args, thr))
                cpu = time.process_time() - t0
                ext = v[:m] & ~dv
                filled = ext & hv
                close = np.abs(1200 * np.log2(f0[:m][filled] / h.f0_hz[:m][filled])) <= 50
                print(
                    f"| {Path(path).name} | {rate} | {thr:.2f} | {hv.sum()} | {(hv & ~dv).sum()} | "
                    f"{filled.sum()} | {100 * close.mean() if close.size else 0:.0f} % | "
                    f"{(ext & ~hv).sum()} | "
                    f"{1000 * cpu / (len(x) / rate):.1f} |",
                    flush=True,
                )


def _periodicity(
    y: NDArray[np.float64], factor: int, hop: int, rate: float, idx: NDArray, f0s: NDArray, span: float
) -> float:
    """Median NCCF peak at frames ``idx`` over lags within ``span`` of the periods of ``f0s``."""
    peaks = []
    for i, f in zip(idx, f0s):
        t = rate / f
        lags = np.arange(max(2, int(t * (1 - span))), int(t * (1 + span)) + 2)
        peaks.append(nccf(y, np.array([round(i * hop / factor)]), lags, int(np.ceil(2 * t))).max())
    return float(np.median(peaks)) if peaks else float("nan")


def why(args: argparse.Namespace) -> None:
    """Harvest on the frames DIO misses: offset from the nearest DIO run, frame-to-frame jumps, and the
    periodicity there at harvest's own period against voiced frames and harvest-unvoiced frames near runs."""
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    for rate in args.rates:
        hop, dio, harvest = _estimators(rate)
        for path in args.inputs:
            x = load(Path(path), rate)
            d, h = dio.estimate(x, rate), harvest.estimate(x, rate)
            m = min(d.num_frames, h.num_frames)
            hv, dv, hf, df = h.voiced[:m], d.voiced[:m], h.f0_hz[:m], d.f0_hz[:m]
            missed, runs = np.flatnonzero(hv & ~dv), np.flatnonzero(dv)
            nearest = runs[np.argmin(np.abs(runs[None, :] - missed[:, None]), axis=1)]
            off = 1200 * np.log2(hf[missed] / df[nearest])
            jm = np.flatnonzero((hv & ~dv)[1:] & hv[:-1])
            jb = np.flatnonzero((hv & dv)[1:] & (hv & dv)[:-1])
            y, factor = decimated(x, rate)
            dist = np.min(np.abs(runs[None, :] - np.arange(m)[:, None]), axis=1)
            near_un = np.flatnonzero(~hv & ~dv & (dist <= 6))
            seeds = df[runs[np.argmin(np.abs(runs[None, :] - near_un[:, None]), axis=1)]]
            both = np.flatnonzero(hv & dv)
            per = [
                _periodicity(y, factor, hop, rate / factor, idx, f, span)
                for idx, f, span in ((missed, hf[missed], 0.1), (both, hf[both], 0.1), (near_un, seeds, 0.25))
            ]
            print(f"{Path(path).name} at {rate} Hz: {missed.size} missed of {hv.sum()} harvest-voiced")
            print(
                f"  harvest on missed minus nearest DIO run (cents), quantiles {q}: "
                f"{np.round(np.quantile(off, q))}"
            )
            print(
                "  harvest frame-to-frame |cents|, median: missed "
                f"{np.median(np.abs(1200 * np.log2(hf[jm + 1] / hf[jm]))):.0f}, voiced in both "
                f"{np.median(np.abs(1200 * np.log2(hf[jb + 1] / hf[jb]))):.0f}"
            )
            print(
                f"  NCCF peak, median: missed (harvest's period +-10 %) {per[0]:.2f}; "
                f"voiced in both {per[1]:.2f}; "
                f"harvest-unvoiced within 6 frames of a run (the run's period +-25 %) {per[2]:.2f}"
            )


class EdgeValues(StreamingF0):
    """StreamingF0 with harvest's values (``track``, absolute frames) on the DIO-voiced new frames within
    ``edge`` frames of a DIO-unvoiced one; voicing as DIO has it."""

    edge = 0
    track_h: F0Track | None = None
    first_frame = 0  # absolute frame of window 0's frame 0

    def _dio_track(self, est: DioEstimator, x: NDArray, start: int, first: int, n: int) -> F0Track:
        new = super()._dio_track(est, x, start, first, n)
        f, v = new.f0_hz.copy(), new.voiced
        unvoiced = np.flatnonzero(~v)
        if self.edge and unvoiced.size and self.track_h is not None:
            idx = np.arange(v.size)
            dist = np.min(np.abs(idx[:, None] - unvoiced[None, :]), axis=1)
            a = self.first_frame + start + first + idx
            pick = v & (dist <= self.edge) & (a >= 0) & (a < self.track_h.num_frames)
            pick[pick] &= self.track_h.voiced[a[pick]]
            f[pick] = self.track_h.f0_hz[a[pick]]
        return F0Track(np.where(v, f, 0.0), v, new.hop_seconds)


def where(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from voice_quality import align

    ref = get_f0_estimator("harvest", hop_seconds=0.01)
    for rate in args.rates:
        table: dict[str, list[int]] = {}
        gaps: dict[int, list[float]] = {}
        for path in args.inputs:
            x = load(Path(path), rate).astype(np.float32)
            f_in = ref.estimate(x, rate).f0_hz
            dio_in = DioEstimator(hop_seconds=0.01).estimate(x, rate).voiced
            _, _, harvest = _estimators(rate)
            track_h = harvest.estimate(x, rate)
            for shift in (4.0, -5.0):
                ideal = render_offline(x, rate, f0="harvest", pitch=shift)
                f_ideal = ref.estimate(ideal, rate).f0_hz
                e_ideal = cents_error(f_in, f_ideal, shift).share_over_50
                for edge in [0, *args.edge]:
                    vc = StreamingVoiceChanger(rate, f0="dio", pitch=shift)
                    f0 = vc._f0
                    sub = EdgeValues(f0.estimator, rate, f0.hop, f0.block_frames, f0.carry_stop, f0.pad)
                    sub.edge, sub.track_h, sub.first_frame = edge, track_h, -vc.context_size // vc.hop
                    vc._f0 = sub
                    b = vc.block_size
                    y = np.concatenate([*(vc.push(x[i : i + b]) for i in range(0, len(x), b)), vc.flush()])
                    out, _ = align(y, ideal, vc.crossfade_size + vc.lookahead_size, vc.delay_samples)
                    f_out = ref.estimate(out, rate).f0_hz
                    gaps.setdefault(edge, []).append(
                        100 * (cents_error(f_in, f_out, shift).share_over_50 - e_ideal)
                    )
                    if edge:
                        continue
                    n = min(len(f_in), len(f_ideal), len(f_out), len(dio_in))
                    unv = np.flatnonzero(~dio_in[:n])
                    dist = np.min(np.abs(np.arange(n)[:, None] - unv[None, :]), axis=1)
                    label = np.where(dio_in[:n], np.minimum(dist, 4), 0)
                    for name, fo in (("ideal", f_ideal), ("streamed", f_out)):
                        both = (f_in[:n] > 0) & (fo[:n] > 0)
                        cents = np.zeros(n)
                        cents[both] = np.abs(1200 * np.log2(fo[:n][both] / f_in[:n][both]) - 100 * shift)
                        for k in range(5):
                            row = table.setdefault(f"{k}", [0, 0, 0, 0])
                            sel = label == k
                            j = 0 if name == "ideal" else 2
                            row[j] += int(both[sel].sum())
                            row[j + 1] += int((both & (cents > 50))[sel].sum())
        print(f"{rate} Hz: frames counted / > 50 cents off (10 ms frames, both shifts, 3 recordings)")
        names = [
            "DIO-unvoiced (missed)",
            "DIO-voiced, 1 frame from an edge",
            "2 frames",
            "3 frames",
            ">= 4 frames",
        ]
        for k, name in enumerate(names):
            c = table[str(k)]
            print(f"  {name:34s} ideal {c[0]:4d} / {c[1]:4d}   streamed {c[2]:4d} / {c[3]:4d}")
        for edge, values in gaps.items():
            print(
                f"  gap, harvest's values on DIO-voiced frames within {edge} frames of an edge: "
                f"{np.mean(values):+.1f} pts (per case {np.round(values, 1).tolist()})"
            )


def _opts(args: argparse.Namespace, threshold: float) -> dict:
    return dict(threshold=threshold, search=args.search, step=args.step, gaps_only=args.gaps_only)


def stream_study(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from voice_quality import align  # the benchmark's own alignment

    ref = get_f0_estimator("harvest", hop_seconds=0.01)
    for rate in args.rates:
        gaps: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for path in args.inputs:
            x = load(Path(path), rate).astype(np.float32)
            f0_in = ref.estimate(x, rate).f0_hz
            for shift in (4.0, -5.0):
                ideal = render_offline(x, rate, f0="harvest", pitch=shift)
                e_ideal = cents_error(f0_in, ref.estimate(ideal, rate).f0_hz, shift).share_over_50
                for thr in [None, *args.threshold]:
                    vc = StreamingVoiceChanger(rate, f0="dio", pitch=shift)
                    label = "dio" if thr is None else f"dio + extension {thr:.2f}"
                    if thr is not None:
                        f0 = vc._f0
                        ext = ExtendedF0(f0.estimator, rate, f0.hop, f0.block_frames, f0.carry_stop, f0.pad)
                        ext.opts = _opts(args, thr)
                        vc._f0 = ext
                    b = vc.block_size
                    y = np.concatenate([*(vc.push(x[i : i + b]) for i in range(0, len(x), b)), vc.flush()])
                    out, _ = align(y, ideal, vc.crossfade_size + vc.lookahead_size, vc.delay_samples)
                    e = cents_error(f0_in, ref.estimate(out, rate).f0_hz, shift).share_over_50
                    gaps.setdefault(label, []).append(100 * (e - e_ideal))
                    counts[label] = counts.get(label, 0) + getattr(vc._f0, "frames_extended", 0)
        for label, values in gaps.items():
            print(
                f"{rate} Hz {label:24s}: gap {np.mean(values):+.1f} pts "
                f"(per case {np.round(values, 1).tolist()}), {counts[label]} window-frames extended",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", nargs="+")
    ap.add_argument("--rates", nargs="+", type=int, default=[22050, 48000])
    ap.add_argument("--threshold", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    ap.add_argument("--search", type=float, default=0.25)
    ap.add_argument("--step", type=float, default=0.08)
    ap.add_argument("--gaps-only", action="store_true")
    ap.add_argument("--track", action="store_true")
    ap.add_argument("--why", action="store_true")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--where", action="store_true")
    ap.add_argument("--edge", nargs="+", type=int, default=[2, 4, 1000])
    args = ap.parse_args()
    if args.stream or args.where:
        args.inputs = args.inputs or [str(p) for p in RECORDINGS]
        (stream_study if args.stream else where)(args)
    else:
        args.inputs = args.inputs or [str(p) for p in INPUTS]
        (why if args.why else track_study)(args)


if __name__ == "__main__":
    main()
