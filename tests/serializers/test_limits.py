"""Hostile messages are refused by size and structure before they are materialised (issue #10 item 8).

A 16 MiB JSON message of ``[{},{},...]`` used to cost hundreds of MiB (and minutes) before it was
refused; a packed protobuf ``shape`` of millions of entries cost hundreds of MiB inside the protobuf
parser. The limits are checked on the raw message, so these tests use small messages and tight
configured limits and check the mechanism: the precise refusal, raised before any parsing.
``benchmarks/serializer_limits.py`` measures the memory of the 16 MiB cases.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from apipeline.errors import SerializationError
from apipeline.frames import ImageRawFrame, MetricsFrame, TextFrame
from apipeline.serializers import DEFAULT_MAX_JSON_ITEMS, JsonFrameSerializer, ProtobufFrameSerializer
from apipeline.serializers import frames_pb2 as pb
from apipeline.serializers._values import MAX_NDIM


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _image_message(shape_fields: bytes, tail: bytes = b"") -> bytes:
    array = _field(1, b"uint8") + shape_fields + _field(3, b"")
    return pb.Envelope(id=7, name="img").SerializeToString() + _field(32, _field(2, array)) + tail


def _metrics_json(records: int) -> str:
    return json.dumps({"type": "MetricsFrame", "fields": {"data": [{} for _ in range(records)]}})


@pytest.mark.parametrize("make", [JsonFrameSerializer, ProtobufFrameSerializer])
def test_json_items_limit_is_configurable_and_validated(make):
    assert make().max_json_items == DEFAULT_MAX_JSON_ITEMS
    assert make(max_json_items=None).max_json_items is None
    for bad in (0, -1, 1.5, "10"):
        with pytest.raises(ValueError, match="max_json_items"):
            make(max_json_items=bad)


def test_json_message_with_too_many_values_is_refused_with_the_limit():
    ser = JsonFrameSerializer(max_json_items=50)
    assert len(ser.deserialize(_metrics_json(30)).data) == 30  # under the limit: accepted
    with pytest.raises(
        SerializationError, match=r"deserialize: more than 50 JSON values .*max_json_items=50"
    ):
        ser.deserialize(_metrics_json(60))
    with pytest.raises(SerializationError, match="max_json_items=50"):
        ser.deserialize(_metrics_json(60).encode())  # bytes input too


def test_punctuation_inside_strings_is_not_counted():
    ser = JsonFrameSerializer(max_json_items=20)
    text = '[{"a": 1}, {"b": 2}], ' * 1000 + 'a "quoted", \\ backslash'
    frame = TextFrame(text, metadata={"k": "x,y:z[{"})
    assert ser.deserialize(ser.serialize(frame)) == frame


def test_json_refusal_happens_before_parsing():
    # Invalid JSON after the crowd of values: counted and refused before the parser could object.
    ser = JsonFrameSerializer(max_json_items=100)
    crafted = _metrics_json(200)[:-2] + "!!not json"
    with pytest.raises(SerializationError, match="more than 100 JSON values"):
        ser.deserialize(crafted)


def test_a_big_crafted_json_message_is_refused_without_materialising_it():
    msg = _metrics_json(700_000)  # ~2.8 MiB of {} (the attack, at a sixth of the default size limit)
    ser = JsonFrameSerializer()
    tracemalloc.start()
    try:
        with pytest.raises(SerializationError, match="JSON values"):
            ser.deserialize(msg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # parsing it would allocate ~50 MiB of dicts; counting needs at most one copy of the text
    assert peak < 2 * len(msg) + (1 << 20), peak


def test_protobuf_json_fields_obey_the_items_limit():
    ser = ProtobufFrameSerializer(max_json_items=50)
    ok = MetricsFrame([{"n": i} for i in range(10)])
    assert ser.deserialize(ser.serialize(ok)) == ok
    bad = ProtobufFrameSerializer(max_json_items=None).serialize(MetricsFrame([{} for _ in range(100)]))
    with pytest.raises(SerializationError, match=r"data: more than 50 JSON values .*max_json_items=50"):
        ser.deserialize(bad)
    meta = ProtobufFrameSerializer(max_json_items=None).serialize(
        TextFrame("x", metadata={"k": list(range(99))})
    )
    with pytest.raises(SerializationError, match=r"metadata: more than 50 JSON values"):
        ser.deserialize(meta)


def test_protobuf_image_shape_is_refused_before_parsing():
    ser = ProtobufFrameSerializer()
    packed = _field(2, b"\x01" * (MAX_NDIM + 1))
    unpacked = (b"\x10\x01") * (MAX_NDIM + 1)  # field 2, wire type 0, one entry each
    huge = _field(2, b"\x00" * (1 << 20))
    for shape in (packed, unpacked, huge):
        # garbage after the image: had it been parsed, the parser would have refused it first
        with pytest.raises(SerializationError, match=rf"shape has more than {MAX_NDIM} entries"):
            ser.deserialize(_image_message(shape, tail=b"\xff\xff\xff"))
    # at the limit: accepted by the check (the array itself is then checked as before)
    frame = ser.deserialize(_image_message(_field(2, b"\x00" * MAX_NDIM)))
    assert isinstance(frame, ImageRawFrame) and frame.image.ndim == MAX_NDIM


def test_protobuf_shape_split_over_repeated_image_fields_is_counted_whole():
    # protobuf merges repeated occurrences of a message field: the shapes concatenate
    ser = ProtobufFrameSerializer()
    half = _field(2, b"\x01" * (MAX_NDIM // 2 + 1))
    array = _field(2, _field(1, b"uint8") + half)
    msg = pb.Envelope(id=1).SerializeToString() + _field(32, array) + _field(32, array)
    with pytest.raises(SerializationError, match="shape has more than"):
        ser.deserialize(msg)


def test_protobuf_message_with_absurdly_many_fields_is_refused():
    ser = ProtobufFrameSerializer()
    noise = b"\xf8\x07\x00" * 5000  # 5000 occurrences of an unknown varint field 127
    msg = pb.Envelope(id=1).SerializeToString() + noise + _field(32, b"")
    with pytest.raises(SerializationError, match=r"the Envelope has more than \d+ fields"):
        ser.deserialize(msg)
    # the same noise without an image is none of the check's business: the parser skips it
    assert isinstance(
        ser.deserialize(pb.Envelope(id=1, text=pb.TextFrame(text="t")).SerializeToString() + noise), TextFrame
    )
