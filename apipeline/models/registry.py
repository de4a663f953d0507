"""The model registry (the seed's ``VModel``): registers services, drives their lifecycle, runs their methods.

Invariants:

* State changes only through :mod:`apipeline.models.state`'s table; one lifecycle operation at a time per
  service (a per-service ``asyncio.Lock``), so two streams readying one service load it once.
* Resources are checked before anything is loaded; under ``memory_budget`` the least recently used idle
  standard-protocol services are unloaded to make room, and nothing is unloaded unless that suffices.
* A call holds a concurrency slot (``max_concurrency`` per service) until its worker thread really
  finishes, even if the awaiting task is cancelled, so the limit is never exceeded; at most
  ``max_pending`` calls wait for a slot, beyond that :class:`Overloaded` is raised at once.
* ``unload`` waits for the calls in flight; calls arriving meanwhile wait and then ready the service again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apipeline.errors import (
    ModelError,
    Overloaded,
    ParameterError,
    ResourceError,
    SelfTestError,
    ServiceDefinitionError,
    ServiceParamError,
    ServiceStateError,
)
from apipeline.models._protocol import Hook, ProtocolKind
from apipeline.models.backend import LocalBackend, ModelBackend
from apipeline.models.definition import ServiceDefinition, collect_services
from apipeline.models.info import validate_params as _validate_params
from apipeline.models.info import value_matches
from apipeline.models.resources import MachineResources, check_fits, probe_machine
from apipeline.models.state import LOADED_STATES, Action, ServiceState, next_state


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """A read-only snapshot of one service."""

    state: ServiceState
    in_flight: int
    waiting: int
    max_concurrency: int
    max_pending: int
    calls: int
    failure: str | None


@dataclass(slots=True, eq=False)
class _Record:
    definition: ServiceDefinition
    max_concurrency: int
    max_pending: int
    state: ServiceState = ServiceState.REGISTERED
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    semaphore: asyncio.Semaphore | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    waiting: int = 0
    calls: int = 0
    draining: bool = False
    attached: bool = False
    last_used: int = 0
    failure: str | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def memory(self) -> int:
        return self.definition.info.resources.memory or 0

    def holds_memory(self) -> bool:
        if self.definition.protocol is ProtocolKind.STANDARD:
            return self.state in LOADED_STATES
        return self.state is ServiceState.READY


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


class ModelRegistry:
    """Registers model services and runs them through their protocol's lifecycle.

    Args:
        backend: where service code runs (default: a :class:`LocalBackend` with ``max_workers`` threads).
        memory_budget: bytes the loaded services may hold together (declared ``resources.memory``);
            ``None`` for no budget.
        max_workers: thread pool size of the default backend.
        max_concurrency: default concurrent calls per service (``register`` may override).
        max_pending: default calls allowed to wait for a slot before :class:`Overloaded` is raised.
        machine: a fixed :class:`MachineResources` or a function returning one (default: probe the machine
            before each load).
    """

    def __init__(
        self,
        backend: ModelBackend | None = None,
        memory_budget: int | None = None,
        max_workers: int | None = None,
        *,
        max_concurrency: int = 1,
        max_pending: int = 64,
        machine: MachineResources | Callable[[], MachineResources] | None = None,
    ) -> None:
        if memory_budget is not None and memory_budget <= 0:
            raise ParameterError(
                f"memory_budget must be a positive number of bytes or None, got {memory_budget}"
            )
        self._backend: ModelBackend = backend if backend is not None else LocalBackend(max_workers)
        self.memory_budget = memory_budget
        self._default_concurrency = max_concurrency
        self._default_pending = max_pending
        self._machine = machine
        self._records: dict[str, _Record] = {}
        self._tick = itertools.count(1)
        self._closed = False

    @property
    def backend(self) -> ModelBackend:
        return self._backend

    # ---- registration and inspection (sync) -------------------------------------------------------
    def register(
        self, source: object, *, max_concurrency: int | None = None, max_pending: int | None = None
    ) -> list[str]:
        """Register the services defined by a module path, module, class or instance; return their names.

        Raises:
            ServiceDefinitionError: the source defines no valid service, or a name is already registered.
        """
        if self._closed:
            raise ServiceStateError("the registry is closed")
        concurrency = self._default_concurrency if max_concurrency is None else max_concurrency
        pending = self._default_pending if max_pending is None else max_pending
        if concurrency < 1 or pending < 0:
            raise ParameterError(
                f"max_concurrency must be >= 1 and max_pending >= 0, got {concurrency}, {pending}"
            )
        definitions = collect_services(source)
        for d in definitions:
            if d.name in self._records:
                raise ServiceDefinitionError(
                    f"service {d.name!r} is already registered (from "
                    f"{self._records[d.name].definition.source!r})"
                )
        for d in definitions:
            rec = _Record(d, concurrency, pending)
            rec.idle.set()
            self._records[d.name] = rec
        return [d.name for d in definitions]

    def services(self) -> list[str]:
        return list(self._records)

    def _get(self, service: str) -> _Record:
        try:
            return self._records[service]
        except KeyError:
            known = ", ".join(self._records) or "none"
            raise ServiceStateError(f"no service {service!r} is registered (registered: {known})") from None

    def definition(self, service: str) -> ServiceDefinition:
        return self._get(service).definition

    def info(self, service: str) -> dict[str, Any]:
        """The service's info in the seed's dict format."""
        return self._get(service).definition.info.to_dict()

    def info_json(self, service: str) -> str:
        return self._get(service).definition.info.to_json()

    def state(self, service: str) -> ServiceState:
        return self._get(service).state

    def stats(self, service: str) -> ServiceStats:
        r = self._get(service)
        return ServiceStats(
            r.state, r.in_flight, r.waiting, r.max_concurrency, r.max_pending, r.calls, r.failure
        )

    def memory_in_use(self) -> int:
        """Declared memory of the services that hold their model now."""
        return sum(r.memory for r in self._records.values() if r.holds_memory())

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def ready(self, service: str) -> None:
        """Drive the service to READY (prepare -> load -> self-test as its protocol has them).

        Raises:
            ResourceError: it does not fit the machine or the memory budget.
            SelfTestError: its self-test failed (it is now UNUSABLE), or failed before.
            ModelError: a hook returned False or raised (the state stays where it was).
        """
        rec = self._get(service)
        if rec.state is ServiceState.READY and not rec.draining:
            rec.last_used = next(self._tick)
            return
        async with rec.lock:
            await self._ready_locked(rec)

    async def _ready_locked(self, rec: _Record) -> None:
        if self._closed:
            raise ServiceStateError("the registry is closed")
        if not rec.attached:
            await self._backend.attach(rec.definition)
            rec.attached = True
        protocol, S = rec.definition.protocol, ServiceState
        if rec.state is S.UNUSABLE:
            raise SelfTestError(
                f"service {rec.name!r} failed its self-test ({rec.failure}); "
                f"unload() it, then ready() to try again"
            )
        if protocol is not ProtocolKind.STANDARD:
            if rec.state is not S.READY:
                next_state(protocol, rec.state, Action.PREPARE, rec.name)
                await self._make_room(rec)
                if protocol is ProtocolKind.SIMPLE:
                    await self._hook(rec, Hook.PREPARE, Action.PREPARE)
                else:
                    rec.state = next_state(protocol, rec.state, Action.PREPARE, rec.name)
        else:
            if rec.state in (S.REGISTERED, S.CLEANED):
                await self._hook(rec, Hook.PREPARE, Action.PREPARE)
            if rec.state in (S.PREPARED, S.UNLOADED):
                await self._make_room(rec)
                await self._hook(rec, Hook.LOAD, Action.LOAD)
            if rec.state is S.LOADED:
                await self._self_test(rec)
        rec.last_used = next(self._tick)

    async def _hook(self, rec: _Record, hook: Hook, action: Action) -> None:
        target = next_state(rec.definition.protocol, rec.state, action, rec.name)
        try:
            result = await self._backend.invoke(rec.name, hook)
        except Exception as exc:
            raise ModelError(
                f"service {rec.name!r}: {hook.value} failed ({type(exc).__name__}: {exc}); "
                f"it stays {rec.state.value}"
            ) from exc
        if result is False:
            raise ModelError(f"service {rec.name!r}: {hook.value} returned False; it stays {rec.state.value}")
        rec.state = target

    async def _self_test(self, rec: _Record) -> None:
        failure: str | None = None
        cause: BaseException | None = None
        try:
            result = await self._backend.invoke(rec.name, Hook.TEST)
        except Exception as exc:
            failure, cause = f"{type(exc).__name__}: {exc}", exc
        else:
            if result is False:
                failure = "the test hook returned False"
        protocol = rec.definition.protocol
        if failure is None:
            rec.state = next_state(protocol, rec.state, Action.TEST_PASSED, rec.name)
            rec.failure = None
            return
        rec.state = next_state(protocol, rec.state, Action.TEST_FAILED, rec.name)
        rec.failure = failure
        raise SelfTestError(
            f"service {rec.name!r} failed its self-test ({failure}); it is marked unusable"
        ) from cause

    async def _make_room(self, rec: _Record) -> None:
        if self._machine is not None or not getattr(self._backend, "checks_resources", False):
            # A backend that places services elsewhere (a Ray cluster) checks against that instead.
            machine = self._machine() if callable(self._machine) else (self._machine or probe_machine())
            check_fits(rec.name, rec.definition.info.resources, machine)
        budget, need = self.memory_budget, rec.memory
        if budget is None or need == 0:
            return
        if need > budget:
            raise ResourceError(f"service {rec.name!r} needs {_mb(need)}; the memory budget is {_mb(budget)}")
        holders = [r for r in self._records.values() if r is not rec and r.holds_memory() and r.memory]
        free = budget - sum(r.memory for r in holders)
        if free >= need:
            return
        movable = sorted(
            (
                r
                for r in holders
                if r.definition.protocol is ProtocolKind.STANDARD and r.in_flight == 0 and not r.lock.locked()
            ),
            key=lambda r: r.last_used,
        )
        plan = []
        for r in movable:
            if free >= need:
                break
            plan.append(r)
            free += r.memory
        if free < need:
            held = ", ".join(
                f"{r.name} {_mb(r.memory)}" + ("" if r in movable else " (busy or not unloadable)")
                for r in holders
            )
            raise ResourceError(
                f"service {rec.name!r} needs {_mb(need)}; the memory budget {_mb(budget)} is held "
                f"by {held} and unloading the idle ones would not free enough"
            )
        # Acquiring a free asyncio.Lock does not yield: no other task can claim these between plan and lock.
        for r in plan:
            await r.lock.acquire()
            r.draining = True
        try:
            for r in plan:
                await self._unload_locked(r)
        finally:
            for r in plan:
                r.draining = False
                r.lock.release()

    async def unload(self, service: str) -> None:
        """Unload a standard-protocol service's model (files stay); waits for its calls in flight."""
        rec = self._get(service)
        async with rec.lock:
            await self._unload_locked(rec)

    async def _unload_locked(self, rec: _Record) -> None:
        protocol = rec.definition.protocol
        if protocol is not ProtocolKind.STANDARD:
            raise ServiceStateError(
                f"service {rec.name!r} uses the {protocol.value} protocol, which has no "
                f"unload" + ("; use cleanup()" if protocol is ProtocolKind.SIMPLE else "")
            )
        next_state(protocol, rec.state, Action.UNLOAD, rec.name)
        rec.draining = True
        try:
            await rec.idle.wait()
            await self._hook(rec, Hook.UNLOAD, Action.UNLOAD)
        finally:
            rec.draining = False
        rec.failure = None

    async def cleanup(self, service: str) -> None:
        """Delete the service's files (unloading first where loaded); a cleaned service is left alone."""
        rec = self._get(service)
        async with rec.lock:
            if rec.state is ServiceState.CLEANED:
                return
            if rec.definition.protocol is ProtocolKind.STANDARD and rec.state in LOADED_STATES:
                await self._unload_locked(rec)
            next_state(rec.definition.protocol, rec.state, Action.CLEANUP, rec.name)
            if not rec.attached:
                await self._backend.attach(rec.definition)
                rec.attached = True
            rec.draining = True
            try:
                await rec.idle.wait()
                await self._hook(rec, Hook.CLEANUP, Action.CLEANUP)
            finally:
                rec.draining = False

    # ---- calls ---------------------------------------------------------------------------------------
    def validate_params(self, service: str, method: str, params: object) -> dict[str, Any]:
        """Check ``params`` against the declaration of ``service.method`` (raises ServiceParamError)."""
        rec = self._get(service)
        where = f"service {service!r} method {method!r}"
        try:
            minfo = rec.definition.info.methods[method]
        except KeyError:
            raise ServiceParamError(
                f"service {service!r} has no method {method!r} "
                f"(methods: {', '.join(rec.definition.info.methods)})"
            ) from None
        return _validate_params(minfo, params, where)

    async def run(self, service: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``service.method(**params)`` off the event loop, readying the service first if needed.

        Raises:
            ServiceParamError: unknown method, or a missing, unknown or wrongly typed parameter.
            Overloaded: ``max_pending`` calls already wait for a slot of this service.
            ModelError: the method returned a value of another type than its info declares.
            SelfTestError, ResourceError, ServiceStateError: from readying the service.
        """
        kwargs = self.validate_params(service, method, {} if params is None else params)
        rec = self._get(service)
        while rec.state is not ServiceState.READY or rec.draining:
            await self.ready(service)
        if rec.semaphore is None:
            rec.semaphore = asyncio.Semaphore(rec.max_concurrency)
        sem = rec.semaphore
        if sem.locked() and rec.waiting >= rec.max_pending:
            raise Overloaded(
                f"service {service!r}: {rec.in_flight} calls in flight and {rec.waiting} waiting "
                f"(max_concurrency {rec.max_concurrency}, max_pending {rec.max_pending})"
            )
        rec.in_flight += 1
        rec.idle.clear()
        rec.last_used = next(self._tick)
        rec.waiting += 1
        try:
            await sem.acquire()
        except BaseException:
            self._call_done(rec)
            raise
        finally:
            rec.waiting -= 1
        task = asyncio.ensure_future(self._backend.invoke(service, Hook.SERVICE, method, kwargs))
        task.add_done_callback(lambda t: self._slot_done(rec, sem, t))
        if getattr(self._backend, "cancellable", False):
            result = await task  # a cancelled caller cancels the remote call, which frees the slot
        else:
            result = await asyncio.shield(task)
        rec.calls += 1
        returns = rec.definition.info.methods[method].returns
        if not value_matches(result, returns.types):
            raise ModelError(
                f"service {service!r} method {method!r} returned {type(result).__name__}; its info "
                f"declares {'|'.join(returns.types)}"
            )
        return result

    def _slot_done(self, rec: _Record, sem: asyncio.Semaphore, task: asyncio.Future[Any]) -> None:
        # Runs when the worker really finished, even if the caller was cancelled meanwhile.
        if not task.cancelled():
            task.exception()  # mark retrieved: the caller (if still there) re-raises it
        sem.release()
        self._call_done(rec)

    def _call_done(self, rec: _Record) -> None:
        rec.in_flight -= 1
        if rec.in_flight == 0:
            rec.idle.set()

    # ---- shutdown ------------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Unload every loaded standard-protocol service, then close the backend. Files are kept."""
        if self._closed:
            return
        errors: list[str] = []
        for rec in self._records.values():
            if rec.definition.protocol is ProtocolKind.STANDARD and rec.state in LOADED_STATES:
                try:
                    await self.unload(rec.name)
                except ModelError as exc:
                    errors.append(str(exc))
        self._closed = True
        await self._backend.aclose()
        if errors:
            raise ModelError("closing the registry: " + "; ".join(errors))

    async def __aenter__(self) -> ModelRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
