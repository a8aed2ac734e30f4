"""Unusable standard streams (cron, CI log pipes that went away) never cost the job's
exit status, with and without PYTHONUNBUFFERED (CI sets it; cron and most shells do not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from integration.conftest import REPO

pytestmark = pytest.mark.integration


def _env(unbuffered: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
def test_full_stderr_does_not_cost_the_exit_status(unbuffered, tmp_path):
    out = tmp_path / "s.json"
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "memwatch", "--no-cgroup", "--json", str(out), "--"]
            + ["sh", "-c", "exit 3"],
            stderr=full,
            cwd=REPO,
            env=_env(unbuffered),
            timeout=120,
        )
    assert proc.returncode == 3
    assert json.loads(out.read_text())["exit_code"] == 3


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
def test_closed_stderr_keeps_the_summary_off_stdout_and_the_exit_status(unbuffered, tmp_path):
    out = tmp_path / "s.json"
    proc = subprocess.run(
        [sys.executable, "-m", "memwatch", "--json", str(out), "--"]
        + ["sh", "-c", "echo job-out; echo job-err >&2; exit 3"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(2),
        cwd=REPO,
        env=_env(unbuffered),
        timeout=120,
    )
    # stdout is the job's alone; its stderr went nowhere (no memwatch file took fd 2).
    assert (proc.returncode, proc.stdout) == (3, "job-out\n")
    assert json.loads(out.read_text())["exit_code"] == 3
