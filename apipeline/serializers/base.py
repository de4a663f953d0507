"""What every frame serializer shares: the seam, the wire frame table, app-frame registration, limits.

A serializer turns one frame into one wire message and back. :class:`FrameSerializer` is the seam a
transport depends on; :class:`BaseFrameSerializer` holds what the protobuf and JSON serializers share:

* :data:`WIRE_FRAMES`: every built-in frame class that can cross a wire, with its wire tag and the
  kind of each of its own fields. Dispatch is on the *exact* class, so a subclass with extra fields is
  never sent silently stripped; it must be registered like any application frame.
* the registry of application frames (any dataclass frame class, usually an ``AppFrame`` subclass),
  sent as a type name plus a JSON object of their fields; both ends must register the same names;
* the limits: message size, and the number of JSON values a message may carry (both checked on the
  raw message, before it is parsed, so a hostile message costs no more than its own bytes).

Decoding restores ``id`` and ``name`` as sent, so a frame and its decoded copy compare equal.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from apipeline.errors import SerializationError
from apipeline.frames import (
    AudioRawFrame,
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    ImageRawFrame,
    MetricsFrame,
    StartFrame,
    StartInterruptionFrame,
    StopInterruptionFrame,
    StopTaskFrame,
    SyncFrame,
    SyncNotifyFrame,
    TextFrame,
    UpdateSettingsFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from apipeline.serializers._values import DEFAULT_MAX_JSON_ITEMS, Kind, check_json

F = TypeVar("F", bound=Frame)

#: Default largest message accepted or produced: 16 MiB (about 4 minutes of 16 kHz stereo float32).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Fields every frame has; they travel in the envelope, not with the frame's own fields.
ENVELOPE_FIELDS = frozenset({"id", "name", "pts", "client_pts", "metadata"})
#: Fields that stay in this process and never cross a wire (an exception object has no wire form;
#: its text is in ``ErrorFrame.error``).
LOCAL_FIELDS: dict[type[Frame], frozenset[str]] = {ErrorFrame: frozenset({"exception"})}

FieldSpec = tuple[tuple[str, Kind], ...]

#: Built-in wire frames: class -> (wire tag, own fields with their kinds). AudioRawFrame and
#: ImageRawFrame carry buffers and are encoded by each serializer itself (their specs list the names).
WIRE_FRAMES: dict[type[Frame], tuple[str, FieldSpec]] = {
    CancelFrame: ("cancel", ()),
    ErrorFrame: ("error", (("error", Kind.STR), ("fatal", Kind.BOOL), ("processor", Kind.OPT_STR))),
    StopTaskFrame: ("stop_task", ()),
    StartInterruptionFrame: ("start_interruption", ()),
    StopInterruptionFrame: ("stop_interruption", ()),
    MetricsFrame: ("metrics", (("data", Kind.JSON_ARRAY),)),
    StartFrame: (
        "start",
        (
            ("allow_interruptions", Kind.BOOL),
            ("enable_metrics", Kind.BOOL),
            ("report_only_initial_ttfb", Kind.BOOL),
            ("metrics_interval_s", Kind.FLOAT),
            ("audio_in_sample_rate", Kind.OPT_RATE),
            ("audio_out_sample_rate", Kind.OPT_RATE),
        ),
    ),
    EndFrame: ("end", ()),
    SyncFrame: ("sync", ()),
    SyncNotifyFrame: ("sync_notify", ()),
    UpdateSettingsFrame: ("update_settings", (("settings", Kind.JSON_OBJECT),)),
    UserStartedSpeakingFrame: ("user_started_speaking", ()),
    UserStoppedSpeakingFrame: ("user_stopped_speaking", ()),
    TextFrame: ("text", (("text", Kind.STR),)),
    AudioRawFrame: ("audio", ()),
    ImageRawFrame: ("image", ()),
}

#: Wire tag -> built-in class.
TAGS: dict[str, type[Frame]] = {tag: cls for cls, (tag, _) in WIRE_FRAMES.items()}
#: Class name -> built-in class (the JSON ``type``); app frames may not take these names.
BUILTIN_NAMES: dict[str, type[Frame]] = {cls.__name__: cls for cls in WIRE_FRAMES}


@runtime_checkable
class FrameSerializer(Protocol):
    """The seam a transport uses: one frame to one wire message and back."""

    #: True when messages are bytes (send as binary), False when they are text.
    binary: bool

    def serialize(self, frame: Frame) -> bytes | str:
        """Encode one frame; raises SerializationError if it cannot cross a wire."""
        ...

    def deserialize(self, data: bytes | str) -> Frame:
        """Decode one message; raises SerializationError (and nothing else) on bad input."""
        ...

    def register(self, cls: type[F], name: str | None = None) -> type[F]:
        """Make an application frame class known under ``name`` (default: its class name)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class _AppType:
    name: str
    cls: type[Frame]
    fields: tuple[str, ...]  # in dataclass order, so the encoding is deterministic
    init_fields: frozenset[str]
    other_fields: frozenset[str]


class BaseFrameSerializer(ABC):
    """Registration, size limits and the envelope rules shared by the concrete serializers.

    Args:
        max_message_size: largest message, in bytes (characters for ``str`` input), that
            ``serialize`` produces or ``deserialize`` accepts; ``None`` for no limit.
        max_json_items: most JSON values (containers, keys and scalars) that ``deserialize`` accepts
            in one JSON text (the whole message in JSON; each ``*_json`` field in protobuf), counted
            before parsing; ``None`` for no limit.
        app_frames: application frame classes to register under their class names.
    """

    binary: ClassVar[bool]

    def __init__(
        self,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_json_items: int | None = DEFAULT_MAX_JSON_ITEMS,
        app_frames: Iterable[type[Frame]] = (),
    ) -> None:
        for label, value in (("max_message_size", max_message_size), ("max_json_items", max_json_items)):
            if value is not None and (type(value) is not int or value <= 0):
                raise ValueError(f"{label} must be a positive int or None, got {value!r}")
        self.max_message_size = max_message_size
        self.max_json_items = max_json_items
        self._by_name: dict[str, _AppType] = {}
        self._by_class: dict[type[Frame], _AppType] = {}
        for cls in app_frames:
            self.register(cls)

    def register(self, cls: type[F], name: str | None = None) -> type[F]:
        """Make a dataclass frame class known as ``name`` (default ``cls.__name__``); returns ``cls``.

        Usable as a decorator. Its own fields must hold JSON-compatible values (checked per frame).
        Built-in wire frames need no registration and their names are reserved. Registering the same
        class under the same name again is a no-op; reusing a name or class otherwise is an error.
        """
        if not (isinstance(cls, type) and issubclass(cls, Frame) and dataclasses.is_dataclass(cls)):
            raise SerializationError(f"register: expected a dataclass Frame subclass, got {cls!r}")
        if cls in WIRE_FRAMES:
            raise SerializationError(
                f"register: {cls.__name__} is a built-in wire frame; it needs no registration"
            )
        name = cls.__name__ if name is None else name
        if not isinstance(name, str) or not name:
            raise SerializationError(f"register: name must be a non-empty str, got {name!r}")
        if name in BUILTIN_NAMES:
            raise SerializationError(f"register: the name {name!r} is reserved for the built-in frame")
        known = self._by_name.get(name) or self._by_class.get(cls)
        if known is not None:
            if known.name == name and known.cls is cls:
                return cls
            raise SerializationError(
                f"register: {cls.__qualname__} as {name!r} conflicts with {known.cls.__qualname__} "
                f"registered as {known.name!r}"
            )
        own = [f for f in dataclasses.fields(cls) if f.name not in ENVELOPE_FIELDS]
        entry = _AppType(
            name,
            cls,
            tuple(f.name for f in own),
            frozenset(f.name for f in own if f.init),
            frozenset(f.name for f in own if not f.init),
        )
        self._by_name[name] = self._by_class[cls] = entry
        return cls

    @property
    def registered(self) -> dict[str, type[Frame]]:
        """Registered application frame classes by wire name (a copy)."""
        return {name: entry.cls for name, entry in self._by_name.items()}

    @abstractmethod
    def serialize(self, frame: Frame) -> Any:
        """Encode one frame."""

    @abstractmethod
    def deserialize(self, data: Any) -> Frame:
        """Decode one message."""

    # ---- helpers for the concrete serializers ------------------------------------------------------

    def _check_size(self, size: int, what: str) -> None:
        limit = self.max_message_size
        if limit is not None and size > limit:
            raise SerializationError(f"{what}: message of {size} bytes exceeds max_message_size={limit}")

    def _app_encode(self, frame: Frame, where: str) -> tuple[str, dict[str, Any]]:
        """(wire name, own fields) of a registered frame; raises if its class is unknown."""
        entry = self._by_class.get(type(frame))
        if entry is None:
            raise SerializationError(
                f"{where}: {type(frame).__qualname__} is not a wire frame; register it on both ends with "
                "serializer.register(cls)"
            )
        fields = {f: getattr(frame, f) for f in entry.fields}
        check_json(fields, f"{where}")
        return entry.name, fields

    def _app_decode(self, name: str, fields: Any, where: str) -> Frame:
        """Build a registered frame from its wire name and decoded field object."""
        entry = self._by_name.get(name)
        if entry is None:
            raise SerializationError(
                f"{where}: unknown app frame type {name!r} (registered: {sorted(self._by_name) or 'none'})"
            )
        if not isinstance(fields, dict):
            raise SerializationError(
                f"{where}: {name} fields must be a JSON object, got {type(fields).__name__}"
            )
        check_json(fields, f"{where}.fields")
        unknown = fields.keys() - set(entry.fields)
        if unknown:
            raise SerializationError(f"{where}: {name} has no field(s) {sorted(unknown)}")
        try:
            frame = entry.cls(**{k: v for k, v in fields.items() if k in entry.init_fields})
            for k in entry.other_fields & fields.keys():
                setattr(frame, k, fields[k])
        except Exception as e:
            raise SerializationError(f"{where}: cannot build {name} from {sorted(fields)}: {e}") from e
        return frame


def restore_identity(
    frame: Frame,
    frame_id: int,
    name: str,
    pts: int | None,
    metadata: dict[str, Any],
    client_pts: int | None = None,
) -> None:
    """Give a freshly built frame the sender's identity; id 0 / empty name keep or derive local ones."""
    if frame_id:
        frame.id = frame_id
        frame.name = name or f"{type(frame).__name__}#{frame_id}"
    elif name:
        frame.name = name
    frame.pts = pts
    frame.client_pts = client_pts
    frame.metadata = metadata
