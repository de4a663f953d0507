"""The readable wire format: one frame as one JSON object.

Every message has the same shape, mirroring the protobuf ``Envelope``::

    {"type": "TextFrame", "id": 12, "name": "TextFrame#12", "pts": 1234567, "metadata": {},
     "fields": {"text": "hello"}}

``client_pts`` (the remote client's own timestamp, echoed back) is added when the frame has one.

``type`` is the frame class name (or the name an app frame was registered under); ``fields`` holds the
frame's own fields. Buffers are base64 with their layout spelled out, e.g. audio as
``{"dtype": "int16", "shape": [320, 2], "data": "..."}`` (little-endian, interleaved), an image as
``{"bytes": "..."}`` or an array ``{"dtype": "uint8", "shape": [h, w, 3], "data": "..."}``.
Missing ``fields`` entries take the frame class's defaults, except that audio must state its
``audio``, ``sample_rate`` and ``num_channels``; unknown keys are refused. Output is ASCII-only, so
it is valid UTF-8 text for any transport.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from apipeline.errors import SerializationError
from apipeline.frames import AudioRawFrame, Frame, ImageRawFrame
from apipeline.serializers._values import (
    AUDIO_DTYPES,
    Kind,
    array_from_wire,
    array_to_wire,
    audio_from_wire,
    audio_to_wire,
    check_field,
    check_json,
    check_pts,
    check_uint,
    dump_json,
    image_size,
    load_json,
)
from apipeline.serializers.base import BUILTIN_NAMES, WIRE_FRAMES, BaseFrameSerializer, restore_identity

_TOP_KEYS = frozenset({"type", "id", "name", "pts", "client_pts", "metadata", "fields"})


class JsonFrameSerializer(BaseFrameSerializer):
    """Frames to JSON text and back; same coverage and guarantees as the protobuf serializer.

    ``serialize`` returns ``str``; ``deserialize`` takes ``str`` or UTF-8 ``bytes``. Bad input of any
    kind raises :class:`SerializationError` and nothing else.
    """

    binary = False

    def serialize(self, frame: Frame) -> str:
        """Encode ``frame`` as one JSON object (compact, ASCII-only)."""
        if not isinstance(frame, Frame):
            raise SerializationError(f"serialize: expected a Frame, got {type(frame).__name__}")
        where = getattr(frame, "name", type(frame).__name__)
        try:
            text = dump_json(self._encode(frame, where))
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"{where}: cannot encode: {type(e).__name__}: {e}") from e
        self._check_size(len(text), f"serialize {where}")
        return text

    def deserialize(self, data: str | bytes | bytearray | memoryview) -> Frame:
        """Decode one JSON message into a frame equal to the one that was sent."""
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise SerializationError(f"deserialize: expected str or bytes, got {type(data).__name__}")
        try:
            if isinstance(data, (bytearray, memoryview)):
                data = memoryview(data).tobytes()
            self._check_size(len(data), "deserialize")
            return self._decode(load_json(data, "deserialize", self.max_json_items))
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(
                f"deserialize: not a valid frame message: {type(e).__name__}: {e}"
            ) from e

    # ---- encoding -----------------------------------------------------------------------------------

    def _encode(self, frame: Frame, where: str) -> dict[str, Any]:
        metadata = frame.metadata
        if not isinstance(metadata, dict):
            raise SerializationError(f"{where}.metadata: expected a dict, got {type(metadata).__name__}")
        if metadata:
            check_json(metadata, f"{where}.metadata")
        cls = type(frame)
        spec = WIRE_FRAMES.get(cls)
        fields: dict[str, Any]
        if spec is None:
            type_name, fields = self._app_encode(frame, where)
        else:
            type_name = cls.__name__
            if isinstance(frame, AudioRawFrame):
                fields = _encode_audio(frame, where)
            elif isinstance(frame, ImageRawFrame):
                fields = _encode_image(frame, where)
            else:
                fields = {f: check_field(k, getattr(frame, f), f"{where}.{f}") for f, k in spec[1]}
        message = {
            "type": type_name,
            "id": check_uint(frame.id, 64, f"{where}.id"),
            "name": check_field(Kind.STR, frame.name, f"{where}.name"),
            "pts": check_pts(frame.pts, where),
            "metadata": metadata,
            "fields": fields,
        }
        if frame.client_pts is not None:
            message["client_pts"] = check_pts(frame.client_pts, where, "client_pts")
        return message

    # ---- decoding -----------------------------------------------------------------------------------

    def _decode(self, obj: Any) -> Frame:
        if not isinstance(obj, dict):
            raise SerializationError(f"deserialize: expected a JSON object, got {type(obj).__name__}")
        unknown = obj.keys() - _TOP_KEYS
        if unknown:
            raise SerializationError(
                f"deserialize: unknown key(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}"
            )
        type_name = obj.get("type")
        if not isinstance(type_name, str):
            raise SerializationError(
                f"deserialize: 'type' must be a str naming the frame, got {type_name!r:.60}"
            )
        label = type_name[:60]
        frame_id = check_uint(obj.get("id", 0), 64, f"{label}.id")
        name = check_field(Kind.STR, obj.get("name", ""), f"{label}.name")
        where = f"{label}(id={frame_id}, name={name!r:.60})"
        pts = check_pts(obj.get("pts"), where)
        client_pts = check_pts(obj.get("client_pts"), where, "client_pts")
        metadata = obj.get("metadata", {})
        check_field(Kind.JSON_OBJECT, metadata, f"{where}.metadata")
        fields = obj.get("fields", {})
        if not isinstance(fields, dict):
            raise SerializationError(f"{where}.fields: expected a JSON object, got {type(fields).__name__}")
        cls = BUILTIN_NAMES.get(type_name)
        frame: Frame
        if cls is None:
            frame = self._app_decode(type_name, fields, where)
        elif cls is AudioRawFrame:
            frame = _decode_audio(fields, where)
        elif cls is ImageRawFrame:
            frame = _decode_image(fields, where)
        else:
            spec = dict(WIRE_FRAMES[cls][1])
            unknown = fields.keys() - spec.keys()
            if unknown:
                raise SerializationError(f"{where}: {type_name} has no field(s) {sorted(unknown)}")
            frame = cls(**{f: check_field(spec[f], v, f"{where}.{f}") for f, v in fields.items()})
        restore_identity(frame, frame_id, name, pts, metadata, client_pts)
        return frame


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise SerializationError(f"{where}: expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise SerializationError(f"{where}: not valid base64 ({e})") from e


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise SerializationError(f"{where}.shape: expected a list of non-negative ints, got {value!r:.60}")
    return value


def _buffer_object(value: Any, keys: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.keys() != keys:
        raise SerializationError(f"{where}: expected an object with keys {sorted(keys)}, got {value!r:.80}")
    return value


_ARRAY_KEYS = frozenset({"dtype", "shape", "data"})
_BYTES_KEYS = frozenset({"bytes"})
_AUDIO_KEYS = frozenset({"audio", "sample_rate", "num_channels"})
_IMAGE_KEYS = frozenset({"image", "size", "format"})


def _encode_audio(frame: AudioRawFrame, where: str) -> dict[str, Any]:
    dtype, _, data = audio_to_wire(frame, where)
    shape = list(frame.audio.shape)  # type: ignore[union-attr]
    return {
        "audio": {"dtype": dtype, "shape": shape, "data": _b64(data)},
        "sample_rate": check_uint(frame.sample_rate, 32, f"{where}.sample_rate"),
        "num_channels": check_uint(frame.num_channels, 32, f"{where}.num_channels"),
    }


def _decode_audio(fields: dict[str, Any], where: str) -> AudioRawFrame:
    if fields.keys() != _AUDIO_KEYS:
        raise SerializationError(f"{where}: AudioRawFrame fields must be exactly {sorted(_AUDIO_KEYS)}")
    rate = check_uint(fields["sample_rate"], 32, f"{where}.sample_rate")
    channels = check_uint(fields["num_channels"], 32, f"{where}.num_channels")
    if rate == 0:
        raise SerializationError(f"{where}.sample_rate: must be positive, got 0")
    spec = _buffer_object(fields["audio"], _ARRAY_KEYS, f"{where}.audio")
    dtype = spec["dtype"]
    if not isinstance(dtype, str) or dtype not in AUDIO_DTYPES:
        raise SerializationError(
            f"{where}.audio.dtype: expected one of {sorted(AUDIO_DTYPES)}, got {dtype!r:.40}"
        )
    shape = _shape(spec["shape"], f"{where}.audio")
    audio = audio_from_wire(dtype, len(shape), channels, _unb64(spec["data"], f"{where}.audio.data"), where)
    if list(audio.shape) != shape:
        raise SerializationError(
            f"{where}.audio: shape {shape} does not match the data "
            f"({len(audio)} samples of {channels} channel(s))"
        )
    return AudioRawFrame(audio=audio, sample_rate=rate, num_channels=channels)


def _encode_image(frame: ImageRawFrame, where: str) -> dict[str, Any]:
    image = frame.image
    spec: dict[str, Any]
    if isinstance(image, (bytes, bytearray, memoryview)):
        spec = {"bytes": _b64(bytes(image))}
    elif isinstance(image, np.ndarray):
        dtype, shape, data = array_to_wire(image, f"{where}.image")
        spec = {"dtype": dtype, "shape": shape, "data": _b64(data)}
    else:
        raise SerializationError(
            f"{where}.image: expected bytes or a numpy array, got {type(image).__name__}"
        )
    return {
        "image": spec,
        "size": list(image_size(frame.size, where)),
        "format": check_field(Kind.OPT_STR, frame.format, f"{where}.format"),
    }


def _decode_image(fields: dict[str, Any], where: str) -> ImageRawFrame:
    unknown = fields.keys() - _IMAGE_KEYS
    if unknown:
        raise SerializationError(f"{where}: ImageRawFrame has no field(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    if "image" in fields:
        value = fields["image"]
        if isinstance(value, dict) and value.keys() == _BYTES_KEYS:
            kwargs["image"] = _unb64(value["bytes"], f"{where}.image.bytes")
        else:
            spec = _buffer_object(value, _ARRAY_KEYS, f"{where}.image")
            if not isinstance(spec["dtype"], str):
                raise SerializationError(f"{where}.image.dtype: expected a str, got {spec['dtype']!r:.40}")
            shape = _shape(spec["shape"], f"{where}.image")
            data = _unb64(spec["data"], f"{where}.image.data")
            kwargs["image"] = array_from_wire(spec["dtype"], shape, data, f"{where}.image")
    if "size" in fields:
        if not isinstance(fields["size"], list):
            raise SerializationError(f"{where}.size: expected [width, height], got {fields['size']!r:.40}")
        kwargs["size"] = image_size(fields["size"], where)
    if "format" in fields:
        kwargs["format"] = check_field(Kind.OPT_STR, fields["format"], f"{where}.format")
    return ImageRawFrame(**kwargs)
