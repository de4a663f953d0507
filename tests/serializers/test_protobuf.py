"""The protobuf wire format: the IDL, hostile bytes, hand-built messages from foreign clients."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from apipeline.errors import SerializationError
from apipeline.frames import AudioRawFrame, EndFrame, Frame, ImageRawFrame, StartFrame, TextFrame
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.serializers import frames_pb2 as pb
from apipeline.serializers._values import JSON_KINDS
from apipeline.serializers.base import WIRE_FRAMES
from tests.serializers._cases import APP_FRAMES, every_wire_frame

ROOT = Path(__file__).resolve().parents[2]
SER = ProtobufFrameSerializer(app_frames=APP_FRAMES)
MESSAGES = [(name, SER.serialize(frame)) for name, frame in every_wire_frame()]


def _decode_or_refuse(data: bytes) -> Frame | None:
    """The only acceptable outcomes for any input: a frame that re-encodes stably, or SerializationError."""
    try:
        frame = SER.deserialize(data)
    except SerializationError:
        return None
    # compared as messages, not frames: mutated float samples may be NaN, and NaN != NaN
    again = SER.serialize(frame)
    assert SER.serialize(SER.deserialize(again)) == again
    return frame


def test_every_frame_class_has_its_message_and_fields_in_the_idl():
    oneof = {f.name for f in pb.Envelope.DESCRIPTOR.oneofs_by_name["frame"].fields}
    for cls, (tag, fields) in WIRE_FRAMES.items():
        assert tag in oneof, cls
        message = pb.Envelope.DESCRIPTOR.fields_by_name[tag].message_type
        assert message.name == cls.__name__
        for name, kind in fields:
            assert (f"{name}_json" if kind in JSON_KINDS else name) in message.fields_by_name, (cls, name)
    assert "app" in oneof


@pytest.mark.parametrize("name,data", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_every_truncation_is_refused(name, data):
    for cut in range(len(data)):
        with pytest.raises(SerializationError):
            SER.deserialize(data[:cut])


def test_random_bytes_never_raise_anything_else():
    rng = random.Random(7)
    decoded = 0
    for _ in range(400):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        decoded += _decode_or_refuse(data) is not None
    assert decoded < 40  # garbage rarely forms a valid frame; most must be refused


def test_mutated_messages_never_raise_anything_else():
    rng = random.Random(11)
    for _ in range(600):
        _, data = rng.choice(MESSAGES)
        buf = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        _decode_or_refuse(bytes(buf))


def _envelope(**fields) -> pb.Envelope:
    return pb.Envelope(id=5, name="X#5", **fields)


def _audio(**fields) -> bytes:
    base = dict(sample_type=pb.SAMPLE_TYPE_INT16, sample_rate=16000, num_channels=1, audio=b"\0" * 8)
    base.update(fields)
    return _envelope(audio=pb.AudioRawFrame(**base)).SerializeToString()


BAD_MESSAGES = [
    ("no frame", _envelope().SerializeToString(), "carries no known frame"),
    ("unknown oneof field", b"\x08\x05\xd2\x06\x00", "carries no known frame"),
    ("odd byte count", _audio(audio=b"\0" * 7), r"7 bytes is not a whole number of 1-channel int16"),
    (
        "stereo byte count",
        _audio(num_channels=2, audio=b"\0" * 6),
        r"6 bytes .* 2-channel int16 .*4 bytes each",
    ),
    ("float byte count", _audio(sample_type=pb.SAMPLE_TYPE_FLOAT32, audio=b"\0" * 6), "float32"),
    (
        "sample type missing",
        _audio(sample_type=pb.SAMPLE_TYPE_UNSPECIFIED),
        "sample_type must be INT16 or FLOAT32",
    ),
    ("sample type unknown", _audio(sample_type=9), "sample_type"),
    ("rate missing", _audio(sample_rate=0), "sample_rate is missing"),
    ("no channels", _audio(num_channels=0), r"num_channels must be in \[1, 1024\], got 0"),
    ("absurd channels", _audio(num_channels=5000, audio=b""), "got 5000"),
    ("rank 1 stereo", _audio(num_channels=2, rank=1), "rank 1 does not fit 2 channel"),
    ("rank 3", _audio(rank=3), "rank 3"),
    (
        "metadata not json",
        _envelope(metadata_json="{", end=pb.EndFrame()).SerializeToString(),
        "not valid JSON",
    ),
    ("metadata array", _envelope(metadata_json="[1]", end=pb.EndFrame()).SerializeToString(), "JSON object"),
    ("metadata nan", _envelope(metadata_json='{"a": NaN}', end=pb.EndFrame()).SerializeToString(), "NaN"),
    (
        "metadata deep",
        _envelope(metadata_json='{"a":' * 80 + "1" + "}" * 80, end=pb.EndFrame()).SerializeToString(),
        "deeper than 64",
    ),
    (
        "metadata abyss",
        _envelope(metadata_json="[" * 200_000 + "]" * 200_000, end=pb.EndFrame()).SerializeToString(),
        "metadata",
    ),
    (
        "settings array",
        _envelope(update_settings=pb.UpdateSettingsFrame(settings_json="[]")).SerializeToString(),
        r"UpdateSettingsFrame\(id=5, name='X#5'\)\.settings: expected a JSON object .*got list",
    ),
    (
        "metrics object",
        _envelope(metrics=pb.MetricsFrame(data_json="{}")).SerializeToString(),
        r"MetricsFrame\(.*\)\.data: expected a JSON array",
    ),
    ("rate zero", _envelope(start=pb.StartFrame(audio_in_sample_rate=0)).SerializeToString(), "positive int"),
    (
        "interval nan",
        _envelope(start=pb.StartFrame(metrics_interval_s=float("nan"))).SerializeToString(),
        "metrics_interval_s: expected a finite float",
    ),
    (
        "image dtype",
        _envelope(image=pb.ImageRawFrame(array=pb.NdArray(dtype="object", shape=[1], data=b"\0" * 8))),
        "dtype must be one of",
    ),
    (
        "image short",
        _envelope(image=pb.ImageRawFrame(array=pb.NdArray(dtype="uint8", shape=[2, 3], data=b"\0" * 5))),
        r"5 bytes do not hold a uint8 array of shape \(2, 3\) \(6 bytes expected\)",
    ),
    (
        "image absurd",
        _envelope(image=pb.ImageRawFrame(array=pb.NdArray(dtype="uint8", shape=[2**40, 2**40]))),
        "do not hold",
    ),
    (
        "image zero-size absurd",
        _envelope(image=pb.ImageRawFrame(array=pb.NdArray(dtype="uint8", shape=[0, 2**62]))),
        "do not hold",
    ),
    (
        "image rank",
        _envelope(image=pb.ImageRawFrame(array=pb.NdArray(dtype="uint8", shape=[1] * 40, data=b"\0"))),
        "shape has more than 32 entries",
    ),
    (
        "app unknown",
        _envelope(app=pb.AppFrame(type="Nope", fields_json="{}")),
        "unknown app frame type 'Nope'",
    ),
    ("app not object", _envelope(app=pb.AppFrame(type="CounterFrame", fields_json="[]")), "JSON object"),
    ("app bad json", _envelope(app=pb.AppFrame(type="CounterFrame", fields_json="{")), "not valid JSON"),
    (
        "app unknown field",
        _envelope(app=pb.AppFrame(type="CounterFrame", fields_json='{"x":1}')),
        r"no field",
    ),
    (
        "app refuses value",
        _envelope(app=pb.AppFrame(type="GainFrame", fields_json='{"gain_db": 99}')),
        r"cannot build GainFrame .*gain_db must be in \[-60, 24\], got 99",
    ),
    (
        "app missing field",
        _envelope(app=pb.AppFrame(type="GainFrame", fields_json="{}")),
        r"cannot build GainFrame .*gain_db",
    ),
    ("invalid utf-8", b"\x12\x02\xff\xfe\xaa\x01\x00", "not a valid Envelope"),
    ("empty", b"", "empty message"),
]


@pytest.mark.parametrize("data,message", [m[1:] for m in BAD_MESSAGES], ids=[m[0] for m in BAD_MESSAGES])
def test_malformed_messages_are_refused_with_a_reason(data, message):
    if isinstance(data, pb.Envelope):
        data = data.SerializeToString()
    with pytest.raises(SerializationError, match=message):
        SER.deserialize(data)


def test_a_foreign_client_may_leave_out_ids_and_defaults():
    frame = SER.deserialize(pb.Envelope(start=pb.StartFrame(allow_interruptions=True)).SerializeToString())
    assert isinstance(frame, StartFrame)
    assert (
        frame.allow_interruptions and frame.metrics_interval_s == 1.0 and frame.audio_in_sample_rate is None
    )
    assert (
        frame.id > 0 and frame.name == f"StartFrame#{frame.id}" and frame.pts is None and frame.metadata == {}
    )
    named = SER.deserialize(pb.Envelope(id=77, text=pb.TextFrame()).SerializeToString())
    assert isinstance(named, TextFrame) and (named.id, named.name, named.text) == (77, "TextFrame#77", "")
    stereo = SER.deserialize(
        pb.Envelope(
            audio=pb.AudioRawFrame(
                sample_type=pb.SAMPLE_TYPE_INT16, sample_rate=8000, num_channels=2, audio=bytes(8)
            )
        ).SerializeToString()
    )
    assert isinstance(stereo, AudioRawFrame) and stereo.audio.shape == (2, 2)
    assert isinstance(
        SER.deserialize(pb.Envelope(image=pb.ImageRawFrame()).SerializeToString()), ImageRawFrame
    )


def test_samples_are_little_endian_interleaved_on_the_wire():
    audio = np.array([[1, -2], [3, -4]], np.int16)
    env = pb.Envelope()
    env.ParseFromString(SER.serialize(AudioRawFrame(audio, sample_rate=16000, num_channels=2)))
    assert env.audio.audio == b"\x01\x00\xfe\xff\x03\x00\xfc\xff"
    assert (env.audio.rank, env.audio.num_channels, env.audio.sample_rate) == (2, 2, 16000)


def test_bytes_like_input_and_str_refusal():
    data = SER.serialize(EndFrame())
    assert SER.deserialize(bytearray(data)) == SER.deserialize(memoryview(data))
    with pytest.raises(SerializationError, match="expected bytes, got str"):
        SER.deserialize(data.decode("latin-1"))


def _without_json_names(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """protoc's descriptor sets add json_name to every field; gencode leaves it out. Compare without."""
    stack = list(fd.message_type)
    while stack:
        message = stack.pop()
        for f in message.field:
            f.ClearField("json_name")
        stack.extend(message.nested_type)
    return fd


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools not installed")
def test_generated_code_matches_the_proto(tmp_path):
    """frames_pb2 must be regenerated (tools/gen_proto.sh) whenever frames.proto changes.

    Compares descriptors, not text, so a different grpcio-tools version does not fail it.
    """
    out = tmp_path / "frames.desc"
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--descriptor_set_out={out}"]
    subprocess.run([*cmd, "apipeline/serializers/frames.proto"], cwd=ROOT, check=True, capture_output=True)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert _without_json_names(fresh) == committed, "frames_pb2 is stale: run tools/gen_proto.sh"
