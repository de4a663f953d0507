"""Singing/speech voice conversion models: the so-vits-svc 4.x and RVC ONNX export signatures.

Both take content features (from a :class:`~apipeline.models.runners.ContentEncoder`, 50 Hz) and an F0
track on the model's own frame grid, and give audio (or, for so-vits-style models that stop before the
vocoder, a mel spectrogram for :class:`~apipeline.models.runners.NsfHifiGan`). Noise inputs are drawn
from a generator seeded per call, so the same inputs always give the same output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from apipeline.errors import ModelError, ModelSignatureError, ParameterError
from apipeline.models.runners._base import Runner, frames_2d, track_1d
from apipeline.models.runners.features import (
    expand_frames,
    f0_to_coarse,
    fill_unvoiced,
    mel2ph,
    speaker_mix,
)
from apipeline.models.runners.session import InputRule, SessionConfig

F32, I64 = ("float32", "float16"), ("int64",)
"""Float inputs may be float32 or float16 (half-precision exports): feeds are cast to the declared type."""
SpeakerSpec = int | Mapping[int, Any] | ArrayLike


class _SvcRunner(Runner):
    noise_input = "noise"
    speaker_input = "sid"

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: SessionConfig | None = None,
        *,
        sample_rate: int,
        hop: int,
        speakers: int | None = None,
    ) -> None:
        super().__init__(path, config)
        self.sample_rate, self.hop = sample_rate, hop
        self.content_dim = self.static_dim(self._content_input, 2)
        self.noise_channels = self.static_dim(self.noise_input, 1) or 192
        self.speakers = speakers

    _content_input = "c"

    def frames_for(self, num_samples: int) -> int:
        """Model frames covering ``num_samples`` output samples."""
        return -(-num_samples // self.hop)

    def _content(self, content: ArrayLike, where: str) -> NDArray[np.float32]:
        return frames_2d(content, where, "content", self.content_dim)

    def _noise(self, frames: int, scale: float, seed: int) -> NDArray[np.float32]:
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((1, self.noise_channels, frames)) * scale).astype(np.float32)

    def _check_audio(self, out: NDArray[Any], frames: int) -> NDArray[np.float32]:
        audio = np.asarray(out, dtype=np.float32).reshape(-1)
        if audio.size != frames * self.hop:
            raise ModelError(
                f"{self.path}: {self.kind} gave {audio.size} samples for {frames} frames; expected "
                f"{frames * self.hop} (hop {self.hop}): is the hop configured right?"
            )
        return audio


T_WINDOW = 0.8
"""Default fill of a so-vits-svc 4.0-v2 export's ``t_window`` input (MoeVoiceStudio's "DDSP noise scale")."""


class SoVitsSvc(_SvcRunner):
    """so-vits-svc 4.x ONNX export: ``c, f0, mel2ph, uv, noise, sid[, vol] -> audio`` (or ``mel``).

    ``sid`` is a speaker id ``[1]`` int64, or in speaker-mix exports per-frame weights ``[T, n_spk]``
    float32; :meth:`infer` accepts an id, static weights or a ``spk_mix_map`` track for either and
    converts (a mix for an id-only model is refused). F0 goes in as Hz: these exports bin the pitch inside
    the graph, so no coarse F0 is computed here.

    so-vits-svc **4.0-v2** (the DDSP/VISinger2-style branch) exports ``c, f0, mel2ph, t_window, noise, sid
    -> audio``: no ``uv`` (the graph derives voicing from F0), and ``t_window`` ``[1, W, T]`` float32, where
    ``W`` is the model's STFT window length (2048 in the published configs, a static axis of the export).
    In the graph ``t_window`` is overlap-added like the squared window of an inverse STFT and divides the
    noise branch's output, so it is a per-frame noise *attenuation*: consumers fill it with one constant
    (MoeVoiceStudio's "DDSP noise scale", default 0.8; the export script's dummy input uses 0.0064).
    :meth:`infer` fills it with ``t_window`` (:data:`T_WINDOW` by default). :attr:`variant` says which
    signature a model has (``"4.0"``: with ``uv``; ``"4.0-v2"``: with ``t_window``).
    """

    kind = "so-vits-svc 4.x"
    output_candidates = ("audio", "mel")
    rules = {
        "c": InputRule(F32, 3),
        "f0": InputRule(F32, 2),
        "mel2ph": InputRule(I64, 2),
        "uv": InputRule(F32, 2, required=False),
        "t_window": InputRule(F32, 3, required=False),
        "noise": InputRule(F32, 3),
        "sid": InputRule(("int64", "float32", "float16"), None),
        "vol": InputRule(F32, 2, required=False),
    }

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: SessionConfig | None = None,
        *,
        sample_rate: int = 44100,
        hop: int = 512,
        speakers: int | None = None,
    ) -> None:
        super().__init__(path, config, sample_rate=sample_rate, hop=hop, speakers=speakers)
        sid = self.session.inputs["sid"]
        self.mix = sid.dtype in ("float32", "float16")
        if self.mix:
            declared = self.static_dim("sid", 1)
            if declared is None and speakers is None:
                raise ModelSignatureError(
                    f"{self.path}: speaker-mix model with a dynamic speaker axis: pass speakers=<count>"
                )
            self.speakers = declared or speakers
        self.output_name = "audio" if "audio" in self.session.outputs else "mel"
        if self.output_name not in self.session.outputs:
            self.output_name = next(iter(self.session.outputs))
        self.takes_vol = "vol" in self.session.inputs
        self.variant = "4.0-v2" if "t_window" in self.session.inputs else "4.0"
        self.t_window_size = self.static_dim("t_window", 1)

    def check_signature(self) -> None:
        has = self.session.inputs
        # the two so-vits-svc 4.x signatures differ in one input: say which is missing before anything else
        if "uv" in has and "t_window" in has:
            raise ModelSignatureError(
                f"{self.path}: not a {self.kind} model: it has both 'uv' (so-vits-svc 4.0/4.1) and "
                f"'t_window' (4.0-v2) inputs; an export has one or the other"
            )
        neither = "missing input 'uv' (so-vits-svc 4.0/4.1) or 't_window' (4.0-v2)"
        try:
            super().check_signature()
        except ModelSignatureError as exc:
            if "uv" in has or "t_window" in has:
                raise
            raise ModelSignatureError(f"{exc}; {neither}") from None
        if "uv" not in has and "t_window" not in has:
            got = ", ".join(s.describe() for s in has.values())
            raise ModelSignatureError(f"{self.path}: not a {self.kind} model: {neither} (it has: {got})")
        if "t_window" in has and self.static_dim("t_window", 1) is None:
            raise ModelSignatureError(
                f"{self.path}: so-vits-svc 4.0-v2 input 't_window' is {has['t_window'].describe()}: its "
                f"axis 1 (the STFT window length, 2048 in the published configs) must be a fixed size, "
                f"it says how many values to feed per frame"
            )
        if "sid" in self.session.inputs:
            sid = self.session.inputs["sid"]
            rank = None if sid.shape is None else len(sid.shape)
            if rank is not None and (sid.dtype, rank) not in (("int64", 1), ("float32", 2), ("float16", 2)):
                raise ModelSignatureError(
                    f"{self.path}: not a {self.kind} model: input 'sid' is {sid.describe()}; "
                    f"expected int64 [1] (speaker id) or float32 [T,n_spk] (speaker mix)"
                )

    @property
    def outputs_mel(self) -> bool:
        return self.output_name != "audio"

    def infer(
        self,
        content: ArrayLike,
        f0: ArrayLike,
        speaker: SpeakerSpec = 0,
        *,
        vol: ArrayLike | None = None,
        noise_scale: float = 0.4,
        seed: int = 0,
        content_mode: str = "left",
        t_window: float = T_WINDOW,
    ) -> NDArray[np.float32]:
        """Convert one segment.

        Args:
            content: ``(T_c, D)`` content features at the encoder's rate.
            f0: ``(T,)`` F0 in Hz on this model's frame grid (0 = unvoiced); T decides the output length.
            speaker: a speaker id, ``{speaker: weight}``, a ``spk_mix_map`` track or ``(T, n_spk)`` weights.
            vol: ``(T,)`` loudness per frame, for models with a ``vol`` input.
            noise_scale, seed: the latent noise (seeded: same inputs, same output).
            content_mode: ``"gather"`` passes ``c`` as is with a ``mel2ph`` index map (the graph gathers);
                ``"left"``/``"nearest"``/``"linear"`` expand ``c`` to T frames here and pass ``arange(T)``.
            t_window: the constant a 4.0-v2 export's ``t_window`` input is filled with (> 0; larger is
                less DDSP noise); ignored by 4.0/4.1 exports.

        Returns:
            ``(T * hop,)`` float32 audio, or ``(T, n_mels)`` mel frames for models that output ``mel``.
        """
        where = f"{type(self).__name__}.infer"
        c = self._content(content, where)
        f0_arr = track_1d(f0, where, "f0")
        frames = f0_arr.size
        f0_filled, uv = fill_unvoiced(f0_arr)
        if content_mode == "gather":
            index = mel2ph(c.shape[0], frames)
        else:
            c = expand_frames(c, frames, content_mode)
            index = np.arange(frames, dtype=np.int64)
        feeds: dict[str, NDArray[Any]] = {
            "c": c[None],
            "f0": f0_filled[None],
            "mel2ph": index[None],
            "uv": uv[None],
            "noise": self._noise(frames, noise_scale, seed),
            "sid": self._speaker(speaker, frames, where),
        }
        if self.takes_vol:
            feeds["vol"] = _vol(vol, frames, where, self.path)[None]
        if self.t_window_size is not None:
            ok = isinstance(t_window, (int, float, np.floating)) and not isinstance(t_window, bool)
            if not (ok and math.isfinite(t_window) and t_window > 0):
                raise ParameterError(f"{where}: t_window must be a finite number > 0, got {t_window!r}")
            feeds["t_window"] = np.full((1, self.t_window_size, frames), t_window, np.float32)
            del feeds["uv"]
        out = self._run(feeds, self.output_name)
        if self.outputs_mel:
            mel = out[0]
            if mel.ndim != 2 or frames not in mel.shape:
                raise ModelError(
                    f"{self.path}: mel output of shape {out.shape} has no axis of {frames} frames"
                )
            return np.ascontiguousarray(mel if mel.shape[0] == frames else mel.T, dtype=np.float32)
        return self._check_audio(out, frames)

    def _speaker(self, speaker: SpeakerSpec, frames: int, where: str) -> NDArray[Any]:
        if not self.mix:
            if not isinstance(speaker, (int, np.integer)) or isinstance(speaker, bool):
                raise ParameterError(
                    f"{where}: {self.path} takes one speaker id (int64 sid); got a mix. Export a "
                    f"speaker-mix model to mix speakers"
                )
            if self.speakers is not None and not 0 <= speaker < self.speakers:
                raise ParameterError(f"{where}: speaker id {speaker} out of range 0..{self.speakers - 1}")
            return np.array([speaker], dtype=np.int64)
        assert self.speakers is not None
        return speaker_mix(speaker, frames, self.speakers)  # type: ignore[arg-type]


class RvcModel(_SvcRunner):
    """RVC ONNX export: ``phone, phone_lengths, pitch, pitchf, ds, rnd [, vol] -> audio``.

    ``phone`` is content at 100 frames/s (the 50 Hz features repeated), ``pitch`` the coarse 1..255 bins
    of ``pitchf`` (Hz). Default grid: 40 kHz, hop 400.
    """

    kind = "RVC"
    output_candidates = ("audio",)
    noise_input = "rnd"
    speaker_input = "ds"
    _content_input = "phone"
    rules = {
        "phone": InputRule(F32, 3),
        "phone_lengths": InputRule(I64, 1),
        "pitch": InputRule(I64, 2),
        "pitchf": InputRule(F32, 2),
        "ds": InputRule(I64, 1),
        "rnd": InputRule(F32, 3),
        "vol": InputRule(F32, 2, required=False),
    }

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: SessionConfig | None = None,
        *,
        sample_rate: int = 40000,
        hop: int = 400,
        speakers: int | None = None,
    ) -> None:
        super().__init__(path, config, sample_rate=sample_rate, hop=hop, speakers=speakers)
        self.output_name = "audio" if "audio" in self.session.outputs else next(iter(self.session.outputs))
        self.takes_vol = "vol" in self.session.inputs

    def infer(
        self,
        content: ArrayLike,
        f0: ArrayLike,
        speaker: int = 0,
        *,
        vol: ArrayLike | None = None,
        noise_scale: float = 1.0,
        seed: int = 0,
    ) -> NDArray[np.float32]:
        """Convert one segment: content ``(T_c, D)``, F0 ``(T,)`` Hz on the model's grid -> ``(T*hop,)``.

        ``vol``: ``(T,)`` loudness per frame, required by (and only by) exports with a ``vol`` input.
        """
        where = f"{type(self).__name__}.infer"
        c = self._content(content, where)
        f0_arr = track_1d(f0, where, "f0")
        frames = f0_arr.size
        if not isinstance(speaker, (int, np.integer)) or isinstance(speaker, bool):
            raise ParameterError(f"{where}: RVC takes one speaker id, got {speaker!r}")
        feeds: dict[str, NDArray[Any]] = {
            "phone": expand_frames(c, frames, "left")[None],
            "phone_lengths": np.array([frames], dtype=np.int64),
            "pitch": f0_to_coarse(f0_arr)[None],
            "pitchf": f0_arr[None],
            "ds": np.array([speaker], dtype=np.int64),
            "rnd": self._noise(frames, noise_scale, seed),
        }
        if self.takes_vol:
            feeds["vol"] = _vol(vol, frames, where, self.path)[None]
        elif vol is not None:
            raise ParameterError(f"{where}: {self.path} has no 'vol' input; leave vol=None")
        return self._check_audio(self._run(feeds, self.output_name), frames)


def _vol(vol: ArrayLike | None, frames: int, where: str, path: str) -> NDArray[np.float32]:
    if vol is None:
        raise ParameterError(f"{where}: {path} takes a 'vol' input; pass vol=(T,) loudness per frame")
    v = np.asarray(vol, dtype=np.float32)
    if v.shape != (frames,) or not np.isfinite(v).all():
        raise ParameterError(f"{where}: vol must have shape ({frames},) like f0, finite, got {v.shape}")
    return v
