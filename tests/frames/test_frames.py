import numpy as np
import pytest

from apipeline.errors import FrameError
from apipeline.frames import (
    AppFrame,
    AudioRawFrame,
    CancelFrame,
    ControlFrame,
    DataFrame,
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
    SystemFrame,
    TextFrame,
)


def test_ids_are_unique_and_increasing_and_names_follow():
    frames = [TextFrame("a"), EndFrame(), TextFrame("b")]
    ids = [f.id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert frames[0].name == f"TextFrame#{frames[0].id}"
    assert frames[0].pts is None and frames[0].metadata == {}


def test_families():
    for cls in (
        CancelFrame,
        ErrorFrame,
        StopTaskFrame,
        StartInterruptionFrame,
        StopInterruptionFrame,
        MetricsFrame,
    ):
        assert issubclass(cls, SystemFrame)
    for cls in (StartFrame, EndFrame, SyncFrame, SyncNotifyFrame):
        assert issubclass(cls, ControlFrame)
    for cls in (TextFrame, AudioRawFrame, ImageRawFrame, AppFrame):
        assert issubclass(cls, DataFrame)
    assert DataFrame.interruptible and not ControlFrame.interruptible and not SystemFrame.interruptible
    assert issubclass(SystemFrame, Frame)


def test_error_and_start_fields():
    e = ErrorFrame("boom", fatal=True)
    assert (e.error, e.fatal) == ("boom", True)
    assert ErrorFrame("x").fatal is False
    s = StartFrame(allow_interruptions=True, enable_metrics=True)
    assert s.allow_interruptions and s.enable_metrics
    assert MetricsFrame(data=[{"a": 1}]).data == [{"a": 1}]


def test_audio_frame_numpy_and_properties():
    a = AudioRawFrame(np.zeros((480, 2), np.float32), sample_rate=48000, num_channels=2)
    assert a.num_frames == 480 and a.duration == pytest.approx(0.01)


def test_audio_frame_pcm16_bytes_are_viewed_without_copy():
    raw = bytearray(np.arange(8, dtype="<i2").tobytes())
    a = AudioRawFrame(raw, sample_rate=8000, num_channels=2)
    assert a.audio.dtype == np.int16 and a.audio.shape == (4, 2)
    assert np.shares_memory(a.audio, np.frombuffer(raw, dtype=np.int16))
    raw[0] = 99
    assert a.audio[0, 0] == 99


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(audio=np.zeros(4, np.float64), sample_rate=16000, num_channels=1), "int16 or float32"),
        (dict(audio=np.zeros((4, 2), np.int16), sample_rate=16000, num_channels=1), "2 channels"),
        (dict(audio=np.zeros(4, np.int16), sample_rate=16000, num_channels=2), "mono"),
        (dict(audio=np.zeros(4, np.int16), sample_rate=0, num_channels=1), "sample_rate"),
        (dict(audio=b"\x00\x00\x00", sample_rate=16000, num_channels=1), "whole number"),
        (dict(audio=[0, 1], sample_rate=16000, num_channels=1), "numpy array"),
        (dict(audio=np.zeros((2, 2, 2), np.int16), sample_rate=16000, num_channels=2), "shape"),
    ],
)
def test_audio_frame_rejects_bad_input(kwargs, message):
    with pytest.raises(FrameError, match=message):
        AudioRawFrame(**kwargs)


def test_audio_equality_compares_samples():
    a = AudioRawFrame(np.ones(4, np.int16), 16000, 1)
    b = AudioRawFrame(np.ones(4, np.int16), 16000, 1)
    b.id, b.name = a.id, a.name
    assert a == b
    b.audio[0] = 3
    assert a != b


def test_image_frame():
    img = ImageRawFrame(b"\x00" * 12, size=(2, 2), format="RGB")
    assert img.size == (2, 2) and img.format == "RGB"
