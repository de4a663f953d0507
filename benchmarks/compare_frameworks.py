"""The shapes of throughput.py, measured the same way for apipeline, apipeline 0.2.12 and pipecat.

Each framework lives in its own interpreter (the old apipeline and ours share the import name), so run
this script once per framework, with the interpreter of a venv where that framework is installed:

  .venv/bin/python benchmarks/compare_frameworks.py --framework apipeline
  /tmp/venv-apipeline012/bin/python benchmarks/compare_frameworks.py --framework apipeline012
  /tmp/venv-pipecat/bin/python benchmarks/compare_frameworks.py --framework pipecat [--pipecat-worker lean]

Shapes (pass-through stages; the last stage of every chain is a probe that counts the frames reaching it):
  sync xN      N sync stages (pipecat: FrameProcessor(enable_direct_mode=True), its queue-less mode)
  async xN     N async stages (pipecat: plain FrameProcessor, an input and a process queue and two tasks
               each; apipeline 0.2.12: AsyncFrameProcessor forwarding through its queue)
  parallel 4x5 a ParallelPipeline of 4 branches of 5 sync stages, followed by the probe
  paced        10 stages, one frame every 20 ms: latency from queueing the frame on the task to its
               arrival at the probe, p50/p99 (sync and async stages)
Batch shapes ("run f/s") push all frames at once (queued on the task before it runs, then EndFrame) and
time the task's run from start to return, as throughput.py does, and count how many frames reached the
probe (0.2.12 drops the data that EndFrame overtakes in async stages). "live f/s" queues the same frames
to a task that is already running and times them until the probe has seen the last one: no start-up,
no shut-down, no EndFrame.
Each shape: one short warm-up run, then the median of --repeats runs. The bare asyncio floors of
throughput.py are measured in the same process, so each run has its own floors.

pipecat worker settings: "lean" (default) turns off what a PipelineWorker adds by default (RTVI processor
and observer, turn-tracking observer, idle-timeout monitor; metrics and heartbeats are off by default);
"default" is PipelineWorker(pipeline) as its docs write it. Logging is set to WARNING for every framework,
so no console output is timed.
"""

from __future__ import annotations

# apipeline-bench-args: --framework apipeline
import argparse
import asyncio
import gc
import importlib.metadata
import logging
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 900.0


# -- measurement state shared by every framework's probe ----------------------------------------------


@dataclass
class ProbeState:
    """What the last stage saw: data frames counted, arrival of the last one, latencies of stamped ones."""

    sent_ns: dict[int, int] = field(default_factory=dict)
    count: int = 0
    last_ns: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, frame_id: int) -> None:
        now = time.perf_counter_ns()
        self.count += 1
        self.last_ns = now
        t0 = self.sent_ns.pop(frame_id, None)
        if t0 is not None:
            self.latencies_ns.append(now - t0)
        self.first.set()
        if self.count == self.target:
            self.reached.set()


class Framework:
    """Adapter: builds pass-through stages, pipelines and a task for one framework."""

    name = ""
    version = ""

    def stage(self, mode: str) -> Any:
        raise NotImplementedError

    def probe(self, mode: str, state: ProbeState) -> Any:
        raise NotImplementedError

    def pipeline(self, stages: list[Any]) -> Any:
        raise NotImplementedError

    def parallel(self, branches: list[list[Any]]) -> Any:
        raise NotImplementedError

    def frame(self) -> Any:
        raise NotImplementedError

    def task(self, pipeline: Any, batch: bool) -> Task:
        raise NotImplementedError

    def settings(self) -> str:
        return ""


class Task:
    """The three things a benchmark does with a framework's task."""

    async def queue(self, frame: Any) -> None:
        raise NotImplementedError

    async def stop_when_done(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        raise NotImplementedError


# -- apipeline (this repo) ------------------------------------------------------------------------------


def ours() -> Framework:
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

    def probe_cls(base: type) -> type:
        class Probe(base):  # type: ignore[valid-type, misc]
            def __init__(self, state: ProbeState) -> None:
                super().__init__()
                self.state = state

            async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
                await super().process_frame(frame, direction)
                if isinstance(frame, TextFrame):
                    self.state.record(frame.id)
                await self.push_frame(frame, direction)

        return Probe

    probes = {"sync": probe_cls(FrameProcessor), "async": probe_cls(AsyncFrameProcessor)}

    class OurTask(Task):
        def __init__(self, pipeline: Any, batch: bool) -> None:
            # throughput.py: batch shapes skip format checks, the paced one runs with defaults.
            params = PipelineParams(check_formats=False) if batch else PipelineParams()
            self.task = PipelineTask(pipeline, params)

        async def queue(self, frame: Any) -> None:
            await self.task.queue_frame(frame)

        async def stop_when_done(self) -> None:
            await self.task.stop_when_done()

        async def run(self) -> None:
            await self.task.run()

    class Ours(Framework):
        name = "apipeline"
        version = importlib.metadata.version("apipeline")

        def stage(self, mode: str) -> Any:
            return Pass() if mode == "sync" else APass()

        def probe(self, mode: str, state: ProbeState) -> Any:
            return probes[mode](state)

        def pipeline(self, stages: list[Any]) -> Any:
            return Pipeline(stages)

        def parallel(self, branches: list[list[Any]]) -> Any:
            return ParallelPipeline(*branches)

        def frame(self) -> Any:
            return TextFrame("x")

        def task(self, pipeline: Any, batch: bool) -> Task:
            return OurTask(pipeline, batch)

    return Ours()


# -- apipeline 0.2.12 (PyPI) ----------------------------------------------------------------------------


def apipeline012() -> Framework:
    version = importlib.metadata.version("apipeline")
    if version != "0.2.12":
        raise SystemExit(f"--framework apipeline012 needs apipeline==0.2.12 installed, found {version}")
    from apipeline.frames.data_frames import TextFrame
    from apipeline.pipeline.parallel_pipeline import ParallelPipeline

    from apipeline.pipeline.pipeline import Pipeline
    from apipeline.pipeline.runner import PipelineRunner
    from apipeline.pipeline.task import PipelineParams, PipelineTask
    from apipeline.processors.async_frame_processor import AsyncFrameProcessor
    from apipeline.processors.frame_processor import FrameDirection, FrameProcessor

    class Pass(FrameProcessor):
        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)

    class APass(AsyncFrameProcessor):
        # 0.2.12's async processors forward through their own queue with queue_frame.
        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.queue_frame(frame, direction)

    class Probe(FrameProcessor):
        def __init__(self, state: ProbeState) -> None:
            super().__init__()
            self.state = state

        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, TextFrame):
                self.state.record(frame.id)
            await self.push_frame(frame, direction)

    class AProbe(AsyncFrameProcessor):
        def __init__(self, state: ProbeState) -> None:
            super().__init__()
            self.state = state

        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.queue_frame(frame, direction)

        async def push_frame(self, frame: Any, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
            # Called from the processor's own task, after the queue hop.
            if isinstance(frame, TextFrame):
                self.state.record(frame.id)
            await super().push_frame(frame, direction)

    class OldTask(Task):
        def __init__(self, pipeline: Any) -> None:
            self.task = PipelineTask(pipeline, PipelineParams())

        async def queue(self, frame: Any) -> None:
            await self.task.queue_frame(frame)

        async def stop_when_done(self) -> None:
            await self.task.stop_when_done()

        async def run(self) -> None:
            await PipelineRunner(handle_sigint=False).run(self.task)

    class Old(Framework):
        name = "apipeline012"

        def stage(self, mode: str) -> Any:
            return Pass() if mode == "sync" else APass()

        def probe(self, mode: str, state: ProbeState) -> Any:
            return Probe(state) if mode == "sync" else AProbe(state)

        def pipeline(self, stages: list[Any]) -> Any:
            return Pipeline(stages)

        def parallel(self, branches: list[list[Any]]) -> Any:
            return ParallelPipeline(*branches)

        def frame(self) -> Any:
            return TextFrame(text="x")

        def task(self, pipeline: Any, batch: bool) -> Task:
            return OldTask(pipeline)

    old = Old()
    old.version = version
    return old


# -- pipecat (PyPI pipecat-ai) --------------------------------------------------------------------------


def pipecat(worker_settings: str) -> Framework:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    from pipecat.frames.frames import TextFrame
    from pipecat.pipeline.parallel_pipeline import ParallelPipeline
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    class Pass(FrameProcessor):
        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            await self.push_frame(frame, direction)

    class Probe(FrameProcessor):
        def __init__(self, state: ProbeState, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.state = state

        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, TextFrame):
                self.state.record(frame.id)
            await self.push_frame(frame, direction)

    if worker_settings == "lean":
        worker_kwargs: dict[str, Any] = {
            "enable_rtvi": False,
            "enable_turn_tracking": False,
            "idle_timeout_secs": None,
            "cancel_on_idle_timeout": False,
            "params": PipelineParams(enable_metrics=False, enable_heartbeats=False),
        }
    else:
        worker_kwargs = {}

    class PipecatTask(Task):
        def __init__(self, pipeline: Any) -> None:
            self.worker = PipelineWorker(pipeline, **worker_kwargs)
            self.runner = WorkerRunner(handle_sigint=False)

        async def queue(self, frame: Any) -> None:
            await self.worker.queue_frame(frame)

        async def stop_when_done(self) -> None:
            await self.worker.stop_when_done()

        async def run(self) -> None:
            await self.runner.add_workers(self.worker)
            await self.runner.run()

    class Pipecat(Framework):
        name = "pipecat"
        version = importlib.metadata.version("pipecat-ai")

        def stage(self, mode: str) -> Any:
            return Pass(enable_direct_mode=(mode == "sync"))

        def probe(self, mode: str, state: ProbeState) -> Any:
            return Probe(state, enable_direct_mode=(mode == "sync"))

        def pipeline(self, stages: list[Any]) -> Any:
            return Pipeline(stages)

        def parallel(self, branches: list[list[Any]]) -> Any:
            return ParallelPipeline(*branches)

        def frame(self) -> Any:
            return TextFrame(text="x")

        def task(self, pipeline: Any, batch: bool) -> Task:
            return PipecatTask(pipeline)

        def settings(self) -> str:
            shown = ", ".join(f"{k}={v!r}" for k, v in worker_kwargs.items() if k != "params")
            if "params" in worker_kwargs:
                shown += ", params=PipelineParams(enable_metrics=False, enable_heartbeats=False)"
            shown = shown or "all defaults"
            return f"PipelineWorker({shown}); sync stages use enable_direct_mode=True"

    return Pipecat()


# -- bare asyncio floors (as in throughput.py) ----------------------------------------------------------


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
    t0 = time.perf_counter()
    for i in range(frames):
        for c in chains:
            await c(i)
    return frames / (time.perf_counter() - t0)


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
    t0 = time.perf_counter()
    for i in range(frames):
        await queues[0].put(i)
    await done.wait()
    rate = frames / (time.perf_counter() - t0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


async def bare_paced(n_stages: int, frames: int, interval: float) -> list[int]:
    chain = bare_direct_chain(n_stages)
    lat: list[int] = []
    for _ in range(frames):
        t0 = time.perf_counter_ns()
        await chain(None)
        lat.append(time.perf_counter_ns() - t0)
        await asyncio.sleep(interval)
    return lat


# -- the shapes -----------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    run_rate: float
    delivered: int


def chain(fw: Framework, n: int, mode: str, state: ProbeState) -> Any:
    return fw.pipeline([*[fw.stage(mode) for _ in range(n - 1)], fw.probe(mode, state)])


async def batch(fw: Framework, build: Callable[[ProbeState], Any], frames: int) -> BatchResult:
    state = ProbeState()
    task = fw.task(build(state), batch=True)
    for _ in range(frames):
        await task.queue(fw.frame())
    await task.stop_when_done()
    t0 = time.perf_counter_ns()
    await asyncio.wait_for(task.run(), TIMEOUT_S)
    t1 = time.perf_counter_ns()
    return BatchResult(run_rate=frames / ((t1 - t0) / 1e9), delivered=state.count)


async def live(fw: Framework, build: Callable[[ProbeState], Any], frames: int) -> float:
    """Frames/s through a task that is already running, until the probe has seen them all.

    Start-up and shut-down are left out and EndFrame plays no part, so this also measures a framework
    whose EndFrame overtakes queued data.
    """
    state = ProbeState(target=frames + 1)
    task = fw.task(build(state), batch=True)
    runner = asyncio.create_task(task.run())
    await task.queue(fw.frame())
    await asyncio.wait_for(state.first.wait(), 60.0)
    t0 = time.perf_counter_ns()
    for _ in range(frames):
        await task.queue(fw.frame())
    await asyncio.wait_for(state.reached.wait(), TIMEOUT_S)
    rate = frames / ((state.last_ns - t0) / 1e9)
    await task.stop_when_done()
    await asyncio.wait_for(runner, TIMEOUT_S)
    return rate


async def paced(fw: Framework, n: int, mode: str, frames: int, interval: float) -> list[int]:
    state = ProbeState()
    task = fw.task(chain(fw, n, mode, state), batch=False)
    runner = asyncio.create_task(task.run())
    # One unmeasured frame first: every framework has started once it comes out of the pipeline.
    await task.queue(fw.frame())
    await asyncio.wait_for(state.first.wait(), 60.0)
    for _ in range(frames):
        frame = fw.frame()
        state.sent_ns[frame.id] = time.perf_counter_ns()
        await task.queue(frame)
        await asyncio.sleep(interval)
    await task.stop_when_done()
    await asyncio.wait_for(runner, TIMEOUT_S)
    return state.latencies_ns


def pct(lat: list[int], q: float) -> float:
    ordered = sorted(lat)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1e3


async def median_of(repeats: int, fn: Callable[[], Awaitable[float]]) -> float:
    values = []
    for _ in range(repeats):
        gc.collect()
        values.append(await fn())
    return statistics.median(values)


async def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", choices=("apipeline", "apipeline012", "pipecat"), required=True)
    ap.add_argument("--pipecat-worker", choices=("lean", "default"), default="lean")
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--paced-frames", type=int, default=250)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup-frames", type=int, default=2_000)
    ap.add_argument(
        "--chains",
        type=int,
        nargs="*",
        default=[1, 10, 50],
        help="chain lengths for the batch shapes (none: with --no-parallel, only the paced shapes run)",
    )
    ap.add_argument("--no-parallel", action="store_true")
    args = ap.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING)
    if args.framework == "apipeline":
        fw = ours()
    elif args.framework == "apipeline012":
        fw = apipeline012()
    else:
        fw = pipecat(args.pipecat_worker)
    n, reps = args.frames, args.repeats
    print(f"framework {fw.name} {fw.version}; Python {platform.python_version()} on {os.cpu_count()} cores")
    if fw.settings():
        print(f"settings: {fw.settings()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    shapes: list[tuple[str, Callable[[ProbeState], Any], Callable[[], Awaitable[float]]]] = []
    for mode in ("sync", "async"):
        for stages in args.chains:

            def build(state: ProbeState, stages: int = stages, mode: str = mode) -> Any:
                return chain(fw, stages, mode, state)

            if mode == "sync":
                floor: Callable[[], Awaitable[float]] = lambda s=stages: bare_direct(s, n)  # noqa: E731
            else:
                floor = lambda s=stages: bare_queues(s, n)  # noqa: E731
            shapes.append((f"{mode} x{stages}", build, floor))
    if not args.no_parallel:

        def build_parallel(state: ProbeState) -> Any:
            branches = [[fw.stage("sync") for _ in range(5)] for _ in range(4)]
            return fw.pipeline([fw.parallel(branches), fw.probe("sync", state)])

        shapes.append(("parallel 4x5", build_parallel, lambda: bare_direct(5, n, branches=4)))

    header = (
        f"{'shape':<14}{'run f/s':>11}{'delivered':>15}{'live f/s':>11}{'floor f/s':>12}"
        f"{'floor/run':>11}{'floor/live':>12}"
    )
    rows = []
    for name, build, floor_fn in shapes:
        await batch(fw, build, args.warmup_frames)
        results = []
        for _ in range(reps):
            gc.collect()
            results.append(await batch(fw, build, n))
        live_rate = await median_of(reps, lambda build=build: live(fw, build, n))
        floor_rate = await median_of(reps, floor_fn)
        run_rate = statistics.median(r.run_rate for r in results)
        delivered = min(r.delivered for r in results)
        rows.append((name, run_rate, delivered, live_rate, floor_rate))
        print(f"  {name}: run {run_rate:,.0f} f/s, live {live_rate:,.0f} f/s", file=sys.stderr, flush=True)
    if rows:
        print(header)
    for name, run_rate, delivered, live_rate, floor_rate in rows:
        print(
            f"{name:<14}{run_rate:>11,.0f}{f'{delivered}/{n}':>15}{live_rate:>11,.0f}{floor_rate:>12,.0f}"
            f"{floor_rate / run_rate:>11.2f}{floor_rate / live_rate:>12.2f}"
        )

    interval = args.interval_ms / 1000
    bare = [await bare_paced(10, args.paced_frames, interval) for _ in range(reps)]
    print(
        f"paced {args.interval_ms:g} ms x10, {args.paced_frames} frames, median of {reps} runs "
        f"(p50 / p99, us):"
    )
    print(
        f"  bare direct awaits   p50 {statistics.median(pct(x, 0.5) for x in bare):9.1f}"
        f"   p99 {statistics.median(pct(x, 0.99) for x in bare):9.1f}"
    )
    for mode in ("sync", "async"):
        await paced(fw, 10, mode, 10, interval)
        runs = [await paced(fw, 10, mode, args.paced_frames, interval) for _ in range(reps)]
        got = min(len(r) for r in runs)
        print(
            f"  {fw.name} {mode:<5}".ljust(23) + f"p50 {statistics.median(pct(x, 0.5) for x in runs):9.1f}"
            f"   p99 {statistics.median(pct(x, 0.99) for x in runs):9.1f}"
            f"   ({got}/{args.paced_frames} arrived)"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
