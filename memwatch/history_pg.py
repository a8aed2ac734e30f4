"""The run history in PostgreSQL (psycopg 3): one history for many machines."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .errors import HistoryError, HistoryUnavailable
from .records import (
    APPLICATION_ID,
    INSERT_COLUMNS,
    INSERT_COUNT,
    SCHEMA_VERSION,
    Entry,
    Store,
    entry_row,
)

T = TypeVar("T")

# Everything lives in a schema of its own, so the history can share a database with other
# programs. The schema's meta table marks it, as application_id marks a SQLite history.
NAMESPACE = "memwatch"
APPLICATION = "memwatch history"
# libpq waits forever for an unreachable server by default; a run's record is spooled instead.
CONNECT_TIMEOUT_S = 10

_SCHEMA = (
    f"CREATE SCHEMA IF NOT EXISTS {NAMESPACE}",
    "SET LOCAL search_path TO " + NAMESPACE,
    "CREATE TABLE meta (application text NOT NULL, schema_version integer NOT NULL)",
    "INSERT INTO meta VALUES (%s, %s)",
    """CREATE TABLE runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recorded_at double precision NOT NULL,
        job text NOT NULL,
        size double precision,
        peak_bytes bigint NOT NULL,
        exit_status integer NOT NULL,
        oom_killed boolean NOT NULL,
        swap_suspected boolean NOT NULL,
        duration_s double precision NOT NULL,
        source text NOT NULL,
        command text NOT NULL,
        summary text NOT NULL,
        host text NOT NULL,
        uid text NOT NULL UNIQUE
    )""",
    "CREATE INDEX runs_by_job ON runs (job, id)",
)


def redact(url: str) -> str:
    """The URL without its password, for messages and the spool."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':')[0]}@{hosts}"))


class PostgresHistory(Store):
    """The runs recorded in a PostgreSQL database; each call opens its own connection."""

    def __init__(self, url: str, timeout_s: float | None = None) -> None:
        self.url = url
        self.location = redact(url)
        # libpq takes whole seconds and treats anything below 2 as 2.
        self.connect_timeout_s = max(2, round(timeout_s or CONNECT_TIMEOUT_S))

    def check(self) -> None:
        self._write(lambda conn: None)

    def add(self, entries: Sequence[Entry]) -> int:
        def insert(conn: Any) -> int:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO runs ({INSERT_COLUMNS}) VALUES "
                    f"({', '.join(['%s'] * INSERT_COUNT)}) ON CONFLICT (uid) DO NOTHING",
                    [entry_row(e) for e in entries],
                )
                return int(cur.rowcount)

        return self._write(insert)

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._connect("read") as conn:
            if self._version(conn) == 0:
                return []  # nothing recorded yet, and nothing created by a read
            conn.execute("SET LOCAL search_path TO " + NAMESPACE)
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())

    def _write(self, step: Callable[[Any], T]) -> T:
        """Run ``step(conn)`` in one transaction on a history made ready for it."""
        with self._connect("write") as conn:
            if self._version(conn) == 0:
                # Many hosts may create the history at once: one at a time, and look again.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLICATION_ID,))
                if self._version(conn) == 0:
                    for statement in _SCHEMA:
                        params = (APPLICATION, SCHEMA_VERSION) if "%s" in statement else None
                        conn.execute(statement, params)
            conn.execute("SET LOCAL search_path TO " + NAMESPACE)
            return step(conn)

    @contextmanager
    def _connect(self, verb: str) -> Iterator[Any]:
        """A connection in one transaction, committed and closed after it; errors: HistoryError."""
        try:
            import psycopg  # a plain run with a SQLite history does not pay for it
        except ImportError as err:
            raise HistoryError(
                f"history {self.location} needs psycopg 3: pip install 'memwatch[postgres]'"
            ) from err

        try:
            with psycopg.connect(self.url, connect_timeout=self.connect_timeout_s) as conn:
                yield conn
        except psycopg.Error as err:
            # libpq's messages span lines ("... failed: Connection refused\n\tIs the server
            # running ..."): one line, its parts kept.
            reason = "; ".join(part.strip() for part in str(err).splitlines() if part.strip())
            # OperationalError: the server is down, unreachable, or refused the login.
            kind = HistoryUnavailable if isinstance(err, psycopg.OperationalError) else HistoryError
            raise kind(f"cannot {verb} history {self.location}: {reason}") from err

    def _version(self, conn: Any) -> int:
        """The schema version, 0 when there is no history yet; raises for another program's."""
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                (NAMESPACE,),
            )
        ]
        if not tables:
            return 0  # no schema, or an empty one a DBA made for memwatch
        where = f"{self.location} (schema {NAMESPACE})"
        if "meta" not in tables:
            raise HistoryError(
                f"{where} is not a memwatch history (it has other tables: "
                f"{', '.join(sorted(tables)[:5])}); pass --history with another database"
            )
        rows = conn.execute(f"SELECT application, schema_version FROM {NAMESPACE}.meta").fetchall()
        if len(rows) != 1 or rows[0][0] != APPLICATION:
            raise HistoryError(
                f"{where} is not a memwatch history (its meta table is another program's); "
                "pass --history with another database"
            )
        version = int(rows[0][1])
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{where} was written by a newer memwatch (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade memwatch"
            )
        return version
