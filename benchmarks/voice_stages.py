"""Compute per block of the streaming voice changer core, by stage, in process CPU time.

For each rate and F0 method: the input (the example speech, resampled, looped to ``--seconds``) is fed
block by block to :class:`~apipeline.audio.voice_changer.StreamingVoiceChanger` (pitch +4, formant 1.1);
the real-time factor is the process CPU time over the audio duration, and the pyworld calls (dio,
stonemask, cheaptrick, d4c, synthesize) are timed by thread CPU time. CPU time, not wall time: the
machine may be shared by other jobs, which inflates wall time but much less our own CPU time (it still
inflates it a little through caches and SMT siblings: compare runs of one sitting only). numpy, BLAS and
torch run on one thread.

``--tree PATH`` imports apipeline from another checkout (e.g. ``git worktree``/``git archive`` of an older
commit) so that before and after run in one sitting with the same script:

    python benchmarks/voice_stages.py [--rates 22050 48000] [--f0 dio harvest fcpe] [--tree /tmp/old]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(ROOT / "examples/data/speech.wav"))
    ap.add_argument("--rates", nargs="+", type=int, default=[22050, 48000])
    ap.add_argument("--f0", nargs="+", default=["default"])
    ap.add_argument("--seconds", type=float, default=14.0)
    ap.add_argument("--tree", default=str(ROOT), help="checkout whose apipeline is measured")
    args = ap.parse_args()
    sys.path.insert(0, args.tree)

    import numpy as np
    import soxr

    import apipeline.audio.voice_changer as core
    from apipeline.audio.f0.wavelet import import_pyworld
    from apipeline.audio.io import read_audio

    pw = import_pyworld()
    spent: dict[str, int] = {}

    def timed(name: str) -> None:
        fn = getattr(pw, name)

        def wrapper(*a: object, **k: object) -> object:
            t0 = time.thread_time_ns()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0) + time.thread_time_ns() - t0

        setattr(pw, name, wrapper)

    stages = ("dio", "stonemask", "harvest", "cheaptrick", "d4c", "synthesize")
    for name in stages:
        timed(name)
    audio, sr0 = read_audio(args.input)
    x0 = np.asarray(audio, np.float64).reshape(len(audio), -1).mean(axis=1)
    settings_cls = getattr(core, "CoreSettings", None) or core.VoiceChangerSettings
    print(f"tree {args.tree}; input {args.input} looped to {args.seconds:g} s; process CPU time")
    print("| rate | f0 | RTF (CPU) | per block ms | " + " | ".join(stages) + " | other |")
    print("|---|---|---|---|" + "---|" * (len(stages) + 1))
    for rate in args.rates:
        x = soxr.resample(x0, sr0, rate) if rate != sr0 else x0
        x = np.tile(x, int(np.ceil(args.seconds * rate / len(x))))[: int(args.seconds * rate)].astype(
            np.float32
        )
        for method in args.f0:
            f0 = settings_cls().f0 if method == "default" else method
            options = {"num_threads": 1} if f0 in ("fcpe", "crepe", "crepe-tiny") else {}
            vc = core.StreamingVoiceChanger(rate, f0=f0, pitch=4.0, formant=1.1, f0_options=options)
            b = vc.block_size
            vc.process_block(x[:b])  # imports, FFT plans, model load
            vc.reset()
            spent.clear()
            t0 = time.process_time()
            blocks = 0
            for i in range(0, len(x) - b + 1, b):
                vc.process_block(x[i : i + b])
                blocks += 1
            cpu = time.process_time() - t0
            dur = blocks * b / rate
            parts = [spent.get(s, 0) / 1e9 / dur for s in stages]
            print(
                f"| {rate} | {f0} | **{cpu / dur:.3f}** | {1000 * cpu / blocks:.2f} | "
                + " | ".join(f"{p:.3f}" for p in parts)
                + f" | {cpu / dur - sum(parts):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
