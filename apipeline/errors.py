"""Every exception apipeline raises on purpose.

The tree::

    ApipelineError                      root: catch this to catch everything of ours
    ├── ConfigurationError              a bad option or setting (also a ValueError)
    │   ├── ParameterError              a parameter unknown, of the wrong type or out of range
    │   ├── OutputPathError             an output that cannot or must not be written (before any work)
    │   ├── UnknownNameError            an unknown processor type, node or other name (also a KeyError)
    │   └── MissingDependencyError      an optional dependency is missing (also an ImportError): which extra
    ├── DefinitionError                 a class, schema or registration written wrongly (also a TypeError)
    ├── RenderError                     an external renderer (Graphviz dot) failed (also a RuntimeError)
    ├── FrameError                      a frame is malformed (wrong field type, shape, dtype)
    ├── AudioFormatError                audio in the wrong format (rate, channels, dtype, NaN/Inf)
    ├── AudioFileError                  a file that cannot be read or written as audio
    ├── ImageError                      an image that cannot be used (size, channels, not an image)
    │   └── FaceNotFoundError           no face where one is needed (talking head)
    ├── SerializationError              data that does not decode to a frame (or a frame that won't encode)
    ├── PipelineError                   a pipeline built or driven wrongly
    │   ├── LinkError                   two linked processors whose formats do not match
    │   └── PipelineTimeoutError        a bounded wait (start, end, stop, cancel) expired
    ├── GraphError                      a graph file that does not validate (carries every problem found)
    ├── ModelError                      model services: loading, signatures, lifecycle
    │   ├── ModelSignatureError         an ONNX/torch model whose inputs/outputs are not the expected ones
    │   ├── ServiceDefinitionError      a service written wrongly (mixed protocols, missing hook, bad info)
    │   ├── ServiceStateError           a call refused because the service is not in the right state
    │   ├── ServiceParamError           a call with a missing, unknown or wrongly typed parameter
    │   ├── ResourceError               a service that does not fit the machine or the memory budget
    │   ├── SelfTestError               a service that failed its self-test
    │   ├── RemoteError                 a remote model worker failed or died mid-call
    │   └── Overloaded                  every worker is saturated; the call was refused, not queued
    └── TransportError                  network transport problems (closed, refused, bad message)
        ├── TransportClosed             the peer closed or the connection dropped (close code, reason)
        ├── SessionRefused              a session ended by policy: bad message, auth, wrong format
        └── NotReadyError               a transport not ready: warm-up failed, run() before accept()
                                        (also a RuntimeError)

Messages say what was expected, what came, and where.
"""

from __future__ import annotations


class ApipelineError(Exception):
    """Root of every error apipeline raises on purpose."""


class ConfigurationError(ApipelineError, ValueError):
    """A bad option, setting or configuration, found before any work is done."""


class ParameterError(ConfigurationError):
    """Parameters that do not fit their schema; ``problems`` lists each one (name, what was expected,
    what came)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class OutputPathError(ConfigurationError):
    """An output path that cannot be written (missing folder, not writable, a directory) or must not be
    (it is one of the inputs). Raised before any input is read."""


class UnknownNameError(ConfigurationError, KeyError):
    """A name that is not known: a processor type, a node id, a service. Also a ``KeyError``, so code
    that looked names up with ``except KeyError`` keeps working; the message is printed without the
    quotes ``KeyError`` adds."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is not installed; ``extra`` names the extra that provides it
    (``pip install 'apipeline[extra]'``), ``None`` for a system program. Raised before any work."""

    def __init__(self, message: str, *, extra: str | None = None, package: str | None = None) -> None:
        super().__init__(message)
        self.extra = extra
        self.package = package


class DefinitionError(ApipelineError, TypeError):
    """Code written wrongly, found when it is defined: a parameter schema, a processor registration, a
    class whose declarations contradict each other. Also a ``TypeError``."""


class RenderError(ApipelineError, RuntimeError):
    """An external renderer (Graphviz ``dot``) failed; the message carries its own."""


class FrameError(ApipelineError, ValueError):
    """A frame is malformed: a field of the wrong type, shape or dtype."""


class AudioFormatError(ApipelineError, ValueError):
    """Audio in a format a processor cannot take: sample rate, channels, dtype, NaN/Inf samples."""


class AudioFileError(ApipelineError, OSError):
    """A file that cannot be read or written as audio (missing, truncated, not audio)."""


class ImageError(ApipelineError, ValueError):
    """An image that cannot be used: not an image, too small or too large, an unsupported layout."""


class FaceNotFoundError(ImageError):
    """No face was found where a talking head needs one; give a landmark file or a fallback."""


class SerializationError(ApipelineError, ValueError):
    """Data that does not decode to a frame, or a frame that cannot be encoded."""


class PipelineError(ApipelineError):
    """A pipeline built or driven wrongly."""


class LinkError(PipelineError):
    """Two linked processors whose declared formats do not match."""


class PipelineTimeoutError(PipelineError, TimeoutError):
    """A bounded lifecycle wait (start, end, stop, cancel) expired."""


class GraphError(ApipelineError):
    """A graph file that does not validate; ``problems`` lists every problem with its place."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ModelError(ApipelineError):
    """Model services: loading, signatures, lifecycle."""


class ModelSignatureError(ModelError):
    """A model whose inputs or outputs are not the expected ones (names, ranks, dtypes)."""


# --- model services: definitions (added with apipeline.models) ---------------------------------------
class ServiceDefinitionError(ModelError):
    """A model service written wrongly: mixed protocols, a missing or duplicate hook, info that does not
    match the implemented methods. Raised at decoration or registration time, never per call."""


# ------------------------------------------------------------------------------------------------------


class ServiceStateError(ModelError):
    """A call refused because the service is not in a state that allows it."""


class ServiceParamError(ModelError, TypeError):
    """A service call with a missing, unknown or wrongly typed parameter."""


class ResourceError(ModelError):
    """A service whose declared resources do not fit the machine or the memory budget."""


class SelfTestError(ModelError):
    """A service that failed its self-test and is marked unusable."""


class RemoteError(ModelError):
    """A remote model worker failed or died during a call."""


class Overloaded(ModelError):
    """Every worker is saturated: the call was refused promptly instead of queued without bound."""


class TransportError(ApipelineError):
    """A network transport problem: closed connection, refused session, undecodable message."""


# --- transports: closed connections and refused sessions (added with apipeline.transports) ----------
class TransportClosed(TransportError):
    """The peer closed the connection or it dropped; ``code`` is the WebSocket close code (1006 when
    the connection was lost without a close frame) and ``reason`` the peer's reason, if any."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed (code {code}{': ' + reason if reason else ''})")


class SessionRefused(TransportError):
    """A session ended by policy: an undecodable message (code 1002), a frame the protocol does not allow
    or audio in the wrong format (1008), a failed authentication, a stalled client. ``code`` is the
    WebSocket close code the server used (gRPC maps it to a status code)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"session refused (code {code}): {reason}")


class NotReadyError(TransportError, RuntimeError):
    """A transport asked to serve before it can: its warm-up failed (the message carries the cause), or
    a WebRTC session was run before its offer was accepted. Also a ``RuntimeError``."""


# ------------------------------------------------------------------------------------------------------


class BackendLost(RemoteError):
    """The model backend as a whole is gone (a Ray cluster's head died): nothing will recover by itself,
    so a stream that depends on it ends (``RealtimeModelProcessor`` sends a fatal ``ErrorFrame``)."""
