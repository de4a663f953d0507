"""The core keeps its promises under every interleaving: a property-based stress suite (issue #10).

Random pipeline shapes (nested serial, parallel and sync-parallel, synchronous and asynchronous
stages, bounded queues with both overflow policies, and the adversaries of :mod:`apipeline.testing`)
are driven by random schedules of data, control and system frames, interruptions, errors, End, Stop
and Cancel. After every run :class:`~apipeline.testing.InvariantChecker` checks order, duplicates,
losses, counted drops, Start/End once per processor, the bound on ``run()``, leftover tasks and one
worker per asynchronous processor; order is also checked at the end of every parallel branch.

Each example runs in a fresh event loop (``asyncio.run``). The default run is small and derandomized
(the same examples every time); ``pytest tests/stress --stress`` runs thousands of random ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apipeline.frames import (
    DataFrame,
    ErrorFrame,
    Frame,
    StopInterruptionFrame,
    StopTaskFrame,
    SyncNotifyFrame,
    TextFrame,
    UserStartedSpeakingFrame,
)
from apipeline.pipeline import ParallelPipeline, Pipeline, PipelineParams, PipelineTask, SyncParallelPipeline
from apipeline.processors import AsyncFrameProcessor, FrameDirection, FrameProcessor
from apipeline.testing import (
    AsyncCancelSwallower,
    AsyncHoldBackProcessor,
    AsyncRaisingProcessor,
    AsyncReentrantProcessor,
    AsyncSlowProcessor,
    AsyncStuckProcessor,
    AsyncUpstreamAnswerer,
    CancelSwallower,
    HoldBackProcessor,
    InvariantChecker,
    RaisingProcessor,
    ReentrantProcessor,
    SlowProcessor,
    StuckProcessor,
    UpstreamAnswerer,
)

# ---- shapes -------------------------------------------------------------------------------------------

STAGES = ("pass", "holdback", "holdback-control-first", "reenter", "answer", "raise", "slow")


@dataclass(frozen=True)
class Stage:
    kind: str
    is_async: bool
    queue: int = 0
    overflow: str = "block"
    param: int = 0


@dataclass(frozen=True)
class Serial:
    children: tuple[Any, ...]


@dataclass(frozen=True)
class Parallel:
    branches: tuple[tuple[Any, ...], ...]
    synced: bool


def stages() -> st.SearchStrategy[Stage]:
    return st.builds(
        Stage,
        kind=st.sampled_from(STAGES),
        is_async=st.booleans(),
        queue=st.integers(1, 4),
        overflow=st.sampled_from(["block", "block", "drop_oldest"]),
        param=st.integers(0, 3),
    )


def shapes() -> st.SearchStrategy[Any]:
    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        chains = st.lists(inner, min_size=1, max_size=3).map(tuple)
        return st.one_of(
            chains.map(Serial),
            st.builds(Parallel, st.lists(chains, min_size=2, max_size=3).map(tuple), st.booleans()),
        )

    return st.lists(st.recursive(stages(), extend, max_leaves=6), min_size=1, max_size=3).map(tuple)


class OrderProbe(FrameProcessor):
    """Records the data frames passing downstream (order is checked per path)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, DataFrame):
            self.seen.append(frame)
        await self.push_frame(frame, direction)


@dataclass
class Built:
    processors: list[FrameProcessor]
    probes: list[OrderProbe] = field(default_factory=list)
    lossy: bool = False  # some stage may lose frames (drop_oldest, raise)
    ordered: bool = True  # a merge may reorder: a parallel with a lossy branch


_SYNC = {
    "pass": FrameProcessor,
    "holdback": HoldBackProcessor,
    "holdback-control-first": HoldBackProcessor,
    "reenter": ReentrantProcessor,
    "answer": UpstreamAnswerer,
    "raise": RaisingProcessor,
    "slow": SlowProcessor,
}
_ASYNC = {
    "pass": AsyncFrameProcessor,
    "holdback": AsyncHoldBackProcessor,
    "holdback-control-first": AsyncHoldBackProcessor,
    "reenter": AsyncReentrantProcessor,
    "answer": AsyncUpstreamAnswerer,
    "raise": AsyncRaisingProcessor,
    "slow": AsyncSlowProcessor,
}


class Passthrough(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class AsyncPassthrough(Passthrough, AsyncFrameProcessor):
    pass


def build_stage(stage: Stage) -> tuple[FrameProcessor, bool]:
    kwargs: dict[str, Any] = {}
    if stage.is_async:
        kwargs = {"max_queue_size": stage.queue, "overflow": stage.overflow}
    cls: Any = (_ASYNC if stage.is_async else _SYNC)[stage.kind]
    if stage.kind == "pass":
        cls = AsyncPassthrough if stage.is_async else Passthrough
    elif stage.kind.startswith("holdback"):
        kwargs["frames"] = stage.param
        kwargs["control_first"] = stage.kind == "holdback-control-first"
    elif stage.kind == "raise":
        kwargs["every"] = stage.param + 2
    elif stage.kind == "slow":
        kwargs["delay"] = 0.0
    lossy = stage.kind == "raise" or (stage.is_async and stage.overflow == "drop_oldest")
    return cls(**kwargs), lossy


def build(spec: Any, ordered_in: bool = True) -> Built:
    """Build a shape. ``ordered_in``: whether frames reach it in the order they were queued (not
    after a merge that may reorder); ``Built.ordered`` says the same of what leaves it. Order probes
    are kept only where their input is in queue order."""
    if isinstance(spec, Stage):
        proc, lossy = build_stage(spec)
        return Built([proc], lossy=lossy, ordered=ordered_in)
    if isinstance(spec, Serial):
        parts: list[Built] = []
        ordered = ordered_in
        for child in spec.children:
            parts.append(build(child, ordered))
            ordered = parts[-1].ordered
        return Built(
            [Pipeline([p for part in parts for p in part.processors])],
            [probe for part in parts for probe in part.probes],
            any(p.lossy for p in parts),
            ordered,
        )
    branches = []
    probes: list[OrderProbe] = []
    lossy = False
    ordered = ordered_in
    for branch in spec.branches:
        parts = []
        branch_ordered = ordered_in
        for child in branch:
            parts.append(build(child, branch_ordered))
            branch_ordered = parts[-1].ordered
        probe = OrderProbe()
        if branch_ordered:
            probes.append(probe)
        probes.extend(probe for part in parts for probe in part.probes)
        branches.append([p for part in parts for p in part.processors] + [probe])
        lossy |= any(p.lossy for p in parts)
        ordered &= branch_ordered
    cls = SyncParallelPipeline if spec.synced else ParallelPipeline
    kwargs = {"sync_timeout": 5.0} if spec.synced else {}
    if not spec.synced and lossy:
        ordered = False  # one branch lost a frame another passes later: the merge may reorder
    return Built([cls(*branches, **kwargs)], probes, lossy, ordered)


# ---- schedules ----------------------------------------------------------------------------------------

OPS = st.one_of(
    st.tuples(st.just("data"), st.integers(1, 6)),
    st.tuples(st.just("interrupt"), st.just(0)),
    st.tuples(st.just("control"), st.integers(0, 1)),
    st.tuples(st.just("system"), st.integers(0, 1)),
    st.tuples(st.just("yield"), st.integers(1, 20)),
)
ENDINGS = st.sampled_from(["end", "stop", "cancel", "end-then-cancel", "cancel-at-once"])


@dataclass(frozen=True)
class Scenario:
    shape: tuple[Any, ...]
    before: tuple[tuple[str, int], ...]
    ops: tuple[tuple[str, int], ...]
    ending: str
    allow_interruptions: bool
    input_queue: int | None


def scenarios() -> st.SearchStrategy[Scenario]:
    return st.builds(
        Scenario,
        shape=shapes(),
        before=st.lists(OPS, max_size=2).map(tuple),
        ops=st.lists(OPS, max_size=12).map(tuple),
        ending=ENDINGS,
        allow_interruptions=st.booleans(),
        input_queue=st.sampled_from([None, None, 1, 4]),
    )


async def apply(checker: InvariantChecker, op: tuple[str, int], counter: list[int]) -> None:
    kind, n = op
    task = checker.task
    if kind == "data":
        frames = []
        for _ in range(n):
            counter[0] += 1
            frames.append(TextFrame(f"d{counter[0]}"))
        await checker.queue_frames(frames)
    elif kind == "interrupt":
        await checker.interrupt()
    elif kind == "control":
        await checker.queue_frames([SyncNotifyFrame() if n else UserStartedSpeakingFrame()])
    elif kind == "system":
        await task.queue_frame(StopInterruptionFrame() if n else ErrorFrame("scheduled error (not fatal)"))
    elif kind == "yield":
        for _ in range(n):
            await asyncio.sleep(0)


async def run_scenario(
    sc: Scenario, params: PipelineParams, extra: Sequence[FrameProcessor] = (), *, stuck_ok: bool = False
) -> InvariantChecker:
    """Build the shape (``extra`` processors go in the middle), drive the schedule, check the run.

    With ``stuck_ok`` a producer blocked by backpressure from a stuck processor is expected: after
    a second the schedule gives up and cancels the run (whose bounds are then checked)."""
    built: list[Built] = []
    ordered = True
    for spec in sc.shape:
        built.append(build(spec, ordered))
        ordered = built[-1].ordered
    processors = [p for b in built for p in b.processors]
    processors[len(processors) // 2 : len(processors) // 2] = list(extra)
    task = PipelineTask(Pipeline(processors), params)
    checker = InvariantChecker(task, ordered=ordered)
    counter = [0]
    before, ops = sc.before, sc.ops
    if sc.input_queue is not None:  # a bounded input queue blocks queue_frame until the run pumps
        before, ops = (), before + ops
    for op in before:
        await apply(checker, op, counter)
    checker.start()

    async def drive() -> None:
        if sc.ending == "cancel-at-once":
            await task.cancel()
            return
        for op in ops:
            await apply(checker, op, counter)
        if sc.ending == "end":
            await task.stop_when_done()
        elif sc.ending == "stop":
            await task.queue_frame(StopTaskFrame())
        elif sc.ending == "cancel":
            await task.cancel()
        else:
            await task.stop_when_done()
            for _ in range(5):
                await asyncio.sleep(0)
            await task.cancel()

    try:
        await asyncio.wait_for(drive(), 1.0 if stuck_ok else checker.bound())
    except asyncio.TimeoutError:
        if not stuck_ok:
            checker.problems.append("queue_frame did not return (the pipeline stopped taking input)")
        await task.cancel()
    await checker.finish()
    # order per path: at the end of every parallel branch, the input frames keep their order
    rank = {id(q.frame): i for i, q in enumerate(checker._queued)}
    for probe in (p for b in built for p in b.probes):
        seen = [rank[id(f)] for f in probe.seen if id(f) in rank]
        if seen != sorted(seen):
            checker.problems.append(f"{probe.name}: input frames passed out of order")
    return checker


def check(sc: Scenario, params: PipelineParams) -> InvariantChecker:
    async def main() -> InvariantChecker:
        return await run_scenario(sc, params)

    return asyncio.run(main())


def _settings(stress: bool, default: int, many: int) -> settings:
    return settings(
        max_examples=many if stress else default,
        deadline=None,
        derandomize=not stress,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


FAST = dict(start_timeout=2.0, end_timeout=5.0, cancel_timeout=1.0, cleanup_timeout=1.0)


def test_random_pipelines_keep_their_promises(stress):
    @_settings(stress, default=300, many=5000)
    @given(scenarios())
    def run(sc: Scenario) -> None:
        params = PipelineParams(
            allow_interruptions=sc.allow_interruptions, max_input_queue_size=sc.input_queue, **FAST
        )
        checker = check(sc, params)
        if checker.task.timeouts:
            checker.problems.append(f"a wait expired with no stuck processor: {checker.task.timeouts}")
        checker.assert_ok()

    run()


# ---- processors that hang: every wait stays bounded -----------------------------------------------------

HANGS = st.sampled_from(
    [
        ("stuck", "data", False),
        ("stuck", "data", True),
        ("stuck", "start", False),
        ("stuck", "stop", False),
        ("stuck", "stop", True),
        ("stuck", "setup", False),
        ("swallow", "once", True),
        ("swallow", "always", True),
        ("swallow", "always", False),
    ]
)


def test_hanging_processors_never_hang_the_run(stress):
    @_settings(stress, default=20, many=300)
    @given(scenarios(), HANGS)
    def run(sc: Scenario, hang: tuple[str, str, bool]) -> None:
        kind, where, is_async = hang
        adversary: StuckProcessor | CancelSwallower
        if kind == "stuck":
            adversary = (AsyncStuckProcessor if is_async else StuckProcessor)(where)
        else:
            times = 1 if where == "once" else None
            adversary = (AsyncCancelSwallower if is_async else CancelSwallower)(times=times)
        params = PipelineParams(
            allow_interruptions=sc.allow_interruptions,
            max_input_queue_size=sc.input_queue,
            start_timeout=0.2,
            end_timeout=0.3,
            cancel_timeout=0.2,
            cleanup_timeout=0.2,
        )

        async def main() -> InvariantChecker:
            checker = await run_scenario(sc, params, [adversary], stuck_ok=True)
            adversary.release()  # let whatever was abandoned finish before the loop closes
            abandoned = [t for t in checker.task.abandoned if not t.done()]
            if abandoned:
                await asyncio.wait(abandoned, timeout=5.0)
            return checker

        asyncio.run(main()).assert_ok()

    run()
