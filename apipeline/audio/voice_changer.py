"""The streaming voice changer core: F0 + WORLD analysis, conversion and synthesis per block, SOLA-stitched.

Per new block of ``B`` samples the changer sees a window ``[left context | block]`` (a
:class:`~apipeline.audio.reblock.Reblocker` window, ``W`` samples), and:

1. estimates F0 over the whole window (DIO needs >= ~120 ms to call anything voiced, hence the context);
2. runs CheapTrick/D4C only on the frames it will synthesise: the kept span plus a short synthesis
   warm-up before it (CheapTrick/D4C dominate WORLD's cost, so this is most of the saving);
3. converts the features (:class:`~apipeline.audio.svc.VoiceConversion`) and synthesises them;
4. keeps the ``B + N + S`` newest samples (block, crossfade, search) ending ``L`` samples before the window
   end (the look-ahead, 10 ms by default) and hands them to :class:`~apipeline.audio.sola.SolaStitcher`,
   which returns exactly ``B`` samples.

Frame alignment: the WORLD hop is a whole number of samples ``h`` (5 ms -> 110 samples at 22.05 kHz) and
block and context are multiples of ``h``, so every window starts on the same absolute frame grid and
consecutive windows analyse the same instants; only their context (and so their edge effects) differ.

Latency (:attr:`StreamingVoiceChanger.latency_seconds`): an input sample waits up to ``B`` for its block
to complete; the kept span ends ``L`` before the newest input; the last ``N`` kept samples are held as the
crossfade tail for the next block; SOLA may start the next block up to ``S`` samples earlier in the
signal (an offset ``k*`` in ``0..S`` delays the output by ``N + S + L - k*``). The worst case ``B + N + S
+ L`` is what we report (``S`` does add latency: without it the kept span could end ``S`` samples later).
The left context costs compute only. Crossfade doubles as a soft look-ahead: the samples nearest the
window edge, where analysis sees zero-padded future, enter the output with fade-out weights near 0.

Phase lock (``phase_lock=True``, the default): WORLD starts each synthesis' pulse train at phase 0, so
windows rendered independently place their glottal pulses independently; when the SOLA search is
shorter than an output pitch period (11 ms at 90 Hz, 15 ms after -5 semitones) SOLA cannot align them
and the crossfade doubles pulses (octave errors in bursts at the block rate). Each window is therefore
synthesised with :func:`~apipeline.audio.world.synthesize_phase_locked`, its excitation phase locked,
in the middle of the coming crossfade, to the phase the previous window's synthesis had at the same
input instant (``k*`` of the previous stitch included). Consecutive windows then share their pulse
instants where they are crossfaded and SOLA keeps its offset: it only absorbs the small residue left by
F0 estimates that differ between windows. A silent (gated) block breaks the lock; the next voiced one
starts free. Costs two lead-in frames of synthesis per block.

Defaults (35 ms block, 14.5 ms crossfade, 0.5 ms search, 10 ms look-ahead: 59.9 ms worst-case latency).
With the lock, SOLA's search only absorbs a few samples of residue, so the 15 ms it needed without the
lock buys more here as look-ahead and crossfade: DIO's voicing and F0 degrade over the last ~15 frames
of a window (the mirrored tail, ``f0_pad_ms``, recovers much of that), so a kept span that ends 10 ms
before the newest sample gets better F0, and a longer crossfade smooths what still differs between the
F0 tracks of consecutive windows. Measured on the example speech with ``benchmarks/voice_quality.py``.

Synthesis warm-up (``warmup_ms``, 10 ms): frames synthesised before the kept span so that the pulses just
before it are there. A WORLD pulse's response is minimum-phase and starts at the pulse: it reaches at most
half the synthesis FFT after it (11.6 ms at 22.05 kHz, 10.7 ms at 48 kHz), by which time it has decayed by
> 30 dB (:func:`~apipeline.audio.world.synthesis_fft_size`); the warm-up is rounded up to whole frames and the
phase lock's two lead-in frames come before it, so pulses reach at least 10-15 ms back, and the first
samples of the kept span are faded in by the crossfade anyway. (20 ms until the third round: 11 % more
synthesis per block for tails below -30 dB under a fade-in.) Without the phase lock there are no lead-in
frames: pass ``warmup_ms=20`` (the app's free-running geometry does).

Silence gate: when the input under the kept span is below ``silence_db`` (RMS, dBFS) no analysis runs and
zeros go to SOLA, which still crossfades out the previous tail; the output length is unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from apipeline.audio.f0 import F0Estimator, get_f0_estimator
from apipeline.audio.f0.base import check_mono
from apipeline.audio.incremental import StreamingAnalysis, StreamingF0, carry_stop
from apipeline.audio.reblock import Reblocker
from apipeline.audio.sola import SolaStitcher
from apipeline.audio.svc import F0Stats, VoiceConversion
from apipeline.audio.world import analyze, frame_period_for, synthesize, synthesize_phase_locked
from apipeline.errors import AudioFormatError


@dataclass(frozen=True, slots=True)
class CoreSettings:
    """Everything that shapes the converted sound, shared by the streamed and the offline render.

    Its field defaults are the voice changer's DSP defaults, written once: the app's settings
    (:mod:`apipeline.voice_changer.settings`) and :meth:`BlockGeometry.from_ms` read them.
    """

    block_ms: float = 35.0
    crossfade_ms: float = 14.5
    search_ms: float = 0.5
    context_ms: float = 110.0
    lookahead_ms: float = 10.0
    warmup_ms: float = 10.0
    frame_ms: float = 5.0
    f0: str = "dio"
    pitch: float = 0.0
    formant: float = 1.0
    target_f0_mean: float | None = None
    target_f0_range: float | None = None
    rms_mix_rate: float = 1.0
    sola: bool = True
    phase_lock: bool = True
    f0_pad_ms: float = 50.0
    silence_db: float | None = -60.0
    f0_options: dict[str, object] = field(default_factory=dict)

    def conversion(self) -> VoiceConversion:
        return VoiceConversion(
            pitch_semitones=self.pitch,
            formant_ratio=self.formant,
            target_f0_mean=self.target_f0_mean,
            target_f0_range=self.target_f0_range,
            rms_mix_rate=self.rms_mix_rate,
        )

    def estimator(self, sample_rate: int) -> F0Estimator:
        _, period_ms = frame_period_for(sample_rate, self.frame_ms)
        return get_f0_estimator(self.f0, hop_seconds=period_ms / 1000.0, **self.f0_options)


MIN_F0_FRAMES = 30


def _multiple(value_ms: float, sample_rate: int, hop: int, minimum: int) -> int:
    """``value_ms`` as the nearest whole number of hops, in samples, at least ``minimum``."""
    return max(minimum, round(value_ms * sample_rate / 1000.0 / hop) * hop)


class StreamingVoiceChanger:
    """Converts a mono float stream block by block with a bounded, declared latency.

    ``process_block`` takes exactly :attr:`block_size` samples and returns as many; ``push`` takes any
    number and returns the completed blocks' output (possibly empty); ``flush`` ends the stream and
    returns the rest, so the total output is the input, delayed, rounded up to whole blocks. Keyword
    arguments are :class:`CoreSettings` fields. Raises AudioFormatError on bad input.
    """

    def __init__(self, sample_rate: int, **settings: object) -> None:
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise AudioFormatError(
                f"StreamingVoiceChanger: sample_rate must be a positive int, got {sample_rate!r}"
            )
        self.settings = CoreSettings(**settings)  # type: ignore[arg-type]
        s = self.settings
        self.sample_rate = int(sample_rate)
        self.hop, self.frame_period_ms = frame_period_for(self.sample_rate, s.frame_ms)
        h = self.hop
        self.block_size = _multiple(s.block_ms, self.sample_rate, h, h)
        self.crossfade_size = min(round(s.crossfade_ms * self.sample_rate / 1000.0), self.block_size)
        self.search_size = round(s.search_ms * self.sample_rate / 1000.0) if s.sola else 0
        if not s.sola:
            self.crossfade_size = 0
        self.lookahead_size = _multiple(s.lookahead_ms, self.sample_rate, h, 0)
        self.kept_size = self.block_size + self.crossfade_size + self.search_size
        warmup = _multiple(s.warmup_ms, self.sample_rate, h, 0)
        # DIO calls nothing voiced in windows shorter than ~24 frames: never give it fewer than 30
        need = max(self.kept_size + self.lookahead_size + warmup + h, MIN_F0_FRAMES * h)
        # at least the requested context, and enough for the kept span, look-ahead and warm-up frames
        self.context_size = max(_multiple(s.context_ms, self.sample_rate, h, 0), need - self.block_size)
        self.context_size = -(-self.context_size // h) * h
        self.window_size = self.context_size + self.block_size
        kept_end = self.window_size - self.lookahead_size
        self._kept = (kept_end - self.kept_size, kept_end)
        self._frames = ((self._kept[0] - warmup) // h, kept_end // h + 1)
        self._estimator = s.estimator(self.sample_rate)
        self.f0_pad_size = min(_multiple(s.f0_pad_ms, self.sample_rate, h, 0), self.window_size - h)
        block_frames = self.block_size // h
        stop = carry_stop(self.window_size, h, self._frames[1], self.sample_rate)
        # F0 is carried only into warm-up frames: the next window's kept span gets that window's estimate
        # (DIO runs over the whole window anyway; StoneMask costs little per frame)
        f0_stop = min(stop, -(-self._kept[0] // h) + block_frames)
        self._f0 = StreamingF0(self._estimator, self.sample_rate, h, block_frames, f0_stop, self.f0_pad_size)
        self._analysis = StreamingAnalysis(
            self.sample_rate, self.frame_period_ms, block_frames, self._frames, stop
        )
        self._conversion = s.conversion()
        self._gate = None if s.silence_db is None else 10.0 ** (s.silence_db / 20.0)
        self._track_stats = s.target_f0_mean is not None
        self._log_sum = self._log_sq = 0.0
        self._log_n = 0
        self._reblocker = Reblocker(self.block_size, self.context_size)
        self._sola = SolaStitcher(self.block_size, self.crossfade_size, self.search_size)
        # (index into the next window's synthesis, excitation phase there) when the next one is locked
        self._lock: tuple[int, float] | None = None
        self._seq = 0
        self.blocks_processed = 0
        self.blocks_gated = 0

    @property
    def latency_samples(self) -> int:
        """Worst-case algorithmic latency: block + crossfade + search + look-ahead (see the module doc)."""
        return self.block_size + self.crossfade_size + self.search_size + self.lookahead_size

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sample_rate

    @property
    def delay_samples(self) -> int:
        """Largest delay of the output signal behind the input (latency minus the block wait)."""
        return self.latency_samples - self.block_size

    def push(self, x: NDArray[np.floating]) -> NDArray[np.float32]:
        """Feed any number of samples; return the output of every block they completed (maybe 0 samples)."""
        audio = check_mono(x, self.sample_rate, "StreamingVoiceChanger.push")
        outs = [self._process_window(w) for w in self._reblocker.push(audio.astype(np.float32))]
        return np.concatenate(outs) if outs else np.zeros(0, np.float32)

    def process_block(self, block: NDArray[np.floating]) -> NDArray[np.float32]:
        """Convert exactly one block; returns exactly ``block_size`` samples."""
        if np.asarray(block).shape[0] != self.block_size or self._reblocker.pending:
            raise AudioFormatError(
                f"StreamingVoiceChanger.process_block: expected exactly {self.block_size} samples on a block "
                f"boundary, got {np.asarray(block).shape[0]} with {self._reblocker.pending} pending"
            )
        return self.push(block)

    def flush(self) -> NDArray[np.float32]:
        """End of stream: pad the partial block with silence and drain the delay; the changer is reset."""
        final = self._reblocker.pending
        outs = [self.push(np.zeros(self.block_size - final, np.float32))] if final else []
        for _ in range(int(np.ceil(self.delay_samples / self.block_size))):
            outs.append(self.push(np.zeros(self.block_size, np.float32)))
        self.reset()
        return np.concatenate(outs) if outs else np.zeros(0, np.float32)

    def reset(self) -> None:
        """Forget the stream: context, SOLA tail, running F0 statistics and the block count that places
        frames on the absolute grid (so a stream after ``reset`` converts exactly as in a new changer)."""
        self._seq = 0
        self._reblocker.reset()
        self._sola.reset()
        self._f0.reset()
        self._analysis.reset()
        self._lock = None
        self._log_sum = self._log_sq = 0.0
        self._log_n = 0

    def _stats(self, f0: NDArray[np.float64]) -> F0Stats | None:
        new = f0[-(self.block_size // self.hop) :]
        voiced = np.log(new[new > 0])
        self._log_sum += float(voiced.sum())
        self._log_sq += float(np.square(voiced).sum())
        self._log_n += int(voiced.size)
        if self._log_n == 0:
            return None
        mean = self._log_sum / self._log_n
        std = float(np.sqrt(max(self._log_sq / self._log_n - mean * mean, 0.0)))
        return F0Stats(mean, std, self._log_n)

    def _process_window(self, window: NDArray[np.float32]) -> NDArray[np.float32]:
        x = window.astype(np.float64)
        k0, k1 = self._kept
        seq = self._seq  # the block's place in the stream: fixes the absolute frame grid (analysis anchors)
        self._seq += 1
        self.blocks_processed += 1
        source = x[k0:k1]
        if self._gate is not None and np.sqrt(np.mean(np.square(source))) < self._gate:
            self.blocks_gated += 1
            self._lock = None
            return self._sola.process(np.zeros(self.kept_size, np.float32))
        track = self._f0.track(x, seq)
        features = self._analysis.analyze(x, seq, track)
        stats = self._stats(track.f0_hz) if self._track_stats else None
        converted = self._conversion.convert(features, stats)
        start = k0 - self._frames[0] * self.hop
        if self.settings.phase_lock:
            y, phase = synthesize_phase_locked(converted, self._lock)
        else:
            y = synthesize(converted)
        kept = y[start : start + self.kept_size]
        if self._conversion.rms_mix_rate < 1.0:
            kept = self._conversion.match_loudness(source, self.sample_rate, kept, self.sample_rate)
        out = self._sola.process(kept.astype(np.float32))
        if self.settings.phase_lock:
            # the next crossfade blends our samples from start + k* + B with the next window's from
            # start + k*: lock the next window's phase to ours at the middle of that span
            anchor = start + self._sola.last_offset + self.crossfade_size // 2
            self._lock = (anchor, float(phase[anchor + self.block_size]))
        return out


def render_offline(x: NDArray[np.floating], sample_rate: int, **settings: object) -> NDArray[np.float32]:
    """The whole signal converted in one shot with the same settings (F0 statistics from the whole file).

    Output has the input's length and no delay: the ideal the streamed render is compared against.
    """
    audio = check_mono(x, sample_rate, "render_offline")
    s = CoreSettings(**settings)  # type: ignore[arg-type]
    _, period_ms = frame_period_for(sample_rate, s.frame_ms)
    features = analyze(audio, sample_rate, s.estimator(sample_rate), period_ms)
    conversion = s.conversion()
    y = synthesize(conversion.convert(features))[: audio.shape[0]]
    if y.shape[0] < audio.shape[0]:
        y = np.pad(y, (0, audio.shape[0] - y.shape[0]))
    if conversion.rms_mix_rate < 1.0:
        y = conversion.match_loudness(audio, sample_rate, y, sample_rate)
    return y.astype(np.float32)


def measure_rtf(sample_rate: int, seconds: float = 0.7, **settings: object) -> float:
    """Real-time factor of the streaming core with ``settings`` on this machine, measured, not assumed.

    Streams ``seconds`` of a synthetic gliding voice (110-220 Hz harmonics, so every stage runs) block
    by block and returns the process CPU time spent per second of audio. The first block (imports,
    model loading, FFT plans) is not counted. Callers about to run in real time compare it with 1 to say,
    before starting, that a method cannot keep up at the chosen block (``--realtime``, ``--live``).
    """
    vc = StreamingVoiceChanger(sample_rate, **settings)
    n = max(int(seconds * sample_rate), 3 * vc.block_size)
    t = np.arange(n + vc.block_size) / sample_rate
    phase = 2.0 * np.pi * np.cumsum(110.0 + 110.0 * t / t[-1]) / sample_rate
    x = np.zeros_like(phase)
    for k in range(1, 20):
        x += 0.2 * np.sin(k * phase) / k
    x = x.astype(np.float32)
    b = vc.block_size
    vc.process_block(x[:b])
    t0 = time.process_time()
    blocks = 0
    for i in range(b, x.shape[0] - b + 1, b):
        vc.process_block(x[i : i + b])
        blocks += 1
    return (time.process_time() - t0) / (blocks * b / sample_rate)
