"""The gRPC client: frames over one ``apipeline.FrameService/Stream`` call.

::

    async with GrpcFrameClient("127.0.0.1:50051", params={"pitch": 4}) as client:
        async for frame in client.stream(frames):
            ...

Same behaviour as the WebSocket :class:`~apipeline.client.websocket.FrameClient`: ``stream`` sends from a
task it owns and yields what comes back up to the server's ``EndFrame``; a refused session raises
:class:`~apipeline.errors.SessionRefused` with the server's close code (from the trailing metadata) and
its reason, a broken stream :class:`~apipeline.errors.TransportClosed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlencode

import grpc

from apipeline.errors import SessionRefused, TransportClosed
from apipeline.frames import EndFrame, ErrorFrame, Frame, UpdateSettingsFrame
from apipeline.serializers import FrameSerializer, ProtobufFrameSerializer

METHOD = "/apipeline.FrameService/Stream"
QUERY_KEY = "x-apipeline-query"
CLOSE_CODE_KEY = "x-apipeline-close-code"


def open_call(
    address: str,
    *,
    params: dict[str, Any] | None = None,
    token: str | None = None,
    max_message_size: int = 1 << 22,
    tls: bool | bytes = False,
) -> tuple[Any, Any]:
    """``(channel, call)``: a fresh channel to ``address`` and one ``Stream`` call on it (raw bytes).

    ``tls``: ``True`` for TLS with the system's root certificates, or the PEM bytes of the certificates
    to trust (e.g. a self-signed server's); ``False``: plain.
    """
    options = [
        ("grpc.max_receive_message_length", max_message_size),
        ("grpc.max_send_message_length", max_message_size),
    ]
    if tls is False:
        channel = grpc.aio.insecure_channel(address, options=options)
    else:
        roots = tls if isinstance(tls, bytes) else None
        channel = grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
    metadata: list[tuple[str, str]] = []
    query = {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in (params or {}).items()
        if v is not None
    }
    if query:
        metadata.append((QUERY_KEY, urlencode(query)))
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    call = channel.stream_stream(METHOD)(metadata=metadata)
    return channel, call


async def refusal(call: Any, exc: grpc.RpcError) -> SessionRefused | TransportClosed:
    """The error a failed call stands for: the server's close code when it sent one."""
    code: int | None = None
    try:
        for key, value in await call.trailing_metadata() or ():
            if key == CLOSE_CODE_KEY:
                code = int(value)
    except Exception:
        code = None
    try:  # the call's own final status: the server's, even when a racing write raised something else
        status, details = await call.code(), await call.details()
    except Exception:
        status = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
    if code is None:
        if status is grpc.StatusCode.UNAVAILABLE or status is grpc.StatusCode.CANCELLED:
            return TransportClosed(1006, f"{status}: {details}")
        return SessionRefused(1008, f"{status}: {details}")
    return SessionRefused(code, f"{status}: {details}")


class GrpcFrameClient:
    """One session with a pipeline served by :class:`~apipeline.transports.grpc_service.GrpcServer`."""

    def __init__(
        self,
        address: str,
        *,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        serializer: FrameSerializer | None = None,
        max_message_size: int = 1 << 22,
        tls: bool | bytes = False,
    ) -> None:
        self.address = address
        self.params = params
        self.token = token
        self.tls = tls
        self.serializer = serializer or ProtobufFrameSerializer()
        self.max_message_size = max_message_size
        self._channel: Any = None
        self.call: Any = None

    async def connect(self) -> None:
        self._channel, self.call = open_call(
            self.address,
            params=self.params,
            token=self.token,
            max_message_size=self.max_message_size,
            tls=self.tls,
        )

    async def aclose(self) -> None:
        if self.call is not None and not self.call.done():
            self.call.cancel()
        if self._channel is not None:
            await self._channel.close()

    async def __aenter__(self) -> GrpcFrameClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, frame: Frame) -> None:
        try:
            await self.call.write(self.serializer.serialize(frame))
        except grpc.RpcError as exc:
            raise await refusal(self.call, exc) from None
        except asyncio.InvalidStateError as exc:
            raise TransportClosed(1006, f"call finished: {exc}") from None

    async def recv(self) -> Frame | None:
        """The next frame, or ``None`` once the server ended the stream normally."""
        try:
            message = await self.call.read()
        except grpc.RpcError as exc:
            raise await refusal(self.call, exc) from None
        if message is grpc.aio.EOF:
            return None
        return self.serializer.deserialize(message)

    async def update_settings(self, **settings: Any) -> None:
        await self.send(UpdateSettingsFrame(settings))

    async def stream(
        self, frames: Iterable[Frame] | AsyncIterable[Frame], *, end: bool = True
    ) -> AsyncIterator[Frame]:
        """Send ``frames`` (then ``EndFrame``) while yielding what comes back, to the server's EndFrame."""
        sender = asyncio.get_running_loop().create_task(
            self._send_all(frames, end), name="grpc-client.sender"
        )
        fatal: ErrorFrame | None = None
        try:
            while True:
                try:
                    frame = await self.recv()
                except SessionRefused as exc:
                    raise SessionRefused(exc.code, fatal.error if fatal is not None else exc.reason) from None
                if frame is None:
                    raise TransportClosed(1006, "stream ended before the server's EndFrame")
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
            except (asyncio.CancelledError, TransportClosed, SessionRefused):
                pass

    async def wait_accepted(self) -> bool:
        """Wait for the server to accept the session (its initial metadata); False if it refused."""
        await self.call.initial_metadata()
        return not self.call.done()

    async def _send_all(self, frames: Iterable[Frame] | AsyncIterable[Frame], end: bool) -> None:
        if not await self.wait_accepted():
            return  # refused: the reader reports the server's status
        if isinstance(frames, AsyncIterable):
            async for frame in frames:
                await self.send(frame)
        else:
            for frame in frames:
                await self.send(frame)
        if end:
            await self.send(EndFrame())
            await self.call.done_writing()
