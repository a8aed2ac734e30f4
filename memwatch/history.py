"""The run history: the records every store keeps, the chooser, and the SQLite store."""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import stat
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from .errors import HistoryError, HistoryUnavailable
from .report import to_json
from .types import RunSummary

DEFAULT_ENV = "MEMWATCH_HISTORY"
T = TypeVar("T")

# Stored in the SQLite file header, so a history is recognised (and anything else left
# alone) without guessing from table names. 0x4D574853 is "MWHS", memwatch history store.
APPLICATION_ID = 0x4D574853
# 2 added the host each run ran on and a unique id per run (uid): the same run sent twice
# (a spool synced again, a copy repeated, a file imported twice) is stored once.
SCHEMA_VERSION = 2

# Several memwatch processes finishing at once queue up for the write lock; each holds it
# for one insert, so a minute of waiting means something else holds the file.
BUSY_TIMEOUT_S = 60.0

# The columns of a run as HistoryRun has them, in its field order; the stores select them.
_STORED = (
    "recorded_at, job, size, peak_bytes, exit_status, oom_killed, swap_suspected, "
    "duration_s, source, command, host, uid"
)
COLUMNS = f"id, {_STORED}"
# An INSERT of a run: every column but id, then the summary, one %s / ? each.
INSERT_COLUMNS = f"{_STORED}, summary"
INSERT_COUNT = INSERT_COLUMNS.count(",") + 1
# What a fit reads: one row per sized run, no JSON to decode.
POINT_COLUMNS = "size, peak_bytes, swap_suspected, exit_status"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        recorded_at REAL NOT NULL,
        job TEXT NOT NULL,
        size REAL,
        peak_bytes INTEGER NOT NULL,
        exit_status INTEGER NOT NULL,
        oom_killed INTEGER NOT NULL,
        swap_suspected INTEGER NOT NULL,
        duration_s REAL NOT NULL,
        source TEXT NOT NULL,
        command TEXT NOT NULL,
        summary TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        uid TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_by_uid ON runs (uid)",
)
_V1_COLUMNS = COLUMNS.replace(", host, uid", ", '', ''")
# Schema 1 -> 2, in the write transaction of the first write by this version. Reads of a
# schema 1 file never write: they select '' for the columns it lacks.
_UPGRADE_1 = (
    "ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE runs ADD COLUMN uid TEXT NOT NULL DEFAULT ''",
    "UPDATE runs SET uid = lower(hex(randomblob(16)))",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_by_uid ON runs (uid)",
)


def default_path(env: Mapping[str, str] = os.environ) -> str:
    """$MEMWATCH_HISTORY, else $XDG_DATA_HOME/memwatch/history.sqlite, else ~/.local/share/..."""
    if env.get(DEFAULT_ENV):
        return env[DEFAULT_ENV]
    data = env.get("XDG_DATA_HOME", "")
    # The XDG base directory spec says a relative path there is invalid and must be ignored.
    if not os.path.isabs(data):
        data = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "memwatch", "history.sqlite")


def is_url(location: str) -> bool:
    """True for a PostgreSQL URL (both schemes libpq accepts), False for a file path."""
    return location.startswith(("postgresql://", "postgres://"))


def open_history(location: str | None = None, timeout_s: float | None = None) -> Store:
    """The store at ``location`` (default: default_path()): a URL is PostgreSQL, else SQLite."""
    location = location or default_path()
    if is_url(location):
        from .history_pg import PostgresHistory  # psycopg only for a PostgreSQL history

        return PostgresHistory(location, timeout_s)
    return History(location, timeout_s)


@dataclass(frozen=True)
class HistoryRun:
    """One recorded run, as the model and the CLI read it back."""

    id: int  # the store's own order; 0 for a run not stored yet
    recorded_at: float  # unix time
    job: str
    size: float | None
    peak_bytes: int
    exit_status: int
    oom_killed: bool
    swap_suspected: bool
    duration_s: float
    source: str  # where the peak came from: cgroup | sampling | hwm, or the imported format
    command: tuple[str, ...]
    host: str = ""  # the machine it ran on ('' for runs recorded before schema 2)
    uid: str = ""  # unique across stores: a run copied or synced twice is kept once


@dataclass(frozen=True)
class Entry:
    """A run with its whole JSON document: what is written, copied, spooled and exported."""

    run: HistoryRun
    summary: str  # JSON: memwatch's summary of the run, or the imported record's fields


def new_entry(summary: RunSummary, job: str, host: str | None = None) -> Entry:
    """The entry for a run that just ended on this machine."""
    doc = to_json(summary)
    run = HistoryRun(
        id=0,
        recorded_at=time.time(),
        job=job,
        size=summary.size,
        peak_bytes=summary.peak.total_bytes,
        exit_status=summary.exit_status,
        oom_killed=summary.oom_killed,
        swap_suspected=summary.swap_suspected,
        duration_s=summary.duration_s,
        source=summary.peak.source,
        command=tuple(doc["command"]),  # as in --json: non-UTF-8 bytes are U+FFFD
        host=socket.gethostname() if host is None else host,
        uid=uuid.uuid4().hex,
    )
    return Entry(run, json.dumps(doc))


def entry_row(entry: Entry) -> tuple[Any, ...]:
    """The values of an INSERT of every column but id, in COLUMNS order, then the summary."""
    r = entry.run
    return (
        *(r.recorded_at, r.job, r.size, r.peak_bytes, r.exit_status, r.oom_killed),
        *(r.swap_suspected, r.duration_s, r.source, json.dumps(r.command), r.host, r.uid),
        entry.summary,
    )


def history_run(row: Sequence[Any]) -> HistoryRun:
    """A HistoryRun from a row selected as COLUMNS."""
    id_, recorded_at, job, size, peak, status, oom, swap, duration, source, command, host, uid = row
    return HistoryRun(
        id=id_,
        recorded_at=recorded_at,
        job=job,
        size=size,
        peak_bytes=peak,
        exit_status=status,
        oom_killed=bool(oom),
        swap_suspected=bool(swap),
        duration_s=duration,
        source=source,
        command=tuple(json.loads(command)),
        host=host,
        uid=uid,
    )


class Store(ABC):
    """A run history. ``location`` names it in messages (never with a password)."""

    location: str

    @abstractmethod
    def check(self) -> None:
        """Raise HistoryError now if a run could not be recorded (checked before a job)."""

    @abstractmethod
    def add(self, entries: Sequence[Entry]) -> int:
        """Store entries in one transaction; returns how many were new (by uid)."""

    @abstractmethod
    def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of one read of the runs table (SQL with ? placeholders); [] before any run."""

    def record(self, summary: RunSummary, job: str, host: str | None = None) -> str:
        """Store one run that just ended; returns its uid."""
        entry = new_entry(summary, job, host)
        self.add([entry])
        return entry.run.uid

    def runs(self, job: str | None = None) -> list[HistoryRun]:
        """The recorded runs, oldest first: all of them, or those of one job."""
        where, params = ("", ()) if job is None else (" WHERE job = ?", (job,))
        rows = self.rows(f"SELECT {COLUMNS} FROM runs{where} ORDER BY id", params)
        return [history_run(r) for r in rows]

    def entries(self, job: str | None = None) -> list[Entry]:
        """The recorded runs with their JSON documents, oldest first (export and copy)."""
        where, params = ("", ()) if job is None else (" WHERE job = ?", (job,))
        rows = self.rows(f"SELECT {COLUMNS}, summary FROM runs{where} ORDER BY id", params)
        return [Entry(history_run(r[:-1]), r[-1]) for r in rows]

    def points(self, job: str) -> tuple[list[tuple[float, int, bool, int]], int]:
        """(size, peak_bytes, swap_suspected, exit_status) of the job's sized runs, and the
        number of its runs without a size: all a fit needs, in one query."""
        rows = self.rows(
            f"SELECT {POINT_COLUMNS} FROM runs WHERE job = ? AND size IS NOT NULL", (job,)
        )
        [(total,)] = self.rows("SELECT count(*) FROM runs WHERE job = ?", (job,)) or [(0,)]
        return [(s, p, bool(w), e) for s, p, w, e in rows], total - len(rows)

    def jobs(self) -> list[str]:
        """The distinct job names, sorted."""
        return [job for (job,) in self.rows("SELECT DISTINCT job FROM runs ORDER BY job", ())]


class History(Store):
    """The runs recorded in one SQLite file; each call opens its own short connection."""

    def __init__(self, path: str, timeout_s: float | None = None) -> None:
        self.path = self.location = path
        self.timeout_s = BUSY_TIMEOUT_S if timeout_s is None else timeout_s

    def check(self) -> None:
        self._write(lambda conn: None)

    def add(self, entries: Sequence[Entry]) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                f"INSERT INTO runs ({INSERT_COLUMNS}) VALUES ({', '.join('?' * INSERT_COUNT)}) "
                "ON CONFLICT (uid) DO NOTHING",
                map(entry_row, entries),
            )
            return int(conn.total_changes - before)

        return self._write(insert)

    def _write(self, step: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``step(conn)`` in a write transaction on a history made ready for it."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            # 0700 for a directory memwatch makes, as the XDG spec asks: commands can hold secrets.
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as err:
            raise HistoryError(
                f"cannot write history {self.path}: {err.filename}: {err.strerror}"
            ) from err
        # BEGIN IMMEDIATE takes the write lock before reading anything. A transaction that
        # reads first and then writes can get SQLITE_BUSY at once, without waiting out the busy
        # timeout (SQLite's deadlock avoidance), so concurrent writers would lose runs. Locked
        # first, the schema check, its creation and the insert are one step no writer can split.
        with self._connect(create=True) as conn, conn:
            conn.execute("BEGIN IMMEDIATE")
            version = self._version(conn)
            if version:
                # An insert touches a few pages and succeeds in a file whose other pages are
                # damaged; reading all runs then fails. Refuse the write as the read would.
                problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {problem}")
            if version < SCHEMA_VERSION:
                for statement in _UPGRADE_1 if version == 1 else _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return step(conn)

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            os.stat(self.path)
        except FileNotFoundError:
            return []  # nothing recorded yet, and no file created by a read
        except OSError as err:
            raise HistoryError(f"cannot read history {self.path}: {err.strerror}") from err
        with self._connect(create=False) as conn, conn:
            # One read transaction, so the check and the query see one state of the file:
            # a writer creating the schema in between would make a new history look foreign.
            conn.execute("BEGIN")
            version = self._version(conn)
            if version == 0:
                return []  # an empty database: nothing recorded yet
            if version == 1:
                sql = sql.replace(COLUMNS, _V1_COLUMNS)
            return conn.execute(sql, params).fetchall()

    @contextmanager
    def _connect(self, create: bool) -> Iterator[sqlite3.Connection]:
        """A connection for one operation, closed after it; SQLite's errors become HistoryError."""
        # mode=rw never creates the file; it still opens read-only when only reading is allowed.
        # file:// and an absolute path, so a path starting with // is not taken for a host.
        path = quote(os.fsencode(os.path.abspath(self.path)))
        uri = f"file://{path}?mode={'rwc' if create else 'rw'}"
        # The default rollback journal, never WAL: WAL keeps its index in shared memory (the
        # mmap'ed -shm file), which does not work on network filesystems, and a history in a
        # shared home directory is a normal setup. The rollback journal needs only POSIX file
        # locks, which network filesystems provide (NFS through its lock manager).
        try:
            # isolation_level=None: no implicit transactions, the BEGINs here are explicit.
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.OperationalError as err:
            raise self._explain(err, create) from err
        try:
            with closing(conn):
                yield conn
        except sqlite3.OperationalError as err:
            raise self._explain(err, create) from err
        except sqlite3.DatabaseError as err:
            # "file is not a database", "database disk image is malformed". SQLite refuses
            # before writing anything, and memwatch never repairs or replaces such a file.
            raise HistoryError(
                f"{self.path} is not a usable SQLite database ({err}); memwatch leaves it as "
                "it is: pass --history with another path"
            ) from err

    def _version(self, conn: sqlite3.Connection) -> int:
        """The schema version of a memwatch history, 0 for an empty database; raises for others."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path} was written by a newer memwatch (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}); upgrade memwatch"
                )
            return version
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and version == 0 and objects == 0:
            return 0
        if app_id:
            reason = f"its application_id is {app_id:#x}"
        elif objects:
            reason = "it has other tables"
        else:
            reason = f"its user_version is {version}"
        raise HistoryError(
            f"{self.path} is not a memwatch history ({reason}); pass --history with another path"
        )

    def _explain(self, err: sqlite3.OperationalError, writing: bool) -> HistoryError:
        """A one-line message for a failed open, lock or write, with the OS's reason if any."""
        if str(err) == "database is locked":
            return HistoryUnavailable(
                f"history {self.path} stayed locked by another process for "
                f"{self.timeout_s:g} s; try again"
            )
        verb = "write" if writing else "read"
        return HistoryError(f"cannot {verb} history {self.path}: {self._refusal(writing) or err}")

    def _refusal(self, writing: bool) -> str | None:
        """Why the OS refuses the file or its directory, or None; found without opening the file.

        Opening and closing the file here would drop the POSIX locks that SQLite connections
        of this process (in another thread) hold on it: https://sqlite.org/howtocorrupt.html.
        """
        try:
            mode_bits = os.stat(self.path).st_mode
        except FileNotFoundError:
            mode_bits = stat.S_IFREG  # to be created: the directory decides
        except OSError as err:
            return err.strerror  # a symlink loop, a name too long
        if stat.S_ISDIR(mode_bits):
            return os.strerror(errno.EISDIR)
        if not stat.S_ISREG(mode_bits):
            return "not a regular file (a FIFO or a device); give a file path"
        mode = os.R_OK | os.W_OK if writing else os.R_OK
        checks = [(self.path, mode)]
        if writing:
            checks.append((os.path.dirname(os.path.abspath(self.path)), os.W_OK))  # the journal
        for path, need in checks:
            # Effective ids, as open(2) uses: os.access defaults to the real ones.
            if os.path.exists(path) and not os.access(path, need, effective_ids=True):
                read_only_fs = need & os.W_OK and os.statvfs(path).f_flag & os.ST_RDONLY
                return f"{path}: {os.strerror(errno.EROFS if read_only_fs else errno.EACCES)}"
        return None
