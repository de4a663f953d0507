"""What a client of the served voice changer may set, and the bounds: one :class:`ParamSchema`.

The one place the server takes the voice changer's parameters from (the handshake query and mid-stream
``UpdateSettingsFrame``). It is derived from the voice changer's own schema
(``VoiceChangerSettings.schema()``: names, types, defaults, which parameters may change live): a subset
of it, with tighter bounds where a client must be held to less than an operator.

Bounds keep one session's cost within a real-time budget: everything that sizes memory or compute per
block (block, search, context, look-ahead, crossfade, warm-up, the analysis hop, the F0 method) is
bounded, so the most expensive session a client can ask for still converts faster than real time on one
core. The F0 method is limited to ``dio`` (the estimators with a real-time factor near or above 1 per
session, ``harvest``, ``fcpe``, ``crepe*``, stay available to the operator through ``--set f0=...``,
which is checked by the voice changer itself, not by this schema). Settings a client has no business
choosing (the processing rate, the vocoder, threads, estimator options) are not in the schema at all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from apipeline.errors import ParameterError
from apipeline.params import ParamSchema

#: The parameters a client may set, and where its bounds are tighter than the voice changer's own
#: (``VoiceChangerSettings.schema()``, which owns names, types, defaults and what may change live).
CLIENT_BOUNDS: dict[str, dict[str, Any]] = {
    "pitch": {}, "formant": {}, "target_f0_mean": {}, "target_f0_range": {}, "rms_mix_rate": {},
    "f0": {"choices": ("dio",)},
    "block_ms": {"minimum": 25, "maximum": 200},
    "crossfade_ms": {"maximum": 50},
    "search_ms": {"maximum": 20},
    "context_ms": {"maximum": 200},
    "lookahead_ms": {"maximum": 50},
    "warmup_ms": {},
    "frame_ms": {"minimum": 5, "maximum": 10},
    "f0_pad_ms": {"maximum": 100},
    "sola": {}, "fade": {}, "phase_lock": {}, "silence_db": {}, "vad": {}, "vad_gate": {},
}  # fmt: skip


def _client_schema() -> ParamSchema:
    from apipeline.voice_changer import VoiceChangerSettings

    own = VoiceChangerSettings.schema()
    return ParamSchema(dataclasses.replace(own[name], **tighter) for name, tighter in CLIENT_BOUNDS.items())


VOICE_CHANGER_SESSION_PARAMS = _client_schema()


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
