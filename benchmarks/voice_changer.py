"""Real-time budget of the streaming voice changer core on one core.

Loops the sample into a ``--seconds`` stream (60 s by default), feeds it block by block as a live input
would, and prints: the algorithmic latency, per-block compute p50/p99/max against the block deadline,
underruns (blocks whose compute exceeded the block duration: a live output would have starved), and
the real-time factor (compute time / audio time). Threads are pinned to one for numpy/BLAS and torch.

    python benchmarks/voice_changer.py [--input examples/data/speech.wav] [--f0 dio] [--seconds 60]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apipeline.audio.io import read_audio  # noqa: E402
from apipeline.audio.voice_changer import StreamingVoiceChanger  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default="examples/data/speech.wav")
    ap.add_argument("--f0", default="dio")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--pitch", type=float, default=4.0)
    ap.add_argument("--formant", type=float, default=1.1)
    ap.add_argument("--block-ms", type=float, default=None)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    audio, sr = read_audio(args.input)
    x = audio.mean(axis=1).astype(np.float32) if audio.ndim == 2 else audio.astype(np.float32)
    stream = np.tile(x, int(np.ceil(args.seconds * sr / len(x))))[: int(args.seconds * sr)]
    extra = {} if args.block_ms is None else {"block_ms": args.block_ms}
    f0_options = {"num_threads": 1} if args.f0 not in ("dio", "harvest") else {}
    vc = StreamingVoiceChanger(
        sr, f0=args.f0, pitch=args.pitch, formant=args.formant, f0_options=f0_options, **extra
    )
    b = vc.block_size
    deadline = b / sr
    vc.process_block(stream[:b])  # warm-up (imports, FFT plans) outside the measurement
    vc.reset()
    times = []
    t_start = time.perf_counter()
    for i in range(0, len(stream) - b + 1, b):
        t0 = time.perf_counter()
        vc.process_block(stream[i : i + b])
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    ms = np.array(times) * 1000.0
    audio_s = len(times) * deadline
    print(
        f"input {args.input} looped to {audio_s:.1f} s at {sr} Hz; f0 {args.f0}, pitch {args.pitch:+g}, "
        f"formant {args.formant}"
    )
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus (pinned to 1), py {platform.python_version()}"
    )
    print(
        f"block {b} samples ({1000 * deadline:.1f} ms), crossfade {vc.crossfade_size}, "
        f"search {vc.search_size}, "
        f"look-ahead {vc.lookahead_size}, context {vc.context_size} ({1000 * vc.context_size / sr:.1f} ms)"
    )
    print(f"algorithmic latency (worst case) {1000 * vc.latency_seconds:.1f} ms")
    print(
        f"per-block compute: p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
        f"max {ms.max():.2f} ms, deadline {1000 * deadline:.1f} ms"
    )
    print(
        f"underruns: {int((ms > 1000 * deadline).sum())} of {len(ms)} blocks; gated (silent) blocks: "
        f"{vc.blocks_gated}"
    )
    print(f"real-time factor: {total / audio_s:.3f}")


if __name__ == "__main__":
    main()
