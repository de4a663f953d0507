"""A model backend on Ray core: a pool of async actors per service, shared by every stream.

Each service gets ``replicas`` Ray actors (:class:`~apipeline.models._ray_actor.ServiceHost`), each
rebuilding the service from its definition's ``source`` and bringing it up once (prepare -> load ->
self-test). Calls go to the least busy healthy replica. Real-time policy, because a late chunk is worth
less than none:

* **no retries** (``max_task_retries=0``) but **restarts** (``max_restarts=-1``): a restarted replica
  brings itself up again and the backend routes to it as soon as it answers;
* **bounded**: at most ``max_concurrency`` calls in flight per replica; when every healthy replica is
  full the call is refused at once with :class:`~apipeline.errors.Overloaded`, never queued;
* **failures are prompt**: a replica that dies (or misses a heartbeat) is marked down and its calls in
  flight fail at once with :class:`~apipeline.errors.RemoteError`; so do calls while every replica is
  down; a call is never awaited for longer than ``call_timeout``.

Exceptions raised by the service itself come back unchanged (as from the in-process backend). Per-stream
order, per-stream in-flight caps and degradation are the processor's job
(:class:`~apipeline.processors.models.remote.RealtimeModelProcessor`), which reads
``max_in_flight_per_stream`` from here. ``ray`` is imported when a backend starts, not before.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apipeline.errors import ModelError, Overloaded, RemoteError, ResourceError, ServiceStateError
from apipeline.models._protocol import Hook, ProtocolKind
from apipeline.models._ray_actor import ServiceHost
from apipeline.models.definition import ServiceDefinition

_CONTROL_SLOTS = 8  # actor concurrency kept free for ping/pid/stats beside the service calls


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    index: int
    healthy: bool
    in_flight: int
    calls: int
    failures: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of one service's pool; ``recoveries`` are seconds from marked down to answering again."""

    service: str
    replicas: tuple[ReplicaStats, ...]
    overloaded: int
    remote_errors: int
    restarts: int
    recoveries: tuple[float, ...]


class _Replica:
    def __init__(self, index: int, handle: Any, incarnation: str) -> None:
        self.index, self.handle, self.incarnation = index, handle, incarnation
        self.in_flight = self.calls = self.failures = 0
        self.healthy = True
        self.down: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.down_since = 0.0
        self.reviver: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Pool:
    definition: ServiceDefinition
    replicas: list[_Replica]
    all_healthy: asyncio.Event
    monitor: asyncio.Task[None] | None = None
    overloaded: int = 0
    remote_errors: int = 0
    restarts: int = 0
    turn: int = 0

    def __post_init__(self) -> None:
        self.recoveries: collections.deque[float] = collections.deque(maxlen=64)


def _parse_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``ray://host:port``; ValueError for anything else."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host or " " in host:
        raise ValueError(
            f"Ray address {address!r} is not one: expected 'local', 'auto', 'host:port' or 'ray://host:port'"
        )
    return host.strip("[]"), int(port)


def _enable_cluster_token() -> None:
    """Use the cluster's auth token for an explicit address too.

    Ray 2.60 turns token authentication on by itself only for ``auto``: an explicit ``host:port`` with
    ``RAY_AUTH_MODE`` unset connects without the token and is refused (``InvalidAuthToken``) over and
    over. When a token is at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``)
    and the mode is unset, do what ``auto`` does.
    """
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # pragma: no cover - another Ray version: leave it to Ray
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _reachable(address: str, timeout: float) -> None:
    """Fail fast (``RemoteError``) when ``host:port`` of a cluster address does not accept TCP."""
    try:
        host, port = _parse_address(address)
    except ValueError as exc:
        raise RemoteError(str(exc)) from None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise RemoteError(
            f"cannot reach the Ray cluster at {address!r} within {timeout:g} s ({exc}); is "
            f"`ray start --head` running there and the port open?"
        ) from exc


def _as_resources(request: Mapping[str, Any]) -> dict[str, float]:
    """Actor options as Ray's resource names (``CPU``, ``GPU``, ``memory``), zero amounts left out."""
    names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    return {names[k]: float(v) for k, v in request.items() if k in names and v}


def _describe(resources: Mapping[str, float]) -> str:
    parts = []
    for k, v in resources.items():
        parts.append(f"{v / 2**20:.0f} MiB memory" if k == "memory" else f"{v:g} {k}")
    return ", ".join(parts) or "nothing"


class RayBackend:
    """Hosts services on Ray actor pools (see the module docstring for the real-time policy).

    Args:
        address: ``None`` starts a local Ray instance (or reuses the one this process already joined);
            ``"auto"`` joins the cluster started on this machine with ``ray start``; ``"host:port"`` or
            ``"ray://host:port"`` joins a remote one.
        replicas: actors per service.
        num_cpus, num_gpus, memory: what each actor reserves in the cluster (cores, GPUs, bytes); by
            default what the service declares in its info (``resources.cpu``, one GPU per declared
            GPU id, ``resources.memory``), 1 cpu when it declares none. Checked against the cluster's
            nodes before any actor is created (:class:`~apipeline.errors.ResourceError`).
        max_concurrency: calls in flight per replica (running or waiting inside it).
        max_in_flight_per_stream: the cap processors apply per stream (calls outstanding at once).
        threads: threads running service code in each actor (default: its cpu cores, at least 1).
        call_timeout: the longest a call is awaited (seconds); then it fails with ``RemoteError``.
        heartbeat: seconds between health pings of each replica (``None``: none; failures are then seen
            only when calls fail or time out).
        start_timeout: bound on connecting and on bringing a pool up.
        connect_timeout: bound on the TCP check of a cluster address.
        init_options: extra ``ray.init`` keywords for a local instance (``num_cpus``,
            ``object_store_memory``...).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        replicas: int = 1,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        memory: int | None = None,
        max_concurrency: int = 4,
        max_in_flight_per_stream: int = 2,
        threads: int | None = None,
        call_timeout: float = 1.0,
        heartbeat: float | None = 0.1,
        start_timeout: float = 120.0,
        connect_timeout: float = 5.0,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if replicas < 1 or max_concurrency < 1 or max_in_flight_per_stream < 1:
            raise ValueError(
                f"replicas, max_concurrency and max_in_flight_per_stream must be >= 1, got "
                f"{replicas}, {max_concurrency}, {max_in_flight_per_stream}"
            )
        if call_timeout <= 0 or (heartbeat is not None and heartbeat <= 0):
            raise ValueError(f"call_timeout and heartbeat must be > 0, got {call_timeout}, {heartbeat}")
        if num_cpus is not None and not num_cpus > 0:
            raise ValueError(f"num_cpus (cpu cores per replica) must be > 0, got {num_cpus}")
        if num_gpus is not None and not num_gpus >= 0:
            raise ValueError(f"num_gpus (GPUs per replica) must be >= 0, got {num_gpus}")
        if memory is not None and not memory > 0:
            raise ValueError(f"memory (bytes per replica) must be > 0, got {memory}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if start_timeout <= 0 or connect_timeout <= 0:
            raise ValueError(
                f"start_timeout and connect_timeout must be > 0, got {start_timeout}, {connect_timeout}"
            )
        if address is not None and address not in ("auto", "local"):
            _parse_address(address)  # raises ValueError for what is no address
        self.address = None if address == "local" else address
        self.replicas, self.num_cpus, self.num_gpus, self.memory = replicas, num_cpus, num_gpus, memory
        self.max_concurrency = max_concurrency
        self.max_in_flight_per_stream = max_in_flight_per_stream
        self.threads = threads
        self.call_timeout, self.heartbeat = call_timeout, heartbeat
        self.start_timeout, self.connect_timeout = start_timeout, connect_timeout
        self.init_options = dict(init_options or {})
        self._definitions: dict[str, ServiceDefinition] = {}
        self._pools: dict[str, _Pool] = {}
        self._ray: Any = None
        self._remote_cls: Any = None
        self._owns_ray = False
        self._closed = False
        self._stop = threading.Event()
        self._stopped: asyncio.Future[Any] | None = None

    @property
    def capacity(self) -> int:
        """Calls one service can have in flight: give the registry this as ``max_concurrency``."""
        return self.replicas * self.max_concurrency

    # ---- connecting ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to (or start) Ray; bounded by ``start_timeout``. Called by the first ``attach``."""
        if self._ray is not None:
            return
        if self._closed:
            raise ServiceStateError("the Ray backend is closed")
        if self.address not in (None, "auto"):
            await asyncio.to_thread(_reachable, str(self.address), self.connect_timeout)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        stopped: asyncio.Future[Any] = loop.create_future()
        self._stopped = stopped

        def deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def own_ray() -> None:
            # Ray's local processes die with the *thread* that started them (parent-death signal), so
            # this thread lives as long as the backend: connect, park until aclose, disconnect.
            try:
                ray = self._connect()
            except BaseException as exc:
                loop.call_soon_threadsafe(deliver, done, None, exc)
                return
            loop.call_soon_threadsafe(deliver, done, ray, None)
            self._stop.wait()
            error: BaseException | None = None
            if self._owns_ray:
                try:
                    ray.shutdown()
                except BaseException as exc:
                    error = exc
            if not loop.is_closed():
                loop.call_soon_threadsafe(deliver, stopped, None, error)

        # A daemon thread: a hung ray.init must not keep the interpreter from exiting.
        threading.Thread(target=own_ray, name="apipeline-ray", daemon=True).start()
        try:
            self._ray = await asyncio.wait_for(done, self.start_timeout)
        except TimeoutError:
            self._stop.set()
            raise RemoteError(
                f"Ray at {self.address or 'local'} did not start within {self.start_timeout:g} s"
            ) from None
        self._remote_cls = self._ray.remote(ServiceHost)

    def _connect(self) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if ray.is_initialized():
            return ray
        try:
            if self.address is None:
                options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
                ray.init(**{**options, **self.init_options})
            else:
                if self.address != "auto":
                    _enable_cluster_token()
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise RemoteError(f"cannot join the Ray cluster at {self.address!r}: {exc}") from exc
        self._owns_ray = True
        return ray

    # ---- ModelBackend -------------------------------------------------------------------------------
    #: The registry leaves the resource check to this backend (against the cluster, not this machine).
    checks_resources = True

    async def attach(self, definition: ServiceDefinition) -> None:
        await self.start()
        self._definitions[definition.name] = definition
        if definition.protocol is ProtocolKind.MINIMAL and definition.name not in self._pools:
            await self._create_pool(definition)  # no lifecycle hook will ever ask for the replicas

    async def invoke(
        self, service: str, hook: Hook, method: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        if self._closed:
            raise ServiceStateError(f"the Ray backend is closed; cannot call service {service!r}")
        if hook is Hook.SERVICE:
            pool = self._pools.get(service)
            if pool is None:
                raise ServiceStateError(f"service {service!r} has no replicas (not loaded on this backend)")
            return await self._call(pool, method or "", params or {})
        definition = self._definitions.get(service)
        if definition is None:
            raise ServiceStateError(f"service {service!r} is not attached to this backend")
        if hook is Hook.INFO:
            return definition.info.to_dict()
        if hook is Hook.CLEANUP and service not in self._pools:
            host = self._new_actor(definition, bring_up=False)
            try:
                return await self._await(host.lifecycle.remote(hook.value), self.start_timeout)
            finally:
                self._ray.kill(host, no_restart=True)
        pool = self._pools.get(service) or await self._create_pool(definition)
        results = await asyncio.gather(
            *(self._await(r.handle.lifecycle.remote(hook.value), self.start_timeout) for r in pool.replicas)
        )
        if hook in (Hook.UNLOAD, Hook.CLEANUP):
            await self._drop_pool(service)
        return False if any(r is False for r in results) else results[0]

    async def detach(self, service: str) -> None:
        self._definitions.pop(service, None)
        await self._drop_pool(service)

    async def aclose(self) -> None:
        self._closed = True
        for service in list(self._pools):
            await self._drop_pool(service)
        if self._ray is not None and self._stopped is not None:
            self._stop.set()
            await asyncio.wait_for(self._stopped, self.start_timeout)
        self._ray = None

    # ---- pools ------------------------------------------------------------------------------------
    def _new_actor(self, definition: ServiceDefinition, *, bring_up: bool = True) -> Any:
        from ray import cloudpickle

        request = self.request(definition)
        options: dict[str, Any] = {
            "max_restarts": -1,
            "max_task_retries": 0,
            "max_concurrency": self.max_concurrency + _CONTROL_SLOTS,
            **request,
        }
        path = [p for p in sys.path if p and os.path.isdir(p)]
        source = cloudpickle.dumps(definition.source)
        threads = self.threads if self.threads is not None else max(1, int(request["num_cpus"]))
        return self._remote_cls.options(**options).remote(source, definition.name, path, threads, bring_up)

    def request(self, definition: ServiceDefinition) -> dict[str, Any]:
        """What one replica of ``definition`` reserves: Ray's ``num_cpus``/``num_gpus``/``memory``."""
        needs = definition.info.resources
        request: dict[str, Any] = {
            "num_cpus": self.num_cpus if self.num_cpus is not None else (needs.cpu or 1),
            "num_gpus": self.num_gpus if self.num_gpus is not None else float(len(needs.gpu)),
        }
        memory = self.memory if self.memory is not None else needs.memory
        if memory:
            request["memory"] = int(memory)
        return request

    def _check_cluster(self, definition: ServiceDefinition) -> None:
        """ResourceError when no alive node of the cluster could host one replica (blocking call)."""
        want = _as_resources(self.request(definition))
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        if any(all(node.get(k, 0) >= v for k, v in want.items()) for node in nodes):
            return
        largest: dict[str, float] = max(nodes, key=lambda n: tuple(n.get(k, 0) for k in want), default={})
        has = _describe({k: largest.get(k, 0) for k in want})
        raise ResourceError(
            f"service {definition.name!r} needs {_describe(want)} per replica; no node of the Ray cluster "
            f"at {self.address or 'local'} has that (largest: {has}; {len(nodes)} node(s))"
        )

    async def _create_pool(self, definition: ServiceDefinition) -> _Pool:
        await asyncio.to_thread(self._check_cluster, definition)
        handles = [self._new_actor(definition) for _ in range(self.replicas)]
        try:
            # The constructor brings the service up; its first answer means it is done.
            pings = [asyncio.ensure_future(self._await(h.ping.remote(), self.start_timeout)) for h in handles]
            await asyncio.wait(pings)
            failed = [e for e in (p.exception() for p in pings) if e is not None]
            if failed:
                late = len([e for e in failed if isinstance(e.__cause__, TimeoutError)])
                if late:
                    free = await asyncio.to_thread(self._ray.available_resources)
                    want = _as_resources(self.request(definition))
                    raise ResourceError(
                        f"{late} of {len(handles)} replicas of {definition.name!r} not placed within "
                        f"{self.start_timeout:g} s: each needs {_describe(want)}, the Ray cluster has "
                        f"{_describe({k: free.get(k, 0) for k in want})} free"
                    )
                raise failed[0]
            answers = [p.result() for p in pings]
        except BaseException:
            for h in handles:
                self._ray.kill(h, no_restart=True)
            raise
        replicas = [_Replica(i, h, a) for i, (h, a) in enumerate(zip(handles, answers, strict=True))]
        pool = _Pool(definition, replicas, asyncio.Event())
        pool.all_healthy.set()
        if self.heartbeat is not None:
            pool.monitor = asyncio.ensure_future(self._monitor(pool))
        self._pools[definition.name] = pool
        return pool

    async def _drop_pool(self, service: str) -> None:
        pool = self._pools.pop(service, None)
        if pool is None:
            return
        tasks = [t for t in [pool.monitor, *(r.reviver for r in pool.replicas)] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for r in pool.replicas:
            self._ray.kill(r.handle, no_restart=True)

    async def _await(self, ref: Any, timeout: float) -> Any:
        """Await an actor call; the service's own exception is re-raised unchanged."""
        try:
            return await asyncio.wait_for(ref, timeout)
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise ModelError(str(exc)) from None
        except (self._ray.exceptions.RayActorError, TimeoutError) as exc:
            raise RemoteError(f"{type(exc).__name__}: {exc}") from exc

    # ---- calls -------------------------------------------------------------------------------------
    def _pick(self, pool: _Pool) -> _Replica:
        best: _Replica | None = None
        n = len(pool.replicas)
        pool.turn = (pool.turn + 1) % n  # ties rotate, so equal replicas share the load
        for k in range(n):
            r = pool.replicas[(pool.turn + k) % n]
            if (
                r.healthy
                and r.in_flight < self.max_concurrency
                and (best is None or r.in_flight < best.in_flight)
            ):
                best = r
        if best is not None:
            return best
        name = pool.definition.name
        if not any(r.healthy for r in pool.replicas):
            pool.remote_errors += 1
            since = time.monotonic() - min(r.down_since for r in pool.replicas)
            raise RemoteError(f"service {name!r}: all {n} replica(s) are down (restarting for {since:.2f} s)")
        pool.overloaded += 1
        raise Overloaded(
            f"service {name!r}: every healthy replica has {self.max_concurrency} calls in flight "
            f"(replicas {n}, max_concurrency {self.max_concurrency}); call refused"
        )

    async def _call(self, pool: _Pool, method: str, params: Mapping[str, Any]) -> Any:
        r = self._pick(pool)
        r.in_flight += 1
        ref = r.handle.call.remote(method, params)
        fut = asyncio.wrap_future(ref.future())
        down = r.down
        try:
            done, _ = await asyncio.wait(
                (fut, down), timeout=self.call_timeout, return_when="FIRST_COMPLETED"
            )
            if fut in done:
                try:
                    return fut.result()
                except self._ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise ModelError(str(exc)) from None
                except self._ray.exceptions.RayActorError as exc:
                    self._mark_down(pool, r, f"{type(exc).__name__}")
                    raise RemoteError(
                        f"service {pool.definition.name!r} replica {r.index} failed during {method!r}: "
                        f"{type(exc).__name__}"
                    ) from exc
            if down.done():
                reason = down.result()  # the monitor saw it die or restart: fail now, not at timeout
            else:
                reason = f"no answer within {self.call_timeout:g} s"
                self._mark_down(pool, r, reason)
            raise RemoteError(f"service {pool.definition.name!r} replica {r.index}, {method!r}: {reason}")
        except BaseException as exc:
            if not fut.done():
                fut.cancel()
                self._cancel(ref)
            if isinstance(exc, RemoteError):
                pool.remote_errors += 1
                r.failures += 1
            raise
        finally:
            r.in_flight -= 1
            r.calls += 1

    def _cancel(self, ref: Any) -> None:
        try:
            self._ray.cancel(ref)
        except Exception:  # the actor may be gone already; nothing is left to cancel then
            pass

    # ---- health ------------------------------------------------------------------------------------
    def _mark_down(self, pool: _Pool, r: _Replica, reason: str) -> None:
        if not r.healthy:
            return
        r.healthy = False
        r.down_since = time.monotonic()
        pool.all_healthy.clear()
        if not r.down.done():
            r.down.set_result(reason)  # fails every call in flight on this replica now
        r.reviver = asyncio.ensure_future(self._revive(pool, r))

    async def _revive(self, pool: _Pool, r: _Replica) -> None:
        # A ping sent to a restarting actor waits in Ray until the new process is up: one long ping
        # sees the restart as soon as it happens; errors (the old process's death noticed late) retry.
        while True:
            try:
                incarnation = await self._await(r.handle.ping.remote(), self.start_timeout)
            except (RemoteError, ModelError):
                incarnation = ""
            if incarnation:
                break
            await asyncio.sleep(0.05)
        pool.recoveries.append(time.monotonic() - r.down_since)
        if incarnation != r.incarnation:
            pool.restarts += 1
        r.incarnation = incarnation
        r.down = asyncio.get_running_loop().create_future()
        r.healthy = True
        r.reviver = None
        if all(x.healthy for x in pool.replicas):
            pool.all_healthy.set()

    async def _monitor(self, pool: _Pool) -> None:
        assert self.heartbeat is not None
        while True:
            await asyncio.sleep(self.heartbeat)
            healthy = [r for r in pool.replicas if r.healthy]
            answers = await asyncio.gather(
                *(self._await(r.handle.ping.remote(), self.heartbeat) for r in healthy),
                return_exceptions=True,
            )
            for r, answer in zip(healthy, answers, strict=True):
                if isinstance(answer, BaseException) or not answer:
                    self._mark_down(pool, r, f"missed a heartbeat ({answer!r})")
                elif answer != r.incarnation and r.healthy:
                    # Ray restarted the worker between two heartbeats: calls sent to the old process
                    # would only fail when Ray notices (~1.5 s); fail them now, keep routing here.
                    pool.restarts += 1
                    r.incarnation = answer
                    old, r.down = r.down, asyncio.get_running_loop().create_future()
                    old.set_result("its worker process died and was restarted; the call was lost")

    # ---- inspection ----------------------------------------------------------------------------------
    def stats(self, service: str) -> PoolStats:
        pool = self._pools.get(service)
        if pool is None:
            raise ServiceStateError(f"service {service!r} has no replicas on this backend")
        reps = tuple(
            ReplicaStats(r.index, r.healthy, r.in_flight, r.calls, r.failures) for r in pool.replicas
        )
        return PoolStats(
            service, reps, pool.overloaded, pool.remote_errors, pool.restarts, tuple(pool.recoveries)
        )

    async def wait_healthy(self, service: str, timeout: float) -> None:
        """Wait until every replica of ``service`` answers again (``RemoteError`` after ``timeout``)."""
        pool = self._pools.get(service)
        if pool is None:
            raise ServiceStateError(f"service {service!r} has no replicas on this backend")
        try:
            await asyncio.wait_for(pool.all_healthy.wait(), timeout)
        except TimeoutError:
            raise RemoteError(f"service {service!r}: replicas still down after {timeout:g} s") from None

    async def replica_pids(self, service: str) -> list[int]:
        """The worker process id of each replica (to watch or, in fault tests, to kill it)."""
        pool = self._pools.get(service)
        if pool is None:
            raise ServiceStateError(f"service {service!r} has no replicas on this backend")
        return list(await asyncio.gather(*(self._await(r.handle.pid.remote(), 10.0) for r in pool.replicas)))

    async def replica_stats(self, service: str) -> list[dict[str, Any]]:
        """What each replica reports about itself (calls, batches) -- asked over Ray."""
        pool = self._pools.get(service)
        if pool is None:
            raise ServiceStateError(f"service {service!r} has no replicas on this backend")
        return list(
            await asyncio.gather(*(self._await(r.handle.stats.remote(), 10.0) for r in pool.replicas))
        )
