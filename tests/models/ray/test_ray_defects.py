"""The Ray path's observed defects (model workers shared across servers), each tried as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apipeline.errors import ResourceError
from apipeline.models import ModelRegistry
from apipeline.models.ray_backend import RayBackend
from tests.models._services import Minimal
from tests.models.ray._services import Heavy, TooHeavy

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]


async def test_minimal_protocol_service_runs_on_ray(ray_session: Any) -> None:
    reg = ModelRegistry(backend=RayBackend(num_cpus=0.25))
    reg.register(Minimal)
    async with reg:
        assert await reg.run("minimal", "hi", {}) == "hello"


async def test_declared_resources_are_checked_against_the_cluster_and_reserved(ray_session: Any) -> None:
    # 3 cpu cores declared: more than this driver machine has, less than the (logical) cluster's 4.
    reg = ModelRegistry(backend=RayBackend())
    reg.register(Heavy)
    async with reg:
        assigned = await reg.run("heavy", "assigned", {})
    assert assigned.get("CPU") == 3.0
    assert assigned.get("memory") == 64 * 2**20


async def test_resources_no_node_has_fail_the_start_with_a_clear_error(ray_session: Any) -> None:
    reg = ModelRegistry(backend=RayBackend(start_timeout=30.0))
    reg.register(TooHeavy)
    t0 = time.monotonic()
    async with reg:
        with pytest.raises(ResourceError, match=r"'too_heavy' needs 64 CPU.*Ray cluster.*4"):
            await reg.ready("too_heavy")
    assert time.monotonic() - t0 < 10.0  # refused up front, not after the start timeout


async def test_replicas_the_cluster_cannot_place_fail_within_the_start_timeout(ray_session: Any) -> None:
    # Each replica fits a node (3 of 4 cpus), two do not: the second stays pending until start_timeout.
    reg = ModelRegistry(backend=RayBackend(replicas=2, start_timeout=4.0))
    reg.register(Heavy)
    t0 = time.monotonic()
    async with reg:
        with pytest.raises(
            ResourceError,
            match=r"of 2 replicas of 'heavy' not placed within 4 s: each needs 3 CPU, 64 MiB memory, "
            r"the Ray cluster has 1 CPU",
        ):
            await reg.ready("heavy")
    assert time.monotonic() - t0 < 40.0
    deadline = time.monotonic() + 30.0
    while ray_session.available_resources().get("CPU", 0) != 4.0:  # Ray frees killed actors' cpus
        assert time.monotonic() < deadline, ray_session.available_resources()
        await asyncio.sleep(0.05)


def test_a_driver_joins_an_explicit_address_with_the_cluster_token(ray_session: Any) -> None:
    gcs = ray_session._private.worker._global_node.gcs_address  # "127.0.0.1:PORT", auth on by default
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_AUTH_MODE", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.models.ray._driver", gcs],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["out"] == [-1.0] * 4
    assert "InvalidAuthToken" not in done.stderr
