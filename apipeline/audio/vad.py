"""Streaming voice activity detection with Silero VAD (v5), run through onnxruntime alone.

The model ships inside the ``silero-vad`` package (``silero_vad/data/silero_vad.onnx``); torch is not
needed. Its ONNX signature: ``input`` float32 ``[batch, context + window]``, ``state`` float32
``[2, batch, 128]``, ``sr`` int64 scalar -> ``output`` float32 ``[batch, 1]`` (speech probability) and
``stateN`` (the next state). Windows are 512 samples at 16 kHz (256 at 8 kHz), each preceded by the
last 64 (32) samples of the previous window as context; the recurrent state carries everything else.

Decisions use hysteresis: speech starts when a window's probability reaches ``threshold`` and stops
once it has stayed below ``threshold - 0.15`` for ``min_silence_ms``. Event positions count samples
from the start of the stream (or the last :meth:`SileroVad.reset`) and are widened by ``speech_pad_ms``.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.convert import check_finite, to_float32
from apipeline.errors import AudioFormatError, ModelError, ParameterError

_WINDOW = {16000: 512, 8000: 256}
_CONTEXT = {16000: 64, 8000: 32}


def silero_model_path() -> Path:
    """Path of the Silero VAD ONNX file inside the installed ``silero-vad`` package.

    Found through the import system without importing the package: ``silero_vad/__init__.py``
    imports torch, which the ONNX model does not need.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("Silero VAD needs the 'silero-vad' package (it ships the ONNX model)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelError(f"the silero-vad package has no ONNX model at {path}")
    return path


_SESSIONS: dict[str, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def shared_session(path: str | Path) -> Any:
    """The process's one ``onnxruntime.InferenceSession`` for the Silero model at ``path``.

    Every :class:`SileroVad` of a process shares it: the recurrent state is an explicit input and
    output of ``run`` (kept by each detector), and ``run`` is thread-safe, so detectors need no
    session of their own. Building one costs ~0.1-0.2 CPU-seconds and a copy of the model; a server
    building a voice changer per session paid that for every session.
    """
    key = str(Path(path).resolve())
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is not None:
            return session
        import onnxruntime as ort  # heavy: imported only when a VAD is built

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(key, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
            raise ModelError(f"cannot load Silero VAD model {path}: {exc}") from exc
        names = sorted(i.name for i in session.get_inputs())
        if names != ["input", "sr", "state"]:
            raise ModelError(f"{path}: expected Silero v5 inputs ['input', 'sr', 'state'], got {names}")
        _SESSIONS[key] = session
        return session


class VadEvent(NamedTuple):
    """A speech boundary: ``kind`` is ``"start"`` or ``"stop"``; ``sample`` its stream position."""

    kind: str
    sample: int


class SileroVad:
    """Stateful speech detector over a mono stream at 16 or 8 kHz.

    Args:
        sample_rate: 16000 or 8000 (resample other rates first).
        threshold: probability at which speech starts.
        neg_threshold: probability under which silence starts counting (default ``threshold - 0.15``).
        min_silence_ms: silence needed before a stop event (short pauses stay inside speech).
        speech_pad_ms: each start is moved this much earlier and each stop this much later.
        model_path: another Silero v5 ONNX file (defaults to the packaged one).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        threshold: float = 0.5,
        *,
        neg_threshold: float | None = None,
        min_silence_ms: float = 100.0,
        speech_pad_ms: float = 30.0,
        model_path: str | Path | None = None,
    ) -> None:
        if sample_rate not in _WINDOW:
            raise AudioFormatError(
                f"Silero VAD runs at 16000 or 8000 Hz, got {sample_rate} Hz: resample first"
            )
        if not 0.0 < threshold < 1.0:
            raise ParameterError(f"threshold must be in (0, 1), got {threshold}")
        neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        if not 0.0 <= neg <= threshold:
            raise ParameterError(f"neg_threshold must be in [0, threshold={threshold}], got {neg}")
        if min_silence_ms < 0 or speech_pad_ms < 0:
            raise ParameterError("min_silence_ms and speech_pad_ms must be >= 0")
        path = Path(model_path) if model_path is not None else silero_model_path()
        self._session: Any = shared_session(path)
        self.sample_rate = sample_rate
        self.window_size = _WINDOW[sample_rate]
        self.context_size = _CONTEXT[sample_rate]
        self.threshold = threshold
        self.neg_threshold = neg
        self.min_silence = round(min_silence_ms * sample_rate / 1000)
        self.speech_pad = round(speech_pad_ms * sample_rate / 1000)
        self._sr = np.array(sample_rate, dtype=np.int64)
        self.last_probabilities: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self.reset()

    @property
    def is_speech(self) -> bool:
        """Whether the detector is inside a speech segment now."""
        return self._triggered

    @property
    def speech_probability(self) -> float:
        """Probability of the most recent complete window (0.0 before the first)."""
        return self._last_prob

    @property
    def position(self) -> int:
        """Samples consumed into complete windows since the stream started."""
        return self._pos

    def reset(self) -> None:
        """Start a new stream: clear the model state, the buffered samples and the decision state."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._input = np.zeros((1, self.context_size + self.window_size), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._pos = 0
        self._triggered = False
        self._temp_end: int | None = None
        self._last_stop = 0
        self._last_prob = 0.0

    def _infer(self, window: NDArray[np.float32]) -> float:
        buf = self._input
        buf[0, : self.context_size] = buf[0, self.window_size :]
        buf[0, self.context_size :] = window
        out, self._state = self._session.run(None, {"input": buf, "state": self._state, "sr": self._sr})
        return float(out[0, 0])

    def _decide(self, prob: float, start: int, end: int, events: list[VadEvent]) -> None:
        if not self._triggered:
            if prob >= self.threshold:
                self._triggered = True
                self._temp_end = None
                events.append(VadEvent("start", max(self._last_stop, start - self.speech_pad, 0)))
            return
        if prob >= self.threshold:
            self._temp_end = None
        elif prob < self.neg_threshold:
            if self._temp_end is None:
                self._temp_end = start
            if end - self._temp_end >= self.min_silence:
                stop = min(self._temp_end + self.speech_pad, end)
                events.append(VadEvent("stop", stop))
                self._last_stop = stop
                self._triggered = False
                self._temp_end = None

    def process(self, x: NDArray) -> list[VadEvent]:
        """Feed mono audio ((frames,) or (frames, 1), float or int16); return the boundaries found.

        The probabilities of the windows completed by this call are left in ``last_probabilities``.
        """
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise AudioFormatError(f"VAD expects mono audio (frames,) or (frames, 1), got shape {x.shape}")
        xf = to_float32(x)
        check_finite(xf, "VAD")
        data = np.concatenate([self._pending, xf]) if len(self._pending) else xf
        w = self.window_size
        count = len(data) // w
        probs = np.empty(count, dtype=np.float32)
        events: list[VadEvent] = []
        for i in range(count):
            prob = self._infer(data[i * w : (i + 1) * w])
            probs[i] = prob
            self._decide(prob, self._pos, self._pos + w, events)
            self._pos += w
        self._pending = data[count * w :].copy()
        if count:
            self._last_prob = float(probs[-1])
        self.last_probabilities = probs
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open speech segment at the last sample received, then reset."""
        events = []
        if self._triggered:
            events.append(VadEvent("stop", self._pos + len(self._pending)))
        self.reset()
        return events
