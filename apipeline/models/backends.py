"""Choosing a model backend from a command-line or graph option.

``backend_from_address(None)`` is the in-process :class:`~apipeline.models.LocalBackend` (the default,
no Ray needed); any address selects :class:`~apipeline.models.ray_backend.RayBackend`: ``"local"``
starts a Ray instance in this process, ``"auto"`` joins the cluster started on this machine with
``ray start``, ``"host:port"`` / ``"ray://host:port"`` a remote one. ``ray`` is imported only then.
"""

from __future__ import annotations

from typing import Any

from apipeline.models.backend import LocalBackend, ModelBackend


def backend_from_address(address: str | None, **options: Any) -> ModelBackend:
    """The backend an ``--ray-address`` value (or a graph's ``backend``/``ray_address``) asks for.

    ``options`` go to :class:`RayBackend` (``replicas``, ``num_cpus``...) or, without an address, to
    :class:`LocalBackend` (``max_workers``).
    """
    if address is None or address == "":
        return LocalBackend(**options)
    from apipeline.models.ray_backend import RayBackend

    return RayBackend(None if address == "local" else address, **options)


def registry_options(backend: ModelBackend) -> dict[str, int]:
    """``ModelRegistry`` keywords that let ``backend`` be the limit: for a Ray pool, its full capacity
    as the per-service concurrency and no waiting (a saturated pool answers ``Overloaded`` at once)."""
    capacity = getattr(backend, "capacity", None)
    if capacity is None:
        return {}
    return {"max_concurrency": int(capacity), "max_pending": 0}
