"""What every runner shares: opening the model, input checks on arrays, the session config."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from apipeline.errors import AudioFormatError, ModelError, ParameterError
from apipeline.models.runners.session import InputRule, ModelSession, SessionConfig, check_inputs, open_model


class Runner:
    """A model file opened and signature-checked; subclasses add the pre/post-processing of one family."""

    kind = "model"
    rules: Mapping[str, InputRule] = {}
    output_candidates: Sequence[str] = ("output",)

    def __init__(self, path: str | os.PathLike[str], config: SessionConfig | None = None) -> None:
        self.session: ModelSession = open_model(path, config, output_names=self.output_candidates[:1])
        self.check_signature()

    @property
    def path(self) -> str:
        return self.session.path

    @property
    def providers(self) -> tuple[str, ...]:
        return self.session.providers

    def check_signature(self) -> None:
        check_inputs(self.session, self.rules, self.kind)

    def _run(self, feeds: Mapping[str, NDArray[Any]], output: str) -> NDArray[Any]:
        feeds = {k: self._as_declared(k, v) for k, v in feeds.items() if k in self.session.inputs}
        try:
            return self.session.run(feeds)[output]
        except Exception as exc:
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
            raise ModelError(f"{self.path}: {self.kind} inference failed on {shapes}: {exc}") from exc

    def _as_declared(self, name: str, value: NDArray[Any]) -> NDArray[Any]:
        """A float feed in the float type the model declares for it (half-precision exports take float16)."""
        declared = self.session.inputs[name].dtype
        if declared in ("float16", "float32") and value.dtype.kind == "f" and value.dtype != declared:
            return value.astype(declared)
        return value

    def static_dim(self, name: str, axis: int) -> int | None:
        """A fixed size the model declares for ``name``'s ``axis`` (None when dynamic or unknown)."""
        spec = self.session.inputs.get(name) or self.session.outputs.get(name)
        if spec is None or spec.shape is None or len(spec.shape) <= axis:
            return None
        dim = spec.shape[axis]
        return dim if isinstance(dim, int) and dim > 0 else None


def mono_float(audio: ArrayLike, where: str) -> NDArray[np.float32]:
    """Validate mono float audio (shape (n,) or (n, 1), finite) and return it as float32."""
    x = np.asarray(audio)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or x.dtype.kind != "f":
        raise AudioFormatError(f"{where}: expected mono float audio of shape (n,), got {x.dtype} {x.shape}")
    if x.size == 0 or not np.isfinite(x).all():
        raise AudioFormatError(f"{where}: audio is empty or has NaN/Inf samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def frames_2d(a: ArrayLike, where: str, name: str, dims: int | None = None) -> NDArray[np.float32]:
    """Validate a (frames, dims) float feature matrix."""
    x = np.asarray(a, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or (dims is not None and x.shape[1] != dims):
        want = f"(frames, {dims})" if dims is not None else "(frames, dims)"
        raise ParameterError(f"{where}: {name} must be {want} with frames > 0, got shape {x.shape}")
    return x


def track_1d(a: ArrayLike, where: str, name: str) -> NDArray[np.float32]:
    x = np.asarray(a, dtype=np.float32)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all() or (x < 0).any():
        raise ParameterError(
            f"{where}: {name} must be a non-empty 1-D track of finite values >= 0, got shape {x.shape}"
        )
    return x
