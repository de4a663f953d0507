"""What the machine offers (cpu cores, available memory, visible GPUs) and the check a service must pass.

Probed without heavy imports: ``os.sched_getaffinity``/``os.cpu_count``, ``psutil`` when installed else
``/proc/meminfo`` (MemAvailable), and GPUs from ``CUDA_VISIBLE_DEVICES`` or ``/proc/driver/nvidia/gpus``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from apipeline.errors import ResourceError
from apipeline.models.info import ResourceNeeds


@dataclass(frozen=True, slots=True)
class MachineResources:
    """A snapshot of the machine: usable cpu cores, available memory bytes (None: unknown), GPU ids."""

    cpu_count: int
    available_memory: int | None
    gpus: tuple[int, ...]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _available_memory() -> int | None:
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:  # pragma: no cover - psutil is optional
        return int(psutil.virtual_memory().available)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None  # pragma: no cover


def _visible_gpus() -> tuple[int, ...]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [v.strip() for v in env.split(",") if v.strip() and v.strip() != "-1"]
        return tuple(range(len(ids)))  # CUDA renumbers visible devices from 0
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return tuple(range(sum(1 for _ in root.iterdir())))
    except OSError:
        return ()


def probe_machine() -> MachineResources:
    """The machine as it is now."""
    return MachineResources(_cpu_count(), _available_memory(), _visible_gpus())


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def check_fits(service: str, needs: ResourceNeeds, machine: MachineResources) -> None:
    """Raise ResourceError when the declared needs exceed what the machine offers."""
    if needs.cpu is not None and needs.cpu > machine.cpu_count:
        raise ResourceError(
            f"service {service!r} needs {needs.cpu:g} cpu cores; this machine has {machine.cpu_count}"
        )
    if (
        needs.memory is not None
        and machine.available_memory is not None
        and needs.memory > machine.available_memory
    ):
        raise ResourceError(
            f"service {service!r} needs {_mb(needs.memory)} of memory; "
            f"{_mb(machine.available_memory)} is available"
        )
    missing = [g for g in needs.gpu if g not in machine.gpus]
    if missing:
        seen = ",".join(str(g) for g in machine.gpus) or "none"
        raise ResourceError(
            f"service {service!r} needs GPU(s) {','.join(str(g) for g in needs.gpu)}; "
            f"GPU(s) {','.join(str(g) for g in missing)} not visible (visible: {seen})"
        )
