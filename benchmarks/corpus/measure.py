#!/usr/bin/env python3
"""Measure every corpus workload's true peak with memwatch itself, under its job cgroup.

Run by hand, as root (a job cgroup needs it), from the repository:

    python benchmarks/corpus/measure.py [--workloads a,b] [--repeats 3]

Each workload runs once unrecorded at its smallest size (the first run after a while is
charged the page cache of the libraries it reads), then at its 11 sizes (programs.sizes),
repeat 1 of every size before repeat 2, so a slow spell of the shared machine does not
land on one size's three repeats. Every run is

    python -m memwatch run --json TMP -q -- python benchmarks/corpus/programs.py NAME SIZE

and is appended to measurements.csv as soon as it ends; runs already there are skipped,
so a stopped measurement resumes where it stopped. A run whose peak is not the cgroup's
exact figure, or that fails, is reported and not recorded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from programs import WORKLOADS, sizes  # noqa: E402

CSV_PATH = os.path.join(HERE, "measurements.csv")
COLUMNS = ("workload", "kind", "pattern", "size", "repeat", "peak_bytes", "duration_s")


def run_once(name: str, size: int) -> tuple[int, float]:
    """(peak bytes, duration s) of one cgroup-measured run; exits with a message if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = os.path.join(tmp, "run.json")
        argv = [sys.executable, "-m", "memwatch", "run", "--json", summary_path, "-q", "--"]
        argv += [sys.executable, os.path.join(HERE, "programs.py"), name, str(size)]
        done = subprocess.run(
            argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if done.returncode != 0 or not os.path.exists(summary_path):
            tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise RuntimeError(f"{name} {size}: exit {done.returncode}: {tail[0]}")
        with open(summary_path) as f:
            summary = json.load(f)
    source = summary["peak"]["source"]
    if source != "cgroup":
        raise RuntimeError(f"{name} {size}: peak source is {source!r}, not cgroup (run as root)")
    return int(summary["peak"]["total_bytes"]), float(summary["duration_s"])


def recorded() -> set[tuple[str, int, int]]:
    """(workload, size, repeat) of every run already in the CSV."""
    if not os.path.exists(CSV_PATH):
        return set()
    with open(CSV_PATH, newline="") as f:
        return {(r["workload"], int(r["size"]), int(r["repeat"])) for r in csv.DictReader(f)}


def append(row: dict[str, object]) -> None:
    """Append one run (with the header on a new file), flushed at once."""
    new = not os.path.exists(CSV_PATH)
    with open(CSV_PATH, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", help="comma-separated names (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    names = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")

    done = recorded()
    todo = [
        (repeat, name, size)
        for repeat in range(1, args.repeats + 1)
        for name in names
        for size in sizes(WORKLOADS[name])
        if (name, size, repeat) not in done
    ]
    warmed: set[str] = set()
    started = time.monotonic()
    failures = 0
    for i, (repeat, name, size) in enumerate(todo, 1):
        try:
            if name not in warmed:
                run_once(name, sizes(WORKLOADS[name])[0])  # unrecorded: pays the page cache
                warmed.add(name)
            peak, duration = run_once(name, size)
        except RuntimeError as err:
            failures += 1
            print(f"measure: not recorded: {err}", file=sys.stderr, flush=True)
            continue
        w = WORKLOADS[name]
        append(dict(workload=name, kind=w.kind, pattern=w.pattern, size=size, repeat=repeat,
                    peak_bytes=peak, duration_s=f"{duration:.3f}"))  # fmt: skip
        elapsed = time.monotonic() - started
        eta = elapsed / i * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] {name} size {size} repeat {repeat}: "
            f"{peak / 2**20:.1f} MiB in {duration:.2f} s; ETA {eta / 60:.0f} min",
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
