"""Open an ONNX or TorchScript model behind one small interface and check its signature.

onnxruntime and torch are imported only when a model of that kind is opened. ONNX models run on the
CUDA execution provider when onnxruntime offers it (and ``device`` allows), else on the CPU; TorchScript
modules (``.pt``/``.pth``/``.ts`` saved with ``torch.jit.save``) run under ``torch.inference_mode``. A
pickled state dict is not a runnable model and is refused with a message saying how to export one.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ModelSignatureError, ParameterError

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(int64)": "int64",
    "tensor(float16)": "float16",
    "tensor(int32)": "int32",
    "tensor(double)": "float64",
    "tensor(bool)": "bool",
}
TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".jit")


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output: name, element type (None when the format does not say), shape (None: any)."""

    name: str
    dtype: str | None
    shape: tuple[int | str | None, ...] | None

    def describe(self) -> str:
        shape = (
            "?"
            if self.shape is None
            else "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"
        )
        return f"{self.name} {self.dtype or '?'}{shape}"


class ModelSession(Protocol):
    """A loaded model: its declared inputs/outputs and a ``run`` from named arrays to named arrays."""

    path: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    providers: tuple[str, ...]

    def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]: ...


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How to run models: intra/inter-op threads (None: the runtime's default) and device preference.

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"`` (fails when CUDA is absent).
    """

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ParameterError(f"SessionConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ParameterError(f"SessionConfig.{name} must be >= 1 or None, got {value}")


class OnnxSession:
    """An onnxruntime ``InferenceSession`` with its signature read out."""

    def __init__(self, path: str, config: SessionConfig) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if config.intra_op_threads:
            opts.intra_op_num_threads = config.intra_op_threads
        if config.inter_op_threads:
            opts.inter_op_num_threads = config.inter_op_threads
        opts.log_severity_level = 3
        available = ort.get_available_providers()
        if config.device == "cuda" and "CUDAExecutionProvider" not in available:
            raise ModelSignatureError(f"{path}: device 'cuda' asked for but onnxruntime offers {available}")
        use_cuda = config.device != "cpu" and "CUDAExecutionProvider" in available
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        )
        try:
            self._session = ort.InferenceSession(path, sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelSignatureError(
                f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})"
            ) from exc
        self.path = path
        self.providers = tuple(self._session.get_providers())
        self.inputs = {i.name: _ort_spec(i) for i in self._session.get_inputs()}
        self.outputs = {o.name: _ort_spec(o) for o in self._session.get_outputs()}
        self._output_names = list(self.outputs)

    def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        results = self._session.run(self._output_names, dict(feeds))
        return dict(zip(self._output_names, results, strict=True))


def _ort_spec(arg: Any) -> TensorSpec:
    shape = (
        tuple(d if isinstance(d, int) else (d or None) for d in arg.shape) if arg.shape is not None else None
    )
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, arg.type), shape)


class TorchScriptSession:
    """A TorchScript module; inputs are named by its ``forward`` arguments, outputs by ``output_names``."""

    def __init__(self, path: str, config: SessionConfig, output_names: Sequence[str]) -> None:
        import torch

        if not zipfile.is_zipfile(path):
            raise ModelSignatureError(f"{path}: not a TorchScript archive (torch.jit.save writes a zip file)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still loads
                module = torch.jit.load(path, map_location="cpu")
        except RuntimeError as exc:
            raise ModelSignatureError(
                f"{path}: a torch file but not TorchScript ({exc.__class__.__name__}); a state dict "
                f"cannot run by itself: export it with torch.jit.script/trace + torch.jit.save, or to ONNX"
            ) from exc
        if config.intra_op_threads:
            torch.set_num_threads(config.intra_op_threads)
        use_cuda = config.device != "cpu" and torch.cuda.is_available()
        if config.device == "cuda" and not use_cuda:
            raise ModelSignatureError(f"{path}: device 'cuda' asked for but torch sees no CUDA device")
        self._device = torch.device("cuda" if use_cuda else "cpu")
        self._module = module.to(self._device).eval()
        args = module.forward.schema.arguments[1:]  # drop self
        self.path = path
        self.providers: tuple[str, ...] = ("torch-cuda",) if use_cuda else ("torch-cpu",)
        self.inputs = {a.name: TensorSpec(a.name, None, None) for a in args}
        self.outputs = {n: TensorSpec(n, None, None) for n in output_names}
        self._order = [a.name for a in args]

    def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self._device) for n in self._order]
            out = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {name: o.detach().cpu().numpy() for name, o in zip(self.outputs, outs, strict=False)}


def open_model(
    path: str | os.PathLike[str],
    config: SessionConfig | None = None,
    output_names: Sequence[str] = ("output",),
) -> ModelSession:
    """Open ``path`` as ONNX (``.onnx``) or TorchScript (``.pt``/``.pth``/``.ts``/``.jit``).

    Raises:
        ModelSignatureError: the file is missing, of an unknown kind, corrupt, or not runnable.
    """
    config = config or SessionConfig()
    p = Path(path)
    if not p.is_file():
        raise ModelSignatureError(f"{p}: no such model file")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return OnnxSession(str(p), config)
    if suffix in TORCH_SUFFIXES:
        return TorchScriptSession(str(p), config, output_names)
    raise ModelSignatureError(
        f"{p}: unknown model kind {suffix!r}; expected .onnx or {', '.join(TORCH_SUFFIXES)}"
    )


@dataclass(frozen=True, slots=True)
class InputRule:
    """What a runner needs of one input: accepted element types and rank (None: not checked)."""

    dtypes: tuple[str, ...]
    rank: int | None
    required: bool = True


def check_inputs(session: ModelSession, rules: Mapping[str, InputRule], kind: str) -> None:
    """Raise ModelSignatureError naming every missing, unexpected or mistyped input of ``session``.

    ``kind`` names the expected signature in the message (e.g. "so-vits-svc 4.x").
    """
    have = session.inputs
    problems = []
    missing = [n for n, r in rules.items() if r.required and n not in have]
    if missing:
        problems.append("missing input(s) " + ", ".join(repr(n) for n in missing))
    unexpected = [n for n in have if n not in rules]
    if unexpected:
        problems.append("unexpected input(s) " + ", ".join(repr(n) for n in unexpected))
    for name, spec in have.items():
        rule = rules.get(name)
        if rule is None:
            continue
        if spec.dtype is not None and spec.dtype not in rule.dtypes:
            problems.append(f"input {name!r} is {spec.dtype}, expected {' or '.join(rule.dtypes)}")
        if rule.rank is not None and spec.shape is not None and len(spec.shape) != rule.rank:
            problems.append(f"input {name!r} has rank {len(spec.shape)}, expected {rule.rank}")
    if problems:
        got = ", ".join(s.describe() for s in have.values()) or "none"
        raise ModelSignatureError(
            f"{session.path}: not a {kind} model: {'; '.join(problems)} (it has: {got})"
        )


def pick_output(session: ModelSession, names: Sequence[str], kind: str) -> str:
    """The first of ``names`` the model outputs (TorchScript: its first output), else ModelSignatureError."""
    for n in names:
        if n in session.outputs:
            return n
    got = ", ".join(session.outputs) or "none"
    raise ModelSignatureError(
        f"{session.path}: not a {kind} model: no output named "
        f"{' or '.join(repr(n) for n in names)} (it has: {got})"
    )
