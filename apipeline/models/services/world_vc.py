"""The voice changer's per-window conversion as a model service: F0, WORLD analysis, conversion, synthesis.

:class:`WorldVcService` (``world_vc``) runs, for one window ``[context | block]`` of a stream, what the
local DAG's F0, analysis, conversion and vocoder stages do (:mod:`apipeline.processors.audio`), and
returns the window's kept span (block + crossfade + search samples) ready for SOLA. Re-blocking, the
gate and SOLA stay with the stream, so a backend (in-process threads, or a Ray actor pool shared by
many streams) only sees independent windows.

**Stateless**: everything a stream carries from one window to the next travels in the call. The
geometry and the conversion settings come with every call (small dicts); the running log-F0 statistics
used to map F0 onto a target speaker come in as ``stats`` (the stream's sums so far) and the window's
own contribution goes back in the result, for the stream to add. A stream that maps F0 therefore needs
its calls in sequence (one in flight); one that does not can pipeline them. Synthesis is WORLD's
free-running one (the local DAG is phase-locked; :mod:`apipeline.voice_changer.remote` says why
phase-locked synthesis is not offered remotely). F0 estimators are built once per service instance
and cached by settings.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import SelfTestError, ServiceParamError
from apipeline.models._protocol import service_method

_CONVERSION_KEYS = (
    "pitch",
    "formant",
    "target_f0_mean",
    "target_f0_range",
    "rms_mix_rate",
    "f0",
    "f0_options",
    "analysis_f0",
    "vocoder",
)
_MAX_ESTIMATORS = 8


def _param(name: str, type_: str, desc: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "type_desc": type_, "desc": desc, "required": required}


def geometry_dict(geometry: Any) -> dict[str, Any]:
    """A :class:`~apipeline.audio.geometry.BlockGeometry` as the plain dict calls carry."""
    return {f.name: getattr(geometry, f.name) for f in dataclasses.fields(geometry)}


class WorldVcService:
    """``convert(audio, sample_rate, geometry, conversion, stats)`` -> the window's kept span, converted.

    ``geometry`` is :func:`geometry_dict` of the stream's geometry; ``conversion`` holds ``pitch``,
    ``formant``, ``target_f0_mean``, ``target_f0_range``, ``rms_mix_rate``, ``f0`` (estimator),
    ``f0_options``, ``analysis_f0`` (None: analyse with the same track) and ``vocoder``. An empty
    ``audio`` is a gated block: silence comes back without any work. The result is
    ``{"audio": float32 (kept_size,), "compute_ns": int, "stats": [sum, sum of squares, count] or None}``.
    """

    protocol = "standard"
    service_name = "world_vc"

    def __init__(self) -> None:
        self._estimators: dict[tuple[Any, ...], Any] = {}
        self._vocoders: dict[str, Any] = {}
        self.loaded = False

    def info(self) -> dict[str, Any]:
        return {
            "service_name": self.service_name,
            "service_desc": "voice conversion of one window: F0 + WORLD analysis, conversion, synthesis",
            "resources": {"cpu": 1, "memory": 64 * 2**20},
            "methods": [
                {
                    "name": "convert",
                    "desc": "the kept span of one window, converted (stateless; see the module docstring)",
                    "params": [
                        _param("audio", "ndarray", "mono float32 window [context | block]; empty: gated"),
                        _param("sample_rate", "int", "the window's rate"),
                        _param("geometry", "dict", "BlockGeometry fields"),
                        _param("conversion", "dict", "conversion settings"),
                        _param("stats", "list|none", "running log-F0 [sum, sumsq, n] so far", False),
                    ],
                    "return": {
                        "type": "dict",
                        "type_desc": "{audio, compute_ns, stats}",
                        "desc": "kept span",
                    },
                }
            ],
        }

    def prepare(self) -> bool:
        from apipeline.audio.f0.wavelet import import_pyworld

        import_pyworld()  # a missing pyworld refuses the service here, with its own message
        return True

    def load(self) -> bool:
        self.loaded = True
        return True

    def test(self) -> bool:
        from apipeline.audio.geometry import BlockGeometry

        rate = 16000
        g = BlockGeometry.from_ms(rate)
        t = np.arange(g.window) / rate
        harmonics = [0.2 / k * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 6)]
        x = np.sum(harmonics, axis=0).astype(np.float32)
        conv = {"pitch": 4.0, "f0": "dio"}
        out = self.convert(x, rate, geometry_dict(g), conv)["audio"]
        if out.shape != (g.kept_size,) or not np.isfinite(out).all() or float(np.abs(out).max()) < 0.01:
            raise SelfTestError(f"{self.service_name}: a 150 Hz harmonic window did not convert to sound")
        return True

    def unload(self) -> bool:
        self._estimators.clear()
        self.loaded = False
        return True

    def cleanup(self) -> bool:
        return True  # nothing on disk

    def _estimator(self, name: str, hop_seconds: float, options: dict[str, Any]) -> Any:
        from apipeline.audio.f0 import get_f0_estimator

        key = (name, hop_seconds, tuple(sorted((k, repr(v)) for k, v in options.items())))
        est = self._estimators.get(key)
        if est is None:
            if len(self._estimators) >= _MAX_ESTIMATORS:
                self._estimators.pop(next(iter(self._estimators)))
            est = self._estimators[key] = get_f0_estimator(name, hop_seconds=hop_seconds, **options)
        return est

    def _vocoder(self, kind: str) -> Any:
        from apipeline.audio.vocoder import GriffinLimVocoder, WorldVocoder

        if kind not in self._vocoders:
            if kind not in ("world", "griffin-lim"):
                raise ServiceParamError(
                    f"{self.service_name}: vocoder must be 'world' or 'griffin-lim', got {kind!r}"
                )
            self._vocoders[kind] = WorldVocoder() if kind == "world" else GriffinLimVocoder()
        return self._vocoders[kind]

    @service_method()
    def convert(
        self,
        audio: NDArray[np.floating],
        sample_rate: int,
        geometry: dict[str, Any],
        conversion: dict[str, Any],
        stats: list[float] | None = None,
    ) -> dict[str, Any]:
        from apipeline.audio.geometry import BlockGeometry
        from apipeline.audio.svc import F0Stats, VoiceConversion, change_rms
        from apipeline.audio.world import analyze

        t0 = time.perf_counter_ns()
        unknown = set(conversion) - set(_CONVERSION_KEYS)
        if unknown:
            raise ServiceParamError(f"{self.service_name}: unknown conversion setting(s) {sorted(unknown)}")
        g = BlockGeometry(**geometry)
        if sample_rate != g.sample_rate:
            raise ServiceParamError(
                f"{self.service_name}: audio at {sample_rate} Hz, geometry at {g.sample_rate} Hz"
            )
        if audio.shape[0] == 0:
            return {"audio": np.zeros(g.kept_size, np.float32), "compute_ns": 0, "stats": None}
        if audio.shape != (g.window,):
            raise ServiceParamError(
                f"{self.service_name}: expected a mono window of {g.window} samples, got shape {audio.shape}"
            )
        x = np.asarray(audio, dtype=np.float64)
        hop_s = g.frame_period_ms / 1000.0
        estimator = self._estimator(
            conversion.get("f0", "dio"), hop_s, dict(conversion.get("f0_options") or {})
        )
        track = estimator.estimate(x, g.sample_rate)
        analysis_f0 = conversion.get("analysis_f0")
        own = (
            track
            if analysis_f0 is None
            else self._estimator(analysis_f0, hop_s, {}).estimate(x, g.sample_rate)
        )
        features = analyze(x, g.sample_rate, own, g.frame_period_ms, frames=g.frames)
        start, n = features.start_frame, features.num_frames
        sel = np.where(track.voiced, track.f0_hz, 0.0)
        f0_block = np.where(features.f0 > 0, sel[start : start + n], 0.0)
        target = conversion.get("target_f0_mean")
        running: F0Stats | None = None
        contribution = None
        if target is not None:
            new = sel[-(g.block // g.hop) :]
            voiced = np.log(new[new > 0])
            contribution = [float(voiced.sum()), float(np.square(voiced).sum()), int(voiced.size)]
            s, sq, count = [a + b for a, b in zip(stats or [0.0, 0.0, 0], contribution, strict=True)]
            if count:
                mean = s / count
                running = F0Stats(mean, float(np.sqrt(max(sq / count - mean * mean, 0.0))), int(count))
        recipe = VoiceConversion(
            pitch_semitones=float(conversion.get("pitch", 0.0)),
            formant_ratio=float(conversion.get("formant", 1.0)),
            target_f0_mean=target,
            target_f0_range=conversion.get("target_f0_range"),
        )
        converted = recipe.convert(features.with_(f0=f0_block), running)
        y = np.asarray(
            self._vocoder(conversion.get("vocoder", "world")).synthesize(converted), dtype=np.float64
        )
        begin = g.kept_start - converted.start_frame * round(converted.hop_seconds * g.sample_rate)
        kept = y[begin : begin + g.kept_size]
        if kept.shape[0] < g.kept_size:
            kept = np.pad(kept, (0, g.kept_size - kept.shape[0]))
        rms = float(conversion.get("rms_mix_rate", 1.0))
        if rms < 1.0:
            source = x[g.kept_start : g.kept_start + g.kept_size]
            kept = change_rms(source, g.sample_rate, kept, g.sample_rate, rms, 0.02)
        return {
            "audio": kept.astype(np.float32),
            "compute_ns": time.perf_counter_ns() - t0,
            "stats": contribution,
        }
