"""Parallel pipelines: every frame goes to every branch, and the outputs are merged.

Merging (why each frame comes out once, whatever the branches do): a frame that enters is remembered
by *identity* with the number of returns it is owed (one per branch). A data frame passed through
unchanged is emitted on its first return; any other frame (Start, End, Sync, system frames) on its
last, so lifecycle frames come out once and only after every branch has passed them. Nothing assumes
that frames come back in the order they entered: a branch may hold frames back (a VAD pre-roll),
let a control frame overtake them, or take frames that were created before one that entered earlier.

Bookkeeping (why it is bounded): an entry is forgotten when every branch has returned the frame; for
data and control frames that entered before an ``EndFrame``, when that ``EndFrame`` has passed every
branch (a processor flushes before it passes ``EndFrame``, so nothing it held can come back; system
frames are out of band and may still be inside a branch); and, for frames a branch swallowed, when it
falls off the end of a FIFO of ``max_tracked`` entries. Only that last rule can lose track of a frame
still inside a branch (one held back for longer than ``max_tracked`` newer frames took to enter), so
``max_tracked`` must exceed the frames a branch can hold in flight; ``evicted`` counts its uses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Sequence

from apipeline.frames import CancelFrame, ControlFrame, DataFrame, EndFrame, ErrorFrame, Frame, SystemFrame
from apipeline.pipeline.pipeline import Edge, Pipeline
from apipeline.processors.frame_processor import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor

logger = logging.getLogger("apipeline")


class ParallelPipeline(FrameProcessor):
    """Branches side by side: ``ParallelPipeline([a1, a2], [b1, b2, b3])``.

    Args:
        branches: each a list of processors, run as a :class:`Pipeline`.
        max_tracked: most frames remembered per direction for the merge (see the module docstring).
    """

    def __init__(
        self, *branches: Sequence[FrameProcessor], name: str | None = None, max_tracked: int = 4096
    ) -> None:
        super().__init__(name=name)
        if not branches:
            raise ValueError(f"{self.name}: needs at least one branch")
        if max_tracked < 1:
            raise ValueError(f"{self.name}: max_tracked must be >= 1, got {max_tracked}")
        self._branches: list[Pipeline] = []
        for i, procs in enumerate(branches):
            if isinstance(procs, FrameProcessor):
                raise TypeError(f"{self.name}: branch {i} must be a list of processors, got a processor")
            branch = Pipeline(list(procs), name=f"{self.name}.b{i}")
            # where the branch's frames come out: downstream at its end, upstream at its start
            from_branch = functools.partial(self._from_branch, i)
            Edge(f"{self.name}.branch{i}.in", from_branch).link(branch)
            branch.link(Edge(f"{self.name}.branch{i}.out", from_branch))
            self._branches.append(branch)
        self._n = len(self._branches)
        self._max_tracked = max_tracked
        # id(frame) -> [frame.id, returns owed (, 1 for a system frame)], in entry order. Keyed by the
        # object, so two frames sharing an id (one decoded from a wire keeps the sender's) are never
        # confused; frame.id guards against an address reused after the frame was freed.
        # one table per direction; picked with `is` (hashing an Enum key runs Python code per frame)
        self._down: OrderedDict[int, list[int]] = OrderedDict()
        self._up: OrderedDict[int, list[int]] = OrderedDict()
        #: how many entries the ``max_tracked`` cap pushed out (frames a branch swallowed, normally)
        self.evicted = 0
        self._started = True

    def processors(self) -> list[FrameProcessor]:
        return list(self._branches)

    @property
    def branches(self) -> list[Pipeline]:
        return list(self._branches)

    def tracked_frames(self) -> int:
        """How many frames the merge currently remembers (at most ``max_tracked`` per direction)."""
        return len(self._down) + len(self._up)

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        tracked = self._down if direction is DOWNSTREAM else self._up
        key = id(frame)
        entry = tracked.get(key)
        if entry is not None and entry[0] == frame.id:
            entry[1] += self._n  # the same frame entered again: it is owed another round of returns
        else:
            # [frame.id, returns still owed]; a third item marks a system (out-of-band) frame
            in_band = frame.interruptible or isinstance(frame, ControlFrame)
            tracked[key] = [frame.id, self._n] if in_band else [frame.id, self._n, _SYSTEM]
            if len(tracked) > self._max_tracked:
                tracked.popitem(last=False)
                self.evicted += 1
        for branch in self._branches:
            await branch.receive(frame, direction)

    async def _from_branch(self, index: int, frame: Frame, direction: FrameDirection) -> None:
        tracked = self._down if direction is DOWNSTREAM else self._up
        key = id(frame)
        entry = tracked.get(key)
        if entry is None or entry[0] != frame.id:
            await self.push_frame(frame, direction)  # made inside the branch: passes at once
            return
        owed = entry[1]
        if len(entry) > 2 and entry[2] == _EMITTED:  # a late return of a frame already sent on
            if owed > 1:
                entry[1] = owed - 1
            else:
                del tracked[key]
            return
        # owed is a multiple of n before a round of returns starts: a data frame goes out on the
        # first return of its round, any other frame on the last.
        if isinstance(frame, DataFrame):
            if owed > 1:
                entry[1] = owed - 1
            else:
                del tracked[key]
            if owed % self._n == 0:
                await self.push_frame(frame, direction)
        elif (owed - 1) % self._n:
            entry[1] = owed - 1
        else:
            if isinstance(frame, EndFrame):
                self._forget_before(tracked, key)
            if owed > 1:
                entry[1] = owed - 1
            else:
                tracked.pop(key, None)
            await self.push_frame(frame, direction)

    def _forget_before(self, tracked: OrderedDict[int, list[int]], end_key: int | None) -> None:
        """``EndFrame`` has passed every branch: the data and control frames that entered before it
        (all of them if ``end_key`` is None) have come out or been swallowed, since a processor
        flushes before it passes ``EndFrame``. System frames are out of band and may still be inside
        a branch, and frames that entered after it may be too: they are kept."""
        done = []
        for key, entry in tracked.items():
            if key == end_key:
                break
            if len(entry) == 2 or entry[2] == _EMITTED:
                done.append(key)
        for key in done:
            del tracked[key]


_SYSTEM = 1  # third item of a merge entry: a system frame (out of band)
_EMITTED = 2  # third item: already sent on by a sync-parallel step (later returns are dropped)


class _BranchMarker(ControlFrame):
    """Private in-band marker: when it leaves branch i, branch i has finished the frame before it.

    ``owner`` is the sync-parallel pipeline that sent it: a nested one passes its enclosing
    pipeline's markers on like any control frame."""

    __slots__ = ("owner",)

    def __init__(self, owner: SyncParallelPipeline) -> None:
        super().__init__()
        self.owner = owner


class _Section:
    """One input frame being synchronised: what each branch produced for it so far."""

    __slots__ = ("done", "frame", "markers", "outputs", "pending")

    def __init__(self, owner: SyncParallelPipeline, frame: Frame, n: int) -> None:
        self.frame = frame
        self.outputs: list[list[Frame]] = [[] for _ in range(n)]
        self.markers = [_BranchMarker(owner) for _ in range(n)]
        self.pending = n
        # a plain future awaited with asyncio.wait: wait_for (3.11) can swallow a cancellation that
        # arrives as the wait completes, and a CancelFrame completes it just as the task is cancelled
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class SyncParallelPipeline(ParallelPipeline):
    """Branches side by side with synchronised output.

    For each input frame, every branch's output for it is collected and emitted before the next
    input, in branch order. The frame is sent to all branches first and then an in-band marker to all
    branches, so asynchronous branches work on it concurrently. System frames are not held: they go
    to every branch and come out once, as in :class:`ParallelPipeline`.

    Each direction is synchronised on its own: a frame a branch pushes the other way passes at once,
    and a processor that answers each output with a frame pushed back (upstream, say) is served while
    the output is being delivered. A frame that re-enters in the same direction from inside a
    synchronised step (a branch's push that came back round) is merged without waiting, as in
    :class:`ParallelPipeline`, and its outputs are emitted with those of the step.
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
        # per direction, indexed 0 (downstream) and 1 (upstream)
        self._locks = (asyncio.Lock(), asyncio.Lock())
        self._holders: list[asyncio.Task[object] | None] = [None, None]
        self._sections: list[_Section | None] = [None, None]

    async def receive(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SystemFrame):
            if isinstance(frame, CancelFrame):
                for section in self._sections:
                    if section is not None:
                        section.finish()  # async branches drop their queues on cancel: stop waiting
            await super().receive(frame, direction)
            return
        side = 0 if direction is DOWNSTREAM else 1
        if self._holders[side] is asyncio.current_task():
            # Re-entered from inside our own step in this direction: waiting for the lock would be
            # waiting for ourselves.
            await super().receive(frame, direction)
            return
        async with self._locks[side]:
            self._holders[side] = asyncio.current_task()
            try:
                await self._receive_synced(frame, direction)
            finally:
                self._holders[side] = None

    async def _receive_synced(self, frame: Frame, direction: FrameDirection) -> None:
        side = 0 if direction is DOWNSTREAM else 1
        section = self._sections[side] = _Section(self, frame, self._n)
        try:
            for branch in self._branches:
                await branch.receive(frame, direction)
            for branch, marker in zip(self._branches, section.markers):
                await branch.receive(marker, direction)
            if section.pending:
                await asyncio.wait({section.done}, timeout=self.sync_timeout)
                if not section.done.done():
                    await self.push_frame(
                        ErrorFrame(
                            f"{self.name}: {section.pending} branch(es) did not return {frame.name} "
                            f"within {self.sync_timeout} s (a processor swallowed control frames?)",
                            processor=self.name,
                        ),
                        UPSTREAM,
                    )
        finally:
            self._sections[side] = None
        returned = 0
        tracked = self._down if direction is DOWNSTREAM else self._up
        for index, outputs in enumerate(section.outputs):
            for out in outputs:
                if out is frame:
                    if not returned and isinstance(frame, DataFrame):
                        await self.push_frame(frame, direction)
                    returned += 1
                else:
                    await super()._from_branch(index, out, direction)
        if returned < self._n:
            # a branch still holds it (or swallowed it): a late return must not send it on again
            tracked[id(frame)] = [frame.id, self._n - returned, _EMITTED]
            if len(tracked) > self._max_tracked:
                tracked.popitem(last=False)
                self.evicted += 1
        if isinstance(frame, EndFrame):
            self._forget_before(tracked, None)  # after its step: what it flushed came out in it
        if returned and not isinstance(frame, DataFrame):
            await self.push_frame(frame, direction)

    async def _from_branch(self, index: int, frame: Frame, direction: FrameDirection) -> None:
        section = self._sections[0 if direction is DOWNSTREAM else 1]
        if isinstance(frame, _BranchMarker) and frame.owner is self:
            if section is not None and frame is section.markers[index]:
                section.pending -= 1
                if section.pending == 0:
                    section.finish()
            return
        if section is not None and not isinstance(frame, SystemFrame):
            section.outputs[index].append(frame)
            return
        await super()._from_branch(index, frame, direction)
