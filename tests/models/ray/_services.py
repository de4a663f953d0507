"""Services the Ray tests host: rebuilt inside the actors from these classes (imported by module path)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.models import service_method
from apipeline.models.batching import batchable


def _param(name: str, type_: str) -> dict[str, Any]:
    return {"name": name, "type": type_, "type_desc": type_, "desc": name}


class Negator:
    """``negate(audio)`` -> ``-audio``: a processed chunk is told apart from a dry one by its sign.

    ``scale(audio, gain)`` is batchable: concurrent calls run through ``scale_batch`` in one go.
    ``hold(seconds)`` keeps a worker thread busy (the saturation test's workload).
    """

    protocol = "standard"
    service_name = "negator"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds of work per negate (the fault test keeps calls in flight)
        self.loaded = False
        self.lifecycle: list[str] = []

    def info(self) -> dict[str, Any]:
        return {
            "service_name": self.service_name,
            "service_desc": "negates audio",
            "resources": {"cpu": 1},
            "methods": [
                {"name": "negate", "params": [_param("audio", "ndarray")], "return": {"type": "ndarray"}},
                {
                    "name": "scale",
                    "params": [_param("audio", "ndarray"), _param("gain", "float")],
                    "return": {"type": "ndarray"},
                },
                {"name": "hold", "params": [_param("seconds", "float")], "return": {"type": "float"}},
                {"name": "history", "params": [], "return": {"type": "list"}},
            ],
        }

    def _step(self, name: str) -> bool:
        self.lifecycle.append(name)
        return True

    def prepare(self) -> bool:
        return self._step("prepare")

    def load(self) -> bool:
        self.loaded = True
        return self._step("load")

    def test(self) -> bool:
        ok = bool(np.array_equal(self.negate(np.ones(4, np.float32)), -np.ones(4, np.float32)))
        return ok and self._step("test")

    def unload(self) -> bool:
        self.loaded = False
        return self._step("unload")

    def cleanup(self) -> bool:
        return self._step("cleanup")

    @service_method()
    def negate(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        if not self.loaded:
            raise RuntimeError("negator is not loaded")
        if self.delay:
            time.sleep(self.delay)
        return -audio

    def scale_batch(self, calls: list[dict[str, Any]]) -> list[NDArray[np.float32]]:
        self.lifecycle.append(f"batch:{len(calls)}")
        return [(c["audio"] * np.float32(c["gain"])).astype(np.float32) for c in calls]

    @service_method()
    @batchable("scale_batch", max_batch=4, max_wait_ms=50.0)
    def scale(self, audio: NDArray[np.float32], gain: float) -> NDArray[np.float32]:
        return (audio * np.float32(gain)).astype(np.float32)

    @service_method()
    def hold(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @service_method()
    def history(self) -> list[str]:
        return list(self.lifecycle)


class Heavy:
    """A minimal-protocol service declaring 3 cpu cores (more than this 2-core driver machine has)."""

    service_name = "heavy"
    cpu: float = 3

    def info(self) -> dict[str, Any]:
        return {
            "service_name": self.service_name,
            "resources": {"cpu": self.cpu, "memory": 64 * 2**20},
            "methods": [{"name": "assigned", "params": [], "return": {"type": "dict"}}],
        }

    @service_method()
    def assigned(self) -> dict[str, float]:
        """The resources Ray reserved for the worker running this replica."""
        import ray

        return {k: float(v) for k, v in ray.get_runtime_context().get_assigned_resources().items()}


class TooHeavy(Heavy):
    service_name = "too_heavy"
    cpu = 64
