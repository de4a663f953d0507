"""The JSON wire format: its shape, hostile text, wrong field types, hand-written messages."""

from __future__ import annotations

import base64
import json
import random

import numpy as np
import pytest

from apipeline.errors import SerializationError
from apipeline.frames import AudioRawFrame, EndFrame, Frame, ImageRawFrame, StartFrame, TextFrame
from apipeline.serializers import JsonFrameSerializer
from tests.serializers._cases import APP_FRAMES, every_wire_frame

SER = JsonFrameSerializer(app_frames=APP_FRAMES)
MESSAGES = [(name, SER.serialize(frame)) for name, frame in every_wire_frame()]


def _decode_or_refuse(data: str | bytes) -> Frame | None:
    """The only acceptable outcomes for any input: a frame that re-encodes stably, or SerializationError."""
    try:
        frame = SER.deserialize(data)
    except SerializationError:
        return None
    # compared as messages, not frames: mutated float samples may be NaN, and NaN != NaN
    again = SER.serialize(frame)
    assert SER.serialize(SER.deserialize(again)) == again
    return frame


def test_message_shape_is_the_documented_one():
    frame = AudioRawFrame(np.array([[1, -2], [3, -4]], np.int16), sample_rate=16000, num_channels=2, pts=9)
    frame.metadata = {"seq": 1}
    text = SER.serialize(frame)
    assert text.isascii()
    assert json.loads(text) == {
        "type": "AudioRawFrame",
        "id": frame.id,
        "name": frame.name,
        "pts": 9,
        "metadata": {"seq": 1},
        "fields": {
            "audio": {
                "dtype": "int16",
                "shape": [2, 2],
                "data": base64.b64encode(b"\1\0\xfe\xff\3\0\xfc\xff").decode(),
            },
            "sample_rate": 16000,
            "num_channels": 2,
        },
    }


def test_non_ascii_text_is_escaped_and_survives():
    frame = TextFrame("声音 \ud800 lone surrogate")
    text = SER.serialize(frame)
    assert text.isascii() and SER.deserialize(text) == frame
    assert SER.deserialize(text.encode()) == frame


@pytest.mark.parametrize("name,text", MESSAGES[:12], ids=[m[0] for m in MESSAGES[:12]])
def test_every_truncation_is_refused(name, text):
    for cut in range(len(text)):
        with pytest.raises(SerializationError):
            SER.deserialize(text[:cut])


def test_random_text_and_bytes_never_raise_anything_else():
    rng = random.Random(3)
    alphabet = '{}[]":,0123456789.-eE truefalsnl\\u"typeidfields'
    for _ in range(300):
        _decode_or_refuse("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))))
        _decode_or_refuse(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))


def test_mutated_messages_never_raise_anything_else():
    rng = random.Random(5)
    for _ in range(400):
        _, text = rng.choice(MESSAGES)
        chars = list(text)
        for _ in range(rng.randrange(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0129-ex\\')
        _decode_or_refuse("".join(chars))


def _msg(type_: str = "TextFrame", **top) -> dict:
    return {"type": type_, "id": 5, "name": "X#5", "pts": None, "metadata": {}, "fields": {}, **top}


def _audio(**fields) -> dict:
    spec = {"dtype": "int16", "shape": [4], "data": base64.b64encode(bytes(8)).decode()}
    spec.update(fields.pop("spec", {}))
    return _msg("AudioRawFrame", fields={"audio": spec, "sample_rate": 16000, "num_channels": 1, **fields})


BAD_JSON = [
    ("empty", "", "not valid JSON"),
    ("open brace", "{", "not valid JSON"),
    ("array", "[]", "expected a JSON object, got list"),
    ("null", "null", "expected a JSON object, got NoneType"),
    ("number", "1", "expected a JSON object, got int"),
    ("no type", "{}", "'type' must be a str"),
    ("nan", '{"type": "EndFrame", "pts": NaN}', "NaN is not valid JSON"),
    ("bad utf-8", b'{"type": "\xff"}', "not valid JSON"),
    ("huge int", '{"type": "EndFrame", "id": ' + "9" * 5000 + "}", "not valid JSON"),
    ("abyss", "[" * 100_000 + "]" * 100_000, "not valid JSON"),
]


@pytest.mark.parametrize("text,message", [b[1:] for b in BAD_JSON], ids=[b[0] for b in BAD_JSON])
def test_wrong_json_is_refused(text, message):
    with pytest.raises(SerializationError, match=message):
        SER.deserialize(text)


WRONG_FIELDS = [
    ("type int", _msg(type=5), "'type' must be a str"),
    ("type unknown", _msg("Nope"), "unknown app frame type 'Nope'"),
    ("unknown top key", _msg(extra=1), r"unknown key\(s\) \['extra'\]"),
    ("id str", _msg(id="1"), r"\.id: expected an int, got str"),
    ("id bool", _msg(id=True), r"\.id: expected an int, got bool"),
    ("id negative", _msg(id=-1), r"-1 is outside \[0, 2\*\*64\)"),
    ("id huge", _msg(id=2**64), "outside"),
    ("name int", _msg(name=3), r"\.name: expected a str"),
    ("pts str", _msg(pts="1"), "pts must be an int"),
    ("pts float", _msg(pts=1.5), "pts must be an int"),
    ("pts huge", _msg(pts=2**63), "does not fit int64"),
    ("metadata list", _msg(metadata=[]), r"\.metadata: expected a JSON object"),
    ("metadata deep", _msg(metadata={"a": json.loads('{"a":' * 70 + "1" + "}" * 70)}), "deeper than 64"),
    ("fields list", _msg(fields=[]), r"\.fields: expected a JSON object"),
    ("text int", _msg(fields={"text": 5}), r"\.text: expected a str, got int 5"),
    ("text unknown field", _msg(fields={"txt": "a"}), r"TextFrame has no field\(s\) \['txt'\]"),
    ("fatal str", _msg("ErrorFrame", fields={"fatal": "yes"}), r"\.fatal: expected a bool, got str"),
    ("processor int", _msg("ErrorFrame", fields={"processor": 1}), r"\.processor: expected a str or None"),
    ("interval str", _msg("StartFrame", fields={"metrics_interval_s": "1"}), "expected a finite float"),
    ("rate zero", _msg("StartFrame", fields={"audio_in_sample_rate": 0}), "positive int below 2"),
    ("rate float", _msg("StartFrame", fields={"audio_out_sample_rate": 16000.0}), "positive int"),
    ("settings list", _msg("UpdateSettingsFrame", fields={"settings": []}), "expected a JSON object"),
    ("metrics object", _msg("MetricsFrame", fields={"data": {}}), r"\.data: expected a JSON array"),
    ("audio missing rate", _msg("AudioRawFrame", fields={"audio": {}}), "fields must be exactly"),
    ("audio rate str", _audio(sample_rate="16000"), r"\.sample_rate: expected an int"),
    ("audio rate zero", _audio(sample_rate=0), "sample_rate: must be positive"),
    (
        "audio channels zero",
        _audio(num_channels=0, spec={"shape": [4, 0]}),
        r"num_channels must be in \[1, 1024\]",
    ),
    (
        "audio spec keys",
        _audio(spec={"extra": 1}),
        r"expected an object with keys \['data', 'dtype', 'shape'\]",
    ),
    (
        "audio dtype",
        _audio(spec={"dtype": "int8"}),
        r"dtype: expected one of \['float32', 'int16'\], got 'int8'",
    ),
    ("audio not base64", _audio(spec={"data": "!!!"}), "not valid base64"),
    ("audio data int", _audio(spec={"data": 5}), "expected base64 text, got int"),
    ("audio shape str", _audio(spec={"shape": "4"}), "shape: expected a list of non-negative ints"),
    ("audio shape wrong", _audio(spec={"shape": [5]}), r"shape \[5\] does not match the data"),
    ("audio odd bytes", _audio(spec={"data": base64.b64encode(bytes(7)).decode()}), "7 bytes is not a whole"),
    (
        "audio stereo bytes",
        _audio(num_channels=2, spec={"shape": [1, 2], "data": base64.b64encode(bytes(6)).decode()}),
        r"6 bytes is not a whole number of 2-channel int16 samples \(4 bytes each\)",
    ),
    ("audio rank", _audio(num_channels=2, spec={"shape": [4]}), "rank 1 does not fit 2 channel"),
    ("image unknown", _msg("ImageRawFrame", fields={"img": 1}), r"no field\(s\) \['img'\]"),
    ("image size short", _msg("ImageRawFrame", fields={"size": [1]}), r"expected \(width, height\)"),
    ("image size str", _msg("ImageRawFrame", fields={"size": "1x1"}), r"expected \[width, height\]"),
    ("image size float", _msg("ImageRawFrame", fields={"size": [1.0, 2]}), r"size\[0\]: expected an int"),
    ("image bytes int", _msg("ImageRawFrame", fields={"image": {"bytes": 1}}), "expected base64 text"),
    (
        "image dtype",
        _msg("ImageRawFrame", fields={"image": {"dtype": "object", "shape": [1], "data": ""}}),
        "dtype must be one of",
    ),
    (
        "image absurd shape",
        _msg("ImageRawFrame", fields={"image": {"dtype": "uint8", "shape": [0, 2**62], "data": ""}}),
        "do not hold",
    ),
    ("app not object", _msg("CounterFrame", fields=[1]), r"\.fields: expected a JSON object"),
    ("app unknown field", _msg("CounterFrame", fields={"x": 1}), r"CounterFrame has no field\(s\) \['x'\]"),
    ("app refuses value", _msg("GainFrame", fields={"gain_db": 99}), r"cannot build GainFrame .*got 99"),
]


@pytest.mark.parametrize("obj,message", [w[1:] for w in WRONG_FIELDS], ids=[w[0] for w in WRONG_FIELDS])
def test_wrong_field_types_are_refused_with_the_place(obj, message):
    with pytest.raises(SerializationError, match=message):
        SER.deserialize(json.dumps(obj))


def test_a_foreign_client_may_leave_out_ids_and_defaults():
    end = SER.deserialize('{"type": "EndFrame"}')
    assert isinstance(end, EndFrame) and end.id > 0 and end.name == f"EndFrame#{end.id}"
    assert end.pts is None and end.metadata == {}
    start = SER.deserialize('{"type": "StartFrame", "id": 8, "fields": {"metrics_interval_s": 2}}')
    assert isinstance(start, StartFrame) and start.name == "StartFrame#8"
    assert start.metrics_interval_s == 2.0 and type(start.metrics_interval_s) is float
    image = SER.deserialize('{"type": "ImageRawFrame", "fields": {"size": [2, 1]}}')
    assert isinstance(image, ImageRawFrame) and image.size == (2, 1) and image.image == b""


def test_bytes_like_input():
    text = SER.serialize(TextFrame("x"))
    frame = SER.deserialize(text)
    assert SER.deserialize(text.encode()) == SER.deserialize(bytearray(text.encode())) == frame
    assert SER.deserialize(memoryview(text.encode())) == frame
