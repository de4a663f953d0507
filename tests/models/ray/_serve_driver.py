"""A separate driver process using the negator's Serve deployment at the cluster ``argv[1]``.

Prints one JSON line: the application's name, whether this process deployed it, the hosts it calls and
one call's result. Leaves the deployment in place (another process may use it).
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np

from apipeline.models import ModelRegistry
from apipeline.models.backends import backend_from_address, registry_options
from apipeline.models.serve_backend import ServeBackend
from tests.models.ray._services import Negator


async def main(address: str) -> None:
    # the options (and the service's source) of test_a_killed_replica_of_two_is_routed_around, which
    # then finds this deployment too
    backend = backend_from_address(
        address, serve=True, replicas=2, num_cpus=0.5, threads=1, start_timeout=60.0
    )
    assert isinstance(backend, ServeBackend)
    reg = ModelRegistry(backend=backend, **registry_options(backend))
    reg.register(Negator(delay=0.05))
    async with reg:
        out = await reg.run("negator", "negate", {"audio": np.ones(4, np.float32)})
        app, deployed = backend.deployment_of("negator")
        report = {
            "app": app,
            "deployed": deployed,
            "hosts": sorted(await backend.replica_names("negator")),
            "out": [float(v) for v in out],
        }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
