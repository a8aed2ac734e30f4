"""A sweep whose peaks come from sampling says so, in the report and in the JSON (an
unprivileged sweep fitted a base of 62 MiB against 35 MiB as root, and never said why)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memwatch", "sweep", "--no-warmup", "--sizes", "1,2", "--at", "3"]
        + ["--history", str(tmp_path / "h.sqlite"), *args]
        + ["--", "sh", "-c", "sleep 0.2 # {size}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_sweep_without_cgroup_says_its_peaks_came_from_sampling(tmp_path: Path):
    proc = _sweep(tmp_path, "--no-cgroup", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "cgroup" not in doc["peak_sources"] and sum(doc["peak_sources"].values()) == 2
    note = (
        "the peaks of 2 of 2 fitted runs come from sampling, not from the kernel's cgroup "
        "figure: sampled RSS"
    )
    assert any(w.startswith(note) for w in doc["model"]["warnings"])
    assert any(w.startswith(note) for w in doc["predictions"][0]["warnings"])
    report = _sweep(tmp_path, "--no-cgroup").stdout
    assert f"warning: {note}" in report
