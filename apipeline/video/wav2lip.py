"""The neural talking head: a wav2lip-signature lip-sync model, then a GFPGAN-signature enhancer.

Signatures (what exported models of those projects take and give; checked when a model is opened):

* **wav2lip**: two float32 rank-4 inputs, told apart by their shape — the mel window ``[N, 1, 80, 16]``
  (80 mel bands × 16 frames = 0.2 s at 16 kHz, hop 200, window 800, 55–7600 Hz, pre-emphasis 0.97,
  dB scaled and mapped to ±4) and the faces ``[N, 6, 96, 96]`` (the face crop with its lower half
  blanked, then the same crop as the identity reference; BGR in 0..1) — and one output
  ``[N, 3, 96, 96]``, the regenerated face in 0..1.
* **GFPGAN**: one input ``[1, 3, 512, 512]`` (an RGB face crop in -1..1) and one output of the same
  shape, the restored face.

The mel window of video frame ``k`` ends where the frame's period ends (a causal window): wav2lip was
trained with the window *starting* at the frame, which would need 0.2 s of look-ahead; the causal
window keeps the talking head's latency at one frame period and moves the lips ~0.1 s later than the
training alignment.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import ModelSignatureError
from apipeline.video.face import FaceLayout, Fallback, load_landmarks, locate_face
from apipeline.video.image import to_rgb
from apipeline.video.mouth import MouthShape
from apipeline.video.renderer import fit_size

SAMPLE_RATE = 16000
N_MELS, MEL_STEP, HOP, WIN = 80, 16, 200, 800
FACE = 96
ENHANCE = 512


class MelFrontEnd:
    """Streaming wav2lip mel features: feed audio at any rate, read the window ending at a time."""

    def __init__(self, sample_rate: int, max_seconds: float = 2.0) -> None:
        import librosa

        self.sample_rate = sample_rate
        self._basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=WIN, n_mels=N_MELS, fmin=55, fmax=7600)
        self._resampler: Any = None
        if sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
        self._buf = np.zeros(0, np.float32)
        self._start = 0  # 16 kHz samples dropped from the buffer's front
        self._max = round(max_seconds * SAMPLE_RATE)
        self._last = 0.0  # pre-emphasis state

    def feed(self, audio: NDArray[np.floating]) -> None:
        x = np.asarray(audio, np.float32).reshape(-1)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        if x.size == 0:
            return
        emph = np.empty_like(x)
        emph[0] = x[0] - 0.97 * self._last
        emph[1:] = x[1:] - 0.97 * x[:-1]
        self._last = float(x[-1])
        self._buf = np.concatenate([self._buf, emph])
        if self._buf.size > self._max:
            cut = self._buf.size - self._max
            self._buf = self._buf[cut:]
            self._start += cut

    def window(self, end_s: float) -> NDArray[np.float32]:
        """The ``[80, 16]`` mel window whose last frame ends at ``end_s`` seconds of stream time."""
        end = round(end_s * SAMPLE_RATE) - self._start
        need = (MEL_STEP - 1) * HOP + WIN
        seg = self._buf[max(0, end - need) : max(0, end)]
        if seg.size < need:
            seg = np.concatenate([np.zeros(need - seg.size, np.float32), seg])
        frames = np.lib.stride_tricks.sliding_window_view(seg, WIN)[::HOP][:MEL_STEP]
        spec = np.abs(np.fft.rfft(frames * np.hanning(WIN).astype(np.float32), axis=1)).T
        mel = 20.0 * np.log10(np.maximum(1e-5, self._basis @ spec)) - 20.0
        return np.clip((2 * 4.0) * ((mel + 100.0) / 100.0) - 4.0, -4.0, 4.0).astype(np.float32)


def _rank4_inputs(session: Any) -> dict[str, tuple[Any, ...]]:
    return {n: s.shape for n, s in session.inputs.items() if s.shape is not None and len(s.shape) == 4}


class Wav2LipModel:
    """A wav2lip-signature model (ONNX or TorchScript via the model-service runners)."""

    def __init__(self, path: str, *, threads: int | None = None) -> None:
        from apipeline.models.runners.session import SessionConfig, open_model

        self.session = open_model(path, SessionConfig(intra_op_threads=threads, device="cpu"))
        ins = _rank4_inputs(self.session)
        mel = [n for n, s in ins.items() if s[1] == 1]
        face = [n for n, s in ins.items() if s[1] == 6]
        if len(self.session.inputs) != 2 or len(mel) != 1 or len(face) != 1 or len(self.session.outputs) != 1:
            got = ", ".join(s.describe() for s in self.session.inputs.values())
            raise ModelSignatureError(
                f"{path}: not a wav2lip model: expected inputs mel [N,1,80,16] and faces [N,6,96,96] and "
                f"one output (it has: {got}; {len(self.session.outputs)} output(s))"
            )
        self.mel_name, self.face_name = mel[0], face[0]
        self.output = next(iter(self.session.outputs))

    def run(self, mel: NDArray[np.float32], faces: NDArray[np.float32]) -> NDArray[np.float32]:
        out = self.session.run({self.mel_name: mel, self.face_name: faces})[self.output]
        if out.shape[1:] != (3, FACE, FACE):
            raise ModelSignatureError(f"wav2lip model returned {out.shape}, expected [N, 3, 96, 96]")
        return out


class GfpganModel:
    """A GFPGAN-signature face restorer: ``[1,3,512,512]`` in -1..1 → the same."""

    def __init__(self, path: str, *, threads: int | None = None) -> None:
        from apipeline.models.runners.session import SessionConfig, open_model

        self.session = open_model(path, SessionConfig(intra_op_threads=threads, device="cpu"))
        ins = list(self.session.inputs.items())
        shape = ins[0][1].shape if len(ins) == 1 else None
        if shape is None or len(shape) != 4 or shape[1] != 3 or len(self.session.outputs) != 1:
            got = ", ".join(s.describe() for _, s in ins)
            raise ModelSignatureError(
                f"{path}: not a GFPGAN model: expected one input [1,3,512,512] and one output (it has: {got})"
            )
        self.input = ins[0][0]
        self.output = next(iter(self.session.outputs))

    def run(self, face: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.session.run({self.input: face})[self.output]


class NeuralRenderer:
    """The talking head drawn by a wav2lip-signature model (and optionally a GFPGAN-signature one).

    Each picture: the face crop (the face box with 10 % more below for the chin), its lower half blanked
    and stacked with the unblanked crop, goes to the lip-sync model with the mel window of the frame;
    the regenerated lower half is pasted back with a feathered edge; the enhancer, if any, restores the
    whole face crop at 512×512 before it is pasted.
    """

    def __init__(
        self,
        image: NDArray[np.generic],
        model: str,
        *,
        enhancer: str | None = None,
        size: int | None = None,
        landmarks: str | None = None,
        fallback: Fallback = "error",
        fps: float = 25.0,
        threads: int | None = None,
    ) -> None:
        import cv2

        rgb = to_rgb(image)
        h, w = rgb.shape[:2]
        layout: FaceLayout = (
            load_landmarks(landmarks, w, h) if landmarks else locate_face(rgb, fallback=fallback)
        )
        self.size = fit_size(w, h, size)
        if self.size != (w, h):
            rgb = np.asarray(cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
            layout = layout.scaled(self.size[0] / w, self.size[1] / h)
        self.image, self.layout, self.fps = rgb, layout, fps
        self.model = Wav2LipModel(model, threads=threads)
        self.enhancer = GfpganModel(enhancer, threads=threads) if enhancer else None
        fx, fy, fw, fh = layout.face
        W, H = self.size
        self._box = (max(0, fx), max(0, fy), min(W, fx + fw), min(H, fy + fh + round(0.1 * fh)))
        x0, y0, x1, y1 = self._box
        crop = self.image[y0:y1, x0:x1]
        ref = (
            cv2.resize(crop[:, :, ::-1], (FACE, FACE), interpolation=cv2.INTER_AREA).astype(np.float32)
            / 255.0
        )
        masked = ref.copy()
        masked[FACE // 2 :] = 0.0
        self._faces = np.concatenate([masked, ref], axis=2).transpose(2, 0, 1)[None].copy()
        ch, cw = y1 - y0, x1 - x0
        feather = np.clip((np.arange(ch, dtype=np.float32) - 0.4 * ch) / (0.15 * ch), 0.0, 1.0)
        side = np.clip(np.minimum(np.arange(cw), cw - 1 - np.arange(cw)) / (0.1 * cw), 0.0, 1.0)
        self._alpha = (feather[:, None] * side[None, :])[:, :, None].astype(np.float32)
        self._mel: MelFrontEnd | None = None

    def feed(self, audio: NDArray[np.floating], sample_rate: int) -> None:
        if self._mel is None or self._mel.sample_rate != sample_rate:
            self._mel = MelFrontEnd(sample_rate)
        self._mel.feed(audio)

    def render(self, shape: MouthShape) -> NDArray[np.uint8]:
        import cv2

        end_s = (shape.index + 1) / self.fps
        mel = (
            self._mel.window(end_s)
            if self._mel is not None
            else np.full((N_MELS, MEL_STEP), -4.0, np.float32)
        )
        out = self.model.run(mel[None, None], self._faces)[0]
        x0, y0, x1, y1 = self._box
        face = cv2.resize(np.clip(out.transpose(1, 2, 0), 0, 1)[:, :, ::-1], (x1 - x0, y1 - y0))
        crop = self.image[y0:y1, x0:x1].astype(np.float32) / 255.0
        merged = crop * (1.0 - self._alpha) + face * self._alpha
        if self.enhancer is not None:
            big = cv2.resize(merged, (ENHANCE, ENHANCE), interpolation=cv2.INTER_CUBIC)
            restored = self.enhancer.run((big.transpose(2, 0, 1)[None] * 2.0 - 1.0).astype(np.float32))[0]
            merged = cv2.resize(
                (restored.transpose(1, 2, 0) + 1.0) / 2.0, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA
            )
        picture = self.image.copy()
        picture[y0:y1, x0:x1] = (np.clip(merged, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return picture

    def reset(self) -> None:
        """Forget buffered audio (after an interruption the next words start afresh)."""
        self._mel = None
