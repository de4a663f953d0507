"""Authentication (static and signed session tokens), TLS, and configuration errors found at start."""

from __future__ import annotations

import datetime
import ssl

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apipeline.cli.main import main
from apipeline.errors import ConfigurationError
from apipeline.frames import AudioRawFrame
from apipeline.serializers import ProtobufFrameSerializer
from apipeline.transports.auth import Auth, make_session_token
from apipeline.transports.websocket import url_host

SER = ProtobufFrameSerializer()
SECRET = "s3cret-s3cret-s3cret"
NOW = 1_800_000_000.0


def test_signed_tokens_accept_the_genuine_and_refuse_forged_expired_and_malformed():
    auth = Auth(secret=SECRET)
    good = make_session_token(SECRET, session_id="abc", ttl_s=60, now=NOW)
    assert auth.check(good, now=NOW + 59) is None
    assert auth.check(good, now=NOW + 61)[:2] == (403, "expired_token")
    assert "expired" in auth.check(good, now=NOW + 61)[2]
    other = make_session_token("another-secret-of-16", session_id="abc", ttl_s=60, now=NOW)
    assert auth.check(other, now=NOW)[:2] == (403, "forged_token")
    version, sid, expiry, sig = good.split(".")
    longer = f"{version}.{sid}.{int(expiry) + 3600}.{sig}"  # extend its life: the signature no longer fits
    assert auth.check(longer, now=NOW)[:2] == (403, "forged_token")
    for bad in ("", "garbage", "v1.abc.notanumber.ff", "v2.abc.1.ff"):
        assert auth.check(bad, now=NOW)[0] in (401, 403)
    assert auth.check(None)[:2] == (401, "missing_token")
    both = Auth(token="static-token", secret=SECRET)
    assert both.check("static-token") is None and both.check(make_session_token(SECRET)) is None
    assert Auth().check(None) is None


@pytest.mark.parametrize("secret", ["", "   ", "short"])
def test_empty_or_weak_secret_is_a_configuration_error(secret):
    with pytest.raises(ConfigurationError):
        Auth(secret=secret)


async def test_signed_token_at_the_handshake(make_server):
    server = await make_server(secret=SECRET)
    async with connect(f"{server.url}?token={make_session_token(SECRET, ttl_s=30)}") as ws:
        await ws.send(SER.serialize(AudioRawFrame(np.zeros(160, np.float32), 16000)))
        assert isinstance(SER.deserialize(await ws.recv()), AudioRawFrame)
    expired = make_session_token(SECRET, ttl_s=30, now=NOW - 3600 * 24 * 365)
    forged = make_session_token("not-the-server-secret", ttl_s=30)
    for token, needle in ((expired, b"expired"), (forged, b"bad signature")):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{server.url}?token={token}"):
                pass
        assert info.value.response.status_code == 403
        assert needle in info.value.response.body
    assert server.stats.refusals[("websocket", "expired_token")] == 1
    assert server.stats.refusals[("websocket", "forged_token")] == 1


# -- TLS -------------------------------------------------------------------------------------------------


def _certificate(tmp_path, name: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(certfile), str(keyfile)


@pytest.fixture
def certs(tmp_path):
    return _certificate(tmp_path, "a"), _certificate(tmp_path, "b")


async def test_tls_session_round_trip(make_server, certs):
    from apipeline.cli.serve import tls_config

    (certfile, keyfile), _ = certs
    context, _ = tls_config(certfile, keyfile)
    server = await make_server(ssl=context, host="localhost")
    assert server.url.startswith("wss://") and server.page_url.startswith("https://")
    client = ssl.create_default_context(cafile=certfile)
    async with connect(server.url, ssl=client) as ws:
        await ws.send(SER.serialize(AudioRawFrame(np.zeros(160, np.float32), 16000)))
        assert isinstance(SER.deserialize(await ws.recv()), AudioRawFrame)


# -- configuration errors at start -----------------------------------------------------------------------


def bad_start(capsys, *argv: str) -> str:
    code = main(["serve", "--port", "0", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_bad_configuration_is_a_clear_error_at_start(capsys, certs, tmp_path):
    (cert_a, key_a), (_, key_b) = certs
    assert "--workers must be >= 1" in bad_start(capsys, "--workers", "0")
    assert "--max-sessions must be >= 1" in bad_start(capsys, "--max-sessions", "0")
    assert "go together" in bad_start(capsys, "--certfile", cert_a)
    assert "no such file" in bad_start(capsys, "--certfile", str(tmp_path / "none"), "--keyfile", key_a)
    assert "matching key" in bad_start(capsys, "--certfile", cert_a, "--keyfile", key_b)
    assert "secret is empty" in bad_start(capsys, "--secret", "")
    assert "token is empty" in bad_start(capsys, "--token", "")
    assert "is not a URL" in bad_start(capsys, "--allowed-origin", "http://host:99999")
    assert "not an origin" in bad_start(capsys, "--allowed-origin", "evil.example")
    assert "not an origin" in bad_start(capsys, "--allowed-origin", "https://app.example/path")
    assert "--idle-timeout must be >= 0" in bad_start(capsys, "--idle-timeout", "-1")


def test_warning_when_serving_without_auth_beyond_loopback(capsys):
    import argparse

    from apipeline.cli.serve import warn_if_open

    warn_if_open(argparse.Namespace(host="0.0.0.0", token=None, secret=None))
    assert "without --token or --secret" in capsys.readouterr().err
    for ns in (
        argparse.Namespace(host="127.0.0.1", token=None, secret=None),
        argparse.Namespace(host="0.0.0.0", token="t", secret=None),
        argparse.Namespace(host="::", token=None, secret=SECRET),
    ):
        warn_if_open(ns)
        assert capsys.readouterr().err == ""


def test_ipv6_hosts_are_bracketed_in_urls():
    assert url_host("::") == "[::]" and url_host("::1") == "[::1]"
    assert url_host("127.0.0.1") == "127.0.0.1" and url_host("localhost") == "localhost"


async def test_ipv6_server_prints_a_usable_url(make_server):
    try:
        server = await make_server(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert server.url == f"ws://[::1]:{server.port}/ws"
    async with connect(server.url) as ws:
        await ws.send(SER.serialize(AudioRawFrame(np.zeros(160, np.float32), 16000)))
        assert isinstance(SER.deserialize(await ws.recv()), AudioRawFrame)


async def test_grpc_over_tls_with_a_signed_token(certs):
    from apipeline.client import GrpcFrameClient
    from apipeline.transports.grpc_service import GrpcServer
    from tests.transports._standin import gain_factory

    (certfile, keyfile), _ = certs
    from apipeline.cli.serve import tls_config

    _, (key, cert) = tls_config(certfile, keyfile)
    server = GrpcServer(gain_factory(), host="localhost", port=0, ready=True, secret=SECRET, tls=(key, cert))
    async with server:
        token = make_session_token(SECRET, ttl_s=30)
        frames = [AudioRawFrame(np.full(160, 0.5, np.float32), 16000) for _ in range(3)]
        async with GrpcFrameClient(server.address, token=token, tls=cert) as client:
            out = [f async for f in client.stream(frames)]
        assert [f.num_frames for f in out] == [160, 160, 160]


def test_print_token_mints_a_valid_session_token(capsys):
    assert main(["serve", "--secret", SECRET, "--print-token", "60"]) == 0
    token = capsys.readouterr().out.strip()
    assert Auth(secret=SECRET).check(token) is None
    assert "needs --secret" in bad_start(capsys, "--print-token", "60")
    assert "lifetime" in bad_start(capsys, "--secret", SECRET, "--print-token", "0")
