"""Frames for the serializer tests: every wire frame with non-default values, app frames, a random maker."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apipeline.frames import (
    AppFrame,
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
from apipeline.serializers import JsonFrameSerializer, ProtobufFrameSerializer


@dataclass(slots=True)
class ChatMessageFrame(AppFrame):
    """An application frame with str, list and dict fields."""

    role: str = "user"
    content: str = ""
    tokens: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TranscriptionFrame(TextFrame):
    """A subclass of a built-in frame with extra fields: must be registered, never sent as a TextFrame."""

    user_id: str = ""
    final: bool = False


@dataclass(slots=True)
class CounterFrame(AppFrame):
    """An application frame with a field that is not an __init__ argument."""

    count: int = 0
    seen: int = field(init=False, default=0)


@dataclass(slots=True)
class GainFrame(AppFrame):
    """An application frame with a required field and its own validation."""

    gain_db: float

    def __post_init__(self) -> None:
        AppFrame.__post_init__(self)
        if not -60.0 <= self.gain_db <= 24.0:
            raise ValueError(f"gain_db must be in [-60, 24], got {self.gain_db}")


APP_FRAMES = (ChatMessageFrame, TranscriptionFrame, CounterFrame, GainFrame)

NESTED_METADATA: dict[str, Any] = {
    "int": 3,
    "big": 2**62 + 1,
    "neg": -7,
    "float": 0.1,
    "whole_float": 2.0,
    "bool": True,
    "none": None,
    "text": '音色 ✓ "quoted" \\ \n',
    "list": [1, 2.5, "x", None, [False, {"deep": [1]}]],
    "dict": {"a": {"b": {"c": [0, -1]}}},
}


def serializers() -> list[ProtobufFrameSerializer | JsonFrameSerializer]:
    """A fresh protobuf and JSON serializer, both with the test app frames registered."""
    return [ProtobufFrameSerializer(app_frames=APP_FRAMES), JsonFrameSerializer(app_frames=APP_FRAMES)]


def _noise(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "int16":
        return rng.integers(-32768, 32768, size=shape, dtype=np.int16)
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def every_wire_frame() -> list[tuple[str, Frame]]:
    """(case id, frame): every built-in wire frame with non-default field values, plus app frames."""
    meta = {"metadata": NESTED_METADATA}
    counter = CounterFrame(count=41)
    counter.seen = 9
    cases: list[tuple[str, Frame]] = [
        ("cancel", CancelFrame()),
        ("error", ErrorFrame("boom: ValueError('x')", fatal=True, processor="Tts#3", pts=12)),
        ("error-defaults", ErrorFrame()),
        ("error-with-exception", ErrorFrame("kept here", exception=ValueError("not sent"), client_pts=4)),
        ("stop-task", StopTaskFrame(pts=0)),
        ("start-interruption", StartInterruptionFrame()),
        ("stop-interruption", StopInterruptionFrame(pts=-5)),
        ("metrics", MetricsFrame([{"processor": "P#1", "processing": {"value": 0.0012, "n": 3}}], **meta)),
        (
            "start",
            StartFrame(
                allow_interruptions=True,
                enable_metrics=True,
                report_only_initial_ttfb=True,
                metrics_interval_s=0.25,
                audio_in_sample_rate=16000,
                audio_out_sample_rate=48000,
                pts=2**62,
            ),
        ),
        ("start-defaults", StartFrame()),
        ("end", EndFrame(pts=123456789)),
        ("sync", SyncFrame()),
        ("sync-notify", SyncNotifyFrame(**meta)),
        (
            "update-settings",
            UpdateSettingsFrame({"pitch": 4, "svc.formant": 1.1, "on": True, "list": [1, 2]}),
        ),
        ("user-started", UserStartedSpeakingFrame(pts=1)),
        ("user-stopped", UserStoppedSpeakingFrame()),
        ("text", TextFrame("hello 世界 🎤", pts=99, **meta)),
        ("text-client-pts", TextFrame("echo", pts=5, client_pts=1_700_000_000_123_456_789)),
        ("end-client-pts", EndFrame(client_pts=-(2**63))),
        ("text-empty", TextFrame("")),
        ("audio-empty", AudioRawFrame(np.zeros(0, np.int16), sample_rate=8000)),
        ("image-bytes", ImageRawFrame(b"\xff\xd8\xff\x00jpeg", size=(640, 480), format="JPEG", pts=7)),
        (
            "image-array",
            ImageRawFrame(_noise((4, 3, 3), "int16", 1).astype(np.uint8), size=(3, 4), format="RGB"),
        ),
        ("image-float", ImageRawFrame(np.linspace(0, 1, 12).reshape(2, 6), size=(6, 2))),
        ("image-default", ImageRawFrame()),
        ("app-chat", ChatMessageFrame("assistant", "hi", [1, 2, 3], {"k": {"n": 1}}, **meta)),
        ("app-transcription", TranscriptionFrame("hola", user_id="u1", final=True, pts=3)),
        ("app-counter", counter),
        ("app-gain", GainFrame(-6.5)),
    ]
    for dtype in ("int16", "float32"):
        for channels in (1, 2):
            shape = (160,) if channels == 1 else (160, channels)
            audio = _noise(shape, dtype, channels)
            frame = AudioRawFrame(audio, sample_rate=16000, num_channels=channels, pts=5_000_000, **meta)
            cases.append((f"audio-{dtype}-{channels}ch", frame))
    column = _noise((80, 1), "float32", 3)
    cases.append(("audio-mono-2d", AudioRawFrame(column, sample_rate=44100, num_channels=1)))
    strided = _noise((200, 6), "int16", 4)[::2, 1:4]
    cases.append(("audio-strided-3ch", AudioRawFrame(strided, sample_rate=22050, num_channels=3)))
    return cases


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(8 if depth < 3 else 5)
    if pick == 0:
        return rng.randrange(-(2**63), 2**63)
    if pick == 1:
        return rng.uniform(-1e6, 1e6)
    if pick == 2:
        return "".join(rng.choice('ab 音\n"\\é') for _ in range(rng.randrange(6)))
    if pick == 3:
        return rng.choice([True, False, None])
    if pick == 4:
        return rng.randrange(100)
    if pick == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _random_json(rng, depth + 1) for i in range(rng.randrange(4))}


def random_frame(rng: random.Random) -> Frame:
    """A random wire frame with random pts and metadata (for seeded property tests)."""
    kind = rng.randrange(6)
    frame: Frame
    if kind == 0:
        channels = rng.choice([1, 2, 3])
        dtype = rng.choice(["int16", "float32"])
        n = rng.randrange(0, 50)
        shape = (n,) if channels == 1 and rng.random() < 0.7 else (n, channels)
        frame = AudioRawFrame(
            _noise(shape, dtype, rng.randrange(1000)), rng.choice([8000, 16000, 48000]), channels
        )
    elif kind == 1:
        frame = TextFrame(str(_random_json(rng)))
    elif kind == 2:
        frame = UpdateSettingsFrame({f"p{i}": _random_json(rng) for i in range(rng.randrange(4))})
    elif kind == 3:
        frame = MetricsFrame([{"v": _random_json(rng)} for _ in range(rng.randrange(3))])
    elif kind == 4:
        frame = ChatMessageFrame(content=str(rng.random()), tokens=[rng.randrange(9) for _ in range(3)])
    else:
        frame = rng.choice([EndFrame, CancelFrame, SyncFrame, StartInterruptionFrame])()
    frame.pts = rng.choice([None, rng.randrange(-(2**63), 2**63)])
    frame.metadata = {f"m{i}": _random_json(rng) for i in range(rng.randrange(3))}
    return frame
