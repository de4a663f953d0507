"""NSF-HiFiGAN vocoder (log-mel + F0 -> waveform) and the log-mel front end it was trained on."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from apipeline.errors import AudioFormatError, ModelError, ParameterError
from apipeline.models.runners._base import Runner, frames_2d, mono_float, track_1d
from apipeline.models.runners.session import InputRule, SessionConfig


class LogMel:
    """The NSF-HiFiGAN log-mel front end: |STFT| -> Slaney mel filters (librosa) -> natural log.

    Reflect-padded by ``(n_fft - hop) / 2`` on both sides and framed without centring, so a signal of
    ``n`` samples gives ``n // hop`` frames and the vocoder returns exactly ``hop`` samples per frame.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop: int = 512,
        n_mels: int = 128,
        fmin: float = 40.0,
        fmax: float = 16000.0,
        clip: float = 1e-5,
    ) -> None:
        import librosa

        if not 0 <= fmin < fmax <= sample_rate / 2:
            raise ParameterError(
                f"LogMel: need 0 <= fmin < fmax <= sample_rate/2, got {fmin}, {fmax}, {sample_rate}"
            )
        self.sample_rate, self.n_fft, self.hop, self.n_mels, self.clip = sample_rate, n_fft, hop, n_mels, clip
        self.filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.window = np.hanning(n_fft + 1)[:-1].astype(np.float64)  # periodic Hann

    def __call__(self, audio: ArrayLike) -> NDArray[np.float32]:
        """``(n // hop, n_mels)`` log-mel frames of mono float audio at ``sample_rate``."""
        x = mono_float(audio, "LogMel").astype(np.float64)
        pad = (self.n_fft - self.hop) // 2
        if x.size <= pad:
            raise AudioFormatError(
                f"LogMel: need more than {pad} samples for the reflect padding, got {x.size}"
            )
        padded = np.pad(x, (pad, pad), mode="reflect")
        frames = 1 + (padded.size - self.n_fft) // self.hop
        idx = np.arange(self.n_fft)[None, :] + self.hop * np.arange(frames)[:, None]
        spec = np.abs(np.fft.rfft(padded[idx] * self.window, axis=1))
        mel = spec @ self.filters.T
        return np.log(np.maximum(mel, self.clip)).astype(np.float32)


class NsfHifiGan(Runner):
    """NSF-HiFiGAN ONNX export: ``mel [1, n, 128]`` log-mel + ``f0 [1, n]`` Hz -> ``waveform [1, hop*n]``."""

    kind = "NSF-HiFiGAN"
    output_candidates = ("waveform", "audio")
    rules = {"mel": InputRule(("float32",), 3), "f0": InputRule(("float32",), 2)}

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: SessionConfig | None = None,
        *,
        sample_rate: int = 44100,
        hop: int = 512,
        n_mels: int = 128,
    ) -> None:
        super().__init__(path, config)
        self.sample_rate, self.hop = sample_rate, hop
        self.n_mels = self.static_dim("mel", 2) or n_mels
        outs = self.session.outputs
        self.output_name = next((n for n in self.output_candidates if n in outs), next(iter(outs)))

    def synthesize(self, mel: ArrayLike, f0: ArrayLike) -> NDArray[np.float32]:
        """Waveform ``(n * hop,)`` from log-mel ``(n, n_mels)`` and F0 ``(n,)`` in Hz (0 = unvoiced)."""
        where = f"{type(self).__name__}.synthesize"
        m = frames_2d(mel, where, "mel", self.n_mels)
        f = track_1d(f0, where, "f0")
        if f.size != m.shape[0]:
            raise ParameterError(f"{where}: f0 has {f.size} frames, mel has {m.shape[0]}; they must match")
        out: NDArray[Any] = self._run({"mel": m[None], "f0": f[None]}, self.output_name)
        audio = np.asarray(out, dtype=np.float32).reshape(-1)
        if audio.size != m.shape[0] * self.hop:
            raise ModelError(
                f"{self.path}: gave {audio.size} samples for {m.shape[0]} frames; expected "
                f"{m.shape[0] * self.hop} (hop {self.hop})"
            )
        return audio
