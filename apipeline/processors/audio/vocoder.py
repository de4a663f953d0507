"""Features to audio per block: :class:`VocoderProcessor` (shell over :mod:`apipeline.audio.vocoder`).

Phase-locked synthesis (``phase_lock=True``, WORLD only), as the streaming core does it
(:mod:`apipeline.audio.voice_changer`): each window's pulse train is locked, at the middle of the coming
crossfade, to the phase the previous window's synthesis had at the same input instant, so consecutive
windows put their glottal pulses at the same instants where SOLA blends them. The lock for block
``n + 1`` needs two things: block ``n``'s excitation phase, which the vocoder has, and the offset SOLA
chose when it stitched block ``n``, which only SOLA has. The design:

* the bookkeeping lives in one place, :class:`PhaseLockTracker` (plain, synchronous), owned by the
  vocoder: block ``n``'s phase waits there for SOLA's answer, which turns it into block ``n + 1``'s lock;
* SOLA (``SolaProcessor(report_offset=True)``) answers every block upstream with a
  :class:`~apipeline.processors.audio.features.SolaOffsetFrame` before it pushes the stitched block on.

Why the answer is always there in time, in the DAG
:func:`~apipeline.voice_changer.local.build_local_voice_changer`
builds (it checks this layout): SOLA is a synchronous processor directly after the vocoder, so the
vocoder's ``push_frame`` of block ``n`` runs SOLA's stitch in the vocoder's own worker task and returns
only after it; SOLA's answer is a system frame, which an asynchronous processor handles on arrival in
the sender's task instead of queueing it (behind block ``n + 1``'s features, which may already be
waiting). So the answer is recorded before the worker takes block ``n + 1`` from its queue, whether the
synthesis itself runs inline or in the vocoder's thread (the thread only computes; the bookkeeping stays
in the worker task). The alternatives were worse: sharing SOLA's stitcher with the vocoder couples two
processors through a hidden object; running SOLA inside the vocoder removes a stage graphs and the
latency query know; making the vocoder *wait* for the answer turns any wiring mistake into a hang.
Instead, if the answer has not come when the next block is synthesised (SOLA missing, not directly
downstream, or behind an asynchronous stage), that block is synthesised free-running, the miss is
counted (``lock_misses``) and the first one is reported as an ``ErrorFrame``: a clear, audible-quality
degradation, never a stall. A block rendered without synthesis (gated, failed) breaks the lock, as in
the core.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.format import AudioFormat
from apipeline.audio.svc import change_rms
from apipeline.audio.vocoder import GriffinLimVocoder, Vocoder, WorldVocoder
from apipeline.audio.world import synthesize_phase_locked
from apipeline.errors import ParameterError
from apipeline.frames import AudioRawFrame, EndFrame, Frame
from apipeline.params import Param, ParamSchema
from apipeline.processors.audio.features import (
    COMPUTE_KEY,
    ConvertedFeaturesFrame,
    SolaOffsetFrame,
    ThreadedBlockProcessor,
    block_metadata,
)
from apipeline.processors.frame_processor import FrameDirection

VOCODERS = ("world", "griffin-lim")

Lock = tuple[int, float]
"""``(sample index in a window's synthesis, excitation phase there)``: see ``synthesize_phase_locked``."""


class PhaseLockTracker:
    """Turns block ``n``'s excitation phase and SOLA's answer for it into block ``n + 1``'s lock.

    Call :meth:`take` before synthesising block ``seq``, then :meth:`rendered` after a phase-locked
    synthesis (or :meth:`silent` when the block got no synthesis), and :meth:`stitched` when SOLA's
    answer for a block arrives. Blocks are identified by ``seq``: a lock is only ever used by the block
    right after the one it came from. ``misses`` counts blocks whose predecessor's answer had not come.
    """

    def __init__(self) -> None:
        self._pending: tuple[int, int, NDArray[np.float64]] | None = None  # seq, kept start, kept phase
        self._lock: tuple[int, Lock] | None = None  # (for seq, lock)
        self.misses = 0
        self.locked = 0

    def take(self, seq: int) -> Lock | None:
        """The lock for block ``seq`` (None: synthesise it free); counts a miss if an answer is overdue."""
        if self._pending is not None:
            self.misses += 1
            self._pending = None
        entry, self._lock = self._lock, None
        if entry is None or entry[0] != seq:
            return None
        self.locked += 1
        return entry[1]

    def rendered(self, seq: int, kept_start: int, kept_phase: NDArray[np.float64]) -> None:
        """Block ``seq`` was synthesised; ``kept_phase`` is its excitation phase over its kept span,
        which starts at sample ``kept_start`` of its synthesis."""
        self._pending = (seq, kept_start, kept_phase)

    def silent(self) -> None:
        """The block got no synthesis (gated, or failed): the next one starts free."""
        self._pending = self._lock = None

    def stitched(self, seq: int, anchor: int, advance: int) -> None:
        """SOLA's answer for block ``seq``: lock block ``seq + 1`` at ``anchor`` (an index into its kept
        span) to the phase block ``seq`` had ``advance`` samples later in its own kept span."""
        pending = self._pending
        if pending is None or pending[0] != seq:
            return  # an answer for a silent block, or a stale one: nothing to lock to
        self._pending = None
        _, start, phase = pending
        if 0 <= anchor and anchor + advance < phase.shape[0]:
            self._lock = (seq + 1, (start + anchor, float(phase[anchor + advance])))

    def reset(self) -> None:
        self._pending = self._lock = None


class VocoderProcessor(ThreadedBlockProcessor):
    """Synthesise each :class:`ConvertedFeaturesFrame` and emit the block's kept span as audio.

    Output: a mono float32 ``AudioRawFrame`` of ``kept_size`` samples (block + crossfade + search) per
    block, with ``metadata["block_seq"]``, ready for :class:`~apipeline.processors.audio.sola.SolaProcessor`.
    A block without features (gated or failed upstream) becomes zeros of the same length.

    ``rms_mix_rate`` < 1 gives the output the input's loudness envelope in proportion ``1 - rate``
    (``change_rms`` over the kept span; settable mid-stream). ``lookahead`` (samples) is declared as this
    stage's latency: the kept span ends that far before the newest input. ``phase_lock`` (WORLD only)
    locks each block's pulse train to the previous one's where SOLA will crossfade them; it needs a
    ``SolaProcessor(report_offset=True)`` directly downstream (see the module docstring). It consumes
    the :class:`~apipeline.processors.audio.features.SolaOffsetFrame` answers either way.

    Args:
        sample_rate: rate of the features and of the output.
        kind: ``"world"`` (pyworld synthesis, the real-time default) or ``"griffin-lim"`` (librosa; slow,
            noisy, a model-free reference: about 32 STFT round trips per block).
        rms_mix_rate: loudness matching, 1 = off.
        lookahead: look-ahead samples of the window geometry (latency only).
        phase_lock: phase-locked WORLD synthesis across blocks.
    """

    settings_schema = ParamSchema([Param("rms_mix_rate", float, 1.0, minimum=0, maximum=1, live=True)])

    def __init__(
        self,
        *,
        sample_rate: int,
        kind: str = "world",
        rms_mix_rate: float = 1.0,
        lookahead: int = 0,
        phase_lock: bool = False,
        threaded: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(threaded=threaded, name=name)
        if kind not in VOCODERS:
            raise ParameterError(f"VocoderProcessor: kind must be one of {VOCODERS}, got {kind!r}")
        if phase_lock and kind != "world":
            raise ParameterError(
                f"VocoderProcessor: phase_lock needs kind='world' (a pulse train), got {kind!r}"
            )
        if not 0.0 <= rms_mix_rate <= 1.0:
            raise ParameterError(f"VocoderProcessor: rms_mix_rate must be within [0, 1], got {rms_mix_rate}")
        self.sample_rate = sample_rate
        self.kind = kind
        self.rms_mix_rate = float(rms_mix_rate)
        self.vocoder: Vocoder = WorldVocoder() if kind == "world" else GriffinLimVocoder()
        self.output_format = AudioFormat(sample_rate, 1, "float32")
        self.latency = lookahead / sample_rate
        self.phase_lock = phase_lock
        self.lock = PhaseLockTracker()
        self.blocks_synthesised = 0

    @property
    def lock_misses(self) -> int:
        """Blocks synthesised free because SOLA's answer for the previous block had not come."""
        return self.lock.misses

    def update_settings(self, settings: dict[str, object]) -> None:
        rate = settings.get("rms_mix_rate", self.rms_mix_rate)
        if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ParameterError(f"{self.name}: rms_mix_rate must be within [0, 1], got {rate!r}")
        super().update_settings(settings)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ConvertedFeaturesFrame) and direction is FrameDirection.DOWNSTREAM:
            await self._synthesise(frame)
            return
        if isinstance(frame, SolaOffsetFrame):  # addressed to us (SOLA answers upstream): consumed
            if self.phase_lock:
                self.lock.stitched(frame.seq, frame.anchor, frame.advance)
            return
        await self.push_frame(frame, direction)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        self.lock.reset()

    async def _synthesise(self, frame: ConvertedFeaturesFrame) -> None:
        spent = int(frame.metadata.get(COMPUTE_KEY, 0))
        y: NDArray[np.float32] | None = None
        lock: Lock | None = None
        if self.phase_lock:
            misses = self.lock.misses
            lock = self.lock.take(frame.seq)
            if self.lock.misses == 1 and misses == 0:
                await self.push_error(
                    f"{self.name}: phase lock: SOLA's answer for the block before {frame.seq} had not come "
                    "when it was synthesised, so it is synthesised free-running (as is every such block: "
                    "see lock_misses); a SolaProcessor(report_offset=True) must follow this vocoder "
                    "directly, as a synchronous processor"
                )
        if frame.features is not None:
            try:
                (y, start, phase), took = await self.run_in_thread(
                    self._render, frame, self.rms_mix_rate, lock
                )
                spent += took
                self.blocks_synthesised += 1
                if phase is not None:
                    self.lock.rendered(frame.seq, start, phase)
            except Exception as exc:  # reported; the block becomes silence and the clock goes on
                await self.push_error(f"{self.name}: synthesis failed on block {frame.seq}: {exc}")
        if y is None:
            y = np.zeros(frame.kept_size, np.float32)
            self.lock.silent()
        meta = block_metadata(frame.seq, spent, frame.metadata)
        await self.push_frame(AudioRawFrame(y, self.sample_rate, 1, pts=frame.pts, metadata=meta))

    def _render(
        self, frame: ConvertedFeaturesFrame, rms_mix_rate: float, lock: Lock | None
    ) -> tuple[NDArray[np.float32], int, NDArray[np.float64] | None]:
        """The block's kept span, where it starts in the synthesis, and (phase-locked) its phase there."""
        features = frame.features
        assert features is not None
        start = frame.kept_start - features.start_frame * round(features.hop_seconds * self.sample_rate)
        phase: NDArray[np.float64] | None = None
        if self.phase_lock:
            y, full_phase = synthesize_phase_locked(features, lock)
            phase = full_phase[start : start + frame.kept_size]
        else:
            y = np.asarray(self.vocoder.synthesize(features), dtype=np.float64)
        kept = y[start : start + frame.kept_size]
        if kept.shape[0] < frame.kept_size:
            kept = np.pad(kept, (0, frame.kept_size - kept.shape[0]))
        if rms_mix_rate < 1.0 and frame.source is not None:
            kept = change_rms(frame.source, self.sample_rate, kept, self.sample_rate, rms_mix_rate, 0.02)
        return kept.astype(np.float32), start, phase
