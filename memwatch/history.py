"""The run history: every recorded run in one SQLite file, feeding the model."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .errors import HistoryError
from .report import to_json
from .types import RunSummary

DEFAULT_ENV = "MEMWATCH_HISTORY"

# Stored in the SQLite file header, so a history is recognised (and anything else left
# alone) without guessing from table names. 0x4D574853 is "MWHS", memwatch history store.
APPLICATION_ID = 0x4D574853
SCHEMA_VERSION = 1

# Several memwatch processes finishing at once queue up for the write lock; each holds it
# for one insert, so a minute of waiting means something else holds the file.
BUSY_TIMEOUT_S = 60.0

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
        summary TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, id)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_COLUMNS = (
    "id, recorded_at, job, size, peak_bytes, exit_status, oom_killed, swap_suspected, "
    "duration_s, source, command"
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


@dataclass(frozen=True)
class HistoryRun:
    """One recorded run, as the model and the CLI read it back."""

    id: int
    recorded_at: float  # unix time
    job: str
    size: float | None
    peak_bytes: int
    exit_status: int
    oom_killed: bool
    swap_suspected: bool
    duration_s: float
    source: str  # where the peak came from: cgroup | sampling | hwm
    command: tuple[str, ...]


class History:
    """The runs recorded in one SQLite file; each call opens its own short connection."""

    def __init__(self, path: str, timeout_s: float | None = None) -> None:
        self.path = path
        self.timeout_s = BUSY_TIMEOUT_S if timeout_s is None else timeout_s

    def record(self, summary: RunSummary, job: str) -> int:
        """Store one run and return its id; creates the file, its directory and the schema."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            # 0700 for a directory memwatch makes, as the XDG spec asks: commands can hold secrets.
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as err:
            raise HistoryError(
                f"cannot write history {self.path}: {err.filename}: {err.strerror}"
            ) from err
        doc = to_json(summary)
        # BEGIN IMMEDIATE takes the write lock before reading anything. A transaction that
        # reads first and then writes can get SQLITE_BUSY at once, without waiting out the busy
        # timeout (SQLite's deadlock avoidance), so concurrent writers would lose runs. Locked
        # first, the schema check, its creation and the insert are one step no writer can split.
        with self._connect(create=True) as conn, conn:
            conn.execute("BEGIN IMMEDIATE")
            if not self._is_ours(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
            cursor = conn.execute(
                f"INSERT INTO runs ({_COLUMNS}, summary) VALUES (NULL{', ?' * 11})",
                (
                    time.time(),  # taken under the lock, so ids and times agree on the order
                    job,
                    summary.size,
                    summary.peak.total_bytes,
                    summary.exit_status,
                    summary.oom_killed,
                    summary.swap_suspected,
                    summary.duration_s,
                    summary.peak.source,
                    json.dumps(doc["command"]),  # as in --json: non-UTF-8 bytes are U+FFFD
                    json.dumps(doc),
                ),
            )
        assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
        return cursor.lastrowid

    def runs(self, job: str | None = None) -> list[HistoryRun]:
        """The recorded runs, oldest first: all of them, or those of one job."""
        where, params = ("", ()) if job is None else (" WHERE job = ?", (job,))
        rows = self._query(f"SELECT {_COLUMNS} FROM runs{where} ORDER BY id", params)
        return [_history_run(row) for row in rows]

    def jobs(self) -> list[str]:
        """The distinct job names, sorted."""
        return [job for (job,) in self._query("SELECT DISTINCT job FROM runs ORDER BY job", ())]

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of one read; none (and no file created) when nothing was recorded yet."""
        try:
            os.stat(self.path)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise HistoryError(f"cannot read history {self.path}: {err.strerror}") from err
        with self._connect(create=False) as conn, conn:
            # One read transaction, so the check and the query see one state of the file:
            # a writer creating the schema in between would make a new history look foreign.
            conn.execute("BEGIN")
            if not self._is_ours(conn):
                return []  # an empty database: nothing recorded yet
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
            raise HistoryError(self._explain(err, create)) from err
        try:
            with closing(conn):
                yield conn
        except sqlite3.OperationalError as err:
            raise HistoryError(self._explain(err, create)) from err
        except sqlite3.DatabaseError as err:
            # "file is not a database", "database disk image is malformed". SQLite refuses
            # before writing anything, and memwatch never repairs or replaces such a file.
            raise HistoryError(
                f"{self.path} is not a usable SQLite database ({err}); memwatch leaves it as "
                "it is: pass --history with another path"
            ) from err

    def _is_ours(self, conn: sqlite3.Connection) -> bool:
        """True for a memwatch history, False for an empty new database; raises for others."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path} was written by a newer memwatch (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}); upgrade memwatch"
                )
            return True
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and version == 0 and objects == 0:
            return False
        if app_id:
            reason = f"its application_id is {app_id:#x}"
        elif objects:
            reason = "it has other tables"
        else:
            reason = f"its user_version is {version}"
        raise HistoryError(
            f"{self.path} is not a memwatch history ({reason}); pass --history with another path"
        )

    def _explain(self, err: sqlite3.OperationalError, writing: bool) -> str:
        """A one-line message for a failed open, lock or write, with the OS's reason if any."""
        if str(err) == "database is locked":
            return (
                f"history {self.path} stayed locked by another process for "
                f"{self.timeout_s:g} s; try again"
            )
        verb = "write" if writing else "read"
        return f"cannot {verb} history {self.path}: {self._refusal(writing) or err}"

    def _refusal(self, writing: bool) -> str | None:
        """Why the OS refuses the file or its directory, or None; found without opening the file.

        Opening and closing the file here would drop the POSIX locks that SQLite connections
        of this process (in another thread) hold on it: https://sqlite.org/howtocorrupt.html.
        """
        if os.path.isdir(self.path):
            return os.strerror(errno.EISDIR)
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


def _history_run(row: tuple[Any, ...]) -> HistoryRun:
    id_, recorded_at, job, size, peak, status, oom, swap, duration, source, command = row
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
    )
