"""What a client of the served voice changer may set, and the bounds: one :class:`ParamSchema`.

The one place the server takes the voice changer's parameters from (the handshake query and mid-stream
``UpdateSettingsFrame``). ``VOICE_CHANGER_SESSION_PARAMS`` is meant to become the voice changer's own
schema (``VoiceChangerSettings.schema()``) when that exists: re-point :func:`voice_changer_schema` there.

Bounds keep one session's cost within a real-time budget: everything that sizes memory or compute per
block (block, search, context, look-ahead, crossfade, warm-up, the analysis hop, the F0 method) is
bounded, so the most expensive session a client can ask for still converts faster than real time on one
core. The F0 method is limited to ``dio`` (the estimators with a real-time factor near or above 1 per
session, ``harvest``, ``fcpe``, ``crepe*``, stay available to the operator through ``--set f0=...``,
which is checked by the voice changer itself, not by this schema). Settings a client has no business
choosing (the processing rate, the vocoder, threads, estimator options) are not in the schema at all.
"""

from __future__ import annotations

from apipeline.errors import ParameterError
from apipeline.params import Param, ParamSchema

VOICE_CHANGER_SESSION_PARAMS = ParamSchema(
    [
        Param("pitch", float, 0.0, minimum=-36, maximum=36, live=True, unit="semitones", doc="pitch shift"),
        Param("formant", float, 1.0, minimum=0.25, maximum=4.0, live=True, doc="formant warp ratio"),
        Param(
            "target_f0_mean", float, None, minimum=40, maximum=1000, nullable=True, live=True, unit="Hz",
            doc="map F0 onto a target speaker's mean",
        ),
        Param(
            "target_f0_range", float, None, minimum=0, maximum=24, nullable=True, live=True, unit="semitones",
            doc="the target speaker's F0 spread",
        ),
        Param("rms_mix_rate", float, 1.0, minimum=0, maximum=1, live=True, doc="loudness matching (1 = off)"),
        Param("f0", str, "dio", choices=("dio",), doc="F0 estimator"),
        Param("block_ms", float, 35.0, minimum=25, maximum=200, unit="ms", doc="block length"),
        Param("crossfade_ms", float, 14.5, minimum=0, maximum=50, unit="ms", doc="SOLA crossfade"),
        Param("search_ms", float, 0.5, minimum=0, maximum=20, unit="ms", doc="SOLA search window"),
        Param("context_ms", float, 110.0, minimum=0, maximum=200, unit="ms", doc="analysis context"),
        Param("lookahead_ms", float, 10.0, minimum=0, maximum=50, unit="ms", doc="look-ahead"),
        Param("warmup_ms", float, 20.0, minimum=0, maximum=100, unit="ms", doc="warm-up"),
        Param("frame_ms", float, 5.0, minimum=5, maximum=10, unit="ms", doc="analysis hop"),
        Param("f0_pad_ms", float, 50.0, minimum=0, maximum=100, unit="ms", doc="mirrored F0 tail"),
        Param("sola", bool, True, doc="SOLA alignment"),
        Param("fade", str, "sin2", choices=("sin2", "linear", "equal_power"), doc="crossfade shape"),
        Param("phase_lock", bool, True, doc="phase-locked synthesis"),
        Param("silence_db", float, -60.0, minimum=-120, maximum=0, nullable=True, unit="dBFS", doc="gate"),
        Param("vad", bool, True, doc="voice-activity events"),
        Param("vad_gate", bool, False, doc="gate on voice activity"),
    ]
)  # fmt: skip


#: the longest analysis a block may cost, in blocks: (block + context + look-ahead + crossfade + search +
#: F0 tail) / block. The defaults are 6.3 (phase-locked and free-running geometries alike).
MAX_WORK_PER_BLOCK = 7.0
GEOMETRY = ("block_ms", "context_ms", "lookahead_ms", "crossfade_ms", "search_ms", "f0_pad_ms")


def check_session_cost(settings: dict[str, float]) -> None:
    """Refuse a geometry whose analysis per block exceeds :data:`MAX_WORK_PER_BLOCK` blocks.

    Each bound alone is not enough: a short block with a long context analyses the context again for
    every few milliseconds of output. Measured (CPU time per second of audio, 48 kHz, shared machine):
    defaults 0.63; block 25 ms at 7 blocks of analysis 0.64; block 20 ms at 7 blocks 0.91; block 20 ms
    with every other bound at its maximum 2.1 (not real time) -- hence block >= 25 ms and this rule.
    """
    block = settings["block_ms"]
    work = sum(settings[k] for k in GEOMETRY) / block
    if work > MAX_WORK_PER_BLOCK:
        raise ParameterError(
            f"block geometry too costly: block + context + look-ahead + crossfade + search + F0 tail = "
            f"{work:.1f} blocks of analysis per block (at most {MAX_WORK_PER_BLOCK:g}); lengthen block_ms "
            "or shorten the others"
        )


def voice_changer_schema() -> ParamSchema:
    """The served voice changer's client-settable parameters (the merge point for the app's own schema)."""
    return VOICE_CHANGER_SESSION_PARAMS
