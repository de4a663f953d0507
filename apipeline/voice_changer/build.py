"""One entry point for both placements: :func:`build_voice_changer` picks the local or the remote DAG.

It is the only module that knows both builders, so :mod:`~apipeline.voice_changer.local` and
:mod:`~apipeline.voice_changer.remote` never import each other.
"""

from __future__ import annotations

from typing import Any

from apipeline.voice_changer.dag import VoiceChangerPipeline
from apipeline.voice_changer.local import build_local_voice_changer
from apipeline.voice_changer.settings import VoiceChangerSettings


def build_voice_changer(
    settings: VoiceChangerSettings | None = None,
    *,
    sample_rate: int,
    channels: int = 1,
    realtime: bool = False,
    backend: Any = None,
) -> VoiceChangerPipeline:
    """The voice changer DAG for a stream of ``channels`` at ``sample_rate``.

    ``backend`` None builds the in-process DAG
    (:func:`~apipeline.voice_changer.local.build_local_voice_changer`);
    a ``ModelBackend``, an address (``"local"``, ``"auto"``, ``"host:port"``...) or a
    :class:`~apipeline.voice_changer.remote.RemotePlacement` puts the per-window conversion on a model
    backend (:func:`~apipeline.voice_changer.remote.build_remote_voice_changer`; imported only then).
    """
    if backend is None:
        return build_local_voice_changer(
            settings, sample_rate=sample_rate, channels=channels, realtime=realtime
        )
    from apipeline.voice_changer.remote import RemotePlacement, build_remote_voice_changer

    place = backend if isinstance(backend, RemotePlacement) else RemotePlacement(backend)
    return build_remote_voice_changer(
        settings, sample_rate=sample_rate, channels=channels, realtime=realtime, **place.options()
    )
