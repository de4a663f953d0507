"""The voice changer live: microphone -> voice changer -> speakers, and finding the devices.

:func:`run_live` is what ``apipeline voice-changer --live`` calls. Devices are resolved first, before
anything is built or opened (:func:`find_device`: an index, or a unique part of a device's name, among
the devices that have channels in that direction); a device that does not exist, has no channels that
way or is ambiguous raises :class:`DeviceError` at once, with the device list in the message. The
microphone delivers blocks of exactly the voice changer's block, and the speaker's buffer holds two
blocks (one playing, one arriving) instead of :class:`SpeakerSink`'s 200 ms default, so the device adds
about one block of latency on top of the algorithmic one.

Device queries go through ``sounddevice`` (PortAudio; the optional extra ``live``); ``query`` arguments
take a replacement for :func:`sounddevice.query_devices` (tests, machines without audio).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from apipeline.errors import ConfigurationError, ParameterError
from apipeline.pipeline import Pipeline, PipelineParams, PipelineTask
from apipeline.processors.audio.sounddevice_io import MicrophoneSource, SpeakerSink
from apipeline.voice_changer.build import build_voice_changer
from apipeline.voice_changer.run import VoiceChangerResult, input_warnings
from apipeline.voice_changer.settings import VoiceChangerSettings

Query = Callable[[], Sequence[dict[str, Any]]]
"""Returns every device as a mapping with ``name``, ``max_input_channels``, ``max_output_channels``,
``default_samplerate`` (and optionally ``index``, ``hostapi``), like ``sounddevice.query_devices()``."""


class DeviceError(ConfigurationError):
    """A live audio device that cannot be used (missing, no channels that way, ambiguous, no PortAudio)."""


def query_devices() -> list[dict[str, Any]]:
    """Every audio device PortAudio sees, with its index and whether it is a default (DeviceError without)."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the package is there, PortAudio is not
        raise DeviceError(
            f"live audio needs the 'sounddevice' package and the PortAudio library "
            f"(pip install 'apipeline[live]'; apt install libportaudio2): {exc}"
        ) from None
    defaults = tuple(sounddevice.default.device)
    out = []
    for index, dev in enumerate(sounddevice.query_devices()):
        d = dict(dev)
        d["index"] = index
        d["default_input"] = index == defaults[0]
        d["default_output"] = index == defaults[1]
        out.append(d)
    return out


def _devices(query: Query | None) -> list[dict[str, Any]]:
    devices = [dict(d) for d in (query or query_devices)()]
    for i, d in enumerate(devices):
        d.setdefault("index", i)
    return devices


def format_devices(devices: Sequence[dict[str, Any]]) -> str:
    """The device list as text: index, in/out channels, default rate, name, ``<`` / ``>`` for defaults."""
    if not devices:
        return "  (no audio devices)"
    lines = []
    for d in devices:
        mark = ("<" if d.get("default_input") else " ") + (">" if d.get("default_output") else " ")
        ins, outs = d.get("max_input_channels", 0), d.get("max_output_channels", 0)
        rate = float(d.get("default_samplerate", 0))
        lines.append(f"{mark} {d['index']:>3}  in {ins:>2}  out {outs:>2}  {rate:>7.0f} Hz  {d['name']}")
    return "\n".join(lines)


def find_device(spec: int | str | None, kind: str, devices: Sequence[dict[str, Any]]) -> int | None:
    """The index of the device ``spec`` names for ``kind`` ("input"/"output"); None: the system default.

    ``spec`` is an index (int or digits) or a case-insensitive part of the name that matches exactly
    one device with channels in that direction. Raises :class:`DeviceError` with the device list.
    """
    if kind not in ("input", "output"):
        raise ParameterError(f"kind must be 'input' or 'output', got {kind!r}")
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in devices if int(d.get(key, 0)) > 0]
    listing = f"\n{format_devices(devices)}"
    if spec is None:
        if not usable:
            raise DeviceError(f"there is no {kind} device:{listing}")
        return None
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        match = [d for d in devices if int(d["index"]) == index]
        if not match:
            raise DeviceError(f"{kind} device {index} does not exist; the devices are:{listing}")
        if int(match[0].get(key, 0)) <= 0:
            raise DeviceError(
                f"device {index} ({match[0]['name']}) has no {kind} channels; the devices are:{listing}"
            )
        return index
    found = [d for d in usable if text.lower() in str(d["name"]).lower()]
    exact = [d for d in found if text.lower() == str(d["name"]).lower()]
    if len(exact) == 1:
        found = exact
    if not found:
        raise DeviceError(f"no {kind} device matches {text!r}; the devices are:{listing}")
    if len(found) > 1:
        names = ", ".join(f"{d['index']} ({d['name']})" for d in found)
        raise DeviceError(f"{text!r} matches several {kind} devices: {names}; give the index:{listing}")
    return int(found[0]["index"])


def run_live(
    settings: VoiceChangerSettings | None = None,
    *,
    input_device: int | str | None = None,
    output_device: int | str | None = None,
    sample_rate: int = 48000,
    duration: float | None = None,
    backend: Any = None,
    query: Query | None = None,
    stream_factories: tuple[Any, Any] | None = None,
) -> VoiceChangerResult:
    """Convert the microphone to the speakers until Ctrl-C (or ``duration`` seconds).

    Devices are resolved before anything opens (:class:`DeviceError` with the list); settings are
    checked too (ParameterError). ``stream_factories`` replaces the PortAudio input/output streams
    (tests). Returns the run's :class:`VoiceChangerResult` (``mode="live"``, no output array).
    """
    s = settings or VoiceChangerSettings()
    s.validate()
    if duration is not None and not duration > 0:
        raise ConfigurationError(f"duration must be positive, got {duration}")
    if stream_factories is not None and query is None:  # fake streams: nothing to look up
        in_dev, out_dev = input_device, output_device
    else:
        devices = _devices(query)
        in_dev = find_device(input_device, "input", devices)
        out_dev = find_device(output_device, "output", devices)
    vc = build_voice_changer(s, sample_rate=sample_rate, channels=1, realtime=True, backend=backend)
    block_ms = 1000.0 * vc.geometry.block / vc.geometry.sample_rate
    in_factory, out_factory = stream_factories or (None, None)
    mic = MicrophoneSource(
        sample_rate=sample_rate,
        block_ms=block_ms,
        device=in_dev,
        stream_factory=in_factory,
        name="microphone",
    )
    speaker = SpeakerSink(
        sample_rate=sample_rate, block_ms=block_ms, buffer_ms=2 * block_ms, device=out_dev,
        stream_factory=out_factory, name="speaker",
    )  # fmt: skip
    task = PipelineTask(Pipeline([mic, vc, speaker]), PipelineParams(end_timeout=10.0))
    t0 = time.perf_counter()

    async def main() -> None:
        if duration is not None:
            asyncio.get_running_loop().call_later(
                duration, lambda: asyncio.ensure_future(task.stop_when_done())
            )
        try:
            await task.run()
        finally:
            close = getattr(vc, "aclose", None)
            if close is not None:
                await close()

    interrupted = False
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - t0
    report = vc.report()
    warnings = input_warnings(
        vc.guard.peak, vc.guard.clipped, vc.guard.samples, blocks=vc.gate.blocks, gated=vc.gate.blocks_gated,
        settings=s,
    )  # fmt: skip
    stats = speaker.statistics()
    if stats.underruns:
        warnings.append(
            f"the speaker ran dry {stats.underruns} time(s) (blocks late: the conversion fell behind)"
        )
    if interrupted:
        warnings.append("stopped by Ctrl-C")
    return VoiceChangerResult(
        mode="live", sample_rate=sample_rate, channels=1, processing_rate=vc.geometry.sample_rate,
        duration_s=vc.guard.samples / sample_rate, latency_ms=1000.0 * vc.latency_seconds,
        report=report, wall_s=wall, rtf=report.rtf, blocks_gated=vc.gate.blocks_gated,
        errors=[(e.processor or "?", e.error) for e in task.errors], warnings=warnings, settings=asdict(s),
        blocks=vc.gate.blocks,
    )  # fmt: skip
