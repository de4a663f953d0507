"""Servers on loopback for the transport tests (port 0: a free port each time)."""

from __future__ import annotations

import asyncio
import re

import pytest

from apipeline.transports import ServerConfig, SessionConfig, WebsocketServer
from tests.transports._standin import gain_factory

_LIBRARY_TASKS = re.compile(r"^(Task-\d+|rpc_task|HandleExceptions\[.*\])$")  # asyncio, grpc.aio


def leftover_tasks() -> list[str]:
    """Unfinished tasks that apipeline created (it names all of its tasks; libraries' are filtered out)."""
    current = asyncio.current_task()
    return [
        t.get_name()
        for t in asyncio.all_tasks()
        if t is not current and not t.done() and not _LIBRARY_TASKS.match(t.get_name())
    ]


@pytest.fixture
async def make_server():
    """``await make_server(**config)``: a started, warmed-up server; all closed (and checked) at the end."""
    servers: list[WebsocketServer] = []

    async def make(factory=None, *, session: SessionConfig | None = None, **config) -> WebsocketServer:
        config.setdefault("ping_interval", None)
        cfg = ServerConfig(port=0, session=session or SessionConfig(), **config)
        server = WebsocketServer(factory or gain_factory(), cfg)
        await server.start()
        servers.append(server)
        await server.wait_ready()
        return server

    yield make
    for server in servers:
        await server.aclose()
        assert not server.sessions
