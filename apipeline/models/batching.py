"""Batchable service methods: the declaration a service makes, and the micro-batcher a worker runs.

A service method may declare a companion that takes many calls at once::

    def convert_batch(calls: list[dict]) -> list[result]: ...

    @service_func("convert", "svc")
    @batchable(convert_batch, max_batch=8, max_wait_ms=2.0)
    def convert(audio, speaker): ...

(for a class-written service, ``batch`` may name a method of the same class). The plain method stays
the reference: a backend that does not batch (``LocalBackend``) calls it once per call, and the batch
companion must give, for each call, what the plain method would. A worker that hosts the service for
many streams (a Ray actor) puts concurrent calls from different streams in one batch, waiting at most
``max_wait_ms`` after the first call and never collecting more than ``max_batch`` calls: the wait is
added latency, so keep it a small fraction of a chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from apipeline.errors import ServiceDefinitionError

F = TypeVar("F", bound=Callable[..., Any])

BATCH_ATTR = "__apipeline_batch__"


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """What :func:`batchable` records on a method: its batch companion and the batching bounds."""

    batch: Callable[..., Any] | str
    max_batch: int
    max_wait_s: float


def batchable(
    batch: Callable[..., Any] | str, *, max_batch: int = 8, max_wait_ms: float = 2.0
) -> Callable[[F], F]:
    """Declare a service method batchable with ``batch(calls: list[dict]) -> list`` as its companion."""
    if not (callable(batch) or (isinstance(batch, str) and batch)):
        raise ServiceDefinitionError(f"@batchable: batch must be a function or a method name, got {batch!r}")
    if max_batch < 1 or not 0.0 <= max_wait_ms <= 1000.0:
        raise ServiceDefinitionError(
            f"@batchable: max_batch must be >= 1 and max_wait_ms in [0, 1000], got {max_batch}, {max_wait_ms}"
        )
    spec = BatchSpec(batch, max_batch, max_wait_ms / 1000.0)

    def mark(fn: F) -> F:
        setattr(fn, BATCH_ATTR, spec)
        return fn

    return mark


def batch_spec(
    method: Callable[..., Any],
) -> tuple[BatchSpec, Callable[[list[dict[str, Any]]], list[Any]]] | None:
    """The spec of a batchable method and its companion resolved to a callable (bound for a class)."""
    spec = getattr(method, BATCH_ATTR, None)
    if not isinstance(spec, BatchSpec):
        return None
    owner = getattr(method, "__self__", None)
    fn: Any = spec.batch
    if isinstance(fn, str):
        fn = getattr(owner, fn, None) if owner is not None else None
    elif owner is not None and getattr(type(owner), getattr(fn, "__name__", ""), None) is fn:
        fn = fn.__get__(owner)  # type: ignore[union-attr]  # a function of the class body: bind it like the method itself
    if not callable(fn):
        raise ServiceDefinitionError(
            f"@batchable on {getattr(method, '__qualname__', method)!r}: batch companion {spec.batch!r} "
            f"is not a method of {type(owner).__name__ if owner is not None else 'its module'}"
        )
    return spec, fn


@dataclass(slots=True)
class _Pending:
    params: Mapping[str, Any]
    future: asyncio.Future[Any]


class MicroBatcher:
    """Collects concurrent calls into batches of at most ``max_batch``, waiting at most ``max_wait_s``.

    ``run_batch(list_of_params)`` must return one result per call, in order (it is awaited: a worker
    passes a function that runs the companion on its thread pool). A batch whose companion raises fails
    every call in it; a result list of the wrong length is reported as such to every caller.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Mapping[str, Any]]], Awaitable[list[Any]]],
        max_batch: int,
        max_wait_s: float,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._pending: list[_Pending] = []
        self._full = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.calls = 0
        self.largest = 0

    async def call(self, params: Mapping[str, Any]) -> Any:
        item = _Pending(params, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if self._collector is None:
            self._open_window()
        return await item.future

    def _open_window(self) -> None:
        task = asyncio.ensure_future(self._collect())
        self._collector = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect(self) -> None:
        # One collector at a time: it owns the window, then hands the batch to its own runner task so
        # the next window can open while this batch computes.
        try:
            if len(self._pending) < self.max_batch and self.max_wait_s > 0:
                try:
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
                except TimeoutError:
                    pass
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self._full.clear()
        finally:
            self._collector = None
        if self._pending:
            if len(self._pending) >= self.max_batch:
                self._full.set()
            self._open_window()
        await self._run(batch)

    async def aclose(self) -> None:
        """Cancel open windows and running batches; their callers see ``CancelledError``."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in self._pending:
            p.future.cancel()
        self._pending.clear()

    async def _run(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.calls += len(batch)
        self.largest = max(self.largest, len(batch))
        try:
            results = await self._run_batch([p.params for p in batch])
            if len(results) != len(batch):
                raise ServiceDefinitionError(
                    f"a batch companion returned {len(results)} results for {len(batch)} calls"
                )
        except asyncio.CancelledError:
            for p in batch:
                p.future.cancel()
            raise
        except Exception as exc:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for p, r in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)
