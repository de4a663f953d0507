#!/usr/bin/env bash
# Regenerate apipeline/serializers/frames_pb2.py and frames_pb2.pyi from frames.proto.
#
# Needs grpcio-tools in the active environment (its bundled protoc decides the gencode version, which
# must match the protobuf runtime's major version and not be newer than it). The include root is the
# repository root, so the descriptor is registered as "apipeline/serializers/frames.proto" (no clash
# with another "frames.proto" in the same process) and other .proto files can
# `import "apipeline/serializers/frames.proto";`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -m grpc_tools.protoc --version
"$PYTHON" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. \
    apipeline/serializers/frames.proto
echo "generated apipeline/serializers/frames_pb2.py and frames_pb2.pyi"
