"""The voice changer's settings: one class, one set of defaults, one validator, one parameter schema.

:class:`VoiceChangerSettings` is what every door into the voice changer fills: the command line
(``apipeline voice-changer``, whose options are generated from :meth:`VoiceChangerSettings.schema`), the
graph nodes (:mod:`apipeline.voice_changer.nodes`), serving (the handshake's query settings) and the
mid-stream ``UpdateSettingsFrame`` (only the parameters marked ``live``). The DSP defaults (block
geometry, F0 method, pitch...) are the pure core's (:class:`apipeline.audio.voice_changer.CoreSettings`,
written once); the schema adds the bounds, the units and which parameters may change mid-stream.

Bounds are a real-time budget: everything that sizes memory or compute per block -- block, context,
SOLA search, crossfade, look-ahead, warm-up, F0 mirror, WORLD hop, F0 method -- has a maximum that keeps
one session's cost within a block's deadline on one core (and its buffers within a few hundred kB);
:meth:`VoiceChangerSettings.validate` also refuses combinations (a crossfade longer than the block).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from apipeline.audio.resample import QUALITIES
from apipeline.audio.sola import FADES
from apipeline.audio.voice_changer import CoreSettings
from apipeline.errors import AudioFormatError, ParameterError
from apipeline.params import Param, ParamSchema
from apipeline.processors.audio.features import BlockGeometry

MIN_RATE, MAX_RATE = 16000, 48000
F0_METHODS = ("dio", "harvest", "fcpe", "crepe", "crepe-tiny", "crepe-full")
WORLD_F0 = ("dio", "harvest")
GIL_FREE_F0 = ("fcpe", "crepe", "crepe-tiny", "crepe-full")
"""Estimators whose work releases the GIL (torch): worth running beside the WORLD analysis."""
VOCODERS = ("world", "griffin-lim")
GATES = ("adaptive", "fixed", "off")

_CORE = CoreSettings()
PHASE_LOCKED_GEOMETRY = {
    "crossfade_ms": _CORE.crossfade_ms,
    "search_ms": _CORE.search_ms,
    "lookahead_ms": _CORE.lookahead_ms,
    "warmup_ms": _CORE.warmup_ms,
}
"""The default stitch geometry (phase-locked synthesis: SOLA only absorbs a few samples of residue; the
lock's two lead-in frames precede the 10 ms synthesis warm-up)."""
FREE_RUNNING_GEOMETRY = {"crossfade_ms": 10.0, "search_ms": 15.0, "lookahead_ms": 0.0, "warmup_ms": 20.0}
"""The same 60 ms spent for free-running synthesis: the search must span an output pitch period, and
without lead-in frames the synthesis warm-up alone must cover a pulse response (20 ms)."""
GEOMETRY_KEYS = (
    "block_ms", "context_ms", "crossfade_ms", "search_ms", "lookahead_ms", "warmup_ms", "frame_ms", "sola",
)  # fmt: skip
"""The settings that size the blocks (:meth:`VoiceChangerSettings.geometry`); every stage agrees on them."""


@dataclass
class VoiceChangerSettings:
    """Everything that shapes the voice changer; the streamed and the offline render share it.

    The fields, their bounds and units are :meth:`schema` (``apipeline voice-changer --help`` lists
    them). ``f0_options`` (estimator keyword arguments) is for code only: it is not in the schema.
    Build from untrusted values with :meth:`from_values`; :meth:`validate` checks an instance.
    """

    pitch: float = _CORE.pitch
    formant: float = _CORE.formant
    f0: str = _CORE.f0
    block_ms: float = _CORE.block_ms
    crossfade_ms: float = _CORE.crossfade_ms
    search_ms: float = _CORE.search_ms
    context_ms: float = _CORE.context_ms
    lookahead_ms: float = _CORE.lookahead_ms
    warmup_ms: float = _CORE.warmup_ms
    frame_ms: float = _CORE.frame_ms
    sola: bool = _CORE.sola
    fade: str = "sin2"
    phase_lock: bool = _CORE.phase_lock
    f0_pad_ms: float = _CORE.f0_pad_ms
    sample_rate: int | None = None
    resample_quality: str = "LQ"
    gate: str = "adaptive"
    silence_db: float | None = _CORE.silence_db
    gate_margin_db: float = 12.0
    input_gain_db: float = 0.0
    agc: bool = False
    limiter: bool = True
    vad: bool = True
    vad_gate: bool = False
    rms_mix_rate: float = _CORE.rms_mix_rate
    target_f0_mean: float | None = _CORE.target_f0_mean
    target_f0_range: float | None = _CORE.target_f0_range
    vocoder: str = "world"
    parallel: bool | None = None
    threads: bool | None = None
    analysis_f0: str = "dio"
    f0_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def schema(cls) -> ParamSchema:
        """Every setting as a :class:`~apipeline.params.Param` (defaults from this class)."""
        return _SCHEMA

    @classmethod
    def from_values(cls, values: dict[str, Any], *, from_text: bool = False) -> VoiceChangerSettings:
        """Settings from a mapping (a graph file, a query string, options): checked as a whole.

        ``f0_options`` (a mapping) is taken as is; every other key must be in :meth:`schema`.
        Raises :class:`~apipeline.errors.ParameterError` listing every problem.
        """
        values = dict(values)
        options = values.pop("f0_options", None)
        checked = _SCHEMA.check(values, from_text=from_text)
        settings = cls(**checked, f0_options=dict(options or {}))
        settings.validate()
        return settings

    def values(self) -> dict[str, Any]:
        """The schema's parameters of these settings (everything but ``f0_options``)."""
        return {name: getattr(self, name) for name in _SCHEMA}

    def validate(self) -> None:
        """Raise :class:`~apipeline.errors.ParameterError` (a ValueError) naming every bad setting."""
        problems: list[str] = []
        try:
            _SCHEMA.check(self.values())
        except ParameterError as exc:
            problems.extend(exc.problems)
        if not isinstance(self.f0_options, dict):
            problems.append(f"f0_options must be a mapping, got {type(self.f0_options).__name__}")
        if not problems:
            if self.sola and self.crossfade_ms > self.block_ms:
                problems.append(
                    f"crossfade_ms ({self.crossfade_ms:g}) must not exceed block_ms ({self.block_ms:g}): "
                    "each block's output can only be crossfaded over its own length"
                )
        if problems:
            raise ParameterError(problems)

    def use_parallel(self) -> bool:
        return self.f0 in GIL_FREE_F0 if self.parallel is None else self.parallel

    def use_phase_lock(self) -> bool:
        """Whether the vocoder locks phase across windows (``phase_lock`` with the WORLD vocoder)."""
        return self.phase_lock and self.vocoder == "world"

    def free_running(self) -> VoiceChangerSettings:
        """These settings for a free-running synthesis (``phase_lock`` off).

        Settings still at the phase-locked default geometry (:data:`PHASE_LOCKED_GEOMETRY`) get the
        free-running one (:data:`FREE_RUNNING_GEOMETRY`, same latency): a 0.5 ms search cannot align
        pulse trains that were not locked (measured with ``benchmarks/voice_changer_dag.py --quality
        --remote`` on the example speech, +4 semitones: 49 cents median error with the 0.5 ms search,
        21 with the free-running geometry, 16 phase-locked). A geometry set otherwise is kept as is.
        """
        geometry = {k: getattr(self, k) for k in PHASE_LOCKED_GEOMETRY}
        changes: dict[str, Any] = {"phase_lock": False}
        if geometry == PHASE_LOCKED_GEOMETRY:
            changes.update(FREE_RUNNING_GEOMETRY)
        return self.replace(**changes)

    def use_threads(self) -> bool:
        """Whether the F0/analysis/vocoder stages run their work in threads (auto: with parallel branches)."""
        return self.use_parallel() if self.threads is None else self.threads

    def estimator_options(self) -> dict[str, Any]:
        """``f0_options`` plus one torch thread for neural estimators (two cores: one for torch, one
        for WORLD; measured, FCPE on 145 ms windows takes ~30 ms with 1 thread and 50-125 ms with 2)."""
        options = dict(self.f0_options)
        if self.f0 in GIL_FREE_F0:
            options.setdefault("num_threads", 1)
        return options

    def geometry_values(self) -> dict[str, Any]:
        """The block-geometry settings (:data:`GEOMETRY_KEYS`) as keywords."""
        return {k: getattr(self, k) for k in GEOMETRY_KEYS}

    def geometry(self, sample_rate: int) -> BlockGeometry:
        return BlockGeometry.from_ms(sample_rate, **self.geometry_values())

    def silence_threshold_db(self) -> float | None:
        """The fixed gate's level: ``silence_db`` with ``gate="fixed"``, else None (no fixed level)."""
        return self.silence_db if self.gate == "fixed" else None

    def core_settings(self) -> dict[str, Any]:
        """Keyword arguments for :mod:`apipeline.audio.voice_changer` (``render_offline`` and the core)."""
        return dict(
            **{k: getattr(self, k) for k in GEOMETRY_KEYS if k != "sola"},
            f0=self.f0, pitch=self.pitch, formant=self.formant,
            target_f0_mean=self.target_f0_mean, target_f0_range=self.target_f0_range,
            rms_mix_rate=self.rms_mix_rate, sola=self.sola, silence_db=self.silence_threshold_db(),
            phase_lock=self.phase_lock, f0_pad_ms=self.f0_pad_ms, f0_options=self.estimator_options(),
        )  # fmt: skip

    def replace(self, **changes: Any) -> VoiceChangerSettings:
        return dataclasses.replace(self, **changes)


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(VoiceChangerSettings) if f.name != "f0_options"}


def _build_schema() -> ParamSchema:
    d = _defaults()

    def p(name: str, kind: type, **kw: Any) -> Param:
        return Param(name, kind, d[name], **kw)

    ms = {"unit": "ms"}
    return ParamSchema([
        p("pitch", float, minimum=-36, maximum=36, live=True, unit="semitones", doc="pitch shift"),
        p("formant", float, minimum=0.25, maximum=4.0, live=True,
          doc="formant (spectral envelope) warp ratio, >1 brighter / smaller vocal tract"),
        p("f0", str, choices=F0_METHODS, doc="F0 estimator driving the conversion"),
        p("block_ms", float, minimum=5, maximum=500, **ms, doc="block length (latency and per-block work)"),
        p("crossfade_ms", float, minimum=0, maximum=100, **ms,
          doc="SOLA crossfade between blocks (at most the block)"),
        p("search_ms", float, minimum=0, maximum=50, **ms, doc="SOLA search window (adds latency)"),
        p("context_ms", float, minimum=0, maximum=500, **ms,
          doc="left context analysed with each block (compute only)"),
        p("lookahead_ms", float, minimum=0, maximum=100, **ms,
          doc="look-ahead (adds latency, better F0 at the edge)"),
        p("warmup_ms", float, minimum=0, maximum=100, **ms, doc="synthesis warm-up frames before each block"),
        p("frame_ms", float, minimum=2, maximum=20, **ms, doc="WORLD frame period (analysis hop)"),
        p("sola", bool, doc="stitch blocks with SOLA (off: plain concatenation, for comparison)"),
        p("fade", str, choices=FADES, doc="crossfade shape"),
        p("phase_lock", bool, doc="lock each block's pulse train to the previous one's (WORLD vocoder)"),
        p("f0_pad_ms", float, minimum=0, maximum=200, **ms,
          doc="mirrored tail for each window's F0 estimate"),
        p("sample_rate", int, nullable=True, minimum=MIN_RATE, maximum=MAX_RATE, unit="Hz",
          doc="processing rate (null: the stream's own; another adds two resamplers)"),
        p("resample_quality", str, choices=QUALITIES, doc="soxr quality of the resamplers"),
        p("gate", str, choices=GATES,
          doc="silence gate: adaptive (tracks the noise floor), fixed (silence_db) or off"),
        p("silence_db", float, nullable=True, minimum=-120, maximum=0, live=True, unit="dBFS",
          doc="the fixed gate's level (gate=fixed)"),
        p("gate_margin_db", float, minimum=0, maximum=40, live=True, unit="dB",
          doc="adaptive gate: how far above the tracked noise floor a block must be"),
        p("input_gain_db", float, minimum=-40, maximum=40, live=True, unit="dB",
          doc="gain before the conversion"),
        p("agc", bool, live=True, doc="automatic gain: bring speech towards -20 dBFS (up to +30 dB)"),
        p("limiter", bool, live=True, doc="soft limiter before the output (no added latency)"),
        p("vad", bool, doc="run Silero VAD (speaking events in band)"),
        p("vad_gate", bool, doc="render blocks the VAD calls non-speech silent"),
        p("rms_mix_rate", float, minimum=0, maximum=1, doc="loudness matching to the input, 1 = off"),
        p("target_f0_mean", float, nullable=True, minimum=40, maximum=1000, live=True, unit="Hz",
          doc="map F0 to this mean before the shift"),
        p("target_f0_range", float, nullable=True, minimum=0, maximum=24, live=True, unit="semitones",
          doc="target log-F0 spread (with target_f0_mean)"),
        p("vocoder", str, choices=VOCODERS, doc="synthesis: world (real time) or griffin-lim"),
        p("parallel", bool, nullable=True,
          doc="F0 beside the analysis (null: auto, for GIL-free estimators)"),
        p("threads", bool, nullable=True, doc="stages work in threads (null: with parallel branches)"),
        p("analysis_f0", str, choices=WORLD_F0, doc="the spectral branch's own estimator (parallel layout)"),
    ])  # fmt: skip


_SCHEMA = _build_schema()


def processing_rate(settings: VoiceChangerSettings, sample_rate: int) -> int:
    """The rate the conversion runs at; AudioFormatError when the stream's rate needs one and none is set."""
    if settings.sample_rate is not None:
        return settings.sample_rate
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(
            f"voice changer: {sample_rate} Hz input is outside the supported {MIN_RATE}..{MAX_RATE} Hz; "
            f"set a processing sample rate (settings.sample_rate / --sample-rate) to resample it"
        )
    return sample_rate
