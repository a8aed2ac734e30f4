"""Slow and malicious HTTP clients: the metrics endpoint keeps serving everyone else."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from pathlib import Path

import bcrypt
import pytest
from integration.conftest import tool

from memwatch.config import WebConfig
from memwatch.exporter import make_registry
from memwatch.metrics_server import MetricsServer

pytestmark = pytest.mark.integration


def _scrape(server: MetricsServer, context: ssl.SSLContext | None = None) -> int:
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", server.port, timeout=30
        )
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=30, context=context)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.fixture
def tls_web(tmp_path: Path) -> WebConfig:
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return WebConfig(cert_file=str(cert), key_file=str(key))


def test_idle_and_half_open_clients_do_not_stop_scrapes(tls_web):
    server = MetricsServer(make_registry(lambda: None), "127.0.0.1", 0, tls_web)
    server.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(50):  # connect, never handshake, never send a byte
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
        half = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        idle.append(half)
        half.sendall(b"\x16\x03\x01\x02\x00")  # the start of a TLS record, then nothing
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        assert _scrape(server, context) == 200
    finally:
        for sock in idle:
            sock.close()
        server.stop()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",  # a request line past the limit
        b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",  # too many headers
        b"\x00\xff garbage \r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nAuthorization: Basic !!!\r\n\r\n",
    ],
    ids=["long-line", "many-headers", "garbage", "bad-auth"],
)
def test_malformed_requests_get_an_error_and_the_server_goes_on(request_bytes):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    web = WebConfig(basic_auth_users=(("prom", hashed),))
    server = MetricsServer(make_registry(lambda: None), "127.0.0.1", 0, web)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(request_bytes)
            reply = sock.recv(4096)
        assert b"Python" not in reply and b"BaseHTTP" not in reply  # no version told
        assert _scrape(server) == 401  # still serving (and still asking for credentials)
    finally:
        server.stop()
