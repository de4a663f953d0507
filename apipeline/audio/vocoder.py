"""Vocoders: WORLD features (or a mel spectrogram) to audio, behind one small interface.

- :class:`WorldVocoder`: pyworld synthesis, the default real vocoder.
- :class:`GriffinLimVocoder`: phase reconstruction with librosa's Griffin-Lim from a mel spectrogram.
  The mel comes either from audio (:meth:`GriffinLimVocoder.mel_from_audio`) or from WORLD features
  (:meth:`GriffinLimVocoder.mel_from_features`), where the STFT magnitude of a source-filter model is
  built per frame: harmonics of F0 weighted by ``sqrt(sp * (1 - ap))`` plus a noise floor
  ``sqrt(sp * ap)``. It is much slower and noisier than WORLD synthesis (32 iterations by default) and
  is meant as a second, model-free reference, not for the real-time path.
"""

from __future__ import annotations

import abc

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.world import WorldFeatures, synthesize
from apipeline.errors import ParameterError


class Vocoder(abc.ABC):
    """Turns WORLD features into float32 audio at ``features.sample_rate``."""

    @abc.abstractmethod
    def synthesize(self, features: WorldFeatures) -> NDArray[np.float32]: ...


class WorldVocoder(Vocoder):
    """WORLD synthesis (pyworld): ``num_frames * frame_period`` samples, starting at the first frame."""

    def synthesize(self, features: WorldFeatures) -> NDArray[np.float32]:
        return synthesize(features).astype(np.float32)


class GriffinLimVocoder(Vocoder):
    """Griffin-Lim reconstruction from a mel spectrogram (librosa, imported lazily).

    ``n_fft``/``hop_length`` fix the STFT (hop defaults to the features' frame period in samples when
    synthesising features, else ``n_fft // 4``); ``n_mels`` and ``n_iter`` the mel resolution and the
    number of Griffin-Lim iterations.
    """

    def __init__(self, n_fft: int = 1024, hop_length: int | None = None, n_mels: int = 80, n_iter: int = 32):
        if n_fft < 64 or n_mels < 8 or n_iter < 1:
            raise ParameterError(
                "GriffinLimVocoder: need n_fft >= 64, n_mels >= 8, n_iter >= 1; "
                f"got {n_fft}, {n_mels}, {n_iter}"
            )
        self.n_fft, self.hop_length, self.n_mels, self.n_iter = n_fft, hop_length, n_mels, n_iter

    def _hop(self, default: int) -> int:
        return self.hop_length if self.hop_length is not None else default

    def mel_from_audio(self, audio: NDArray[np.floating], sample_rate: int) -> NDArray[np.float64]:
        """Power mel spectrogram (n_mels, frames) of mono audio."""
        import librosa

        return np.asarray(
            librosa.feature.melspectrogram(
                y=np.asarray(audio, np.float64),
                sr=sample_rate,
                n_fft=self.n_fft,
                hop_length=self._hop(self.n_fft // 4),
                n_mels=self.n_mels,
                power=2.0,
            )
        )

    def magnitude_from_features(self, features: WorldFeatures) -> NDArray[np.float64]:
        """STFT magnitude (n_fft//2 + 1, frames) of the source-filter model, on this vocoder's hop grid."""
        sr = features.sample_rate
        hop = self._hop(round(features.hop_seconds * sr))
        n_out = int((features.num_frames - 1) * features.hop_seconds * sr / hop) + 1
        pos = np.minimum(np.arange(n_out) * hop / (features.hop_seconds * sr), features.num_frames - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), max(features.num_frames - 2, 0))
        hi = np.minimum(lo + 1, features.num_frames - 1)
        w = (pos - lo)[:, None]
        env_freqs = np.linspace(0.0, sr / 2.0, features.sp.shape[1])
        freqs = np.linspace(0.0, sr / 2.0, self.n_fft // 2 + 1)
        log_sp = np.log(np.maximum(features.sp, 1e-300))
        sp = np.exp((1 - w) * log_sp[lo] + w * log_sp[hi])
        ap = (1 - w) * features.ap[lo] + w * features.ap[hi]
        sp = np.stack([np.interp(freqs, env_freqs, row) for row in sp])
        ap = np.stack([np.interp(freqs, env_freqs, row) for row in ap])
        f0 = np.where(
            np.minimum(features.f0[lo], features.f0[hi]) > 0,
            (1 - w[:, 0]) * features.f0[lo] + w[:, 0] * features.f0[hi],
            0.0,
        )
        window_sum = self.n_fft / 2.0  # sum of a Hann window
        bin_hz = sr / self.n_fft
        mag = np.sqrt(sp * ap) * np.sqrt(
            window_sum
        )  # noise: expected |X| of white-ish noise, power ~ sp * ap
        for i, f in enumerate(f0):
            if f <= 0:
                continue
            period = sr / f
            harmonics = np.arange(1, int((sr / 2) // f) + 1) * f
            lobes = np.exp(-0.5 * ((freqs[None, :] - harmonics[:, None]) / (0.6 * bin_hz)) ** 2).sum(axis=0)
            periodic = np.sqrt(sp[i] * (1 - ap[i]) / period) * lobes * window_sum
            mag[i] = np.sqrt(mag[i] ** 2 + periodic**2)
        return mag.T

    def mel_from_features(self, features: WorldFeatures) -> NDArray[np.float64]:
        """Power mel spectrogram (n_mels, frames) of :meth:`magnitude_from_features`."""
        import librosa

        basis = librosa.filters.mel(sr=features.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        return np.asarray(basis @ self.magnitude_from_features(features) ** 2)

    def mel_to_audio(
        self, mel: NDArray[np.floating], sample_rate: int, hop_length: int | None = None
    ) -> NDArray[np.float32]:
        """Audio from a power mel spectrogram by mel inversion (NNLS) and Griffin-Lim."""
        import librosa

        # mel inversion (NNLS) then Griffin-Lim with a fixed seed: the random initial phase would make the
        # output differ from run to run (librosa's mel_to_audio does not pass a seed through)
        stft = librosa.feature.inverse.mel_to_stft(
            np.asarray(mel, np.float64), sr=sample_rate, n_fft=self.n_fft, power=2.0
        )
        y = librosa.griffinlim(
            stft,
            n_iter=self.n_iter,
            hop_length=hop_length or self._hop(self.n_fft // 4),
            n_fft=self.n_fft,
            random_state=0,
        )
        return np.asarray(y, np.float32)

    def synthesize(self, features: WorldFeatures) -> NDArray[np.float32]:
        hop = self._hop(round(features.hop_seconds * features.sample_rate))
        return self.mel_to_audio(self.mel_from_features(features), features.sample_rate, hop)
