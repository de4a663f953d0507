"""Sample-type and channel conversions, shape normalisation and the NaN/Inf guard.

Conventions used across ``apipeline.audio``: multichannel audio is a 2-D array shaped
``(frames, channels)``; float audio is float32 in [-1, 1]; integer audio is int16 PCM.
Every function here is pure (it returns a new array or the input unchanged) and raises
:class:`~apipeline.errors.AudioFormatError` with the offending shape, dtype or position.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apipeline.errors import AudioFormatError, ParameterError

_INT16_SCALE = 32768.0


def as_2d(x: NDArray) -> NDArray:
    """View ``x`` as ``(frames, channels)``: a 1-D array becomes one channel; 2-D passes unchanged."""
    if x.ndim == 1:
        return x.reshape(-1, 1)
    if x.ndim == 2:
        return x
    raise AudioFormatError(f"audio must be 1-D (frames,) or 2-D (frames, channels), got shape {x.shape}")


def to_float32(x: NDArray) -> NDArray[np.float32]:
    """Convert int16/int32 PCM or any float array to float32 in [-1, 1] (int PCM is scaled, float cast).

    float32 input is returned as is (no copy). Other dtypes (bool, uint8, complex, object) are refused
    because their scale is ambiguous.
    """
    if x.dtype == np.float32:
        return x
    if x.dtype == np.int16:
        return x.astype(np.float32) / np.float32(_INT16_SCALE)
    if x.dtype == np.int32:
        return (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32)
    raise AudioFormatError(
        f"cannot convert audio of dtype {x.dtype} to float32; expected int16, int32 or float"
    )


def to_int16(x: NDArray) -> NDArray[np.int16]:
    """Convert float audio (full scale = 1.0) or int32 PCM to int16 PCM, rounding and clipping.

    Values outside [-1, 1) clip to [-32768, 32767] instead of wrapping around. NaN/Inf are refused
    (``check_finite``) because they have no PCM value.
    """
    if x.dtype == np.int16:
        return x
    if x.dtype == np.int32:
        return (x >> 16).astype(np.int16)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioFormatError(f"cannot convert audio of dtype {x.dtype} to int16; expected float or int32")
    check_finite(x, "to_int16")
    y = np.rint(x.astype(np.float64, copy=False) * _INT16_SCALE)
    np.clip(y, -32768.0, 32767.0, out=y)
    return y.astype(np.int16)


def check_finite(x: NDArray, where: str) -> None:
    """Raise AudioFormatError naming ``where`` and the first NaN/Inf sample (frame, channel) if any.

    Integer arrays are always finite and pass without a scan.
    """
    if not np.issubdtype(x.dtype, np.floating):
        return
    if np.isfinite(x).all():
        return
    flat = np.flatnonzero(~np.isfinite(x.reshape(-1)))
    first = int(flat[0])
    value = x.reshape(-1)[first]
    if x.ndim == 2:
        frame, channel = divmod(first, x.shape[1])
        place = f"frame {frame}, channel {channel}"
    else:
        place = f"sample {first}"
    raise AudioFormatError(
        f"{where}: audio contains {flat.size} non-finite sample(s); the first is {value} at {place}"
    )


def mix_channels(x: NDArray, channels: int) -> NDArray:
    """Down-mix to mono by averaging, or up-mix mono by duplicating; other changes are refused.

    ``x`` is ``(frames,)`` (taken as mono) or ``(frames, channels)``; the result is 2-D
    ``(frames, channels)`` with the input's dtype (int16 averages are rounded, not truncated).
    Mixing between two multichannel layouts (e.g. 2 -> 6) has no single right answer, so it raises.
    """
    if channels <= 0:
        raise ParameterError(f"channels must be positive, got {channels}")
    x2 = as_2d(x)
    have = x2.shape[1]
    if have == channels:
        return x2
    if channels == 1:
        mean = x2.mean(axis=1, dtype=np.float64, keepdims=True)
        if np.issubdtype(x2.dtype, np.integer):
            return np.rint(mean).astype(x2.dtype)
        return mean.astype(x2.dtype)
    if have == 1:
        return np.repeat(x2, channels, axis=1)
    raise AudioFormatError(
        f"cannot mix {have} channels to {channels}: "
        "only N -> 1 (average) and 1 -> N (duplicate) are supported"
    )
