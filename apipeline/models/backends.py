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
import difflib
from collections.abc import Callable
from typing import Any

from apipeline.errors import ParameterError
from apipeline.models.backend import LocalBackend, ModelBackend

#: Calls in flight per replica when a command does not say (``--ray-max-concurrency``).
DEFAULT_MAX_CONCURRENCY = 16


def backend_from_address(address: str | None, *, serve: bool = False, **options: Any) -> ModelBackend:
    """The backend an ``--ray-address`` value (or a graph's ``backend``/``ray_address``) asks for.

    ``options`` go to :class:`RayBackend` (``replicas``, ``num_cpus``...), with ``serve=True`` to
    :class:`~apipeline.models.serve_backend.ServeBackend` (also ``min_replicas``, ``max_replicas``...),
    or, without an address, to :class:`LocalBackend` (``max_workers``). A bad option raises a ValueError
    naming it (:class:`~apipeline.errors.ParameterError` from :class:`LocalBackend`).
    """
    if address is None or address == "":
        if serve:
            raise ParameterError("a Ray Serve deployment needs a Ray address (--ray-address)")
        return LocalBackend(**options)
    if serve:
        from apipeline.models.serve_backend import ServeBackend

        return ServeBackend(address, **options)
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
        "--ray-replicas",
        type=positive_int,
        default=None,
        metavar="N",
        help="replicas per service (default 1; with autoscaling the initial count, default the minimum)",
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
        "--ray-serve",
        action="store_true",
        help="host the services as Ray Serve deployments that every process on the cluster shares "
        "(found by name; deployed by the first process that needs one)",
    )
    group.add_argument(
        "--ray-min-replicas",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --ray-serve: autoscale from N replicas (with --ray-max-replicas)",
    )
    group.add_argument(
        "--ray-max-replicas",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --ray-serve: autoscale up to N replicas (with --ray-min-replicas)",
    )
    group.add_argument(
        "--ray-target-ongoing",
        type=_checked(float, lambda v: v > 0, "a number of calls > 0"),
        default=2.0,
        metavar="N",
        help="with --ray-serve autoscaling: calls in flight per replica to aim at (default 2)",
    )
    group.add_argument(
        "--ray-max-queued",
        type=_checked(int, lambda v: v == -1 or v >= 1, "-1 (no limit) or an integer >= 1"),
        default=64,
        metavar="N",
        help="with --ray-serve --ray-data-path handle: calls queued before one is refused (default 64)",
    )
    group.add_argument(
        "--ray-data-path",
        choices=("actor", "handle"),
        default="actor",
        help="with --ray-serve: call the replicas' hosts directly (actor, default: the per-chunk budget) "
        "or through Serve handles (handle)",
    )
    group.add_argument(
        "--ray-start-timeout",
        type=_checked(float, lambda v: v > 0, "seconds > 0"),
        default=120.0,
        metavar="SECONDS",
        help="bound on joining the cluster and bringing the replicas up (default 120)",
    )
    _check_together(parser)


def _check_together(parser: argparse.ArgumentParser) -> None:
    """Check the options that are wrong only together (min above max...) when ``parser`` parses: a
    usage error (exit 2) before anything starts, as for a single bad value."""
    parse = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = parse(args, namespace)
        low, high = getattr(parsed, "ray_min_replicas", None), getattr(parsed, "ray_max_replicas", None)
        if (low is None) != (high is None):
            parser.error("--ray-min-replicas and --ray-max-replicas go together (autoscaling bounds)")
        if low is not None and high is not None and low > high:
            parser.error(f"--ray-min-replicas ({low}) is above --ray-max-replicas ({high})")
        if low is not None and not getattr(parsed, "ray_serve", False):
            parser.error("--ray-min-replicas/--ray-max-replicas need --ray-serve (autoscaling is Serve's)")
        replicas = getattr(parsed, "ray_replicas", None)
        if low is not None and high is not None and replicas is not None and not low <= replicas <= high:
            parser.error(f"--ray-replicas ({replicas}) lies outside --ray-min/max-replicas ({low}..{high})")
        return parsed, rest

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign,assignment]


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`RayBackend` keywords of the options :func:`add_backend_arguments` added (with
    ``--ray-serve``: ``serve=True`` and the :class:`ServeBackend` ones)."""
    options = {
        "replicas": getattr(args, "ray_replicas", None) or getattr(args, "ray_min_replicas", None) or 1,
        "num_cpus": getattr(args, "ray_cpus", None),
        "num_gpus": getattr(args, "ray_gpus", None),
        "max_concurrency": getattr(args, "ray_max_concurrency", DEFAULT_MAX_CONCURRENCY),
        "start_timeout": getattr(args, "ray_start_timeout", 120.0),
    }
    if getattr(args, "ray_serve", False):
        options.update(
            serve=True,
            min_replicas=getattr(args, "ray_min_replicas", None),
            max_replicas=getattr(args, "ray_max_replicas", None),
            target_ongoing_requests=getattr(args, "ray_target_ongoing", 2.0),
            max_queued_requests=getattr(args, "ray_max_queued", 64),
            data_path=getattr(args, "ray_data_path", "actor"),
        )
    return options


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


#: a graph's ``ray:`` keys (with ``backend: ray``): how its model stages are hosted. The names are Ray
#: Serve's where Serve has one (``max_ongoing_requests`` is a replica's calls in flight on either path).
RAY_OPTIONS = {
    "serve": "serve",
    "replicas": "replicas",
    "min_replicas": "min_replicas",
    "max_replicas": "max_replicas",
    "num_cpus": "num_cpus",
    "num_gpus": "num_gpus",
    "max_ongoing_requests": "max_concurrency",
    "target_ongoing_requests": "target_ongoing_requests",
    "max_queued_requests": "max_queued_requests",
    "data_path": "data_path",
    "start_timeout": "start_timeout",
}


def ray_backend_options(ray: dict[str, Any]) -> dict[str, Any]:
    """The :func:`~apipeline.models.backends.backend_from_address` keywords of a graph's ``ray:``."""
    return {RAY_OPTIONS[key]: value for key, value in ray.items()}


def check_ray_options(ray: Any) -> str | None:
    """Why a graph's ``ray:`` mapping cannot host its stages (``None`` when it can): unknown keys (with
    a did-you-mean), and every value checked by the backend's own constructor (nothing starts)."""
    if not isinstance(ray, dict):
        return f"expected a mapping of Ray options ({', '.join(RAY_OPTIONS)}), got {ray!r}"
    for key in ray:
        if key not in RAY_OPTIONS:
            close = difflib.get_close_matches(str(key), RAY_OPTIONS, 1, 0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown Ray option {key!r}{hint}; known: {', '.join(RAY_OPTIONS)}"
    serve_only = {
        "min_replicas",
        "max_replicas",
        "target_ongoing_requests",
        "max_queued_requests",
        "data_path",
    }
    if not ray.get("serve") and serve_only & set(ray):
        return f"{', '.join(sorted(serve_only & set(ray)))} need 'serve: true' (Ray Serve deployments)"
    try:
        backend_from_address("local", **ray_backend_options(ray))
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None
