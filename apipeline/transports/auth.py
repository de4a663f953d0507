"""Who may open a session: a static token, or short-lived signed session tokens.

* A static token (``--token T``): the client sends ``?token=T`` (gRPC: ``authorization: Bearer T``);
  compared in constant time.
* Signed session tokens (``--secret S``): whoever holds the secret (an application backend) mints a
  token for one session with :func:`make_session_token`; the server checks it without any state:
  ``v1.<session id>.<expiry, unix seconds>.<HMAC-SHA256(secret, "v1.<session id>.<expiry>"), hex>``.
  A token whose signature does not match (forged, or signed with another secret), that is malformed,
  or whose expiry has passed is refused with 403 and the reason. Expiry is checked against the server's
  wall clock; keep tokens short-lived (minutes) so a leaked one is soon worthless.

With both, either is accepted. With neither, anyone who can reach the port may open sessions (the
server warns when that port is not on loopback).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from apipeline.errors import ConfigurationError

TOKEN_VERSION = "v1"
#: longest lifetime a session token may claim (a token expiring later is refused as not short-lived)
MAX_TOKEN_TTL_S = 24 * 3600


def _signature(secret: str, session_id: str, expiry: int) -> str:
    message = f"{TOKEN_VERSION}.{session_id}.{expiry}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def make_session_token(
    secret: str, *, session_id: str | None = None, ttl_s: float = 300.0, now: float | None = None
) -> str:
    """A token for one session, valid ``ttl_s`` seconds from ``now`` (default: the wall clock)."""
    check_secret(secret)
    if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
        raise ConfigurationError(f"token lifetime must be within 0..{MAX_TOKEN_TTL_S} s, got {ttl_s}")
    sid = session_id or secrets.token_hex(8)
    if not sid.isalnum():
        raise ConfigurationError(f"session id must be letters and digits, got {sid!r}")
    expiry = int((time.time() if now is None else now) + ttl_s)
    return f"{TOKEN_VERSION}.{sid}.{expiry}.{_signature(secret, sid, expiry)}"


def check_secret(secret: str | None) -> None:
    """Refuse a secret that signs nothing worth checking (empty, or too short to resist guessing)."""
    if secret is None:
        return
    if not secret.strip():
        raise ConfigurationError("the session-token secret is empty")
    if len(secret) < 16:
        raise ConfigurationError(
            f"the session-token secret is too short ({len(secret)} characters; use >= 16)"
        )


@dataclass(frozen=True, slots=True)
class Auth:
    """The server's authentication: a static ``token``, a ``secret`` for signed tokens, both, or neither."""

    token: str | None = None
    secret: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and not self.token:
            raise ConfigurationError("the token is empty")
        check_secret(self.secret)

    @property
    def required(self) -> bool:
        return self.token is not None or self.secret is not None

    def check(self, given: str | None, *, now: float | None = None) -> tuple[int, str, str] | None:
        """``None`` when ``given`` may open a session, else ``(HTTP status, metric label, reason)``."""
        if not self.required:
            return None
        if not given:
            return 401, "missing_token", "missing token"
        if self.token is not None and hmac.compare_digest(self.token.encode(), given.encode()):
            return None
        if self.secret is None:
            return 403, "invalid_token", "invalid token"
        return self._check_signed(self.secret, given, time.time() if now is None else now)

    @staticmethod
    def _check_signed(secret: str, given: str, now: float) -> tuple[int, str, str] | None:
        parts = given.split(".")
        if len(parts) != 4 or parts[0] != TOKEN_VERSION or not parts[2].isdigit():
            return 403, "invalid_token", "invalid token (neither the static token nor a v1 session token)"
        _, sid, expiry_text, signature = parts
        expiry = int(expiry_text)
        if not hmac.compare_digest(_signature(secret, sid, expiry).encode(), signature.encode()):
            return 403, "forged_token", "invalid session token: bad signature"
        if expiry <= now:
            return 403, "expired_token", f"session token expired {now - expiry:.0f} s ago"
        if expiry > now + MAX_TOKEN_TTL_S:
            return 403, "invalid_token", "session token expires too far in the future"
        return None
