"""Pure numpy feature plumbing shared by the SVC runners: pitch bins, frame alignment, speaker mixing.

* :func:`f0_to_coarse` -- Hz to the 1..255 mel-spaced pitch bins RVC's ``pitch`` input takes (so-vits-svc 4.x
  ONNX exports take Hz directly and bin inside the graph, so they skip it).
* :func:`fill_unvoiced` -- F0 with unvoiced gaps bridged, plus the ``uv`` flags (the NSF source wants a
  continuous pitch; voicing travels separately).
* :func:`align_f0` -- an F0 track on another frame rate.
* :func:`expand_frames` / :func:`mel2ph` -- content frames (50 Hz) onto the synthesis frames, either
  copied in numpy ("left", "nearest", "linear") or as the index map a model gathers with.
* :func:`speaker_mix` -- time-varying speaker weights, each row normalised to sum to 1 (seed 004 ``spkmix``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from apipeline.errors import AudioFormatError, ParameterError

F0_BINS = 256
F0_MIN = 50.0
F0_MAX = 1100.0


def _hz_to_mel(f: Any) -> Any:
    return 1127.0 * np.log1p(f / 700.0)


def f0_to_coarse(
    f0: ArrayLike, f0_min: float = F0_MIN, f0_max: float = F0_MAX, bins: int = F0_BINS
) -> NDArray[np.int64]:
    """Quantise F0 (Hz, 0 = unvoiced) to integer bins 1..bins-1 spaced evenly on the mel scale.

    ``f0_min`` maps to bin 1 and ``f0_max`` to bin ``bins - 1``; unvoiced frames and anything below
    ``f0_min`` give 1, anything above ``f0_max`` gives ``bins - 1``.
    """
    hz = np.asarray(f0, dtype=np.float64)
    lo, hi = _hz_to_mel(np.float64(f0_min)), _hz_to_mel(np.float64(f0_max))
    position = (_hz_to_mel(np.maximum(hz, 0.0)) - lo) * (bins - 2) / (hi - lo) + 1.0
    coarse = np.rint(np.where(hz > 0, position, 1.0))
    return np.clip(coarse, 1, bins - 1).astype(np.int64)


def fill_unvoiced(f0: ArrayLike) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(f0 with unvoiced frames linearly bridged between voiced neighbours, uv flags 1=voiced).

    Leading/trailing unvoiced frames take the nearest voiced value; an all-unvoiced track stays 0.
    """
    hz = np.asarray(f0, dtype=np.float64)
    if hz.ndim != 1:
        raise ParameterError(f"fill_unvoiced: f0 must be 1-D, got shape {hz.shape}")
    voiced = hz > 0
    filled = hz.copy()
    if voiced.any() and not voiced.all():
        idx = np.arange(hz.size)
        filled = np.interp(idx, idx[voiced], hz[voiced])
    return filled.astype(np.float32), voiced.astype(np.float32)


def align_f0(f0: ArrayLike, target_frames: int) -> NDArray[np.float32]:
    """Resample an F0 track spanning the same time to ``target_frames`` frames.

    Voiced values are interpolated in log-Hz between voiced frames; voicing is taken from the nearest
    source frame, so a gap never gets a pitch invented in its middle.
    """
    hz = np.asarray(f0, dtype=np.float64)
    if hz.ndim != 1 or target_frames < 0:
        raise ParameterError(f"align_f0: need 1-D f0 and target_frames >= 0, got {hz.shape}, {target_frames}")
    if target_frames == 0 or hz.size == 0:
        return np.zeros(target_frames, dtype=np.float32)
    src = (np.arange(hz.size) + 0.5) / hz.size
    dst = (np.arange(target_frames) + 0.5) / target_frames
    nearest = np.clip(np.floor(dst * hz.size).astype(np.int64), 0, hz.size - 1)
    voiced = hz > 0
    if not voiced.any():
        return np.zeros(target_frames, dtype=np.float32)
    log_f0 = np.interp(dst, src[voiced], np.log(hz[voiced]))
    return np.where(voiced[nearest], np.exp(log_f0), 0.0).astype(np.float32)


def mel2ph(source_frames: int, target_frames: int) -> NDArray[np.int64]:
    """For each of ``target_frames`` frames, the index of the source frame covering its start.

    The same map so-vits-svc's ``repeat_expand_2d(mode="left")`` walks: frame ``i`` takes source frame
    ``floor(i * source_frames / target_frames)``.
    """
    if source_frames <= 0 or target_frames < 0:
        raise ParameterError(
            f"mel2ph: need source_frames > 0 and target_frames >= 0, got {source_frames}, {target_frames}"
        )
    return (np.arange(target_frames, dtype=np.int64) * source_frames) // target_frames


def expand_frames(content: ArrayLike, target_frames: int, mode: str = "left") -> NDArray[np.float32]:
    """Content features ``(T_src, D)`` stretched to ``(target_frames, D)``.

    Modes: ``"left"`` repeats each source frame over the target frames that start inside it, ``"nearest"``
    picks the source frame whose centre is closest, ``"linear"`` interpolates between frame centres.
    """
    c = np.asarray(content, dtype=np.float32)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ParameterError(f"expand_frames: content must be (frames > 0, dims), got shape {c.shape}")
    n = c.shape[0]
    if mode == "left":
        return c[mel2ph(n, target_frames)]
    centres = (np.arange(target_frames) + 0.5) * n / max(target_frames, 1) - 0.5
    if mode == "nearest":
        return c[np.clip(np.rint(centres).astype(np.int64), 0, n - 1)]
    if mode == "linear":
        pos = np.clip(centres, 0, n - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        frac = (pos - lo).astype(np.float32)[:, None]
        return (c[lo] * (1 - frac) + c[hi] * frac).astype(np.float32)
    raise ParameterError(f"expand_frames: mode must be 'left', 'nearest' or 'linear', got {mode!r}")


Segment = Sequence[float]  # [t_start, t_end, w_start, w_end], times in 0..1


def _check_track(spk: int, track: Sequence[Segment]) -> None:
    where = f"speaker_mix: speaker {spk}"
    if not track:
        raise ParameterError(f"{where}: empty track; an unused speaker takes [[0, 1, 0, 0]]")
    for seg in track:
        if len(seg) != 4:
            raise ParameterError(
                f"{where}: each segment is [t_start, t_end, w_start, w_end], got {list(seg)}"
            )
    if track[0][0] != 0 or track[-1][1] != 1:
        raise ParameterError(
            f"{where}: segments must start at time 0 and end at 1, got {track[0][0]} .. {track[-1][1]}"
        )
    for a, b in itertools.pairwise(track):
        if a[1] != b[0]:
            raise ParameterError(f"{where}: segment ending at {a[1]} is followed by one starting at {b[0]}")
    for seg in track:
        if not seg[0] < seg[1]:
            raise ParameterError(f"{where}: segment {list(seg)} has t_start >= t_end")


def speaker_mix(
    mix: Mapping[int, Sequence[Segment]] | Mapping[int, float] | ArrayLike | int,
    frames: int,
    speakers: int,
) -> NDArray[np.float32]:
    """Per-frame speaker weights ``(frames, speakers)``, every row summing to 1.

    ``mix`` is one of: a speaker id; static weights ``{speaker: weight}``; a track map in the seed's
    ``spk_mix_map`` format ``{speaker: [[t0, t1, w0, w1], ...]}`` (times 0..1 over the clip, weights ramping
    linearly inside each segment, speakers left out weigh 0); or an array ``(frames, speakers)``.

    Raises:
        ValueError: an unknown speaker, a malformed track, negative weights, or a frame where every
            weight is 0 (there is nothing to normalise).
    """
    if speakers <= 0 or frames < 0:
        raise ParameterError(f"speaker_mix: need speakers > 0 and frames >= 0, got {speakers}, {frames}")
    if isinstance(mix, (int, np.integer)) and not isinstance(mix, bool):
        if not 0 <= mix < speakers:
            raise ParameterError(f"speaker_mix: speaker id {mix} out of range 0..{speakers - 1}")
        weights = np.zeros((frames, speakers), dtype=np.float64)
        weights[:, int(mix)] = 1.0
    elif isinstance(mix, Mapping):
        weights = np.zeros((frames, speakers), dtype=np.float64)
        t = (np.arange(frames) + 0.5) / max(frames, 1)
        for spk, spec in mix.items():
            if not isinstance(spk, (int, np.integer)) or not 0 <= spk < speakers:
                raise ParameterError(f"speaker_mix: speaker id {spk!r} out of range 0..{speakers - 1}")
            if isinstance(spec, (int, float)):
                weights[:, spk] = float(spec)
                continue
            _check_track(int(spk), spec)
            for t0, t1, w0, w1 in spec:
                inside = (t >= t0) & (t < t1) if t1 < 1 else (t >= t0)
                weights[inside, spk] = w0 + (w1 - w0) * (t[inside] - t0) / (t1 - t0)
    else:
        weights = np.asarray(mix, dtype=np.float64)
        if weights.shape != (frames, speakers):
            raise ParameterError(
                f"speaker_mix: weight array must be ({frames}, {speakers}), got {weights.shape}"
            )
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ParameterError("speaker_mix: weights must be finite and >= 0")
    total = weights.sum(axis=1, keepdims=True)
    if frames and (total <= 0).any():
        first = int(np.argmax(total[:, 0] <= 0))
        raise ParameterError(f"speaker_mix: every weight is 0 at frame {first}; nothing to normalise")
    return (weights / np.where(total > 0, total, 1.0)).astype(np.float32)


def frame_rms(audio: ArrayLike, hop: int, frames: int) -> NDArray[np.float32]:
    """RMS of ``audio`` per hop-sized frame, padded/cut to ``frames`` (so-vits-svc's ``vol`` input)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or hop <= 0:
        raise AudioFormatError(f"frame_rms: need 1-D audio and hop > 0, got {x.shape}, {hop}")
    n = -(-x.size // hop)
    padded = np.zeros(n * hop)
    padded[: x.size] = x
    rms = np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1)) if n else np.zeros(0)
    out = np.zeros(frames, dtype=np.float32)
    out[: min(frames, n)] = rms[:frames]
    if 0 < n < frames:
        out[n:] = rms[-1]
    return out
