"""The gRPC frame service: one bidirectional stream of ``apipeline.Envelope`` messages per session.

Service ``apipeline.FrameService``, method ``Stream`` (``/apipeline.FrameService/Stream``), declared in
``frame_service.proto`` beside this module for foreign clients. Registered with a generic handler and raw
bytes in and out (no generated stubs): each message is exactly what ``ProtobufFrameSerializer`` writes, so
the sessions are the WebSocket ones (:class:`~apipeline.transports.server_session.ServerSession`):

* request metadata ``x-apipeline-query``: the same query string as ``/ws?...`` (``pitch=4&formant=1.1``,
  ``sample_rate``...); ``authorization: Bearer <token>`` when the server has a token;
* the client half-closing its stream (``done_writing``) counts as ``EndFrame``;
* a session's close code maps to a status: 1000 OK, 1001 UNAVAILABLE, 1002 INVALID_ARGUMENT,
  1008 FAILED_PRECONDITION, 1009 RESOURCE_EXHAUSTED, else INTERNAL; auth fails with UNAUTHENTICATED /
  PERMISSION_DENIED before any frame is read. The close code also travels as trailing metadata
  ``x-apipeline-close-code``.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from apipeline.errors import SessionRefused, TransportClosed
from apipeline.transports.channel import Message
from apipeline.transports.server_session import ServerSession, SessionConfig
from apipeline.transports.session import PipelineFactory, SessionQuery, check_token, parse_query
from apipeline.transports.stats import ServerStats

logger = logging.getLogger("apipeline.transports")

SERVICE = "apipeline.FrameService"
METHOD = f"/{SERVICE}/Stream"
QUERY_KEY = "x-apipeline-query"
CLOSE_CODE_KEY = "x-apipeline-close-code"

STATUS_FOR_CLOSE: dict[int, grpc.StatusCode] = {
    1000: grpc.StatusCode.OK,
    1001: grpc.StatusCode.UNAVAILABLE,
    1002: grpc.StatusCode.INVALID_ARGUMENT,
    1008: grpc.StatusCode.FAILED_PRECONDITION,
    1009: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class GrpcChannel:
    """The server side of one ``Stream`` call as a :class:`~apipeline.transports.channel.MessageChannel`."""

    def __init__(self, context: Any) -> None:
        self.context = context

    async def recv(self) -> Message | None:
        try:
            message = await self.context.read()
        except (grpc.RpcError, RuntimeError) as exc:
            raise TransportClosed(1006, f"stream broken: {exc}") from None
        if message is grpc.aio.EOF:
            return None
        return message  # type: ignore[no-any-return]

    async def send(self, message: Message) -> None:
        try:
            await self.context.write(message)
        except (grpc.RpcError, RuntimeError) as exc:
            raise TransportClosed(1006, f"stream broken: {exc}") from None


class GrpcServer:
    """Serves ``factory``'s pipelines as ``apipeline.FrameService/Stream`` on ``host:port``."""

    def __init__(
        self,
        factory: PipelineFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 50051,
        token: str | None = None,
        max_message_size: int = 1 << 20,
        session: SessionConfig | None = None,
        stats: ServerStats | None = None,
        ready: bool = False,
    ) -> None:
        self.factory = factory
        self.host = host
        self.token = token
        self.max_message_size = max_message_size
        self.session_config = session or SessionConfig()
        self.stats = stats or ServerStats()
        self.sessions: set[ServerSession] = set()
        self.ready = ready
        self._requested_port = port
        self.port: int = port
        self._server: Any = None
        self._closing = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (``port=0`` picks a free port, see :attr:`port`). Warm-up is the caller's (or
        :class:`~apipeline.transports.websocket.WebsocketServer`'s) job; set :attr:`ready` after it."""
        limit = self.max_message_size
        self._server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Stream": grpc.stream_stream_rpc_method_handler(self._stream)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"{self.host}:{self._requested_port}")
        await self._server.start()

    async def aclose(self, reason: str = "server shutting down", grace: float = 5.0) -> None:
        """End every open session (ErrorFrame, UNAVAILABLE), then stop the server."""
        if self._server is None or self._closing:
            return
        self._closing = True
        for session in list(self.sessions):
            await session.shutdown(reason)
        await self._server.stop(grace)

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _stream(self, request_iterator: Any, context: Any) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        auth = metadata.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        status = check_token(self.token, token)
        if status is not None:
            code = grpc.StatusCode.UNAUTHENTICATED if status == 401 else grpc.StatusCode.PERMISSION_DENIED
            await context.abort(code, "missing token" if status == 401 else "invalid token")
        if self._closing or not self.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server not ready or shutting down")
        try:
            query = parse_query(metadata.get(QUERY_KEY, ""))
            settings = self.factory.check_settings(dict(query.settings))
        except SessionRefused as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.reason)
        except (ValueError, TypeError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad session settings: {exc}")
        query = SessionQuery(token, query.sample_rate, query.num_channels, settings)
        session = ServerSession(
            GrpcChannel(context), self.factory, query, transport="grpc", stats=self.stats,
            config=self.session_config,
        )
        self.sessions.add(session)
        try:
            outcome = await session.run()
        finally:
            self.sessions.discard(session)
        if not outcome.server_closes:
            return
        context.set_trailing_metadata(((CLOSE_CODE_KEY, str(outcome.code)),))
        status_code = STATUS_FOR_CLOSE.get(outcome.code, grpc.StatusCode.INTERNAL)
        if status_code is not grpc.StatusCode.OK:
            await context.abort(status_code, outcome.reason)

