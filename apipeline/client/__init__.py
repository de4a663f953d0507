"""Python clients for served pipelines.

* :mod:`~apipeline.client.websocket`: :class:`FrameClient` / :class:`VoiceChangerClient` over WebSocket.
* :mod:`~apipeline.client.grpc`: :class:`GrpcFrameClient` over the gRPC frame stream.

Both speak the wire contract of ``docs/protocol.md``: one ``apipeline.Envelope`` per message.
"""

from apipeline.client.grpc import GrpcFrameClient as GrpcFrameClient
from apipeline.client.websocket import FrameClient as FrameClient
from apipeline.client.websocket import VoiceChangerClient as VoiceChangerClient

__all__ = ["FrameClient", "GrpcFrameClient", "VoiceChangerClient"]
