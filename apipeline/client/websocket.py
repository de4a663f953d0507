"""The WebSocket client: frames to a served pipeline and back.

::

    async with VoiceChangerClient("ws://127.0.0.1:8765/ws", pitch=4, formant=1.1) as client:
        async for frame in client.stream(frames):   # AudioRawFrames in, converted AudioRawFrames out
            ...

:meth:`FrameClient.stream` sends the frames (then ``EndFrame``) from a task it owns while it yields what
comes back, so a long input never waits for the output to be read (and the other way round). It ends
when the server's ``EndFrame`` arrives; a fatal ``ErrorFrame`` followed by a close raises
:class:`~apipeline.errors.SessionRefused` with the server's close code, a connection lost mid-stream
:class:`~apipeline.errors.TransportClosed`. Non-fatal ``ErrorFrame``\\ s are yielded like data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from apipeline.errors import SessionRefused, TransportClosed
from apipeline.frames import EndFrame, ErrorFrame, Frame, UpdateSettingsFrame
from apipeline.serializers import FrameSerializer, ProtobufFrameSerializer


class FrameClient:
    """One session with a served pipeline over WebSocket.

    Args:
        url: ``ws://host:port/ws`` (a query string in it is kept).
        params: session settings for the query string (``{"pitch": 4}``).
        token: the server's token, if it requires one.
        max_message_size: largest message accepted from the server.
        open_timeout: seconds for the TCP connect and handshake.
    """

    def __init__(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        serializer: FrameSerializer | None = None,
        max_message_size: int = 1 << 22,
        open_timeout: float = 10.0,
    ) -> None:
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        if token is not None:
            query["token"] = token
        parts = urlsplit(url)
        extra = urlencode(query)
        joined = "&".join(q for q in (parts.query, extra) if q)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/ws", joined, ""))
        self.serializer = serializer or ProtobufFrameSerializer()
        self.max_message_size = max_message_size
        self.open_timeout = open_timeout
        self.connection: Any = None

    async def connect(self) -> None:
        """Open the session.

        Raises:
            SessionRefused: the server refused the handshake (a bad or unknown setting, a missing token,
                too many sessions); code 1008 and a reason ``"HTTP <status>: <the server's text>"``.
        """
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            self.connection = await connect(
                self.url, max_size=self.max_message_size, compression=None, open_timeout=self.open_timeout
            )
        except InvalidStatus as exc:
            # the server says why in the response body; websockets' own message only has the status
            response = exc.response
            body = (response.body or b"").decode(errors="replace").strip()
            reason = f"HTTP {response.status_code}: {body or response.reason_phrase}"
            raise SessionRefused(1008, reason) from None

    async def aclose(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def __aenter__(self) -> FrameClient:
        await self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def close_code(self) -> int | None:
        """The close code once the connection has closed (the server's, if it sent one)."""
        return None if self.connection is None else self.connection.close_code

    @property
    def close_reason(self) -> str | None:
        return None if self.connection is None else self.connection.close_reason

    async def send(self, frame: Frame) -> None:
        """Send one frame; raises TransportClosed if the connection is gone."""
        from websockets.exceptions import ConnectionClosed

        try:
            await self.connection.send(self.serializer.serialize(frame))
        except ConnectionClosed:
            raise TransportClosed(self.close_code or 1006, self.close_reason or "") from None

    async def recv(self) -> Frame | None:
        """The next frame from the server, or ``None`` once the connection has closed."""
        from websockets.exceptions import ConnectionClosed

        try:
            message = await self.connection.recv()
        except ConnectionClosed:
            return None
        return self.serializer.deserialize(message)

    async def update_settings(self, **settings: Any) -> None:
        """Change session settings mid-stream (an ``UpdateSettingsFrame``, in order with the audio)."""
        await self.send(UpdateSettingsFrame(settings))

    async def stream(
        self, frames: Iterable[Frame] | AsyncIterable[Frame], *, end: bool = True
    ) -> AsyncIterator[Frame]:
        """Send ``frames`` (then ``EndFrame`` if ``end``) while yielding what comes back, to the server's
        ``EndFrame``."""
        sender = asyncio.get_running_loop().create_task(self._send_all(frames, end), name="client.sender")
        fatal: ErrorFrame | None = None
        try:
            while True:
                frame = await self.recv()
                if frame is None:
                    code, reason = self.close_code or 1006, self.close_reason or ""
                    if fatal is not None:
                        raise SessionRefused(code, fatal.error)
                    raise TransportClosed(code, reason or "closed before the server's EndFrame")
                if isinstance(frame, EndFrame):
                    return
                if isinstance(frame, ErrorFrame) and frame.fatal:
                    fatal = frame
                    continue
                yield frame
        finally:
            if not sender.done():
                sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, TransportClosed):
                pass

    async def _send_all(self, frames: Iterable[Frame] | AsyncIterable[Frame], end: bool) -> None:
        if isinstance(frames, AsyncIterable):
            async for frame in frames:
                await self.send(frame)
        else:
            for frame in frames:
                await self.send(frame)
        if end:
            await self.send(EndFrame())


class VoiceChangerClient(FrameClient):
    """A :class:`FrameClient` for the voice changer: ``pitch`` (semitones), ``formant`` (ratio) and any
    other ``VoiceChangerSettings`` field as keyword arguments."""

    def __init__(
        self,
        url: str,
        *,
        pitch: float | None = None,
        formant: float | None = None,
        token: str | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(url, params={"pitch": pitch, "formant": formant, **settings}, token=token)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
