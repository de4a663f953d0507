"""Fixed-size blocks with left context out of a stream of chunks of any size.

A model that converts audio block by block needs each new block together with some of the audio
before it (its left context): the window it sees is ``[context | block]``. :class:`Reblocker` turns
chunks of arbitrary sizes into such windows, one per complete new block, in O(n) total work: each
input sample is copied once into a window buffer, and each window costs one copy of
``context_size + block_size`` samples. The first window's context is zeros (silence before the start).

Left context costs compute, not latency: a window is emitted as soon as its last block sample arrives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from apipeline.errors import AudioFormatError, ParameterError


class FinalBlock(NamedTuple):
    """The zero-padded last window of a stream and how many of its block samples are real audio."""

    window: NDArray
    valid: int


class Reblocker:
    """Cut a stream into windows of ``context_size + block_size`` frames, advancing by ``block_size``.

    ``push`` accepts ``(frames,)`` (mono) or ``(frames, channels)``; windows come back with the same
    number of dimensions as the array passed to that call. Windows are fresh arrays the caller may
    keep or modify. Samples are stored in ``dtype`` (float32 by default).
    """

    def __init__(
        self, block_size: int, context_size: int = 0, channels: int = 1, dtype: DTypeLike = np.float32
    ) -> None:
        if block_size <= 0:
            raise ParameterError(f"block_size must be positive, got {block_size}")
        if context_size < 0:
            raise ParameterError(f"context_size must be >= 0, got {context_size}")
        if channels <= 0:
            raise ParameterError(f"channels must be positive, got {channels}")
        self.block_size = block_size
        self.context_size = context_size
        self.channels = channels
        self.dtype = np.dtype(dtype)
        self._buf = np.zeros((context_size + block_size, channels), dtype=self.dtype)
        self._fill = context_size
        self._ndim = 1 if channels == 1 else 2
        self.frames_in = 0
        self.blocks_out = 0

    @property
    def window_size(self) -> int:
        return self.context_size + self.block_size

    @property
    def pending(self) -> int:
        """Frames received that are not yet part of an emitted block."""
        return self._fill - self.context_size

    def _shape(self, w: NDArray) -> NDArray:
        return w[:, 0] if self._ndim == 1 else w

    def push(self, x: NDArray) -> list[NDArray]:
        """Add a chunk; return every window whose block became complete (possibly none)."""
        if x.ndim == 1 and self.channels == 1:
            x2 = x.reshape(-1, 1)
        elif x.ndim == 2 and x.shape[1] == self.channels:
            x2 = x
        else:
            raise AudioFormatError(
                f"reblocker expects (frames,) mono or (frames, {self.channels}) audio, got shape {x.shape}"
            )
        if x2.dtype != self.dtype and not (
            np.issubdtype(x2.dtype, np.floating) and np.issubdtype(self.dtype, np.floating)
        ):
            raise AudioFormatError(f"reblocker stores {self.dtype} samples, got {x2.dtype}; convert first")
        self._ndim = x.ndim
        out: list[NDArray] = []
        buf, size, ctx = self._buf, self.window_size, self.context_size
        pos, n = 0, len(x2)
        while pos < n:
            take = min(size - self._fill, n - pos)
            buf[self._fill : self._fill + take] = x2[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == size:
                out.append(self._shape(buf.copy()))
                if ctx:
                    buf[:ctx] = buf[size - ctx :].copy()  # overlapping when ctx > block
                self._fill = ctx
        self.frames_in += n
        self.blocks_out += len(out)
        return out

    def flush(self) -> FinalBlock | None:
        """End of stream: the last partial block zero-padded to a full window, or None if nothing is pending.

        ``valid`` counts the real frames at the start of the block part (``window[context_size:]``).
        The reblocker is reset afterwards, ready for a new stream.
        """
        valid = self.pending
        final = None
        if valid > 0:
            self._buf[self._fill :] = 0
            final = FinalBlock(self._shape(self._buf.copy()), valid)
        self.reset()
        return final

    def reset(self) -> None:
        """Forget all audio: the next window starts with a zero context again."""
        self._buf[:] = 0
        self._fill = self.context_size
        self.frames_in = 0
        self.blocks_out = 0
