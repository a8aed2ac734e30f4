"""Prometheus metrics: a Collector over immutable snapshots, its HTTP(S) server, batch results.

A scrape never walks /proc: the sampler publishes an immutable :class:`Snapshot` and the
collector turns the latest one into metric families, built fresh on every scrape. Names
start with ``memwatch_`` and end in their base unit; the only labels are ``job``,
``memtype`` and ``size`` (and ``version`` on the build info): never pids or command
lines, whose values are unbounded.

Note for scrape configs: ``job`` here is memwatch's job, not Prometheus's scrape job.
Scrape memwatch (and a Pushgateway or node_exporter carrying its results) with
``honor_labels: true``, or Prometheus renames the label to ``exported_job``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import math
import os
import signal
import socket
import socketserver
import ssl
import threading
import time
import urllib.error
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import bcrypt
from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.exposition import MetricsHandler
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__
from .errors import MemwatchError, OutputError
from .plateau import RECENT_SAMPLES, swapping_recently
from .report import valid_utf8
from .types import JobSnapshot, RunSummary, Sample, Snapshot
from .webconfig import BCRYPT_HASH, WebConfig

PUSH_TIMEOUT_S = 10.0
CONNECTION_TIMEOUT_S = 30.0  # a client that stalls (or never finishes TLS) loses its thread
AUTH_REALM = "memwatch"
SHUTDOWN_POLL_S = 0.05


class MetricsServerError(MemwatchError):
    """The metrics endpoint cannot be served (port in use, bad address, TLS files)."""


# --- the live collector ---------------------------------------------------------------------


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _counter(name: str, documentation: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=[])


_Family = GaugeMetricFamily | CounterMetricFamily


def _families() -> dict[str, _Family]:
    """Every family the collector exports, empty; keyed by short name."""
    return {
        "memory": _gauge(
            "memwatch_job_memory_bytes",
            "Memory the job's processes use now, summed over its process tree: "
            "memtype rss (resident), swap (swapped out) or pss (proportional set size, "
            "shared pages split among sharers; only when sampled with PSS). For a job "
            "watched by cgroup or systemd_unit alone, the cgroup's own totals: rss is the RAM "
            "charged to it, page cache included.",
            ("job", "memtype"),
        ),
        "processes": _gauge(
            "memwatch_job_processes",
            "Number of processes of the job at the last sampling pass (0: none running).",
            ("job",),
        ),
        "peak": _gauge(
            "memwatch_job_peak_memory_bytes",
            "Largest RAM + swap total the job held at one moment since its processes appeared "
            "(or memwatch started): a sampled total, one process's high-water mark reached "
            "while watched, or the cgroup's kernel peak reached while watched. Marks reached "
            "before memwatch looked are not in it (see memwatch_job_process_hwm_bytes).",
            ("job",),
        ),
        "process_hwm": _gauge(
            "memwatch_job_process_hwm_bytes",
            "Largest resident high-water mark (VmHWM) of any one process of the job since its "
            "processes appeared. The kernel keeps the mark from the process's start, so it "
            "may have been reached before memwatch started watching; one process's figure, "
            "not a total of the job. Absent for jobs watched by cgroup or systemd_unit alone.",
            ("job",),
        ),
        "peak_at": _gauge(
            "memwatch_job_peak_timestamp_seconds",
            "Unix time of the sampling pass that saw memwatch_job_peak_memory_bytes, so a "
            "peak between two scrapes is not lost.",
            ("job",),
        ),
        "swap_suspected": _gauge(
            "memwatch_job_swap_suspected",
            "1 when the job is suspected of swapping (resident memory flat while swap grows), "
            "else 0.",
            ("job",),
        ),
        "unreadable": _gauge(
            "memwatch_job_unreadable_processes",
            "Processes of the job whose memory the kernel refused to show (permission "
            "denied); their memory is missing from the other figures.",
            ("job",),
        ),
        "size": _gauge(
            "memwatch_job_input_size",
            "Input size of the job, read from its command line (unitless).",
            ("job",),
        ),
        "recommended": _gauge(
            "memwatch_job_recommended_memory_bytes",
            "Memory to provision for the job at an input size, from the model fitted to "
            "its recorded runs (highest plausible shape plus margin).",
            ("job", "size"),
        ),
        "duration": _gauge(
            "memwatch_sample_duration_seconds",
            "How long the last full sampling pass over every watched process took.",
        ),
        "passes": _counter("memwatch_samples_total", "Sampling passes over the watched processes."),
        "read_errors": _counter(
            "memwatch_read_errors_total",
            "Process reads that failed with permission denied, cumulative.",
        ),
        "last_sample": _gauge(
            "memwatch_last_sample_timestamp_seconds",
            "Unix time of the last sampling pass (the snapshot this scrape shows).",
        ),
        "build_info": _gauge(
            "memwatch_build_info",
            "Always 1; the version label names the memwatch version serving these metrics.",
            ("version",),
        ),
    }


class SnapshotCollector:
    """A prometheus_client Collector over the latest immutable Snapshot; never touches /proc.

    ``get_snapshot`` returns the sampler's latest snapshot (None before the first pass,
    when only the build info is exported). Job names must be unique within a snapshot.
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot | None]) -> None:
        self._get_snapshot = get_snapshot

    def describe(self) -> Iterable[Metric]:
        """The families collect() yields, without samples (so registering never scrapes)."""
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        """Build every family fresh from the snapshot at hand."""
        f = _families()
        f["build_info"].add_metric([__version__], 1)
        snap = self._get_snapshot()
        if snap is None:
            return [f["build_info"]]
        for job in snap.jobs:
            _add_job(f, job)
        f["duration"].add_metric([], snap.pass_duration_s)
        f["passes"].add_metric([], snap.passes_total)
        f["read_errors"].add_metric([], snap.read_errors_total)
        f["last_sample"].add_metric([], snap.taken_at_unix_s)
        return list(f.values())


def _add_job(f: dict[str, _Family], j: JobSnapshot) -> None:
    name = j.job
    f["memory"].add_metric([name, "rss"], j.rss_bytes)
    f["memory"].add_metric([name, "swap"], j.swap_bytes)
    if j.pss_bytes is not None:
        f["memory"].add_metric([name, "pss"], j.pss_bytes)
    f["processes"].add_metric([name], j.processes)
    f["peak"].add_metric([name], j.peak_total_bytes)
    if j.process_hwm_bytes is not None:
        f["process_hwm"].add_metric([name], j.process_hwm_bytes)
    if j.peak_at_unix_s is not None:
        f["peak_at"].add_metric([name], j.peak_at_unix_s)
    f["swap_suspected"].add_metric([name], int(j.swap_suspected))
    f["unreadable"].add_metric([name], j.unreadable_processes)
    if j.observed_size is not None:
        f["size"].add_metric([name], j.observed_size)
    for size, recommended in j.recommended_bytes:
        f["recommended"].add_metric([name, size], recommended)


def make_registry(get_snapshot: Callable[[], Snapshot | None]) -> CollectorRegistry:
    """A private registry holding only a SnapshotCollector (no process/platform collectors)."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(get_snapshot))
    return registry


class LiveRun:
    """Turns the samples of one wrapped run into Snapshots: ``measure(on_sample=live)``.

    Called from the sampler thread; ``snapshot()`` is read from scrape threads. Each call
    publishes a new immutable Snapshot (one reference assignment), so no lock is needed.
    """

    def __init__(
        self,
        job: str,
        interval_s: float,
        *,
        size: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job = job
        self.interval_s = interval_s
        self.size = size
        self._clock = clock
        self._epoch: float | None = None  # unix time of the command's start (at_s = 0)
        self._passes = 0
        self._peak: Sample | None = None
        self._recent: deque[Sample] = deque(maxlen=RECENT_SAMPLES)
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot; None before the first sample."""
        return self._snapshot

    def __call__(self, sample: Sample) -> None:
        now = self._clock()
        if self._epoch is None:
            self._epoch = now - sample.at_s
        self._passes += 1
        if self._peak is None or sample.total_bytes > self._peak.total_bytes:
            self._peak = sample
        self._recent.append(sample)
        job = JobSnapshot(
            job=self.job,
            processes=sample.processes,
            rss_bytes=sample.rss_bytes,
            swap_bytes=sample.swap_bytes or 0,  # None: the platform reports no swap
            pss_bytes=sample.pss_bytes,
            peak_total_bytes=self._peak.total_bytes,
            peak_at_unix_s=self._epoch + self._peak.at_s,
            # Now, as the daemon exports it; the run's summary covers the whole run.
            swap_suspected=swapping_recently(self._recent),
            unreadable_processes=0,  # not in a Sample; the final summary counts them
            observed_size=self.size,
        )
        self._snapshot = Snapshot(
            taken_at_unix_s=self._epoch + sample.at_s,
            jobs=(job,),
            pass_duration_s=self._pass_duration(sample.at_s),
            passes_total=self._passes,
            read_errors_total=0,
        )

    def _pass_duration(self, at_s: float) -> float:
        # A Sample carries when its pass ended, not how long it took. The run's sampler
        # starts every pass on the schedule t0 + k*interval, so the time past the last slot
        # is the pass's duration (plus the thread's wake-up latency), as long as it fits
        # in one interval.
        slots = math.floor(at_s / self.interval_s + 1e-9)
        return min(self.interval_s, max(0.0, at_s - slots * self.interval_s))


# --- batch results: memwatch run --pushgateway / --textfile ---------------------------------


def run_job_name(job: str | None, command: Sequence[str]) -> str:
    """The job label of a run: its --job, else the command's basename; valid UTF-8."""
    if job:
        return valid_utf8(job)
    return valid_utf8(os.path.basename(command[0])) if command else "memwatch"


def run_metrics(summary: RunSummary, job: str, completed_at_unix_s: float) -> list[Metric]:
    """The final result of one wrapped run, per the Prometheus batch-job conventions."""

    def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
        family = _gauge(f"memwatch_run_{name}", documentation, ("job",))
        family.add_metric([job], value)
        return family

    p = summary.peak
    families: list[Metric] = [
        gauge(
            "peak_memory_bytes",
            "True peak of the run: RAM + swap of its whole process tree at its peak.",
            p.total_bytes,
        ),
        gauge("peak_rss_bytes", "Resident part of the run's peak.", p.rss_bytes),
    ]
    if p.swap_bytes is not None:
        families.append(
            gauge("peak_swap_bytes", "Swapped-out part of the run's peak.", p.swap_bytes)
        )
    families += [
        gauge("duration_seconds", "Wall-clock duration of the run.", summary.duration_s),
        gauge(
            "exit_status",
            "Exit status of the run: the command's own code, 128+N after signal N.",
            summary.exit_status,
        ),
        gauge(
            "swap_suspected",
            "1 when the run was suspected of swapping (resident memory flat while swap "
            "grew), else 0.",
            int(summary.swap_suspected),
        ),
        gauge(
            "oom_killed", "1 when the OOM killer killed the run, else 0.", int(summary.oom_killed)
        ),
        gauge(
            "last_completion_timestamp_seconds",
            "Unix time at which the run completed (successfully or not).",
            completed_at_unix_s,
        ),
    ]
    if summary.size is not None:
        families.append(gauge("input_size", "Input size of the run (unitless).", summary.size))
    return families


class _StaticCollector:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def run_registry(
    summary: RunSummary, job: str | None = None, completed_at_unix_s: float | None = None
) -> CollectorRegistry:
    """A private registry holding the run's final result (``job`` defaults to run_job_name)."""
    registry = CollectorRegistry()
    when = time.time() if completed_at_unix_s is None else completed_at_unix_s
    name = job or run_job_name(summary.job, summary.command)
    registry.register(_StaticCollector(run_metrics(summary, name, when)))
    return registry


def write_run_textfile(summary: RunSummary, path: str, job: str | None = None) -> None:
    """Write the run's result for node_exporter's textfile collector, atomically.

    The temporary file sits next to ``path`` (same filesystem, so the rename is atomic)
    and does not end in .prom, so the collector never reads it half-written.
    """
    target = os.path.realpath(path)  # a symlink stays a link; its target is replaced
    try:
        write_to_textfile(target, run_registry(summary, job))
    except OSError as err:
        raise OutputError(f"cannot write --textfile {path}: {err.strerror or err}") from err


def push_run(
    summary: RunSummary, url: str, job: str | None = None, timeout_s: float = PUSH_TIMEOUT_S
) -> None:
    """Push the run's result to a Pushgateway, grouping key job=<job> (replaces the group)."""
    name = job or run_job_name(summary.job, summary.command)
    try:
        push_to_gateway(url, job=name, registry=run_registry(summary, name), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace").strip().splitlines()
        reason = f"HTTP {err.code} {err.reason}" + (f": {detail[0]}" if detail else "")
        raise OutputError(f"cannot push to --pushgateway {url}: {reason}") from err
    except urllib.error.URLError as err:
        raise OutputError(f"cannot push to --pushgateway {url}: {err.reason}") from err
    except (OSError, ValueError) as err:  # timeouts, resets, a URL urllib cannot use
        raise OutputError(f"cannot push to --pushgateway {url}: {err}") from err


def pushgateway_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Pushgateway address, or None if it can."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        return f"not a usable URL: {url} ({err})"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL (got {url})"
    if parts.username is not None or parts.password is not None:
        # Never echoed: the URL would carry a password into logs and error messages.
        return (
            "must not carry a user or password (user:pass@host); put the Pushgateway "
            "behind a proxy on loopback, or use --textfile"
        )
    if not parts.hostname:
        return f"no host in {url}"
    return None


# --- serving /metrics over HTTP(S) ----------------------------------------------------------


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


def fan_out_samples(
    *callbacks: Callable[[Sample], None] | None,
) -> Callable[[Sample], None] | None:
    """One on_sample callback calling each given one in turn (None when none is given)."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]

    def fan_out(sample: Sample) -> None:
        for callback in given:
            callback(sample)

    return fan_out


__all__ = [
    "BasicAuth",
    "LiveRun",
    "MetricsServer",
    "MetricsServerError",
    "SnapshotCollector",
    "fan_out_samples",
    "make_registry",
    "push_run",
    "pushgateway_url_problem",
    "run_job_name",
    "run_metrics",
    "run_registry",
    "write_run_textfile",
]
