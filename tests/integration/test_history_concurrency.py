"""Many real memwatch processes writing one history (SQLite, PostgreSQL) at once lose no run."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from memwatch.history import History, open_history

from .conftest import REPO

# One child: load everything, report ready, wait for the starting gun (EOF on a pipe that
# the test closes once every child is ready), then record ``count`` runs or read ``count``
# times. Readers check that they only ever see whole runs, in id order.
CHILD = """
import os, sys
from memwatch.history import open_history
from memwatch.measures import Bounds, Peak, RunSummary

path, role, index, count, ready, gun = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
history = open_history(path)
os.write(ready, b".")
os.read(gun, 1)
if role == "write":
    for n in range(count):
        size = float(index * 1000 + n)
        summary = RunSummary(
            command=("job", str(size)), exit_code=0, signal=None, oom_killed=False,
            duration_s=1.0, interval_s=0.1, samples=10,
            peak=Peak(int(size) << 20, int(size) << 20, 0, None, 0.5, "sampling"),
            bounds=Bounds(int(size) << 20, int(size) << 20), ru_maxrss_bytes=None,
            swap_suspected=False, size=size,
        )
        print(history.record(summary, job=f"job{index % 4}", host=f"host{index}"), flush=True)
else:
    for _ in range(count):
        runs = history.runs()
        assert [r.id for r in runs] == sorted(r.id for r in runs)
        assert all(r.command == ("job", str(r.size)) for r in runs)
        print(len(runs), flush=True)
"""


def run_at_once(
    path: Path | str, roles: list[tuple[str, int]], started: list[subprocess.Popen[str]]
) -> list[str]:
    """Start one child per (role, count), release them together; each one's stdout."""
    ready_r, ready_w = os.pipe()
    gun_r, gun_w = os.pipe()
    open_fds = {ready_r, ready_w, gun_r, gun_w}

    def close(fd: int) -> None:
        open_fds.remove(fd)
        os.close(fd)

    try:
        for index, (role, count) in enumerate(roles):
            args = [str(path), role, str(index), str(count), str(ready_w), str(gun_r)]
            started.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, *args],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    pass_fds=(ready_w, gun_r),
                    start_new_session=True,
                )
            )
        close(ready_w)  # now only the children hold these ends
        close(gun_r)
        ready = 0
        while ready < len(roles):
            # Poll, not a deadline: a loaded machine may take long to start the children,
            # but a child that died before it was ready fails the test at once.
            if select.select([ready_r], [], [], 1.0)[0]:
                ready += len(os.read(ready_r, len(roles)))
            dead = [p for p in started if p.poll() is not None]
            if dead:
                pytest.fail(f"a child died before the start: {dead[0].communicate()[1]}")
        close(gun_w)  # every child's read returns at once
    finally:
        for fd in open_fds:
            os.close(fd)
    outputs = []
    for proc in started:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def sixteen_writers_lose_no_run(location: str, started: list[subprocess.Popen[str]]) -> None:
    outputs = run_at_once(location, [("write", 1)] * 16, started)
    uids = {out.strip(): (index * 1000.0, f"host{index}") for index, out in enumerate(outputs)}
    runs = open_history(location).runs()
    assert len(runs) == 16
    assert {r.uid: (r.size, r.host) for r in runs} == uids
    assert open_history(location).jobs() == ["job0", "job1", "job2", "job3"]


def test_sixteen_processes_recording_into_a_new_file_lose_no_run(tmp_path, started):
    # The directory is made concurrently too.
    sixteen_writers_lose_no_run(str(tmp_path / "new-dir" / "history.sqlite"), started)


def test_sixteen_hosts_recording_into_a_new_postgresql_history_lose_no_run(pg_url, started):
    sixteen_writers_lose_no_run(pg_url, started)


def test_readers_during_concurrent_writes_see_whole_runs_and_never_fail(tmp_path, started):
    path = tmp_path / "history.sqlite"
    outputs = run_at_once(path, [("write", 10)] * 8 + [("read", 20)] * 4, started)
    written = [line for out in outputs[:8] for line in out.split()]
    assert len(set(written)) == 80
    assert sorted(r.uid for r in History(str(path)).runs()) == sorted(written)
    for out in outputs[8:]:
        seen = [int(line) for line in out.split()]
        assert seen == sorted(seen)
        assert all(0 <= n <= 80 for n in seen)
