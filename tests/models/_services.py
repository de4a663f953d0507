"""Class-written services the registry tests drive (real code paths, counted calls, controllable gates)."""

from __future__ import annotations

import threading
from typing import Any

from apipeline.models import service_method


class Worker:
    """A standard-protocol service whose ``work`` doubles ``x``; can fail a hook or block on a gate."""

    protocol = "standard"

    def __init__(
        self,
        name: str = "worker",
        *,
        memory: int | None = None,
        cpu: float | None = None,
        gpu: str | None = None,
        test_ok: bool = True,
        fail: str | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.name, self.memory, self.cpu, self.gpu = name, memory, cpu, gpu
        self.test_ok, self.fail, self.gate = test_ok, fail, gate
        self.calls: list[str] = []
        self.loaded = False
        self.running = 0
        self.max_running = 0
        self.entered = threading.Semaphore(0)
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        res: dict[str, Any] = {}
        if self.memory is not None:
            res["memory"] = self.memory
        if self.cpu is not None:
            res["cpu"] = self.cpu
        if self.gpu is not None:
            res["gpu"] = self.gpu
        return {
            "service_name": self.name,
            "service_desc": "doubles numbers",
            "resources": res,
            "methods": [
                {
                    "name": "work",
                    "desc": "2x",
                    "params": [{"name": "x", "type": "int", "type_desc": "integer", "desc": "input"}],
                    "return": {"type": "int", "desc": "2x"},
                },
                {"name": "wrong", "params": [], "return": {"type": "str"}},
            ],
        }

    def _hook(self, name: str) -> bool:
        self.calls.append(name)
        if self.fail == name:
            return False
        if self.fail == name + "-raise":
            raise RuntimeError(f"{name} broke")
        return True

    def prepare(self) -> bool:
        return self._hook("prepare")

    def load(self) -> bool:
        ok = self._hook("load")
        self.loaded = ok
        return ok

    def test(self) -> bool:
        self._hook("test")
        return self.test_ok and self.loaded  # a real check of this toy model's state

    def unload(self) -> bool:
        ok = self._hook("unload")
        self.loaded = not ok
        return ok

    def cleanup(self) -> bool:
        return self._hook("cleanup")

    @service_method()
    def work(self, x: int) -> int:
        assert self.loaded, "work called on an unloaded model"
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self.entered.release()
        try:
            if self.gate is not None:
                self.gate.wait(timeout=10)
            return 2 * x
        finally:
            with self._lock:
                self.running -= 1

    @service_method()
    def wrong(self) -> Any:
        return 42  # declared str: the registry must refuse it


class Simple:
    protocol = "simple"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def info(self) -> dict[str, Any]:
        return {
            "service_name": "simple",
            "methods": [{"name": "hi", "params": [], "return": {"type": "str"}}],
        }

    def prepare(self) -> bool:
        self.calls.append("prepare")
        return True

    def cleanup(self) -> bool:
        self.calls.append("cleanup")
        return True

    @service_method()
    def hi(self) -> str:
        return "hi"


class Minimal:
    def info(self) -> dict[str, Any]:
        return {
            "service_name": "minimal",
            "methods": [{"name": "hi", "params": [], "return": {"type": "str"}}],
        }

    @service_method()
    def hi(self) -> str:
        return "hello"
