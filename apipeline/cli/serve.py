"""``apipeline serve [GRAPH]``: serve a pipeline per connection over WebSocket (and optionally gRPC).

With no GRAPH it serves the voice changer. The browser page is at ``http://HOST:PORT/``, sessions at
``ws://HOST:PORT/ws?pitch=4&formant=1.1``, and ``/health``, ``/ready``, ``/metrics`` beside them (see
``docs/protocol.md``). Ctrl-C or SIGTERM ends every open session with close 1001 and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any
from urllib.parse import urlsplit

from apipeline.errors import ApipelineError, ConfigurationError
from apipeline.transports.server_session import SessionConfig
from apipeline.transports.session import parse_value

logger = logging.getLogger("apipeline.serve")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a graph (default: the voice changer) over WebSocket/gRPC, with a browser page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("graph", nargs="?", help="graph file (YAML/JSON); default: the voice changer")
    p.add_argument(
        "--app",
        choices=("voice-changer", "chatbot"),
        default="voice-changer",
        help="what to serve with no GRAPH: the voice changer (default), or the voice chatbot (one "
        "conversation per session; engine options below, as for `apipeline chat`; --workers defaults to "
        "1: each worker process loads its own LLM)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="WebSocket/HTTP port (default 8765)")
    p.add_argument(
        "--grpc-port", type=int, default=None, help="also serve the gRPC frame stream on this port"
    )
    p.add_argument(
        "--token",
        default=os.environ.get("APIPELINE_TOKEN"),
        help="require ?token=T (gRPC: authorization: Bearer T); default $APIPELINE_TOKEN, else none",
    )
    p.add_argument(
        "--secret",
        default=os.environ.get("APIPELINE_SECRET"),
        help="accept short-lived signed session tokens (HMAC over session id and expiry; see "
        "apipeline.transports.auth.make_session_token); default $APIPELINE_SECRET. With --token, either",
    )
    p.add_argument(
        "--print-token",
        type=float,
        default=None,
        metavar="TTL_S",
        help="print a session token signed with --secret, valid TTL_S seconds, and exit (for scripts; an "
        "application backend mints them with apipeline.transports.auth.make_session_token)",
    )
    p.add_argument("--certfile", default=None, help="TLS certificate chain (PEM): serve https/wss")
    p.add_argument("--keyfile", default=None, help="TLS private key (PEM) of --certfile")
    p.add_argument(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed to open sessions (scheme://host[:port], or *), besides the server's "
        "own and loopback pages; repeatable",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes behind the one port (default: the number of cores); sessions go to the "
        "least-loaded one",
    )
    p.add_argument(
        "--max-sessions", type=int, default=64, help="open sessions over all transports and workers"
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=20.0,
        help="s without a message from a client before its session is closed (1008); 0: never",
    )
    p.add_argument(
        "--handshake-timeout", type=float, default=10.0, help="s a connection has to complete its handshake"
    )
    p.add_argument(
        "--input-rate",
        type=float,
        default=1.5,
        help="pace each client's audio to this multiple of real time after a 3 s burst (the socket is not "
        "read meanwhile); 0: unpaced",
    )
    p.add_argument("--max-message-size", type=int, default=1 << 20, help="bytes; larger messages close 1009")
    p.add_argument("--send-queue", type=int, default=64, help="frames queued per session towards its client")
    p.add_argument(
        "--send-policy",
        choices=("block", "drop_oldest"),
        default="block",
        help="when a client's send queue is full: slow its pipeline down (lossless; the default), or drop "
        "its oldest audio (live-only use: late audio is worthless)",
    )
    p.add_argument(
        "--send-timeout", type=float, default=10.0, help="s before a client that reads nothing is cut off"
    )
    p.add_argument("--ping-interval", type=float, default=20.0, help="keepalive ping period, s (0: off)")
    p.add_argument("--ping-timeout", type=float, default=20.0, help="s without pong before close 1011")
    p.add_argument(
        "--set",
        dest="defaults",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="voice changer default (e.g. --set pitch=4 --set f0=harvest); sessions override them",
    )
    p.add_argument("--no-metrics", action="store_true", help="no per-processor timing (slightly faster)")
    add_webrtc_arguments(p)
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="run the voice changer's per-block conversion on Ray actors shared by every session: "
        "local, auto, host:port or ray://host:port",
    )
    p.add_argument(
        "--degrade",
        choices=("pass", "silence"),
        default="pass",
        help="with --ray-address: what a block whose remote call failed becomes (dry input or silence)",
    )
    from apipeline.models.backends import add_backend_arguments

    add_backend_arguments(p)
    from apipeline.cli.chat import add_engine_arguments

    add_engine_arguments(p.add_argument_group("--app chatbot"))  # type: ignore[arg-type]


def add_webrtc_arguments(p: Any) -> None:
    """The WebRTC options (signalling at ``POST /webrtc/offer`` on the same port; see docs/protocol.md)."""
    g = p.add_argument_group("WebRTC (served when aiortc is installed: the webrtc extra)")
    g.add_argument(
        "--ice-server",
        dest="ice_servers",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for WebRTC peers (stun:host:3478, turn:host:3478?transport=udp); repeatable; "
        "default none: host candidates only",
    )
    g.add_argument("--ice-username", default=None, help="username for the turn: servers")
    g.add_argument("--ice-credential", default=None, help="credential (password) for the turn: servers")
    g.add_argument(
        "--webrtc-peer-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="s without audio from a WebRTC peer before its session ends (default 5)",
    )
    g.add_argument("--no-webrtc", action="store_true", help="no WebRTC endpoint (WebSocket and gRPC only)")


def webrtc_config(args: argparse.Namespace) -> Any:
    """The ``WebRTCConfig`` of the options (checked: a bad ICE URL is a ConfigurationError), or None when
    WebRTC is off (``--no-webrtc``, or aiortc not installed and no WebRTC option given)."""
    import importlib.util

    from apipeline.errors import MissingDependencyError
    from apipeline.transports.webrtc_signalling import WebRTCConfig

    config = WebRTCConfig(
        ice_servers=tuple(args.ice_servers),
        ice_username=args.ice_username,
        ice_credential=args.ice_credential,
        peer_timeout=args.webrtc_peer_timeout,
    )
    if args.no_webrtc:
        return None
    if importlib.util.find_spec("aiortc") is None:
        if args.ice_servers:
            raise MissingDependencyError(
                "--ice-server needs aiortc: pip install 'apipeline[webrtc]'", extra="webrtc"
            )
        return None
    return config


def _factory(args: argparse.Namespace, placement: Any = None) -> Any:
    from apipeline.transports.factories import GraphFactory, VoiceChangerFactory

    if getattr(args, "app", None) == "chatbot":
        from apipeline.cli.chat import chatbot_factory

        if args.graph or args.defaults or args.ray_address is not None:
            raise ConfigurationError("--app chatbot takes no GRAPH, --set or --ray-address")
        return chatbot_factory(args)
    if args.graph:
        if args.ray_address is not None:
            raise SystemExit("apipeline serve: with a GRAPH, put `backend: ray` in the graph file instead")
        if args.defaults:
            raise SystemExit(
                "apipeline serve: --set applies to the voice changer; put graph values in the file"
            )
        return GraphFactory(args.graph)
    defaults: dict[str, Any] = {}
    for item in args.defaults:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"apipeline serve: --set expects KEY=VALUE, got {item!r}")
        defaults[key] = parse_value(value)
    try:
        return VoiceChangerFactory(placement=placement, **defaults)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"apipeline serve: bad --set: {exc}") from None


async def serve(args: argparse.Namespace) -> int:
    """Run the servers until SIGINT/SIGTERM; returns the exit code."""
    registry = await _remote_registry(args)
    try:
        return await _serve(args, registry)
    finally:
        if registry is not None:
            await registry.aclose()  # stops the actors (and a Ray instance started here)


async def _remote_registry(args: argparse.Namespace) -> Any:
    """With ``--ray-address``: one registry whose Ray actors every session shares, readied up front."""
    if args.ray_address is None or args.graph:
        return None
    from apipeline.models import ModelRegistry
    from apipeline.models.backends import backend_from_options, registry_options
    from apipeline.models.services import WorldVcService

    backend = backend_from_options(args)
    assert backend is not None
    limits = registry_options(backend)
    registry = ModelRegistry(
        backend=backend,
        max_concurrency=limits.get("max_concurrency", 1),
        max_pending=limits.get("max_pending", 64),
    )
    try:
        registry.register(WorldVcService)
        await registry.ready("world_vc")  # actors up before /ready; RemoteError if unreachable
    except BaseException:
        await registry.aclose()
        raise
    return registry


def server_configs(args: argparse.Namespace) -> tuple[Any, SessionConfig, tuple[bytes, bytes] | None]:
    """``(ServerConfig, SessionConfig, gRPC TLS key/cert)`` from the options; ConfigurationError for a
    bad one, found before anything listens (so the message is the first thing the user sees)."""
    from apipeline.transports.auth import Auth
    from apipeline.transports.websocket import ServerConfig

    workers = args.workers if args.workers is not None else default_workers()
    if workers < 1:
        raise ConfigurationError(f"--workers must be >= 1, got {workers}")
    for name in ("max_sessions", "send_queue", "max_message_size"):
        if getattr(args, name) < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("send_timeout", "handshake_timeout"):
        if not getattr(args, name) > 0:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    for name in ("idle_timeout", "input_rate", "ping_interval", "ping_timeout"):
        if getattr(args, name) < 0:
            raise ConfigurationError(
                f"--{name.replace('_', '-')} must be >= 0 (0: off), got {getattr(args, name)}"
            )
    Auth(args.token, args.secret)  # an empty token or secret is refused here
    origins = tuple(check_origin(o) for o in args.allowed_origins)
    ssl_context, tls = tls_config(args.certfile, args.keyfile)
    session = SessionConfig(
        queue_size=args.send_queue,
        overflow=args.send_policy,
        send_timeout=args.send_timeout,
        enable_metrics=not args.no_metrics,
        idle_timeout=args.idle_timeout or None,
        input_rate=args.input_rate or None,
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        secret=args.secret,
        max_message_size=args.max_message_size,
        max_sessions=args.max_sessions,
        ping_interval=args.ping_interval or None,
        ping_timeout=args.ping_timeout or None,
        handshake_timeout=args.handshake_timeout,
        allowed_origins=origins,
        ssl=ssl_context,
        session=session,
        webrtc=webrtc_config(args),
    )
    return config, session, tls


def worker_setup(args: argparse.Namespace) -> tuple[Any, SessionConfig, tuple[bytes, bytes] | None, Any]:
    """What each ``--workers`` process serves with: its configs and its session factory."""
    config, session, tls = server_configs(args)
    return config, session, tls, _factory(args, None)


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_origin(origin: str) -> str:
    """An ``--allowed-origin``: ``*`` or ``scheme://host[:port]`` (http/https, no path); else an error."""
    if origin == "*":
        return origin
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigurationError(f"--allowed-origin {origin!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigurationError(
            f"--allowed-origin {origin!r} is not an origin: expected http(s)://host[:port] (or *)"
        )
    if parts.query or parts.fragment or parts.username:
        raise ConfigurationError(f"--allowed-origin {origin!r}: an origin has no query, fragment or user")
    return origin.rstrip("/")


def tls_config(certfile: str | None, keyfile: str | None) -> tuple[Any, tuple[bytes, bytes] | None]:
    """``(ssl.SSLContext, (key PEM, cert PEM))`` for ``--certfile/--keyfile``, ``(None, None)`` without."""
    if certfile is None and keyfile is None:
        return None, None
    if certfile is None or keyfile is None:
        raise ConfigurationError("--certfile and --keyfile go together (give both, or neither)")
    import ssl
    from pathlib import Path

    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if not Path(path).is_file():
            raise ConfigurationError(f"{flag} {path}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"--certfile {certfile} / --keyfile {keyfile}: not a certificate and its matching key "
            f"({exc.reason})"
        ) from None
    return context, (Path(keyfile).read_bytes(), Path(certfile).read_bytes())


async def _serve(args: argparse.Namespace, registry: Any) -> int:
    from apipeline.transports.websocket import WebsocketServer

    config, session, tls = server_configs(args)
    placement = None
    if registry is not None:
        from apipeline.voice_changer.remote import RemotePlacement

        placement = RemotePlacement(registry=registry, degrade=args.degrade)
    factory = _factory(args, placement)
    warn_if_open(args)
    server = WebsocketServer(factory, config)
    grpc_server: Any = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await server.start()
    try:
        if args.grpc_port is not None:
            from apipeline.transports.grpc_service import start_beside

            grpc_server = await start_beside(server, factory, args, tls, session)
        print(f"apipeline serve: {server.page_url} (sessions at {server.url})", flush=True)
        if grpc_server is not None:
            print(f"apipeline serve: gRPC apipeline.FrameService/Stream at {grpc_server.address}", flush=True)
        ready = asyncio.ensure_future(server.wait_ready())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            if ready.exception() is not None:
                print(f"apipeline serve: error: {ready.exception()}", file=sys.stderr)
                stopped.cancel()
                return 1
            if grpc_server is not None:
                grpc_server.ready = True
            print("apipeline serve: ready", flush=True)
            await stopped
        else:
            ready.cancel()
        print("apipeline serve: shutting down", flush=True)
        return 0
    finally:
        if grpc_server is not None:
            await grpc_server.aclose()
        await server.aclose()


def warn_if_open(args: argparse.Namespace) -> None:
    """Warn when anyone who can reach the address may open sessions."""
    if args.host not in LOOPBACK and not args.token and not args.secret:
        print(
            f"apipeline serve: warning: listening on {args.host} without --token or --secret: anyone who "
            "can reach this address may open sessions",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    from apipeline.extras import require_extra

    try:
        # before any work: a core install says which extra to install instead of a traceback
        require_extra("serve", feature="apipeline serve")
        if not args.graph:  # the default graph is the voice changer
            require_extra("voice", feature="apipeline serve (the voice changer, no GRAPH given)")
        if args.print_token is not None:
            from apipeline.transports.auth import make_session_token

            if not args.secret:
                raise ConfigurationError("--print-token needs --secret (or $APIPELINE_SECRET)")
            print(make_session_token(args.secret, ttl_s=args.print_token))
            return 0
        server_configs(args)  # bad options fail before any model loads or any port opens
        workers = args.workers if args.workers is not None else default_workers()
        if getattr(args, "app", None) == "chatbot" and args.workers is None:
            workers = 1  # each worker process would load its own copy of the LLM
        if args.ray_address is not None:
            if args.workers is not None and args.workers > 1:
                raise ConfigurationError(
                    "--ray-address shares its Ray actors among the sessions of one process: use --workers 1"
                )
            workers = 1
        if workers > 1:
            from apipeline.transports.workers import supervise

            _factory(args)  # a bad graph or --set fails here, once, not in every worker
            warn_if_open(args)
            return asyncio.run(supervise(args, workers, setup="apipeline.cli.serve:worker_setup"))
        return asyncio.run(serve(args))
    except ConfigurationError as exc:
        print(f"apipeline serve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"apipeline serve: error: cannot listen: {exc}", file=sys.stderr)
        return 1
    except ApipelineError as exc:  # e.g. RemoteError: the Ray cluster is unreachable
        print(f"apipeline serve: error: {exc}", file=sys.stderr)
        return 1
