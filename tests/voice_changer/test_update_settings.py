"""Mid-stream ``UpdateSettingsFrame``: only valid, live settings get in; a refused one changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apipeline.frames import AudioRawFrame, UpdateSettingsFrame
from apipeline.processors.audio.svc import VoiceConversionProcessor
from apipeline.testing import run_pipeline
from apipeline.voice_changer import VoiceChangerSettings, build_voice_changer
from tests.voice_changer.conftest import speech


def svc_of(vc):
    return next(p for p in vc.walk() if isinstance(p, VoiceConversionProcessor))


async def run_with(update: dict) -> tuple[object, list, list]:
    x, sr = speech(0.3)
    vc = build_voice_changer(VoiceChangerSettings(pitch=2.0, vad=False), sample_rate=sr)
    step = sr // 50
    frames = [AudioRawFrame(x[:step].copy(), sr, 1), UpdateSettingsFrame(update)]
    frames += [AudioRawFrame(x[i : i + step].copy(), sr, 1) for i in range(step, len(x), step)]
    result = await run_pipeline(vc, frames)
    return vc, result.errors, result.downstream


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"pitch": 100}, "pitch must be within -36..36"),
        ({"pitch": math.nan}, "pitch must be a finite number"),
        ({"pitchh": 1}, "unknown parameter 'pitchh' (did you mean 'pitch'?)"),
        ({"pitch": "3"}, "pitch must be a number"),
        ({"block_ms": 20.0}, "block_ms cannot change mid-stream"),
        ({"pitch": 3.0, "formant": 0.0}, "formant must be within 0.25..4"),  # all or nothing
        ({"svc.pitch": 99}, "pitch must be within"),  # addressed to a stage: checked as well
    ],
)
async def test_a_bad_update_is_an_error_frame_and_changes_nothing(update, needle):
    vc, errors, out = await run_with(update)
    assert any(needle in e.error for e in errors), [e.error for e in errors]
    assert svc_of(vc).pitch == 2.0 and svc_of(vc).formant == 1.0 and vc.settings.pitch == 2.0
    audio = np.concatenate([f.audio for f in out if isinstance(f, AudioRawFrame)])
    assert np.isfinite(audio).all()  # no NaN reached the vocoder
    assert not [e for e in errors if "vocoder" in (e.processor or "")]


async def test_a_valid_live_update_is_applied_and_recorded():
    vc, errors, _ = await run_with({"pitch": -3.0, "voice_changer.formant": 1.2, "input_gain_db": 6})
    assert not errors, [e.error for e in errors]
    assert svc_of(vc).pitch == -3.0 and svc_of(vc).formant == 1.2 and vc.guard.input_gain_db == 6.0
    assert (vc.settings.pitch, vc.settings.formant) == (-3.0, 1.2)


async def test_keys_for_processors_outside_the_voice_changer_pass_untouched():
    _, errors, out = await run_with({"other_node.whatever": 1})
    assert not errors
    passed = [f for f in out if isinstance(f, UpdateSettingsFrame)]
    assert passed and passed[0].settings == {"other_node.whatever": 1}


def test_the_schema_marks_what_is_live_and_bounds_every_size():
    schema = VoiceChangerSettings.schema()
    assert set(schema.live_names()) >= {"pitch", "formant", "target_f0_mean", "silence_db", "input_gain_db"}
    for name in ("block_ms", "crossfade_ms", "search_ms", "context_ms", "lookahead_ms", "warmup_ms",
                 "f0_pad_ms", "frame_ms"):  # fmt: skip
        p = schema[name]
        assert p.minimum is not None and p.maximum is not None and not p.live, name
    assert schema["f0"].choices and not schema["f0"].live
    assert schema.json_schema()["additionalProperties"] is False


async def test_the_remote_placement_applies_live_settings_to_the_next_calls():
    from apipeline.models import LocalBackend
    from apipeline.voice_changer.remote import RemotePlacement

    x, sr = speech(0.4)
    local_backend = RemotePlacement(LocalBackend(1), deadline=10.0)
    vc = build_voice_changer(
        VoiceChangerSettings(pitch=2.0, vad=False), sample_rate=sr, backend=local_backend
    )
    step = sr // 50
    params = vc.stage.params_from  # the stream side of each call: what the next window sends
    frames = [AudioRawFrame(x[:step].copy(), sr, 1), UpdateSettingsFrame({"pitch": 100})]
    frames += [UpdateSettingsFrame({"pitch": -4.0})]
    frames += [AudioRawFrame(x[i : i + step].copy(), sr, 1) for i in range(step, len(x), step)]
    try:
        result = await run_pipeline(vc, frames)
    finally:
        await vc.aclose()
    assert [e for e in result.errors if "pitch must be within" in e.error]  # 100 refused
    assert vc.settings.pitch == -4.0
    assert params(AudioRawFrame(np.zeros(10, np.float32), sr, 1))["conversion"]["pitch"] == -4.0


async def test_a_voice_changer_graph_node_takes_updates_addressed_to_its_id():
    from apipeline.voice_changer.node import VoiceChangerNode

    x, sr = speech(0.3)
    node = VoiceChangerNode(sample_rate=sr, pitch=1.0, vad=False, name="vc")
    step = sr // 50
    frames = [AudioRawFrame(x[:step].copy(), sr, 1), UpdateSettingsFrame({"vc.pitch": 5.0})]
    frames += [UpdateSettingsFrame({"vc.pitchh": 1.0})]
    frames += [AudioRawFrame(x[i : i + step].copy(), sr, 1) for i in range(step, len(x), step)]
    result = await run_pipeline(node, frames)
    assert svc_of(node.voice_changer).pitch == 5.0
    assert [e for e in result.errors if "did you mean 'pitch'" in e.error]
