"""The gRPC frame service: one bidirectional stream of ``apipeline.Envelope`` messages per session.

Service ``apipeline.FrameService``, method ``Stream`` (``/apipeline.FrameService/Stream``), declared in
``frame_service.proto`` beside this module for foreign clients. Registered with a generic handler and raw
bytes in and out (no generated stubs): each message is exactly what ``ProtobufFrameSerializer`` writes, so
the sessions are the WebSocket ones (:class:`~apipeline.transports.server_session.ServerSession`):

* the server accepts a session by sending its initial metadata (``x-apipeline-session: 1``) before it
  reads anything; a client waits for it before writing (a refusal then never races its first writes);
* request metadata ``x-apipeline-query``: the same query string as ``/ws?...`` (``pitch=4&formant=1.1``,
  ``sample_rate``...); ``authorization: Bearer <token>`` when the server has a token;
* the client half-closing its stream (``done_writing``) counts as ``EndFrame``;
* a session's close code maps to a status: 1000 OK, 1001 UNAVAILABLE, 1002 INVALID_ARGUMENT,
  1008 FAILED_PRECONDITION, 1009 RESOURCE_EXHAUSTED, else INTERNAL; auth fails with UNAUTHENTICATED /
  PERMISSION_DENIED before any frame is read. The close code also travels as trailing metadata
  ``x-apipeline-close-code``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from apipeline.errors import SessionRefused, TransportClosed
from apipeline.transports.auth import Auth
from apipeline.transports.channel import Message
from apipeline.transports.server_session import ServerSession, SessionConfig
from apipeline.transports.session import (
    Admission,
    PipelineFactory,
    SessionQuery,
    check_session_settings,
    parse_query,
)
from apipeline.transports.stats import ServerStats
from apipeline.transports.websocket import url_host

logger = logging.getLogger("apipeline.transports")

SERVICE = "apipeline.FrameService"
METHOD = f"/{SERVICE}/Stream"
QUERY_KEY = "x-apipeline-query"
CLOSE_CODE_KEY = "x-apipeline-close-code"
ACCEPTED_KEY = "x-apipeline-session"
GRPC = "grpc"

STATUS_FOR_CLOSE: dict[int, grpc.StatusCode] = {
    1000: grpc.StatusCode.OK,
    1001: grpc.StatusCode.UNAVAILABLE,
    1002: grpc.StatusCode.INVALID_ARGUMENT,
    1008: grpc.StatusCode.FAILED_PRECONDITION,
    1009: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class GrpcChannel:
    """The server side of one ``Stream`` call as a :class:`~apipeline.transports.channel.MessageChannel`.

    A gRPC write cannot be abandoned halfway: a cancelled ``context.write`` leaves its batch pending and
    the next write fails (``TOO_MANY_OPERATIONS``). So each write runs as its own future, awaited through
    ``asyncio.shield``: a sender cancelled mid-write leaves it to finish, and the next write (the session's
    final ``ErrorFrame``, say) waits for it first. :meth:`drain` awaits the last one.
    """

    def __init__(self, context: Any) -> None:
        self.context = context
        self._inflight: asyncio.Future[Any] | None = None

    async def recv(self) -> Message | None:
        try:
            message = await self.context.read()
        except (grpc.RpcError, RuntimeError) as exc:
            raise TransportClosed(1006, f"stream broken: {exc}") from None
        if message is grpc.aio.EOF:
            return None
        return message  # type: ignore[no-any-return]

    async def send(self, message: Message) -> None:
        await self.drain()
        self._inflight = write = asyncio.ensure_future(self.context.write(message))
        write.add_done_callback(_retrieve)
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # grpc's cython layer raises its own types (ExecuteBatchError, ...)
            raise TransportClosed(1006, f"stream broken: {type(exc).__name__}: {exc}") from None

    async def drain(self) -> None:
        """Wait for a write still in flight (one abandoned by a cancelled sender)."""
        write, self._inflight = self._inflight, None
        if write is not None and not write.done():
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                raise
            except Exception:
                pass


def _retrieve(write: asyncio.Future[Any]) -> None:
    if not write.cancelled():
        write.exception()  # retrieved here; the awaiting sender (if any) reports it


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
        admission: Admission | None = None,
        max_sessions: int = 64,
        secret: str | None = None,
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        """``admission``: the open-session count to share with a WebSocket server beside this one (its
        :attr:`~apipeline.transports.websocket.WebsocketServer.admission`), so ``--max-sessions`` counts
        both; without one, this server has its own count of ``max_sessions``."""
        self.factory = factory
        self.admission = admission or Admission(max_sessions)
        self.auth = Auth(token, secret)
        #: ``(private key PEM, certificate chain PEM)`` for a TLS port, or None (plain)
        self.tls = tls
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
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def address(self) -> str:
        return f"{url_host(self.host)}:{self.port}"

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
        address = f"{url_host(self.host)}:{self._requested_port}"
        if self.tls is not None:
            credentials = grpc.ssl_server_credentials([self.tls])
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        await self._server.start()

    async def aclose(self, reason: str = "server shutting down", grace: float = 5.0) -> None:
        """End every open session (ErrorFrame, UNAVAILABLE), then stop the server."""
        if self._server is None or self._closing:
            return
        self._closing = True
        for session in list(self.sessions):
            await session.shutdown(reason)
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except (asyncio.TimeoutError, TimeoutError):
            logger.warning("gRPC sessions did not end within %s s; cancelling their calls", grace)
        await self._server.stop(grace)

    async def wait_idle(self) -> None:
        """Wait until no session is open."""
        await self._idle.wait()

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _stream(self, request_iterator: Any, context: Any) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        auth = metadata.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        denied = self.auth.check(token)
        if denied is not None:
            status, label, reason = denied
            code = grpc.StatusCode.UNAUTHENTICATED if status == 401 else grpc.StatusCode.PERMISSION_DENIED
            self.stats.refused(GRPC, label)
            await context.abort(code, reason)
        if self._closing or not self.ready:
            self.stats.refused(GRPC, "shutting_down" if self._closing else "not_ready")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server not ready or shutting down")
        try:
            query = parse_query(metadata.get(QUERY_KEY, ""))
            settings = check_session_settings(self.factory, query)
        except SessionRefused as exc:
            self.stats.refused(GRPC, "bad_query")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.reason)
        except (ValueError, TypeError) as exc:
            self.stats.refused(GRPC, "bad_settings")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad session settings: {exc}")
        if not self.admission.try_acquire():
            self.stats.refused(GRPC, "too_many_sessions")
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"too many sessions (max_sessions={self.admission.limit})"
            )
        try:
            await self._serve(context, token, query, settings)
        finally:
            self.admission.release()

    async def _serve(self, context: Any, token: str | None, query: SessionQuery, settings: Any) -> None:
        query = SessionQuery(token, query.sample_rate, query.num_channels, settings)
        # Accepting the session is sending the initial metadata (the WebSocket 101): clients wait for
        # it before writing, so a refusal above never races their first messages.
        await context.send_initial_metadata(((ACCEPTED_KEY, "1"),))
        channel = GrpcChannel(context)
        session = ServerSession(
            channel,
            self.factory,
            query,
            transport="grpc",
            stats=self.stats,
            config=self.session_config,
        )
        self.sessions.add(session)
        self._idle.clear()
        try:
            outcome = await session.run()
            await channel.drain()
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._idle.set()
        if not outcome.server_closes:
            return
        context.set_trailing_metadata(((CLOSE_CODE_KEY, str(outcome.code)),))
        status_code = STATUS_FOR_CLOSE.get(outcome.code, grpc.StatusCode.INTERNAL)
        if status_code is not grpc.StatusCode.OK:
            await context.abort(status_code, outcome.reason)


async def start_beside(server: Any, factory: Any, options: Any, tls: Any, session: Any) -> GrpcServer:
    """Start a :class:`GrpcServer` sharing ``server``'s factory, statistics and admission count, configured
    from the ``apipeline serve`` options (``host``, ``grpc_port``, ``token``, ``secret``,
    ``max_message_size``)."""
    grpc_server = GrpcServer(
        factory,
        host=options.host,
        port=options.grpc_port,
        token=options.token,
        secret=options.secret,
        tls=tls,
        max_message_size=options.max_message_size,
        session=session,
        stats=server.stats,
        admission=server.admission,
    )
    await grpc_server.start()
    return grpc_server
