"""The processor-type registry: names a graph file may use, and what each accepts.

A type is registered with :func:`register_processor` (a class) or :meth:`Registry.register_lazy` (an
import path ``"package.module:Class"``, imported on first use so that ``import apipeline.graph`` never
pulls numpy-heavy or torch-heavy modules). Plug-ins add types through the entry-point group
``apipeline.processors``: each entry point's name is the type name and its value the class
(``myplugin.procs:Echo``); they are read once, when the registry is first asked for names.

The parameter schema of a type comes from its class: the ``__init__`` signature gives the names,
defaults and annotations (resolved with :func:`typing.get_type_hints`), the docstring's ``Args:`` section
gives descriptions. ``name`` is never a parameter: a node's id names its processor. Formats, latency and
ports come from the class attributes ``input_format``/``output_format``/``latency`` and, for nodes with
several named inputs or outputs, ``input_ports``/``output_ports`` (tuples of names).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from apipeline.errors import ConfigurationError, DefinitionError, UnknownNameError
from apipeline.graph.annotations import _EMPTY, describe, json_schema, settable

logger = logging.getLogger("apipeline")

ENTRY_POINT_GROUP = "apipeline.processors"
DEFAULT_INPUTS = ("in",)
DEFAULT_OUTPUTS = ("out",)
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s*\*?\*?(\w+(?:\s*,\s*\w+)*)\s*(?:\(.*?\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class ParamSpec:
    """One constructor parameter as a graph file sees it."""

    name: str
    annotation: Any
    required: bool
    default: Any = None
    description: str = ""
    settable: bool = True

    @property
    def type_name(self) -> str:
        return describe(self.annotation)

    def to_json(self) -> dict[str, Any]:
        from apipeline.graph.annotations import to_plain

        out: dict[str, Any] = {"name": self.name, "type": self.type_name, "required": self.required}
        if not self.required:
            out["default"] = _jsonable(to_plain(self.default))
        if self.description:
            out["description"] = self.description
        if not self.settable:
            out["settable"] = False
        return out


@dataclass
class ProcessorSpec:
    """A registered processor type: its class (once imported) and its parameter schema."""

    name: str
    cls: type
    params: dict[str, ParamSpec] = field(default_factory=dict)
    summary: str = ""
    origin: str = "builtin"

    @property
    def input_format(self) -> Any:
        return getattr(self.cls, "input_format", None)

    @property
    def output_format(self) -> Any:
        return getattr(self.cls, "output_format", None)

    @property
    def latency(self) -> float:
        value = getattr(self.cls, "latency", 0.0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    @property
    def input_ports(self) -> tuple[str, ...]:
        return tuple(getattr(self.cls, "input_ports", None) or DEFAULT_INPUTS)

    @property
    def output_ports(self) -> tuple[str, ...]:
        return tuple(getattr(self.cls, "output_ports", None) or DEFAULT_OUTPUTS)

    @property
    def role(self) -> str:
        """``source``, ``sink`` or ``filter`` (from the I/O base classes), for ``--input``/``--output``."""
        from apipeline.processors.io import InputProcessor, OutputProcessor

        if issubclass(self.cls, InputProcessor):
            return "source"
        if issubclass(self.cls, OutputProcessor):
            return "sink"
        return str(getattr(self.cls, "graph_role", "filter"))

    @property
    def usable(self) -> str | None:
        """``None`` when a graph file can create this type, else why not."""
        bad = [p.name for p in self.params.values() if p.required and not p.settable]
        if bad:
            return f"required parameter(s) {', '.join(bad)} cannot be written in a file"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "class": f"{self.cls.__module__}:{self.cls.__qualname__}",
            "summary": self.summary,
            "origin": self.origin,
            "params": [p.to_json() for p in self.params.values()],
            "input_format": _format_json(self.input_format),
            "output_format": _format_json(self.output_format),
            "latency_s": self.latency,
            "inputs": list(self.input_ports),
            "outputs": list(self.output_ports),
            "usable": self.usable is None,
        }


def _format_json(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    return {"sample_rate": fmt.sample_rate, "channels": fmt.channels, "dtype": fmt.dtype}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _doc_args(doc: str | None) -> dict[str, str]:
    """Descriptions from a Google-style ``Args:`` section (``a, b: text`` lines describe both)."""
    out: dict[str, str] = {}
    if not doc:
        return out
    lines = inspect.cleandoc(doc).splitlines()
    inside = False
    current: list[str] = []
    indent = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not line.strip():
            if out:
                inside = False
            continue
        lead = len(line) - len(line.lstrip())
        if indent is None:
            indent = lead
        if lead < indent:
            inside = False
            continue
        m = _ARG_LINE.match(line)
        if lead == indent and m:
            current = [n.strip() for n in m.group(1).split(",")]
            for name in current:
                out[name] = m.group(2).strip()
        elif current:
            for name in current:
                out[name] = f"{out[name]} {line.strip()}".strip()
    return out


def params_of(cls: type) -> dict[str, ParamSpec]:
    """The parameter schema of ``cls.__init__`` (see the module docstring)."""
    init = cls.__init__  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(init)
    except Exception:
        hints = {}
    docs = {**_doc_args(cls.__doc__), **_doc_args(init.__doc__)}
    out: dict[str, ParamSpec] = {}
    for p in inspect.signature(init).parameters.values():
        if p.name in ("self", "name") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(p.name, _EMPTY)
        required = p.default is inspect.Parameter.empty
        out[p.name] = ParamSpec(
            name=p.name,
            annotation=ann,
            required=required,
            default=None if required else p.default,
            description=docs.get(p.name, ""),
            settable=settable(ann),
        )
    return out


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Processor types by name. Lazy entries are imported on first use."""

    def __init__(self, *, entry_points: bool = True) -> None:
        self._specs: dict[str, ProcessorSpec] = {}
        self._lazy: dict[str, tuple[str, str]] = {}
        self._broken: dict[str, str] = {}
        self._entry_points_loaded = not entry_points

    def register(self, name: str, cls: type, *, origin: str = "builtin") -> ProcessorSpec:
        """Register ``cls`` under ``name``; a later registration of the same name replaces it."""
        from apipeline.processors.frame_processor import FrameProcessor

        if not (isinstance(cls, type) and issubclass(cls, FrameProcessor)):
            raise DefinitionError(
                f"register_processor({name!r}): expected a FrameProcessor subclass, got {cls!r}"
            )
        spec = ProcessorSpec(name=name, cls=cls, params=params_of(cls), summary=_summary(cls), origin=origin)
        self._specs[name] = spec
        self._lazy.pop(name, None)
        self._broken.pop(name, None)
        return spec

    def register_lazy(self, name: str, target: str, *, origin: str = "builtin") -> None:
        """Register ``"module:Class"`` under ``name`` without importing it yet."""
        if ":" not in target:
            raise ConfigurationError(f"lazy registration {name!r}: expected 'module:Class', got {target!r}")
        if name not in self._specs:
            self._lazy[name] = (target, origin)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            self.register_lazy(ep.name, ep.value, origin=f"plugin {ep.dist.name if ep.dist else ep.value}")

    def _resolve(self, name: str) -> ProcessorSpec | None:
        spec = self._specs.get(name)
        if spec is not None or name not in self._lazy:
            return spec
        target, origin = self._lazy[name]
        module, _, attr = target.partition(":")
        try:
            cls: Any = importlib.import_module(module)
            for part in attr.split("."):
                cls = getattr(cls, part)
        except Exception as exc:
            why = f"cannot import {target}: {type(exc).__name__}: {exc}"
            if isinstance(exc, ModuleNotFoundError) and exc.name:
                from apipeline.extras import install_hint

                why += f" ({install_hint(exc.name)})"  # which extra to install, said before any work
            self._broken[name] = why
            return None
        return self.register(name, cls, origin=origin)

    def names(self) -> list[str]:
        """Every registered name (imported or not), sorted."""
        self._load_entry_points()
        return sorted({*self._specs, *self._lazy})

    def get(self, name: str) -> ProcessorSpec:
        """The spec of ``name``; ``KeyError`` (with the import failure, if any) when it is not usable."""
        self._load_entry_points()
        spec = self._resolve(name)
        if spec is None:
            raise UnknownNameError(self._broken.get(name, f"unknown processor type {name!r}"))
        return spec

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._specs or name in self._lazy

    def specs(self) -> Iterator[ProcessorSpec]:
        """Every spec that imports; failures are recorded in :meth:`broken`."""
        for name in self.names():
            spec = self._resolve(name)
            if spec is not None:
                yield spec

    def broken(self) -> dict[str, str]:
        """Names whose import failed, with the reason."""
        return dict(self._broken)

    def create(self, name: str, params: dict[str, Any], *, node_id: str) -> Any:
        """Instantiate type ``name`` with already-checked ``params``, named ``node_id``."""
        spec = self.get(name)
        return spec.cls(**params, name=node_id)

    def json_schema(self, name: str) -> dict[str, Any]:
        spec = self.get(name)
        props = {
            p.name: {**json_schema(p.annotation), "description": p.description or p.type_name}
            for p in spec.params.values()
            if p.settable
        }
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": props,
            "required": [p.name for p in spec.params.values() if p.required],
        }


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry with the built-in types and the plug-ins."""
    global _default
    if _default is None:
        from apipeline.graph.builtins import register_builtins

        _default = Registry()
        register_builtins(_default)
    return _default


def register_processor(name: str, cls: type, *, registry: Registry | None = None) -> ProcessorSpec:
    """Register a processor class under ``name`` in the default registry (or ``registry``)."""
    return (registry or default_registry()).register(name, cls, origin=f"{cls.__module__}")
