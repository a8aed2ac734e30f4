"""Planning against a real limit: a real sweep inside a memory-limited cgroup, then real runs."""

from __future__ import annotations

import json
import sys

from .conftest import MEMHOG, MIB

LIMIT = 320 * MIB


def hold(size: object) -> list[str]:
    return [sys.executable, MEMHOG, "hold", str(size), "0.3"]


def test_the_cgroup_limit_is_the_budget_and_its_verdicts_come_true(cli, make_cgroup):
    # RAM and RAM+swap limited alike: over the limit the job is OOM-killed, never swapped.
    box = make_cgroup(limit_bytes=LIMIT, memsw_limit_bytes=LIMIT)
    code, out, err = cli(
        "sweep",
        "--sizes",
        "20,40,60,80,100",
        "--at",
        "150",
        "--at",
        "400",
        "--max-size-for",
        f"{LIMIT}",
        "--json",
        "--",
        *hold("{size}"),
        in_cgroup=box,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["budget"]["source"] == "cgroup limit"
    assert doc["budget"]["bytes"] == LIMIT
    fits, too_big = doc["predictions"]
    assert fits["fits"] and fits["parallel_tasks"] >= 1
    assert not too_big["fits"] and too_big["parallel_tasks"] == 0
    largest = doc["max_size"]["size"]
    assert 150 < largest < 400

    # What was predicted to fit completes in that cgroup; what was not is OOM-killed.
    for size, completes in ((150, True), (largest, True), (400, False)):
        code, out, err = cli("run", "-q", "--json", "/dev/stderr", "--", *hold(size), in_cgroup=box)
        summary = json.loads(err[err.index("{") :])
        assert (code == 0) == completes, (size, code, summary["warnings"])
        assert summary["oom_killed"] == (not completes), (size, summary["warnings"])
