"""memwatch.history: the SQLite run store, its schema marks and its refusals."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memwatch import history
from memwatch.errors import HistoryError
from memwatch.history import APPLICATION_ID, History, HistoryRun, default_path
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
    run_id = store.record(summary, job="train")
    after = time.time()
    [run] = store.runs()
    assert run == HistoryRun(
        id=run_id,
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
    )
    assert before <= run.recorded_at <= after


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
    assert sql(path, "PRAGMA user_version") == [(1,)]
    assert sql(path, "PRAGMA journal_mode") == [("delete",)]


def test_runs_are_oldest_first_and_filter_by_job(tmp_path, run_summary):
    store = History(str(tmp_path / "history.sqlite"))
    ids = [store.record(run_summary(size=float(n)), job=job) for n, job in enumerate("abab")]
    assert [r.id for r in store.runs()] == ids
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
        f"{path} was written by a newer memwatch (schema 3, this one knows 1); upgrade memwatch"
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
