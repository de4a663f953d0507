"""The seam between transport processors and a concrete connection (WebSocket, gRPC stream, in-memory).

A :class:`MessageChannel` moves whole messages: ``recv`` returns the next one (``None`` once the peer has
finished sending in an orderly way, as a gRPC half-close) and raises
:class:`~apipeline.errors.TransportClosed` when the connection is gone; ``send`` hands one message to the
connection, waiting while the connection's own write buffer is full (that wait is the backpressure the
send queue's policy acts on). Closing belongs to whoever owns the connection, not to the processors.

:class:`MemoryChannel` is a pair of bounded in-memory queues: the same contract with no socket, used by
tests and by code that wants to run a session in-process.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from apipeline.errors import TransportClosed

Message = bytes | str


@runtime_checkable
class MessageChannel(Protocol):
    """One bidirectional stream of messages."""

    async def recv(self) -> Message | None:
        """The next message; ``None`` when the peer finished sending; raises TransportClosed."""
        ...

    async def send(self, message: Message) -> None:
        """Send one message (waits while the connection cannot take more); raises TransportClosed."""
        ...


class MemoryChannel:
    """An in-memory channel end; :meth:`pair` makes two connected ends with bounded queues."""

    def __init__(self, inbox: asyncio.Queue[Message | None], outbox: asyncio.Queue[Message | None]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.closed: TransportClosed | None = None

    @classmethod
    def pair(cls, maxsize: int = 16) -> tuple[MemoryChannel, MemoryChannel]:
        a: asyncio.Queue[Message | None] = asyncio.Queue(maxsize)
        b: asyncio.Queue[Message | None] = asyncio.Queue(maxsize)
        return cls(a, b), cls(b, a)

    async def recv(self) -> Message | None:
        if self.closed is not None:
            raise self.closed
        return await self._inbox.get()

    async def send(self, message: Message) -> None:
        if self.closed is not None:
            raise self.closed
        await self._outbox.put(message)

    async def finish(self) -> None:
        """Signal an orderly end of what this side sends (the peer's ``recv`` returns ``None``)."""
        await self._outbox.put(None)
