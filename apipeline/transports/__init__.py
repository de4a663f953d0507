"""Serving pipelines over the network, and pipelines that span processes.

* :mod:`~apipeline.transports.session`: the wire contract's pure rules: close codes, query parsing,
  token check, :class:`SessionSpec` and the :class:`PipelineFactory` seam.
* :mod:`~apipeline.transports.channel`: the :class:`MessageChannel` seam (one stream of messages) and an
  in-memory channel pair.
* :mod:`~apipeline.transports.processors`: :class:`TransportInput` (messages -> frames) and
  :class:`TransportOutput` (frames -> messages, bounded send queue with a declared policy).
* :mod:`~apipeline.transports.server_session`: :class:`ServerSession`, one client's pipeline task from
  handshake to close code, shared by both servers.
* :mod:`~apipeline.transports.websocket`: :class:`WebsocketServer` (``/ws``, ``/health``, ``/ready``,
  ``/metrics``, the browser page).
* :mod:`~apipeline.transports.http_front`: the front of the server's port: routes the WebRTC signalling
  paths to a bounded HTTP reader, everything else to websockets unchanged.
* :mod:`~apipeline.transports.webrtc_signalling`: ``POST /webrtc/offer`` / ``GET /webrtc/config``
  (:class:`WebRTCConfig`), the same admission as ``/ws``; :mod:`~apipeline.transports.webrtc`: the
  aiortc transport (tracks, data channel, :class:`~apipeline.transports.webrtc.WebRTCSession`).
* :mod:`~apipeline.transports.grpc_service`: :class:`GrpcServer`, the same sessions as a bidirectional
  gRPC stream of ``apipeline.Envelope`` messages.
* :mod:`~apipeline.transports.remote`: :class:`RemoteProcessor`, a processor whose work happens in a
  pipeline served elsewhere.
* :mod:`~apipeline.transports.factories`: what the servers serve (voice changer, graph file, callable).
* :mod:`~apipeline.transports.stats`: counters and the Prometheus text exposition.

``websockets``, ``grpcio`` and ``aiortc`` are imported only by the modules that need them.
"""

from apipeline.transports.channel import MemoryChannel as MemoryChannel
from apipeline.transports.channel import MessageChannel as MessageChannel
from apipeline.transports.factories import CallableFactory as CallableFactory
from apipeline.transports.factories import GraphFactory as GraphFactory
from apipeline.transports.factories import VoiceChangerFactory as VoiceChangerFactory
from apipeline.transports.processors import TransportInput as TransportInput
from apipeline.transports.processors import TransportOutput as TransportOutput
from apipeline.transports.server_session import ServerSession as ServerSession
from apipeline.transports.server_session import SessionConfig as SessionConfig
from apipeline.transports.server_session import SessionOutcome as SessionOutcome
from apipeline.transports.session import CloseCode as CloseCode
from apipeline.transports.session import PipelineFactory as PipelineFactory
from apipeline.transports.session import SessionSpec as SessionSpec
from apipeline.transports.session import parse_query as parse_query
from apipeline.transports.stats import ServerStats as ServerStats
from apipeline.transports.webrtc_signalling import WebRTCConfig as WebRTCConfig
from apipeline.transports.websocket import ServerConfig as ServerConfig
from apipeline.transports.websocket import WebsocketServer as WebsocketServer

__all__ = [
    "CallableFactory",
    "CloseCode",
    "GraphFactory",
    "MemoryChannel",
    "MessageChannel",
    "PipelineFactory",
    "ServerConfig",
    "ServerSession",
    "ServerStats",
    "SessionConfig",
    "SessionOutcome",
    "SessionSpec",
    "TransportInput",
    "TransportOutput",
    "VoiceChangerFactory",
    "WebRTCConfig",
    "WebsocketServer",
    "parse_query",
]
