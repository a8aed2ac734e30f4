"""memwatch killed with SIGKILL: its job does not run on unmeasured, its cgroup does not
stay forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from integration.conftest import REPO

from faults.conftest import wait_until
from memwatch.procfs import is_running

pytestmark = pytest.mark.integration


def _memwatch_in(box, *args: str) -> list[str]:
    """memwatch started inside the test cgroup ``box`` (so its job cgroup is made there)."""
    return ["sh", "-c", f'echo $$ > {box.procs} && exec "$@"', "sh"] + [
        sys.executable,
        "-m",
        "memwatch",
        *args,
    ]


def test_killed_memwatch_ends_its_job_and_the_next_run_removes_its_cgroup(
    make_cgroup, tmp_path: Path, started
):
    box = make_cgroup()
    pidfile = tmp_path / "job.pid"
    job = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec sleep 120"
    proc = subprocess.Popen(
        _memwatch_in(box, "--", "sh", "-c", job),
        cwd=REPO,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started.append(proc)
    wait_until(pidfile.exists, "the job to start")
    job_pid = int(pidfile.read_text())
    job_cgroup = box.path / f"memwatch-{proc.pid}"
    assert job_cgroup.is_dir()

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The job gets SIGTERM when memwatch dies (PR_SET_PDEATHSIG): it does not run on.
    wait_until(lambda: not is_running(job_pid), "the job to end after memwatch was killed")
    assert job_cgroup.is_dir()  # nobody was left to remove it

    again = subprocess.run(
        _memwatch_in(box, "--", "true"), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert not job_cgroup.exists()
    assert (
        f"removed 1 empty job cgroup(s) left by memwatch processes that were killed: "
        f"{job_cgroup}" in again.stderr
    )
