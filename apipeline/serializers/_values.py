"""Checks and codecs for the values inside frames, shared by every serializer.

Everything here is wire-format neutral: it says which Python values may cross a wire (so that what
comes out compares equal to what went in) and turns sample and array buffers into little-endian bytes
and back. Each check raises :class:`~apipeline.errors.SerializationError` naming where the bad value
sits (``"TextFrame#3.metadata['a'][2]"``) and what was expected.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from apipeline.errors import SerializationError

#: Nesting deeper than this in metadata or dict fields is refused (it also stops reference cycles).
MAX_JSON_DEPTH = 64
#: Default most JSON values (containers, keys and scalars together) one message may carry; see
#: :func:`check_json_items`. Parsed, a value costs 30-100 bytes of Python objects for 2-3 bytes of text.
DEFAULT_MAX_JSON_ITEMS = 100_000
#: More channels than this is refused as absurd (and would make tiny messages expand hugely).
MAX_CHANNELS = 1024
#: Arrays of higher rank are refused (numpy's own limit is 64).
MAX_NDIM = 32

_UINT32 = 1 << 32
_LITTLE = sys.byteorder == "little"

#: Wire names of the sample types AudioRawFrame may carry.
AUDIO_DTYPES: dict[str, np.dtype[Any]] = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
#: Wire names of the element types an image array may have (always little-endian on the wire).
ARRAY_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
}

_NATIVE_NAMES: dict[np.dtype[Any], str] = {np.dtype(name): name for name in ARRAY_DTYPES}


class Kind(Enum):
    """The type of a frame field on the wire; the value is how messages describe it."""

    BOOL = "a bool"
    FLOAT = "a finite float"
    STR = "a str"
    OPT_STR = "a str or None"
    OPT_RATE = "a positive int below 2**32 or None"
    JSON_OBJECT = "a JSON object (dict with str keys)"
    JSON_ARRAY = "a JSON array (list)"


JSON_KINDS = (Kind.JSON_OBJECT, Kind.JSON_ARRAY)


def check_field(kind: Kind, value: Any, where: str) -> Any:
    """Return ``value`` if it is of ``kind`` (normalised: ints to float for FLOAT), else raise."""
    ok = False
    if kind is Kind.BOOL:
        ok = isinstance(value, (bool, np.bool_))
        value = bool(value) if ok else value
    elif kind is Kind.FLOAT:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)
        )
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    elif kind is Kind.STR:
        ok = isinstance(value, str)
    elif kind is Kind.OPT_STR:
        ok = value is None or isinstance(value, str)
    elif kind is Kind.OPT_RATE:
        if value is None:
            return None
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if ok:
            value = int(value)
            ok = 0 < value < _UINT32
    elif kind is Kind.JSON_OBJECT:
        ok = isinstance(value, dict)
        if ok:
            check_json(value, where)
    elif kind is Kind.JSON_ARRAY:
        ok = isinstance(value, list)
        if ok:
            check_json(value, where)
    if not ok:
        raise SerializationError(f"{where}: expected {kind.value}, got {_describe(value)}")
    return value


def check_json(value: Any, where: str, depth: int = 0) -> None:
    """Raise unless ``value`` survives a JSON round trip unchanged (compares equal afterwards).

    Allowed: None, bool, int, finite float, str, list, dict with str keys, and numpy scalars of those
    kinds. Refused, because they would come back different: tuples and sets (they become lists),
    non-str keys (they become strings), bytes, NaN/inf, other objects.
    """
    if depth > MAX_JSON_DEPTH:
        raise SerializationError(
            f"{where}: nested deeper than {MAX_JSON_DEPTH} levels (or a reference cycle)"
        )
    if value is None or isinstance(value, (str, bool, int, np.bool_, np.integer)):
        return
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise SerializationError(f"{where}: {value!r} has no JSON form (only finite floats cross a wire)")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{where}: key {key!r} is {type(key).__name__}; JSON keys are strings, so it would "
                    "come back as a str (use str keys)"
                )
            check_json(item, f"{where}[{key!r}]", depth + 1)
        return
    hint = " (it would come back as a list; use a list)" if isinstance(value, (tuple, set, frozenset)) else ""
    raise SerializationError(f"{where}: {_describe(value)} is not JSON-compatible{hint}")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def dump_json(value: Any) -> str:
    """Compact, ASCII-only JSON text of a value already passed through :func:`check_json`."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_json_default)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# A JSON string literal once escaped backslashes and quotes are gone: no quote inside, so matching
# is linear (a regex that understood escapes itself could rescan the rest from every quote).
_STRING = re.compile(r'"[^"]*"')
_STRING_BYTES = re.compile(rb'"[^"]*"')


def _count_items(text: str | bytes, exact: bool) -> int:
    # Every value or key but the first follows one of these: ',' (the next one), ':' (an object's
    # value), '[' or '{' (the first in a container, unless it is empty). With ``exact`` (for text
    # whose strings are blanked) empty containers are subtracted: exact for compact JSON. Punctuation
    # inside strings only adds (a '[]' in a string also counted its '['), so both are upper bounds.
    if isinstance(text, str):
        count = 1 + text.count(",") + text.count(":") + text.count("[") + text.count("{")
        return count - text.count("[]") - text.count("{}") if exact else count
    count = 1 + text.count(b",") + text.count(b":") + text.count(b"[") + text.count(b"{")
    return count - text.count(b"[]") - text.count(b"{}") if exact else count


def check_json_items(text: str | bytes, limit: int | None, where: str) -> None:
    """Refuse JSON text that would parse into more than ``limit`` values, without parsing it.

    The parser's cost is per value, not per byte: ``[{},{},...]`` turns 3 bytes into a 64-byte dict
    plus a list slot, so a 16 MiB message would cost about 400 MiB before any check could look at it.
    Text no longer than ``limit`` cannot hold more values and is not looked at; longer text is
    counted with ``str.count`` (C speed, no allocation; an upper bound). Only when that exceeds the
    limit are string literals (whose punctuation is text, not structure) blanked out and the count
    made again: escapes are removed first (``\\\\`` pairs, then ``\\"``), so every remaining quote
    delimits a string and one linear pass finds them all. At most a few copies of the text, never
    the parsed objects.
    """
    if limit is None or len(text) <= limit or _count_items(text, exact=False) <= limit:
        return
    blank: str | bytes
    if isinstance(text, bytes):
        blank = _STRING_BYTES.sub(b'""', text.replace(b"\\\\", b"").replace(b'\\"', b""))
    else:
        blank = _STRING.sub('""', text.replace("\\\\", "").replace('\\"', ""))
    count = _count_items(blank, exact=True)
    if count > limit:
        raise SerializationError(
            f"{where}: more than {limit} JSON values (about {count}); refused before parsing "
            f"(max_json_items={limit})"
        )


def load_json(text: str | bytes, where: str, max_items: int | None = None) -> Any:
    """Parse standard JSON (no NaN/Infinity), raising SerializationError with ``where`` on failure.

    With ``max_items``, text holding more values than that is refused first (:func:`check_json_items`).
    """
    check_json_items(text, max_items, where)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError, TypeError) as e:
        raise SerializationError(f"{where}: not valid JSON ({e})") from e


def check_uint(value: Any, bits: int, where: str) -> int:
    """An int (not bool) in ``[0, 2**bits)``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SerializationError(f"{where}: expected an int, got {_describe(value)}")
    value = int(value)
    if not 0 <= value < (1 << bits):
        raise SerializationError(f"{where}: {value} is outside [0, 2**{bits})")
    return value


def check_pts(value: Any, where: str, label: str = "pts") -> int | None:
    """None or an int that fits int64 nanoseconds (``label`` names the field: pts or client_pts)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SerializationError(f"{where}: {label} must be an int (ns) or None, got {_describe(value)}")
    value = int(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise SerializationError(f"{where}: {label} {value} does not fit int64 nanoseconds")
    return value


def audio_to_wire(frame: Any, where: str) -> tuple[str, int, bytes]:
    """``(sample type name, rank, little-endian interleaved bytes)`` of an AudioRawFrame's samples."""
    audio = frame.audio
    if not isinstance(audio, np.ndarray):
        raise SerializationError(f"{where}.audio: expected a numpy array, got {_describe(audio)}")
    # a dict lookup on the dtype itself: ``dtype.name`` is a slow Python-level property
    name = _NATIVE_NAMES.get(audio.dtype) or audio.dtype.name
    le = AUDIO_DTYPES.get(name)
    if le is None or audio.ndim not in (1, 2):
        raise SerializationError(
            f"{where}.audio: expected int16 or float32 samples of shape (n,) or (n, channels), "
            f"got {audio.dtype} of shape {audio.shape}"
        )
    return name, audio.ndim, audio.astype(le, copy=False).tobytes()


def audio_from_wire(dtype: str, rank: int, num_channels: int, data: bytes, where: str) -> npt.NDArray[Any]:
    """A read-only view of wire samples, shaped ``(n,)`` or ``(n, num_channels)``; checks byte counts."""
    le = AUDIO_DTYPES.get(dtype)
    if le is None:
        raise SerializationError(f"{where}: sample type must be one of {sorted(AUDIO_DTYPES)}, got {dtype!r}")
    if not 1 <= num_channels <= MAX_CHANNELS:
        raise SerializationError(f"{where}: num_channels must be in [1, {MAX_CHANNELS}], got {num_channels}")
    if rank == 0:
        rank = 1 if num_channels == 1 else 2
    if rank not in (1, 2) or (rank == 1 and num_channels != 1):
        raise SerializationError(
            f"{where}: rank {rank} does not fit {num_channels} channel(s) (expected 2, or 1 for mono)"
        )
    block = le.itemsize * num_channels
    if len(data) % block:
        raise SerializationError(
            f"{where}: {len(data)} bytes is not a whole number of {num_channels}-channel {dtype} samples "
            f"({block} bytes each)"
        )
    audio = np.frombuffer(data, dtype=le)
    if not _LITTLE:
        audio = audio.astype(le.newbyteorder("="))
    return audio.reshape(-1, num_channels) if rank == 2 else audio


def array_to_wire(array: npt.NDArray[Any], where: str) -> tuple[str, list[int], bytes]:
    """``(dtype name, shape, C-order little-endian bytes)`` of a plain numeric array."""
    name = _NATIVE_NAMES.get(array.dtype) or array.dtype.name
    le = ARRAY_DTYPES.get(name)
    if le is None:
        raise SerializationError(f"{where}: arrays of {array.dtype} cannot cross a wire (plain numbers only)")
    if array.ndim > MAX_NDIM:
        raise SerializationError(f"{where}: {array.ndim} dimensions, at most {MAX_NDIM} cross a wire")
    return name, list(array.shape), array.astype(le, copy=False).tobytes()


def array_from_wire(dtype: str, shape: Sequence[int], data: bytes, where: str) -> npt.NDArray[Any]:
    """A read-only array view of wire bytes; checks dtype, rank and that the byte count fits the shape."""
    le = ARRAY_DTYPES.get(dtype)
    if le is None:
        raise SerializationError(f"{where}: dtype must be one of {sorted(ARRAY_DTYPES)}, got {dtype!r:.40}")
    if len(shape) > MAX_NDIM:  # before touching the elements: a hostile shape may be millions long
        raise SerializationError(f"{where}: {len(shape)} dimensions, at most {MAX_NDIM} cross a wire")
    shape = list(shape)
    count = 1
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise SerializationError(f"{where}: shape {shape!r} must be non-negative ints")
        count *= dim
    # a zero-size array may still declare absurd dimensions; refuse what numpy could not index
    if count * le.itemsize != len(data) or any(dim >= 1 << 31 for dim in shape):
        raise SerializationError(
            f"{where}: {len(data)} bytes do not hold a {dtype} array of shape {tuple(shape)} "
            f"({count * le.itemsize} bytes expected)"
        )
    array = np.frombuffer(data, dtype=le)
    if not _LITTLE:
        array = array.astype(le.newbyteorder("="))
    return array.reshape(shape)


def image_size(value: Any, where: str) -> tuple[int, int]:
    """``(width, height)`` as two ints in ``[0, 2**32)``."""
    try:
        width, height = value
    except (TypeError, ValueError):
        raise SerializationError(f"{where}.size: expected (width, height), got {_describe(value)}") from None
    return check_uint(width, 32, f"{where}.size[0]"), check_uint(height, 32, f"{where}.size[1]")


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
