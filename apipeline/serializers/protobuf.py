"""The binary wire format: frames as ``apipeline.Envelope`` protobuf messages (see ``frames.proto``).

This is the format transports use by default. Audio travels as raw little-endian samples (no base64,
no per-sample work): encoding is one ``tobytes`` copy, decoding a zero-copy read-only numpy view of the
received bytes. Dict- and list-valued fields travel as JSON text inside the message (``frames.proto``
says why).

Structure is checked on the raw bytes before parsing where the parser itself would amplify: the only
repeated field, ``NdArray.shape``, costs the parser 8 bytes (and more while its array grows) per
1-byte packed entry, so a 16 MiB message could cost hundreds of MiB before its rank could be refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from apipeline.errors import SerializationError
from apipeline.frames import AudioRawFrame, Frame, ImageRawFrame
from apipeline.serializers import frames_pb2 as pb
from apipeline.serializers._values import (
    JSON_KINDS,
    MAX_NDIM,
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
from apipeline.serializers.base import TAGS, WIRE_FRAMES, BaseFrameSerializer, restore_identity

_SAMPLE_TYPES = {"int16": pb.SAMPLE_TYPE_INT16, "float32": pb.SAMPLE_TYPE_FLOAT32}
_SAMPLE_NAMES = {v: k for k, v in _SAMPLE_TYPES.items()}


class ProtobufFrameSerializer(BaseFrameSerializer):
    """Frames to ``apipeline.Envelope`` bytes and back.

    ``serialize`` raises :class:`SerializationError` for a frame that cannot cross a wire (unregistered
    class, values JSON cannot carry, out-of-range numbers, oversized result). ``deserialize`` raises
    :class:`SerializationError`, and nothing else, for anything that is not a valid message: wrong type,
    truncated or random bytes, an unknown frame kind, audio whose byte count does not fit its channels.
    """

    binary = True

    def serialize(self, frame: Frame) -> bytes:
        """Encode ``frame`` as one ``Envelope`` message."""
        if not isinstance(frame, Frame):
            raise SerializationError(f"serialize: expected a Frame, got {type(frame).__name__}")
        where = getattr(frame, "name", type(frame).__name__)
        try:
            data = self._encode(frame, where).SerializeToString()
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"{where}: cannot encode: {type(e).__name__}: {e}") from e
        self._check_size(len(data), f"serialize {where}")
        return data

    def deserialize(self, data: bytes | bytearray | memoryview | str) -> Frame:
        """Decode one ``Envelope`` message into a frame equal to the one that was sent."""
        if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
            raise SerializationError(f"deserialize: expected bytes, got {type(data).__name__}")
        try:
            if not isinstance(data, bytes):
                data = memoryview(data).tobytes()
            self._check_size(len(data), "deserialize")
            if not data:
                raise SerializationError("deserialize: empty message (an Envelope always carries a frame)")
            if _IMAGE_TAG in data:
                _check_image_shape(data)
            env = pb.Envelope()
            env.ParseFromString(data)
            return self._decode(env)
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"deserialize: not a valid Envelope: {type(e).__name__}: {e}") from e

    # ---- encoding -----------------------------------------------------------------------------------

    def _encode(self, frame: Frame, where: str) -> pb.Envelope:
        env = pb.Envelope(id=check_uint(frame.id, 64, f"{where}.id"), name=frame.name)
        pts = check_pts(frame.pts, where)
        if pts is not None:
            env.pts = pts
        client_pts = check_pts(frame.client_pts, where, "client_pts")
        if client_pts is not None:
            env.client_pts = client_pts
        metadata = frame.metadata
        if not isinstance(metadata, dict):
            raise SerializationError(f"{where}.metadata: expected a dict, got {type(metadata).__name__}")
        if metadata:
            check_json(metadata, f"{where}.metadata")
            env.metadata_json = dump_json(metadata)
        cls = type(frame)
        spec = WIRE_FRAMES.get(cls)
        if spec is None:
            app_name, app_fields = self._app_encode(frame, where)
            env.app.type = app_name
            env.app.fields_json = dump_json(app_fields)
        elif isinstance(frame, AudioRawFrame):
            _encode_audio(env.audio, frame, where)
        elif isinstance(frame, ImageRawFrame):
            _encode_image(env.image, frame, where)
        else:
            tag, fields = spec
            msg = getattr(env, tag)
            msg.SetInParent()
            for field, kind in fields:
                value = check_field(kind, getattr(frame, field), f"{where}.{field}")
                if value is None:
                    continue
                if kind in JSON_KINDS:
                    setattr(msg, f"{field}_json", dump_json(value))
                else:
                    setattr(msg, field, value)
        return env

    # ---- decoding -----------------------------------------------------------------------------------

    def _decode(self, env: pb.Envelope) -> Frame:
        tag = env.WhichOneof("frame")
        label = TAGS[tag].__name__ if tag in TAGS else env.app.type if tag == "app" else "Envelope"
        where = f"{label:.60}(id={env.id}, name={env.name!r:.60})"
        if tag is None:
            raise SerializationError(
                f"{where}: carries no known frame (empty, or a frame kind this side lacks)"
            )
        limit = self.max_json_items
        metadata: dict[str, Any] = {}
        if env.metadata_json:
            metadata = load_json(env.metadata_json, f"{where}.metadata", limit)
            if not isinstance(metadata, dict):
                raise SerializationError(
                    f"{where}.metadata: expected a JSON object, got {type(metadata).__name__}"
                )
            check_json(metadata, f"{where}.metadata")
        if tag == "app":
            frame = self._app_decode(
                env.app.type, load_json(env.app.fields_json or "{}", f"{where}.app", limit), where
            )
        elif tag == "audio":
            frame = _decode_audio(env.audio, where)
        elif tag == "image":
            frame = _decode_image(env.image, where)
        else:
            cls = TAGS[tag]
            msg = getattr(env, tag)
            kwargs: dict[str, Any] = {}
            for field, kind in WIRE_FRAMES[cls][1]:
                wire_field = f"{field}_json" if kind in JSON_KINDS else field
                if msg.HasField(wire_field):
                    value = getattr(msg, wire_field)
                    if kind in JSON_KINDS:
                        value = load_json(value, f"{where}.{field}", limit)
                    kwargs[field] = check_field(kind, value, f"{where}.{field}")
            frame = cls(**kwargs)
        restore_identity(
            frame,
            env.id,
            env.name,
            env.pts if env.HasField("pts") else None,
            metadata,
            env.client_pts if env.HasField("client_pts") else None,
        )
        return frame


def _encode_audio(msg: pb.AudioRawFrame, frame: AudioRawFrame, where: str) -> None:
    dtype, rank, data = audio_to_wire(frame, where)
    msg.sample_type = _SAMPLE_TYPES[dtype]
    msg.sample_rate = check_uint(frame.sample_rate, 32, f"{where}.sample_rate")
    msg.num_channels = check_uint(frame.num_channels, 32, f"{where}.num_channels")
    msg.audio = data
    msg.rank = rank


def _decode_audio(msg: pb.AudioRawFrame, where: str) -> AudioRawFrame:
    dtype = _SAMPLE_NAMES.get(msg.sample_type)
    if dtype is None:
        raise SerializationError(
            f"{where}.audio: sample_type must be INT16 or FLOAT32, got {msg.sample_type}"
        )
    if msg.sample_rate == 0:
        raise SerializationError(f"{where}.audio: sample_rate is missing (0)")
    audio = audio_from_wire(dtype, msg.rank, msg.num_channels, msg.audio, f"{where}.audio")
    return AudioRawFrame(audio=audio, sample_rate=msg.sample_rate, num_channels=msg.num_channels)


def _encode_image(msg: pb.ImageRawFrame, frame: ImageRawFrame, where: str) -> None:
    image = frame.image
    if isinstance(image, (bytes, bytearray, memoryview)):
        msg.encoded = bytes(image)
    elif isinstance(image, np.ndarray):
        dtype, shape, data = array_to_wire(image, f"{where}.image")
        msg.array.dtype = dtype
        msg.array.shape.extend(shape)
        msg.array.data = data
    else:
        raise SerializationError(
            f"{where}.image: expected bytes or a numpy array, got {type(image).__name__}"
        )
    msg.width, msg.height = image_size(frame.size, where)
    fmt = check_field(Kind.OPT_STR, frame.format, f"{where}.format")
    if fmt is not None:
        msg.format = fmt


def _decode_image(msg: pb.ImageRawFrame, where: str) -> ImageRawFrame:
    which = msg.WhichOneof("image")
    image: Any = b""
    if which == "encoded":
        image = msg.encoded
    elif which == "array":
        image = array_from_wire(msg.array.dtype, msg.array.shape, msg.array.data, f"{where}.image")
    fmt = msg.format if msg.HasField("format") else None
    return ImageRawFrame(image=image, size=(msg.width, msg.height), format=fmt)


# ---- structure checks on the raw bytes ------------------------------------------------------------------

_IMAGE_TAG = b"\x82\x02"  # Envelope.image: field 32, length-delimited, as a varint key
#: Most fields the structure check walks in one message level; real messages have a handful.
MAX_SCANNED_FIELDS = 1024


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise _Malformed


class _Malformed(Exception):
    """The bytes do not walk as protobuf: leave the verdict (and its message) to the parser."""


def _walk(data: bytes, pos: int, end: int, where: str) -> Iterator[tuple[int, int, int, int]]:
    """``(field, wire type, start, end)`` of each field between ``pos`` and ``end``, in order."""
    count = 0
    while pos < end:
        count += 1
        if count > MAX_SCANNED_FIELDS:
            raise SerializationError(
                f"deserialize: {where} has more than {MAX_SCANNED_FIELDS} fields; refused before parsing"
            )
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        start = pos
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, start = _varint(data, pos, end)
            pos = start + length
        elif wire == 5:
            pos += 4
        else:
            raise _Malformed
        if pos > end:
            raise _Malformed
        yield number, wire, start, pos


def _check_image_shape(data: bytes) -> None:
    """Refuse an ``NdArray.shape`` of more than ``MAX_NDIM`` entries before the parser expands it.

    Occurrences of a message field merge when parsed, so the entries of every image and array
    occurrence count together, packed (one varint per byte below 0x80) or not.
    """
    try:
        dims = 0
        for number, wire, start, end in _walk(data, 0, len(data), "the Envelope"):
            if number != 32 or wire != 2:
                continue
            for number2, wire2, start2, end2 in _walk(data, start, end, "ImageRawFrame"):
                if number2 != 2 or wire2 != 2:
                    continue
                for number3, wire3, start3, end3 in _walk(data, start2, end2, "ImageRawFrame.image"):
                    if number3 != 2:
                        continue
                    if wire3 == 0:
                        dims += 1
                    elif wire3 == 2:  # packed: each varint ends with a byte below 0x80 (at most 10 bytes)
                        if end3 - start3 > 10 * (MAX_NDIM + 1):
                            dims += MAX_NDIM + 1
                        else:
                            dims += sum(b < 0x80 for b in data[start3:end3])
                    if dims > MAX_NDIM:
                        raise SerializationError(
                            f"deserialize: ImageRawFrame.image.shape has more than {MAX_NDIM} entries "
                            f"(at most {MAX_NDIM} dimensions cross a wire); refused before parsing"
                        )
    except _Malformed:
        return
