"""Annotations as parameter types: check a value from a graph file against a constructor annotation, and
describe it. (The parameter *schemas* of sessions and the CLI are :mod:`apipeline.params`.)

A graph file holds plain data (YAML/JSON scalars, lists, mappings), so only annotations with a plain-data
spelling can be set from a file: ``bool``, ``int``, ``float``, ``str``, ``None``, ``Literal[...]``,
``X | Y``, ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[str, X]``, ``pathlib.Path``, enums (by
member name), :class:`~apipeline.audio.format.AudioFormat` (a mapping) and frame classes (by name, e.g.
``TextFrame``). Anything else (callables, loggers, arbitrary objects) is *not settable*: a processor whose
required parameter is not settable cannot be used from a file, and the registry says so.

:func:`check_value` returns the value converted to what the constructor expects (``"TextFrame"`` becomes
the class, a list becomes a tuple where a tuple is expected) or a message saying what was expected and
what came; :func:`json_schema` gives the JSON Schema fragment of an annotation.
"""

from __future__ import annotations

import collections.abc
import enum
import os
import pathlib
import types
import typing
from typing import Any

from apipeline.errors import ParameterError

_NOT_SETTABLE = object()


class ParamTypeError(ParameterError):
    """A value that does not fit its annotation; the message says what was expected and what came
    (a :class:`~apipeline.errors.ParameterError`, so also a ``ValueError``)."""


def describe(annotation: Any) -> str:
    """Short human spelling of an annotation (``int | None``, ``list[str]``, ``'a' | 'b'``)."""
    if annotation is typing.Any or annotation is _EMPTY:
        return "any"
    if annotation is type(None):
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe(a) for a in args)
    if origin is type and args and _is_frame_class(args[0]):
        return f"{args[0].__name__} name"
    if origin is collections.abc.Callable:
        return "callable"
    if origin is os.PathLike or annotation is os.PathLike:
        return "path"
    if origin in (list, tuple, dict, type):
        inner = ", ".join("..." if a is Ellipsis else describe(a) for a in args)
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    if isinstance(annotation, type):
        if _is_frame_class(annotation):
            return "frame type name"
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_EMPTY = object()


def _is_frame_class(tp: Any) -> bool:
    from apipeline.frames import Frame

    return isinstance(tp, type) and issubclass(tp, Frame)


def _frame_class(name: Any, base: type) -> Any:
    import apipeline.frames as frames

    cls = getattr(frames, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        known = sorted(n for n in frames.__all__ if issubclass(getattr(frames, n), base))
        raise ParamTypeError(
            f"expected the name of a {base.__name__} class ({', '.join(known)}), got {name!r}"
        )
    return cls


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(value), type(value).__name__)


def settable(annotation: Any) -> bool:
    """Whether a value of this annotation can be written in a graph file."""
    if annotation in (bool, int, float, str, type(None), pathlib.Path, typing.Any, _EMPTY, os.PathLike):
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    from apipeline.audio.format import AudioFormat

    if annotation is AudioFormat:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal or origin is os.PathLike:
        return True
    if origin is type:
        return bool(args) and _is_frame_class(args[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        return all(a is Ellipsis or settable(a) for a in args)
    if origin is dict:
        return len(args) == 2 and args[0] is str and settable(args[1])
    return False


def check_value(value: Any, annotation: Any) -> Any:
    """Return ``value`` converted for ``annotation``; raise :class:`ParamTypeError` when it does not fit."""
    if annotation is typing.Any or annotation is _EMPTY:
        return value
    if annotation is type(None):
        if value is not None:
            raise ParamTypeError(f"expected null, got {_type_name(value)} {value!r}")
        return None
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamTypeError(f"expected boolean, got {_type_name(value)} {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamTypeError(f"expected integer, got {_type_name(value)} {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamTypeError(f"expected number, got {_type_name(value)} {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ParamTypeError(f"expected string, got {_type_name(value)} {value!r}")
        return value
    if (
        annotation is pathlib.Path
        or annotation is os.PathLike
        or typing.get_origin(annotation) is os.PathLike
    ):
        if not isinstance(value, str):
            raise ParamTypeError(f"expected a path (string), got {_type_name(value)} {value!r}")
        return pathlib.Path(value) if annotation is pathlib.Path else value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        names = [m.name for m in annotation]
        if value not in names:
            raise ParamTypeError(f"expected one of {', '.join(names)}, got {value!r}")
        return annotation[value]
    from apipeline.audio.format import AudioFormat

    if annotation is AudioFormat:
        if not isinstance(value, dict) or set(value) - {"sample_rate", "channels", "dtype"}:
            raise ParamTypeError(f"expected a mapping with sample_rate, channels, dtype; got {value!r}")
        try:
            return AudioFormat(**value)
        except (TypeError, ValueError) as exc:
            raise ParamTypeError(str(exc)) from None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool) != any(
            isinstance(a, bool) for a in args if a == value
        ):
            raise ParamTypeError(f"expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in sorted(args, key=lambda a: a is type(None)):
            try:
                return check_value(value, arg)
            except ParamTypeError as exc:
                errors.append(str(exc))
        raise ParamTypeError(f"expected {describe(annotation)}, got {_type_name(value)} {value!r}")
    if origin is type and args and _is_frame_class(args[0]):
        return _frame_class(value, args[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is Ellipsis and _is_frame_class_arg(args[0]):
                value = [value]  # one frame type may be written without brackets
            else:
                raise ParamTypeError(f"expected {describe(annotation)}, got {_type_name(value)} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ParamTypeError(f"expected {len(args)} items ({describe(annotation)}), got {len(value)}")
            return tuple(_item(v, a, i) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else typing.Any
        items = [_item(v, item, i) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamTypeError(f"expected {describe(annotation)}, got {_type_name(value)} {value!r}")
        vt = args[1] if len(args) == 2 else typing.Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParamTypeError(f"expected string keys, got {k!r}")
            try:
                out[k] = check_value(v, vt)
            except ParamTypeError as exc:
                raise ParamTypeError(f"[{k!r}]: {exc}") from None
        return out
    raise ParamTypeError(f"a value of type {describe(annotation)} cannot be written in a graph file")


def _is_frame_class_arg(arg: Any) -> bool:
    return (
        typing.get_origin(arg) is type
        and bool(typing.get_args(arg))
        and _is_frame_class(typing.get_args(arg)[0])
    )


def _item(value: Any, annotation: Any, index: int) -> Any:
    try:
        return check_value(value, annotation)
    except ParamTypeError as exc:
        raise ParamTypeError(f"item {index}: {exc}") from None


def to_plain(value: Any) -> Any:
    """The file spelling of a converted value (the inverse of :func:`check_value`), for dumping."""
    from apipeline.audio.format import AudioFormat

    if isinstance(value, type):
        return value.__name__
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, AudioFormat):
        return {
            k: getattr(value, k)
            for k in ("sample_rate", "channels", "dtype")
            if getattr(value, k) is not None
        }
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def json_schema(annotation: Any) -> dict[str, Any]:
    """JSON Schema fragment for values of ``annotation`` (``{}`` means any)."""
    if annotation is typing.Any or annotation is _EMPTY:
        return {}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if annotation in (pathlib.Path, os.PathLike) or typing.get_origin(annotation) is os.PathLike:
        return {"type": "string"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [m.name for m in annotation]}
    from apipeline.audio.format import SAMPLE_TYPES, AudioFormat

    if annotation is AudioFormat:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "sample_rate": {"type": ["integer", "null"], "minimum": 1},
                "channels": {"type": ["integer", "null"], "minimum": 1},
                "dtype": {"enum": [*SAMPLE_TYPES, None]},
            },
        }
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if origin is type and args and _is_frame_class(args[0]):
        import apipeline.frames as frames

        return {"enum": sorted(n for n in frames.__all__ if issubclass(getattr(frames, n), args[0]))}
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {
                "type": "array",
                "prefixItems": [json_schema(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        items = json_schema(args[0]) if args else {}
        if origin is tuple and _is_frame_class_arg(args[0] if args else None):
            return {"anyOf": [{"type": "array", "items": items}, items]}
        return {"type": "array", "items": items}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1]) if len(args) == 2 else {}}
    return {}
