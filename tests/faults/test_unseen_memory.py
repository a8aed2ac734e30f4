"""Memory no process maps (a memfd written, not mapped) is in no process's figures: without
a cgroup the bounds must not claim they cover the job (1 GiB reported as 9.5 .. 9.5 MiB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MIB = 1 << 20
HOLD = f"""
import os, time
fd = os.memfd_create("held")
chunk = b"x" * {MIB}
for _ in range(256):
    os.write(fd, chunk)
time.sleep(1)
"""


def test_unmapped_shared_memory_widens_the_upper_bound_and_is_warned_about(tmp_path: Path):
    out = tmp_path / "s.json"
    proc = subprocess.run(
        [sys.executable, "-m", "memwatch", "--no-cgroup", "-q", "--json", str(out), "--"]
        + [sys.executable, "-c", HOLD],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["peak"]["total_bytes"] < 128 * MIB  # what sampling sees: the interpreter
    upper = summary["bounds"]["upper_bytes"]
    assert upper is None or upper >= 256 * MIB
    assert any("shared memory (memfd, tmpfs, SysV) grew by" in w for w in summary["warnings"])
