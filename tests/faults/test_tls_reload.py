"""SIGHUP while Prometheus scrapes over TLS: renewed certificates are served, and no scrape
is refused or reset meanwhile (10 reloads gave 3 refused connections and 1 reset)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from integration.conftest import free_port, tool

pytestmark = pytest.mark.integration


def _cert(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"]
        + ["-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def _install(pair: tuple[Path, Path], cert: Path, key: Path) -> None:
    """Replace the served files atomically, as certbot's deploy does."""
    for source, target in zip(pair, (cert, key), strict=True):
        shutil.copy(source, f"{target}.new")
        os.replace(f"{target}.new", target)


def _scrape(port: int) -> bytes:
    """One HTTPS scrape; returns the DER of the certificate the server presented."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    try:
        conn.connect()
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200 and b"memwatch_build_info" in body
        return der
    finally:
        conn.close()


def _listening_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:port (/proc/net/tcp, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return fields[9]
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


def _der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_sighup_during_scrapes_serves_new_certificates_without_refusing_any(
    tmp_path: Path, started
):
    a, b = _cert(tmp_path, "a"), _cert(tmp_path, "b")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    _install(a, cert, key)
    config = tmp_path / "memwatch.yaml"
    config.write_text(
        f"history: {tmp_path / 'h.sqlite'}\n"
        f"web:\n  tls_server_config:\n    cert_file: {cert}\n    key_file: {key}\n"
        "watch:\n  - name: init\n    pid: 1\n"
    )
    port = free_port()
    log = tmp_path / "daemon.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memwatch", "daemon", "--config", str(config)]
            + ["--port", str(port)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    started.append(proc)
    deadline = time.monotonic() + 60
    while True:
        try:
            assert _scrape(port) == _der(a[0])
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the daemon did not serve:\n{log.read_text()}")
            time.sleep(0.05)

    failures: list[str] = []
    scrapes = [0]
    stop = threading.Event()

    def scrape_all_the_time() -> None:
        while not stop.is_set():
            try:
                _scrape(port)
                scrapes[0] += 1
            except (OSError, AssertionError, http.client.HTTPException) as err:
                failures.append(repr(err))

    listening = _listening_inode(port)
    scrapers = [threading.Thread(target=scrape_all_the_time) for _ in range(4)]
    for scraper in scrapers:
        scraper.start()
    try:
        for i in range(10):
            _install(b if i % 2 == 0 else a, cert, key)
            reloads = log.read_text().count("reloaded:")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while log.read_text().count("reloaded:") <= reloads:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
    finally:
        stop.set()
        for scraper in scrapers:
            scraper.join()
    assert failures == []
    assert _listening_inode(port) == listening  # the same socket: never closed and rebound
    assert scrapes[0] > 0
    assert _scrape(port) == _der(a[0])  # the last reload installed a again
