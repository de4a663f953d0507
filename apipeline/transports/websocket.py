"""The WebSocket server: one pipeline per connection at ``/ws``, plus health, readiness, metrics and the page.

Built on ``websockets`` (>= 13, its asyncio implementation): the HTTP endpoints are answered from the
handshake hook (``process_request``), so one listening socket serves everything:

* ``GET /ws?pitch=4&formant=1.1[&token=T][&sample_rate=R&channels=C]``: a session (see ``docs/protocol.md``).
  Refused at the handshake with 401 (no token) / 403 (wrong token), 400 (bad query or setting), 503 (not
  ready yet, or ``max_sessions`` reached).
* ``GET /health``: 200 while the process serves; ``GET /ready``: 200 once :meth:`PipelineFactory.warm_up`
  has returned, 503 before (or if it failed, with the error); ``GET /metrics``: Prometheus text.
* ``GET /`` and the page's scripts: the browser voice changer in ``apipeline/web``.

Limits: messages over ``max_message_size`` close the connection with 1009 (enforced by ``websockets``
before the message is buffered whole); keepalive pings every ``ping_interval`` s detect half-open
connections (no pong within ``ping_timeout``: close 1011). :meth:`WebsocketServer.aclose` ends every open
session with an ``ErrorFrame`` and close 1001, and returns only when every session task has finished.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from apipeline.errors import NotReadyError, SessionRefused, TransportClosed
from apipeline.transports.auth import Auth
from apipeline.transports.channel import Message
from apipeline.transports.server_session import ServerSession, SessionConfig
from apipeline.transports.session import (
    Admission,
    PipelineFactory,
    SessionQuery,
    check_session_settings,
    origin_allowed,
    parse_query,
)
from apipeline.transports.stats import ServerStats

if TYPE_CHECKING:
    from apipeline.transports.webrtc_signalling import WebRTCConfig, WebRTCSignalling

logger = logging.getLogger("apipeline.transports")

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
SESSION_PATH = "/ws"
WEBSOCKET = "websocket"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where and how the server listens. ``port=0`` picks a free port (see :attr:`WebsocketServer.port`)."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_message_size: int = 1 << 20
    max_sessions: int = 64
    #: seconds a client has to complete the HTTP/WebSocket handshake once connected
    handshake_timeout: float = 10.0
    #: browser origins allowed besides the server's own and loopback pages (``*``: any)
    allowed_origins: tuple[str, ...] = ()
    #: secret for signed session tokens (see :mod:`apipeline.transports.auth`); with ``token``, either
    secret: str | None = None
    #: TLS (``wss://``, ``https://``): a server-side ``ssl.SSLContext``
    ssl: Any = None
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 2.0
    shutdown_timeout: float = 5.0
    web_root: Path | None = WEB_ROOT
    session: SessionConfig = field(default_factory=SessionConfig)
    #: WebRTC signalling on the same port (``POST /webrtc/offer``; see :mod:`.webrtc_signalling`)
    webrtc: WebRTCConfig | None = None


class WebsocketChannel:
    """A ``websockets`` connection as a :class:`~apipeline.transports.channel.MessageChannel`."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def recv(self) -> Message | None:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self.connection.recv()  # type: ignore[no-any-return]
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def send(self, message: Message) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.connection.send(message)
        except ConnectionClosed as exc:
            raise _closed(exc) from None


def _closed(exc: Any) -> TransportClosed:
    """The close code that matters: the peer's, else ours (e.g. 1009, 1011), else 1006 (dropped)."""
    frame = exc.rcvd if exc.rcvd is not None else exc.sent
    if frame is None:
        return TransportClosed(1006, "connection lost without a close frame")
    return TransportClosed(frame.code, frame.reason)


def url_host(host: str) -> str:
    """``host`` as written in a URL: IPv6 addresses in brackets (``[::]``), the wildcard ``""`` as is."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def close_reason(text: str) -> str:
    """A close reason that fits the 123-byte limit of a close frame, cut on a character boundary."""
    data = text.encode()
    if len(data) <= 123:
        return text
    return data[:120].decode(errors="ignore") + "..."


class WebsocketServer:
    """Serves ``factory``'s pipelines over WebSocket: ``async with WebsocketServer(f, cfg) as server:``."""

    def __init__(
        self,
        factory: PipelineFactory,
        config: ServerConfig | None = None,
        *,
        admission: Admission | None = None,
    ) -> None:
        self.factory = factory
        self.config = config or ServerConfig()
        self.stats = ServerStats()
        #: the open-session count, shared with a GrpcServer beside this one (``--max-sessions``)
        self.admission = admission or Admission(self.config.max_sessions)
        self.auth = Auth(self.config.token, self.config.secret)
        self.sessions: set[ServerSession] = set()
        self.ready = False
        self.warm_up_error: str | None = None
        self._server: Any = None
        self._warm_up: asyncio.Task[None] | None = None
        self._closing = False
        self._static = _static_files(self.config.web_root)
        self._idle = asyncio.Event()
        self._idle.set()
        #: set by a worker of ``apipeline serve --workers N``: ``all_ready()`` for ``/ready`` and
        #: ``render_metrics(stats)`` for ``/metrics`` over every worker (see :mod:`.workers`)
        self.cluster: Any = None
        self._handover = False
        self._adopted = 0
        #: the WebRTC signalling and its sessions, when ``config.webrtc`` is set
        self.webrtc: WebRTCSignalling | None = None

    async def adopt(self, sock: Any) -> Any:
        """Serve one connection accepted elsewhere (handover mode): returns the websockets connection."""
        loop = asyncio.get_running_loop()
        factory = self._server.server._protocol_factory  # the websockets protocol factory of this server
        cfg = self.config
        extra: dict[str, Any] = {}
        if cfg.ssl is not None:
            extra = {"ssl": cfg.ssl, "ssl_handshake_timeout": cfg.handshake_timeout}
        _, connection = await loop.connect_accepted_socket(factory, sock, **extra)
        self._adopted += 1
        return connection

    @property
    def port(self) -> int:
        """The bound port (the real one when the config asked for port 0)."""
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """The session URL (``ws://`` or, with TLS, ``wss://``); an IPv6 host is bracketed."""
        scheme = "wss" if self.config.ssl is not None else "ws"
        return f"{scheme}://{url_host(self.config.host)}:{self.port}{SESSION_PATH}"

    @property
    def page_url(self) -> str:
        """The browser page's URL (``http://`` or ``https://``)."""
        scheme = "https" if self.config.ssl is not None else "http"
        return f"{scheme}://{url_host(self.config.host)}:{self.port}/"

    async def start(self, *, handover: bool = False) -> None:
        """Listen, and start warming the factory up (``/ready`` turns 200 when that is done).

        ``handover``: listen on nothing; connections accepted elsewhere (the supervisor of
        ``--workers``) are given to :meth:`adopt`.
        """
        from websockets.asyncio.server import serve

        cfg = self.config
        where: dict[str, Any] = {"host": cfg.host, "port": cfg.port}
        if handover:
            # websockets needs a listening socket to build its server on (and answers 503 while that
            # server is not serving): an abstract Unix address private to this process.
            import os
            import secrets
            import socket

            dummy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            dummy.bind(f"\0apipeline-{os.getpid()}-{secrets.token_hex(4)}")
            dummy.listen(1)
            where = {"sock": dummy}
            self._handover = True
        if cfg.webrtc is not None:  # a front on every connection routes the signalling paths
            from websockets.asyncio.server import ServerConnection

            from apipeline.transports.webrtc_signalling import WebRTCSignalling

            signalling = self.webrtc = WebRTCSignalling(self, cfg.webrtc)
            where["create_connection"] = lambda *a, **k: signalling.front(lambda: ServerConnection(*a, **k))
        self._server = await serve(
            self._handle,
            **where,
            process_request=self._process_request,
            compression=None,  # audio does not deflate; compression would cost CPU per message
            max_size=cfg.max_message_size,
            open_timeout=cfg.handshake_timeout,
            ssl=cfg.ssl,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            close_timeout=cfg.close_timeout,
            logger=logging.getLogger("apipeline.transports.websockets"),
        )
        self._warm_up = asyncio.get_running_loop().create_task(self._do_warm_up(), name="server.warm_up")

    async def wait_ready(self) -> None:
        """Wait for the warm-up; raises its error if it failed."""
        if self._warm_up is not None:
            await asyncio.shield(self._warm_up)
        if self.warm_up_error is not None:
            raise NotReadyError(f"warm-up failed: {self.warm_up_error}")

    async def _do_warm_up(self) -> None:
        try:
            await self.factory.warm_up()
        except Exception as exc:
            self.warm_up_error = f"{type(exc).__name__}: {exc}"
            logger.error("warm-up failed: %s", self.warm_up_error)
            return
        self.ready = True

    async def wait_idle(self) -> None:
        """Wait until no session is open (returns at once when none is)."""
        await self._idle.wait()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def aclose(self, reason: str = "server shutting down") -> None:
        """Stop accepting, end every open session (ErrorFrame, close 1001), wait for all of them."""
        if self._server is None or self._closing:
            return
        self._closing = True
        self._server.close(close_connections=False)
        if self.webrtc is not None:
            await self.webrtc.aclose(reason)
        for session in list(self.sessions):
            await session.shutdown(reason)
        try:
            await asyncio.wait_for(self._server.wait_closed(), self.config.shutdown_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            logger.warning(
                "sessions did not end within %s s; closing their connections", self.config.shutdown_timeout
            )
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        warm, self._warm_up = self._warm_up, None
        if warm is not None and not warm.done():
            warm.cancel()
            try:
                await warm
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> WebsocketServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- HTTP --------------------------------------------------------------------------------------

    def _process_request(self, connection: Any, request: Any) -> Any:
        url = urlsplit(request.path)
        path = url.path
        if path == SESSION_PATH:
            return self._admit(connection, request, url.query)
        if path == "/health":
            return connection.respond(200, "ok\n")
        if path == "/ready":
            if self.ready and (self.cluster is None or self.cluster.all_ready()):
                return connection.respond(200, "ready\n")
            waiting = self.warm_up_error or ("warming up" if not self.ready else "other workers warming up")
            return connection.respond(503, f"not ready: {waiting}\n")
        if path == "/info":  # which app is served, and its session parameters (the page's mode)
            import json

            from apipeline.transports.factories import app_info

            response = connection.respond(200, json.dumps(app_info(self.factory)) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path == "/metrics":
            text = self.stats.render() if self.cluster is None else self.cluster.render_metrics(self.stats)
            response = connection.respond(200, text)
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        static = self._static.get("/index.html" if path == "/" else path)
        if static is not None:
            body, content_type = static
            response = connection.respond(200, body)
            response.headers["Content-Type"] = content_type
            response.headers["Cache-Control"] = "no-cache"
            return response
        return connection.respond(404, f"no such endpoint: {path}\n")

    def _admit(self, connection: Any, request: Any, query_string: str) -> Any:
        refuse = self._refuse
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.headers.get("Host"), self.config.allowed_origins):
            return refuse(connection, 403, "origin", f"origin {origin!r} is not allowed (--allowed-origin)")
        try:
            query = parse_query(query_string)
        except SessionRefused as exc:
            return refuse(connection, 400, "bad_query", exc.reason)
        denied = self.auth.check(query.token)
        if denied is not None:
            return refuse(connection, *denied)
        if self._closing:
            return refuse(connection, 503, "shutting_down", "server shutting down")
        if not self.ready:
            return refuse(connection, 503, "not_ready", f"not ready: {self.warm_up_error or 'warming up'}")
        try:
            settings = check_session_settings(self.factory, query)
        except (ValueError, TypeError) as exc:
            return refuse(connection, 400, "bad_settings", f"bad session settings: {exc}")
        if not self.admission.try_acquire():
            return refuse(
                connection,
                503,
                "too_many_sessions",
                f"too many sessions (max_sessions={self.admission.limit})",
            )
        # The slot is held until the TCP connection is gone, whether or not the handshake completes.
        connection.connection_lost_waiter.add_done_callback(lambda _: self.admission.release())
        connection.apipeline_query = SessionQuery(
            query.token, query.sample_rate, query.num_channels, settings
        )
        return None

    def _refuse(self, connection: Any, status: int, reason: str, text: str) -> Any:
        self.stats.refused(WEBSOCKET, reason)
        return connection.respond(status, text + "\n")

    # -- sessions ----------------------------------------------------------------------------------

    async def _handle(self, connection: Any) -> None:
        query: SessionQuery = connection.apipeline_query
        session = ServerSession(
            WebsocketChannel(connection),
            self.factory,
            query,
            transport="websocket",
            stats=self.stats,
            config=self.config.session,
        )
        self.sessions.add(session)
        self._idle.clear()
        try:
            outcome = await session.run()
            if outcome.server_closes:
                await self._close(connection, outcome.code, outcome.reason)
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._idle.set()

    async def _close(self, connection: Any, code: int, reason: str) -> None:
        """Close with ``code``; a client that reads nothing cannot even take the close frame, so past
        ``close_timeout`` the TCP connection is aborted instead."""
        try:
            await asyncio.wait_for(connection.close(code, close_reason(reason)), self.config.close_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            connection.transport.abort()


def _static_files(root: Path | None) -> dict[str, tuple[str, str]]:
    """The page's files, read once: a fixed table, so no request path ever reaches the file system."""
    if root is None or not root.is_dir():
        return {}
    files: dict[str, tuple[str, str]] = {}
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix in (".html", ".js", ".css"):
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix == ".js":
                content_type = "text/javascript"
            files["/" + path.name] = (path.read_text(encoding="utf-8"), content_type + "; charset=utf-8")
    return files
