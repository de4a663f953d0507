"""F0 estimators as standard-protocol services (FCPE, CREPE, or any name :func:`get_f0_estimator` knows).

The estimators themselves live in :mod:`apipeline.audio.f0`; this wraps one in the lifecycle: ``load``
builds it (torch and the bundled weights), ``test`` checks that a 200 Hz tone comes back as 200 Hz and
voiced, ``unload`` drops it. Nothing is downloaded (weights ship inside the PyPI packages).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import SelfTestError, ServiceStateError, UnknownNameError
from apipeline.models._protocol import service_method

_MEMORY = {"fcpe": 200 * 2**20, "crepe": 150 * 2**20, "crepe-tiny": 150 * 2**20, "crepe-full": 400 * 2**20}


class F0Service:
    """``estimate(audio, sample_rate)`` -> ``{"f0": Hz per frame (0 unvoiced), "voiced", "hop_seconds"}``."""

    protocol = "standard"

    def __init__(
        self,
        estimator: str = "fcpe",
        *,
        name: str | None = None,
        hop_seconds: float = 0.01,
        memory: int | None = None,
        **options: Any,
    ) -> None:
        self.estimator_name = estimator
        self.service_name = name or f"f0_{estimator.replace('-', '_')}"
        self.hop_seconds = hop_seconds
        self.options = options
        self.memory = memory if memory is not None else _MEMORY.get(estimator, 100 * 2**20)
        self.estimator: Any = None

    def info(self) -> dict[str, Any]:
        return {
            "service_name": self.service_name,
            "service_desc": f"F0 estimation with {self.estimator_name}, {self.hop_seconds * 1000:g} ms hop",
            "resources": {"cpu": 1, "memory": self.memory},
            "methods": [
                {
                    "name": "estimate",
                    "desc": "F0 track of mono audio",
                    "params": [
                        {"name": "audio", "type": "ndarray", "type_desc": "float (n,)", "desc": "mono audio"},
                        {"name": "sample_rate", "type": "int", "type_desc": "Hz", "desc": "its sample rate"},
                    ],
                    "return": {
                        "type": "dict",
                        "type_desc": "{f0: ndarray, voiced: ndarray, hop_seconds: float}",
                        "desc": "F0 in Hz per frame (0 where unvoiced), frame i at i*hop_seconds",
                    },
                }
            ],
        }

    def prepare(self) -> bool:
        from apipeline.audio.f0 import available_f0_estimators

        if self.estimator_name not in available_f0_estimators():
            raise UnknownNameError(
                f"unknown F0 estimator {self.estimator_name!r}; known: {available_f0_estimators()}"
            )
        return True

    def load(self) -> bool:
        from apipeline.audio.f0 import get_f0_estimator

        self.estimator = get_f0_estimator(self.estimator_name, hop_seconds=self.hop_seconds, **self.options)
        return True

    def test(self) -> bool:
        sr = 16000
        t = np.arange(sr // 2) / sr
        tone = 0.3 * np.sin(2 * np.pi * 200 * t) + 0.15 * np.sin(4 * np.pi * 200 * t)
        result = self.estimate(tone, sr)
        voiced = result["f0"][result["voiced"]]
        if voiced.size < 0.5 * result["f0"].size:
            raise SelfTestError(
                f"{self.service_name}: only {voiced.size}/{result['f0'].size} frames of a 200 Hz "
                f"tone are voiced"
            )
        median = float(np.median(voiced))
        if abs(median - 200.0) > 6.0:
            raise SelfTestError(f"{self.service_name}: a 200 Hz tone was estimated at {median:.1f} Hz")
        return True

    def unload(self) -> bool:
        self.estimator = None
        return True

    def cleanup(self) -> bool:
        return True  # weights ship inside the installed packages: nothing of ours to delete

    @service_method()
    def estimate(self, audio: NDArray[np.floating], sample_rate: int) -> dict[str, Any]:
        if self.estimator is None:
            raise ServiceStateError(f"{self.service_name}: estimator is not loaded")
        track = self.estimator.estimate(audio, sample_rate)
        return {"f0": track.f0_hz, "voiced": track.voiced, "hop_seconds": track.hop_seconds}
