"""What every chatbot service shares: its own engine thread, cancellable streams, metrics and errors.

Engines (pocketsphinx, espeak-ng, a language model) are blocking C or torch calls. Each service owns
one worker thread (:class:`EngineThread`) so its engine is never entered twice at once and the event
loop never blocks on it. :meth:`EngineThread.stream` turns a blocking generator into an async
iterator; closing the iterator (which an interruption does by cancelling the service's worker) sets a
``threading.Event`` the generator polls between items, so the engine stops within one item (one token,
one audio buffer) instead of at the end of the sentence, and nothing it produces after that is seen.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from apipeline.errors import ApipelineError
from apipeline.processors.async_frame_processor import AsyncFrameProcessor
from apipeline.processors.frame_processor import monotonic_ns

T = TypeVar("T")
logger = logging.getLogger("apipeline")

_DONE = object()


class ServiceError(ApipelineError):
    """A speech or language service failed: an engine error, a remote server's refusal or silence.

    ``fatal`` marks errors that no later request can recover from (the server is unreachable, the
    model file is missing); the service reports them as a fatal ``ErrorFrame``, which ends the run.
    """

    def __init__(self, message: str, *, fatal: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status = status


class EngineThread:
    """One daemon thread that runs an engine's blocking calls in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    def _get(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return self._executor

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` on the engine thread without waiting for it (errors are logged)."""
        future = self._get().submit(fn, *args)
        future.add_done_callback(_log_failure)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the engine thread and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._get(), fn, *args)

    def stream(self, make: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
        """Iterate ``make(stop)`` on the engine thread, yielding its items as they come.

        ``make`` receives the ``stop`` event and must return promptly once it is set. Leaving the
        ``async for`` early (break, exception, cancellation) sets it; the next stream waits until the
        engine thread is free, so two generations never overlap.
        """

        def run(emit: Callable[[T], None], stop: threading.Event) -> None:
            for item in make(stop):
                if stop.is_set():
                    return
                emit(item)

        return self.stream_push(run)

    async def stream_push(
        self, run: Callable[[Callable[[T], None], threading.Event], None]
    ) -> AsyncIterator[T]:
        """Like :meth:`stream` for engines that push: ``run(emit, stop)`` calls ``emit(item)`` for each
        item (from the engine thread, e.g. inside a C callback) and returns at the end."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: Any) -> None:
            if not stop.is_set() or item is _DONE:
                queue.put_nowait(item)

        def post(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(put, item)
            except RuntimeError:  # the loop closed while the engine was still stopping: nobody listens
                stop.set()

        def emit(item: T) -> None:
            if not stop.is_set():
                post(item)

        def produce() -> None:
            try:
                run(emit, stop)
            except BaseException as exc:  # handed to the consumer, which raises it
                post(_Failure(exc))
            finally:
                post(_DONE)

        future = loop.run_in_executor(self._get(), produce)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            stop.set()
            if not future.done():
                # Let the thread notice ``stop`` on its own; do not wait for it here, so an
                # interruption returns at once. The next call queues behind it on the same thread.
                future.add_done_callback(_ignore_result)

    def close(self) -> None:
        """Let the thread end once its current call returns (a later call starts a new one)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("engine call failed: %s", future.exception())


def _ignore_result(future: Any) -> None:
    if not future.cancelled():
        future.exception()


class AIService(AsyncFrameProcessor):
    """Base of the speech and language services: an asynchronous processor with TTFB bookkeeping.

    ``ttfb_ns`` is the last time to first byte measured by the service (what it means is the
    subclass's: first token, first audio, final transcript after the end of speech); it is also
    written into the processor's metrics (``StartFrame.enable_metrics``), so ``MetricsFrame`` records
    carry it.
    """

    def __init__(self, *, max_queue_size: int = 1024, name: str | None = None) -> None:
        super().__init__(max_queue_size=max_queue_size, name=name)
        self.ttfb_ns: int | None = None
        self._ttfb_start: int | None = None

    def start_ttfb(self) -> None:
        self._ttfb_start = monotonic_ns()

    def stop_ttfb(self) -> None:
        """Record the time since :meth:`start_ttfb` (once per start)."""
        if self._ttfb_start is None:
            return
        self.ttfb_ns = monotonic_ns() - self._ttfb_start
        self._ttfb_start = None
        if self.metrics is not None:
            self.metrics.ttfb_ns = self.ttfb_ns

    async def push_service_error(self, exc: BaseException) -> None:
        """Report ``exc`` upstream as an ``ErrorFrame`` (fatal for a fatal :class:`ServiceError`)."""
        fatal = isinstance(exc, ServiceError) and exc.fatal
        message = str(exc) if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        await self.push_error(f"{self.name}: {message}", fatal=fatal)
