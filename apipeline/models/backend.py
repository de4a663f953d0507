"""Where service code runs: the :class:`ModelBackend` seam and the in-process :class:`LocalBackend`.

The registry owns the lifecycle (state machine, resources, concurrency limits) and asks a backend only to
*host* a service and *invoke* one of its hooks or methods by name. Addressing by names rather than by
callables is what lets a backend in other processes (a Ray actor pool) rebuild the service from
``definition.source`` and run the same hooks there; processors never see the difference.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from apipeline.errors import ParameterError, ServiceStateError
from apipeline.models._protocol import Hook
from apipeline.models.definition import ServiceDefinition


@runtime_checkable
class ModelBackend(Protocol):
    """Hosts service definitions and runs their hooks and methods off the event loop."""

    async def attach(self, definition: ServiceDefinition) -> None:
        """Make ``definition`` invocable (a remote backend creates its workers here)."""
        ...

    async def invoke(
        self, service: str, hook: Hook, method: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Run ``hook`` (for ``Hook.SERVICE``: ``method`` with ``params`` as keywords); return its result.

        Must not block the event loop; exceptions raised by the service propagate unchanged.
        """
        ...

    async def detach(self, service: str) -> None:
        """Forget ``service`` (a remote backend stops its workers)."""
        ...

    async def aclose(self) -> None:
        """Release every worker; later calls fail."""
        ...


class LocalBackend:
    """Runs service code in this process on a bounded thread pool.

    Threads, not processes: onnxruntime and torch release the GIL inside inference, so threads overlap
    the heavy parts while sharing loaded models without copies.

    Args:
        max_workers: pool size (default: usable cpu cores, at least 2 so a slow call cannot starve another).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
        if max_workers < 1:
            raise ParameterError(f"LocalBackend.max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._services: dict[str, ServiceDefinition] = {}
        self._closed = False

    async def attach(self, definition: ServiceDefinition) -> None:
        if self._closed:
            raise ServiceStateError(f"backend is closed; cannot attach service {definition.name!r}")
        self._services[definition.name] = definition

    async def invoke(
        self, service: str, hook: Hook, method: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        if self._closed:
            raise ServiceStateError(f"backend is closed; cannot call service {service!r}")
        try:
            definition = self._services[service]
        except KeyError:
            raise ServiceStateError(f"service {service!r} is not attached to this backend") from None
        if hook is Hook.SERVICE:
            fn = definition.methods[method] if method is not None else None
        else:
            fn = definition.hook(hook)
        if fn is None:
            raise ServiceStateError(f"service {service!r} has no {method or hook.value}")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="apipeline-model")
        call = functools.partial(fn, **params) if params else fn
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def detach(self, service: str) -> None:
        self._services.pop(service, None)

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            # Waiting for running calls happens in a thread so the loop keeps serving other tasks.
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(pool.shutdown, wait=True)
            )
