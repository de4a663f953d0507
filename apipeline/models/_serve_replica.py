"""What one Ray Serve replica of a service deployment runs (imported by Serve's replica processes).

A :class:`ServiceReplica` owns one :class:`~apipeline.models._ray_actor.ServiceHost` actor on its own
node, named ``<app>#<replica id>`` in the ``apipeline`` namespace, and brings the service up in it
(prepare -> load -> self-test, the real errors surfacing as a failed replica start). Serve keeps the
replicas (count, autoscaling, health checks, replacement of a failed one, placement with the resources
the deployment reserves); the service code runs in the host, which drivers call directly by name: the
data path that meets the per-chunk budget (docs/design.md, "Model services on Ray Serve"). Calls through
a Serve handle (``call``) go to the same host, with ``@serve.batch`` collecting batchable methods.

The host reserves nothing itself (``num_cpus=0``, pinned to the replica's node): the replica's
``ray_actor_options`` hold the service's declared resources once, and the GPUs Ray assigned to the
replica are made visible to the host. When the replica ends, the host (which it owns) ends with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ray import serve

from apipeline.errors import ServiceStateError
from apipeline.models._ray_actor import ServiceHost

#: Ray namespace of the hosts (so a driver in any namespace finds them by name).
HOSTS_NAMESPACE = "apipeline"
_CONTROL_SLOTS = 8


def _cause(exc: BaseException) -> BaseException:
    """The service's own exception inside Ray's wrappers (a task error of a task error...)."""
    seen = 0
    while seen < 8 and getattr(exc, "cause", None) is not None and isinstance(exc.cause, BaseException):  # type: ignore[attr-defined]
        exc = exc.cause  # type: ignore[attr-defined]
        seen += 1
    return exc


class ServiceReplica:
    """One replica of a service deployment: its host actor's owner, health check and Serve entry point.

    Args:
        source: the definition's ``source``, cloudpickled by the deploying driver.
        service: the service name.
        sys_path: directories the host adds to ``sys.path``.
        threads: threads running service code in the host.
        app: the Serve application name (the host is named ``<app>#<replica id>``).
        max_concurrency: service calls in flight in the host.
        bring_up: the lifecycle hooks to run, in order (those of the service's protocol).
        batch: ``{method: (max_batch, max_wait_s)}`` of the batchable methods (for ``@serve.batch``).
    """

    async def __init__(  # type: ignore[misc]  # Serve supports async constructors
        self,
        source: bytes,
        service: str,
        sys_path: list[str],
        threads: int,
        app: str,
        max_concurrency: int,
        bring_up: list[str],
        batch: Mapping[str, tuple[int, float]],
    ) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        context = ray.get_runtime_context()
        self.name = f"{app}#{serve.get_replica_context().replica_id.unique_id}"
        self.service = service
        options: dict[str, Any] = {
            "name": self.name,
            "namespace": HOSTS_NAMESPACE,
            "max_restarts": -1,
            "max_task_retries": 0,
            "max_concurrency": max_concurrency + _CONTROL_SLOTS,
            "num_cpus": 0,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(context.get_node_id(), soft=False),
        }
        gpus = [str(g) for g in context.get_accelerator_ids().get("GPU", [])]
        if gpus:
            options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ",".join(gpus)}}
        host: Any = ray.remote(ServiceHost).options(**options)
        self.host = host = host.remote(source, service, sys_path, threads, True)
        for hook in bring_up:
            # already done by the host's constructor: its recorded result; failed there: run again here,
            # so the service's own error is what fails this replica's start
            if await host.lifecycle.remote(hook) is False:
                raise ServiceStateError(
                    f"service {service!r}: its {hook} hook returned False in replica {self.name}"
                )
        self.batched = dict(batch)
        if self.batched:
            max_batch, max_wait = (
                max(b[0] for b in self.batched.values()),
                min(b[1] for b in self.batched.values()),
            )
            batcher: Any = self._batch
            batcher.set_max_batch_size(max_batch)
            batcher.set_batch_wait_timeout_s(max_wait)

    async def check_health(self) -> None:
        """Serve's health check: the service's self-test, run again in the host."""
        if not await self.host.health.remote():
            raise ServiceStateError(f"service {self.service!r}: self-test failed in replica {self.name}")

    async def host_name(self) -> str:
        return self.name

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Calls in flight in the host (direct calls included): what the autoscaling policy sums."""
        stats = await self.host.stats.remote()
        return {"in_flight": float(stats["in_flight"])}

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """A service call through a Serve handle (batchable methods are batched across callers)."""
        try:
            if method in self.batched:
                got = await self._batch((method, dict(params)))
                if isinstance(got, BaseException):
                    raise got
                return got
            return await self.host.call.remote(method, params)
        except Exception as exc:
            raise _cause(exc) from None

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _batch(self, items: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        out: list[Any] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for i, (method, _) in enumerate(items):
            groups.setdefault(method, []).append(i)
        results = await asyncio.gather(
            *(self.host.batch.remote(m, [items[i][1] for i in idx]) for m, idx in groups.items()),
            return_exceptions=True,
        )
        for (_, idx), got in zip(groups.items(), results, strict=True):
            for k, i in enumerate(idx):
                out[i] = _cause(got) if isinstance(got, BaseException) else got[k]
        return out
