"""Neural model runners: numpy in, numpy out, one model file each (ONNX, or TorchScript where it can run).

* ``session`` -- open a model file (onnxruntime or torch imported only then), read and check its signature.
* ``features`` -- pure numpy: coarse pitch bins, unvoiced filling, frame alignment, ``mel2ph``, speaker mixes.
* ``content_encoder`` -- :class:`ContentEncoder` (ContentVec/HuBERT: 16 kHz audio -> 50 Hz features).
* ``svc`` -- :class:`SoVitsSvc` (so-vits-svc 4.x, audio or mel out) and :class:`RvcModel` (RVC).
* ``vocoder`` -- :class:`NsfHifiGan` and its :class:`LogMel` front end.

Runners are synchronous and thread-safe to call (onnxruntime sessions are); services and processors put
them on a backend's worker threads.
"""

from __future__ import annotations

from apipeline.models.runners.content_encoder import ContentEncoder as ContentEncoder
from apipeline.models.runners.session import ModelSession as ModelSession
from apipeline.models.runners.session import SessionConfig as SessionConfig
from apipeline.models.runners.session import TensorSpec as TensorSpec
from apipeline.models.runners.session import open_model as open_model
from apipeline.models.runners.svc import RvcModel as RvcModel
from apipeline.models.runners.svc import SoVitsSvc as SoVitsSvc
from apipeline.models.runners.vocoder import LogMel as LogMel
from apipeline.models.runners.vocoder import NsfHifiGan as NsfHifiGan

__all__ = [
    "ContentEncoder",
    "LogMel",
    "ModelSession",
    "NsfHifiGan",
    "RvcModel",
    "SessionConfig",
    "SoVitsSvc",
    "TensorSpec",
    "open_model",
]
