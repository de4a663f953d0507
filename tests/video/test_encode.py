"""Encoder settings are range-checked, containers are proven to fit the codecs, fMP4 streams."""

import io

import av
import numpy as np
import pytest

from apipeline.errors import ConfigurationError, ParameterError
from apipeline.video.encode import EncoderSettings, MediaWriter, check_container, container_format


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"video_bitrate": 0}, "video_bitrate must be within"),
        ({"audio_bitrate": 10**9}, "audio_bitrate must be within"),
        ({"keyframe_interval": 0}, "keyframe_interval must be within"),
        ({"preset": "ludicrous"}, "preset must be one of"),
        ({"fps": 0.0}, "fps must be within"),
        ({"fps": float("nan")}, "finite"),
        ({"video_codec": "h265"}, "video_codec must be one of"),
    ],
)
def test_settings_out_of_range_are_refused(kwargs, needle):
    with pytest.raises(ParameterError, match=needle):
        EncoderSettings(**kwargs)


def test_containers_are_checked_against_the_codecs():
    check_container("mp4", EncoderSettings())
    check_container("matroska", EncoderSettings(audio_codec="opus"))
    check_container("webm", EncoderSettings(video_codec="vp9", audio_codec="opus"))
    with pytest.raises(ConfigurationError, match="a webm file cannot hold h264 video with aac audio"):
        check_container("webm", EncoderSettings())
    with pytest.raises(ConfigurationError, match=r"unknown video container '\.avi'"):
        container_format("x.avi")
    assert container_format("X.MP4") == "mp4"


def test_odd_sizes_and_bad_channels_are_refused(tmp_path):
    with pytest.raises(ParameterError, match="even"):
        MediaWriter(tmp_path / "a.mp4", width=255, height=256, sample_rate=16000)
    with pytest.raises(ParameterError, match="mono or stereo"):
        MediaWriter(tmp_path / "a.mp4", width=64, height=64, sample_rate=16000, channels=3)


def test_fragmented_mp4_streams_chunks_that_decode():
    chunks: list[bytes] = []
    settings = EncoderSettings(keyframe_interval=10)
    w = MediaWriter(
        None,
        width=64,
        height=48,
        sample_rate=16000,
        settings=settings,
        fragmented=True,
        on_chunk=chunks.append,
    )
    sent_before_close = 0
    for i in range(30):
        w.write_video(np.full((48, 64, 3), i * 8, np.uint8))
        w.write_audio(np.zeros(640, np.float32))
        if i == 25:
            sent_before_close = len(chunks)
    w.close()
    assert sent_before_close >= 2  # the header and fragments leave before the end
    with av.open(io.BytesIO(b"".join(chunks))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30


def test_stereo_and_odd_rates_round_trip(tmp_path):
    path = tmp_path / "s.mkv"
    settings = EncoderSettings(audio_codec="opus")
    with MediaWriter(path, width=32, height=32, sample_rate=22050, channels=2, settings=settings) as w:
        for _ in range(25):
            w.write_video(np.zeros((32, 32, 3), np.uint8))
            w.write_audio(np.zeros((882, 2), np.float32))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.channels == 2 and a.codec_context.sample_rate == 48000
        assert sum(f.samples for f in c.decode(audio=0)) == pytest.approx(48000, abs=1200)
