"""Service info in the seed's dict format, parsed into records, and call parameters checked against it.

The dict a service's info hook returns (seed 001)::

    {"service_name": str, "service_desc": str,
     "resources": {"cpu": cores, "memory": bytes, "gpu": "0,1"},          # optional, each key optional
     "methods": [{"name": str, "desc": str,
                  "params": [{"name", "type", "type_desc", "desc"}, ...],  # optional keys: required, default
                  "return": {"type", "type_desc", "desc"}}, ...]}

``type`` is a type name: ``str int float bool bytes list tuple dict ndarray any none``, or a union such as
``"ndarray|list"``. An ``int`` is accepted where ``float`` is declared; ``bool`` is never taken for a number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apipeline.errors import ServiceDefinitionError, ServiceParamError

_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "bytes": (bytes, bytearray, memoryview),
    "list": (list, tuple),
    "tuple": (tuple,),
    "dict": (dict,),
    "none": (type(None),),
}
_ALIASES = {
    "numpy.ndarray": "ndarray",
    "np.ndarray": "ndarray",
    "array": "ndarray",
    "none": "none",
    "nonetype": "none",
    "object": "any",
    "number": "float",
    "double": "float",
    "string": "str",
}
TYPE_NAMES = (*_SCALARS, "ndarray", "any")


def _normalise_type(text: object, where: str) -> tuple[str, ...]:
    if not isinstance(text, str) or not text.strip():
        raise ServiceDefinitionError(f"{where}: 'type' must be a type name such as 'int', got {text!r}")
    names = []
    for part in text.split("|"):
        name = part.strip().lower()
        name = _ALIASES.get(name, name)
        if name not in TYPE_NAMES:
            raise ServiceDefinitionError(
                f"{where}: unknown type {part.strip()!r}; known: {', '.join(TYPE_NAMES)}"
            )
        names.append(name)
    return tuple(names)


def value_matches(value: object, types: tuple[str, ...]) -> bool:
    """Whether ``value`` is of one of the declared type names (numpy scalars count as int/float)."""
    for name in types:
        if name == "any":
            return True
        if name == "ndarray":
            np = _numpy()
            if np is not None and isinstance(value, np.ndarray):
                return True
            continue
        if isinstance(value, bool) and name in ("int", "float"):
            continue
        if isinstance(value, _SCALARS[name]):
            return True
        np = _numpy()
        if np is not None and name in ("int", "float") and isinstance(value, np.integer):
            return True
        if np is not None and name == "float" and isinstance(value, np.floating):
            return True
    return False


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a core dependency
        return None
    return numpy


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    types: tuple[str, ...]
    type_desc: str = ""
    desc: str = ""
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "|".join(self.types),
            "type_desc": self.type_desc,
            "desc": self.desc,
            "required": self.required,
        }


@dataclass(frozen=True, slots=True)
class ReturnInfo:
    types: tuple[str, ...] = ("any",)
    type_desc: str = ""
    desc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "|".join(self.types), "type_desc": self.type_desc, "desc": self.desc}


@dataclass(frozen=True, slots=True)
class MethodInfo:
    name: str
    desc: str
    params: tuple[ParamInfo, ...]
    returns: ReturnInfo

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "desc": self.desc,
            "params": [p.to_dict() for p in self.params],
            "return": self.returns.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ResourceNeeds:
    """Declared needs: cpu cores, memory bytes, gpu ids (``None``/empty: no constraint)."""

    cpu: float | None = None
    memory: int | None = None
    gpu: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "memory": self.memory, "gpu": ",".join(str(g) for g in self.gpu)}


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    desc: str
    resources: ResourceNeeds
    methods: dict[str, MethodInfo] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The seed's dict format, normalised (every key present)."""
        return {
            "service_name": self.name,
            "service_desc": self.desc,
            "resources": self.resources.to_dict(),
            "methods": [m.to_dict() for m in self.methods.values()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)


def _str_field(d: Mapping[str, Any], key: str, where: str, required: bool = False) -> str:
    value = d.get(key, None)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ServiceDefinitionError(
            f"{where}: {key!r} must be a {'non-empty ' if required else ''}string, got {value!r}"
        )
    return value


def _parse_gpu(value: object, where: str) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    items: list[object]
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ServiceDefinitionError(
            f"{where}: resources.gpu must be ids like '0,1' or [0, 1], got {value!r}"
        )
    try:
        ids = tuple(int(v) for v in items)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ServiceDefinitionError(f"{where}: resources.gpu must be integer ids, got {value!r}") from None
    if any(i < 0 for i in ids):
        raise ServiceDefinitionError(f"{where}: resources.gpu ids must be >= 0, got {value!r}")
    return ids


def _parse_resources(raw: object, where: str) -> ResourceNeeds:
    if raw is None:
        return ResourceNeeds()
    if not isinstance(raw, Mapping):
        raise ServiceDefinitionError(f"{where}: 'resources' must be a dict, got {type(raw).__name__}")
    cpu, memory = raw.get("cpu"), raw.get("memory")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0):
        raise ServiceDefinitionError(
            f"{where}: resources.cpu must be a positive number of cores, got {cpu!r}"
        )
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory < 0):
        raise ServiceDefinitionError(f"{where}: resources.memory must be bytes (int >= 0), got {memory!r}")
    return ResourceNeeds(cpu=cpu, memory=memory, gpu=_parse_gpu(raw.get("gpu"), where))


def _parse_param(raw: object, where: str) -> ParamInfo:
    if not isinstance(raw, Mapping):
        raise ServiceDefinitionError(f"{where}: each param must be a dict, got {raw!r}")
    name = _str_field(raw, "name", where, required=True)
    at = f"{where} param {name!r}"
    required = raw.get("required", "default" not in raw)
    if not isinstance(required, bool):
        raise ServiceDefinitionError(f"{at}: 'required' must be a bool, got {required!r}")
    return ParamInfo(
        name,
        _normalise_type(raw.get("type"), at),
        _str_field(raw, "type_desc", at),
        _str_field(raw, "desc", at),
        required,
    )


def _parse_method(raw: object, where: str) -> MethodInfo:
    if not isinstance(raw, Mapping):
        raise ServiceDefinitionError(f"{where}: each method must be a dict, got {raw!r}")
    name = _str_field(raw, "name", where, required=True)
    at = f"{where} method {name!r}"
    params_raw = raw.get("params", [])
    if not isinstance(params_raw, (list, tuple)):
        raise ServiceDefinitionError(f"{at}: 'params' must be a list, got {type(params_raw).__name__}")
    params = tuple(_parse_param(p, at) for p in params_raw)
    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            raise ServiceDefinitionError(f"{at}: parameter {p.name!r} declared twice")
        seen.add(p.name)
    ret_raw = raw.get("return") or {}
    if not isinstance(ret_raw, Mapping):
        raise ServiceDefinitionError(f"{at}: 'return' must be a dict, got {ret_raw!r}")
    returns = ReturnInfo(
        _normalise_type(ret_raw.get("type", "any"), f"{at} return"),
        _str_field(ret_raw, "type_desc", at),
        _str_field(ret_raw, "desc", at),
    )
    return MethodInfo(name, _str_field(raw, "desc", at), params, returns)


def parse_service_info(raw: object, where: str) -> ServiceInfo:
    """Validate an info dict and turn it into a :class:`ServiceInfo` (``where`` names its origin)."""
    if not isinstance(raw, Mapping):
        raise ServiceDefinitionError(f"{where}: the info hook must return a dict, got {type(raw).__name__}")
    name = _str_field(raw, "service_name", where, required=True)
    methods_raw = raw.get("methods", [])
    if not isinstance(methods_raw, (list, tuple)):
        raise ServiceDefinitionError(f"{where}: 'methods' must be a list, got {type(methods_raw).__name__}")
    methods: dict[str, MethodInfo] = {}
    for m in methods_raw:
        info = _parse_method(m, where)
        if info.name in methods:
            raise ServiceDefinitionError(f"{where}: method {info.name!r} declared twice")
        methods[info.name] = info
    return ServiceInfo(
        name, _str_field(raw, "service_desc", where), _parse_resources(raw.get("resources"), where), methods
    )


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_params(method: MethodInfo, params: object, where: str) -> dict[str, Any]:
    """Check a call's params against the declaration; return them as a plain dict.

    Raises:
        ServiceParamError: params is not a dict, or a parameter is missing, unknown or of the wrong type;
            the message names the parameter, the expected type and what came.
    """
    if not isinstance(params, Mapping):
        raise ServiceParamError(
            f"{where}: params must be a dict of name -> value, got {type(params).__name__}"
        )
    declared = {p.name: p for p in method.params}
    unknown = [k for k in params if k not in declared]
    if unknown:
        raise ServiceParamError(
            f"{where}: unknown parameter {unknown[0]!r}; expected {', '.join(declared) or 'no parameters'}"
        )
    for p in method.params:
        if p.name not in params:
            if p.required:
                raise ServiceParamError(f"{where}: missing parameter {p.name!r} ({'|'.join(p.types)})")
            continue
        value = params[p.name]
        if not value_matches(value, p.types):
            raise ServiceParamError(
                f"{where}: parameter {p.name!r} must be {'|'.join(p.types)}, "
                f"got {type(value).__name__} {_describe(value)}"
            )
    return dict(params)
