"""The voice changer DAG on a long stream: latency, per-block compute vs deadline, underruns, RTF.

Loops the sample into a ``--seconds`` stream (60 s by default) and runs it through the full pipeline
(:func:`apipeline.voice_changer.build_voice_changer`: guard, re-block, gate + VAD, F0, WORLD analysis,
conversion,
synthesis, SOLA) behind a memory source, as fast as possible and (``--realtime``) paced in real time, then
once more through the command line (``apipeline voice-changer --json``) on the same stream written to a
temporary file. Prints the declared algorithmic latency, per-block compute p50/p99/max against the
block deadline, underruns (paced runs only) and the real-time factors:

* ``rtf``: per-block compute (critical path) / audio duration;
* ``wall``: wall time / audio duration (as-fast-as-possible runs: the throughput on this machine);
* ``cpu``: process CPU time (all threads) / audio duration, i.e. one-core equivalent.

``--quality`` measures pitch accuracy through the DAG instead, the method of ``benchmarks/voice_quality.py``
applied to what users run (``convert_array``, i.e. ``apipeline voice-changer``): F0 of the input and of
each output re-estimated with an estimator the pipeline did not use (``--ref-f0``, harvest), compared
with the requested shift (+4 and -5 semitones) over the frames voiced in both, the streamed DAG against
the offline render with the same settings (``--offline``), plus the border-click scores (streamed vs
offline, SOLA on vs off). ``--no-phase-lock`` turns the lock off
(``VoiceChangerSettings.free_running``: the search must then span a pitch period, so 10 ms crossfade,
15 ms search, no look-ahead, the same 60 ms); ``--remote`` puts the conversion on the in-process model
backend (``remote_settings``: free-running, no mirrored F0 tail).

    python benchmarks/voice_changer_dag.py [--input examples/data/speech.wav] [--seconds 60] [--f0 dio]
        [--realtime] [--no-cli] [--rates]
    python benchmarks/voice_changer_dag.py --quality [--f0 dio] [--ref-f0 harvest] [--formant 1.1]
        [--no-phase-lock] [--remote]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apipeline.audio.f0 import get_f0_estimator
from apipeline.audio.io import read_audio
from apipeline.audio.metrics import cents_error, click_score
from apipeline.voice_changer import (
    VoiceChangerSettings,
    build_voice_changer,
    convert_array,
    render_offline_array,
)
from apipeline.voice_changer.remote import remote_settings
from apipeline.voice_changer.run import VoiceChangerResult


def line(label: str, r: VoiceChangerResult) -> str:
    rep = r.report
    assert rep is not None
    under = "n/a (not paced)" if rep.underruns is None else f"{rep.underruns}/{rep.blocks}"
    return (
        f"{label:<28} latency {r.latency_ms:5.1f} ms | block {rep.block_ms:5.1f} ms | compute p50 "
        f"{rep.compute_p50_ms:5.2f} p99 {rep.compute_p99_ms:5.2f} max {rep.compute_max_ms:5.2f} ms | "
        f"turnaround p99 {rep.turnaround_p99_ms:6.2f} ms | underruns {under} | rtf {rep.rtf:.3f} "
        f"wall {rep.wall_rtf:.3f} cpu {rep.cpu_rtf:.3f} | gated {r.blocks_gated}"
    )


def quality(x: np.ndarray, sr: int, args: argparse.Namespace) -> None:
    """Pitch accuracy and clicks of the DAG's output against the offline render (see the docstring)."""
    if args.ref_f0 == args.f0:
        raise SystemExit("--ref-f0 must differ from --f0: the measuring estimator must not be the pipeline's")

    def run(settings: VoiceChangerSettings) -> np.ndarray:
        backend = None
        if args.remote:  # a run closes its backend: a fresh one each time
            from apipeline.models import LocalBackend
            from apipeline.voice_changer.remote import RemotePlacement

            backend = RemotePlacement(LocalBackend(2), deadline=10.0)
        result = asyncio.run(convert_array(x, sr, settings, backend=backend))
        if result.errors or (result.remote is not None and result.remote["degraded"]):
            raise SystemExit(f"the DAG run failed: {result.errors[:3]} {result.remote}")
        return result.output

    base = VoiceChangerSettings(f0=args.f0, formant=args.formant, block_ms=args.block_ms)
    if args.no_phase_lock:
        base = base.free_running()
    shown = remote_settings(base) if args.remote else base  # what the remote placement renders
    ref = get_f0_estimator(args.ref_f0, hop_seconds=0.01)
    f0_in = ref.estimate(x, sr).f0_hz
    g = build_voice_changer(shown, sample_rate=sr).geometry
    where = "model backend (in-process)" if args.remote else "local DAG"
    print(
        f"pitch accuracy through the {where}: phase lock {shown.use_phase_lock()}, crossfade "
        f"{g.ms(g.crossfade):.1f} ms, search {g.ms(g.search):.1f} ms, look-ahead {g.ms(g.lookahead):.1f} "
        f"ms, f0 pad {shown.f0_pad_ms:g} ms; latency {1000 * g.latency_seconds:.1f} ms; measured with "
        f"{args.ref_f0}"
    )
    print("  (median |cents| vs requested shift, share of voiced frames > 50 cents off)")
    for shift in (4.0, -5.0):
        settings = base.replace(pitch=shift)
        streamed = run(settings)
        offline = render_offline_array(x, sr, settings)
        errs = {}
        for label, out in (("offline", offline), ("DAG", streamed)):
            errs[label] = err = cents_error(f0_in, ref.estimate(out, sr).f0_hz, shift)
            print(
                f"  shift {shift:+.0f} {label:<8}: median {err.median_cents:6.2f} cents, > 50 cents "
                f"{100 * err.share_over_50:5.1f} %  ({err.voiced_frames} frames)"
            )
        gap_m = errs["DAG"].median_cents - errs["offline"].median_cents
        gap_s = 100 * (errs["DAG"].share_over_50 - errs["offline"].share_over_50)
        print(
            f"  shift {shift:+.0f} DAG - offline: {gap_m:+.2f} cents median, {gap_s:+.1f} points > 50 cents"
        )
    settings = base.replace(pitch=4.0)
    vc = build_voice_changer(remote_settings(settings) if args.remote else settings, sample_rate=sr)
    block, offset = vc.geometry.block, (-vc.align_samples) % vc.geometry.block
    on = run(settings)
    off_sola = settings.replace(sola=False)
    plain = run(off_sola)
    plain_vc = build_voice_changer(remote_settings(off_sola) if args.remote else off_sola, sample_rate=sr)
    plain_offset = (-plain_vc.align_samples) % block
    print(f"border clicks (click_score on the block grid, {block} samples; lower is better), pitch +4")
    offline = render_offline_array(x, sr, settings)
    print(f"  offline render : {click_score(offline, block, sr, offset=offset):.3f}")
    print(f"  DAG, SOLA on   : {click_score(on, block, sr, offset=offset):.3f}")
    print(f"  DAG, SOLA off  : {click_score(plain, block, sr, offset=plain_offset):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default="examples/data/speech.wav")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--f0", default="dio")
    ap.add_argument("--pitch", type=float, default=4.0)
    ap.add_argument("--formant", type=float, default=1.1)
    ap.add_argument("--block-ms", type=float, default=35.0)
    ap.add_argument("--realtime", action="store_true", help="also run paced in real time (takes --seconds)")
    ap.add_argument("--no-cli", action="store_true", help="skip the run through `apipeline voice-changer`")
    ap.add_argument("--rates", action="store_true", help="also run 10 s at every supported rate")
    ap.add_argument("--quality", action="store_true", help="pitch accuracy and clicks instead (no timing)")
    ap.add_argument("--ref-f0", default="harvest", help="--quality: the measuring estimator (not --f0)")
    ap.add_argument("--no-phase-lock", action="store_true", help="--quality: free-running synthesis")
    ap.add_argument("--remote", action="store_true", help="--quality: conversion on the in-process backend")
    args = ap.parse_args()
    audio, sr = read_audio(args.input)
    x = audio.mean(axis=1).astype(np.float32) if audio.ndim == 2 else audio.astype(np.float32)
    if args.quality:
        print(f"input {args.input}: {len(x) / sr:.2f} s at {sr} Hz; f0 {args.f0}, formant {args.formant:g}")
        quality(x, sr, args)
        return
    stream = np.tile(x, int(np.ceil(args.seconds * sr / len(x))))[: int(args.seconds * sr)]
    settings = VoiceChangerSettings(
        f0=args.f0, pitch=args.pitch, formant=args.formant, block_ms=args.block_ms
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"input {args.input} looped to {len(stream) / sr:.1f} s at {sr} Hz; "
        f"f0 {args.f0}, pitch {args.pitch:+g}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
        f"load average {load:.2f}"
    )
    print(line("DAG, as fast as possible", asyncio.run(convert_array(stream, sr, settings))))
    if args.realtime:
        print(
            line("DAG, paced in real time", asyncio.run(convert_array(stream, sr, settings, realtime=True)))
        )
    if args.rates:
        short = stream[: 10 * sr]
        for rate in (16000, 22050, 24000, 44100, 48000):
            y = short if rate == sr else np.asarray(soxr.resample(short, sr, rate), np.float32)
            print(line(f"DAG at {rate} Hz (10 s)", asyncio.run(convert_array(y, rate, settings))))
    if not args.no_cli:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
            sf.write(src, stream, sr)
            cmd = [
                sys.executable, "-m", "apipeline.cli.main", "voice-changer", "--input", str(src), "--output",
                str(dst), "--pitch", str(args.pitch), "--formant", str(args.formant), "--f0", args.f0,
                "--block-ms", str(args.block_ms), "--json",
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"CLI failed ({proc.returncode}): {proc.stderr.strip()}")
                return
            rep = json.loads(proc.stdout)["report"]
            print(
                f"{'apipeline voice-changer --json':<28} latency {rep['latency_ms']:5.1f} ms | compute p50 "
                f"{rep['compute_p50_ms']:5.2f} p99 {rep['compute_p99_ms']:5.2f} ms "
                f"vs {rep['deadline_ms']:.1f} ms | rtf {rep['rtf']:.3f} wall {rep['wall_rtf']:.3f} "
                f"cpu {rep['cpu_rtf']:.3f}"
            )


if __name__ == "__main__":
    main()
