"""Parallel pipelines: every frame goes to every branch, and the outputs are merged.

Bookkeeping (why it is bounded): a frame that enters is remembered by id with the number of branches
that have not yet returned it. A data frame passed through unchanged is emitted the first time a
branch returns it; any other frame (Start, End, Sync, system frames) the last time, so lifecycle
frames come out once and only after every branch has passed them. The entry is forgotten when the
count reaches zero, when every branch is synchronous and has returned from the call, when a later
control frame has come back from every branch (branches keep order, so everything before it is done),
or — for frames a branch swallowed — when it falls off the end of a bounded FIFO (``max_tracked``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence

from apipeline.frames import CancelFrame, ControlFrame, DataFrame, ErrorFrame, Frame, SystemFrame
from apipeline.pipeline.pipeline import Pipeline
from apipeline.processors.async_frame_processor import AsyncFrameProcessor
from apipeline.processors.frame_processor import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor

logger = logging.getLogger("apipeline")


class _BranchEdge(FrameProcessor):
    """Where a branch's frames come out (downstream at its end, upstream at its start)."""

    def __init__(self, owner: ParallelPipeline, index: int) -> None:
        super().__init__(name=f"{owner.name}.branch{index}")
        self._owner = owner
        self._index = index
        self._started = True

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        await self._owner._from_branch(self._index, frame, direction)


class ParallelPipeline(FrameProcessor):
    """Branches side by side: ``ParallelPipeline([a1, a2], [b1, b2, b3])``."""

    def __init__(
        self, *branches: Sequence[FrameProcessor], name: str | None = None, max_tracked: int = 4096
    ) -> None:
        super().__init__(name=name)
        if not branches:
            raise ValueError(f"{self.name}: needs at least one branch")
        self._branches: list[Pipeline] = []
        for i, procs in enumerate(branches):
            if isinstance(procs, FrameProcessor):
                raise TypeError(f"{self.name}: branch {i} must be a list of processors, got a processor")
            branch = Pipeline(list(procs), name=f"{self.name}.b{i}")
            _BranchEdge(self, i).link(branch)
            branch.link(_BranchEdge(self, i))
            self._branches.append(branch)
        self._n = len(self._branches)
        self._max_tracked = max_tracked
        self._tracked: dict[FrameDirection, OrderedDict[int, int]] = {
            DOWNSTREAM: OrderedDict(),
            UPSTREAM: OrderedDict(),
        }
        self._all_sync = not any(isinstance(p, AsyncFrameProcessor) for p in self.walk())
        self._started = True

    def processors(self) -> list[FrameProcessor]:
        return list(self._branches)

    @property
    def branches(self) -> list[Pipeline]:
        return list(self._branches)

    def tracked_frames(self) -> int:
        """How many frame ids the merge currently remembers (bounded by ``max_tracked``)."""
        return sum(len(t) for t in self._tracked.values())

    def _track(self, frame: Frame, direction: FrameDirection) -> None:
        tracked = self._tracked[direction]
        tracked[frame.id] = self._n
        if len(tracked) > self._max_tracked:
            tracked.popitem(last=False)

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        self._track(frame, direction)
        for branch in self._branches:
            await branch.receive(frame, direction)
        if self._all_sync:
            self._tracked[direction].pop(frame.id, None)

    async def _from_branch(self, index: int, frame: Frame, direction: FrameDirection) -> None:
        tracked = self._tracked[direction]
        remaining = tracked.get(frame.id)
        if remaining is None:
            await self.push_frame(frame, direction)
            return
        remaining -= 1
        if remaining:
            tracked[frame.id] = remaining
        else:
            del tracked[frame.id]
        if isinstance(frame, DataFrame):
            if remaining == self._n - 1:
                await self.push_frame(frame, direction)
        elif remaining == 0:
            self._forget_older(tracked, frame.id)
            await self.push_frame(frame, direction)

    @staticmethod
    def _forget_older(tracked: OrderedDict[int, int], frame_id: int) -> None:
        """A non-data frame came back from every branch: branches keep order, so every frame that
        entered before it has come out or been swallowed by now; forget them."""
        while tracked:
            oldest = next(iter(tracked))
            if oldest > frame_id:
                break
            del tracked[oldest]


class _BranchMarker(ControlFrame):
    """Private in-band marker: when it leaves branch i, branch i has finished the frame before it."""


class SyncParallelPipeline(ParallelPipeline):
    """Branches side by side with synchronised output.

    For each input frame, every branch's output for it is collected and emitted before the next
    input, in branch order. The frame is sent to all branches first and then an in-band marker to all
    branches, so asynchronous branches work on it concurrently. System frames are not held: they go
    to every branch and come out once, as in :class:`ParallelPipeline`.
    """

    def __init__(
        self,
        *branches: Sequence[FrameProcessor],
        name: str | None = None,
        max_tracked: int = 4096,
        sync_timeout: float = 10.0,
    ) -> None:
        super().__init__(*branches, name=name, max_tracked=max_tracked)
        self.sync_timeout = sync_timeout
        self._lock = asyncio.Lock()
        self._buffers: list[list[Frame]] | None = None
        self._markers: list[_BranchMarker] = []
        self._pending = 0
        self._done: asyncio.Event | None = None

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SystemFrame):
            if isinstance(frame, CancelFrame) and self._done is not None:
                self._done.set()  # async branches drop their queues on cancel: stop waiting
            await super().receive(frame, direction)
            return
        async with self._lock:
            await self._receive_synced(frame, direction)

    async def _receive_synced(self, frame: Frame, direction: FrameDirection) -> None:
        buffers: list[list[Frame]] = [[] for _ in self._branches]
        self._buffers = buffers
        self._markers = [_BranchMarker() for _ in self._branches]
        self._pending = self._n
        self._done = done = asyncio.Event()
        try:
            for branch in self._branches:
                await branch.receive(frame, direction)
            for branch, marker in zip(self._branches, self._markers):
                await branch.receive(marker, direction)
            if self._pending:
                try:
                    await asyncio.wait_for(done.wait(), self.sync_timeout)
                except asyncio.TimeoutError:
                    await self.push_frame(
                        ErrorFrame(
                            f"{self.name}: {self._pending} branch(es) did not return {frame.name} within "
                            f"{self.sync_timeout} s (a processor swallowed control frames?)",
                            processor=self.name,
                        ),
                        UPSTREAM,
                    )
        finally:
            self._buffers = None
            self._done = None
        emitted_self = False
        for buf in buffers:
            for out in buf:
                if out.id == frame.id:
                    if emitted_self or not isinstance(frame, DataFrame):
                        continue
                    emitted_self = True
                await self.push_frame(out, direction)
        if not isinstance(frame, DataFrame) and any(f.id == frame.id for buf in buffers for f in buf):
            await self.push_frame(frame, direction)

    async def _from_branch(self, index: int, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, _BranchMarker):
            if self._markers and frame is self._markers[index]:
                self._pending -= 1
                if self._pending == 0 and self._done is not None:
                    self._done.set()
            return
        buffers = self._buffers
        if buffers is not None and not isinstance(frame, SystemFrame):
            buffers[index].append(frame)
            return
        await super()._from_branch(index, frame, direction)
