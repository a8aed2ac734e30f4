"""What memwatch must not tell: its Python version, a misplaced password hash; and what it
must: a certificate that expired."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time

import bcrypt
import pytest

from memwatch import cli
from memwatch.config import WebConfig
from memwatch.exporter import make_registry
from memwatch.metrics_server import MetricsServer

HASH = "$2y$12$abcdefghijklmnopqrstuuWq0QKkbZ6mJL3o2ydQ7nxl7S9Z6b3uW"


@pytest.mark.parametrize("authorized", [True, False], ids=["after-auth", "401"])
def test_no_response_names_the_python_version(authorized):
    web = WebConfig(basic_auth_users=(("prom", bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()),))
    server = MetricsServer(make_registry(lambda: None), "127.0.0.1", 0, web)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        headers = {"Authorization": "Basic cHJvbTpwdw=="} if authorized else {}
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
    finally:
        server.stop()
    assert response.status == (200 if authorized else 401)
    assert response.getheader("Server") == "memwatch"


@pytest.mark.parametrize(
    "text",
    [
        f"listen_address: {HASH}\nwatch:\n  - name: a\n    pid: 1\n",
        f"watch:\n  - name: a\n    pid: 1\n    password: {HASH}\n",
        f"watch:\n  - name: a\n    pid: '{HASH}'\n",
        f"web:\n  tls_server_config:\n    cert_file: '{HASH}'\n    key_file: k\nwatch: []\n",
        f"watch:\n  - name: a\n    pid: 1\n  {HASH}: x\n",  # a hash as a key, bad YAML too
    ],
    ids=["listen_address", "unknown-key", "pid", "cert_file", "syntax"],
)
def test_a_bcrypt_hash_under_the_wrong_key_is_never_echoed(tmp_path, capsys, text):
    path = tmp_path / "memwatch.yaml"
    path.write_text(text)
    assert cli.main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err and HASH not in err and HASH[7:30] not in err


def test_an_expired_certificate_is_a_warning_from_check_config(tmp_path, capsys, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=localhost", "-keyout", tmp_path / "c.key", "-out", tmp_path / "c.crt"],
        check=True,
        capture_output=True,
    )
    path = tmp_path / "memwatch.yaml"
    path.write_text(
        "web:\n  tls_server_config:\n    cert_file: c.crt\n    key_file: c.key\n"
        "watch:\n  - name: a\n    pid: 1\n"
    )
    later = time.time() + 3 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (1 watch entry)\n"
    assert err.startswith(
        f"{path}:3: web.tls_server_config.cert_file: warning: the certificate expired on "
    )
    assert err.count("\n") == 1
