"""One local Ray instance for every Ray test (starting Ray takes seconds and ~0.5 GiB: never per test).

Small on purpose: 4 logical CPUs, a 100 MB object store, no dashboard, usage stats off, worker logs not
forwarded. Backends created by the tests find Ray initialised and reuse it (and leave it running).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if not ray.is_initialized():
        ray.init(
            num_cpus=4,  # logical: more than this 2-core machine, as a cluster would have
            object_store_memory=100 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def serve_session(ray_session: Any) -> Iterator[Any]:
    """Ray Serve on the session's Ray, started once (no HTTP proxy) for the module that uses it, and
    shut down after it (deleting every deployment left), so its controller does not keep loading the
    machine under the tests that follow."""
    from ray import serve

    serve.start(proxy_location="Disabled")
    yield serve
    serve.shutdown()
