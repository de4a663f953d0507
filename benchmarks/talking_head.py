"""The talking head's cost: frames/s per session for each path and size, encoding, A/V offset, capacity.

For each renderer — the portrait animator (no weights) and the neural path (wav2lip, and wav2lip +
GFPGAN) on full-size models of the published architectures with random weights (built with
``tools/make_video_models.py --full`` into a temporary folder; ~3 min and ~500 MB the first time,
reused with ``--models DIR``) — at 256×256 and 512×512, it prints:

* ``render``: pictures per second of the renderer alone, one thread (mouth features included);
* ``encode``: pictures per second of H.264 (veryfast) + AAC muxing alone, on animated portrait pictures;
* ``sessions``: how many 25 fps sessions this machine sustains, measured by running N render+encode
  sessions in N processes at once, each on 4 s of speech, for N = 1, 2, ... while every session still
  finishes within its audio's duration (real time);
* ``A/V p99``: the lateness of pictures leaving a :class:`~apipeline.processors.video.VideoPacer` in a
  real-time paced run (portrait path, 256×256, 100 ms play-out delay), and how many were dropped late.

    python benchmarks/talking_head.py [--sizes 256 512] [--models DIR] [--no-neural] [--max-sessions 8]
        [--no-capacity]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
PORTRAIT = ROOT / "examples" / "data" / "portrait.png"
SPEECH = ROOT / "examples" / "data" / "speech.wav"


def _renderer(kind: str, size: int, models: dict[str, Path] | None, fps: float = 25.0):
    from apipeline.video.image import read_image
    from apipeline.video.renderer import PortraitRenderer

    img = read_image(PORTRAIT)
    if kind == "portrait":
        return PortraitRenderer(img, size=size, fps=fps)
    from apipeline.video.wav2lip import NeuralRenderer

    assert models is not None
    enhancer = str(models["gfpgan"]) if kind == "wav2lip+gfpgan" else None
    return NeuralRenderer(img, str(models["wav2lip"]), enhancer=enhancer, size=size, fps=fps, threads=1)


def _render_rate(kind: str, size: int, models, seconds: float = 2.0) -> float:
    from apipeline.video.mouth import MouthDriver

    audio, sr = sf.read(SPEECH, dtype="float32")
    audio = audio[: int(seconds * sr)]
    r = _renderer(kind, size, models)
    driver = MouthDriver(sr, 25.0)
    feed = getattr(r, "feed", None)
    t0 = time.perf_counter()
    n = 0
    for chunk in np.array_split(audio, max(1, int(seconds * 50))):
        if feed:
            feed(chunk, sr)
        for shape in driver.push(chunk):
            r.render(shape)
            n += 1
    return n / (time.perf_counter() - t0)


def _encode_rate(size: int, frames: int = 100) -> float:
    from apipeline.video.encode import MediaWriter

    r = _renderer("portrait", size, None)
    pics = [r._animator.render(o, 0.5, 0.0) for o in np.linspace(0.0, 1.0, 8)]  # what a session encodes
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with MediaWriter(Path(d) / "x.mp4", width=size, height=size, sample_rate=22050) as w:
            for i in range(frames):
                w.write_video(pics[i % 8])
                w.write_audio(np.zeros(882, np.float32))
        return frames / (time.perf_counter() - t0)


def _session(args: tuple[str, int, dict | None, str, str]) -> float:
    kind, size, models, audio_path, out_dir = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from apipeline.talking_head import render_file

    r = _renderer(kind, size, models)
    out = Path(out_dir) / f"s{os.getpid()}_{time.perf_counter_ns()}.mp4"
    t0 = time.perf_counter()
    render_file(PORTRAIT, audio_path, out, renderer=r)
    return time.perf_counter() - t0


def _capacity(kind: str, size: int, models, max_sessions: int) -> int:
    audio, sr = sf.read(SPEECH, dtype="float32")
    ok = 0
    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "clip.wav"
        sf.write(clip, audio[: 4 * sr], sr)
        ctx = mp.get_context("spawn")
        for n in range(1, max_sessions + 1):
            with ctx.Pool(n) as pool:
                walls = pool.map(_session, [(kind, size, models, str(clip), d)] * n)
            if max(walls) > 4.0:
                break
            ok = n
    return ok


async def _paced_offsets() -> dict:
    from apipeline.frames import AudioRawFrame
    from apipeline.pipeline import Pipeline, PipelineTask
    from apipeline.processors.video import TalkingHeadProcessor, VideoPacer

    audio, sr = sf.read(SPEECH, dtype="float32")
    head = TalkingHeadProcessor(_renderer("portrait", 256, None))
    pacer = VideoPacer(latency_s=0.1)
    task = PipelineTask(Pipeline([head, pacer]))
    runner = asyncio.create_task(task.run())
    block = sr // 50
    t0 = time.monotonic_ns()
    for i in range(0, len(audio), block):
        due = t0 + (i * 1_000_000_000) // sr
        await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / 1e9))
        await task.queue_frame(AudioRawFrame(audio[i : i + block], sr, pts=time.monotonic_ns()))
    await task.stop_when_done()
    await runner
    return pacer.statistics()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument(
        "--models", type=Path, default=None, help="folder with wav2lip_full.onnx/gfpgan_full.onnx"
    )
    ap.add_argument("--no-neural", action="store_true")
    ap.add_argument("--max-sessions", type=int, default=8)
    ap.add_argument(
        "--no-capacity",
        action="store_true",
        help="skip the N-process sessions test (estimate from the rates)",
    )
    args = ap.parse_args()
    models = None
    kinds = ["portrait"]
    if not args.no_neural:
        import make_video_models

        folder = args.models or Path(tempfile.gettempdir()) / "apipeline_video_models"
        if (folder / "wav2lip_full.onnx").exists() and (folder / "gfpgan_full.onnx").exists():
            models = {"wav2lip": folder / "wav2lip_full.onnx", "gfpgan": folder / "gfpgan_full.onnx"}
        else:
            print(f"building full-size models in {folder} ...", flush=True)
            models = make_video_models.build(folder, full=True)
        kinds += ["wav2lip", "wav2lip+gfpgan"]
    print(f"machine: {os.cpu_count()} cores; one thread per session")
    print(f"{'path':<16} {'size':>5} {'render f/s':>11} {'encode f/s':>11} {'25 fps sessions':>16}")
    for kind in kinds:
        for size in args.sizes:
            render = _render_rate(kind, size, models, seconds=2.0 if kind == "portrait" else 0.8)
            encode = _encode_rate(size)
            per_session = 1.0 / (1.0 / render + 1.0 / encode)  # pictures/s of one core, render + encode
            if args.no_capacity:
                sessions = f"~{int((os.cpu_count() or 1) * per_session // 25)} (est.)"
            else:
                sessions = str(_capacity(kind, size, models, args.max_sessions) if per_session > 25 else 0)
            print(f"{kind:<16} {size:>5} {render:>11.1f} {encode:>11.1f} {sessions:>16}", flush=True)
    stats = asyncio.run(_paced_offsets())
    print(
        f"paced (portrait, 256x256, 100 ms play-out): A/V offset p50 {stats['av_offset_ms_p50']:.2f} ms, "
        f"p99 {stats['av_offset_ms_p99']:.2f} ms, max {stats['av_offset_ms_max']:.2f} ms; "
        f"{stats['video_released']} shown, {stats['video_late_dropped']} dropped late"
    )


if __name__ == "__main__":
    main()
