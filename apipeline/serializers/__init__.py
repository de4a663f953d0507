"""Frames on the wire: one frame to one message and back, equal in every field.

* :mod:`~apipeline.serializers.base`: the :class:`FrameSerializer` seam transports depend on, the
  shared base (application-frame registration, message size limit) and the table of built-in wire frames.
* :mod:`~apipeline.serializers.protobuf`: :class:`ProtobufFrameSerializer`, the binary format
  (``apipeline.Envelope`` from ``frames.proto``); the default for transports.
* :mod:`~apipeline.serializers.json`: :class:`JsonFrameSerializer`, the readable alternative.
* ``frames.proto``: the IDL, covering every frame that can cross a wire (system, control, data and
  registered application frames) with ``id``, ``name``, ``pts`` and ``metadata``. ``frames_pb2`` is
  generated from it by ``tools/gen_proto.sh`` and committed.
* :mod:`~apipeline.serializers._values`: value checks and buffer codecs both formats share.

Bad input never escapes as anything but :class:`~apipeline.errors.SerializationError`, and is refused
by size and structure (``max_message_size``, ``max_json_items``, array ranks) before it is parsed.
"""

from apipeline.serializers._values import DEFAULT_MAX_JSON_ITEMS as DEFAULT_MAX_JSON_ITEMS
from apipeline.serializers.base import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from apipeline.serializers.base import BaseFrameSerializer as BaseFrameSerializer
from apipeline.serializers.base import FrameSerializer as FrameSerializer
from apipeline.serializers.json import JsonFrameSerializer as JsonFrameSerializer
from apipeline.serializers.protobuf import ProtobufFrameSerializer as ProtobufFrameSerializer

__all__ = [
    "DEFAULT_MAX_JSON_ITEMS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "BaseFrameSerializer",
    "FrameSerializer",
    "JsonFrameSerializer",
    "ProtobufFrameSerializer",
]
