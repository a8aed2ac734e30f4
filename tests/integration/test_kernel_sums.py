"""A wrapped run sampled from its job cgroup on the real cgroup v1 hierarchy of this machine.

(The v2 code paths are tested on fake trees in tests/unit; the daemon's cgroup entries in
test_daemon.py.) Needs root and a v1 memory controller: skipped on a laptop without
them, failed under CI=true.
"""

from __future__ import annotations

import json
import sys

# A parent whose children exec sleep: more processes than one page of cgroup.procs lists.
IDLE_TREE = r"""
import os, sys, time
n, hold = int(sys.argv[1]), sys.argv[2]
kids = [os.fork() or os.execv("/bin/sleep", ["sleep", hold]) for _ in range(n - 1)]
for k in kids:
    os.waitpid(k, 0)
"""


def test_a_run_of_800_processes_is_sampled_from_its_job_cgroup(memwatch, make_cgroup, tmp_path):
    make_cgroup()  # needs root and the v1 controller, like the job cgroup does
    samples = tmp_path / "samples.jsonl"
    tree = [sys.executable, "-c", IDLE_TREE, "800", "4"]
    result = memwatch(["--interval", "0.05", "--samples", str(samples)], tree)
    assert result.returncode == 0, result.stderr
    summary = result.summary
    assert summary["peak"]["source"] == "cgroup", summary["warnings"]
    assert not [w for w in summary["warnings"] if "moved out" in w]  # all 800 were seen in it
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert max(r["processes"] for r in rows) == 800
    # A sample is the cgroup's charge: never above the kernel's peak, and at its largest
    # within 5 % of it (the job held its memory for seconds, sampled every 50 ms).
    top = max(r["total_bytes"] for r in rows)
    assert 0.95 * summary["cgroup"]["total_bytes"] <= top <= summary["cgroup"]["total_bytes"]
