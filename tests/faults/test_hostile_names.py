"""Job and command names that are not UTF-8 (legal in argv and file names) lose nothing:
not the exit status, the summary, the JSON, the history, the metrics, a sweep's report."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from memwatch.history import History

pytestmark = pytest.mark.integration

REPLACED = "\ufffd"  # how memwatch shows a byte that is not UTF-8


def _memwatch(*args: str | bytes) -> list[str | bytes]:
    return [sys.executable, "-m", "memwatch", *args]


def _tool(tmp_path: Path, name: bytes, source: str = "/bin/true") -> bytes:
    path = os.path.join(os.fsencode(tmp_path), name)
    shutil.copy(source, path)
    os.chmod(path, 0o755)
    return path


def test_run_with_a_non_utf8_job_and_command_writes_every_output(tmp_path: Path):
    tool = _tool(tmp_path, b"tr\xff")
    history = tmp_path / "h.sqlite"
    out, prom = tmp_path / "s.json", tmp_path / "s.prom"
    proc = subprocess.run(
        _memwatch("--no-cgroup", "--job", b"j\xff", "--json", str(out), "--textfile", str(prom))
        + ["--history", str(history), "--", tool],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"memwatch: peak " in proc.stderr and b"Traceback" not in proc.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["job"] == f"j{REPLACED}"
    assert summary["command"][0].endswith(f"tr{REPLACED}")
    assert f'memwatch_run_exit_status{{job="j{REPLACED}"}} 0.0' in prom.read_text("utf-8")
    assert len(History(str(history)).runs(f"j{REPLACED}")) == 1


def test_live_metrics_of_a_non_utf8_command_are_served(tmp_path: Path, started):
    gate = tmp_path / "go"
    script = tmp_path / "wait.sh"
    script.write_text(f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n")
    tool = _tool(tmp_path, b"w\xff", str(script))
    proc = subprocess.Popen(
        _memwatch("--no-cgroup", "--metrics-port", "0", "--", tool),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    started.append(proc)
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], 60)
    assert ready, "memwatch never said where it serves"
    first = proc.stderr.readline().decode()
    url = first.rsplit(" ", 1)[-1].strip()
    assert url.startswith("http://127.0.0.1:"), first
    body = ""
    deadline = time.monotonic() + 60
    while "memwatch_job_memory_bytes{" not in body and time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read().decode("utf-8")
        time.sleep(0.05)
    gate.touch()
    proc.wait(timeout=60)
    assert f'memwatch_job_processes{{job="w{REPLACED}"}}' in body
    assert proc.returncode == 0


def test_sweep_of_a_non_utf8_command_keeps_its_report_and_history(tmp_path: Path):
    history = tmp_path / "h.sqlite"
    proc = subprocess.run(
        _memwatch("sweep", "--no-cgroup", "--no-warmup", "--sizes", "1,2", "--json", "-")
        + ["--history", str(history), "--", "sh", "-c", "sleep 0.3 # {size}", b"x\xff"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    assert b"Traceback" not in proc.stderr, proc.stderr
    assert "model" in json.loads(proc.stdout)
    (job,) = History(str(history)).jobs()
    assert job == f"sh -c sleep 0.3 # {{size}} x{REPLACED}"
    assert proc.returncode == 0, proc.stderr
