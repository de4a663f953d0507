"""WebRTC signalling in ``apipeline serve``: ``POST /webrtc/offer`` answers an SDP offer with a session.

The endpoint sits on the server's one port (routed there by :mod:`apipeline.transports.http_front`) and
admits a session exactly as ``/ws`` does, in the same order and with the same answers: the ``Origin``
rule (403), the query string (same keys: ``token``, ``sample_rate``, ``channels``, session settings;
400), the token or signed token (401/403), shutdown and readiness (503), the factory's settings schema
(400), then one slot of the server's :class:`~apipeline.transports.session.Admission` (503 when all
``--max-sessions`` are taken, counted with the WebSocket and gRPC sessions and, with ``--workers``,
those of every worker). The pipeline comes from the same :class:`PipelineFactory` as ``/ws`` (the
voice changer, a graph, the chatbot), built for the session's rate, mono.

``GET /webrtc/config`` tells a page what it needs before its offer: the ICE servers (``[]``: host
candidates only), the data channel's label and the default session rate. Refusals are plain text, one
line, as at the ``/ws`` handshake; the answer is JSON. See ``docs/protocol.md`` ("WebRTC").
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apipeline.errors import ApipelineError, ConfigurationError, SerializationError, SessionRefused
from apipeline.transports.http_front import HttpFront, HttpRequest, HttpResponse
from apipeline.transports.session import (
    SessionSpec,
    check_session_settings,
    live_settings_check,
    origin_allowed,
    parse_query,
)
from apipeline.transports.webrtc import (
    DATA_CHANNEL,
    JITTER_FRAMES,
    OPUS_RATE,
    WebRTCSession,
    check_ice_servers,
    check_jitter_frames,
)

if TYPE_CHECKING:
    from apipeline.transports.websocket import WebsocketServer

logger = logging.getLogger("apipeline.transports")

OFFER_PATH = "/webrtc/offer"
CONFIG_PATH = "/webrtc/config"
PATHS = frozenset({OFFER_PATH, CONFIG_PATH})
WEBRTC = "webrtc"


@dataclass(frozen=True, slots=True)
class WebRTCConfig:
    """The WebRTC side of a server (``ServerConfig.webrtc``; ``None`` there: no WebRTC endpoint).

    ``ice_servers``: STUN/TURN URLs given to the server's peer connections and to pages through
    ``/webrtc/config`` (empty: host candidates only, enough on a LAN or loopback); ``ice_username`` and
    ``ice_credential`` go with the ``turn:``/``turns:`` ones. ``peer_timeout``: seconds without audio
    from a peer before its session ends (a closed tab or a lost network; ICE consent alone takes ~30 s).
    ``sample_rate``: the session's pipeline rate when the offer's query string gives none.
    """

    ice_servers: tuple[str, ...] = ()
    ice_username: str | None = None
    ice_credential: str | None = None
    peer_timeout: float = 5.0
    #: seconds from the answer to the peer's first audio (ICE + DTLS), else the session ends
    connect_timeout: float = 10.0
    sample_rate: int = OPUS_RATE
    max_offer_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024
    #: seconds of converted audio the outgoing track may hold (oldest dropped beyond)
    max_output_s: float = 2.0
    #: later Opus frames the server's receiver waits for before decoding one (aiortc's own: 4 = 80 ms)
    jitter_frames: int = JITTER_FRAMES

    def __post_init__(self) -> None:
        check_ice_servers(self.ice_servers)
        check_jitter_frames(self.jitter_frames)
        turn = any(u.split(":", 1)[0] in ("turn", "turns") for u in self.ice_servers)
        if (self.ice_username is None) != (self.ice_credential is None):
            raise ConfigurationError(
                "--ice-username and --ice-credential go together (give both, or neither)"
            )
        if turn and self.ice_username is None:
            raise ConfigurationError(
                "a turn:/turns: ICE server needs --ice-username and --ice-credential (TURN authenticates)"
            )
        if not self.peer_timeout > 0:
            raise ConfigurationError(f"the WebRTC peer timeout must be > 0 s, got {self.peer_timeout}")
        if not self.connect_timeout > 0:
            raise ConfigurationError(f"the WebRTC connect timeout must be > 0 s, got {self.connect_timeout}")
        if not 8000 <= self.sample_rate <= 192000:
            raise ConfigurationError(
                f"the WebRTC session rate must be 8000..192000 Hz, got {self.sample_rate}"
            )
        for name in ("max_offer_bytes", "max_header_bytes"):
            if getattr(self, name) < 1024:
                raise ConfigurationError(f"WebRTCConfig.{name} must be >= 1024, got {getattr(self, name)}")

    def ice_json(self) -> list[dict[str, str]]:
        """The ICE servers as ``RTCConfiguration.iceServers`` wants them in a browser."""
        out = []
        for url in self.ice_servers:
            entry = {"urls": url}
            if url.split(":", 1)[0] in ("turn", "turns") and self.ice_username is not None:
                entry["username"] = self.ice_username
                entry["credential"] = self.ice_credential or ""
            out.append(entry)
        return out


class WebRTCSignalling:
    """Answers the signalling paths for ``server`` and owns the WebRTC sessions it starts."""

    def __init__(self, server: WebsocketServer, config: WebRTCConfig) -> None:
        self.server = server
        self.config = config
        self.sessions: set[WebRTCSession] = set()
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def front(self, make_websocket: Any) -> HttpFront:
        """The protocol of one accepted connection (see :mod:`.http_front`)."""
        return HttpFront(
            make_websocket,
            self.handle,
            PATHS,
            timeout=self.server.config.handshake_timeout,
            max_header_bytes=self.config.max_header_bytes,
            max_body_bytes=self.config.max_offer_bytes,
        )

    async def handle(self, request: HttpRequest) -> tuple[HttpResponse, asyncio.Future[None] | None]:
        """The answer to one request on a signalling path, and the started session's end (if any)."""
        origin = request.headers.get("origin")
        cors = self._cors(origin)
        if request.method == "OPTIONS":  # a cross-origin page's preflight
            if not origin_allowed(origin, request.headers.get("host"), self.server.config.allowed_origins):
                return self._refuse(403, "origin", _origin_reason(origin)), None
            return HttpResponse(204, headers={**cors, **_PREFLIGHT}), None
        wanted = "POST" if request.path == OFFER_PATH else "GET"
        if request.method != wanted:
            response = HttpResponse.text(405, f"{request.path} takes {wanted}", Allow=f"{wanted}, OPTIONS")
            return response, None
        response, started = await self._answer(request, origin)
        response.headers.update(cors)
        return response, started

    async def _answer(
        self, request: HttpRequest, origin: str | None
    ) -> tuple[HttpResponse, asyncio.Future[None] | None]:
        server = self.server
        if not origin_allowed(origin, request.headers.get("host"), server.config.allowed_origins):
            return self._refuse(403, "origin", _origin_reason(origin)), None
        try:
            query = parse_query(request.query)
        except SessionRefused as exc:
            return self._refuse(400, "bad_query", exc.reason), None
        denied = server.auth.check(query.token or _bearer(request.headers.get("authorization")))
        if denied is not None:
            status, label, reason = denied
            return self._refuse(status, label, reason), None
        if request.path == CONFIG_PATH:
            return self._config_response(), None
        if self.closing:
            return self._refuse(503, "shutting_down", "server shutting down"), None
        if not server.ready:
            return self._refuse(503, "not_ready", f"not ready: {server.warm_up_error or 'warming up'}"), None
        try:
            settings = check_session_settings(server.factory, query)
        except (ValueError, TypeError) as exc:
            return self._refuse(400, "bad_settings", f"bad session settings: {exc}"), None
        if query.num_channels not in (None, 1):
            return self._refuse(
                400, "bad_query", f"channels={query.num_channels}: a WebRTC session's pipeline is mono"
            ), None
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            reason = f"the offer must be application/json, got {content_type or 'no Content-Type'!r}"
            return self._refuse(415, "bad_offer", reason), None
        try:
            sdp = _offer_sdp(request.body)
        except ValueError as exc:
            return self._refuse(400, "bad_offer", str(exc)), None
        if not server.admission.try_acquire():
            reason = f"too many sessions (max_sessions={server.admission.limit})"
            return self._refuse(503, "too_many_sessions", reason), None
        rate = query.sample_rate or self.config.sample_rate
        return await self._start(sdp, rate, settings)

    async def _start(
        self, sdp: str, rate: int, settings: dict[str, Any]
    ) -> tuple[HttpResponse, asyncio.Future[None] | None]:
        """Build the pipeline and answer the offer; the admission slot is held until the session ends."""
        server = self.server
        session_id = uuid.uuid4().hex[:12]
        session: WebRTCSession | None = None
        started = False
        try:
            try:
                user = server.factory.build(SessionSpec(session_id, rate, 1, dict(settings)))
            except (ApipelineError, ValueError, TypeError) as exc:
                return self._refuse(400, "bad_format", f"cannot serve this session: {exc}"), None
            from apipeline.pipeline import PipelineParams

            cfg = self.config
            session = WebRTCSession(
                [user],
                sample_rate=rate,
                ice_servers=cfg.ice_servers,
                ice_username=cfg.ice_username,
                ice_credential=cfg.ice_credential,
                peer_timeout=cfg.peer_timeout,
                connect_timeout=cfg.connect_timeout,
                max_output_s=cfg.max_output_s,
                jitter_frames=cfg.jitter_frames,
                params=PipelineParams(
                    allow_interruptions=True,
                    enable_metrics=server.config.session.enable_metrics,
                    end_timeout=server.config.session.end_timeout,
                ),
                check_settings=live_settings_check(server.factory),
                name=f"webrtc-{session_id}",
            )
            try:
                answer = await session.accept(sdp)
            except SessionRefused as exc:  # accept() has closed the connection
                return self._refuse(400, "bad_offer", exc.reason), None
            if self.closing:  # shutdown began while the offer was being answered
                await session.close()
                return self._refuse(503, "shutting_down", "server shutting down"), None
            started = True
        finally:
            if not started:  # refused, failed or cancelled (the client left): the slot goes back
                server.admission.release()
                if session is not None:
                    await session.close()
        self.sessions.add(session)  # from here on, shutdown() reaches it
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._run(session, ended), name=f"webrtc-{session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        body = json.dumps({"type": "answer", "sdp": answer, "session_id": session_id}).encode()
        return HttpResponse(200, body, "application/json"), ended

    async def _run(self, session: WebRTCSession, ended: asyncio.Future[None]) -> None:
        key, _ = self.server.stats.session_started(WEBRTC)
        outcome = "error"
        try:
            task = await session.run()
            if session.shutdown_reason is not None:
                outcome = "shutdown"
            elif task.errors:
                outcome = "error"
            elif session.input is not None and (session.input.ended_by or "").startswith("no audio"):
                outcome = "client_gone"
            else:
                outcome = "ok"
        except Exception:
            logger.exception("%s failed", session.name)
        finally:
            self.sessions.discard(session)
            self.server.stats.session_ended(key, outcome)
            self.server.admission.release()
            if not ended.done():
                ended.set_result(None)

    async def aclose(self, reason: str = "server shutting down") -> None:
        """Refuse new offers, end every session (a fatal ErrorFrame to each peer), wait for all of them."""
        self.closing = True
        for session in list(self.sessions):
            await session.shutdown(reason)
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.server.config.shutdown_timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _config_response(self) -> HttpResponse:
        body = {
            "offer": OFFER_PATH,
            "iceServers": self.config.ice_json(),
            "dataChannel": DATA_CHANNEL,
            "sampleRate": self.config.sample_rate,
        }
        return HttpResponse(200, json.dumps(body).encode(), "application/json")

    def _cors(self, origin: str | None) -> dict[str, str]:
        """``Access-Control-Allow-Origin`` for a page from another allowed origin (nothing otherwise)."""
        if origin is None:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def _refuse(self, status: int, label: str, reason: str) -> HttpResponse:
        self.server.stats.refused(WEBRTC, label)
        return HttpResponse.text(status, reason)


_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Access-Control-Max-Age": "600",
}


def _origin_reason(origin: str | None) -> str:
    return f"origin {origin!r} is not allowed (--allowed-origin)"


def _bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer T`` (the gRPC path's form), or None."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _offer_sdp(body: bytes) -> str:
    """The SDP of a ``{"type": "offer", "sdp": "..."}`` body; ValueError saying what is wrong."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SerializationError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SerializationError('the body must be a JSON object {"type": "offer", "sdp": "..."}')
    if data.get("type") != "offer":
        raise SerializationError(f'"type" must be "offer", got {data.get("type")!r}')
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise SerializationError('"sdp" must be the offer\'s SDP text (starting with "v=0")')
    check_sdp_lines(sdp)
    return sdp


_SDP_LINE = re.compile(r"^[a-z]=")
_MEDIA_LINE = re.compile(r"^m=[a-z]+ [0-9]+(/[0-9]+)? [A-Za-z/]+( [^ ]+)+$")


def check_sdp_lines(sdp: str) -> None:
    """The SDP's lines have the ``x=...`` shape, its ``m=`` lines ``m=<media> <port> <proto> <formats>``
    (RFC 8866), and one is audio; ValueError naming the first line that is not. (aiortc's own parser
    fails on these with bare ``assert`` s, which say nothing.)"""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    for number, line in enumerate(lines, 1):
        if not _SDP_LINE.match(line) or (line.startswith("m=") and not _MEDIA_LINE.match(line)):
            expected = "m=<media> <port> <proto> <formats>" if line.startswith("m=") else "<letter>=<value>"
            raise SerializationError(f"SDP line {number} {line[:60]!r} is not {expected}")
    if not any(line.startswith("m=audio ") for line in lines):
        raise SerializationError("the offer is not an SDP offer with an audio section (m=audio)")
