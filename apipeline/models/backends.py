"""Choosing a model backend from a command-line or graph option.

``backend_from_address(None)`` is the in-process :class:`~apipeline.models.LocalBackend` (the default,
no Ray needed); any address selects :class:`~apipeline.models.ray_backend.RayBackend`: ``"local"``
starts a Ray instance in this process, ``"auto"`` joins the cluster started on this machine with
``ray start``, ``"host:port"`` / ``"ray://host:port"`` a remote one. ``ray`` is imported only then.

Commands offer the same options through :func:`add_backend_arguments` (``--ray-replicas``,
``--ray-cpus``...) and build the backend with :func:`backend_from_options`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from apipeline.models.backend import LocalBackend, ModelBackend

#: Calls in flight per replica when a command does not say (``--ray-max-concurrency``).
DEFAULT_MAX_CONCURRENCY = 16


def backend_from_address(address: str | None, **options: Any) -> ModelBackend:
    """The backend an ``--ray-address`` value (or a graph's ``backend``/``ray_address``) asks for.

    ``options`` go to :class:`RayBackend` (``replicas``, ``num_cpus``...) or, without an address, to
    :class:`LocalBackend` (``max_workers``). A bad option raises a ValueError naming it
    (:class:`~apipeline.errors.ParameterError` from :class:`LocalBackend`).
    """
    if address is None or address == "":
        return LocalBackend(**options)
    from apipeline.models.ray_backend import RayBackend

    return RayBackend(address, **options)


def registry_options(backend: ModelBackend) -> dict[str, int]:
    """``ModelRegistry`` keywords that leave admission to ``backend`` when it does its own (a Ray pool
    refuses a call with ``Overloaded`` when every replica is full, and counts it): the registry then
    neither limits nor queues, so there is one admission and one honest count of refusals."""
    if getattr(backend, "capacity", None) is None:
        return {}
    return {"max_concurrency": 1 << 30, "max_pending": 0}


def _checked(kind: Callable[[str], Any], test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def ray_address(text: str) -> str:
    """argparse type of ``--ray-address``: ``local``, ``auto``, ``host:port`` or ``ray://host:port``."""
    if text in ("local", "auto"):
        return text
    from apipeline.models.ray_backend import _parse_address

    try:
        _parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Ray pool options next to a command's ``--ray-address`` (and check that one's value)."""
    address = parser._option_string_actions.get("--ray-address")  # defined by the command itself
    if address is not None:
        address.type = ray_address
    group = parser.add_argument_group("model workers on Ray (with --ray-address)")
    positive_int = _checked(int, lambda v: v >= 1, "an integer >= 1")
    group.add_argument(
        "--ray-replicas", type=positive_int, default=1, metavar="N", help="replicas per service (default 1)"
    )
    group.add_argument(
        "--ray-cpus",
        type=_checked(float, lambda v: v > 0, "a number of cpu cores > 0"),
        default=None,
        metavar="CORES",
        help="cpu cores each replica reserves (default: what the service declares, else 1)",
    )
    group.add_argument(
        "--ray-gpus",
        type=_checked(float, lambda v: v >= 0, "a number of GPUs >= 0"),
        default=None,
        metavar="GPUS",
        help="GPUs each replica reserves, fractions allowed (default: what the service declares)",
    )
    group.add_argument(
        "--ray-max-concurrency",
        type=positive_int,
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help=f"calls in flight per replica before a call is refused as overloaded "
        f"(default {DEFAULT_MAX_CONCURRENCY})",
    )
    group.add_argument(
        "--ray-start-timeout",
        type=_checked(float, lambda v: v > 0, "seconds > 0"),
        default=120.0,
        metavar="SECONDS",
        help="bound on joining the cluster and bringing the replicas up (default 120)",
    )


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`RayBackend` keywords of the options :func:`add_backend_arguments` added."""
    return {
        "replicas": getattr(args, "ray_replicas", 1),
        "num_cpus": getattr(args, "ray_cpus", None),
        "num_gpus": getattr(args, "ray_gpus", None),
        "max_concurrency": getattr(args, "ray_max_concurrency", DEFAULT_MAX_CONCURRENCY),
        "start_timeout": getattr(args, "ray_start_timeout", 120.0),
    }


def backend_from_options(args: argparse.Namespace) -> ModelBackend | None:
    """The backend a command's parsed options ask for; ``None`` without ``--ray-address``."""
    address = getattr(args, "ray_address", None)
    if address is None:
        return None
    return backend_from_address(address, **backend_options(args))


def bring_up_timeout(backend: Any, default: float = 10.0) -> float:
    """How long a pipeline should give its stages to start when ``backend`` (or a registry's) is remote:
    the backend's own ``start_timeout`` (joining, placing and loading replicas), not a generic limit."""
    backend = getattr(backend, "backend", backend)  # a ModelRegistry
    return max(default, float(getattr(backend, "start_timeout", default)))
