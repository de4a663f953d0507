"""Standard-protocol services around the neural runners: content encoder, SVC model, vocoder.

Each service is configured with a model file and runs the lifecycle: ``prepare`` checks the file is
there (nothing is downloaded: the files are the user's, so ``cleanup`` deletes nothing), ``load`` opens
and signature-checks it, ``test`` runs it on a synthetic input and checks what comes out (length, finite
values, and for the vocoder the pitch), ``unload`` drops it. Declared memory defaults to four times the
file size (weights plus activations for a few seconds of audio); pass ``memory=`` to state it exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ModelSignatureError, SelfTestError
from apipeline.models._protocol import service_method
from apipeline.models.runners import ContentEncoder, LogMel, NsfHifiGan, RvcModel, SessionConfig, SoVitsSvc


def _param(name: str, type_: str, desc: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "type_desc": type_, "desc": desc, "required": required}


class _ModelFileService:
    protocol = "standard"
    description = ""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        config: SessionConfig | None = None,
        memory: int | None = None,
        cpu: float = 1,
    ) -> None:
        self.path = Path(path)
        self.service_name = name
        self.config = config or SessionConfig()
        self._memory = memory
        self._cpu = cpu
        self.runner: Any = None

    def _methods(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        memory = self._memory
        if memory is None:
            memory = 4 * self.path.stat().st_size if self.path.is_file() else 0
        return {
            "service_name": self.service_name,
            "service_desc": f"{self.description} ({self.path.name})",
            "resources": {"cpu": self._cpu, "memory": memory},
            "methods": self._methods(),
        }

    def prepare(self) -> bool:
        if not self.path.is_file():
            raise ModelSignatureError(
                f"{self.path}: no such model file (nothing is downloaded; pass a local path)"
            )
        return True

    def load(self) -> bool:
        raise NotImplementedError

    def unload(self) -> bool:
        self.runner = None
        return True

    def cleanup(self) -> bool:
        return True  # the model file is the user's: never deleted

    def _loaded(self) -> Any:
        if self.runner is None:
            raise SelfTestError(f"service {self.service_name!r}: model is not loaded")
        return self.runner


def _check_audio(name: str, audio: NDArray[Any], samples: int) -> None:
    if audio.shape != (samples,):
        raise SelfTestError(f"service {name!r}: self-test gave shape {audio.shape}, expected ({samples},)")
    if not np.isfinite(audio).all():
        raise SelfTestError(f"service {name!r}: self-test output has NaN/Inf samples")
    if float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) < 1e-5:
        raise SelfTestError(f"service {name!r}: self-test output is silent")


def _test_tone(sample_rate: int, seconds: float, hz: float) -> NDArray[np.float32]:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(4 * np.pi * hz * t)).astype(np.float32)


class ContentEncoderService(_ModelFileService):
    """``encode(audio)``: 16 kHz mono float32 audio -> content features ``(T, D)`` at 50 Hz."""

    description = "ContentVec/HuBERT content encoder: 16 kHz audio -> 50 Hz content features"

    def __init__(self, path: str | os.PathLike[str], *, name: str = "content_encoder", **kw: Any) -> None:
        super().__init__(path, name=name, **kw)

    def _methods(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "encode",
                "desc": "content features of 16 kHz mono audio",
                "params": [_param("audio", "ndarray", "16 kHz mono float32 samples, shape (n,)")],
                "return": {"type": "ndarray", "type_desc": "float32 (T, D)", "desc": "features at 50 Hz"},
            }
        ]

    def load(self) -> bool:
        self.runner = ContentEncoder(self.path, self.config)
        return True

    def test(self) -> bool:
        feats = self._loaded().encode(_test_tone(16000, 1.0, 150.0))
        if not (46 <= feats.shape[0] <= 51) or not np.isfinite(feats).all() or float(feats.std()) == 0.0:
            raise SelfTestError(
                f"service {self.service_name!r}: 1 s of audio gave features of shape {feats.shape} "
                f"(std {feats.std():.3g}); expected about 50 finite, varying frames"
            )
        return True

    @service_method()
    def encode(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        return self._loaded().encode(audio)  # type: ignore[no-any-return]


def open_svc(path: str | os.PathLike[str], config: SessionConfig | None = None) -> SoVitsSvc | RvcModel:
    """Open an SVC model as so-vits-svc 4.x or else RVC; if neither fits, both refusals are reported."""
    try:
        return SoVitsSvc(path, config)
    except ModelSignatureError as sovits_error:
        try:
            return RvcModel(path, config)
        except ModelSignatureError as rvc_error:
            raise ModelSignatureError(f"{sovits_error}\n{rvc_error}") from rvc_error


class SvcService(_ModelFileService):
    """``convert(content, f0, ...)``: so-vits-svc 4.x or RVC model -> audio (or mel for mel-output models)."""

    description = "voice conversion model (so-vits-svc 4.x or RVC ONNX)"

    def __init__(self, path: str | os.PathLike[str], *, name: str = "svc", **kw: Any) -> None:
        super().__init__(path, name=name, **kw)

    def _methods(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "convert",
                "desc": "convert one segment to the target voice",
                "params": [
                    _param("content", "ndarray", "content features (T_c, D) at 50 Hz"),
                    _param("f0", "ndarray", "F0 in Hz per model frame (0 = unvoiced); sets the length"),
                    _param("speaker", "int|dict|ndarray", "speaker id, {id: weight}, or mix track", False),
                    _param("vol", "ndarray", "loudness per frame, for models with a vol input", False),
                    _param("seed", "int", "noise seed (same inputs and seed, same output)", False),
                ],
                "return": {
                    "type": "ndarray",
                    "type_desc": "float32 (T*hop,) audio or (T, n_mels) mel",
                    "desc": "converted audio at the model's rate, or mel frames for a vocoder",
                },
            },
            self._describe_info(),
        ]

    def _describe_info(self) -> dict[str, Any]:
        return {
            "name": "describe",
            "desc": "the loaded model's properties",
            "params": [],
            "return": {
                "type": "dict",
                "type_desc": "sample_rate, hop, outputs_mel, takes_vol, mix, speakers, content_dim, kind",
                "desc": "what a caller needs to shape inputs and read outputs",
            },
        }

    def load(self) -> bool:
        self.runner = open_svc(self.path, self.config)
        return True

    def test(self) -> bool:
        r = self._loaded()
        rng = np.random.default_rng(0)
        content = rng.standard_normal((10, r.content_dim or 256)).astype(np.float32)
        f0 = np.full(20, 220.0)
        if isinstance(r, RvcModel):
            out = r.infer(content, f0, 0)
        else:
            speaker: Any = {0: 1.0} if r.mix else 0
            out = r.infer(content, f0, speaker, vol=np.full(20, 0.1, np.float32) if r.takes_vol else None)
            if r.outputs_mel:
                if out.shape[0] != 20 or not np.isfinite(out).all():
                    raise SelfTestError(f"service {self.service_name!r}: mel self-test gave {out.shape}")
                return True
        _check_audio(self.service_name, out, 20 * r.hop)
        return True

    @service_method()
    def describe(self) -> dict[str, Any]:
        r = self._loaded()
        sovits = isinstance(r, SoVitsSvc)
        return {
            "kind": r.kind,
            "sample_rate": r.sample_rate,
            "hop": r.hop,
            "content_dim": r.content_dim,
            "outputs_mel": sovits and r.outputs_mel,
            "takes_vol": sovits and r.takes_vol,
            "mix": sovits and r.mix,
            "speakers": r.speakers,
        }

    @service_method()
    def convert(
        self,
        content: NDArray[np.float32],
        f0: NDArray[np.float32],
        speaker: Any = 0,
        vol: NDArray[np.float32] | None = None,
        seed: int = 0,
    ) -> NDArray[np.float32]:
        r = self._loaded()
        if isinstance(r, RvcModel):
            return r.infer(content, f0, speaker, seed=seed)
        return r.infer(content, f0, speaker, vol=vol, seed=seed)


class VocoderService(_ModelFileService):
    """``synthesize(mel, f0)``: NSF-HiFiGAN log-mel + F0 -> waveform (hop samples per frame)."""

    description = "NSF-HiFiGAN vocoder: log-mel + F0 -> waveform"

    def __init__(self, path: str | os.PathLike[str], *, name: str = "vocoder", **kw: Any) -> None:
        super().__init__(path, name=name, **kw)

    def _methods(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "synthesize",
                "desc": "waveform from log-mel frames and F0",
                "params": [
                    _param("mel", "ndarray", "log-mel (n, 128)"),
                    _param("f0", "ndarray", "F0 Hz (n,)"),
                ],
                "return": {"type": "ndarray", "type_desc": "float32 (n*hop,)", "desc": "waveform"},
            },
            {
                "name": "describe",
                "desc": "the loaded vocoder's properties",
                "params": [],
                "return": {
                    "type": "dict",
                    "type_desc": "sample_rate, hop, n_mels",
                    "desc": "model properties",
                },
            },
        ]

    def load(self) -> bool:
        self.runner = NsfHifiGan(self.path, self.config)
        return True

    def test(self) -> bool:
        voc: NsfHifiGan = self._loaded()
        tone = _test_tone(voc.sample_rate, 0.5, 220.0)
        mel = LogMel(sample_rate=voc.sample_rate, hop=voc.hop, n_mels=voc.n_mels)(tone)
        out = voc.synthesize(mel, np.full(mel.shape[0], 220.0))
        _check_audio(self.service_name, out, mel.shape[0] * voc.hop)
        spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
        peak_hz = float(np.argmax(spectrum[5:]) + 5) * voc.sample_rate / out.size
        if abs(peak_hz - 220.0) > 11.0:
            raise SelfTestError(
                f"service {self.service_name!r}: a 220 Hz tone came back peaking at {peak_hz:.0f} Hz"
            )
        return True

    @service_method()
    def describe(self) -> dict[str, Any]:
        voc: NsfHifiGan = self._loaded()
        return {"sample_rate": voc.sample_rate, "hop": voc.hop, "n_mels": voc.n_mels}

    @service_method()
    def synthesize(self, mel: NDArray[np.float32], f0: NDArray[np.float32]) -> NDArray[np.float32]:
        return self._loaded().synthesize(mel, f0)  # type: ignore[no-any-return]
