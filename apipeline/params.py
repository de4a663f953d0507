"""Parameter schemas: what a processor, a served graph or an app lets users set, and the bounds.

One schema serves every door a value can come through: a graph file, a command-line option, a served
session's handshake query (text) and a mid-stream ``UpdateSettingsFrame``. Each :class:`Param` says its
type, default, range or choices, unit and whether it may change mid-stream (``live``); anything not in
the schema is refused, with the closest name suggested. :meth:`ParamSchema.check` validates a whole
mapping before anything is applied, so a refused update leaves every value as it was.

Bounds are part of the contract: a parameter that sizes memory or compute (a block, a search window, a
context) has a maximum that keeps one session's cost within a real-time budget.

Example::

    schema = ParamSchema([
        Param("pitch", float, 0.0, minimum=-24, maximum=24, live=True, unit="semitones"),
        Param("f0", str, "dio", choices=("dio", "harvest")),
    ])
    schema.check({"pitch": "3"}, from_text=True)   # {'pitch': 3.0}
    schema.check({"pitch": 99})                    # ParameterError: pitch must be within -24..24 ...
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from apipeline.errors import DefinitionError, ParameterError

_TYPES = (bool, int, float, str)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Param:
    """One settable parameter.

    Args:
        name: the key users write.
        type: ``bool``, ``int``, ``float`` or ``str``.
        default: the value when nothing is given (``None`` only when ``nullable``).
        minimum: inclusive lower bound for numbers.
        maximum: inclusive upper bound for numbers.
        choices: the allowed values (for ``str`` mostly).
        nullable: ``None`` (or the text ``none``/``null``) is allowed.
        live: may change mid-stream through ``UpdateSettingsFrame``; otherwise fixed at start.
        unit: shown in descriptions ("ms", "semitones", "dBFS").
        doc: one line for ``--help``, ``apipeline list`` and the JSON Schema.
    """

    name: str
    type: type
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    live: bool = False
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise DefinitionError(f"Param {self.name!r}: type must be one of bool, int, float, str")
        if self.default is None and not self.nullable:
            raise DefinitionError(f"Param {self.name!r}: default None needs nullable=True")
        if self.default is not None:
            self.check(self.default)  # a schema whose defaults break its own bounds is a bug

    def describe(self) -> str:
        """Short spelling of the accepted values: ``float -24..24 semitones``, ``'dio' | 'harvest'``."""
        if self.choices is not None:
            text = " | ".join(repr(c) for c in self.choices)
        else:
            text = self.type.__name__
            if self.minimum is not None or self.maximum is not None:
                lo = "" if self.minimum is None else f"{self.minimum:g}"
                hi = "" if self.maximum is None else f"{self.maximum:g}"
                text += f" {lo}..{hi}"
            if self.unit:
                text += f" {self.unit}"
        return text + (" or null" if self.nullable else "")

    def parse(self, text: str) -> Any:
        """Convert a text value (a query string or a command-line word) and check it."""
        if not isinstance(text, str):
            raise ParameterError(f"{self.name}: expected text, got {type(text).__name__}")
        word = text.strip()
        if self.nullable and word.lower() in ("none", "null", ""):
            return None
        value: Any
        if self.type is bool:
            if word.lower() in _TRUE:
                value = True
            elif word.lower() in _FALSE:
                value = False
            else:
                raise ParameterError(f"{self.name} must be a boolean (true/false/1/0), got {text!r}")
        elif self.type in (int, float):
            try:
                value = self.type(word)
            except ValueError:
                raise ParameterError(
                    f"{self.name} must be {'an integer' if self.type is int else 'a number'}, got {text!r}"
                ) from None
        else:
            value = word
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to the parameter's type, or raise :class:`ParameterError`."""
        if value is None:
            if self.nullable:
                return None
            raise ParameterError(f"{self.name} must not be null")
        if self.type is bool:
            if not isinstance(value, bool):
                raise ParameterError(f"{self.name} must be a boolean, got {_show(value)}")
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ParameterError(f"{self.name} must be an integer, got {_show(value)}")
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"{self.name} must be a number, got {_show(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise ParameterError(f"{self.name} must be a finite number, got {value}")
        elif not isinstance(value, str):
            raise ParameterError(f"{self.name} must be text, got {_show(value)}")
        if self.choices is not None and value not in self.choices:
            hint = _closest(str(value), [str(c) for c in self.choices])
            raise ParameterError(
                f"{self.name} must be one of {', '.join(repr(c) for c in self.choices)}, got {value!r}{hint}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = self.minimum, self.maximum
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                unit = f" {self.unit}" if self.unit else ""
                lo_s = "-inf" if lo is None else f"{lo:g}"
                hi_s = "inf" if hi is None else f"{hi:g}"
                raise ParameterError(f"{self.name} must be within {lo_s}..{hi_s}{unit}, got {value:g}")
        return value

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema fragment of this parameter."""
        names = {bool: "boolean", int: "integer", float: "number", str: "string"}
        out: dict[str, Any] = {"type": [names[self.type], "null"] if self.nullable else names[self.type]}
        if self.choices is not None:
            out["enum"] = [*self.choices, None] if self.nullable else list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        out["default"] = self.default
        desc = self.doc + (f" ({self.unit})" if self.unit else "")
        if not self.live:
            desc += " Fixed at start."
        if desc.strip():
            out["description"] = desc.strip()
        return out


class ParamSchema(Mapping[str, Param]):
    """An ordered set of :class:`Param` by name; validates whole mappings at once."""

    def __init__(self, params: Iterable[Param]) -> None:
        self._params: dict[str, Param] = {}
        for p in params:
            if p.name in self._params:
                raise DefinitionError(f"duplicate parameter {p.name!r}")
            self._params[p.name] = p

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"ParamSchema({list(self._params)})"

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default."""
        return {name: p.default for name, p in self._params.items()}

    def live_names(self) -> tuple[str, ...]:
        """The parameters that may change mid-stream."""
        return tuple(name for name, p in self._params.items() if p.live)

    def check(
        self, values: Mapping[str, Any], *, live: bool = False, from_text: bool = False
    ) -> dict[str, Any]:
        """Validate ``values`` as a whole and return them converted.

        Args:
            values: name → value (or text, with ``from_text``).
            live: the values arrive mid-stream: parameters that are not ``live`` are refused.
            from_text: the values are text (a query string, a command line) to parse.

        Raises:
            ParameterError: listing every problem (unknown names with the closest suggestion, wrong
                types, values out of range, fixed parameters changed mid-stream). Nothing is returned
                partially, so callers apply all or nothing.
        """
        problems: list[str] = []
        out: dict[str, Any] = {}
        for name, value in values.items():
            param = self._params.get(name) if isinstance(name, str) else None
            if param is None:
                hint = _closest(str(name), list(self._params))
                problems.append(f"unknown parameter {name!r}{hint}")
                continue
            if live and not param.live:
                problems.append(f"{name} cannot change mid-stream (fixed at start)")
                continue
            try:
                out[name] = param.parse(value) if from_text else param.check(value)
            except ParameterError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ParameterError(problems)
        return out

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema object for a mapping of these parameters (no other keys allowed)."""
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: p.json_schema() for name, p in self._params.items()},
        }

    def describe(self) -> list[tuple[str, str, Any, bool, str]]:
        """Rows ``(name, accepted values, default, live, doc)`` for listings and ``--help``."""
        return [(p.name, p.describe(), p.default, p.live, p.doc) for p in self._params.values()]


def _closest(word: str, names: list[str]) -> str:
    match = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def settings_schema_of(processor: Any) -> ParamSchema | None:
    """The :class:`ParamSchema` a processor declares (class attribute ``settings_schema``), or ``None``."""
    schema = getattr(processor, "settings_schema", None)
    return schema if isinstance(schema, ParamSchema) else None


def pipeline_schema(root: Any) -> ParamSchema:
    """The live parameters of every processor inside ``root`` (anything with ``walk()``), as one schema.

    Each declared live parameter ``p`` of a processor named ``n`` appears twice: ``n.p`` (that processor
    only) and ``p`` (every processor that declares it, as ``UpdateSettingsFrame`` delivers un-prefixed
    keys). Where several processors declare the same ``p``, the first one's bounds are used for the
    un-prefixed name; each processor still checks its own bounds when the value reaches it.
    A pipeline whose processors declare nothing has an empty schema: every setting is refused.
    """
    params: dict[str, Param] = {}
    for proc in root.walk():
        schema = settings_schema_of(proc)
        if schema is None:
            continue
        for p in schema.values():
            if not p.live:
                continue
            params.setdefault(p.name, p)
            qualified = f"{proc.name}.{p.name}"
            params.setdefault(qualified, _renamed(p, qualified))
    return ParamSchema(params.values())


def _renamed(p: Param, name: str) -> Param:
    return replace(p, name=name)
