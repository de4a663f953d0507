"""Per-frame cost of the pipeline core against bare asyncio floors.

Run by hand:  .venv/bin/python benchmarks/throughput.py [--frames 20000] [--million] [--cpu]

Shapes (pass-through stages, frames pushed all at once through a PipelineTask):
  sync chains of 1, 10, 50 FrameProcessors       floor: bare direct awaits
  async chains of 1, 10, 50 AsyncFrameProcessors floor: bare one-asyncio.Queue-per-stage
  ParallelPipeline of 4 branches x 5 sync stages  floor: bare direct awaits into 4x5
  paced: 10 sync stages, one frame every 20 ms    floor: bare direct awaits, same pacing
Prints frames/s (or p50/p99 latency) and each shape's ratio to its floor, and the peak RSS.
With --cpu, rates are frames per second of this process's CPU time (``time.process_time``) instead of
wall time: on a machine shared with other work, wall-clock rates swing by 3x between runs, CPU time far
less (the event loop is one thread, so CPU time is the work done). Paced latency is always wall time.
With --million, pushes 1,000,000 frames through the 4x5 ParallelPipeline and prints traced memory
every 200k frames (it must stay flat).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable

from apipeline.frames import Frame, TextFrame
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineParams, PipelineTask
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor


class Pass(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class APass(AsyncFrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Probe(FrameProcessor):
    """Last stage: records when each frame arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[int] = []
        self.count = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.count += 1
            self.arrivals.append(time.perf_counter_ns() - frame.metadata["t0"]) if frame.metadata else None
        await self.push_frame(frame, direction)


# Clock of the rate measurements: wall time by default, process CPU time with --cpu.
_clock = time.perf_counter


# -- bare floors -------------------------------------------------------------------------------------


def bare_direct_chain(n: int) -> Callable[[object], Awaitable[None]]:
    async def sink(x: object) -> None:
        return None

    fn: Callable[[object], Awaitable[None]] = sink
    for _ in range(n):
        nxt = fn

        async def stage(x: object, nxt: Callable[[object], Awaitable[None]] = nxt) -> None:
            await nxt(x)

        fn = stage
    return fn


async def bare_direct(n_stages: int, frames: int, branches: int = 1) -> float:
    chains = [bare_direct_chain(n_stages) for _ in range(branches)]
    t0 = _clock()
    for i in range(frames):
        for c in chains:
            await c(i)
    return frames / (_clock() - t0)


async def bare_queues(n_stages: int, frames: int) -> float:
    queues: list[asyncio.Queue[object]] = [asyncio.Queue() for _ in range(n_stages + 1)]
    done = asyncio.Event()

    async def stage(q_in: asyncio.Queue[object], q_out: asyncio.Queue[object]) -> None:
        while True:
            await q_out.put(await q_in.get())

    async def sink(q: asyncio.Queue[object]) -> None:
        for _ in range(frames):
            await q.get()
        done.set()

    tasks = [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(n_stages)]
    tasks.append(asyncio.create_task(sink(queues[-1])))
    t0 = _clock()
    for i in range(frames):
        await queues[0].put(i)
    await done.wait()
    rate = frames / (_clock() - t0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


# -- apipeline ----------------------------------------------------------------------------------------


async def run_task(pipeline: FrameProcessor, frames: int) -> float:
    task = PipelineTask(pipeline, PipelineParams(check_formats=False))
    await task.queue_frames(TextFrame("x") for _ in range(frames))
    await task.stop_when_done()
    t0 = _clock()
    await task.run()
    return frames / (_clock() - t0)


async def apipeline_chain(n: int, frames: int, cls: type[FrameProcessor]) -> float:
    return await run_task(Pipeline([cls() for _ in range(n)]), frames)


async def apipeline_parallel(frames: int) -> float:
    return await run_task(ParallelPipeline(*[[Pass() for _ in range(5)] for _ in range(4)]), frames)


async def paced(n_stages: int, frames: int, bare: bool) -> tuple[float, float]:
    lat: list[int] = []
    if bare:
        chain = bare_direct_chain(n_stages)
        for _ in range(frames):
            t0 = time.perf_counter_ns()
            await chain(None)
            lat.append(time.perf_counter_ns() - t0)
            await asyncio.sleep(0.02)
    else:
        probe = Probe()
        task = PipelineTask(Pipeline([*[Pass() for _ in range(n_stages - 1)], probe]))
        runner = asyncio.create_task(task.run())
        for _ in range(frames):
            await task.queue_frame(TextFrame("x", metadata={"t0": time.perf_counter_ns()}))
            await asyncio.sleep(0.02)
        await task.stop_when_done()
        await runner
        lat = probe.arrivals
    lat.sort()
    return lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3


async def million() -> None:
    pipeline = ParallelPipeline(*[[Pass() for _ in range(5)] for _ in range(4)])
    task = PipelineTask(pipeline, PipelineParams(check_formats=False, max_input_queue_size=1000))
    runner = asyncio.create_task(task.run())
    tracemalloc.start()
    for i in range(1, 1_000_001):
        await task.queue_frame(TextFrame("x"))
        if i % 200_000 == 0:
            gc.collect()
            cur, peak = tracemalloc.get_traced_memory()
            print(
                f"  after {i:>9,} frames: traced {cur / 1e6:7.2f} MB (peak {peak / 1e6:.2f} MB), "
                f"tracked ids {pipeline.tracked_frames()}"
            )
    await task.stop_when_done()
    await runner
    tracemalloc.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--paced-frames", type=int, default=250)
    ap.add_argument("--million", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="rates per second of process CPU time")
    args = ap.parse_args()
    if args.cpu:
        global _clock
        _clock = time.process_time
    n = args.frames
    rows: list[tuple[str, float, float]] = []
    for stages in (1, 10, 50):
        floor = statistics.median([await bare_direct(stages, n) for _ in range(3)])
        ours = statistics.median([await apipeline_chain(stages, n, Pass) for _ in range(3)])
        rows.append((f"sync x{stages}", ours, floor))
    for stages in (1, 10, 50):
        floor = statistics.median([await bare_queues(stages, n) for _ in range(3)])
        ours = statistics.median([await apipeline_chain(stages, n, APass) for _ in range(3)])
        rows.append((f"async x{stages}", ours, floor))
    floor = statistics.median([await bare_direct(5, n, branches=4) for _ in range(3)])
    ours = statistics.median([await apipeline_parallel(n) for _ in range(3)])
    rows.append(("parallel 4x5", ours, floor))
    print(f"{'shape':<16}{'apipeline f/s':>15}{'floor f/s':>13}{'floor/ours':>12}")
    for name, ours, floor in rows:
        print(f"{name:<16}{ours:>15,.0f}{floor:>13,.0f}{floor / ours:>12.2f}")
    b50, b99 = await paced(10, args.paced_frames, bare=True)
    a50, a99 = await paced(10, args.paced_frames, bare=False)
    print(
        f"paced 20 ms x10 sync: apipeline p50 {a50:.1f} us p99 {a99:.1f} us"
        f" | bare p50 {b50:.1f} us p99 {b99:.1f} us"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")
    if args.million:
        await million()


if __name__ == "__main__":
    asyncio.run(main())
