"""memwatch.history: the SQLite run store, its schema marks and its refusals."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memwatch import history
from memwatch.errors import HistoryError
from memwatch.history import (
    APPLICATION_ID,
    History,
    HistoryRun,
    default_path,
    new_entry,
    open_history,
)
from memwatch.report import to_json

NOBODY = 65534


def files(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` with its bytes: proves nothing was changed or added."""
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def sql(path: Path, *statements: str) -> list[tuple[object, ...]]:
    """Run statements on the file directly; the rows of the last one."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            rows = conn.execute(statement).fetchall()
    conn.close()
    return rows


@pytest.fixture
def owner_dir() -> Iterator[Path]:
    """A directory the test runs as the owner of: as nobody when root, who ignores file modes."""
    path = Path(tempfile.mkdtemp(prefix="memwatch-test-"))
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(path, NOBODY, NOBODY)
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    try:
        yield path
    finally:
        path.chmod(0o700)
        if as_root:
            os.seteuid(0)
            os.setegid(0)
        shutil.rmtree(path)


def test_a_recorded_run_reads_back_with_every_field(tmp_path, run_summary):
    summary = run_summary(
        exit_code=None, signal=signal.SIGKILL, oom_killed=True, swap_suspected=True, size=2000.0
    )
    store = History(str(tmp_path / "history.sqlite"))
    before = time.time()
    uid = store.record(summary, job="train", host="node7")
    after = time.time()
    [run] = store.runs()
    assert run == HistoryRun(
        id=1,
        recorded_at=run.recorded_at,
        job="train",
        size=2000.0,
        peak_bytes=summary.peak.total_bytes,
        exit_status=128 + signal.SIGKILL,
        oom_killed=True,
        swap_suspected=True,
        duration_s=summary.duration_s,
        source="cgroup",
        command=("python3", "train.py", "--rows", "1000000"),
        host="node7",
        uid=uid,
    )
    assert before <= run.recorded_at <= after


def test_the_host_defaults_to_this_machines_name(tmp_path, run_summary):
    store = History(str(tmp_path / "history.sqlite"))
    store.record(run_summary(), job="train")
    assert [r.host for r in store.runs()] == [socket.gethostname()]


def test_a_run_without_size_stores_null(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    History(str(path)).record(run_summary(size=None), job="train")
    assert History(str(path)).runs()[0].size is None
    assert sql(path, "SELECT size, typeof(command) FROM runs") == [(None, "text")]


def test_the_whole_json_summary_is_kept(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    summary = run_summary(warnings=("short job",), size=3.5, job="train")
    History(str(path)).record(summary, job="train")
    [(text,)] = sql(path, "SELECT summary FROM runs")
    assert json.loads(text) == to_json(summary)


def test_the_file_is_marked_as_a_memwatch_history_with_a_rollback_journal(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    History(str(path)).record(run_summary(), job="train")
    assert sql(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert sql(path, "PRAGMA user_version") == [(2,)]
    assert sql(path, "PRAGMA journal_mode") == [("delete",)]


def test_runs_are_oldest_first_and_filter_by_job(tmp_path, run_summary):
    store = History(str(tmp_path / "history.sqlite"))
    uids = [store.record(run_summary(size=float(n)), job=job) for n, job in enumerate("abab")]
    assert [r.uid for r in store.runs()] == uids
    assert [r.id for r in store.runs()] == [1, 2, 3, 4]
    assert [r.size for r in store.runs("b")] == [1.0, 3.0]
    assert store.runs("nope") == []


def test_jobs_are_distinct_and_sorted(tmp_path, run_summary):
    store = History(str(tmp_path / "history.sqlite"))
    for job in ("train", "etl", "train", "Build"):
        store.record(run_summary(), job=job)
    assert store.jobs() == ["Build", "etl", "train"]


def test_reading_a_missing_history_finds_nothing_and_creates_nothing(tmp_path):
    store = History(str(tmp_path / "not-yet" / "history.sqlite"))
    assert store.runs() == []
    assert store.runs("train") == []
    assert store.jobs() == []
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_becomes_a_history(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    path.touch()
    assert History(str(path)).runs() == []
    History(str(path)).record(run_summary(), job="train")
    assert History(str(path)).jobs() == ["train"]


def test_record_creates_missing_directories(tmp_path, run_summary):
    path = tmp_path / "a" / "b" / "history.sqlite"
    History(str(path)).record(run_summary(), job="train")
    assert len(History(str(path)).runs()) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"MEMWATCH_HISTORY": "/srv/h.db", "XDG_DATA_HOME": "/xdg", "HOME": "/home/u"},
            "/srv/h.db",
        ),
        (
            {"MEMWATCH_HISTORY": "", "XDG_DATA_HOME": "/xdg", "HOME": "/home/u"},
            "/xdg/memwatch/history.sqlite",
        ),
        (
            {"XDG_DATA_HOME": "relative/is/ignored", "HOME": "/home/u"},
            "/home/u/.local/share/memwatch/history.sqlite",
        ),
        ({"HOME": "/home/u"}, "/home/u/.local/share/memwatch/history.sqlite"),
    ],
)
def test_default_path_prefers_env_then_xdg_then_home(env, expected):
    assert default_path(env) == expected


def test_default_path_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("MEMWATCH_HISTORY", "/srv/from-env.db")
    assert default_path() == "/srv/from-env.db"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("CREATE TABLE notes (body TEXT)", "it has other tables"),
        ("PRAGMA application_id = 4660", "its application_id is 0x1234"),
        ("PRAGMA user_version = 7", "its user_version is 7"),
    ],
)
def test_another_programs_database_is_refused_and_left_alone(tmp_path, run_summary, setup, reason):
    path = tmp_path / "notes.db"
    sql(path, setup)
    messages = refusals(path, run_summary, jobs_too=True)
    expected = f"{path} is not a memwatch history ({reason}); pass --history with another path"
    assert messages == [expected] * 3


def test_a_history_from_a_newer_memwatch_is_refused_and_left_alone(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    History(str(path)).record(run_summary(), job="train")
    sql(path, "PRAGMA user_version = 3")
    expected = (
        f"{path} was written by a newer memwatch (schema 3, this one knows 2); upgrade memwatch"
    )
    assert refusals(path, run_summary, jobs_too=True) == [expected] * 3


def test_a_corrupt_file_is_refused_and_left_alone(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    path.write_bytes(random.Random(0).randbytes(8192))
    for message in refusals(path, run_summary, jobs_too=False):
        assert message.startswith(f"{path} is not a usable SQLite database (file is not a")
        assert "\n" not in message


def refusals(path, run_summary, jobs_too):
    """Record, list (and list jobs): each must raise HistoryError and change no file."""
    before = files(path.parent)
    store = History(str(path))
    calls = [lambda: store.record(run_summary(), job="train"), store.runs]
    messages = []
    for call in [*calls, store.jobs] if jobs_too else calls:
        with pytest.raises(HistoryError) as err:
            call()
        messages.append(str(err.value))
    assert files(path.parent) == before
    return messages


def test_a_directory_that_cannot_be_created_is_a_history_error(tmp_path, run_summary):
    (tmp_path / "plain-file").write_text("")
    path = tmp_path / "plain-file" / "sub" / "history.sqlite"
    with pytest.raises(HistoryError) as err:
        History(str(path)).record(run_summary(), job="train")
    assert str(err.value) == (
        f"cannot write history {path}: {path.parent}: {os.strerror(errno.ENOTDIR)}"
    )


def test_a_directory_as_history_path_is_a_history_error(tmp_path, run_summary):
    store = History(str(tmp_path))
    with pytest.raises(HistoryError, match=f"^cannot write history {tmp_path}: Is a directory$"):
        store.record(run_summary(), job="train")
    with pytest.raises(HistoryError, match=f"^cannot read history {tmp_path}: Is a directory$"):
        store.runs()


def test_a_history_locked_too_long_is_a_history_error(tmp_path, run_summary, monkeypatch):
    path = tmp_path / "history.sqlite"
    History(str(path)).record(run_summary(), job="train")
    monkeypatch.setattr(history, "BUSY_TIMEOUT_S", 0)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(HistoryError, match="stayed locked by another process .* try again$"):
            History(str(path)).record(run_summary(), job="train")
    finally:
        holder.close()
    assert len(History(str(path)).runs()) == 1


def test_an_unwritable_directory_is_a_history_error_with_the_os_reason(owner_dir, run_summary):
    path = owner_dir / "history.sqlite"
    History(str(path)).record(run_summary(), job="train")
    owner_dir.chmod(0o555)  # SQLite must create its journal next to the file
    with pytest.raises(HistoryError) as err:
        History(str(path)).record(run_summary(), job="etl")
    assert str(err.value) == f"cannot write history {path}: {owner_dir}: Permission denied"
    assert History(str(path)).jobs() == ["train"]


def test_an_unreadable_file_is_a_history_error_with_the_os_reason(owner_dir, run_summary):
    path = owner_dir / "history.sqlite"
    History(str(path)).record(run_summary(), job="train")
    path.chmod(0)
    with pytest.raises(HistoryError) as err:
        History(str(path)).runs()
    assert str(err.value) == f"cannot read history {path}: {path}: Permission denied"
    with pytest.raises(HistoryError) as err:
        History(str(path)).record(run_summary(), job="train")
    assert str(err.value) == f"cannot write history {path}: {path}: Permission denied"


def test_a_run_added_again_is_stored_once(tmp_path, run_summary):
    store = History(str(tmp_path / "history.sqlite"))
    entry = new_entry(run_summary(size=2.0), job="train")
    assert store.add([entry]) == 1
    assert store.add([entry, new_entry(run_summary(size=3.0), job="train")]) == 1
    assert [r.size for r in store.runs()] == [2.0, 3.0]
    assert store.entries("train")[0] == dataclasses.replace(
        entry, run=dataclasses.replace(entry.run, id=1)
    )


def test_points_are_the_sized_runs_and_the_count_of_unsized_ones(tmp_path, run_summary):
    store = History(str(tmp_path / "history.sqlite"))
    store.record(run_summary(size=2.0, swap_suspected=True), job="train")
    store.record(run_summary(size=None), job="train")
    store.record(run_summary(size=4.0, exit_code=3), job="train")
    store.record(run_summary(size=5.0), job="etl")
    summary = run_summary()
    peak, seconds, source = summary.peak.total_bytes, summary.duration_s, summary.peak.source
    assert store.points("train") == (
        [(2.0, peak, True, 0, seconds, source), (4.0, peak, False, 3, seconds, source)],
        1,
    )
    assert store.points("nope") == ([], 0)


# The schema 1 table exactly as memwatch 0.1.0 created it.
SCHEMA_1 = (
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, recorded_at REAL NOT NULL, job TEXT NOT NULL, "
    "size REAL, peak_bytes INTEGER NOT NULL, exit_status INTEGER NOT NULL, oom_killed INTEGER "
    "NOT NULL, swap_suspected INTEGER NOT NULL, duration_s REAL NOT NULL, source TEXT NOT NULL, "
    "command TEXT NOT NULL, summary TEXT NOT NULL)",
    "CREATE INDEX runs_by_job ON runs (job, id)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    "PRAGMA user_version = 1",
    "INSERT INTO runs VALUES (NULL, 1.5, 'old', 10, 4096, 0, 0, 0, 2.5, 'cgroup', '[\"x\"]', '{}')",
)


def test_a_schema_1_history_is_read_as_it_is_and_upgraded_by_the_first_write(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    sql(path, *SCHEMA_1)
    before = files(tmp_path)
    [old] = History(str(path)).runs()
    assert (old.job, old.size, old.host, old.uid) == ("old", 10.0, "", "")
    assert files(tmp_path) == before  # a read never writes
    History(str(path)).record(run_summary(), job="new", host="n1")
    old_after, new = History(str(path)).runs()
    assert (old_after.job, old_after.host, new.job, new.host) == ("old", "", "new", "n1")
    assert len(old_after.uid) == 32 and old_after.uid != new.uid
    assert sql(path, "PRAGMA user_version") == [(2,)]


def corrupt_page_holding(path: Path, marker: bytes) -> None:
    """Flip two bytes of the header of the page holding ``marker``: SQLite notices only when
    it reads that page."""
    data = bytearray(path.read_bytes())
    page_start = data.index(marker) // 4096 * 4096
    data[page_start + 8] ^= 0x5A
    data[page_start + 9] ^= 0x11
    path.write_bytes(bytes(data))


def test_a_bit_flipped_history_refuses_writes_as_reads_do(tmp_path, run_summary):
    path = tmp_path / "history.sqlite"
    store = History(str(path))
    store.record(run_summary(command=("first-run-marker",)), job="train")
    for n in range(30):  # several pages of runs: a new run goes to the last one
        store.record(run_summary(size=float(n)), job="train")
    corrupt_page_holding(path, b"first-run-marker")
    before = files(tmp_path)
    for call in (lambda: store.record(run_summary(), job="train"), store.check, store.runs):
        with pytest.raises(HistoryError, match="is not a usable SQLite database .*malformed"):
            call()
    assert files(tmp_path) == before


def test_check_creates_a_usable_history_and_refuses_what_a_write_would(tmp_path, run_summary):
    path = tmp_path / "h" / "history.sqlite"
    History(str(path)).check()
    assert History(str(path)).runs() == [] and path.exists()
    with pytest.raises(HistoryError, match="Is a directory$"):
        History(str(tmp_path)).check()
    (tmp_path / "notes.db").write_bytes(b"SQLite format 3\0" + bytes(100))
    with pytest.raises(HistoryError, match="not a usable SQLite database"):
        History(str(tmp_path / "notes.db")).check()


def test_open_history_chooses_the_store_by_the_location(tmp_path):
    assert type(open_history(str(tmp_path / "h.sqlite"))) is History
    store = open_history("postgresql://me:secret@db.example:5432/runs")
    assert type(store).__name__ == "PostgresHistory"
    assert store.location == "postgresql://me@db.example:5432/runs"
