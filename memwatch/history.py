"""The run history: the chooser of its store, and the SQLite store (the embedded default)."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from .errors import HistoryError, HistoryUnavailable
from .records import (
    APPLICATION_ID,
    COLUMNS,
    INSERT_COLUMNS,
    INSERT_COUNT,
    SCHEMA_VERSION,
    Entry,
    HistoryRun,
    Store,
    entry_row,
    is_url,
    new_entry,
)

__all__ = ["DEFAULT_ENV", "Entry", "History", "HistoryRun", "Store", "new_entry", "open_history"]

DEFAULT_ENV = "MEMWATCH_HISTORY"
T = TypeVar("T")

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


def open_history(location: str | None = None, timeout_s: float | None = None) -> Store:
    """The store at ``location`` (default: default_path()): a URL is PostgreSQL, else SQLite."""
    location = location or default_path()
    if is_url(location):
        from .history_pg import PostgresHistory  # psycopg only for a PostgreSQL history

        return PostgresHistory(location, timeout_s)
    return History(location, timeout_s)


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
