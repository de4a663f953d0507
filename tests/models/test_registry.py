"""ModelRegistry: lifecycle driving, refusals, parameter checks, resources, LRU and concurrency limits."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading

import numpy as np
import pytest

from apipeline.errors import (
    ModelError,
    Overloaded,
    ResourceError,
    SelfTestError,
    ServiceDefinitionError,
    ServiceParamError,
    ServiceStateError,
)
from apipeline.models import MachineResources, ModelRegistry, ServiceState
from tests.models._services import Minimal, Simple, Worker
from tests.models.conftest import STANDARD_SERVICE

S = ServiceState
MiB = 2**20
BIG_MACHINE = MachineResources(cpu_count=8, available_memory=64 * 2**30, gpus=(0, 1))


@pytest.fixture
async def registry():
    reg = ModelRegistry(machine=BIG_MACHINE, max_workers=4)
    yield reg
    await reg.aclose()


async def test_module_service_runs_with_validated_params(registry, service_module):
    path = service_module(STANDARD_SERVICE)
    assert registry.register(path) == ["adder"]
    assert registry.state("adder") is S.REGISTERED
    assert await registry.run("adder", "add", {"a": 1, "b": 2}) == 3
    assert await registry.run("adder", "add", {"a": 1, "b": 2.5, "scale": 2}) == 7.0
    assert await registry.run("adder", "concat", {"a": "x", "b": "y"}) == "x y"
    assert importlib.import_module(path).CALLS == ["prepare", "load", "test"]
    info = json.loads(registry.info_json("adder"))
    assert info == registry.info("adder")
    assert info["service_name"] == "adder" and info["resources"]["memory"] == 100 * MiB
    assert [p["name"] for p in info["methods"][0]["params"]] == ["a", "b", "scale"]


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("add", {"a": 1}, "missing parameter 'b'"),
        ("add", {"a": 1, "b": 2, "c": 3}, "unknown parameter 'c'; expected a, b, scale"),
        ("add", {"a": "1", "b": 2}, "parameter 'a' must be int, got str '1'"),
        ("add", {"a": True, "b": 2}, "parameter 'a' must be int, got bool"),
        ("add", {"a": 1.5, "b": 2}, "parameter 'a' must be int, got float"),
        ("add", [1, 2], "params must be a dict"),
        ("nope", {}, "has no method 'nope' \\(methods: add, concat\\)"),
    ],
)
async def test_bad_params_are_refused_before_anything_runs(registry, service_module, method, params, message):
    path = service_module(STANDARD_SERVICE)
    registry.register(path)
    with pytest.raises(ServiceParamError, match=message):
        await registry.run("adder", method, params)
    assert registry.state("adder") is S.REGISTERED  # nothing was loaded for a refused call
    assert importlib.import_module(path).CALLS == []


async def test_numpy_scalars_and_arrays_match_declared_types(registry):
    registry.register(Worker())
    assert await registry.run("worker", "work", {"x": np.int64(4)}) == 8


async def test_return_value_of_undeclared_type_is_an_error(registry):
    registry.register(Worker())
    with pytest.raises(ModelError, match="returned int; its info declares str"):
        await registry.run("worker", "wrong", {})


async def test_standard_lifecycle_transitions(registry):
    w = Worker()
    registry.register(w)
    await registry.ready("worker")
    assert (registry.state("worker"), w.calls) == (S.READY, ["prepare", "load", "test"])
    await registry.ready("worker")  # READY stays READY without calling hooks
    assert w.calls == ["prepare", "load", "test"]
    await registry.unload("worker")
    assert (registry.state("worker"), w.calls[-1]) == (S.UNLOADED, "unload")
    await registry.ready("worker")  # files kept: load and test again, no prepare
    assert w.calls[-2:] == ["load", "test"] and w.calls.count("prepare") == 1
    await registry.cleanup("worker")  # from READY: unload, then cleanup
    assert (registry.state("worker"), w.calls[-2:]) == (S.CLEANED, ["unload", "cleanup"])
    await registry.cleanup("worker")  # cleaning a cleaned service does nothing
    assert w.calls.count("cleanup") == 1
    assert await registry.run("worker", "work", {"x": 3}) == 6  # CLEANED -> prepare again
    assert w.calls[-3:] == ["prepare", "load", "test"] and registry.state("worker") is S.READY


async def test_cleanup_from_registered_and_prepared_states(registry):
    w = Worker(fail="load")
    registry.register(w)
    await registry.cleanup("worker")
    assert registry.state("worker") is S.CLEANED
    with pytest.raises(ModelError, match="load returned False; it stays prepared"):
        await registry.ready("worker")
    assert registry.state("worker") is S.PREPARED
    await registry.cleanup("worker")
    assert registry.state("worker") is S.CLEANED and w.calls.count("unload") == 0


@pytest.mark.parametrize(("fail", "stays"), [("prepare", S.REGISTERED), ("load-raise", S.PREPARED)])
async def test_failing_hook_leaves_state_and_says_so(registry, fail, stays):
    registry.register(Worker(fail=fail))
    with pytest.raises(ModelError, match=f"stays {stays.value}") as info:
        await registry.ready("worker")
    assert registry.state("worker") is stays
    if fail.endswith("-raise"):
        assert isinstance(info.value.__cause__, RuntimeError)


async def test_failed_unload_keeps_the_model_and_aclose_reports_it():
    reg = ModelRegistry(machine=BIG_MACHINE)
    reg.register(Worker(fail="unload"))
    await reg.ready("worker")
    with pytest.raises(ModelError, match="unload returned False; it stays ready"):
        await reg.unload("worker")
    assert reg.state("worker") is S.READY
    with pytest.raises(ModelError, match="closing the registry: service 'worker': unload returned False"):
        await reg.aclose()


async def test_unload_refusals(registry):
    registry.register(Worker())
    with pytest.raises(ServiceStateError, match="is registered: unload is not allowed"):
        await registry.unload("worker")
    await registry.ready("worker")
    await registry.unload("worker")
    with pytest.raises(ServiceStateError, match="is unloaded: unload is not allowed"):
        await registry.unload("worker")


async def test_self_test_failure_marks_unusable_until_unloaded(registry):
    w = Worker(test_ok=False)
    registry.register(w)
    with pytest.raises(SelfTestError, match=r"failed its self-test .*marked unusable"):
        await registry.ready("worker")
    assert registry.state("worker") is S.UNUSABLE
    assert registry.stats("worker").failure == "the test hook returned False"
    with pytest.raises(SelfTestError, match="unload\\(\\) it, then ready\\(\\) to try again"):
        await registry.run("worker", "work", {"x": 1})
    assert w.calls.count("load") == 1  # a refused call does not reload
    await registry.unload("worker")
    w.test_ok = True
    await registry.ready("worker")
    assert registry.state("worker") is S.READY and registry.stats("worker").failure is None


async def test_self_test_that_raises_is_a_failure_with_its_cause(registry):
    registry.register(Worker(fail="test-raise"))
    with pytest.raises(SelfTestError, match="RuntimeError: test broke") as info:
        await registry.ready("worker")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert registry.state("worker") is S.UNUSABLE


async def test_simple_protocol_lifecycle_and_refusals(registry):
    s = Simple()
    registry.register(s)
    assert await registry.run("simple", "hi") == "hi"
    assert (registry.state("simple"), s.calls) == (S.READY, ["prepare"])
    with pytest.raises(ServiceStateError, match="simple protocol, which has no unload; use cleanup"):
        await registry.unload("simple")
    await registry.cleanup("simple")
    assert (registry.state("simple"), s.calls) == (S.CLEANED, ["prepare", "cleanup"])
    await registry.ready("simple")
    assert (registry.state("simple"), s.calls[-1]) == (S.READY, "prepare")


async def test_minimal_protocol_runs_directly_and_refuses_lifecycle_calls(registry):
    registry.register(Minimal)
    assert await registry.run("minimal", "hi") == "hello"
    assert registry.state("minimal") is S.READY
    with pytest.raises(ServiceStateError, match="minimal protocol, which has no unload"):
        await registry.unload("minimal")
    with pytest.raises(ServiceStateError, match="cleanup is not allowed"):
        await registry.cleanup("minimal")


async def test_services_of_every_protocol_side_by_side(registry, service_module):
    registry.register(service_module(STANDARD_SERVICE))
    registry.register(Simple())
    registry.register(Minimal)
    results = await asyncio.gather(
        registry.run("adder", "add", {"a": 2, "b": 3}),
        registry.run("simple", "hi"),
        registry.run("minimal", "hi"),
    )
    assert results == [5, "hi", "hello"]


async def test_registration_refusals(registry):
    registry.register(Worker())
    with pytest.raises(ServiceDefinitionError, match="'worker' is already registered"):
        registry.register(Worker())
    with pytest.raises(ServiceStateError, match="no service 'ghost' is registered \\(registered: worker\\)"):
        registry.state("ghost")


async def test_concurrent_ready_loads_once(registry):
    w = Worker()
    registry.register(w)
    await asyncio.gather(*(registry.ready("worker") for _ in range(5)))
    assert w.calls == ["prepare", "load", "test"]


# ---- resources -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": 4}, "needs 4 cpu cores; this machine has 2"),
        ({"memory": 3 * 2**30}, "needs 3072 MiB of memory; 1024 MiB is available"),
        ({"gpu": "0,1"}, "needs GPU\\(s\\) 0,1; GPU\\(s\\) 1 not visible \\(visible: 0\\)"),
    ],
)
async def test_resource_refusal_before_load(kwargs, message):
    machine = MachineResources(cpu_count=2, available_memory=2**30, gpus=(0,))
    async with ModelRegistry(machine=machine) as reg:
        w = Worker(**kwargs)
        reg.register(w)
        with pytest.raises(ResourceError, match=message):
            await reg.ready("worker")
        assert reg.state("worker") is S.PREPARED and "load" not in w.calls


async def test_resource_check_against_the_real_machine():
    async with ModelRegistry() as reg:
        reg.register(Worker(cpu=(os.cpu_count() or 1) + 64))
        with pytest.raises(ResourceError, match="cpu cores; this machine has"):
            await reg.ready("worker")


async def test_lru_unloads_least_recently_used_to_fit_budget():
    async with ModelRegistry(machine=BIG_MACHINE, memory_budget=250 * MiB) as reg:
        a, b, c = (Worker(n, memory=100 * MiB) for n in "abc")
        for w in (a, b, c):
            reg.register(w)
        await reg.ready("a")
        await reg.ready("b")
        await reg.run("a", "work", {"x": 1})  # a is now more recent than b
        await reg.ready("c")
        assert [reg.state(n) for n in "abc"] == [S.READY, S.UNLOADED, S.READY]
        assert reg.memory_in_use() == 200 * MiB
        await reg.run("b", "work", {"x": 1})  # b comes back, evicting a (LRU)
        assert [reg.state(n) for n in "abc"] == [S.UNLOADED, S.READY, S.READY]


async def test_budget_refusals_unload_nothing():
    async with ModelRegistry(machine=BIG_MACHINE, memory_budget=250 * MiB) as reg:
        reg.register(Worker("a", memory=200 * MiB))
        reg.register(Worker("huge", memory=300 * MiB))
        reg.register(Simple())
        with pytest.raises(ResourceError, match="needs 300 MiB; the memory budget is 250 MiB"):
            await reg.ready("huge")
        gate = threading.Event()
        busy = Worker("busy", memory=100 * MiB, gate=gate)
        reg.register(busy)
        await reg.ready("busy")
        call = asyncio.ensure_future(reg.run("busy", "work", {"x": 1}))
        await asyncio.get_running_loop().run_in_executor(None, busy.entered.acquire)
        with pytest.raises(ResourceError, match="busy 100 MiB \\(busy or not unloadable\\)"):
            await reg.ready("a")
        assert reg.state("busy") is S.READY
        gate.set()
        assert await call == 2
        await reg.ready("a")  # idle now: evicted
        assert reg.state("busy") is S.UNLOADED


# ---- concurrency -----------------------------------------------------------------------------------
async def test_concurrency_limit_and_overload():
    gate = threading.Event()
    w = Worker(gate=gate)
    async with ModelRegistry(machine=BIG_MACHINE, max_workers=4, max_concurrency=2, max_pending=1) as reg:
        reg.register(w)
        await reg.ready("worker")
        calls = [asyncio.ensure_future(reg.run("worker", "work", {"x": i})) for i in range(3)]
        loop = asyncio.get_running_loop()
        for _ in range(2):
            await loop.run_in_executor(None, w.entered.acquire)
        st = reg.stats("worker")
        assert (st.in_flight, st.waiting) == (3, 1)
        with pytest.raises(Overloaded, match=r"3 calls in flight and 1 waiting"):
            await reg.run("worker", "work", {"x": 9})
        gate.set()
        assert await asyncio.gather(*calls) == [0, 2, 4]
        assert w.max_running == 2
        assert reg.stats("worker").in_flight == 0


async def test_cancelled_caller_keeps_its_slot_until_the_thread_finishes():
    gate = threading.Event()
    w = Worker(gate=gate)
    async with ModelRegistry(machine=BIG_MACHINE, max_workers=4, max_concurrency=1) as reg:
        reg.register(w)
        await reg.ready("worker")
        first = asyncio.ensure_future(reg.run("worker", "work", {"x": 1}))
        await asyncio.get_running_loop().run_in_executor(None, w.entered.acquire)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.ensure_future(reg.run("worker", "work", {"x": 2}))
        await asyncio.sleep(0)  # let it reach the semaphore (a scheduling step, not a timing wait)
        assert reg.stats("worker").in_flight == 2  # the cancelled call's thread still holds the slot
        gate.set()
        assert await second == 4
        assert w.max_running == 1


async def test_unload_waits_for_calls_in_flight():
    gate = threading.Event()
    w = Worker(gate=gate)
    async with ModelRegistry(machine=BIG_MACHINE, max_workers=4) as reg:
        reg.register(w)
        await reg.ready("worker")
        call = asyncio.ensure_future(reg.run("worker", "work", {"x": 5}))
        await asyncio.get_running_loop().run_in_executor(None, w.entered.acquire)
        unloading = asyncio.ensure_future(reg.unload("worker"))
        await asyncio.sleep(0)
        assert not unloading.done() and w.loaded
        gate.set()
        assert await call == 10
        await unloading
        assert reg.state("worker") is S.UNLOADED and not w.loaded


async def test_aclose_unloads_and_refuses_later_calls():
    reg = ModelRegistry(machine=BIG_MACHINE)
    w = Worker()
    reg.register(w)
    await reg.ready("worker")
    await reg.aclose()
    assert reg.state("worker") is S.UNLOADED and w.calls[-1] == "unload"
    with pytest.raises(ServiceStateError, match="closed"):
        await reg.run("worker", "work", {"x": 1})
