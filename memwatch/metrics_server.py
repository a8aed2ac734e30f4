"""Serving /metrics over HTTP(S), with TLS and basic auth as the exporter-toolkit has them.

The metric families come from a registry (``exporter.make_registry``); the web config (TLS
files, bcrypt hashes) from ``webconfig``, which owns the bcrypt rule checked here.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import signal
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import bcrypt
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from .errors import MetricsServerError
from .webconfig import BCRYPT_HASH, WebConfig

CONNECTION_TIMEOUT_S = 30.0  # a client that stalls (or never finishes TLS) loses its thread
AUTH_REALM = "memwatch"
SHUTDOWN_POLL_S = 0.05


def bcrypt_cost(hashed: bytes) -> int:
    """The cost (log2 of the rounds) of a bcrypt hash: b"$2y$12$..." -> 12."""
    return int(hashed[4:6])


class BasicAuth:
    """HTTP basic auth against bcrypt hashes, with successful checks cached in memory.

    bcrypt costs 100+ ms by design; Prometheus scrapes every few seconds with the same
    credentials, so a successful check is remembered as a SHA-256 digest of the user,
    the hash and the presented password (never the password itself), compared in
    constant time. Failures are not cached: guessing keeps paying bcrypt's price.
    """

    def __init__(self, users: Iterable[tuple[str, str]]) -> None:
        self._users: dict[bytes, bytes] = {}
        for user, hashed in users:
            if not BCRYPT_HASH.fullmatch(hashed):
                # Name the user, never the hash: it is a secret too.
                raise MetricsServerError(
                    f"basic_auth_users: {user}: not a bcrypt hash (make one with "
                    "htpasswd -nbB USER PASSWORD)"
                )
            self._users[user.encode()] = hashed.encode()
        # An unknown user's password is checked against the costliest configured hash (its
        # result thrown away), so the reply takes as long as for a user that exists. A
        # fixed dummy hash of cost 10 answered in 65 ms where a real user of cost 12 took
        # 239 ms: the timing told which users exist.
        self._dummy = max(self._users.values(), key=bcrypt_cost, default=b"")
        self._ok: dict[bytes, bytes] = {}  # user -> digest of the last password that passed
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> bool:
        """Whether an Authorization header carries valid credentials."""
        if not self._users:
            return True
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        digest = hashlib.sha256(b"\0".join((user, hashed or b"", password))).digest()
        if hashed is not None:
            with self._lock:
                cached = self._ok.get(user)
            if cached is not None and hmac.compare_digest(cached, digest):
                return True
        try:
            ok = bcrypt.checkpw(password, hashed or self._dummy)
        except ValueError:  # e.g. a password longer than bcrypt's 72 bytes
            ok = False
        if ok and hashed is not None:
            with self._lock:
                self._ok[user] = digest
            return True
        return False


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


LANDING_PAGE = b"""<!doctype html>
<html><head><title>memwatch</title></head>
<body><h1>memwatch</h1><p><a href="/metrics">Metrics</a></p></body></html>
"""


class _Handler(MetricsHandler):
    """/metrics from the server's registry, a landing page at /, 404 elsewhere; auth first."""

    server: _Server
    timeout = CONNECTION_TIMEOUT_S  # applied to the connection by StreamRequestHandler.setup

    def setup(self) -> None:
        super().setup()
        # _Server.get_request wrapped the connection without a handshake (one stalled
        # client would block every other): it runs here, in this connection's thread.
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def do_GET(self) -> None:
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._reply(
                401,
                b"Unauthorized\n",
                extra=[("WWW-Authenticate", f'Basic realm="{AUTH_REALM}", charset="UTF-8"')],
            )
            return
        path = urlsplit(self.path).path
        if path == "/metrics":
            super().do_GET()
        elif path == "/":
            self._reply(200, LANDING_PAGE, content_type="text/html; charset=utf-8")
        else:
            self._reply(404, b"Not Found: metrics are at /metrics\n")

    def _reply(
        self,
        code: int,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: no request lines (and never a credential) in memwatch's output."""

    def version_string(self) -> str:
        """The Server header: no Python or memwatch version for anyone, before auth too."""
        return "memwatch"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        registry: CollectorRegistry,
        auth: BasicAuth,
    ) -> None:
        self.address_family = family
        # Both are read per connection, so a reload swaps them without closing the socket.
        self.auth = auth
        self.tls: ssl.SSLContext | None = None
        handler = type("MemwatchMetricsHandler", (_Handler,), {"registry": registry})
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        # Each connection is wrapped here, not the listening socket once, so new
        # certificates apply to the next connection without binding the port again. The
        # handshake runs in the connection's thread (_Handler.setup): one stalled client
        # must not block accept().
        conn, address = self.socket.accept()
        context = self.tls
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN (a DNS query that can hang for
        # seconds on a machine without working DNS) only to fill in server_name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up, times out or fails the TLS handshake: its problem, and
        # no traceback on memwatch's stderr.
        pass


# Process-directed signals are the main thread's business (the daemon's loop, the signal
# forwarder of `memwatch run`). The kernel delivers such a signal to any thread that does
# not block it: a server thread started before `memwatch run` blocks SIGTERM for its
# forwarder would take it and die of it, leaving the job running unmeasured.
_MAIN_THREAD_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGCHLD", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


def _serve(server: _Server) -> None:
    if hasattr(signal, "pthread_sigmask"):  # not on Windows
        # Inherited by every connection thread this one starts.
        signal.pthread_sigmask(signal.SIG_BLOCK, _MAIN_THREAD_SIGNALS)
    # poll_interval: how often the loop checks for stop(); stopping waits up to this long.
    server.serve_forever(poll_interval=SHUTDOWN_POLL_S)


class MetricsServer:
    """Serves ``registry`` at /metrics over HTTP, or HTTPS with TLS, with optional basic auth.

    ``start()`` binds and serves in a background thread; ``port`` is then the bound port
    (so port 0 picks a free one); ``stop()`` shuts it down. Also a context manager.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        address: str,
        port: int,
        web: WebConfig | None = None,
    ) -> None:
        self.registry = registry
        self.address = address
        self._requested_port = port
        self.web = web if web is not None else WebConfig()
        self._auth = BasicAuth(self.web.basic_auth_users)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    @property
    def url(self) -> str:
        scheme = "https" if self.web.tls else "http"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{scheme}://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Bind and start serving; raises MetricsServerError with a one-line reason."""
        if self._server is not None:
            return
        where = f"{self.address}:{self._requested_port}"
        context = _tls_context(self.web) if self.web.tls else None
        try:
            infos = socket.getaddrinfo(
                self.address, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, sockaddr = infos[0]
            server = _Server(
                (str(sockaddr[0]), self._requested_port), family, self.registry, self._auth
            )
        except socket.gaierror as err:
            raise MetricsServerError(
                f"cannot listen on {where}: unknown address ({err.strerror})"
            ) from err
        except UnicodeError as err:  # a host name label over 63 characters
            raise MetricsServerError(f"cannot listen on {where}: not a valid host name") from err
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                reason = "port already in use; choose another port or stop what listens there"
            elif err.errno == errno.EACCES:
                reason = "permission denied (ports below 1024 need privileges)"
            elif err.errno == errno.EADDRNOTAVAIL:
                reason = "no such address on this machine"
            else:
                reason = err.strerror or str(err)
            raise MetricsServerError(f"cannot listen on {where}: {reason}") from err
        server.tls = context
        self._server = server
        self._thread = threading.Thread(
            target=_serve, args=(server,), name="memwatch-metrics", daemon=True
        )
        self._thread.start()

    def update_web(self, web: WebConfig) -> None:
        """Serve the next connections with ``web``'s certificates and users, on the same
        socket (a renewed certificate must not refuse scrapes while the port is rebound).
        Raises MetricsServerError, and changes nothing, if they cannot be loaded."""
        context = _tls_context(web) if web.tls else None
        auth = BasicAuth(web.basic_auth_users)
        self.web, self._auth = web, auth
        if self._server is not None:
            self._server.tls, self._server.auth = context, auth

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tls_context(web: WebConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default too
    try:
        context.load_cert_chain(web.cert_file or "", web.key_file)
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or str(err)
        raise MetricsServerError(
            f"cannot load TLS cert_file {web.cert_file} / key_file {web.key_file}: {reason}"
        ) from err
    return context
