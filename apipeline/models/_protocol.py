"""The three lifecycle protocols and the decorators that mark a function as one of a service's hooks.

A decorator does not wrap the function: it attaches a :class:`HookMark` and returns the function itself,
so decorated functions stay plain, callable and picklable by reference. The registry later collects the
marks from a module (or a class) and builds one :class:`~apipeline.models.definition.ServiceDefinition`
per service name. Marking the same function for two protocols is refused here, at decoration time;
mixing protocols across functions of one service is refused when the service is collected.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from apipeline.errors import ServiceDefinitionError

F = TypeVar("F", bound=Callable[..., Any])

MARK_ATTR = "__apipeline_hooks__"


class ProtocolKind(enum.Enum):
    """Which lifecycle a service follows (seed 001): standard, simple (prepare also loads) or minimal."""

    STANDARD = "standard"
    SIMPLE = "simple"
    MINIMAL = "minimal"


class Hook(enum.Enum):
    """One entry point of a service."""

    INFO = "info"
    PREPARE = "prepare"
    LOAD = "load"
    TEST = "test"
    UNLOAD = "unload"
    CLEANUP = "cleanup"
    SERVICE = "service"


#: Hooks each protocol has; every one of them must be implemented.
PROTOCOL_HOOKS: dict[ProtocolKind, frozenset[Hook]] = {
    ProtocolKind.STANDARD: frozenset(Hook),
    ProtocolKind.SIMPLE: frozenset({Hook.INFO, Hook.PREPARE, Hook.SERVICE, Hook.CLEANUP}),
    ProtocolKind.MINIMAL: frozenset({Hook.INFO, Hook.SERVICE}),
}


@dataclass(frozen=True, slots=True)
class HookMark:
    """What a decorator records on a function: protocol, hook, service name and (for SERVICE) method."""

    protocol: ProtocolKind
    hook: Hook
    service: str
    method: str | None = None


def _check_name(value: object, what: str, decorator: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ServiceDefinitionError(f"@{decorator}: {what} must be a non-empty string, got {value!r}")
    return value


def _attach(fn: F, mark: HookMark, decorator: str) -> F:
    if not callable(fn):
        raise ServiceDefinitionError(f"@{decorator}({mark.service!r}) must decorate a function, got {fn!r}")
    marks: tuple[HookMark, ...] = getattr(fn, MARK_ATTR, ())
    for other in marks:
        if other.protocol is not mark.protocol:
            raise ServiceDefinitionError(
                f"{getattr(fn, '__qualname__', fn)!r} is marked for the {other.protocol.value} protocol and "
                f"now for the {mark.protocol.value} protocol; one service uses one protocol"
            )
    setattr(fn, MARK_ATTR, (*marks, mark))
    return fn


def hook_marks(obj: object) -> tuple[HookMark, ...]:
    """The marks a decorated function carries (empty for anything else)."""
    marks = getattr(obj, MARK_ATTR, ())
    return marks if isinstance(marks, tuple) else ()


def make_hook_decorator(protocol: ProtocolKind, hook: Hook) -> Callable[[str], Callable[[F], F]]:
    """Build ``@<hook>_func(service)`` for one protocol."""
    decorator = "get_service_info_func" if hook is Hook.INFO else f"{hook.value}_func"

    def factory(service: str) -> Callable[[F], F]:
        name = _check_name(service, "the service name", decorator)

        def mark(fn: F) -> F:
            return _attach(fn, HookMark(protocol, hook, name), decorator)

        return mark

    factory.__name__ = decorator
    factory.__qualname__ = decorator
    factory.__doc__ = f"Mark a function as the {hook.value} hook of ``service`` ({protocol.value} protocol)."
    return factory


def make_service_decorator(protocol: ProtocolKind) -> Callable[[str, str], Callable[[F], F]]:
    """Build ``@service_func(method, service)`` for one protocol."""

    def service_func(method: str, service: str) -> Callable[[F], F]:
        method_name = _check_name(method, "the method name", "service_func")
        service_name = _check_name(service, "the service name", "service_func")

        def mark(fn: F) -> F:
            return _attach(fn, HookMark(protocol, Hook.SERVICE, service_name, method_name), "service_func")

        return mark

    service_func.__doc__ = (
        f"Mark a function as method ``method`` of service ``service`` ({protocol.value} protocol). "
        "It is called with the call's params dict as keyword arguments."
    )
    return service_func


SERVICE_METHOD_ATTR = "__apipeline_service_method__"


def service_method(name: str | None = None) -> Callable[[F], F]:
    """Mark a method of a class-written service as a service method (``name`` defaults to its own name)."""

    def mark(fn: F) -> F:
        method = name if name is not None else getattr(fn, "__name__", None)
        setattr(fn, SERVICE_METHOD_ATTR, _check_name(method, "the method name", "service_method"))
        return fn

    return mark
