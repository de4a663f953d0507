"""Item 5: device lookup and listing, refusal at once with the list, a live run against fake streams.

No audio device (nor PortAudio) exists on the test machines: device queries are replaced by a fake
``query_devices`` list and the PortAudio streams by fake streams whose callbacks run on their own
threads, as PortAudio's do. What real hardware adds (driver latency, xruns) is not tested here.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from apipeline.voice_changer import VoiceChangerSettings, live
from apipeline.voice_changer.live import DeviceError, find_device, run_live
from tests.voice_changer.conftest import speech

DEVICES = [
    {"name": "Built-in Microphone", "max_input_channels": 2, "max_output_channels": 0,
     "default_samplerate": 48000.0, "default_input": True},
    {"name": "Built-in Output", "max_input_channels": 0, "max_output_channels": 2,
     "default_samplerate": 48000.0, "default_output": True},
    {"name": "USB Headset", "max_input_channels": 1, "max_output_channels": 2, "default_samplerate": 44100.0},
    {"name": "USB Audio Interface", "max_input_channels": 2, "max_output_channels": 2,
     "default_samplerate": 48000.0},
]  # fmt: skip
DEVICES = [{**d, "index": i} for i, d in enumerate(DEVICES)]


def test_devices_are_found_by_index_or_a_unique_name_part():
    assert find_device(None, "input", DEVICES) is None  # the system default
    assert find_device("2", "input", DEVICES) == 2 and find_device(3, "output", DEVICES) == 3
    assert find_device("headset", "input", DEVICES) == 2
    assert find_device("built-in", "output", DEVICES) == 1  # only one built-in device has outputs


@pytest.mark.parametrize(
    ("spec", "kind", "needle"),
    [
        ("7", "input", "input device 7 does not exist"),
        ("1", "input", "has no input channels"),
        ("usb", "output", "matches several output devices"),
        ("bluetooth", "input", "no input device matches 'bluetooth'"),
    ],
)
def test_a_bad_device_is_refused_with_the_device_list(spec, kind, needle):
    with pytest.raises(DeviceError, match=needle) as info:
        find_device(spec, kind, DEVICES)
    assert "USB Audio Interface" in str(info.value) and "Built-in Output" in str(info.value)


def test_no_device_at_all_is_refused():
    with pytest.raises(DeviceError, match="there is no input device"):
        find_device(None, "input", [])


def test_a_missing_device_is_refused_before_anything_opens():
    opened = []

    def factory(**kw):
        opened.append(kw)
        raise AssertionError("a stream was opened")

    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="no output device matches 'speakers'"):
        run_live(output_device="speakers", query=lambda: DEVICES, stream_factories=(factory, factory))
    assert not opened and time.monotonic() - t0 < 5.0  # at once (10x margin over a slow build)


def test_the_cli_reports_a_missing_device_with_the_list(monkeypatch, capsys):
    from apipeline.cli.main import main

    monkeypatch.setattr(live, "query_devices", lambda: DEVICES)
    code = main(["voice-changer", "--live", "--input-device", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "no input device matches 'nope'" in err and "USB Headset" in err


def test_apipeline_devices_lists_them(monkeypatch, capsys):
    from apipeline.cli.main import main

    monkeypatch.setattr(live, "query_devices", lambda: DEVICES)
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "Built-in Microphone" in out and "USB Audio Interface" in out and "<" in out and ">" in out


def test_without_portaudio_devices_says_what_to_install(monkeypatch, capsys):
    from apipeline.cli.main import main

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as without the package
    assert main(["devices"]) == 1
    assert "PortAudio" in capsys.readouterr().err


class FakeMic:
    """Delivers ``audio`` in ``blocksize`` blocks from its own thread, then silence, until stopped."""

    def __init__(self, audio: np.ndarray, **kw) -> None:
        self.kw, self.audio = kw, audio
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n, pos = self.kw["blocksize"], 0
        while not self._stop.is_set():
            block = self.audio[pos : pos + n]
            block = np.pad(block, (0, n - len(block)))
            self.kw["callback"](block.reshape(-1, 1).astype(np.float32), n, None, 0)
            pos += n
            time.sleep(n / self.kw["samplerate"])  # the device clock

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        pass


class FakeSpeaker(FakeMic):
    """Pulls ``blocksize`` blocks from the callback at the device rate and keeps what it played."""

    def __init__(self, **kw) -> None:
        super().__init__(np.zeros(0, np.float32), **kw)
        self.played: list[np.ndarray] = []

    def _run(self) -> None:
        n = self.kw["blocksize"]
        while not self._stop.is_set():
            out = np.zeros((n, self.kw["channels"]), np.float32)
            self.kw["callback"](out, n, None, 0)
            self.played.append(out.copy())
            time.sleep(n / self.kw["samplerate"])


def test_a_live_run_converts_the_microphone_to_the_speaker():
    x, sr = speech(1.0)
    speakers: list[FakeSpeaker] = []

    def mic(**kw):
        return FakeMic(x, **kw)

    def speaker(**kw):
        speakers.append(FakeSpeaker(**kw))
        return speakers[-1]

    result = run_live(
        VoiceChangerSettings(pitch=3.0, vad=False),
        sample_rate=sr,
        duration=1.5,
        stream_factories=(mic, speaker),
    )
    assert result.mode == "live" and not result.errors, result.errors
    assert result.report is not None and result.report.blocks > 3  # (a loaded machine may be slow)
    kw = speakers[0].kw
    block = round(0.035 * sr / 110) * 110  # the voice changer's block on the WORLD hop grid
    assert kw["blocksize"] == block  # the device is fed whole blocks
    played = np.concatenate(speakers[0].played)
    assert np.sqrt(np.mean(played**2)) > 0.01  # converted speech reached the speaker


def test_the_speaker_buffer_follows_the_block_by_default():
    from apipeline.processors.audio.sounddevice_io import SpeakerSink

    sink = SpeakerSink(sample_rate=48000, block_ms=35.0)
    assert sink.capacity == round(0.070 * 48000) and sink.latency == pytest.approx(0.070)
    assert SpeakerSink(sample_rate=48000, block_ms=10.0, buffer_ms=100.0).capacity == 4800
