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

from apipeline.errors import ApipelineError
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
    p.add_argument("--max-sessions", type=int, default=64)
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


def _factory(args: argparse.Namespace, placement: Any = None) -> Any:
    from apipeline.transports.factories import GraphFactory, VoiceChangerFactory

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
    from apipeline.models.backends import backend_from_address, registry_options
    from apipeline.models.services import WorldVcService

    backend = backend_from_address(args.ray_address)
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


async def _serve(args: argparse.Namespace, registry: Any) -> int:
    from apipeline.transports.websocket import ServerConfig, WebsocketServer

    placement = None
    if registry is not None:
        from apipeline.voice_changer.remote import RemotePlacement

        placement = RemotePlacement(registry=registry, degrade=args.degrade)
    factory = _factory(args, placement)
    if args.host not in LOOPBACK and not args.token:
        print(f"apipeline serve: warning: listening on {args.host} without --token", file=sys.stderr)
    session = SessionConfig(
        queue_size=args.send_queue,
        overflow=args.send_policy,
        send_timeout=args.send_timeout,
        enable_metrics=not args.no_metrics,
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        max_message_size=args.max_message_size,
        max_sessions=args.max_sessions,
        ping_interval=args.ping_interval or None,
        ping_timeout=args.ping_timeout or None,
        session=session,
    )
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
            from apipeline.transports.grpc_service import GrpcServer

            grpc_server = GrpcServer(
                factory,
                host=args.host,
                port=args.grpc_port,
                token=args.token,
                max_message_size=args.max_message_size,
                session=session,
                stats=server.stats,
            )
            await grpc_server.start()
        print(f"apipeline serve: http://{args.host}:{server.port}/ (sessions at {server.url})", flush=True)
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


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve(args))
    except OSError as exc:
        print(f"apipeline serve: error: cannot listen: {exc}", file=sys.stderr)
        return 1
    except ApipelineError as exc:  # e.g. RemoteError: the Ray cluster is unreachable
        print(f"apipeline serve: error: {exc}", file=sys.stderr)
        return 1
