"""Metrics with real components on loopback: a real Pushgateway, TLS + basic auth, promtool.

Needs the Debian packages prometheus (promtool) and prometheus-pushgateway, and openssl:
skipped with a reason where they are missing, failed under CI=true. Every process a test
starts is killed by the ``started`` fixture, also when the test fails.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memwatch.config import WebConfig
from memwatch.exporter import make_registry
from memwatch.measures import JobSnapshot, Snapshot
from memwatch.metrics_server import MetricsServer

from .conftest import MIB, fetch, free_port, memhog, start_server, tool

DEADLINE_S = 60.0  # generous: readiness is polled, never assumed after a fixed sleep


def promtool_check_metrics(text: str) -> None:
    """`promtool check metrics` accepts ``text``: no error and no lint problem."""
    res = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` in a text exposition: {sorted label pairs: value}."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.fixture
def pushgateway(tmp_path: Path, started: list[subprocess.Popen[str]]) -> str:
    """A real Pushgateway on a free loopback port, no persistence; returns its URL."""
    exe = tool("prometheus-pushgateway")
    return start_server(
        started,
        lambda port, _attempt: [exe, f"--web.listen-address=127.0.0.1:{port}"],
        tmp_path,
        "pushgateway",
    )


def peak_of(cli, tmp_path: Path, job: list[str], *args: str) -> int:
    """Run ``job`` under memwatch; its peak from the JSON summary."""
    summary = tmp_path / "peak.json"
    code, _, err = cli("run", "--json", str(summary), *args, "--", *job)
    assert code == 0, err
    return int(json.loads(summary.read_text())["peak"]["total_bytes"])


def test_a_wrapped_job_pushes_its_peak_to_a_real_pushgateway(cli, pushgateway, tmp_path):
    held = 50 * MIB
    # What the interpreter itself costs, measured the same way: ~7 MiB charged to a job
    # cgroup, ~13 MiB of RSS where memwatch can only sample (shared library pages count).
    interpreter = peak_of(cli, tmp_path, memhog("hold", 0, 0.5))
    measured = peak_of(
        cli, tmp_path, memhog("hold", held // MIB, 0.5), "--job", "pushtest",
        "--pushgateway", pushgateway,
    )  # fmt: skip

    text = fetch(f"{pushgateway}/metrics")
    pushed = series(text, "memwatch_run_peak_memory_bytes")
    [(labels, value)] = [(k, v) for k, v in pushed.items() if ("job", "pushtest") in k]
    assert value == measured  # the push carries the measurement itself
    expected = held + interpreter  # ~57 MiB with a job cgroup
    assert abs(value - expected) <= 0.10 * expected, (value / MIB, expected / MIB)
    assert series(text, "memwatch_run_exit_status")[labels] == 0
    assert series(text, "memwatch_run_oom_killed")[labels] == 0


def test_a_failed_push_keeps_the_summary_and_exits_125(cli):
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = cli("run", "-q", "--pushgateway", url, "--", *memhog("exit", 0))
    assert code == 125
    assert "memwatch: peak " in err
    assert err.splitlines()[-1].startswith(f"memwatch: error: cannot push to --pushgateway {url}")
    assert "Traceback" not in err


# --- TLS and basic auth ---------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI: (cert, key)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            tool("openssl"), "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=memwatch-test",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


SNAPSHOT = Snapshot(
    taken_at_unix_s=time.time(),
    jobs=(JobSnapshot("tlsjob", 2, 64 * MIB, 0, None, 70 * MIB, time.time(), False, 0),),
    pass_duration_s=0.001,
    passes_total=1,
    read_errors_total=0,
)


@pytest.fixture
def tls_server(certificate: tuple[str, str]) -> Iterator[MetricsServer]:
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=10)).decode()
    web = WebConfig(
        cert_file=certificate[0], key_file=certificate[1], basic_auth_users=(("prom", hashed),)
    )
    server = MetricsServer(make_registry(lambda: SNAPSHOT), "127.0.0.1", 0, web)
    server.start()
    yield server
    server.stop()


def https_get(server: MetricsServer, cafile: str, auth: tuple[str, str] | None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=cafile)  # verifies the chain and 127.0.0.1
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + b64encode(":".join(auth).encode()).decode()
    try:
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_scrape_over_tls_with_basic_auth(tls_server, certificate):
    assert tls_server.url.startswith("https://")
    status, body = https_get(tls_server, certificate[0], ("prom", "correct horse"))
    assert status == 200
    assert series(body, "memwatch_job_processes") == {(("job", "tlsjob"),): 2}
    promtool_check_metrics(body)
    # Again: now from the cache of successful checks, same answer.
    assert https_get(tls_server, certificate[0], ("prom", "correct horse"))[0] == 200


@pytest.mark.parametrize(
    "auth", [None, ("prom", "wrong"), ("nobody", "correct horse")], ids=["none", "wrong", "user"]
)
def test_scrape_over_tls_without_valid_credentials_is_refused(tls_server, certificate, auth):
    status, body = https_get(tls_server, certificate[0], auth)
    assert status == 401
    assert "memwatch_" not in body


def test_plain_http_to_the_tls_port_gets_no_metrics(tls_server):
    conn = http.client.HTTPConnection("127.0.0.1", tls_server.port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return  # the server dropped the connection: refused
    finally:
        conn.close()
    assert b"memwatch_" not in body


def test_a_client_stalled_before_the_tls_handshake_blocks_no_one(tls_server, certificate):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30):
        status, _ = https_get(tls_server, certificate[0], ("prom", "correct horse"))
    assert status == 200


# --- memwatch run --metrics-port / --textfile -----------------------------------------------


def read_line(proc: subprocess.Popen[str], deadline_s: float = DEADLINE_S) -> str:
    """The next line of the process's stderr, waiting at most ``deadline_s``."""
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        if not sel.select(deadline_s):
            pytest.fail("memwatch printed nothing before the deadline")
    return proc.stderr.readline()


def test_metrics_port_serves_the_running_jobs_memory(cli):
    hold = 100 * MIB
    proc = cli(
        "run", "--no-cgroup", "--job", "livejob", "--metrics-port", "0",
        "--", *memhog("hold", hold // MIB, 120), wait=False,
    )  # fmt: skip
    line = read_line(proc)
    assert line.startswith("memwatch: serving live metrics at http://127.0.0.1:"), line
    url = line.split(" at ", 1)[1].strip()

    deadline = time.monotonic() + DEADLINE_S
    rss = 0.0
    while time.monotonic() < deadline:
        text = fetch(url)
        rss = series(text, "memwatch_job_memory_bytes").get(
            (("job", "livejob"), ("memtype", "rss")), 0.0
        )
        if rss >= 0.9 * hold:
            break
        time.sleep(0.1)
    assert rss >= 0.9 * hold, rss / MIB
    promtool_check_metrics(text)  # (e): a real scrape passes promtool
    peak = series(text, "memwatch_job_peak_memory_bytes")[(("job", "livejob"),)]
    assert peak >= rss
    assert series(text, "memwatch_job_peak_timestamp_seconds")[(("job", "livejob"),)] <= time.time()

    os.kill(proc.pid, signal.SIGTERM)  # forwarded to the job; memwatch then summarises
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "memwatch: peak " in err
    with pytest.raises(OSError):
        fetch(url)  # the server stopped with the job


def test_textfile_passes_promtool(cli, tmp_path):
    path = tmp_path / "memwatch.prom"
    code, _, err = cli(
        "run", "--job", "nightly", "--size", "1000", "--textfile", str(path),
        "--", *memhog("hold", 20, 0.2),
    )  # fmt: skip
    assert code == 0, err
    text = path.read_text()
    promtool_check_metrics(text)
    assert series(text, "memwatch_run_input_size") == {(("job", "nightly"),): 1000}
    assert series(text, "memwatch_run_peak_memory_bytes")[(("job", "nightly"),)] >= 20 * MIB
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("memwatch")] == [path.name]


def test_collector_output_passes_promtool():
    promtool_check_metrics(generate_latest(make_registry(lambda: SNAPSHOT)).decode())
    promtool_check_metrics(generate_latest(make_registry(lambda: None)).decode())


def test_metrics_port_in_use_fails_before_the_command_starts(cli, tmp_path):
    marker = tmp_path / "ran"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli(
            "run", "--metrics-port", str(port), "--", sys.executable, "-c",
            f"open({str(marker)!r}, 'w')",
        )  # fmt: skip
    assert code == 125
    assert err == (
        f"memwatch: error: cannot listen on 127.0.0.1:{port}: port already in use; "
        "choose another port or stop what listens there\n"
    )
    assert not marker.exists()
