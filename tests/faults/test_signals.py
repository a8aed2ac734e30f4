"""memwatch stopped and continued (Ctrl-Z, fg), and jobs that stop themselves."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from integration.conftest import REPO

from faults.conftest import wait_until

pytestmark = pytest.mark.integration


def _start(started: list[subprocess.Popen[str]], *job: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "memwatch", "--no-cgroup", "--", *job],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(proc)
    return proc


def _read_until(proc: subprocess.Popen[str], text: str, timeout_s: float = 60.0) -> str:
    """What memwatch wrote to stderr up to the first line holding ``text``."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            pytest.fail(f"memwatch never said {text!r}; it said: {seen.decode()!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            pytest.fail(f"memwatch ended without saying {text!r}: {seen.decode()!r}")
        seen += chunk
    return seen.decode()


def test_stopped_and_continued_memwatch_still_forwards_sigterm(tmp_path: Path, started):
    ready = tmp_path / "ready"
    proc = _start(started, "sh", "-c", f"touch {ready}; exec sleep 120")
    wait_until(ready.exists, "the job to start")
    time.sleep(0.5)  # the signal thread is waiting
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(1.5)  # longer than any wait timeout memwatch may use inside
    os.kill(proc.pid, signal.SIGCONT)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    # The slots lost while memwatch was stopped are not blamed on slow sampling.
    assert "takes longer than --interval" not in stderr
    assert "while memwatch itself was held up" in stderr


def test_job_that_stops_itself_is_reported_and_ended_by_a_forwarded_sigterm(started):
    proc = _start(started, "sh", "-c", "kill -STOP $$; exit 0")
    said = _read_until(proc, "is stopped by SIGSTOP")
    assert "kill -CONT" in said
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    # Forwarded SIGTERM, then SIGCONT: the job acts on it instead of sleeping forever.
    assert proc.returncode == 128 + signal.SIGTERM, stderr
