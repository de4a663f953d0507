"""A finished session frees everything at once, without the cycle collector: reference cycles would
keep every session's pipeline, queues and buffers alive until a full collection (which pauses every
session on the loop)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from apipeline.client import FrameClient
from apipeline.transports import VoiceChangerFactory
from apipeline.transports.server_session import ServerSession
from tests.transports._standin import chunks, gain_factory


class Recording:
    """Wraps a factory: weak references to every pipeline it built and every processor in it."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.refs: list[weakref.ref] = []
        self.settings_schema = getattr(factory, "settings_schema", None)
        self.needs_audio_format = factory.needs_audio_format
        self.build_in_thread = getattr(factory, "build_in_thread", False)

    def check_settings(self, settings):
        return self.factory.check_settings(settings)

    def build(self, spec):
        root = self.factory.build(spec)
        self.refs += [weakref.ref(p) for p in root.walk()]
        return root

    async def warm_up(self):
        await self.factory.warm_up()


@pytest.fixture
def sessions(monkeypatch):
    """Weak references to every ServerSession started, its task, transports and send queue."""
    refs: list[weakref.ref] = []
    release = ServerSession._release

    def recording_release(self):
        refs.append(weakref.ref(self))
        for obj in (self.task, self.input, self.output, getattr(self.output, "queue", None)):
            if obj is not None:
                refs.append(weakref.ref(obj))
        release(self)

    monkeypatch.setattr(ServerSession, "_release", recording_release)
    return refs


@pytest.fixture
def no_cycle_collector():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(refs: list[weakref.ref]) -> list[str]:
    return [repr(type(r())) for r in refs if r() is not None]


@pytest.mark.parametrize("kind", ["gain", "voice_changer"])
async def test_closed_sessions_are_freed_without_the_cycle_collector(
    make_server, sessions, no_cycle_collector, kind
):
    factory = Recording(gain_factory() if kind == "gain" else VoiceChangerFactory())
    server = await make_server(factory)
    x = (np.random.default_rng(0).standard_normal(4000) * 0.1).astype(np.float32)
    for _ in range(3):
        async with FrameClient(server.url) as client:
            out = [f async for f in client.stream(chunks(x, 400))]
        assert out and client.close_code == 1000
    await server.wait_idle()
    assert len(sessions) >= 3 * 5 and len(factory.refs) > 3
    assert alive(sessions) == []
    assert alive(factory.refs) == []
