"""ContentVec/HuBERT content encoder: 16 kHz mono audio in, speaker-poor content features at 50 Hz out."""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import ArrayLike, NDArray

from apipeline.errors import ModelSignatureError
from apipeline.models.runners._base import Runner, mono_float
from apipeline.models.runners.session import SessionConfig


class ContentEncoder(Runner):
    """Runs a content encoder with the ContentVec/HuBERT export signature.

    Signature: one float32 input ``[1, 1, N]`` (16 kHz mono; the name varies between exports, e.g.
    ``source`` or ``audio``) and a first output ``[1, T, D]`` with D = 256 or 768 and T ~= N / 320.
    """

    kind = "ContentVec/HuBERT content encoder"
    sample_rate = 16000
    hop = 320
    output_candidates = ("units", "output", "last_hidden_state")

    def __init__(self, path: str | os.PathLike[str], config: SessionConfig | None = None) -> None:
        super().__init__(path, config)
        self.dim = self.static_dim(self.output_name, 2)

    def check_signature(self) -> None:
        inputs = list(self.session.inputs.values())
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs) or "none"
            raise ModelSignatureError(
                f"{self.path}: not a {self.kind} model: expected exactly one audio input "
                f"[1,1,N] float32, it has {names}"
            )
        spec = inputs[0]
        if spec.dtype not in (None, "float32") or (spec.shape is not None and len(spec.shape) != 3):
            raise ModelSignatureError(
                f"{self.path}: not a {self.kind} model: input {spec.describe()} should be float32 [1,1,N]"
            )
        self.input_name = spec.name
        self.output_name = next(iter(self.session.outputs))
        out = self.session.outputs[self.output_name]
        if out.shape is not None and len(out.shape) != 3:
            raise ModelSignatureError(
                f"{self.path}: not a {self.kind} model: output {out.describe()} should be [1,T,256|768]"
            )

    def encode(self, audio_16k: ArrayLike) -> NDArray[np.float32]:
        """Content features ``(T, D)`` of 16 kHz mono float audio."""
        x = mono_float(audio_16k, f"{type(self).__name__}.encode")
        out = self._run({self.input_name: x[None, None, :]}, self.output_name)
        if out.ndim != 3 or out.shape[0] != 1:
            raise ModelSignatureError(f"{self.path}: output has shape {out.shape}, expected [1,T,D]")
        return np.ascontiguousarray(out[0], dtype=np.float32)
