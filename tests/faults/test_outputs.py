"""Output paths: - is stdout everywhere, a FIFO nobody reads never blocks, a path where no
file can be made is refused before the job runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _memwatch(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memwatch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_json_dash_writes_the_summary_to_stdout_after_the_jobs_output(tmp_path: Path):
    proc = _memwatch(tmp_path, "--no-cgroup", "-q", "--json", "-", "--", "echo", "job says hi")
    assert proc.returncode == 0, proc.stderr
    job_line, _, rest = proc.stdout.partition("\n")
    assert job_line == "job says hi"
    assert json.loads(rest)["schema"] == "memwatch.run/1"
    assert not (tmp_path / "-").exists()


def test_run_samples_dash_streams_csv_to_stdout(tmp_path: Path):
    proc = _memwatch(tmp_path, "--no-cgroup", "-q", "--samples", "-", "--", "true")
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.splitlines()[0] == "at_s,total_bytes,rss_bytes,swap_bytes,pss_bytes,processes"
    )
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("json_args", [["--json"], ["--json", "-"]], ids=["bare", "dash"])
def test_fit_json_goes_to_stdout_bare_or_dash(tmp_path: Path, json_args):
    runs = tmp_path / "runs.csv"
    runs.write_text("size,peak_bytes\n1,100000000\n2,200000000\n3,300000000\n")
    proc = _memwatch(tmp_path, "fit", str(runs), "--at", "4", *json_args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["size"] == 4
    assert not (tmp_path / "-").exists()


def test_fit_json_to_a_file_keeps_the_report_on_stdout(tmp_path: Path):
    runs = tmp_path / "runs.csv"
    runs.write_text("size,peak_bytes\n1,100000000\n2,200000000\n3,300000000\n")
    out = tmp_path / "fit.json"
    proc = _memwatch(tmp_path, "fit", str(runs), "--at", "4", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["predictions"][0]["size"] == 4
    assert proc.stdout.split()[:3] == ["size", "peak", "runs"]  # the report for people


def test_json_to_a_fifo_nobody_reads_fails_at_once_and_keeps_the_summary(tmp_path: Path):
    fifo = tmp_path / "summary.json"
    os.mkfifo(fifo)
    proc = _memwatch(tmp_path, "--no-cgroup", "--json", str(fifo), "--", "sh", "-c", "exit 3")
    assert proc.returncode == 125
    assert "memwatch: peak " in proc.stderr  # the measurement is not lost
    assert proc.stderr.splitlines()[-1] == (
        f"memwatch: error: cannot write --json {fifo}: no process is reading it (the "
        "command ended with exit status 3; its summary is above)"
    )


@pytest.mark.parametrize("where", ["/proc/memwatch-test.json", "/sys/memwatch-test.json"])
def test_json_where_no_file_can_be_made_is_refused_before_the_job_runs(tmp_path: Path, where):
    marker = tmp_path / "ran"
    proc = _memwatch(tmp_path, "--no-cgroup", "--json", where, "--", "touch", str(marker))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"memwatch: error: --json {where}: cannot create a file in ")
    assert proc.stderr.count("\n") == 1
    assert not marker.exists()
