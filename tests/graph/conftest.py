"""Test processors with declared formats, ports and latency, registered in a private registry."""

from __future__ import annotations

import pytest

from apipeline.audio.format import AudioFormat
from apipeline.frames import Frame
from apipeline.graph.builtins import register_builtins
from apipeline.graph.registry import Registry
from apipeline.processors import FrameDirection, FrameProcessor


class Pass(FrameProcessor):
    """Pass every frame on.

    Args:
        gain: a number that is only stored.
        mode: one of two words.
    """

    def __init__(self, gain: float = 1.0, mode: str = "a", *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.gain = gain
        self.mode = mode

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Needs16k(Pass):
    """Accepts 16 kHz mono float32 only; 20 ms of latency."""

    input_format = AudioFormat(16000, 1, "float32")
    latency = 0.020


class Makes48k(Pass):
    """Produces 48 kHz stereo float32; 5 ms of latency."""

    output_format = AudioFormat(48000, 2, "float32")
    latency = 0.005


class Join(Pass):
    """Two named inputs, one output."""

    input_ports = ("f0", "spectrum")


class Required(Pass):
    """A required integer."""

    def __init__(self, size: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.size = size


@pytest.fixture
def registry() -> Registry:
    reg = Registry(entry_points=False)
    register_builtins(reg)
    for name, cls in (
        ("pass", Pass),
        ("needs16k", Needs16k),
        ("makes48k", Makes48k),
        ("join", Join),
        ("required", Required),
    ):
        reg.register(name, cls, origin="tests")
    return reg
