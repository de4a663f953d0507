"""Level handling for a live voice: a noise-floor tracker, an automatic gain, a soft limiter.

* :class:`NoiseFloorTracker` follows the level of the quietest recent blocks (falls at once to a quieter
  block, rises slowly -- ``rise_db_per_s`` -- so speech pauses, not speech, set it); a block is "signal"
  when it is ``margin_db`` above that floor and above an absolute floor (:data:`ABSOLUTE_FLOOR_DB`, below
  which 16-bit audio is dither). Unlike a fixed threshold this opens for speech recorded at -55 dBFS as
  well as at -10 dBFS, and closes on a room's hum between words wherever that hum sits.
* :class:`AutoGain` brings the level of what is not silence towards ``target_db`` with a slowly
  moving gain (limited to ``max_gain_db``), ramped sample by sample so it never clicks.
* :func:`soft_limit` is a memoryless soft-knee limiter: identity below the knee, a tanh curve that
  approaches ``ceiling`` above it; no look-ahead, so no added latency, and never a hard clip.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

ABSOLUTE_FLOOR_DB = -90.0
"""Blocks below this RMS (dBFS) are silence whatever the tracked floor (16-bit dither is ~ -101 dBFS)."""


def rms_db(x: NDArray[np.floating]) -> float:
    """RMS level in dBFS (-inf for an empty or all-zero block)."""
    if x.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


class NoiseFloorTracker:
    """Tracks the noise floor of a stream of blocks and says which blocks carry signal.

    Args:
        block_seconds: duration of one block (for the rise rate).
        margin_db: how far above the floor a block must be to count as signal.
        rise_db_per_s: how fast the floor may rise (it falls at once).
        hold_blocks: blocks kept open after the last signal block (soft word endings).
        floor_db: absolute floor; blocks below it are never signal.
    """

    def __init__(
        self,
        block_seconds: float,
        *,
        margin_db: float = 12.0,
        rise_db_per_s: float = 6.0,
        hold_blocks: int = 3,
        floor_db: float = ABSOLUTE_FLOOR_DB,
    ) -> None:
        self.block_seconds = block_seconds
        self.margin_db = margin_db
        self.rise_db_per_s = rise_db_per_s
        self.hold_blocks = hold_blocks
        self.floor_db = floor_db
        self.reset()

    def reset(self) -> None:
        self.noise_db = self.floor_db
        self._hold = 0

    def update(self, level_db: float) -> bool:
        """Feed one block's RMS level (dBFS); return whether the block is signal (gate open)."""
        if level_db < self.noise_db:
            self.noise_db = max(level_db, self.floor_db - 30.0)
        else:
            self.noise_db = min(level_db, self.noise_db + self.rise_db_per_s * self.block_seconds)
        is_signal = level_db >= max(self.noise_db + self.margin_db, self.floor_db)
        if is_signal:
            self._hold = self.hold_blocks
            return True
        if self._hold > 0 and level_db >= self.floor_db:
            self._hold -= 1
            return True
        return False


class AutoGain:
    """Slow automatic gain towards ``target_db`` (RMS of the non-silent input), in ``[-max_cut, max_gain]``.

    The level is followed by a one-pole smoother on the frames' RMS (``time_constant_s``), only over
    frames above :data:`ABSOLUTE_FLOOR_DB` + 10 dB so pauses do not pump the gain up; the gain applied to
    a frame moves linearly from the previous frame's value to the new one.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        target_db: float = -20.0,
        max_gain_db: float = 30.0,
        max_cut_db: float = 10.0,
        time_constant_s: float = 0.5,
    ) -> None:
        self.sample_rate = sample_rate
        self.target_db = target_db
        self.max_gain_db = max_gain_db
        self.max_cut_db = max_cut_db
        self.time_constant_s = time_constant_s
        self.reset()

    def reset(self) -> None:
        self.level_db: float | None = None
        self.gain_db = 0.0

    def process(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        level = rms_db(x)
        if level > ABSOLUTE_FLOOR_DB + 10.0:
            if self.level_db is None:
                self.level_db = level
            else:
                a = 1.0 - math.exp(-x.shape[0] / (self.time_constant_s * self.sample_rate))
                self.level_db += a * (level - self.level_db)
        previous = self.gain_db
        if self.level_db is not None:
            wanted = self.target_db - self.level_db
            self.gain_db = min(self.max_gain_db, max(-self.max_cut_db, wanted))
        ramp = np.linspace(previous, self.gain_db, x.shape[0], endpoint=False, dtype=np.float64)
        return (x * np.power(10.0, ramp / 20.0)).astype(np.float32)


def soft_limit(x: NDArray[np.floating], ceiling: float = 0.944, knee: float = 0.75) -> NDArray[np.float32]:
    """Memoryless soft-knee limiter: ``|y| <= ceiling`` always, ``y = x`` below ``knee * ceiling``.

    Above the knee the excess is mapped through ``tanh`` (slope 1 at the knee, so no kink), approaching
    ``ceiling`` (-0.5 dBFS by default) for any input, however loud.
    """
    y = np.asarray(x, dtype=np.float32)
    k = knee * ceiling
    mag = np.abs(y)
    over = mag > k
    if not over.any():
        return y
    span = ceiling - k
    limited = k + span * np.tanh((mag[over] - k) / span)
    out = y.copy()
    out[over] = np.copysign(limited, y[over]).astype(np.float32)
    return out
