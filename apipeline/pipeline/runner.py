"""The runner: runs a task, turning SIGINT/SIGTERM into a clean cancel."""

from __future__ import annotations

import asyncio
import logging
import signal

from apipeline.pipeline.task import PipelineTask

logger = logging.getLogger("apipeline")


class PipelineRunner:
    """``await PipelineRunner().run(task)``; with ``handle_sigint`` Ctrl-C cancels the task cleanly."""

    def __init__(self, *, name: str | None = None, handle_sigint: bool = True) -> None:
        self.name = name or "PipelineRunner"
        self.handle_sigint = handle_sigint
        self._tasks: set[PipelineTask] = set()
        self.signalled = False

    async def run(self, task: PipelineTask) -> None:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if self.handle_sigint:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass  # not the main thread, or not supported on this platform
        self._tasks.add(task)
        try:
            await task.run()
        finally:
            self._tasks.discard(task)
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.warning("%s: %s received, cancelling %d task(s)", self.name, sig.name, len(self._tasks))
        self.signalled = True
        for task in list(self._tasks):
            task.request_cancel(f"signal {sig.name}")  # synchronous: no fire-and-forget task

    async def cancel(self) -> None:
        for task in list(self._tasks):
            await task.cancel()
