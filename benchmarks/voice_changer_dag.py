"""The voice changer DAG on a long stream: latency, per-block compute vs deadline, underruns, RTF.

Loops the sample into a ``--seconds`` stream (60 s by default) and runs it through the full pipeline
(:func:`apipeline.apps.build_voice_changer`: guard, re-block, gate + VAD, F0, WORLD analysis, conversion,
synthesis, SOLA) behind a memory source, as fast as possible and (``--realtime``) paced in real time, then
once more through the command line (``apipeline voice-changer --json``) on the same stream written to a
temporary file. Prints the declared algorithmic latency, per-block compute p50/p99/max against the
block deadline, underruns (paced runs only) and the real-time factors:

* ``rtf``: per-block compute (critical path) / audio duration;
* ``wall``: wall time / audio duration (as-fast-as-possible runs: the throughput on this machine);
* ``cpu``: process CPU time (all threads) / audio duration, i.e. one-core equivalent.

    python benchmarks/voice_changer_dag.py [--input examples/data/speech.wav] [--seconds 60] [--f0 dio]
        [--realtime] [--no-cli] [--rates]
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

from apipeline.apps import VoiceChangerSettings, convert_array
from apipeline.apps.voice_changer_run import VoiceChangerResult
from apipeline.audio.io import read_audio


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
    args = ap.parse_args()
    audio, sr = read_audio(args.input)
    x = audio.mean(axis=1).astype(np.float32) if audio.ndim == 2 else audio.astype(np.float32)
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
