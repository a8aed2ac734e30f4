"""The records every run history keeps, and the interface its stores share.

A leaf below the stores: history.py (SQLite, and the chooser) and history_pg.py
(PostgreSQL) both import it, and not each other.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .measures import RunSummary
from .report import to_json

# Stored in the SQLite file header, so a history is recognised (and anything else left
# alone) without guessing from table names. 0x4D574853 is "MWHS", memwatch history store.
APPLICATION_ID = 0x4D574853
# 2 added the host each run ran on and a unique id per run (uid): the same run sent twice
# (a spool synced again, a copy repeated, a file imported twice) is stored once.
SCHEMA_VERSION = 2

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
POINT_COLUMNS = "size, peak_bytes, swap_suspected, exit_status, duration_s, source"


def is_url(location: str) -> bool:
    """True for a PostgreSQL URL (both schemes libpq accepts), False for a file path."""
    return location.startswith(("postgresql://", "postgres://"))


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

    def points(self, job: str) -> tuple[list[tuple[float, int, bool, int, float, str]], int]:
        """(size, peak_bytes, swap_suspected, exit_status, duration_s, source) of the job's sized
        runs, and the number of its runs without a size: all a fit needs, in one query."""
        rows = self.rows(
            f"SELECT {POINT_COLUMNS} FROM runs WHERE job = ? AND size IS NOT NULL", (job,)
        )
        [(total,)] = self.rows("SELECT count(*) FROM runs WHERE job = ?", (job,)) or [(0,)]
        return [(s, p, bool(w), e, d, src) for s, p, w, e, d, src in rows], total - len(rows)

    def jobs(self) -> list[str]:
        """The distinct job names, sorted."""
        return [job for (job,) in self.rows("SELECT DISTINCT job FROM runs ORDER BY job", ())]
