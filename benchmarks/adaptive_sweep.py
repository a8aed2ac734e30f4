#!/usr/bin/env python3
"""Does the adaptive sweep (`memwatch sweep --target`) recommend enough, and not too much?

Run by hand, as root (so every peak is a cgroup's exact figure), from the repository:

    python3 benchmarks/adaptive_sweep.py [--corpus DIR] [--workloads a,b] [--step 10]
    python3 benchmarks/adaptive_sweep.py --replay [--workloads all]   # no runs: seconds

For 8 programs of the evaluation corpus (benchmarks/corpus/programs.py), one of each growth
pattern but "flat" (the easiest): the first of the pattern in the corpus table that is in
the held-out half (benchmarks/corpus/split.json), which the model is not tuned on. The
real CLI runs

    memwatch sweep --target s0*sqrt(2)^STEP --start s0 --json -- python programs.py NAME {size}

and picks its sizes itself from s0, the smallest corpus size (at STEP 10, the default,
that is also the sweep's own default start, target/32). The truth at the
target is the corpus measurement there (benchmarks/corpus/measurements.csv: the largest
of its repeats), and so is the time of one run at the target (the mean of its repeats).
Printed per program: the sizes run, recommended/true peak at the target (and how many
repeats the truth is the largest of), the sweep's total time (and the fitted runs' own
share of it) next to one target run's, their ratio (cost), and the medians. Required
(issue 9): no size above half the target; recommended/true within 1.0-1.5 on all 8,
median <= 1.2.

--replay runs no job: the planner (memwatch.adaptive) is given a measure function that
answers from measurements.csv (the first repeat of each size; its sizes fall on the
corpus grid s0*sqrt(2)^i because the sweep doubles from s0), and its clock advances by
the recorded durations. It tests the planner and the model on every workload in seconds,
not the measuring.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from memwatch.adaptive import Goal, Run, adaptive_sweep  # noqa: E402
from memwatch.limits import DEFAULT_MARGIN, MAX_FRACTION  # noqa: E402
from memwatch.model import Measurement, fit, predict  # noqa: E402

MIB = 1 << 20
# One program per growth pattern: the first of each pattern in the corpus table; "flat"
# (streaming, the same peak at every size) is the ninth pattern and the easiest.
PATTERNS = (
    "linear-baseline",
    "knee",
    "quadratic",
    "nlogn",
    "sublinear",
    "steps",
    "noisy",
    "multiprocess",
)
ACCEPT_LOW, ACCEPT_HIGH, ACCEPT_MEDIAN = 1.0, 1.5, 1.2


@dataclass(frozen=True)
class Row:
    """One corpus measurement."""

    workload: str
    pattern: str
    size: int
    repeat: int
    peak_bytes: int
    duration_s: float


@dataclass(frozen=True)
class Sweep:
    """What one adaptive sweep ran, said and cost."""

    sizes: tuple[float, ...]
    recommended_bytes: int  # at the target
    sweep_s: float  # the whole sweep: wall time (real), the runs' recorded times (replay)
    jobs_s: float  # the fitted runs' own durations, summed (no warm-up, no memwatch)
    stop: str


@dataclass(frozen=True)
class Result:
    """One program's adaptive sweep, judged against the corpus truth at its target."""

    workload: str
    pattern: str
    half: str  # of the corpus split: "held-out" or "dev"
    target: int
    truth_bytes: int
    truth_repeats: int
    target_run_s: float
    sweep: Sweep

    @property
    def sizes(self) -> tuple[float, ...]:
        return self.sweep.sizes

    @property
    def cost(self) -> float:
        """The sweep's time in runs at the target."""
        return self.sweep.sweep_s / self.target_run_s

    @property
    def ratio(self) -> float:
        return self.sweep.recommended_bytes / self.truth_bytes


def read_corpus(path: str) -> dict[str, list[Row]]:
    by_workload: dict[str, list[Row]] = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            by_workload[r["workload"]].append(
                Row(
                    r["workload"],
                    r["pattern"],
                    int(r["size"]),
                    int(r["repeat"]),
                    int(r["peak_bytes"]),
                    float(r["duration_s"]),
                )
            )
    return by_workload


def chosen(corpus: dict[str, list[Row]], order: list[str], held_out: set[str]) -> list[str]:
    """The first held-out workload of each pattern in PATTERNS, in the corpus table's order."""
    names = []
    for pattern in PATTERNS:
        names += [
            n for n in order if n in held_out and corpus.get(n) and corpus[n][0].pattern == pattern
        ][:1]
    return names


def at_target(rows: list[Row], target: int) -> list[Row]:
    """The corpus runs at the target size (the truth: the largest peak; one run's time: the
    mean)."""
    there = [r for r in rows if r.size == target]
    if not there:
        raise SystemExit(f"{rows[0].workload}: no measurement at the target {target} yet")
    return there


def run_real(name: str, target: int, start: int, programs: str) -> Sweep:
    """The real CLI, `memwatch sweep --target`."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "memwatch", "sweep", "--target", str(target)]
        argv += ["--start", str(start), "--json"]
        argv += ["--history", os.path.join(tmp, "h.sqlite"), "--"]
        argv += [sys.executable, programs, name, "{size}"]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - started
    sys.stderr.write(done.stderr)
    if not done.stdout.strip():
        raise SystemExit(f"{name}: memwatch sweep exited {done.returncode} with no JSON")
    doc = json.loads(done.stdout)
    (prediction,) = [p for p in doc["predictions"] if p["size"] == target]
    adaptive = doc["adaptive"]
    return Sweep(
        tuple(float(s) for s in adaptive["sizes"]),
        prediction["recommended_bytes"],
        wall,
        sum(r["duration_s"] for r in adaptive["runs"]),
        adaptive["stop_reason"],
    )


def run_replay(rows: list[Row], target: int, start: int) -> Sweep:
    """The planner (no CLI, no runs) on the recorded first repeats."""
    first = {r.size: r for r in rows if r.repeat == 1}
    clock = [0.0]

    def measure(size_text: str) -> list[Run]:
        r = first.get(int(size_text))
        if r is None:
            raise SystemExit(f"{rows[0].workload}: size {size_text} is not in the corpus")
        clock[0] += r.duration_s
        return [Run(size_text, Measurement(r.size, r.peak_bytes, duration_s=r.duration_s))]

    goal = Goal(
        target=target,
        start=start,
        max_size=target * MAX_FRACTION,
        margin=DEFAULT_MARGIN,
        memory_budget_bytes=1 << 40,
    )
    outcome = adaptive_sweep(goal, measure, clock=lambda: clock[0])
    measured = [r.measurement for r in outcome.runs]
    advice = predict(fit(measured, margin=DEFAULT_MARGIN), target, force=True)
    sizes = tuple(m.size for m in measured)
    return Sweep(sizes, advice.recommended_bytes, clock[0], clock[0], outcome.stop.reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        default=os.path.join(REPO, "benchmarks", "corpus"),
        help="the directory of programs.py and measurements.csv",
    )
    parser.add_argument(
        "--workloads", help="comma-separated names, or 'all' measured so far (default: the 8)"
    )
    parser.add_argument(
        "--step", type=int, default=10, help="target = s0 * sqrt(2)^STEP (default 10: 32x)"
    )
    parser.add_argument("--replay", action="store_true", help="answer from the CSV; run nothing")
    args = parser.parse_args(argv)

    sys.path.insert(0, args.corpus)
    from programs import WORKLOADS  # the corpus table: its order and each s0

    corpus = read_corpus(os.path.join(args.corpus, "measurements.csv"))
    with open(os.path.join(args.corpus, "split.json")) as f:
        held_out = set(json.load(f)["held_out"])

    def target_of(name: str) -> int:
        return round(WORKLOADS[name].s0 * 2 ** (args.step / 2))

    if args.workloads == "all":  # those measured from s0 up to their target so far
        names = [
            n
            for n in WORKLOADS
            if {WORKLOADS[n].s0, target_of(n)} <= {r.size for r in corpus.get(n, [])}
        ]
    elif args.workloads:
        names = args.workloads.split(",")
    else:
        names = chosen(corpus, list(WORKLOADS), held_out)
    programs = os.path.join(args.corpus, "programs.py")
    results = []
    for name in names:
        rows = corpus[name]
        target = target_of(name)
        truth = at_target(rows, target)
        if args.replay:
            sweep = run_replay(rows, target, WORKLOADS[name].s0)
        else:
            print(f"== {name} target {target}", file=sys.stderr, flush=True)
            sweep = run_real(name, target, WORKLOADS[name].s0, programs)
        results.append(
            Result(
                name,
                rows[0].pattern,
                "held-out" if name in held_out else "dev",
                target,
                max(r.peak_bytes for r in truth),
                len(truth),
                statistics.mean(r.duration_s for r in truth),
                sweep,
            )
        )
    report(results, replay=args.replay)
    return 0 if accepted(results) else 1


def report(results: list[Result], replay: bool) -> None:
    what = "recorded time of its runs" if replay else "wall time of memwatch sweep"
    print(f"adaptive sweep ({'replayed from measurements.csv' if replay else 'real runs'}); "
          f"sweep time = {what}")  # fmt: skip
    print(
        f"{'program':<20} {'pattern':<15} {'half':<8} {'target':>6} {'sizes run':<42} "
        f"{'rec/true':>8} {'(reps)':>6} {'sweep s':>7} {'jobs s':>6} {'target s':>8} "
        f"{'cost':>5}  stop"
    )
    for r in results:
        sizes = ",".join(f"{s:g}" for s in r.sizes)
        stop = "settled" if r.sweep.stop.startswith("settled") else r.sweep.stop[:40]
        print(
            f"{r.workload:<20} {r.pattern:<15} {r.half:<8} {r.target:>6} {sizes:<42} "
            f"{r.ratio:>8.2f} {r.truth_repeats:>6} {r.sweep.sweep_s:>7.1f} {r.sweep.jobs_s:>6.1f} "
            f"{r.target_run_s:>8.1f} {r.cost:>5.1f}  {stop}"
        )
    halves = sorted({r.half for r in results})
    for half in halves if len(halves) > 1 else []:
        summarise(half, [r for r in results if r.half == half])
    summarise("all", results)


def summarise(label: str, results: list[Result]) -> None:
    ratios = [r.ratio for r in results]
    cost = statistics.median(r.cost for r in results)
    print(
        f"{label} ({len(results)}): median rec/true {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max "
        f"{max(ratios):.2f}); within {ACCEPT_LOW}-{ACCEPT_HIGH}: "
        f"{sum(ACCEPT_LOW <= x <= ACCEPT_HIGH for x in ratios)}/{len(ratios)}; median sweep "
        f"time / one run at the target (cost) {cost:.1f}; "
        f"runs above half the target: {sum(s > r.target / 2 for r in results for s in r.sizes)}"
    )


def accepted(results: list[Result]) -> bool:
    ratios = [r.ratio for r in results]
    return (
        all(ACCEPT_LOW <= x <= ACCEPT_HIGH for x in ratios)
        and statistics.median(ratios) <= ACCEPT_MEDIAN
        and all(s <= r.target / 2 for r in results for s in r.sizes)
    )


if __name__ == "__main__":
    sys.exit(main())
