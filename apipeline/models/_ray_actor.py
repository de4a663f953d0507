"""What one Ray actor of a :class:`~apipeline.models.ray_backend.RayBackend` pool runs: a service host.

:class:`ServiceHost` is a plain class (Ray makes it an async actor; tests can drive it without Ray). It
rebuilds the service from its definition's ``source`` and brings it up in its constructor -- prepare,
load, self-test, as the service's protocol has them -- so a replica that Ray restarts after a crash comes
back ready by itself, with nobody having to replay the lifecycle. The registry still drives the
lifecycle through the backend: a hook that already succeeded in this process returns its recorded
result, a hook that failed (or never ran) runs now, so the registry's state machine and refusals are
the same as on the in-process backend.

Service methods run on the host's own bounded thread pool so the actor's event loop stays free for
control calls (``pid``, ``ping``, ``stats``) and for collecting batches; methods declared with
:func:`~apipeline.models.batching.batchable` go through a :class:`~apipeline.models.batching.MicroBatcher`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apipeline.errors import ServiceStateError
from apipeline.models._protocol import PROTOCOL_HOOKS, Hook
from apipeline.models.batching import MicroBatcher, batch_spec
from apipeline.models.definition import ServiceDefinition, collect_services

_MODULE_LOADED = time.time()  # when a worker imported this module (a restart's timeline)

#: The bring-up order; a protocol runs those of its hooks that are in here.
BRING_UP = (Hook.PREPARE, Hook.LOAD, Hook.TEST)


def machine_identity() -> dict[str, str]:
    """The kernel boot id and pid namespace of this process: equal in two processes iff a pid of one
    names the same process in the other (so the driver can watch a replica's process directly)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        pid_ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # not Linux: no direct watching
        return {"boot_id": "", "pid_ns": ""}
    return {"boot_id": boot, "pid_ns": pid_ns}


def _process_start() -> float:
    """Wall-clock time this process started (Linux; 0.0 elsewhere): where a restart's time goes."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return 0.0


class ServiceHost:
    """Hosts one service in a worker process: rebuilt from ``source``, brought up once, then called.

    Args:
        source: the definition's ``source`` pickled by the driver (``pickle``/cloudpickle bytes), so the
            worker can first extend ``sys.path`` and then import what it refers to.
        service: the service name to pick among those ``source`` defines.
        sys_path: directories to add to ``sys.path`` (the driver's), for module-path sources.
        threads: size of the pool that runs service code.
        bring_up: run prepare -> load -> self-test now (False for a host that only runs cleanup).
    """

    def __init__(
        self, source: bytes, service: str, sys_path: list[str], threads: int = 1, bring_up: bool = True
    ) -> None:
        #: wall-clock times of this host's start: its process, this constructor, the service brought up
        self.born: dict[str, float] = {
            "process": _process_start(),
            "module": _MODULE_LOADED,
            "host": time.time(),
        }
        for path in sys_path:
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
        obj = pickle.loads(source)
        found = {d.name: d for d in collect_services(obj)}
        if service not in found:
            raise ServiceStateError(f"source {obj!r} defines {sorted(found)}, not service {service!r}")
        self.definition: ServiceDefinition = found[service]
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix=f"apipeline-{service}")
        self._done: dict[Hook, Any] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._unbatched: set[str] = set()
        self._collected: dict[str, dict[str, int]] = {}  # batches collected by the caller (Serve)
        self.calls = 0
        self.in_flight = 0
        # Tells this process apart from the one Ray restarted it from (a pid alone may be reused).
        self.incarnation = f"{os.getpid()}:{time.monotonic_ns()}"
        if bring_up:
            for hook in BRING_UP:
                if hook not in PROTOCOL_HOOKS[self.definition.protocol]:
                    continue
                try:
                    result = self._run_hook(hook)
                except Exception:
                    break  # the registry's own call of this hook runs it again and reports the error
                if result is False:
                    break
        self.born["ready"] = time.time()

    def _run_hook(self, hook: Hook) -> Any:
        fn = self.definition.hook(hook)
        if fn is None:
            raise ServiceStateError(f"service {self.definition.name!r} has no {hook.value} hook")
        result = fn()
        if result is not False:
            self._done[hook] = result
        return result

    @property
    def ready(self) -> bool:
        wanted = [h for h in BRING_UP if h in PROTOCOL_HOOKS[self.definition.protocol]]
        return all(h in self._done for h in wanted)

    # ---- control ---------------------------------------------------------------------------------
    async def pid(self) -> int:
        return os.getpid()

    async def where(self) -> dict[str, Any]:
        """This worker's pid, and whether the driver can watch it (same kernel, same pid namespace)."""
        return {"pid": os.getpid(), **machine_identity()}

    async def ping(self) -> str:
        """This process's incarnation when the service is ready, ``""`` when its bring-up failed.

        Answered on the event loop (not the thread pool), so a busy replica still answers at once.
        """
        return self.incarnation if self.ready else ""

    async def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "ready": self.ready,
            "calls": self.calls,
            "in_flight": self.in_flight,
            "born": dict(self.born),
            "batches": {
                **{
                    m: {"batches": b.batches, "calls": b.calls, "largest": b.largest}
                    for m, b in self._batchers.items()
                },
                **{f"{m} (collected by Serve)": dict(c) for m, c in self._collected.items()},
            },
        }

    # ---- lifecycle and calls -----------------------------------------------------------------------
    async def lifecycle(self, hook_name: str) -> Any:
        """Run a lifecycle hook, or return its result if it already succeeded in this process."""
        hook = Hook(hook_name)
        if hook in BRING_UP and hook in self._done:
            return self._done[hook]
        result = await self._in_pool(functools.partial(self._run_hook, hook))
        if hook is Hook.UNLOAD:
            self._done.pop(Hook.LOAD, None)
            self._done.pop(Hook.TEST, None)
        elif hook is Hook.CLEANUP:
            self._done.clear()
        return result

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """Run service method ``method`` with ``params`` as keywords (batched if it is batchable)."""
        if not self.ready:
            raise ServiceStateError(
                f"service {self.definition.name!r} is not ready in worker {os.getpid()} "
                f"(its bring-up failed; done: {[h.value for h in self._done]})"
            )
        try:
            fn = self.definition.methods[method]
        except KeyError:
            raise ServiceStateError(f"service {self.definition.name!r} has no method {method!r}") from None
        self.in_flight += 1
        try:
            batcher = self._batcher(method, fn)
            if batcher is not None:
                return await batcher.call(params)
            return await self._in_pool(functools.partial(fn, **params) if params else fn)
        finally:
            self.in_flight -= 1
            self.calls += 1

    async def health(self) -> bool:
        """Run the service's self-test again now (a Serve health check): ``True`` when it passes.

        A service whose protocol has no self-test is healthy when its bring-up succeeded.
        """
        if not self.ready:
            return False
        if Hook.TEST not in PROTOCOL_HOOKS[self.definition.protocol]:
            return True
        return bool(await self._in_pool(functools.partial(self._run_hook, Hook.TEST)))

    async def batch(self, method: str, calls: list[Mapping[str, Any]]) -> list[Any]:
        """Run the batch companion of ``method`` over ``calls`` at once (batches collected by Serve)."""
        if not self.ready:
            raise ServiceStateError(f"service {self.definition.name!r} is not ready in worker {os.getpid()}")
        fn = self.definition.methods.get(method)
        found = batch_spec(fn) if fn is not None else None
        if found is None:
            raise ServiceStateError(f"service {self.definition.name!r} has no batchable method {method!r}")
        companion = found[1]
        self.in_flight += len(calls)
        try:
            out = list(await self._in_pool(functools.partial(companion, [dict(c) for c in calls])))
        finally:
            self.in_flight -= len(calls)
            self.calls += len(calls)
        seen = self._collected.setdefault(method, {"batches": 0, "calls": 0, "largest": 0})
        seen["batches"] += 1
        seen["calls"] += len(calls)
        seen["largest"] = max(seen["largest"], len(calls))
        if len(out) != len(calls):
            raise ServiceStateError(
                f"batch companion of {self.definition.name!r}.{method} returned {len(out)} results "
                f"for {len(calls)} calls"
            )
        return out

    def _batcher(self, method: str, fn: Any) -> MicroBatcher | None:
        batcher = self._batchers.get(method)
        if batcher is None:
            found = None if method in self._unbatched else batch_spec(fn)
            if found is None:
                self._unbatched.add(method)
                return None
            spec, companion = found

            async def run_batch(calls: list[Mapping[str, Any]]) -> list[Any]:
                return list(await self._in_pool(functools.partial(companion, [dict(c) for c in calls])))

            batcher = self._batchers[method] = MicroBatcher(run_batch, spec.max_batch, spec.max_wait_s)
        return batcher

    async def _in_pool(self, fn: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def close(self) -> None:
        """Stop batching and the thread pool (the actor is killed right after)."""
        for b in self._batchers.values():
            await b.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)
