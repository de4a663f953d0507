"""Behaviour both serializers share: exact round trips, coverage of every frame, registration, limits."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import pytest

import apipeline.frames as frames_pkg
from apipeline.errors import SerializationError
from apipeline.frames import (
    AppFrame,
    AudioRawFrame,
    ControlFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    ImageRawFrame,
    MetricsFrame,
    StartFrame,
    SystemFrame,
    TextFrame,
    UpdateSettingsFrame,
)
from apipeline.serializers import (
    BaseFrameSerializer,
    FrameSerializer,
    JsonFrameSerializer,
    ProtobufFrameSerializer,
)
from apipeline.serializers.base import ENVELOPE_FIELDS, LOCAL_FIELDS, WIRE_FRAMES
from tests.serializers._cases import (
    APP_FRAMES,
    ChatMessageFrame,
    TranscriptionFrame,
    every_wire_frame,
    random_frame,
    serializers,
)

CASES = every_wire_frame()
KINDS = [ProtobufFrameSerializer, JsonFrameSerializer]


def _assert_same_types(a: Any, b: Any, where: str = "") -> None:
    """Equal is not enough: 1 == 1.0 and (1,) != [1] would hide lossy encodings."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_types(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_types(x, y, f"{where}[{i}]")


def _assert_round_trip(original: Frame, decoded: Frame) -> None:
    assert type(decoded) is type(original)
    assert decoded is not original
    assert decoded == original
    assert (decoded.id, decoded.name, decoded.pts) == (original.id, original.name, original.pts)
    assert decoded.client_pts == original.client_pts
    _assert_same_types(original.metadata, decoded.metadata, "metadata")
    local = LOCAL_FIELDS.get(type(original), frozenset())
    for f in dataclasses.fields(original):
        if f.name in local:
            assert getattr(decoded, f.name) == f.default  # stays behind: the receiver gets the default
            continue
        value = getattr(original, f.name)
        if isinstance(value, np.ndarray):
            got = getattr(decoded, f.name)
            assert got.dtype == value.dtype and got.shape == value.shape
            assert np.array_equal(got, value)
        elif f.name not in ("size",):
            _assert_same_types(value, getattr(decoded, f.name), f.name)
    if isinstance(original, ImageRawFrame):
        assert decoded.size == tuple(original.size) and isinstance(decoded.size, tuple)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_wire_frame_round_trips_equal_in_all_fields(kind, case):
    serializer = kind(app_frames=APP_FRAMES)
    frame = case[1]
    data = serializer.serialize(frame)
    assert isinstance(data, bytes if serializer.binary else str)
    _assert_round_trip(frame, serializer.deserialize(data))


def test_every_concrete_frame_class_is_a_wire_frame_and_is_tested():
    families = {Frame, SystemFrame, ControlFrame, DataFrame, AppFrame}
    exported = {getattr(frames_pkg, n) for n in frames_pkg.__all__} - families
    assert exported <= WIRE_FRAMES.keys(), f"frames with no wire form: {exported - WIRE_FRAMES.keys()}"
    tested = {type(f) for _, f in CASES}
    assert WIRE_FRAMES.keys() <= tested


@pytest.mark.parametrize("cls", list(WIRE_FRAMES), ids=lambda c: c.__name__)
def test_wire_spec_names_every_own_field_of_the_frame_class(cls):
    """A field added to a frame class must be added to the wire format (or this fails)."""
    own = {f.name for f in dataclasses.fields(cls)} - ENVELOPE_FIELDS - LOCAL_FIELDS.get(cls, frozenset())
    special = {
        AudioRawFrame: {"audio", "sample_rate", "num_channels"},
        ImageRawFrame: {"image", "size", "format"},
    }
    spec = special.get(cls, {name for name, _ in WIRE_FRAMES[cls][1]})
    assert own == spec


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_seeded_random_frames_round_trip(kind):
    rng = random.Random(1234)
    serializer = kind(app_frames=[ChatMessageFrame])
    for _ in range(300):
        frame = random_frame(rng)
        _assert_round_trip(frame, serializer.deserialize(serializer.serialize(frame)))


def test_serializers_fit_the_seam():
    proto, js = serializers()
    assert isinstance(proto, FrameSerializer) and isinstance(js, FrameSerializer)
    assert isinstance(proto, BaseFrameSerializer) and proto.binary and not js.binary


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_subclass_of_a_builtin_frame_is_never_sent_stripped(kind):
    frame = TranscriptionFrame("hi", user_id="u")
    with pytest.raises(SerializationError, match=r"TranscriptionFrame is not a wire frame.*register"):
        kind().serialize(frame)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_unknown_app_type_on_the_receiving_side(kind):
    data = kind(app_frames=[ChatMessageFrame]).serialize(ChatMessageFrame(content="x"))
    with pytest.raises(SerializationError, match=r"unknown app frame type 'ChatMessageFrame'"):
        kind().deserialize(data)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_register_under_a_custom_name_and_as_decorator(kind):
    sender, receiver = kind(), kind()
    assert sender.register(ChatMessageFrame, "chat.v1") is ChatMessageFrame
    receiver.register(ChatMessageFrame, "chat.v1")
    assert sender.registered == {"chat.v1": ChatMessageFrame}
    frame = ChatMessageFrame(content="x")
    data = sender.serialize(frame)
    assert (b"chat.v1" if isinstance(data, bytes) else "chat.v1") in data
    assert receiver.deserialize(data) == frame

    @receiver.register
    @dataclasses.dataclass(slots=True)
    class Ping(AppFrame):
        n: int = 0

    ping = Ping(4)
    assert receiver.deserialize(receiver.serialize(ping)) == ping


def test_registration_mistakes_are_refused():
    s = ProtobufFrameSerializer()
    s.register(ChatMessageFrame)
    s.register(ChatMessageFrame)  # same class, same name: a no-op
    with pytest.raises(SerializationError, match="built-in wire frame"):
        s.register(TextFrame)
    with pytest.raises(SerializationError, match="reserved"):
        s.register(TranscriptionFrame, "TextFrame")
    with pytest.raises(SerializationError, match="conflicts"):
        s.register(TranscriptionFrame, "ChatMessageFrame")
    with pytest.raises(SerializationError, match="conflicts"):
        s.register(ChatMessageFrame, "other-name")
    with pytest.raises(SerializationError, match="dataclass Frame subclass"):
        s.register(dict)  # type: ignore[type-var]
    with pytest.raises(SerializationError, match="non-empty str"):
        s.register(TranscriptionFrame, "")
    with pytest.raises(ValueError, match="max_message_size"):
        ProtobufFrameSerializer(max_message_size=0)


def _frame_with_metadata(metadata: Any) -> TextFrame:
    frame = TextFrame("x")
    frame.metadata = metadata
    return frame


BAD_FRAMES = [
    ("tuple in metadata", lambda: _frame_with_metadata({"a": (1, 2)}), r"metadata\['a'\].*use a list"),
    ("int key", lambda: _frame_with_metadata({1: "a"}), r"key 1 is int"),
    ("nested int key", lambda: _frame_with_metadata({"a": [{2: 0}]}), r"metadata\['a'\]\[0\]: key 2"),
    ("nan", lambda: _frame_with_metadata({"a": float("nan")}), "only finite floats"),
    ("bytes", lambda: _frame_with_metadata({"a": b"x"}), "bytes .* not JSON-compatible"),
    ("set", lambda: _frame_with_metadata({"a": {1}}), "use a list"),
    ("object", lambda: _frame_with_metadata({"a": object()}), "not JSON-compatible"),
    ("metadata not dict", lambda: _frame_with_metadata([1]), "metadata: expected a dict"),
    ("metadata None", lambda: _frame_with_metadata(None), "metadata: expected a dict, got NoneType"),
    ("deep", lambda: _frame_with_metadata(_nest(100)), "deeper than 64"),
    ("cycle", lambda: _frame_with_metadata(_cycle()), "deeper than 64"),
    ("text not str", lambda: TextFrame(5), r"\.text: expected a str, got int 5"),  # type: ignore[arg-type]
    ("fatal not bool", lambda: ErrorFrame("e", fatal="yes"), r"\.fatal: expected a bool"),  # type: ignore[arg-type]
    (
        "rate zero",
        lambda: StartFrame(audio_in_sample_rate=0),
        r"audio_in_sample_rate: expected a positive int",
    ),
    ("rate float", lambda: StartFrame(audio_out_sample_rate=16000.0), "audio_out_sample_rate"),  # type: ignore
    (
        "interval inf",
        lambda: StartFrame(metrics_interval_s=float("inf")),
        "metrics_interval_s: expected a finite",
    ),
    ("settings list", lambda: UpdateSettingsFrame([1]), r"\.settings: expected a JSON object"),  # type: ignore
    ("metrics tuple", lambda: MetricsFrame([{"t": (1,)}]), r"\.data\[0\]\['t'\]"),
    ("pts float", lambda: _with(EndFrame(), pts=1.5), "pts must be an int"),
    ("pts too big", lambda: _with(EndFrame(), pts=2**63), "does not fit int64"),
    ("pts bool", lambda: _with(EndFrame(), pts=True), "pts must be an int"),
    ("image str", lambda: ImageRawFrame("x"), r"\.image: expected bytes or a numpy array"),  # type: ignore
    ("image object array", lambda: ImageRawFrame(np.array([None])), "object cannot cross a wire"),
    ("image complex", lambda: ImageRawFrame(np.zeros(2, np.complex64)), "complex64 cannot cross"),
    ("size 1d", lambda: ImageRawFrame(b"", size=(1,)), r"\.size: expected \(width, height\)"),  # type: ignore
    ("size negative", lambda: ImageRawFrame(b"", size=(-1, 2)), r"size\[0\]: -1 is outside"),
    (
        "audio swapped",
        lambda: _with(AudioRawFrame(np.zeros(4, np.int16)), audio=np.zeros(4)),
        "int16 or float32",
    ),
    ("app tuple field", lambda: ChatMessageFrame(tokens=(1, 2)), r"\['tokens'\].*use a list"),  # type: ignore
    ("not a frame", lambda: "TextFrame", "expected a Frame, got str"),
]


def _nest(depth: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(depth):
        d = {"d": d}
    return d


def _cycle() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def _with(frame: Frame, **values: Any) -> Frame:
    for k, v in values.items():
        setattr(frame, k, v)
    return frame


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
@pytest.mark.parametrize("make,message", [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES])
def test_frames_that_cannot_cross_a_wire_are_refused_with_the_place(kind, make, message):
    with pytest.raises(SerializationError, match=message):
        kind(app_frames=[ChatMessageFrame]).serialize(make())


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_numpy_scalars_in_metadata_arrive_as_python_numbers(kind):
    frame = _frame_with_metadata({"n": np.int64(7), "x": np.float32(0.5), "b": np.bool_(True)})
    got = kind().deserialize(kind().serialize(frame)).metadata
    assert got == {"n": 7, "x": 0.5, "b": True}
    assert [type(v) for v in got.values()] == [int, float, bool]


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_max_message_size_both_ways(kind):
    frame = AudioRawFrame(np.zeros(4000, np.int16), sample_rate=16000)
    big = kind(max_message_size=None).serialize(frame)
    with pytest.raises(SerializationError, match="exceeds max_message_size=1000"):
        kind(max_message_size=1000).serialize(frame)
    with pytest.raises(SerializationError, match="exceeds max_message_size=1000"):
        kind(max_message_size=1000).deserialize(big)
    assert kind(max_message_size=len(big)).deserialize(big) == frame


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
@pytest.mark.parametrize("data", [None, 3, 1.5, [], {}, object()], ids=repr)
def test_deserialize_refuses_wrong_input_types(kind, data):
    with pytest.raises(SerializationError, match="deserialize: expected"):
        kind().deserialize(data)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_odd_buffers_are_read_or_refused_never_crash(kind):
    data = kind().serialize(EndFrame())
    raw = data if isinstance(data, bytes) else data.encode()
    spaced = np.zeros(2 * len(raw), np.uint8)
    spaced[::2] = np.frombuffer(raw, np.uint8)
    strided = memoryview(spaced[::2])
    assert not strided.contiguous
    assert kind().deserialize(strided) == kind().deserialize(raw)
    for odd in (memoryview(np.zeros((2, 3), np.int32))[::2], memoryview(np.int32(5))):
        with pytest.raises(SerializationError):
            kind().deserialize(odd)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_big_endian_arrays_arrive_equal_in_native_order(kind):
    frame = ImageRawFrame(np.arange(6, dtype=">u2").reshape(2, 3), size=(3, 2), format="L16")
    got = kind().deserialize(kind().serialize(frame))
    assert got == frame and got.image.dtype == np.dtype("=u2")  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_decoded_audio_is_a_native_read_only_view(kind):
    frame = AudioRawFrame(np.arange(8, dtype=np.float32).reshape(4, 2), sample_rate=48000, num_channels=2)
    got = kind().deserialize(kind().serialize(frame))
    assert isinstance(got, AudioRawFrame) and got.audio.dtype == np.float32  # type: ignore[union-attr]
    assert got.audio.shape == (4, 2) and not got.audio.flags.writeable  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_app_fields_are_encoded_in_declaration_order(kind):
    data = kind(app_frames=[ChatMessageFrame]).serialize(ChatMessageFrame("r", "c", [1], {"x": 1}))
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    positions = [text.index(f'"{name}"') for name in ("role", "content", "tokens", "extra")]
    assert positions == sorted(positions)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_client_pts_travels_apart_from_pts(kind):
    ser = kind()
    frame = AudioRawFrame(np.zeros(160, np.int16), pts=10, client_pts=7)
    back = ser.deserialize(ser.serialize(frame))
    assert (back.pts, back.client_pts) == (10, 7)
    none = ser.deserialize(ser.serialize(TextFrame("x", pts=3)))
    assert none.client_pts is None
    for bad, message in (
        (1.5, "client_pts must be an int"),
        (2**63, "client_pts 9223372036854775808 does not fit"),
    ):
        with pytest.raises(SerializationError, match=message):
            ser.serialize(TextFrame("x", client_pts=bad))


def test_json_client_pts_is_checked_on_the_way_in():
    ser = JsonFrameSerializer()
    msg = '{"type": "TextFrame", "client_pts": "soon", "fields": {"text": "x"}}'
    with pytest.raises(SerializationError, match="client_pts must be an int"):
        ser.deserialize(msg)


@pytest.mark.parametrize("kind", KINDS, ids=["protobuf", "json"])
def test_error_exception_stays_in_this_process(kind):
    ser = kind()
    error = ErrorFrame("boom", exception=RuntimeError("boom"))
    back = ser.deserialize(ser.serialize(error))
    assert back.exception is None and back.error == "boom"
    text = ser.serialize(error)
    assert "RuntimeError" not in (text if isinstance(text, str) else text.decode("latin-1"))
