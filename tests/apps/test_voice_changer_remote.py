"""The voice changer with its conversion on a model backend, here the in-process LocalBackend (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.errors import ServiceParamError
from apipeline.models import LocalBackend
from apipeline.models.services.world_vc import WorldVcService, geometry_dict
from apipeline.processors.audio.features import BlockGeometry
from apipeline.voice_changer import VoiceChangerSettings, build_voice_changer
from apipeline.voice_changer.remote import RemotePlacement, build_remote_voice_changer, remote_settings
from apipeline.voice_changer.run import convert_array
from apipeline.voice_changer.settings import FREE_RUNNING_GEOMETRY, PHASE_LOCKED_GEOMETRY

RATE = 16000


def voice(seconds: float = 0.5, rate: int = RATE, pause: bool = True) -> np.ndarray:
    """A gliding harmonic voice (120 -> 180 Hz), with a pause in the middle (the gate closes there)."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120.0 + 120.0 * t / seconds) / rate
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8))
    if pause:
        x[int(0.45 * len(x)) : int(0.6 * len(x))] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize(
    "settings",
    [
        VoiceChangerSettings(pitch=4, formant=1.1),
        VoiceChangerSettings(pitch=-3, target_f0_mean=200.0, rms_mix_rate=0.5),
    ],
)
async def test_local_backend_gives_the_local_dag_output(settings: VoiceChangerSettings) -> None:
    x = voice()
    local = await convert_array(x, RATE, remote_settings(settings))  # free-running, no mirrored F0 tail
    remote = await convert_array(x, RATE, settings, backend=RemotePlacement(LocalBackend(2), deadline=10.0))
    assert remote.remote is not None and remote.remote["degraded"] == 0
    assert remote.remote["chunks"] == local.report.blocks  # type: ignore[union-attr]
    assert remote.latency_ms == pytest.approx(local.latency_ms)
    # The remote service is stateless: it analyses every window whole. The local DAG analyses each frame
    # once and carries it (apipeline.audio.incremental), so a frame's F0 and envelope may come from an
    # earlier window: the two renders are the same conversion but no longer the same samples.
    assert remote.output.shape == local.output.shape
    # same conversion: the loudness envelopes (10 ms RMS) follow each other
    a, b = (
        np.sqrt(np.convolve(y.reshape(-1) ** 2, np.ones(160) / 160, "valid")[::160])
        for y in (remote.output, local.output)
    )
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert remote.blocks_gated > 0 and not remote.errors


def test_remote_placement_renders_free_running_with_the_free_running_default_geometry() -> None:
    defaults = VoiceChangerSettings(pitch=4.0)
    assert {k: getattr(defaults, k) for k in PHASE_LOCKED_GEOMETRY} == PHASE_LOCKED_GEOMETRY
    assert defaults.phase_lock and defaults.f0_pad_ms > 0
    effective = remote_settings(defaults)
    assert {k: getattr(effective, k) for k in FREE_RUNNING_GEOMETRY} == FREE_RUNNING_GEOMETRY
    assert not effective.phase_lock and effective.f0_pad_ms == 0.0 and effective.pitch == 4.0
    vc = build_remote_voice_changer(defaults, sample_rate=RATE)
    assert vc.settings == effective and not vc.settings.use_phase_lock()
    assert vc.latency_seconds == pytest.approx(
        build_voice_changer(defaults, sample_rate=RATE).latency_seconds
    )
    chosen = VoiceChangerSettings(crossfade_ms=12.0)  # a geometry set by hand is kept
    assert remote_settings(chosen).crossfade_ms == 12.0 and remote_settings(chosen).search_ms == 0.5


async def test_pipeline_closes_the_registry_it_owns_and_not_a_shared_one() -> None:
    from apipeline.models import ModelRegistry

    vc = build_voice_changer(sample_rate=RATE, backend=LocalBackend(1))
    assert vc.owns_registry  # type: ignore[attr-defined]
    await vc.cleanup()
    with pytest.raises(Exception, match="closed"):
        vc.registry.register(WorldVcService)  # type: ignore[attr-defined]
    shared = ModelRegistry(LocalBackend(1))
    a = build_remote_voice_changer(sample_rate=RATE, registry=shared)
    b = build_remote_voice_changer(sample_rate=RATE, registry=shared)  # registered once, shared
    assert shared.services() == ["world_vc"] and a.registry is b.registry
    await a.cleanup()
    shared.register(_Other)  # still open
    await shared.aclose()


class _Other(WorldVcService):
    service_name = "other"


def test_remote_settings_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="degrade must be"):
        build_remote_voice_changer(sample_rate=RATE, degrade="louder")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pitch must be within"):
        build_remote_voice_changer(VoiceChangerSettings(pitch=99), sample_rate=RATE)


def test_service_is_stateless_and_checks_its_window() -> None:
    service = WorldVcService()
    service.prepare(), service.load(), service.test()
    g = BlockGeometry.from_ms(RATE)
    window = voice(g.window / RATE, pause=False)
    conv = {"pitch": 2.0, "target_f0_mean": 200.0}
    first = service.convert(window, RATE, geometry_dict(g), conv, [0.0, 0.0, 0])
    again = service.convert(window, RATE, geometry_dict(g), conv, [0.0, 0.0, 0])
    np.testing.assert_array_equal(first["audio"], again["audio"])  # nothing kept between calls
    assert first["audio"].shape == (g.kept_size,) and first["stats"][2] > 0
    other = service.convert(window, RATE, geometry_dict(g), conv, [50.0, 250.0, 10])  # other history
    assert not np.array_equal(other["audio"], first["audio"])
    gated = service.convert(np.zeros(0, np.float32), RATE, geometry_dict(g), conv)
    assert gated["stats"] is None and not gated["audio"].any() and gated["audio"].shape == (g.kept_size,)
    with pytest.raises(ServiceParamError, match=f"expected a mono window of {g.window} samples"):
        service.convert(window[:-1], RATE, geometry_dict(g), conv)
    with pytest.raises(ServiceParamError, match="unknown conversion setting"):
        service.convert(window, RATE, geometry_dict(g), {"pich": 2.0})
