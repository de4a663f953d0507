"""The runners on the tiny models: right shapes, deterministic, and really driven by their inputs."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.errors import AudioFormatError, ModelError
from apipeline.models.runners import ContentEncoder, LogMel, NsfHifiGan, RvcModel, SoVitsSvc


@pytest.fixture(scope="module")
def content(tiny_models):
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * np.sin(2 * np.pi * 1234 * t)).astype(np.float32)
    return ContentEncoder(tiny_models["content_encoder"]).encode(audio)


def _f0(frames: int, hz: float = 220.0) -> np.ndarray:
    f0 = np.full(frames, hz)
    f0[frames // 3 : frames // 3 + 5] = 0.0
    return f0


def test_content_encoder_frames_and_validation(tiny_models, content):
    assert content.shape == (49, 256) and content.dtype == np.float32  # (16000 - 400) // 320 + 1
    enc = ContentEncoder(tiny_models["content_encoder"])
    with pytest.raises(AudioFormatError, match="expected mono float audio"):
        enc.encode(np.zeros((100, 2), np.float32))
    with pytest.raises(AudioFormatError, match="NaN/Inf"):
        enc.encode(np.full(1000, np.nan, np.float32))


def test_sovits_audio_length_determinism_and_input_dependence(tiny_models, content):
    svc = SoVitsSvc(tiny_models["sovits"])
    assert (svc.sample_rate, svc.hop, svc.mix, svc.outputs_mel, svc.content_dim) == (
        44100,
        512,
        False,
        False,
        256,
    )
    f0 = _f0(86)
    a = svc.infer(content, f0, 1)
    assert a.shape == (86 * 512,) and np.isfinite(a).all() and a.std() > 0.01
    assert np.array_equal(a, svc.infer(content, f0, 1))
    for other in (
        svc.infer(content, f0 * 1.5, 1),
        svc.infer(content, f0, 2),
        svc.infer(content, f0, 1, seed=7),
        svc.infer(content[::-1].copy(), f0, 1),
    ):
        assert np.abs(other - a).max() > 1e-3
    assert svc.infer(content, f0, 1, content_mode="gather").shape == a.shape


def test_sovits_follows_f0(tiny_models, content):
    svc = SoVitsSvc(tiny_models["sovits"])
    audio = svc.infer(content, np.full(172, 300.0), 0, noise_scale=0.0)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    peak = np.argmax(spectrum[20:]) + 20
    assert peak * 44100 / audio.size == pytest.approx(300, abs=3)


def test_sovits_speaker_mix_and_vol(tiny_models, content):
    svc = SoVitsSvc(tiny_models["sovits_mix"])
    assert svc.mix and svc.speakers == 4 and svc.takes_vol
    f0, vol = _f0(86), np.full(86, 0.1, np.float32)
    track = {0: [[0.0, 1.0, 1.0, 0.0]], 1: [[0.0, 1.0, 0.0, 1.0]]}
    a = svc.infer(content, f0, track, vol=vol)
    assert a.shape == (86 * 512,)
    assert np.array_equal(svc.infer(content, f0, 0, vol=vol), svc.infer(content, f0, {0: 1.0}, vol=vol))
    assert np.abs(svc.infer(content, f0, 1, vol=vol) - svc.infer(content, f0, 0, vol=vol)).max() > 1e-3
    with pytest.raises(ValueError, match="takes a 'vol' input"):
        svc.infer(content, f0, 0)
    with pytest.raises(ValueError, match="vol must have shape \\(86,\\)"):
        svc.infer(content, f0, 0, vol=vol[:10])
    with pytest.raises(ValueError, match="one speaker id"):
        SoVitsSvc(tiny_models["sovits"]).infer(content, f0, {0: 0.5, 1: 0.5})


def test_sovits_input_validation(tiny_models, content):
    svc = SoVitsSvc(tiny_models["sovits"])
    with pytest.raises(ValueError, match="content must be \\(frames, 256\\)"):
        svc.infer(content[:, :100], _f0(10))
    with pytest.raises(ValueError, match="f0 must be a non-empty 1-D track"):
        svc.infer(content, -np.ones(10))
    with pytest.raises(ValueError, match="speaker id 9 out of range"):
        SoVitsSvc(tiny_models["sovits"], speakers=4).infer(content, _f0(10), 9)


def test_wrong_hop_is_reported(tiny_models, content):
    svc = SoVitsSvc(tiny_models["sovits"], hop=480)
    with pytest.raises(ModelError, match="expected 4800 \\(hop 480\\): is the hop configured right"):
        svc.infer(content, _f0(10))


def test_mel_svc_into_vocoder(tiny_models, content):
    svc = SoVitsSvc(tiny_models["sovits_mel"])
    assert svc.outputs_mel
    f0 = _f0(86)
    mel = svc.infer(content, f0, 0)
    assert mel.shape == (86, 128)
    voc = NsfHifiGan(tiny_models["nsf_hifigan"])
    wav = voc.synthesize(mel, f0)
    assert wav.shape == (86 * 512,) and np.isfinite(wav).all()
    with pytest.raises(ValueError, match="f0 has 85 frames, mel has 86"):
        voc.synthesize(mel, f0[:-1])


def test_vocoder_torchscript_matches_onnx(tiny_models):
    rng = np.random.default_rng(0)
    mel = (rng.standard_normal((40, 128)) - 4).astype(np.float32)
    f0 = np.full(40, 180.0)
    onnx_out = NsfHifiGan(tiny_models["nsf_hifigan"]).synthesize(mel, f0)
    ts = NsfHifiGan(tiny_models["nsf_hifigan_ts"])
    assert ts.providers == ("torch-cpu",)
    assert np.allclose(ts.synthesize(mel, f0), onnx_out, atol=1e-4)


def test_vocoder_resynthesis_from_log_mel(tiny_models):
    t = np.arange(44100) / 44100
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    mel = LogMel()(audio)
    assert mel.shape == (44100 // 512, 128) and mel.dtype == np.float32
    assert np.argmax(mel.mean(axis=0)) == np.argmax(LogMel().filters[:, round(220 * 2048 / 44100)])
    wav = NsfHifiGan(tiny_models["nsf_hifigan"]).synthesize(mel, np.full(mel.shape[0], 220.0))
    assert wav.shape == (mel.shape[0] * 512,)


def test_rvc(tiny_models, content):
    rvc = RvcModel(tiny_models["rvc"])
    assert (rvc.sample_rate, rvc.hop) == (40000, 400)
    f0 = _f0(100, 200.0)
    a = rvc.infer(content, f0, 0)
    assert a.shape == (100 * 400,) and np.array_equal(a, rvc.infer(content, f0, 0))
    assert np.abs(rvc.infer(content, f0 * 2, 0) - a).max() > 1e-3
    with pytest.raises(ValueError, match="RVC takes one speaker id"):
        rvc.infer(content, f0, {0: 1.0})  # type: ignore[arg-type]
