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
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apipeline.errors import (
    BackendLost,
    ModelError,
    Overloaded,
    RemoteError,
    ResourceError,
    ServiceStateError,
)
from apipeline.models._protocol import Hook, ProtocolKind
from apipeline.models._ray_actor import ServiceHost, machine_identity
from apipeline.models.definition import ServiceDefinition

_CONTROL_SLOTS = 8  # actor concurrency kept free for ping/pid/stats beside the service calls
_REVIVE_PING_S = 0.1  # a restarting replica is pinged this often (pings overlap: see _revive)
_REVIVE_PINGS = 32  # at most this many outstanding at once


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    index: int
    healthy: bool
    in_flight: int
    calls: int
    failures: int
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of one service's pool; ``recoveries`` are seconds from marked down to answering again."""

    service: str
    replicas: tuple[ReplicaStats, ...]
    overloaded: int
    remote_errors: int
    restarts: int
    recoveries: tuple[float, ...]
    rerouted: int = 0


class _Replica:
    def __init__(self, index: int, handle: Any, incarnation: str) -> None:
        self.index, self.handle, self.incarnation = index, handle, incarnation
        self.in_flight = self.calls = self.failures = 0
        self.healthy = True
        self.down: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.down_since = 0.0
        self.reviver: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.watch_fd: int | None = None
        self.pid: int | None = None


class _ReplicaDied(RemoteError):
    """A call's replica died under it (the call may be sent to another one)."""


@dataclass(eq=False)
class _Pool:
    definition: ServiceDefinition
    replicas: list[_Replica]
    all_healthy: asyncio.Event
    monitor: asyncio.Task[None] | None = None
    overloaded: int = 0
    remote_errors: int = 0
    restarts: int = 0
    rerouted: int = 0
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


def _gcs_address(ray: Any) -> tuple[str, int] | None:
    """Host and port of the cluster's GCS (its head), where this driver can see it."""
    try:
        address = ray._private.worker._global_node.gcs_address
        host, _, port = str(address).rpartition(":")
        return host, int(port)
    except Exception:  # a Ray Client connection or another Ray version: no head check
        return None


def _same_code_env() -> dict[str, Any]:
    """A ``runtime_env`` under which a worker imports this very ``apipeline`` (see ``runtime_env``)."""
    import apipeline

    paths = [os.path.dirname(os.path.dirname(os.path.abspath(apipeline.__file__)))]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in paths]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


def _forget_lost_cluster(ray: Any) -> None:
    """After the head died, ``ray.shutdown`` blocks on it (the core worker's driver shutdown), and Ray's
    own exit hook would block the interpreter's exit the same way: drop that hook. The processes this
    backend started are ended by it (:func:`_end_processes`)."""
    import atexit

    try:
        atexit.unregister(ray._private.worker.shutdown)
    except Exception:  # pragma: no cover - another Ray version
        pass
    # The core worker's native teardown at interpreter exit then crashes (SIGSEGV, seconds later) for
    # want of its head; a process that lost its cluster ends at once, with status 1, after flushing.
    atexit.register(_exit_now)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(1)


def _ray_messages_to_stderr() -> None:
    """Ray's driver prints cluster messages (``(raylet) A worker died...``) on *stdout*, where they break
    a command's ``--json``; send them to stderr instead (Ray looks the printer up at each message)."""
    try:
        import ray._private.worker as worker
    except ImportError:  # pragma: no cover
        return
    original = worker.print_to_stdstream
    if getattr(original, "_apipeline_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr._apipeline_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _descendants(root: int) -> dict[int, str]:
    """``pid -> start time`` of every live descendant of ``root`` (from /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        starts[int(entry)] = fields[19]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = starts[pid]
                frontier.append(pid)
    return found


def _end_processes(pids: Mapping[int, str], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, the processes of ``pids`` still alive (same start time:
    a pid reused by another process is left alone)."""

    def alive() -> list[int]:
        out = []
        for pid, start in pids.items():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[19] == start and fields[0] != "Z":
                out.append(pid)
        return out

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)


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
        num_cpus: cores each actor reserves in the cluster; by default the service's declared
            ``resources.cpu``, 1 when it declares none. Like ``num_gpus`` and ``memory``, checked against
            the cluster's nodes before any actor is created (:class:`~apipeline.errors.ResourceError`).
        num_gpus: GPUs each actor reserves; by default one per GPU id the service declares.
        memory: bytes each actor reserves; by default the service's declared ``resources.memory``.
        max_concurrency: calls in flight per replica (running or waiting inside it).
        max_in_flight_per_stream: the cap processors apply per stream (calls outstanding at once).
        threads: threads running service code in each actor (default: its cpu cores, at least 1).
        call_timeout: the longest a call is awaited (seconds); then it fails with ``RemoteError``.
        heartbeat: seconds between health pings of each replica (``None``: none; failures are then seen
            only when calls fail or time out). A replica on this machine is also watched directly (its
            worker's pidfd in the event loop), so its death is seen at once.
        heartbeat_timeout: a replica whose ping is unanswered this long is marked down (a busy machine
            delays pings: shorter bounds mark healthy replicas down).
        start_timeout: bound on connecting and on bringing a pool up.
        connect_timeout: bound on the TCP check of a cluster address.
        runtime_env: the replicas' Ray ``runtime_env`` (e.g. ``{"py_modules": [...]}`` to ship code to
            machines that lack it). Default, for a cluster started elsewhere (``ray start``):
            ``PYTHONPATH`` set to the directory this ``apipeline`` was imported from (then the driver's
            own ``PYTHONPATH``), so its workers import the same code as the driver, not whatever their
            environment has.
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
        max_concurrency: int = 16,
        max_in_flight_per_stream: int = 2,
        threads: int | None = None,
        call_timeout: float = 1.0,
        heartbeat: float | None = 0.1,
        heartbeat_timeout: float = 1.0,
        start_timeout: float = 120.0,
        connect_timeout: float = 5.0,
        init_options: Mapping[str, Any] | None = None,
        runtime_env: Mapping[str, Any] | None = None,
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
        if heartbeat_timeout <= 0:
            raise ValueError(f"heartbeat_timeout must be > 0, got {heartbeat_timeout}")
        self.call_timeout, self.heartbeat, self.heartbeat_timeout = call_timeout, heartbeat, heartbeat_timeout
        self.start_timeout, self.connect_timeout = start_timeout, connect_timeout
        self.init_options = dict(init_options or {})
        self.runtime_env = dict(runtime_env) if runtime_env is not None else None
        self._definitions: dict[str, ServiceDefinition] = {}
        self._pools: dict[str, _Pool] = {}
        self._ray: Any = None
        self._remote_cls: Any = None
        self._owns_ray = False
        self._closed = False
        self._stop = threading.Event()
        self._stopped: asyncio.Future[Any] | None = None
        self._lost: BackendLost | None = None
        self._owns_local = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._gcs: tuple[str, int] | None = None
        self._started_pids: dict[int, str] = {}
        self._identity = machine_identity()

    @property
    def capacity(self) -> int:
        """Calls one service can have in flight (beyond that: ``Overloaded``)."""
        return self.replicas * self.max_concurrency

    #: A call cancelled by its caller (a missed deadline) is cancelled in the replica too and frees its
    #: slot at once, so the registry need not keep the slot until the worker finishes.
    cancellable = True

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
            if self._lost is not None:
                _forget_lost_cluster(ray)
            elif self._owns_ray:
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
        self._gcs = _gcs_address(self._ray)
        if self._gcs is not None and self.heartbeat is not None:
            self._spawn(self._watch_head())
        if self._owns_ray and self.address is None:
            self._started_pids = _descendants(os.getpid())  # the Ray processes this start made
            self._owns_local = True

    def _connect(self) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        _ray_messages_to_stderr()
        if ray.is_initialized():
            return ray
        try:
            if self.address is None:
                options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
                ray.init(**{**options, **self.init_options})
            else:
                if self.address != "auto":
                    _enable_cluster_token()
                extra: dict[str, Any] = {}
                if self.address.startswith("ray://"):
                    # Ray Client: the cluster-side server that stands in for this driver unpickles the
                    # actor class, so it needs this code too (a job-wide runtime_env reaches it).
                    extra["runtime_env"] = (
                        self.runtime_env if self.runtime_env is not None else _same_code_env()
                    )
                ray.init(address=self.address, log_to_driver=False, configure_logging=False, **extra)
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
        if self._lost is not None:
            if hook in (Hook.UNLOAD, Hook.CLEANUP):
                await self._drop_pool(service)
                return True  # the cluster took the models with it: nothing is left to release
            raise self._lost
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
        targets = pool.replicas
        if hook in (Hook.UNLOAD, Hook.CLEANUP):
            # The pool's actors are killed right after: one that is restarting has nothing to release.
            targets = [r for r in pool.replicas if r.healthy] or pool.replicas[:0]
        results = await asyncio.gather(
            *(self._await(r.handle.lifecycle.remote(hook.value), self.start_timeout) for r in targets)
        )
        if hook in (Hook.UNLOAD, Hook.CLEANUP):
            await self._drop_pool(service)
        if not results:
            return True  # every replica was down: nothing held, nothing to release
        return False if any(r is False for r in results) else results[0]

    async def detach(self, service: str) -> None:
        self._definitions.pop(service, None)
        await self._drop_pool(service)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for service in list(self._pools):
            await self._drop_pool(service)
        if self._ray is not None and self._stopped is not None:
            self._stop.set()
            # A lost cluster cannot be left politely: ray.shutdown may wait on the dead head.
            bound = 2.0 if self._lost is not None else self.start_timeout
            try:
                await asyncio.wait_for(asyncio.shield(self._stopped), bound)
            except TimeoutError:
                if self._lost is None:
                    raise
        if self._started_pids:
            # orphans of a lost head get little grace: the run is to end within seconds
            await asyncio.to_thread(_end_processes, self._started_pids, 0.5 if self._lost else 3.0)
            self._started_pids = {}
        self._ray = None

    @property
    def lost(self) -> BackendLost | None:
        """Why the cluster is gone (``None`` while it is there)."""
        return self._lost

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
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        elif self.address is not None and not self._owns_local:
            # joined a cluster started elsewhere, whose workers have their own environment (a local
            # start's workers inherit this process's, and a runtime_env would cost them their pool)
            options["runtime_env"] = _same_code_env()
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
        for r in replicas:
            r.watcher = asyncio.ensure_future(self._watch(pool, r))
        if self.heartbeat is not None:
            pool.monitor = asyncio.ensure_future(self._monitor(pool))
        self._pools[definition.name] = pool
        return pool

    async def _stop_pool_tasks(self, pool: Any) -> None:
        """Cancel a pool's monitor, revivers and watchers, and stop watching its replicas."""
        tasks = [
            t
            for t in [pool.monitor, *(x for r in pool.replicas for x in (r.reviver, r.watcher))]
            if t is not None
        ]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for r in pool.replicas:
            self._unwatch(r)

    async def _drop_pool(self, service: str) -> None:
        pool = self._pools.pop(service, None)
        if pool is None:
            return
        await self._stop_pool_tasks(pool)
        for r in pool.replicas:
            if self._lost is None:
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
    def _pick(self, pool: _Pool, exclude: set[int] = frozenset()) -> _Replica:  # type: ignore[assignment]
        if self._lost is not None:
            raise self._lost
        best: _Replica | None = None
        n = len(pool.replicas)
        pool.turn = (pool.turn + 1) % n  # ties rotate, so equal replicas share the load
        for k in range(n):
            r = pool.replicas[(pool.turn + k) % n]
            if (
                r.healthy
                and r.index not in exclude
                and r.in_flight < self.max_concurrency
                and (best is None or r.in_flight < best.in_flight)
            ):
                best = r
        if best is not None:
            return best
        name = pool.definition.name
        up = [r for r in pool.replicas if r.healthy and r.index not in exclude]
        if not up:
            pool.remote_errors += 1
            down = [r for r in pool.replicas if not r.healthy]
            since = time.monotonic() - min((r.down_since for r in down), default=time.monotonic())
            raise RemoteError(
                f"service {name!r}: no replica is up ({len(down)} of {n} restarting for {since:.2f} s)"
            )
        pool.overloaded += 1
        raise Overloaded(
            f"admission refused: service {name!r} has {sum(r.in_flight for r in up)} calls in flight "
            f"(replicas up {len(up)}, max_concurrency {self.max_concurrency} each); call refused"
        )

    async def _call(self, pool: _Pool, method: str, params: Mapping[str, Any]) -> Any:
        """Call on the least busy replica; when it dies under the call, send it to another one (once
        per replica): the processor's deadline bounds the whole, so a reroute costs no extra latency
        beyond what the dead replica already took."""
        tried: set[int] = set()
        while True:
            r = self._pick(pool, tried)
            try:
                return await self._call_on(pool, r, method, params)
            except _ReplicaDied as died:
                tried.add(r.index)
                others = [x for x in pool.replicas if x.healthy and x.index not in tried]
                if self._lost is not None:
                    raise self._lost from None
                if not others:
                    raise RemoteError(f"{died}; no other replica is up: restarting it") from None
                pool.rerouted += 1

    async def _call_on(self, pool: _Pool, r: _Replica, method: str, params: Mapping[str, Any]) -> Any:
        name = pool.definition.name
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
                    # Ray and the process watcher race to report a killed worker: say what happened
                    # (its process exited) whichever of them is first
                    exited = self._exit_reason(r)
                    self._mark_down(pool, r, exited or f"{type(exc).__name__}")
                    raise _ReplicaDied(
                        f"replica {r.index} of {name!r} died ({exited})"
                        if exited
                        else f"replica {r.index} of {name!r} died during {method!r} ({type(exc).__name__})"
                    ) from exc
            if down.done():
                # the watcher or the heartbeat saw it die or restart: fail now, not at the timeout
                raise _ReplicaDied(f"replica {r.index} of {name!r} died ({down.result()})")
            reason = f"no answer within {self.call_timeout:g} s"
            self._mark_down(pool, r, reason)
            raise RemoteError(f"replica {r.index} of {name!r}, {method!r}: {reason}")
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
        if self._lost is not None:
            return  # ray.cancel would wait on the dead head
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
        self._unwatch(r)
        if self._lost is None:
            r.reviver = asyncio.ensure_future(self._revive(pool, r))
        self._spawn(self._check_head())

    async def _revive(self, pool: _Pool, r: _Replica) -> None:
        # Pings overlap, one every _REVIVE_PING_S: a ping sent to the dead or restarting actor fails
        # only after Ray gives up on it (ActorUnavailableError, ~1.3-2 s here, often after the new
        # process is already up), so pinging again only after each failure lost up to that long per
        # restart (measured: 0.5-1.7 s of a 2-4 s recovery). Now the first ping sent after the restart
        # answers at once.
        pending: set[asyncio.Future[str]] = set()
        incarnation = ""
        try:
            while not incarnation:
                if len(pending) < _REVIVE_PINGS:
                    pending.add(asyncio.ensure_future(self._ping(r)))
                done, pending = await asyncio.wait(
                    pending, timeout=_REVIVE_PING_S, return_when="FIRST_COMPLETED"
                )
                incarnation = next((t.result() for t in done if t.result()), "")
        finally:
            for t in pending:
                t.cancel()
        pool.recoveries.append(time.monotonic() - r.down_since)
        if incarnation != r.incarnation:
            pool.restarts += 1
        r.incarnation = incarnation
        r.down = asyncio.get_running_loop().create_future()
        r.healthy = True
        r.reviver = None
        r.watcher = asyncio.ensure_future(self._watch(pool, r))
        if all(x.healthy for x in pool.replicas):
            pool.all_healthy.set()

    async def _ping(self, r: _Replica) -> str:
        """The replica's incarnation, ``""`` when it is not (yet) up or the ping failed."""
        try:
            return str(await self._await(r.handle.ping.remote(), self.start_timeout))
        except (RemoteError, ModelError):
            return ""

    async def _watch(self, pool: _Pool, r: _Replica) -> None:
        """Watch the replica's worker process directly when it runs on this machine (a pidfd in the event
        loop): its death is seen at once, not at the next heartbeat or when Ray reports it (~1.5 s)."""
        try:
            where = await self._await(r.handle.where.remote(), self.start_timeout)
        except (RemoteError, ModelError):
            return  # the heartbeat will tell
        pid = r.pid = int(where["pid"])
        same = (where.get("boot_id"), where.get("pid_ns")) == (
            self._identity["boot_id"],
            self._identity["pid_ns"],
        )
        if not hasattr(os, "pidfd_open") or not self._identity["boot_id"] or not same:
            return  # another machine (or pid namespace): heartbeats only
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            self._mark_down(pool, r, f"its worker process {pid} is gone")
            return
        self._unwatch(r)
        r.watch_fd = fd
        asyncio.get_running_loop().add_reader(fd, self._exited, pool, r, fd, pid)

    def _exited(self, pool: _Pool, r: _Replica, fd: int, pid: int) -> None:
        if r.watch_fd == fd:
            self._unwatch(r)
            self._mark_down(pool, r, f"its worker process {pid} exited")

    @staticmethod
    def _exit_reason(r: _Replica) -> str | None:
        """``"its worker process N exited"`` when the watched worker process has exited (its pidfd is
        readable), else None: lets a call that failed with Ray's actor error name the cause at once."""
        fd = r.watch_fd
        if fd is None:
            return None
        try:
            readable, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):
            return None
        return f"its worker process {r.pid} exited" if readable else None

    def _unwatch(self, r: _Replica) -> None:
        fd, r.watch_fd = r.watch_fd, None
        if fd is not None:
            try:
                asyncio.get_running_loop().remove_reader(fd)
            except RuntimeError:  # no running loop (closing): the fd is closed below all the same
                pass
            os.close(fd)

    async def _check_head(self) -> None:
        """Declare the cluster lost when its GCS (the head) refuses connections."""
        if self._lost is not None or self._gcs is None or self._closed:
            return
        host, port = self._gcs
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.heartbeat or 0.5)
        except ConnectionRefusedError as exc:
            self._lose(
                f"the Ray cluster at {self.address or 'local'} was lost (its head at {host}:{port} "
                f"refuses connections: {exc.strerror or exc})"
            )
            return
        except (OSError, TimeoutError):
            return  # slow or a passing fault: the next check decides
        writer.close()

    async def _watch_head(self) -> None:
        """Check the head every ``heartbeat`` (a TCP connect to its GCS), apart from replica pings."""
        assert self.heartbeat is not None
        while self._lost is None and not self._closed:
            await self._check_head()
            await asyncio.sleep(max(self.heartbeat, 0.25))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lose(self, message: str) -> None:
        if self._lost is not None:
            return
        self._lost = BackendLost(message)
        for pool in self._pools.values():
            for r in pool.replicas:
                if r.reviver is not None:
                    r.reviver.cancel()
                    r.reviver = None
                r.healthy = False
                if not r.down.done():
                    r.down.set_result(message)
                self._unwatch(r)

    async def _monitor(self, pool: _Pool) -> None:
        assert self.heartbeat is not None
        while self._lost is None:
            await asyncio.sleep(self.heartbeat)
            healthy = [r for r in pool.replicas if r.healthy]
            answers = await asyncio.gather(
                *(self._await(r.handle.ping.remote(), self.heartbeat_timeout) for r in healthy),
                return_exceptions=True,
            )
            for r, answer in zip(healthy, answers, strict=True):
                if isinstance(answer, BaseException) and isinstance(answer.__cause__, TimeoutError):
                    self._mark_down(pool, r, f"no heartbeat answer within {self.heartbeat_timeout:g} s")
                elif isinstance(answer, BaseException):
                    self._mark_down(pool, r, f"its worker is gone: {answer}")
                elif not answer:
                    self._mark_down(pool, r, "its service is not up in the restarted worker")
                elif answer != r.incarnation and r.healthy:
                    # Ray restarted the worker between two heartbeats: calls sent to the old process
                    # would only fail when Ray notices (~1.5 s); fail them now, keep routing here.
                    pool.restarts += 1
                    r.incarnation = answer
                    old, r.down = r.down, asyncio.get_running_loop().create_future()
                    old.set_result("its worker process died and was restarted")
                    self._unwatch(r)
                    r.watcher = asyncio.ensure_future(self._watch(pool, r))

    # ---- inspection ----------------------------------------------------------------------------------
    def stats(self, service: str) -> PoolStats:
        pool = self._pools.get(service)
        if pool is None:
            raise ServiceStateError(f"service {service!r} has no replicas on this backend")
        reps = tuple(
            ReplicaStats(r.index, r.healthy, r.in_flight, r.calls, r.failures, r.pid) for r in pool.replicas
        )
        return PoolStats(
            service,
            reps,
            pool.overloaded,
            pool.remote_errors,
            pool.restarts,
            tuple(pool.recoveries),
            pool.rerouted,
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
