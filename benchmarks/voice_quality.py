"""Voice changer quality: pitch accuracy of the streamed render against the ideal offline render.

The *ideal* is the whole file converted in one shot by WORLD with harvest F0 (``--ideal-f0``): no blocks,
no edges, the slowest and most robust WORLD estimator. Each F0 method (``--f0``, default: the voice
changer's default and dio, harvest, fcpe) is streamed block by block with the default geometry. The F0 of
the input and of every output is re-measured with ``--ref-f0`` (harvest) and compared with the requested
shift (+4 and -5 semitones) over the frames voiced in both: median |cents| and the share of frames more
than 50 cents off. The *gap* is streamed minus ideal (the issue's target: <= +5 cents, <= +3 points).
The streamed output is aligned to the ideal first (its delay is between ``N + L`` and ``N + S + L``
samples; the best-correlating one is used). ``cpu RTF`` is the process CPU time of the streamed render
over the audio duration (process time, not wall time: the machine may be shared), torch pinned to one
thread.

Inputs are resampled (soxr) to every ``--rates`` rate. The default inputs are the synthetic example
(``examples/data/speech.wav``) and the real recordings in ``benchmarks/data/`` (see its README: CMU
ARCTIC utterances and AMFM_decompy's sample, with their licences).

    python benchmarks/voice_quality.py [--inputs A.wav B.wav] [--rates 22050 48000] [--f0 default dio]
    python benchmarks/voice_quality.py --clicks      # border click score, SOLA on/off (one input)
    python benchmarks/voice_quality.py --diagnose    # where the bad frames of each method come from
    python benchmarks/voice_quality.py --f0 dio --set warmup_ms=20   # a core setting of the streamed render
    python benchmarks/voice_quality.py --track --f0 dio   # F0 track level only: deterministic, seconds

``--diagnose`` (real recordings only) splits a method's gap into its causes. Track level: the F0 the streamed
core synthesises (the block part of each kept span) against the ideal's whole-file harvest track on the same
5 ms grid -- frames harvest calls voiced and the method does not (*missed*), the reverse (*extra*), and of
the frames both call voiced those > 50 cents apart and > 600 cents apart (octave errors). Output level, the
gap of: the streamed render; the whole file rendered offline with the method (the estimator alone, no
streaming); the streamed core fed the ideal's own track (what streaming alone costs); and two halves of
that substitution -- harvest's values only on the *missed* frames (voicing repaired), harvest's values only
on the frames both call voiced (values repaired) -- and the missed frames voiced with F0 interpolated from
the method's own neighbouring runs (a voicing repair that does not use harvest).

``--f0`` entries may carry estimator options, ``dio:allowed_range=0.15,speed=1``; ``--judge fcpe`` counts
only the input frames FCPE also calls voiced (a voicing reference that is not harvest alone).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apipeline.audio.f0 import F0Track, get_f0_estimator  # noqa: E402
from apipeline.audio.io import read_audio  # noqa: E402
from apipeline.audio.metrics import cents_error, click_score  # noqa: E402
from apipeline.audio.voice_changer import StreamingVoiceChanger, render_offline  # noqa: E402

try:  # the settings class was renamed during the package move; either name works here
    from apipeline.audio.voice_changer import CoreSettings as _Settings
except ImportError:  # pragma: no cover - older trees
    from apipeline.audio.voice_changer import VoiceChangerSettings as _Settings  # type: ignore

DEFAULT_INPUTS = [
    ROOT / "examples/data/speech.wav",
    ROOT / "benchmarks/data/arctic_a0007.wav",
    ROOT / "benchmarks/data/arctic_a0009.wav",
    ROOT / "benchmarks/data/amfm_sample.wav",
]


def f0_options(method: str) -> dict[str, object]:
    """Estimator keywords of a ``--f0`` entry ``NAME[:KEY=VALUE,...]`` (numbers parsed), torch at 1 thread."""
    name, _, spec = method.partition(":")
    opts: dict[str, object] = (
        {"num_threads": 1} if name in ("fcpe", "crepe", "crepe-tiny", "crepe-full") else {}
    )
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        opts[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return opts


def _value(text: str) -> object:
    """A ``--set`` value: bool, int, float or the string itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def f0_name(method: str) -> str:
    return method.partition(":")[0]


def stream(x: np.ndarray, sr: int, **settings: object) -> tuple[np.ndarray, StreamingVoiceChanger, float]:
    """Streamed render, fed block by block; returns output, the changer and its process CPU seconds."""
    vc = StreamingVoiceChanger(sr, **settings)
    t0 = time.process_time()
    outs = [vc.push(x[i : i + vc.block_size]) for i in range(0, len(x), vc.block_size)]
    outs.append(vc.flush())
    return np.concatenate(outs), vc, time.process_time() - t0


def align(y: np.ndarray, ref: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """``y`` advanced by the delay in [lo, hi] that best correlates it with ``ref``."""
    n = len(ref)
    best = max(range(lo, hi + 1), key=lambda d: float(np.dot(y[d : d + n][: n - hi], ref[: n - hi])))
    out = y[best : best + n]
    return (np.pad(out, (0, n - len(out))) if len(out) < n else out), best


def load(path: Path, rate: int) -> np.ndarray:
    audio, sr = read_audio(str(path))
    x = audio.mean(axis=1) if audio.ndim == 2 else audio
    x = np.asarray(x, np.float64)
    if sr != rate:
        x = soxr.resample(x, sr, rate, quality="HQ")
    return x.astype(np.float32)


def quality(args: argparse.Namespace) -> None:
    default_f0 = _Settings().f0
    methods = [default_f0 if m == "default" else m for m in args.f0]
    methods = list(dict.fromkeys(methods))
    ref = get_f0_estimator(args.ref_f0, hop_seconds=0.01)
    print(
        f"ideal: whole-file WORLD with {args.ideal_f0} F0; measured with {args.ref_f0}; "
        f"default F0 method: {default_f0}; {_machine()} (CPU time is process time)"
    )
    print(
        "| input | rate | method | shift | ideal median / >50 | streamed median / >50 | gap cents / pts "
        "| cpu RTF |"
    )
    print("|---|---|---|---|---|---|---|---|")
    gaps: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for path in args.inputs:
        for rate in args.rates:
            x = load(Path(path), rate)
            f0_in = ref.estimate(x, rate).f0_hz
            if args.judge:  # only the frames a second estimator also calls voiced in the input
                judged = get_f0_estimator(args.judge, hop_seconds=0.01, **f0_options(args.judge)).estimate(
                    x, rate
                )
                n = min(len(f0_in), judged.num_frames)
                f0_in = f0_in[:n] * judged.voiced[:n]
            for shift in args.shifts:
                ideal = render_offline(x, rate, f0=args.ideal_f0, pitch=shift)
                e_ideal = cents_error(f0_in, ref.estimate(ideal, rate).f0_hz, shift)
                for method in methods:
                    y, vc, cpu = stream(
                        x, rate, f0=f0_name(method), pitch=shift, f0_options=f0_options(method), **args.set
                    )
                    out, _ = align(y, ideal, vc.crossfade_size + vc.lookahead_size, vc.delay_samples)
                    e = cents_error(f0_in, ref.estimate(out, rate).f0_hz, shift)
                    gap = (
                        e.median_cents - e_ideal.median_cents,
                        100 * (e.share_over_50 - e_ideal.share_over_50),
                    )
                    if "examples/" not in str(path):
                        gaps.setdefault((method, rate), []).append(gap)
                    print(
                        f"| {Path(path).name} | {rate} | {method} | {shift:+.0f} | "
                        f"{e_ideal.median_cents:.1f} / {100 * e_ideal.share_over_50:.1f} % | "
                        f"{e.median_cents:.1f} / {100 * e.share_over_50:.1f} % | "
                        f"{gap[0]:+.1f} / {gap[1]:+.1f} | {cpu * rate / len(x):.3f} |",
                        flush=True,
                    )
    print("\nreal recordings, mean (worst) gap over inputs and shifts:")
    for (method, rate), values in gaps.items():
        arr = np.array(values)
        print(
            f"  {method:8s} {rate:6d} Hz: {arr[:, 0].mean():+.1f} ({arr[:, 0].max():+.1f}) cents, "
            f"{arr[:, 1].mean():+.1f} ({arr[:, 1].max():+.1f}) pts"
        )


def _substituted(
    x: np.ndarray, sr: int, ideal_track: F0Track | None, mode: str, **settings: object
) -> tuple[np.ndarray, StreamingVoiceChanger, dict[int, tuple[float, bool]]]:
    """Streamed render whose per-window F0 track is replaced where ``mode`` says by ``ideal_track`` (same
    grid, absolute frames): ``"none"`` (the method's own), ``"all"``, ``"missed"``, ``"values"`` or
    ``"interp"`` (the missed frames voiced, F0 interpolated from the method's own voiced frames). Returns
    the output, the changer and the track used for each absolute frame of a kept block."""
    vc = StreamingVoiceChanger(sr, **settings)
    streaming_f0 = getattr(vc, "_f0", None)  # the core's StreamingF0 (apipeline/audio/incremental.py)
    if streaming_f0 is None or not hasattr(streaming_f0, "track"):
        raise SystemExit(
            "--diagnose: the streaming core no longer has a StreamingF0 at ._f0; update this script"
        )
    h, b, c = vc.hop, vc.block_size, vc.context_size
    k0 = vc.window_size - vc.lookahead_size - vc.kept_size
    used: dict[int, tuple[float, bool]] = {}
    own = streaming_f0.track

    def track(window: np.ndarray, seq: int) -> F0Track:
        t = own(window, seq)
        first = (seq * b - c) // h  # absolute frame of the window's frame 0
        f0, voiced = t.f0_hz.copy(), t.voiced.copy()
        if ideal_track is not None and mode != "none":
            idx = np.arange(first, first + t.num_frames)
            inside = (idx >= 0) & (idx < ideal_track.num_frames)
            g_f0 = np.zeros(t.num_frames)
            g_v = np.zeros(t.num_frames, dtype=bool)
            g_f0[inside], g_v[inside] = ideal_track.f0_hz[idx[inside]], ideal_track.voiced[idx[inside]]
            if mode == "interp":  # harvest's voicing on the missed frames, F0 from the method's own runs
                if voiced.any():
                    own_idx = np.flatnonzero(voiced)
                    g_f0 = np.exp(np.interp(np.arange(t.num_frames), own_idx, np.log(f0[own_idx])))
            picks = {"all": np.ones_like(g_v), "missed": g_v & ~voiced, "values": g_v & voiced}
            pick = picks["missed" if mode == "interp" else mode]
            f0, voiced = np.where(pick, g_f0, f0), np.where(pick, g_v, voiced)
        for i in range(k0 // h, (k0 + b) // h):
            used[first + i] = (float(f0[i]), bool(voiced[i]))
        return F0Track(np.where(voiced, f0, 0.0), voiced, t.hop_seconds)

    streaming_f0.track = track
    outs = [vc.push(x[i : i + b]) for i in range(0, len(x), b)]
    outs.append(vc.flush())
    return np.concatenate(outs), vc, used


def diagnose(args: argparse.Namespace) -> None:
    default_f0 = _Settings().f0
    methods = list(dict.fromkeys(default_f0 if m == "default" else m for m in args.f0))
    ref = get_f0_estimator(args.ref_f0, hop_seconds=0.01)
    inputs = [p for p in args.inputs if "examples/" not in str(p)]
    print(f"diagnosis over {', '.join(Path(p).name for p in inputs)}; shifts {args.shifts}; {_machine()}")
    for rate in args.rates:
        for method in methods:
            counts = dict(harvest_voiced=0, missed=0, extra=0, both=0, over50=0, octave=0)
            gaps: dict[str, list[float]] = {}
            for path in inputs:
                x = load(Path(path), rate)
                f0_in = ref.estimate(x, rate).f0_hz
                vc0 = StreamingVoiceChanger(rate)
                ideal_track = get_f0_estimator(args.ideal_f0, hop_seconds=vc0.hop / rate).estimate(x, rate)
                for k, shift in enumerate(args.shifts):
                    ideal = render_offline(x, rate, f0=args.ideal_f0, pitch=shift)
                    e_ideal = cents_error(f0_in, ref.estimate(ideal, rate).f0_hz, shift).share_over_50
                    opts = f0_options(method)
                    settings = dict(f0=f0_name(method), pitch=shift, f0_options=opts)
                    renders = {"offline": (render_offline(x, rate, **settings), None)}  # type: ignore[arg-type]
                    for mode in ("none", "all", "missed", "values", "interp"):
                        y, vc, used = _substituted(x, rate, ideal_track, mode, **settings)
                        out, _ = align(y, ideal, vc.crossfade_size + vc.lookahead_size, vc.delay_samples)
                        renders[mode] = (out, used)
                    for mode, (out, _used) in renders.items():
                        e = cents_error(f0_in, ref.estimate(out, rate).f0_hz, shift).share_over_50
                        gaps.setdefault(mode, []).append(100 * (e - e_ideal))
                    if k == 0:  # the track does not depend on the shift
                        for a, (f, v) in renders["none"][1].items():
                            if not 0 <= a < ideal_track.num_frames:
                                continue
                            gv, gf = bool(ideal_track.voiced[a]), float(ideal_track.f0_hz[a])
                            counts["harvest_voiced"] += gv
                            counts["missed"] += gv and not v
                            counts["extra"] += v and not gv
                            if v and gv:
                                cents = abs(1200.0 * np.log2(f / gf))
                                counts["both"] += 1
                                counts["over50"] += cents > 50.0
                                counts["octave"] += cents > 600.0
            hv, both = max(counts["harvest_voiced"], 1), max(counts["both"], 1)
            print(
                f"\n{method} at {rate} Hz -- track: {counts['harvest_voiced']} frames harvest calls voiced, "
                f"missed {100 * counts['missed'] / hv:.1f} %, extra {counts['extra']} frames; "
                f"of {counts['both']} voiced in both {100 * counts['over50'] / both:.1f} % > 50 cents apart, "
                f"{counts['octave']} > 600 cents"
            )
            names = {
                "none": "streamed (as shipped)",
                "offline": "offline, whole file (estimator alone)",
                "all": "streamed, ideal track substituted",
                "missed": "streamed, harvest on missed frames only",
                "values": "streamed, harvest values on both-voiced only",
                "interp": "streamed, missed frames voiced, F0 interpolated",
            }
            for mode in ("none", "offline", "all", "missed", "values", "interp"):
                arr = np.array(gaps[mode])
                print(
                    f"  gap {names[mode]:44s}: {arr.mean():+5.1f} pts (per case {np.round(arr, 1).tolist()})"
                )


def track(args: argparse.Namespace) -> None:
    """Track level only: the F0 the streamed core synthesises (the block part of each kept span) against
    the whole-file harvest track and the whole-file track of the method itself, on the 5 ms grid.

    Deterministic (no synthesis, so none of WORLD's noise excitation, whose realisation changes with any
    change to what is synthesised and moves the output-level metric by a point or more): the instrument
    for changes to the F0 path alone."""
    default_f0 = _Settings().f0
    methods = list(dict.fromkeys(default_f0 if m == "default" else m for m in args.f0))
    inputs = [p for p in args.inputs if "examples/" not in str(p)]
    print(f"track level over {', '.join(Path(p).name for p in inputs)}; {_machine()}")
    for rate in args.rates:
        hop = StreamingVoiceChanger(rate).hop / rate
        refs = [(Path(p), load(Path(p), rate)) for p in inputs]
        whole = {p: get_f0_estimator(args.ideal_f0, hop_seconds=hop).estimate(x, rate) for p, x in refs}
        for method in methods:
            c = dict(hv=0, missed=0, extra=0, both=0, over50=0, own=0, own_missed=0, own_both=0, own50=0)
            for p, x in refs:
                opts = f0_options(method)
                own = get_f0_estimator(f0_name(method), hop_seconds=hop, **opts).estimate(x, rate)
                _, _, used = _substituted(
                    x, rate, None, "none", f0=f0_name(method), pitch=0.0, f0_options=opts, **args.set
                )
                for a, (f, v) in used.items():
                    if not 0 <= a < min(whole[p].num_frames, own.num_frames):
                        continue
                    for key, ref_track in (("", whole[p]), ("own", own)):
                        rv, rf = bool(ref_track.voiced[a]), float(ref_track.f0_hz[a])
                        prefix = key + "_" if key else ""
                        c[key or "hv"] += rv
                        c[prefix + "missed"] += rv and not v
                        if not key:
                            c["extra"] += v and not rv
                        if v and rv:
                            c[prefix + "both"] += 1
                            c[(key or "over") + "50"] += abs(1200.0 * np.log2(f / rf)) > 50.0
            print(
                f"  {method:10s} {rate:6d} Hz: vs whole-file {args.ideal_f0}: missed "
                f"{100 * c['missed'] / max(c['hv'], 1):.1f} % of {c['hv']}, extra {c['extra']}, > 50 cents "
                f"{100 * c['over50'] / max(c['both'], 1):.1f} % | vs the method on the whole file: missed "
                f"{100 * c['own_missed'] / max(c['own'], 1):.1f} %, > 50 cents "
                f"{100 * c['own50'] / max(c['own_both'], 1):.1f} %",
                flush=True,
            )


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"machine: {platform.machine()} {os.cpu_count()} cpus, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}, python {platform.python_version()}"
    )


def clicks(args: argparse.Namespace) -> None:
    path = args.inputs[0]
    rate = args.rates[0]
    x = load(Path(path), rate)
    settings: dict[str, object] = dict(pitch=4.0, formant=1.1)
    y_on, vc_on, _ = stream(x, rate, **settings)
    y_off, _, _ = stream(x, rate, sola=False, **settings)
    off = render_offline(x, rate, **settings)
    b = vc_on.block_size
    print(
        f"border clicks of {path} at {rate} Hz: block {b} samples ({1000 * b / rate:.1f} ms), "
        "pitch +4, formant 1.1"
    )
    print(f"  offline render      : {click_score(off, b, rate):.3f}")
    print(f"  streamed, SOLA on   : {click_score(y_on, b, rate):.3f}")
    print(f"  streamed, SOLA off  : {click_score(y_off, b, rate):.3f}  (no crossfade, no search)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", nargs="+", default=[str(p) for p in DEFAULT_INPUTS])
    ap.add_argument("--rates", nargs="+", type=int, default=[22050, 48000])
    ap.add_argument("--f0", nargs="+", default=["default", "dio", "harvest", "fcpe"])
    ap.add_argument("--ideal-f0", default="harvest", help="F0 of the ideal whole-file render")
    ap.add_argument("--ref-f0", default="harvest", help="estimator that measures input and outputs")
    ap.add_argument("--shifts", nargs="+", type=float, default=[4.0, -5.0])
    ap.add_argument("--clicks", action="store_true", help="border click score instead of pitch accuracy")
    ap.add_argument("--diagnose", action="store_true", help="split each method's gap into its causes")
    ap.add_argument("--track", action="store_true", help="F0 track level only (deterministic, fast)")
    ap.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="core settings of the streamed render (CoreSettings fields, e.g. warmup_ms=20 block_ms=40)",
    )
    ap.add_argument("--judge", help="count only input frames this estimator also calls voiced (e.g. fcpe)")
    args = ap.parse_args()
    args.set = {k: _value(v) for k, _, v in (item.partition("=") for item in args.set)}
    if args.clicks:
        clicks(args)
    elif args.diagnose:
        diagnose(args)
    elif args.track:
        track(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
