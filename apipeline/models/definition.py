"""A service definition: the callables of one service, collected from a module or written as a class.

Two ways to write a service:

* **Decorated functions** in a module (seed 001): ``@service_func("convert", "svc")``,
  ``@get_service_info_func("svc")``, ... from one of the ``*_protocol`` modules.
* **A class** with methods named after the hooks (``info``, ``prepare``, ``load``, ``test``, ``unload``,
  ``cleanup``) and service methods marked with :func:`service_method`. Its protocol is the class attribute
  ``protocol`` (``"standard"``, ``"simple"``, ``"minimal"``) or, when absent, the smallest protocol whose
  hooks it has. A class is instantiated without arguments; pass an instance to configure it.

Either way a definition is checked here: one protocol per service, every hook of that protocol present and
none of another, the info's method list equal to the implemented methods, and each declared parameter
accepted by the implementing function.
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apipeline.errors import ServiceDefinitionError
from apipeline.models._protocol import (
    PROTOCOL_HOOKS,
    SERVICE_METHOD_ATTR,
    Hook,
    HookMark,
    ProtocolKind,
    hook_marks,
)
from apipeline.models.info import ServiceInfo, parse_service_info

_CLASS_HOOKS = (Hook.INFO, Hook.PREPARE, Hook.LOAD, Hook.TEST, Hook.UNLOAD, Hook.CLEANUP)


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """One service: its protocol, hook callables, method callables and parsed info.

    ``source`` is what it was collected from (a module path string, a class or an instance), so a backend
    in another process can rebuild it with :func:`collect_services`.
    """

    name: str
    protocol: ProtocolKind
    hooks: Mapping[Hook, Callable[..., Any]]
    methods: Mapping[str, Callable[..., Any]]
    info: ServiceInfo
    source: object

    def hook(self, hook: Hook) -> Callable[..., Any] | None:
        return self.hooks.get(hook)


def _where(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _check_signature(service: str, method: str, fn: Callable[..., Any], info: ServiceInfo) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust the declaration
        return
    declared = {p.name for p in info.methods[method].params}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    named = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    where = f"service {service!r} method {method!r} ({_where(fn)})"
    for name in declared:
        if name not in named and not var_kw:
            raise ServiceDefinitionError(
                f"{where}: info declares parameter {name!r} the function does not take; "
                f"it takes {', '.join(named) or 'nothing'}"
            )
    for name, p in named.items():
        if p.default is p.empty and name not in declared:
            raise ServiceDefinitionError(
                f"{where}: the function requires {name!r} but the info does not declare it"
            )


def _finish(
    name: str,
    protocol: ProtocolKind,
    hooks: dict[Hook, Callable[..., Any]],
    methods: dict[str, Callable[..., Any]],
    source: object,
    where: str,
) -> ServiceDefinition:
    wanted = PROTOCOL_HOOKS[protocol]
    extra = [h.value for h in hooks if h not in wanted]
    if extra:
        raise ServiceDefinitionError(
            f"{where}: service {name!r} uses the {protocol.value} protocol, which has no "
            f"{', '.join(extra)} hook; one service uses one protocol"
        )
    missing = [h.value for h in _CLASS_HOOKS if h in wanted and h not in hooks]
    if missing:
        raise ServiceDefinitionError(
            f"{where}: service {name!r} ({protocol.value} protocol) lacks the {', '.join(missing)} hook(s)"
        )
    if not methods:
        raise ServiceDefinitionError(f"{where}: service {name!r} has no service method")
    info = parse_service_info(hooks[Hook.INFO](), f"{where}: info of service {name!r}")
    if info.name != name:
        raise ServiceDefinitionError(f"{where}: service {name!r} returns info for service_name {info.name!r}")
    undeclared = sorted(set(methods) - set(info.methods))
    unimplemented = sorted(set(info.methods) - set(methods))
    if undeclared or unimplemented:
        raise ServiceDefinitionError(
            f"{where}: service {name!r}: methods implemented but not in its info: "
            f"{undeclared or 'none'}; in its info but not implemented: {unimplemented or 'none'}"
        )
    for method, fn in methods.items():
        _check_signature(name, method, fn, info)
    return ServiceDefinition(name, protocol, dict(hooks), dict(methods), info, source)


def _from_namespace(ns: types.ModuleType, source: object) -> list[ServiceDefinition]:
    groups: dict[str, list[tuple[HookMark, Callable[..., Any]]]] = {}
    for value in vars(ns).values():
        if getattr(value, "__module__", None) != ns.__name__:
            continue  # imported from elsewhere: belongs to the module that defines it
        for mark in hook_marks(value):
            groups.setdefault(mark.service, []).append((mark, value))
    out = []
    for service, marked in groups.items():
        protocols = {m.protocol for m, _ in marked}
        if len(protocols) > 1:
            detail = "; ".join(f"{_where(fn)} is {m.protocol.value}" for m, fn in marked)
            raise ServiceDefinitionError(
                f"module {ns.__name__}: service {service!r} mixes protocols ({detail}); "
                f"one service uses one protocol"
            )
        hooks: dict[Hook, Callable[..., Any]] = {}
        methods: dict[str, Callable[..., Any]] = {}
        for mark, fn in marked:
            if mark.hook is Hook.SERVICE:
                assert mark.method is not None
                if mark.method in methods:
                    raise ServiceDefinitionError(
                        f"module {ns.__name__}: service {service!r} method {mark.method!r} implemented twice"
                    )
                methods[mark.method] = fn
            else:
                if mark.hook in hooks:
                    raise ServiceDefinitionError(
                        f"module {ns.__name__}: service {service!r} has two "
                        f"{mark.hook.value} hooks: {_where(hooks[mark.hook])}, {_where(fn)}"
                    )
                hooks[mark.hook] = fn
        out.append(_finish(service, protocols.pop(), hooks, methods, source, f"module {ns.__name__}"))
    if not out:
        raise ServiceDefinitionError(
            f"module {ns.__name__} defines no service (no function decorated with "
            f"@service_func / @get_service_info_func of an apipeline protocol)"
        )
    return out


def _class_protocol(obj: object, present: set[Hook], where: str) -> ProtocolKind:
    declared = getattr(obj, "protocol", None)
    if declared is None:
        for kind in (ProtocolKind.MINIMAL, ProtocolKind.SIMPLE, ProtocolKind.STANDARD):
            if present <= PROTOCOL_HOOKS[kind]:
                return kind
    if isinstance(declared, ProtocolKind):
        return declared
    try:
        return ProtocolKind(declared)
    except ValueError:
        raise ServiceDefinitionError(
            f"{where}: protocol must be one of {[k.value for k in ProtocolKind]}, got {declared!r}"
        ) from None


def _from_object(obj: object, source: object) -> ServiceDefinition:
    where = f"class {type(obj).__qualname__}"
    hooks = {h: getattr(obj, h.value) for h in _CLASS_HOOKS if callable(getattr(obj, h.value, None))}
    methods: dict[str, Callable[..., Any]] = {}
    for attr in dir(type(obj)):
        method = getattr(getattr(type(obj), attr, None), SERVICE_METHOD_ATTR, None)
        if method is None:
            continue
        if method in methods:
            raise ServiceDefinitionError(f"{where}: service method {method!r} implemented twice")
        methods[method] = getattr(obj, attr)
    if Hook.INFO not in hooks:
        raise ServiceDefinitionError(
            f"{where}: a service class needs an info() method returning the info dict"
        )
    protocol = _class_protocol(obj, set(hooks) | {Hook.SERVICE}, where)
    name = getattr(obj, "service_name", None)
    if name is None:
        raw = hooks[Hook.INFO]()
        name = raw.get("service_name") if isinstance(raw, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ServiceDefinitionError(
            f"{where}: cannot tell the service name (info()['service_name'] is {name!r})"
        )
    return _finish(name, protocol, hooks, methods, source, where)


def collect_services(source: object) -> list[ServiceDefinition]:
    """Build the service definitions found in ``source``.

    Args:
        source: a module path (``"pkg.mod"``), a module, a service class (instantiated without arguments)
            or a service instance.

    Raises:
        ServiceDefinitionError: the source defines no service, or one written wrongly (the message says how).
    """
    if isinstance(source, str):
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ServiceDefinitionError(f"cannot import service module {source!r}: {exc}") from exc
        return _from_namespace(module, source)
    if isinstance(source, types.ModuleType):
        return _from_namespace(source, source.__name__)
    if inspect.isclass(source):
        try:
            instance = source()
        except TypeError as exc:
            raise ServiceDefinitionError(
                f"service class {source.__qualname__} cannot be built without "
                f"arguments ({exc}); register an instance instead"
            ) from exc
        return [_from_object(instance, source)]
    if callable(source) and hook_marks(source):
        raise ServiceDefinitionError(f"register the module that defines {_where(source)}, not the function")
    return [_from_object(source, source)]
