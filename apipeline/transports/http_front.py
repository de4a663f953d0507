"""The front of the server's one TCP port: routes each connection to the WebRTC signalling or to websockets.

The HTTP server of ``apipeline serve`` is the ``websockets`` library's handshake hook, which reads GET
requests only (no method but GET, no body). WebRTC signalling needs a POST with an SDP offer in its body,
so every accepted connection first meets :class:`HttpFront` (installed through the ``create_connection``
seam of ``websockets.asyncio.server.serve``, hence also on handed-over sockets of ``--workers`` and
behind TLS, where it sees decrypted bytes). It looks at the first bytes only:

* a request line whose path is one of the signalling paths (``/webrtc/offer``, ``/webrtc/config``) is read
  here by the bounded :class:`RequestReader` (header block, body size and time limits) and answered by a
  handler, one request per connection (``Connection: close``);
* anything else — decided as soon as the first bytes cannot start such a request line, usually with the
  first packet — is handed to the websockets connection unchanged (the bytes read so far replayed), so
  ``/ws``, ``/health``, ``/ready``, ``/metrics`` and the page are byte-for-byte what they were.

:class:`RequestReader` and :func:`render_response` are sans-I/O (bytes in, request or bytes out), so
hostile inputs are tested without a socket.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from apipeline.errors import ParameterError

logger = logging.getLogger("apipeline.transports")

#: Methods the front may take for itself; every other request goes to websockets at once.
FRONT_METHODS = (b"GET", b"POST", b"OPTIONS")
MAX_REQUEST_LINE = 8192  # websockets' own limit for a line


class HttpError(Exception):
    """A request refused while it is read: the status to answer and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request: method, target (path and query as sent), lower-cased header names, body."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclass(slots=True)
class HttpResponse:
    """An answer: status, body, content type and extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, reason: str, **headers: str) -> HttpResponse:
        return cls(status, (reason.rstrip("\n") + "\n").encode(), headers=dict(headers))


def render_response(response: HttpResponse) -> bytes:
    """The response's bytes: HTTP/1.1, ``Content-Length`` and ``Connection: close`` always set."""
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    headers = {
        "Content-Length": str(len(response.body)),
        "Connection": "close",
        "Cache-Control": "no-store",
        **({"Content-Type": response.content_type} if response.body else {}),
        **response.headers,
    }
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ParameterError(f"header {name!r} carries a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def route(prefix: bytes, paths: frozenset[str]) -> bool | None:
    """Whether the request starting with ``prefix`` is for the front (a method of :data:`FRONT_METHODS`
    on one of ``paths``, the path ending at a space or ``?``): True, False, or None while the bytes so
    far cannot tell."""
    end = prefix.find(b"\n")
    line = prefix if end < 0 else prefix[:end]
    undecided = False
    for method in FRONT_METHODS:
        for path in paths:
            for stop in (b" ", b"?"):
                start = method + b" " + path.encode() + stop
                if line.startswith(start):
                    return True
                if end < 0 and start.startswith(line):
                    undecided = True
    return None if undecided else False


class RequestReader:
    """Reads one HTTP/1.1 request from bytes fed to it, within limits; sans-I/O.

    ``feed`` returns the :class:`HttpRequest` once complete (``None`` before) and raises
    :class:`HttpError` for a request it will not take: a malformed request line or header (400), a
    header block over ``max_header_bytes`` (431), a POST without ``Content-Length`` or with
    ``Transfer-Encoding`` (411), a body over ``max_body_bytes`` (413).
    """

    def __init__(self, *, max_header_bytes: int = 16 * 1024, max_body_bytes: int = 64 * 1024) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._head: tuple[str, str, dict[str, str]] | None = None
        self._length = 0

    def feed(self, data: bytes) -> HttpRequest | None:
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_header_bytes:
                    raise HttpError(431, f"request header block over {self.max_header_bytes} bytes")
                return None
            if end > self.max_header_bytes:
                raise HttpError(431, f"request header block over {self.max_header_bytes} bytes")
            self._head = self._parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        method, target, headers = self._head
        if len(self._buffer) < self._length:
            return None
        return HttpRequest(method, target, headers, bytes(self._buffer[: self._length]))

    def _parse_head(self, head: bytes) -> tuple[str, str, dict[str, str]]:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise HttpError(400, "request head is not text") from None
        request_line, *header_lines = text.split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
            raise HttpError(400, f"malformed request line {request_line[:80]!r}")
        method, target, _ = parts
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
                raise HttpError(400, f"malformed header line {line[:80]!r}")
            key = name.lower()
            if key in headers and key in ("content-length", "content-type", "host", "origin"):
                raise HttpError(400, f"header {name} given twice")
            headers[key] = value.strip()
        if "transfer-encoding" in headers:
            raise HttpError(411, "Transfer-Encoding is not accepted: send the body with a Content-Length")
        length_text = headers.get("content-length")
        if length_text is None:
            if method == "POST":
                raise HttpError(411, "a POST needs a Content-Length")
            length = 0
        elif not length_text.isdigit() or not length_text.isascii():
            raise HttpError(400, f"Content-Length {length_text[:40]!r} is not a number")
        else:
            length = int(length_text)
        if length > self.max_body_bytes:
            raise HttpError(413, f"request body of {length} bytes is over the limit of {self.max_body_bytes}")
        self._length = length
        return method, target, headers


Handler = Callable[[HttpRequest], Awaitable[tuple[HttpResponse, "asyncio.Future[None] | None"]]]


class HttpFront(asyncio.Protocol):
    """The first protocol of an accepted connection (see the module docstring).

    Args:
        make_websocket: builds the websockets connection (an asyncio protocol) to hand the connection to.
        handler: answers a request for one of ``paths``; returns the response and, when the request
            started something that outlives the connection (a WebRTC session), a future done when it ends.
        paths: the paths answered here.
        timeout: seconds for the whole request to arrive, and again for the handler to answer.

    ``connection_lost_waiter`` is done when the connection is gone and whatever it started has ended
    (the workers' load count uses it, as it uses the websockets connection's own waiter).
    """

    def __init__(
        self,
        make_websocket: Callable[[], Any],
        handler: Handler,
        paths: frozenset[str],
        *,
        timeout: float,
        max_header_bytes: int = 16 * 1024,
        max_body_bytes: int = 64 * 1024,
    ) -> None:
        self._make_websocket = make_websocket
        self._handler = handler
        self._paths = paths
        self._timeout = timeout
        self._limits = {"max_header_bytes": max_header_bytes, "max_body_bytes": max_body_bytes}
        self._loop = asyncio.get_running_loop()
        self.connection_lost_waiter: asyncio.Future[None] = self._loop.create_future()
        self.transport: Any = None
        self._prefix = b""
        self._reader: RequestReader | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._outstanding = 1  # the connection; plus what a handler started
        self._answered = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._timer = self._loop.call_later(self._timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._task is not None:
            return  # one request per connection: whatever follows is ignored
        if self._reader is None:
            self._prefix += data
            ours = route(self._prefix, self._paths)
            if ours is None:
                return
            if not ours:
                self._hand_over()
                return
            self._reader = RequestReader(**self._limits)
            data, self._prefix = self._prefix, b""
        try:
            request = self._reader.feed(data)
        except HttpError as exc:
            self._answer(HttpResponse.text(exc.status, exc.reason))
            return
        if request is not None:
            self._cancel_timer()
            self._task = self._loop.create_task(self._handle(request), name="http_front.request")

    def eof_received(self) -> bool | None:
        if self._reader is None:  # not ours: websockets answers a half request as it always has
            return self._hand_over().eof_received()  # type: ignore[no-any-return]
        if self._answered or self.transport.get_extra_info("sslcontext") is not None:
            return None  # answered already; or TLS, which cannot stay half-open: close
        return True  # a client that half-closed after its request still gets the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client left before its answer: the handler undoes what it began
        self._done()

    # -- routes --------------------------------------------------------------------------------------

    def _hand_over(self) -> Any:
        self._cancel_timer()
        connection = self._make_websocket()
        transport, buffered = self.transport, self._prefix
        self._prefix = b""
        transport.set_protocol(connection)
        connection.connection_made(transport)
        # the websockets connection now owns the transport: its waiter is this connection's end
        connection.connection_lost_waiter.add_done_callback(lambda _: self._done())
        if buffered:
            connection.data_received(buffered)
        return connection

    async def _handle(self, request: HttpRequest) -> None:
        try:
            response, started = await asyncio.wait_for(self._handler(request), self._timeout)
        except (asyncio.TimeoutError, TimeoutError):
            response, started = HttpResponse.text(503, f"no answer within {self._timeout:g} s"), None
        except Exception:
            logger.exception("signalling request %s %s failed", request.method, request.path)
            response, started = HttpResponse.text(500, "internal error while answering"), None
        if started is not None:
            self._outstanding += 1
            started.add_done_callback(lambda _: self._done())
        self._answer(response)

    def _answer(self, response: HttpResponse) -> None:
        self._cancel_timer()
        self._answered = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(render_response(response))
            self.transport.close()

    def _timed_out(self) -> None:
        self._timer = None
        if self._reader is None:  # nothing routable arrived: what websockets does at its handshake timeout
            self.transport.abort()
            return
        self._answer(HttpResponse.text(408, f"request not complete within {self._timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _done(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0 and not self.connection_lost_waiter.done():
            self.connection_lost_waiter.set_result(None)
