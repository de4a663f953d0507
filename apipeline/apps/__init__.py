"""Deprecated home of the voice changer: its public names, re-exported from :mod:`apipeline.voice_changer`.

Import from :mod:`apipeline.voice_changer` instead; this module only keeps older code working.
"""

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
