"""The real-time voice changer: settings, the local and remote DAGs, graph nodes and runners.

* :mod:`~apipeline.voice_changer.settings`: :class:`VoiceChangerSettings` -- one set of defaults, one
  validator, one :class:`~apipeline.params.ParamSchema` (``VoiceChangerSettings.schema()``) for the CLI,
  graph files, serving and ``UpdateSettingsFrame``.
* :mod:`~apipeline.voice_changer.dag`: the front and back both DAGs share, :class:`VoiceChangerPipeline`.
* :mod:`~apipeline.voice_changer.local`, :mod:`~apipeline.voice_changer.remote`: the in-process DAG and
  the DAG with its conversion on a model backend (Ray); :func:`build_voice_changer` picks one.
* :mod:`~apipeline.voice_changer.gate`: input guard and gain, end padding, block gate, limiter.
* :mod:`~apipeline.voice_changer.monitor`: per-block compute, turnaround and underruns.
* :mod:`~apipeline.voice_changer.nodes`: the stages and the whole voice changer as graph nodes.
* :mod:`~apipeline.voice_changer.run`: :func:`run_file`, :func:`convert_array`, :func:`render_offline_array`.
* :mod:`~apipeline.voice_changer.live`: microphone -> voice changer -> speaker, and device lookup.

The pure DSP (F0, WORLD, SOLA, the streaming core, level tools) lives in :mod:`apipeline.audio`.
Importing this package is light: the DAG modules are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apipeline.voice_changer.build import build_voice_changer as build_voice_changer
    from apipeline.voice_changer.dag import VoiceChangerPipeline as VoiceChangerPipeline
    from apipeline.voice_changer.monitor import RealtimeReport as RealtimeReport
    from apipeline.voice_changer.remote import RemotePlacement as RemotePlacement
    from apipeline.voice_changer.remote import build_remote_voice_changer as build_remote_voice_changer
    from apipeline.voice_changer.run import VoiceChangerResult as VoiceChangerResult
    from apipeline.voice_changer.run import convert_array as convert_array
    from apipeline.voice_changer.run import render_offline_array as render_offline_array
    from apipeline.voice_changer.run import run_file as run_file
    from apipeline.voice_changer.settings import VoiceChangerSettings as VoiceChangerSettings

_WHERE = {
    "RealtimeReport": "monitor",
    "RemotePlacement": "remote",
    "VoiceChangerPipeline": "dag",
    "VoiceChangerResult": "run",
    "VoiceChangerSettings": "settings",
    "build_remote_voice_changer": "remote",
    "build_voice_changer": "build",
    "convert_array": "run",
    "render_offline_array": "run",
    "run_file": "run",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'apipeline.voice_changer' has no attribute {name!r}")
    return getattr(importlib.import_module(f"apipeline.voice_changer.{module}"), name)
