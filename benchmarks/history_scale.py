#!/usr/bin/env python3
"""Reading and fitting one job's runs from a large history: SQLite and PostgreSQL side by side.

Run by hand:
    python3 benchmarks/history_scale.py [--runs 1000,10000,100000] [--sizes 100]
        [--postgresql postgresql://user@host:port/db] [--repeat 3]

For each count N, one job gets N runs, spread over --sizes distinct input sizes (a job run
many times at a few sizes, as a fleet does; the model aggregates per size), with peaks on
a line plus noise. The runs are written once per store (not timed), then timed --repeat
times, median reported:
  read   memwatch.fitreport.history_measurements(store, job): the one query per job that
         `memwatch predict` and the daemon make, and the Measurement records built from it
  fit    memwatch.model.fit on those measurements (the model's own time, the same for
         both stores)
Without --postgresql only SQLite is measured. Each PostgreSQL database is emptied first
(the memwatch schema is dropped): give it a scratch database.

Target (issue 12): 100,000 runs of one job read and fitted in a few seconds, and time
growing linearly or better with N: the ratio of consecutive rows is printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from memwatch.fitreport import history_measurements
from memwatch.history import Entry, HistoryRun, Store, open_history
from memwatch.model import fit

JOB = "bench"


def entries(count: int, sizes: int, rng: random.Random) -> list[Entry]:
    out = []
    for n in range(count):
        size = float(1000 * (1 + n % sizes))
        peak = int(50e6 + 2000 * size * rng.uniform(0.97, 1.03))
        run = HistoryRun(
            id=0, recorded_at=float(n), job=JOB, size=size, peak_bytes=peak, exit_status=0,
            oom_killed=False, swap_suspected=False, duration_s=1.0, source="cgroup",
            command=("bench", str(size)), host=f"node{n % 50}", uid=f"{count}-{n}",
        )  # fmt: skip
        out.append(Entry(run, "{}"))
    return out


def timed(store: Store, repeat: int) -> tuple[float, float, int]:
    reads, fits = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        measurements, _, _ = history_measurements(store, JOB)
        middle = time.perf_counter()
        fit(measurements)
        reads.append(middle - start)
        fits.append(time.perf_counter() - middle)
    return statistics.median(reads), statistics.median(fits), len(measurements)


def empty_postgresql(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS memwatch CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1000,10000,100000")
    parser.add_argument("--sizes", type=int, default=100)
    parser.add_argument("--postgresql", metavar="URL")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = [int(c) for c in args.runs.split(",")]
    rng = random.Random(12)
    print(f"one job, runs over {args.sizes} distinct sizes; medians of {args.repeat}")
    print(f"{'runs':>8} {'store':>10} {'read s':>8} {'fit s':>8} {'total s':>8} {'x prev':>7}")
    previous: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            data = entries(count, args.sizes, rng)
            stores: list[tuple[str, Store]] = [
                ("sqlite", open_history(str(Path(tmp) / f"h{count}.sqlite")))
            ]
            if args.postgresql:
                empty_postgresql(args.postgresql)
                stores.append(("postgresql", open_history(args.postgresql)))
            for name, store in stores:
                store.add(data)
                read_s, fit_s, fitted = timed(store, args.repeat)
                assert fitted == count
                total = read_s + fit_s
                ratio = f"{total / previous[name]:.1f}" if name in previous else "-"
                previous[name] = total
                figures = f"{read_s:>8.3f} {fit_s:>8.3f} {total:>8.3f} {ratio:>7}"
                print(f"{count:>8} {name:>10} {figures}")


if __name__ == "__main__":
    main()
