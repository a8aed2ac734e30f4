"""The PostgreSQL history on a real server: the same records as SQLite, the same refusals."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from memwatch.errors import HistoryError, HistoryUnavailable
from memwatch.history import History, new_entry, open_history
from memwatch.history_pg import PostgresHistory
from memwatch.measures import Bounds, Peak, RunSummary
from memwatch.recommender import URL_REFRESH_S, Recommender

MIB = 1 << 20


def summary(size: float | None, peak_mib: int, exit_code: int = 0) -> RunSummary:
    return RunSummary(
        command=("train", "--rows", str(size), "caf\udce9"),  # a non-UTF-8 byte, as argv has it
        exit_code=exit_code,
        signal=None,
        oom_killed=exit_code != 0,
        duration_s=1.5,
        interval_s=0.1,
        samples=15,
        peak=Peak(peak_mib * MIB, peak_mib * MIB, 0, None, 0.5, "cgroup"),
        bounds=Bounds(peak_mib * MIB, peak_mib * MIB),
        ru_maxrss_bytes=None,
        swap_suspected=size == 2.0,
        size=size,
    )


def without_ids(items: list) -> list:
    """Runs or entries with id 0: each store numbers its runs its own way."""
    return [
        dataclasses.replace(i, run=dataclasses.replace(i.run, id=0))
        if hasattr(i, "run")
        else dataclasses.replace(i, id=0)
        for i in items
    ]


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def test_postgresql_keeps_the_same_records_as_sqlite(pg_url, tmp_path):
    entries = [
        new_entry(summary(1.0, 100), "train", host="a"),
        new_entry(summary(2.0, 200), "train", host="b"),
        new_entry(summary(None, 50), "etl", host="c"),
        new_entry(summary(4.0, 380, exit_code=3), "train", host="a"),
    ]
    pg, lite = open_history(pg_url), open_history(str(tmp_path / "h.sqlite"))
    assert isinstance(pg, PostgresHistory) and isinstance(lite, History)
    for store in (pg, lite):
        assert store.add(entries[:2]) == 2
        assert store.add(entries) == 2  # the first two again: stored once
    assert without_ids(pg.runs()) == without_ids(lite.runs())
    assert [r.id for r in pg.runs()] == sorted(r.id for r in pg.runs())  # in order of storing
    assert without_ids(pg.entries("train")) == without_ids(lite.entries("train"))
    assert pg.points("train") == lite.points("train")
    assert pg.jobs() == lite.jobs() == ["etl", "train"]
    assert [r.host for r in pg.runs()] == ["a", "b", "c", "a"]


def test_a_new_database_is_not_written_by_reads(pg_url):
    store = open_history(pg_url)
    assert store.runs() == [] and store.jobs() == [] and store.points("x") == ([], 0)
    assert sql(pg_url, "SELECT nspname FROM pg_namespace WHERE nspname = 'memwatch'") == []
    store.check()
    assert sql(pg_url, "SELECT application, schema_version FROM memwatch.meta") == [
        ("memwatch history", 2)
    ]


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("CREATE TABLE memwatch.notes (body text)", "it has other tables: notes"),
        (
            "CREATE TABLE memwatch.meta (application text, schema_version int); "
            "INSERT INTO memwatch.meta VALUES ('billing', 1)",
            "its meta table is another program's",
        ),
    ],
)
def test_another_programs_schema_is_refused_and_left_alone(pg_url, setup, reason):
    sql(pg_url, "CREATE SCHEMA memwatch")
    for statement in setup.split("; "):
        sql(pg_url, statement)
    store = open_history(pg_url)
    location = pg_url
    for call in (lambda: store.record(summary(1.0, 1), "x"), store.runs, store.check):
        with pytest.raises(HistoryError) as err:
            call()
        assert str(err.value) == (
            f"{location} (schema memwatch) is not a memwatch history ({reason}); "
            "pass --history with another database"
        )
    tables = "SELECT tablename FROM pg_tables WHERE schemaname = 'memwatch' ORDER BY 1"
    assert [t for (t,) in sql(pg_url, tables)] == (["notes"] if "notes" in setup else ["meta"])


def test_a_newer_schema_is_refused_and_left_alone(pg_url):
    store = open_history(pg_url)
    store.record(summary(1.0, 1), "x")
    sql(pg_url, "UPDATE memwatch.meta SET schema_version = 9")
    for call in (lambda: store.record(summary(1.0, 1), "x"), store.runs):
        with pytest.raises(HistoryError, match="written by a newer memwatch .schema 9, this one "):
            call()
    assert sql(pg_url, "SELECT count(*) FROM memwatch.runs") == [(1,)]


def test_an_unreachable_server_is_unavailable_in_one_line_without_the_password(postgres):
    url = f"postgresql://memwatch:s3cret@127.0.0.1:{postgres.port + 1}/postgres"
    store = open_history(url)
    with pytest.raises(HistoryUnavailable) as err:
        store.check()
    message = str(err.value)
    assert message.startswith(
        f"cannot write history postgresql://memwatch@127.0.0.1:{postgres.port + 1}/postgres: "
    )
    assert "\n" not in message and "s3cret" not in message


def test_copy_between_sqlite_and_postgresql_is_lossless_and_idempotent(pg_url, tmp_path):
    lite = History(str(tmp_path / "h.sqlite"))
    for size in (1.0, 2.0, 4.0):
        lite.record(summary(size, int(size * 100)), "train", host="n1")
    pg = open_history(pg_url)
    assert pg.add(lite.entries()) == 3
    assert pg.add(lite.entries()) == 0
    back = History(str(tmp_path / "back.sqlite"))
    back.add(pg.entries())
    assert without_ids(back.entries()) == without_ids(lite.entries())


def test_the_daemon_recommends_from_a_postgresql_history_and_sees_new_runs(pg_url):
    store = open_history(pg_url)
    for size in (1.0, 2.0, 3.0, 4.0):
        store.record(summary(size, int(100 * size)), "train")
    now = [0.0]
    reported: list[str] = []
    recommender = Recommender(pg_url, reported.append, clock=lambda: now[0])
    assert recommender.recommend("train", [8.0]) == ()  # asked of the worker
    recommender.update()  # the worker's step
    [(label, first)] = recommender.recommend("train", [8.0])
    assert label == "8" and first >= 800 * MIB
    for size in (1.0, 2.0, 3.0, 4.0):  # the job got twice as hungry
        store.record(summary(size, int(200 * size)), "train")
    now[0] = URL_REFRESH_S / 2
    recommender.update()
    assert recommender.recommend("train", [8.0]) == (("8", first),)  # not asked again yet
    now[0] = URL_REFRESH_S + 1
    recommender.update()
    [(_, second)] = recommender.recommend("train", [8.0])
    assert second > first and reported == []


def test_the_daemon_says_once_why_an_unreachable_postgresql_history_gives_nothing(postgres):
    url = f"postgresql://memwatch@127.0.0.1:{postgres.port + 1}/postgres"
    reported: list[str] = []
    recommender = Recommender(url, reported.append, clock=lambda: 0.0)
    for _ in range(3):
        assert recommender.recommend("train", [8.0]) == ()
        recommender.update()
    [message] = reported
    assert message.startswith(f"no recommendations: cannot read history {url}: ")
