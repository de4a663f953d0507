"""A processor whose work happens in a pipeline served elsewhere, over one gRPC frame stream.

``RemoteProcessor("host:50051")`` stands in a local pipeline for the remote one: at ``StartFrame`` it opens
a ``FrameService/Stream`` call; downstream data frames (and ``UpdateSettingsFrame``/``SyncFrame``) are
written to it in order, and what the remote pipeline sends back is pushed downstream, in the order it
arrives, by a reader task this processor owns. ``EndFrame`` is forwarded, then the local ``EndFrame``
waits until the remote's ``EndFrame`` has come back — so every output the remote produced is downstream
before the local pipeline ends. ``UpdateSettingsFrame`` is also passed on locally (local processors may
want it too).

The remote's non-fatal ``ErrorFrame``\\ s become local upstream errors; a refused or broken stream becomes a
fatal upstream error (the local task cancels: a remote stage that is gone cannot be skipped silently).
``CancelFrame`` cancels the call. gRPC flow control gives backpressure: a slow remote slows the writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from apipeline.errors import SessionRefused, TransportClosed
from apipeline.frames import (
    CancelFrame,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    StartFrame,
    SyncFrame,
    UpdateSettingsFrame,
)
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.serializers import FrameSerializer, ProtobufFrameSerializer


class RemoteProcessor(FrameProcessor):
    """Forwards frames to the pipeline served at ``address`` and brings its output back in order.

    Args:
        address: ``host:port`` of a :class:`~apipeline.transports.grpc_service.GrpcServer`.
        params: session settings (as in the query string: ``{"pitch": 4}``).
        token: the server's token (or a signed session token), if any.
        max_message_size: largest message either way.
        tls: connect with TLS: ``True`` (system roots) or the PEM certificates to trust.
    """

    def __init__(
        self,
        address: str,
        *,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        serializer: FrameSerializer | None = None,
        max_message_size: int = 1 << 22,
        tls: bool | bytes = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.tls = tls
        self.address = address
        self.params = dict(params or {})
        self.token = token
        self.serializer = serializer or ProtobufFrameSerializer()
        self.max_message_size = max_message_size
        self._channel: Any = None
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._remote_done = asyncio.Event()
        self._accepted = False
        self._lock = asyncio.Lock()

    async def start(self, frame: StartFrame) -> None:
        from apipeline.client.grpc import open_call

        await super().start(frame)
        self._channel, self._call = open_call(
            self.address,
            params=self.params,
            token=self.token,
            max_message_size=self.max_message_size,
            tls=self.tls,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"{self.name}.reader")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM or self._call is None:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, (DataFrame, SyncFrame)):
            await self._write(frame)
            return
        if isinstance(frame, UpdateSettingsFrame):
            await self._write(frame)
        elif isinstance(frame, EndFrame):
            if await self._write(frame):
                try:
                    await self._call.done_writing()
                except (grpc.RpcError, asyncio.InvalidStateError):
                    pass
            # The remote's EndFrame is back (all its output is out), or the reader has reported why not:
            # a refused or dead stream must be reported before the local EndFrame can end the run.
            await self._remote_done.wait()
        elif isinstance(frame, CancelFrame):
            await self._close()
        await self._push_locked(frame, direction)

    async def _write(self, frame: Frame) -> bool:
        if self._remote_done.is_set():
            return False
        try:
            if not self._accepted:
                await self._call.initial_metadata()  # the session is accepted (see grpc_service)
                self._accepted = True
                if self._call.done():
                    return False
            await self._call.write(self.serializer.serialize(frame))
            return True
        except (grpc.RpcError, asyncio.InvalidStateError):
            return False  # the reader sees the call's end and reports it

    async def _read(self) -> None:
        from apipeline.client.grpc import refusal

        call, decode = self._call, self.serializer.deserialize
        try:
            while True:
                try:
                    message = await call.read()
                except grpc.RpcError as exc:
                    error = await refusal(call, exc)
                    await self.push_error(
                        f"{self.name}: remote pipeline at {self.address}: {error}", fatal=True
                    )
                    return
                if message is grpc.aio.EOF:
                    await self.push_error(
                        f"{self.name}: remote pipeline at {self.address} ended without EndFrame", fatal=True
                    )
                    return
                frame = decode(message)
                if isinstance(frame, EndFrame):
                    return
                if isinstance(frame, ErrorFrame):
                    if not frame.fatal:
                        await self.push_error(f"{self.name}: remote: {frame.error}")
                    continue
                await self._push_locked(frame, FrameDirection.DOWNSTREAM)
        except (SessionRefused, TransportClosed) as exc:
            await self.push_error(f"{self.name}: {exc}", fatal=True)
        finally:
            self._remote_done.set()

    async def _push_locked(self, frame: Frame, direction: FrameDirection) -> None:
        # The reader and the frames passing through push downstream from two tasks: one at a time.
        async with self._lock:
            await self.push_frame(frame, direction)

    async def _close(self) -> None:
        call, self._call = self._call, None
        if call is not None and not call.done():
            call.cancel()
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            if not reader.done():
                reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def cleanup(self) -> None:
        await self._close()
        await super().cleanup()
