"""What a session is, before any socket: close codes, query parameters, the spec a pipeline is built from.

Pure and synchronous (no I/O, no event loop), so the rules of the wire contract are testable alone:

* :class:`CloseCode`: the WebSocket close codes the server uses, and what each means here.
* :func:`parse_query`: the query string of ``/ws?pitch=4&formant=1.1&token=...`` split into the reserved
  keys (``token``, ``sample_rate``, ``channels``) and typed session settings.
* :class:`SessionSpec`: what a :class:`PipelineFactory` needs to build one session's pipeline.
* :class:`PipelineFactory`: the seam between the servers and what they serve (the voice changer, a graph
  file, or anything a caller passes in).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from apipeline.errors import ParameterError, SessionRefused
from apipeline.params import ParamSchema, settings_schema_of
from apipeline.processors.frame_processor import FrameProcessor

#: Query keys the server itself reads; every other key is a session setting.
RESERVED_KEYS = frozenset({"token", "sample_rate", "channels"})


class CloseCode(enum.IntEnum):
    """WebSocket close codes (RFC 6455, section 7.4.1) as this server uses them."""

    NORMAL = 1000  #: the stream ended: the client sent EndFrame and got everything back, then EndFrame
    GOING_AWAY = 1001  #: the server is shutting down with the session open
    PROTOCOL_ERROR = 1002  #: a message that does not decode to a frame (or a text message)
    ABNORMAL = 1006  #: the connection dropped without a close frame (never sent, only observed)
    POLICY_VIOLATION = 1008  #: a frame the protocol refuses, audio in the wrong format, a stalled client
    MESSAGE_TOO_BIG = 1009  #: a message larger than the server's limit
    INTERNAL_ERROR = 1011  #: the server failed (or a keepalive ping went unanswered)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What one session's pipeline is built for.

    ``sample_rate`` and ``num_channels`` are those of the session's audio (from the query string or the
    first ``AudioRawFrame``); ``None`` when the factory does not need them. ``settings`` are the typed
    query parameters other than the reserved ones.
    """

    session_id: str
    sample_rate: int | None = None
    num_channels: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class PipelineFactory(Protocol):
    """Builds one pipeline per session; the servers know nothing else about what they serve."""

    #: True when :meth:`build` needs the session's sample rate and channel count (known from the query
    #: string or, failing that, from the first ``AudioRawFrame`` the client sends).
    needs_audio_format: bool

    def check_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Validate session settings at the handshake; a bad one raises a ValueError (best a
        :class:`~apipeline.errors.ParameterError`) or a TypeError naming it."""
        ...

    def build(self, spec: SessionSpec) -> FrameProcessor:
        """A fresh pipeline for one session; raise ApipelineError/ValueError to refuse the format.

        A factory whose ``build`` is slow and safe to run off the event loop (no loop calls, its own
        objects only) sets a class attribute ``build_in_thread = True``: the session then builds in a
        thread, so the other sessions of the process keep flowing meanwhile (see :func:`build_pipeline`).
        """
        ...

    async def warm_up(self) -> None:
        """Load models and run them once; the server answers ``/ready`` with 200 after this returns."""
        ...


async def build_pipeline(factory: PipelineFactory, spec: SessionSpec) -> FrameProcessor:
    """``factory.build(spec)``, in a thread when the factory says ``build_in_thread``.

    Measured (``benchmarks/serve_load.py --trace``): building a voice-changer session took 90–180 ms,
    almost all of it onnxruntime creating the VAD's inference session, and ran on the event loop, so
    every session already open in that process stalled that long whenever another one started (the
    first outputs of simultaneous starts were the slowest 1 %). onnxruntime releases the GIL there: in
    a thread, the loop's lag during a build stays ~12 ms.
    """
    if getattr(factory, "build_in_thread", False):
        return await asyncio.get_running_loop().run_in_executor(_builder(), factory.build, spec)
    return factory.build(spec)


_BUILDER: concurrent.futures.ThreadPoolExecutor | None = None


def _builder() -> concurrent.futures.ThreadPoolExecutor:
    """One build thread per process: builds queue behind each other off the loop. (The loop's default
    executor runs up to cores + 4 threads, each allocating in its own malloc arena: a 1.5-minute soak
    ended at 347 MB resident over the processes with it, 318 MB with this one thread.)"""
    global _BUILDER
    if _BUILDER is None:
        _BUILDER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="apipeline-build")
    return _BUILDER


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """A parsed query string: the reserved keys and the session settings."""

    token: str | None = None
    sample_rate: int | None = None
    num_channels: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: the settings as the client wrote them (text), for factories that parse with a ParamSchema
    text: dict[str, str] = field(default_factory=dict)


def check_session_settings(factory: PipelineFactory, query: SessionQuery) -> dict[str, Any]:
    """The session settings of ``query`` checked for ``factory``, or ParameterError/ValueError/TypeError.

    A factory that declares a ``settings_schema`` (:class:`~apipeline.params.ParamSchema`) gets the text
    values parsed by it (unknown names, wrong types and values out of range are refused, with the
    closest name suggested), then its own :meth:`PipelineFactory.check_settings` (cross-field rules).
    """
    schema = settings_schema_of(factory)
    settings = schema.check(query.text, from_text=True) if schema is not None else dict(query.settings)
    return factory.check_settings(settings)


def live_settings_check(factory: PipelineFactory) -> Any:
    """``check(settings) -> settings`` for each mid-stream ``UpdateSettingsFrame`` (live parameters only), or
    ``None`` when the factory declares no schema (each processor then checks what reaches it)."""
    schema: ParamSchema | None = settings_schema_of(factory)
    if schema is None:
        return None

    def check(settings: dict[str, Any]) -> dict[str, Any]:
        return schema.check(settings, live=True)

    return check


def parse_value(text: str) -> Any:
    """A query value typed the way a user means it: int, then float, then true/false, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise ParameterError(f"{text!r} is not a finite number")
    return value


def parse_query(query: str | Mapping[str, str]) -> SessionQuery:
    """Split ``"pitch=4&formant=1.1&token=T"`` (or a mapping) into reserved keys and typed settings.

    Raises SessionRefused (code 1008) for a repeated key, a non-positive ``sample_rate``/``channels``
    or a non-finite number.
    """
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query.items())
    seen: set[str] = set()
    settings: dict[str, Any] = {}
    text: dict[str, str] = {}
    token: str | None = None
    rate: int | None = None
    channels: int | None = None
    for key, raw in pairs:
        if key in seen:
            raise SessionRefused(CloseCode.POLICY_VIOLATION, f"query parameter {key!r} given twice")
        seen.add(key)
        if key == "token":
            token = raw
            continue
        try:
            value = parse_value(raw)
        except ValueError as exc:
            raise SessionRefused(CloseCode.POLICY_VIOLATION, f"query parameter {key}: {exc}") from None
        if key in ("sample_rate", "channels"):
            if type(value) is not int or value <= 0:
                raise SessionRefused(
                    CloseCode.POLICY_VIOLATION,
                    f"query parameter {key} must be a positive integer, got {raw!r}",
                )
            if key == "sample_rate":
                rate = value
            else:
                channels = value
            continue
        settings[key] = value
        text[key] = raw
    if rate is not None and channels is None:
        channels = 1  # a rate without a channel count is mono (the pipeline is built before any audio)
    return SessionQuery(token, rate, channels, settings, text)


class Admission:
    """One count of open sessions shared by every transport of a server (``--max-sessions``)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ParameterError(f"max_sessions must be >= 1, got {limit}")
        self.limit = limit
        self.count = 0
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    def try_acquire(self) -> bool:
        """Take a slot; False when all ``limit`` are taken."""
        if self.count >= self.limit:
            return False
        self.count += 1
        self._empty.clear()
        return True

    def release(self) -> None:
        self.count = max(0, self.count - 1)
        if self.count == 0:
            self._empty.set()

    async def wait_empty(self) -> None:
        """Wait until every slot is free (every connection that held one is gone)."""
        await self._empty.wait()


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str] = ()) -> bool:
    """Whether a browser page at ``origin`` may open a session (the ``Origin`` header check).

    Allowed: no ``Origin`` at all (not a browser: browsers always send it on WebSocket handshakes), the
    server's own origin (same host and port as the ``Host`` header), any page on a loopback host
    (``localhost``, ``127.0.0.1``, ``[::1]``), and the ``allowed`` origins (``scheme://host[:port]``;
    ``*`` allows every origin). Anything else, e.g. a page on ``http://evil.example`` the user happens
    to visit, is refused: it could otherwise use the user's local server.
    """
    if origin is None:
        return True
    allowed = tuple(allowed)
    if "*" in allowed:
        return True
    normal = origin.strip().rstrip("/").lower()
    if normal in (a.rstrip("/").lower() for a in allowed):
        return True
    try:
        parts = urlsplit(normal)
        origin_host = parts.hostname
        origin_netloc = parts.netloc
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not origin_host:
        return False
    if origin_host in LOOPBACK_HOSTS:
        return True
    return host is not None and origin_netloc == host.strip().lower()


def check_token(expected: str | None, given: str | None) -> int | None:
    """``None`` when the session may proceed, else the HTTP status to refuse it with (401 or 403).

    Constant-time comparison, so the answer time does not leak how much of a guess was right.
    """
    if expected is None:
        return None
    if not given:
        return 401
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return 403
    return None
