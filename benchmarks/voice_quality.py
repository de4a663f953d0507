"""Voice changer quality: pitch accuracy and border clicks, streamed against the ideal offline render.

Pitch: F0 of the input and of each output is re-estimated with an estimator the pipeline did not use
(``--ref-f0``, harvest by default), and compared with the requested shift (+4 and -5 semitones) over the
frames voiced in both (median cents, share of frames > 50 cents off). The streamed output is aligned to
the input first (its delay is between ``N`` and ``N + S`` samples; the best-correlating one is used).
Clicks: :func:`apipeline.audio.metrics.click_score` on the block grid, streamed vs offline, SOLA on vs off.

    python benchmarks/voice_quality.py [--input examples/data/speech.wav] [--f0 dio] [--ref-f0 harvest]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.io import read_audio
from apipeline.audio.metrics import cents_error, click_score
from apipeline.audio.voice_changer import StreamingVoiceChanger, render_offline


def stream(x: np.ndarray, sr: int, **settings: object) -> tuple[np.ndarray, StreamingVoiceChanger]:
    """Streamed render, fed block by block, trimmed to the input length after delay alignment."""
    vc = StreamingVoiceChanger(sr, **settings)
    outs = [vc.push(x[i : i + vc.block_size]) for i in range(0, len(x), vc.block_size)]
    outs.append(vc.flush())
    return np.concatenate(outs), vc


def align(y: np.ndarray, ref: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """``y`` advanced by the delay in [lo, hi] that best correlates it with ``ref``."""
    n = len(ref)
    best = max(range(lo, hi + 1), key=lambda d: float(np.dot(y[d : d + n][: n - hi], ref[: n - hi])))
    return y[best : best + n], best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default="examples/data/speech.wav")
    ap.add_argument("--f0", default="dio", help="estimator inside the voice changer")
    ap.add_argument("--ref-f0", default="harvest", help="estimator used to measure (must differ from --f0)")
    ap.add_argument("--formant", type=float, default=1.0)
    ap.add_argument("--block-ms", type=float, default=None)
    args = ap.parse_args()
    if args.ref_f0 == args.f0:
        ap.error("--ref-f0 must differ from --f0: the measuring estimator must not be the pipeline's")
    audio, sr = read_audio(args.input)
    x = audio.mean(axis=1).astype(np.float32) if audio.ndim == 2 else audio.astype(np.float32)
    extra = {} if args.block_ms is None else {"block_ms": args.block_ms}
    ref_est = get_f0_estimator(args.ref_f0, hop_seconds=0.01)
    f0_in = ref_est.estimate(x, sr).f0_hz
    print(f"input {args.input}: {len(x) / sr:.2f} s at {sr} Hz; F0 {args.f0}, measured with {args.ref_f0}")
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print("\npitch accuracy (median |cents| vs requested shift, share of voiced frames > 50 cents off)")
    for shift in (4.0, -5.0):
        settings = dict(f0=args.f0, pitch=shift, formant=args.formant, **extra)
        off = render_offline(x, sr, **settings)
        y, vc = stream(x, sr, **settings)
        lo = vc.crossfade_size + vc.lookahead_size
        streamed, delay = align(y, off, lo, vc.delay_samples)
        for label, out in (("offline ", off), ("streamed", streamed)):
            err = cents_error(f0_in, ref_est.estimate(out, sr).f0_hz, shift)
            print(
                f"  shift {shift:+.0f} {label}: median {err.median_cents:6.2f} cents, "
                f"> 50 cents {100 * err.share_over_50:5.1f} %  ({err.voiced_frames} frames"
                + (f", aligned delay {delay} samples)" if label == "streamed" else ")")
            )
    print("\nborder clicks (click_score on the streaming block grid; lower is better)")
    settings = dict(f0=args.f0, pitch=4.0, formant=1.1, **extra)
    y_on, vc_on = stream(x, sr, **settings)
    y_off, _ = stream(x, sr, sola=False, **settings)
    off = render_offline(x, sr, **settings)
    b = vc_on.block_size
    print(f"  block {b} samples ({1000 * b / sr:.1f} ms), pitch +4, formant 1.1")
    print(f"  offline render      : {click_score(off, b, sr):.3f}")
    print(f"  streamed, SOLA on   : {click_score(y_on, b, sr):.3f}")
    print(f"  streamed, SOLA off  : {click_score(y_off, b, sr):.3f}  (no crossfade, no search)")


if __name__ == "__main__":
    main()
