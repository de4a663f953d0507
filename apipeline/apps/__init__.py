"""Applications built from apipeline's processors.

* :mod:`~apipeline.apps.voice_changer`: :class:`VoiceChangerSettings` and :func:`build_voice_changer`,
  the real-time voice changer DAG (F0 + WORLD analysis, conversion, vocoder, SOLA).
* :mod:`~apipeline.apps.voice_changer_run`: :func:`run_file`, :func:`convert_array`,
  :func:`render_offline_array` and :class:`VoiceChangerResult`.
* :mod:`~apipeline.apps.voice_changer_remote`: :func:`build_remote_voice_changer` and
  :class:`RemotePlacement`, the same DAG with its per-window conversion on a model backend (Ray).
* :mod:`~apipeline.apps.voice_changer_nodes`, :mod:`~apipeline.apps.voice_changer_node`: the stages and
  the whole voice changer with parameters a graph file can write (``voice_changer``, ``audio.sola``...).
* :mod:`~apipeline.apps.gate`: the DAG's entry guard, end padding and block gate (level, Silero VAD).
* :mod:`~apipeline.apps.monitor`: per-block compute, turnaround and underruns (:class:`RealtimeReport`).
"""

from apipeline.apps.monitor import RealtimeReport as RealtimeReport
from apipeline.apps.voice_changer import VoiceChangerPipeline as VoiceChangerPipeline
from apipeline.apps.voice_changer import VoiceChangerSettings as VoiceChangerSettings
from apipeline.apps.voice_changer import build_voice_changer as build_voice_changer
from apipeline.apps.voice_changer_remote import RemotePlacement as RemotePlacement
from apipeline.apps.voice_changer_remote import build_remote_voice_changer as build_remote_voice_changer
from apipeline.apps.voice_changer_run import VoiceChangerResult as VoiceChangerResult
from apipeline.apps.voice_changer_run import convert_array as convert_array
from apipeline.apps.voice_changer_run import render_offline_array as render_offline_array
from apipeline.apps.voice_changer_run import run_file as run_file

__all__ = [
    "RealtimeReport",
    "RemotePlacement",
    "VoiceChangerPipeline",
    "VoiceChangerResult",
    "VoiceChangerSettings",
    "build_remote_voice_changer",
    "build_voice_changer",
    "convert_array",
    "render_offline_array",
    "run_file",
]
