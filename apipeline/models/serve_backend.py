"""Model services as Ray Serve deployments, shared by every apipeline process on the cluster.

:class:`ServeBackend` deploys each service (one Serve *application* per service and configuration,
named ``apipeline-<service>-<hash of the source and options>``) unless a deployment of that name is
already there, in which case it joins it: several ``apipeline serve`` processes, on one machine or many,
share one set of replicas. Serve owns the replicas: their number (``replicas``, or autoscaling between
``min_replicas`` and ``max_replicas`` on the calls in flight), their placement with the resources the
service declares (``ray_actor_options``), health checks that run the service's self-test, replacement
of a failed replica, and shipping the code (``runtime_env``).

The data path: each replica owns one host actor (:class:`~apipeline.models._ray_actor.ServiceHost`,
named after the replica, see :mod:`~apipeline.models._serve_replica`) and, by default, streams call the
hosts directly (``data_path="actor"``) with the same real-time policy as :class:`RayBackend` (least
busy host, refusal when every host is full, a death seen at once and the call rerouted). A Serve handle
call costs about 2-3 ms more per chunk than an actor call on this machine, which the per-chunk budget
does not allow (numbers in docs/benchmarks.md); ``data_path="handle"`` sends calls through Serve's
handles instead (Serve's routing, ``max_queued_requests`` admission and ``@serve.batch``). The set of
hosts follows the deployment (autoscaling, replaced replicas) by looking their names up every
``refresh`` seconds.

A process that leaves does not tear the deployment down (others may use it): ``delete_on_close=True``
does, and ``serve delete <app>`` / :meth:`ServeBackend.delete` from anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from apipeline.errors import (
    ModelError,
    Overloaded,
    ParameterError,
    RemoteError,
    ResourceError,
    ServiceStateError,
)
from apipeline.models._protocol import PROTOCOL_HOOKS, Hook
from apipeline.models._ray_actor import BRING_UP
from apipeline.models.batching import batch_spec
from apipeline.models.definition import ServiceDefinition
from apipeline.models.ray_backend import RayBackend, _as_resources, _describe, _Pool, _Replica, _same_code_env

#: Ray namespace of the service hosts (kept equal to ``_serve_replica.HOSTS_NAMESPACE``, which imports Serve).
HOSTS_NAMESPACE = "apipeline"
DATA_PATHS = ("actor", "handle")


class _Host(_Replica):
    def __init__(self, index: int, handle: Any, incarnation: str, name: str) -> None:
        super().__init__(index, handle, incarnation)
        self.name = name


def _config_digest(definition: ServiceDefinition, config: Mapping[str, Any]) -> str:
    from ray import cloudpickle

    h = hashlib.sha256(cloudpickle.dumps(definition.source))
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


class ServeBackend(RayBackend):
    """Hosts services as Ray Serve deployments that every process on the cluster shares.

    Takes :class:`RayBackend`'s arguments (``replicas``, ``num_cpus``..., ``max_concurrency`` being
    each replica's ``max_ongoing_requests``) and:

    Args:
        min_replicas, max_replicas: autoscale between these (both or neither; ``replicas`` is then the
            initial count). Scaling follows the calls in flight in the hosts.
        target_ongoing_requests: calls in flight per replica the autoscaler aims at.
        max_queued_requests: calls a Serve handle queues before refusing (``data_path="handle"``).
        data_path: ``"actor"`` (direct calls to the replicas' hosts, the default) or ``"handle"``.
        health_check_period: seconds between Serve's health checks (the service's self-test).
        health_check_timeout: seconds a health check may take.
        refresh: seconds between look-ups of the deployment's hosts (new or replaced replicas).
        app_name: the Serve application's name (default: derived from the service, its source and
            these options, so equal configurations share one deployment).
        delete_on_close: delete the deployment when this backend closes (default: leave it to others).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_ongoing_requests: float = 2.0,
        max_queued_requests: int = 64,
        data_path: str = "actor",
        health_check_period: float = 10.0,
        health_check_timeout: float = 30.0,
        refresh: float = 0.5,
        app_name: str | None = None,
        delete_on_close: bool = False,
        **options: Any,
    ) -> None:
        if (min_replicas is None) != (max_replicas is None):
            raise ParameterError(
                f"min_replicas and max_replicas go together (autoscaling bounds), got {min_replicas}, "
                f"{max_replicas}"
            )
        if min_replicas is not None and max_replicas is not None:
            if min_replicas < 1:
                raise ParameterError(
                    f"min_replicas must be >= 1 (streams need a replica), got {min_replicas}"
                )
            if min_replicas > max_replicas:
                raise ParameterError(f"min_replicas ({min_replicas}) is above max_replicas ({max_replicas})")
            options.setdefault("replicas", min_replicas)
            if not min_replicas <= options["replicas"] <= max_replicas:
                raise ParameterError(
                    f"replicas ({options['replicas']}) must lie within min_replicas..max_replicas "
                    f"({min_replicas}..{max_replicas})"
                )
        if not target_ongoing_requests > 0:
            raise ParameterError(f"target_ongoing_requests must be > 0, got {target_ongoing_requests}")
        if max_queued_requests != -1 and max_queued_requests < 1:
            raise ParameterError(
                f"max_queued_requests must be -1 (no limit) or >= 1, got {max_queued_requests}"
            )
        if data_path not in DATA_PATHS:
            raise ParameterError(f"data_path must be one of {DATA_PATHS}, got {data_path!r}")
        if health_check_period <= 0 or health_check_timeout <= 0 or refresh <= 0:
            raise ParameterError(
                f"health_check_period, health_check_timeout and refresh must be > 0, got "
                f"{health_check_period}, {health_check_timeout}, {refresh}"
            )
        super().__init__(address, **options)
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.target_ongoing_requests = target_ongoing_requests
        self.max_queued_requests = max_queued_requests
        self.data_path = data_path
        self.health_check_period, self.health_check_timeout = health_check_period, health_check_timeout
        self.refresh = refresh
        self.fixed_app_name = app_name
        self.delete_on_close = delete_on_close
        self._apps: dict[str, str] = {}
        self._handles: dict[str, Any] = {}
        self._deployed: set[str] = set()

    @property
    def capacity(self) -> int:
        return (self.max_replicas or self.replicas) * self.max_concurrency

    # ---- naming and configuration ---------------------------------------------------------------
    def deployment_config(self, definition: ServiceDefinition) -> dict[str, Any]:
        """What makes two deployments of a service the same (the part of the options Serve gets)."""
        scaling: dict[str, Any] = (
            {"num_replicas": self.replicas}
            if self.min_replicas is None
            else {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "initial_replicas": self.replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        )
        return {
            "service": definition.name,
            "scaling": scaling,
            "resources": self.request(definition),
            "max_ongoing_requests": self.max_concurrency,
            "max_queued_requests": self.max_queued_requests,
            "threads": self.threads,
            "health_check": [self.health_check_period, self.health_check_timeout],
        }

    def app_name(self, definition: ServiceDefinition) -> str:
        """The Serve application of ``definition`` under these options (equal in every process)."""
        if self.fixed_app_name:
            return self.fixed_app_name
        digest = _config_digest(definition, self.deployment_config(definition))
        return f"apipeline-{definition.name}-{digest}"

    # ---- connecting -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._ray is not None:
            return
        await super().start()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._start_serve), self.start_timeout)
        except TimeoutError:
            raise RemoteError(f"Ray Serve did not start within {self.start_timeout:g} s") from None

    def _start_serve(self) -> None:
        from ray import serve

        # no HTTP proxy: services are called from apipeline processes, not over Serve's HTTP
        serve.start(proxy_location="Disabled")

    # ---- deployments ------------------------------------------------------------------------------
    def _status(self, app: str) -> tuple[str, str]:
        from ray import serve

        found = serve.status().applications.get(app)
        if found is None:
            return "", ""
        messages = [found.message] + [d.message for d in found.deployments.values() if d.message]
        return str(found.status.value if hasattr(found.status, "value") else found.status), "; ".join(
            m for m in messages if m
        )

    def _deploy(self, definition: ServiceDefinition, app: str) -> bool:
        """Deploy ``definition`` as ``app`` unless it is there already; whether this call deployed it."""
        from ray import cloudpickle, serve

        from apipeline.models._serve_policy import in_flight_policy
        from apipeline.models._serve_replica import ServiceReplica

        status, _ = self._status(app)
        if status in ("RUNNING", "DEPLOYING", "UPSCALING", "DOWNSCALING"):
            return False
        request = self.request(definition)
        actor_options: dict[str, Any] = dict(request)
        if self.runtime_env is not None:
            actor_options["runtime_env"] = self.runtime_env
        elif self.address is not None and not self._owns_local:
            actor_options["runtime_env"] = _same_code_env()
        config = self.deployment_config(definition)
        scaling: dict[str, Any]
        if self.min_replicas is None:
            scaling = {"num_replicas": self.replicas}
        else:
            scaling = {
                "autoscaling_config": {
                    **config["scaling"],
                    "upscale_delay_s": 0.0,
                    "downscale_delay_s": 10.0,
                    # replicas report their hosts' load every 0.5 s, averaged over 2 s (Serve: 10 s, 30 s)
                    "metrics_interval_s": 0.5,
                    "look_back_period_s": 2.0,
                    "policy": {"policy_function": in_flight_policy},
                }
            }
        batch = {}
        for method, fn in definition.methods.items():
            found = batch_spec(fn)
            if found is not None:
                batch[method] = (found[0].max_batch, found[0].max_wait_s)
        deployment = serve.deployment(ServiceReplica).options(  # type: ignore[attr-defined]
            name=definition.name,
            max_ongoing_requests=self.max_concurrency,
            max_queued_requests=self.max_queued_requests,
            ray_actor_options=actor_options,
            health_check_period_s=self.health_check_period,
            health_check_timeout_s=self.health_check_timeout,
            **scaling,
        )
        threads = self.threads if self.threads is not None else max(1, int(request["num_cpus"]))
        bring_up = [h.value for h in BRING_UP if h in PROTOCOL_HOOKS[definition.protocol]]
        path = [p for p in sys.path if p and os.path.isdir(p)]
        application = deployment.bind(
            cloudpickle.dumps(definition.source),
            definition.name,
            path,
            threads,
            app,
            self.max_concurrency,
            bring_up,
            batch,
        )
        serve._run(application, _blocking=False, name=app, route_prefix=None)
        return True

    async def _wait_running(self, definition: ServiceDefinition, app: str) -> None:
        """Until ``app`` runs: a failed start raises its reason, replicas not placed within
        ``start_timeout`` a :class:`ResourceError` saying what they need and what is free."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            status, message = await asyncio.to_thread(self._status, app)
            if status == "RUNNING":
                return
            if status in ("DEPLOY_FAILED", "UNHEALTHY"):
                raise ServiceStateError(
                    f"deployment {app!r} of service {definition.name!r} failed to start: {message}"
                )
            if status == "":
                raise ServiceStateError(f"deployment {app!r} of service {definition.name!r} disappeared")
            if time.monotonic() > deadline:
                free = await asyncio.to_thread(self._ray.available_resources)
                want = _as_resources(self.request(definition))
                raise ResourceError(
                    f"deployment {app!r} of service {definition.name!r} not running within "
                    f"{self.start_timeout:g} s ({status}): each replica needs {_describe(want)}, the Ray "
                    f"cluster has {_describe({k: free.get(k, 0) for k in want})} free; {message}"
                )
            await asyncio.sleep(0.1)

    def _host_names(self, app: str) -> list[str]:
        prefix = f"{app}#"
        found = self._ray.util.list_named_actors(all_namespaces=True)
        return sorted(
            a["name"] for a in found if a.get("namespace") == HOSTS_NAMESPACE and a["name"].startswith(prefix)
        )

    async def _open_host(self, index: int, name: str) -> _Host:
        handle = await asyncio.to_thread(self._ray.get_actor, name, HOSTS_NAMESPACE)
        incarnation = await self._await(handle.ping.remote(), self.start_timeout)
        if not incarnation:
            raise ServiceStateError(f"host {name!r} is not ready")
        return _Host(index, handle, incarnation, name)

    async def _create_pool(self, definition: ServiceDefinition) -> _Pool:
        await asyncio.to_thread(self._check_cluster, definition)
        app = self.app_name(definition)
        self._apps[definition.name] = app
        if await asyncio.to_thread(self._deploy, definition, app):
            self._deployed.add(app)
        try:
            await self._wait_running(definition, app)
        except BaseException:
            if app in self._deployed:  # nobody else uses a deployment that never ran
                await asyncio.to_thread(self._delete_app, app)
                self._deployed.discard(app)
            raise
        names = await asyncio.to_thread(self._host_names, app)
        hosts = await asyncio.gather(*(self._open_host(i, n) for i, n in enumerate(names)))
        if not hosts:
            raise ServiceStateError(f"deployment {app!r} runs but none of its hosts is registered")
        pool = _Pool(definition, list(hosts), asyncio.Event())
        pool.all_healthy.set()
        for r in pool.replicas:
            r.watcher = asyncio.ensure_future(self._watch(pool, r))
        if self.heartbeat is not None:
            pool.monitor = asyncio.ensure_future(self._monitor(pool))
        self._spawn(self._follow(pool, app))
        if self.data_path == "handle":
            from ray import serve

            self._handles[definition.name] = await asyncio.to_thread(serve.get_app_handle, app)
        self._pools[definition.name] = pool
        return pool

    async def _follow(self, pool: _Pool, app: str) -> None:
        """Keep the pool's hosts equal to the deployment's (autoscaled, replaced replicas)."""
        count = len(pool.replicas)
        while self._lost is None and not self._closed:
            await asyncio.sleep(self.refresh)
            if self._pools.get(pool.definition.name) is not pool:
                return
            try:
                names = set(await asyncio.to_thread(self._host_names, app))
            except Exception:  # a passing GCS hiccup: the next round decides
                continue
            for r in list(pool.replicas):
                if isinstance(r, _Host) and r.name not in names:
                    pool.replicas.remove(r)
                    for task in (r.reviver, r.watcher):
                        if task is not None:
                            task.cancel()
                    self._unwatch(r)
            known = {r.name for r in pool.replicas if isinstance(r, _Host)}
            for name in sorted(names - known):
                try:
                    host = await self._open_host(count, name)
                except Exception:  # still coming up: next round
                    continue
                count += 1
                pool.replicas.append(host)
                host.watcher = asyncio.ensure_future(self._watch(pool, host))
            if all(r.healthy for r in pool.replicas):
                pool.all_healthy.set()

    def _delete_app(self, app: str) -> None:
        from ray import serve

        try:
            serve.delete(app, _blocking=True)
        except Exception:  # already gone
            pass

    async def delete(self, service: str) -> None:
        """Delete the deployment of ``service`` (for every process using it)."""
        definition = self._definitions.get(service)
        app = self._apps.get(service) or (self.app_name(definition) if definition is not None else None)
        if app is None:
            raise ServiceStateError(f"service {service!r} is not attached to this backend")
        await self._drop_pool(service)
        await asyncio.to_thread(self._delete_app, app)

    async def _drop_pool(self, service: str) -> None:
        """Stop using the deployment's hosts (they stay: the deployment is shared)."""
        pool = self._pools.pop(service, None)
        self._handles.pop(service, None)
        if pool is None:
            return
        await self._stop_pool_tasks(pool)
        app = self._apps.get(service)
        if self.delete_on_close and app is not None and self._lost is None and self._ray is not None:
            await asyncio.to_thread(self._delete_app, app)

    # ---- lifecycle ----------------------------------------------------------------------------------
    async def invoke(
        self, service: str, hook: Hook, method: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        if hook is Hook.CLEANUP and service not in self._pools and self._lost is None:
            return True  # the deployment's replicas own their state; nothing was set up here
        if hook in (Hook.UNLOAD, Hook.CLEANUP) and self._lost is None and not self.delete_on_close:
            # a shared deployment is not unloaded because one of its users leaves
            await self._drop_pool(service)
            return True
        if hook is Hook.SERVICE and self.data_path == "handle" and self._lost is None:
            if self._closed:
                raise ServiceStateError(f"the Ray backend is closed; cannot call service {service!r}")
            pool = self._pools.get(service)
            handle = self._handles.get(service)
            if pool is None or handle is None:
                raise ServiceStateError(f"service {service!r} has no replicas (not loaded on this backend)")
            return await self._call_handle(pool, handle, method or "", params or {})
        return await super().invoke(service, hook, method, params)

    async def _call_handle(self, pool: _Pool, handle: Any, method: str, params: Mapping[str, Any]) -> Any:
        from ray.serve.exceptions import BackPressureError

        name = pool.definition.name
        response = handle.call.remote(method, params)
        try:
            return await asyncio.wait_for(response, self.call_timeout)
        except BackPressureError as exc:
            pool.overloaded += 1
            queued = exc.args[0] if exc.args else "?"
            raise Overloaded(
                f"admission refused: service {name!r} has {queued} queued (max_queued_requests "
                f"{self.max_queued_requests}, max_ongoing_requests {self.max_concurrency} per replica)"
            ) from None
        except asyncio.CancelledError:
            response.cancel()  # a missed deadline: the replica drops the call too
            raise
        except TimeoutError:
            response.cancel()
            pool.remote_errors += 1
            raise RemoteError(
                f"service {name!r}, {method!r}: no answer within {self.call_timeout:g} s"
            ) from None
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise ModelError(str(exc)) from None
        except self._ray.exceptions.RayActorError as exc:
            pool.remote_errors += 1
            raise RemoteError(
                f"service {name!r}, {method!r}: its replica died ({type(exc).__name__})"
            ) from exc

    def deployment_of(self, service: str) -> tuple[str, bool]:
        """``(application name, whether this backend deployed it)`` of a service it uses."""
        app = self._apps.get(service)
        if app is None:
            raise ServiceStateError(f"service {service!r} has no deployment on this backend yet")
        return app, app in self._deployed

    async def replica_names(self, service: str) -> list[str]:
        """The names of the hosts this backend calls (``<app>#<replica id>``)."""
        pool = self._pools.get(service)
        if pool is None:
            raise ServiceStateError(f"service {service!r} has no replicas on this backend")
        return [r.name for r in pool.replicas if isinstance(r, _Host)]
