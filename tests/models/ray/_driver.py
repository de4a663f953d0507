"""A separate driver process: joins the cluster at ``argv[1]``, calls the negator, prints one JSON line.

Used by the tests that need a second process (an explicit cluster address, sharing a deployment).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np

from apipeline.models import ModelRegistry
from apipeline.models.backends import backend_from_address, registry_options
from tests.models.ray._services import Negator


async def main(address: str) -> None:
    t0 = time.monotonic()
    backend = backend_from_address(address, num_cpus=0.5, start_timeout=60.0)
    reg = ModelRegistry(backend=backend, **registry_options(backend))
    reg.register(Negator)
    async with reg:
        out = await reg.run("negator", "negate", {"audio": np.ones(4, np.float32)})
    print(json.dumps({"out": [float(v) for v in out], "seconds": time.monotonic() - t0}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
