#!/usr/bin/env python3
"""Does memwatch's recommendation cover the true peak beyond the sizes it measured?

Run by hand, as root (so every peak is a cgroup's exact figure), from the repository:

    python3 benchmarks/fit_accuracy.py [--repeat 3] [--workloads quadratic,fillin]
                                       [--json /tmp/fit_bench.json]
    python3 benchmarks/fit_accuracy.py --from-json /tmp/fit_bench.json  # re-fit, no runs

For every workload of examples/workloads.py, memwatch.measure() takes the true peak
(RAM + swap of the whole tree, from the job's memory cgroup) at 5 "train" sizes and at
3 held-out sizes 2x, 4x and 8x the largest train size. Each workload first runs once,
unrecorded, at its smallest size: the first run after a while reads the libraries from
disk and the cgroup is charged that page cache (tens of MiB for scipy), which is not
what the job needs. Then two recipes see only the train runs:

  memwatch  memwatch.model.fit + predict(force=True): recommended_bytes
  classic   a straight line through the train peaks (np.polyfit, degree 1),
            extrapolated, + 10 %

and are compared with the held-out truth. recommended/actual below 1 is an
under-provision: the job would be OOM-killed (or swap) in that allocation.

--repeat N runs every train size N times (interleaved, not back to back), so the model
sees the run-to-run noise; with --from-json it uses only the first N repeats stored.
Progress goes to stderr, the table and summary to stdout. A run that fails (nonzero
exit, or memwatch could not run it) is reported and left out of the fit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from memwatch.errors import MemwatchError  # noqa: E402
from memwatch.limits import WARN_EXTRAPOLATION  # noqa: E402
from memwatch.model import Measurement, fit, predict  # noqa: E402
from memwatch.run import measure  # noqa: E402

SCRIPT = os.path.join(REPO, "examples", "workloads.py")
MIB = 1 << 20
CLASSIC_MARGIN = 0.10
FACTORS = (2, 4, 8)
SCHEMA = "memwatch-fit-accuracy/1"

# Train sizes: 5 evenly spaced up to the largest; held-out sizes FACTORS x the largest.
# Chosen so the 8x run stays under ~3 GiB and ~10 s on 2 cores (eigh: more), and the train runs
# still show growth above the import baseline (numpy ~20 MiB, scipy ~35-60 MiB).
LARGEST_TRAIN = {
    "linear": 2_500_000,  # rows; ~55 B a row: 20M rows ~1.1 GiB
    "nlogn": 1_250_000,  # array length; 10M -> 24 levels ~1.8 GiB
    "quadratic": 2000,  # points; 16000 -> 12 B x 16000^2 ~2.9 GiB
    "fillin": 100,  # grid side; 800 -> 640k unknowns ~1.2 GiB, ~8 s
    "dense": 500,  # order; 4000 -> ~0.6 GiB, 6 s idle, 20-30 s busy (eigh: n^3 time)
    "streaming": 50,  # MiB hashed; 400 MiB ~1.5 s
    "baseline": 500,  # KiB allocated on top of the scipy import
    "upscale": 5,  # zoom factor; 40 -> 15360^2 float32 ~0.9 GiB
}


def train_sizes(workload: str) -> list[int]:
    top = LARGEST_TRAIN[workload]
    return [top * i // 5 for i in range(1, 6)]


def test_sizes(workload: str) -> list[int]:
    return [LARGEST_TRAIN[workload] * f for f in FACTORS]


@dataclass
class Run:
    workload: str
    size: int
    role: str  # "warmup" | "train" | "test"
    rep: int
    exit_status: int | None = None
    peak_bytes: int | None = None
    source: str | None = None
    duration_s: float | None = None
    swap_suspected: bool = False
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_status == 0 and bool(self.peak_bytes)

    def failure(self) -> str:
        if self.error:
            return self.error
        if self.exit_status != 0:
            return f"exit status {self.exit_status}"
        return "no peak measured"


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(workload: str, size: int, role: str, rep: int) -> Run:
    run = Run(workload, size, role, rep)
    command = [sys.executable, SCRIPT, workload, str(size)]
    try:
        # The workload's one-line result would land in the table.
        summary = measure(command, size=size, job=workload, stdout=subprocess.DEVNULL)
    except MemwatchError as err:
        run.error = str(err)
        return run
    run.exit_status = summary.exit_status
    run.peak_bytes = summary.peak.total_bytes
    run.source = summary.peak.source
    run.duration_s = round(summary.duration_s, 3)
    run.swap_suspected = summary.swap_suspected
    run.warnings = summary.warnings
    return run


def measure_all(workloads: list[str], repeat: int) -> list[Run]:
    plan: list[tuple[str, int, str, int]] = []
    for w in workloads:
        plan.append((w, train_sizes(w)[0], "warmup", 0))
        plan += [(w, s, "train", r) for r in range(repeat) for s in train_sizes(w)]
        plan += [(w, s, "test", 0) for s in test_sizes(w)]
    runs = []
    for i, (w, size, role, rep) in enumerate(plan, 1):
        r = run_one(w, size, role, rep)
        runs.append(r)
        what = f"[{i}/{len(plan)}] {w} {size} {role}"
        what += f" rep {rep + 1}" if role == "train" else ""
        if r.ok:
            note = "" if r.source == "cgroup" else f" (NOT exact: {'; '.join(r.warnings)})"
            progress(
                f"{what}: {r.peak_bytes / MIB:.1f} MiB in {r.duration_s:.2f} s [{r.source}]{note}"
            )
        else:
            progress(f"{what}: FAILED: {r.failure()}")
    return runs


def model_version() -> str:
    """Which model.py fits: it is being tuned, so the same runs can give another table."""
    with open(os.path.join(REPO, "memwatch", "model.py"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    try:
        git = ["git", "-C", REPO]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "memwatch/model.py"], capture_output=True, text=True
        ).stdout.strip()
        head += ", model.py modified" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        head = "no git"
    return f"memwatch/model.py sha256 {digest} (git {head})"


def save(path: str, runs: list[Run], repeat: int) -> None:
    doc = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeat": repeat,
        "model_when_measured": model_version(),
        "runs": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(r).items()} for r in runs
        ],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    progress(f"raw measurements saved to {path} (re-fit offline with --from-json {path})")


def load(path: str) -> list[Run]:
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != SCHEMA:
        sys.exit(f"fit_accuracy.py: {path} is not a {SCHEMA} file (schema {doc.get('schema')!r})")
    return [Run(**{**r, "warnings": tuple(r.get("warnings", ()))}) for r in doc["runs"]]


# ---- fitting and report -----------------------------------------------------------------
@dataclass
class Row:
    workload: str
    size: int
    factor: float
    actual: int | None
    failure: str | None
    recommended: int | None
    warnings: tuple[str, ...]
    classic: int | None
    best: str


def warning_codes(warnings: tuple[str, ...]) -> str:
    """E: extrapolating beyond 4x; S: plausible shapes disagree; ?: any other warning."""
    codes = []
    for w in warnings:
        code = "E" if w.startswith("extrapolating") else "S" if "shapes disagree" in w else "?"
        if code not in codes:
            codes.append(code)
    return "yes " + ",".join(codes) if codes else "no"


def shape_name(shape: str, params: tuple[float, ...]) -> str:
    return f"power k={params[2]:.2f}" if shape == "power" else shape


def evaluate(workload: str, runs: list[Run], fits: list[str]) -> list[Row]:
    train = [r for r in runs if r.workload == workload and r.role == "train" and r.ok]
    tests = sorted(
        (r for r in runs if r.workload == workload and r.role == "test"), key=lambda r: r.size
    )
    if len({r.size for r in train}) < 2:
        fits.append(f"{workload}: cannot fit: {len(train)} successful train runs")
        top = max((r.size for r in runs if r.workload == workload and r.role == "train"), default=0)
        return [
            Row(
                workload,
                t.size,
                t.size / top if top else 0,
                t.peak_bytes if t.ok else None,
                "no fit" if t.ok else t.failure(),
                None,
                (),
                None,
                "-",
            )
            for t in tests
        ]
    model = fit([Measurement(r.size, r.peak_bytes or 0, r.swap_suspected) for r in train])
    sizes = np.array([r.size for r in train], dtype=float)
    peaks = np.array([r.peak_bytes for r in train], dtype=float)
    slope, intercept = np.polyfit(sizes, peaks, 1)
    best = shape_name(model.best.shape, model.best.params)
    plausible = ", ".join(shape_name(s.shape, s.params) for s in model.plausible)
    noise = "-" if model.noise is None else f"{model.noise:.1%}"
    fits.append(
        f"{workload}: best {best}: {model.best.describe()}; plausible: {plausible}; "
        f"repeat noise {noise}; train peaks {peaks.min() / MIB:.1f}-{peaks.max() / MIB:.1f} MiB"
        + "".join(f"\n    model warning: {w}" for w in model.warnings)
    )
    rows = []
    for t in tests:
        p = predict(model, t.size, force=True)
        classic = round((intercept + slope * t.size) * (1 + CLASSIC_MARGIN))
        rows.append(
            Row(
                workload,
                t.size,
                p.extrapolation_factor,
                t.peak_bytes if t.ok else None,
                None if t.ok else t.failure(),
                p.recommended_bytes,
                p.warnings,
                classic,
                best,
            )
        )
    return rows


def mib(b: float | None) -> str:
    return "-" if b is None else f"{b / MIB:,.1f}"


def ratio(got: int | None, actual: int | None) -> float | None:
    return None if got is None or not actual else got / actual


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" + ("!" if x < 1 else "")


def report(rows: list[Row], fits: list[str]) -> None:
    hdr = (
        f"{'workload':10} {'size':>10} {'beyond':>6} {'true MiB':>10} {'memwatch MiB':>12} "
        f"{'mw/true':>7} {'warned':9} {'classic MiB':>11} {'cl/true':>7}  best shape"
    )
    print(f"{hdr}\n{'-' * len(hdr)}")
    for r in rows:
        if r.failure:
            what = f"{mib(r.actual):>10}  no fit" if r.actual else f"FAILED: {r.failure}"
            print(f"{r.workload:10} {r.size:>10} {r.factor:>5.0f}x {what}")
            continue
        print(
            f"{r.workload:10} {r.size:>10} {r.factor:>5.0f}x {mib(r.actual):>10} "
            f"{mib(r.recommended):>12} {fmt_ratio(ratio(r.recommended, r.actual)):>7} "
            f"{warning_codes(r.warnings):9} {mib(r.classic):>11} "
            f"{fmt_ratio(ratio(r.classic, r.actual)):>7}  {r.best}"
        )
    print(
        "\nbeyond: held-out size / largest train size. mw: memwatch recommended_bytes; "
        f"classic: straight line through the train peaks + {CLASSIC_MARGIN:.0%}. "
        "! = under-provision (below the true peak). warned: E extrapolation, "
        "S plausible shapes disagree, ? other."
    )
    print("\nFits (train runs only):")
    for f in fits:
        print(f"  {f}")

    measured = [r for r in rows if r.actual and r.recommended is not None and r.classic is not None]
    print(f"\nSummary over {len(measured)} held-out runs:")
    for name, attr in (("memwatch", "recommended"), ("classic", "classic")):
        xs = [getattr(r, attr) / r.actual for r in measured]
        if not xs:
            continue
        under = [f"{r.workload} {r.size}" for r, x in zip(measured, xs, strict=True) if x < 1]
        which = f" ({', '.join(under)})" if under else ""
        print(
            f"  {name:8}: {len(under)} under-provisioned{which}; "
            f"recommended/actual median {statistics.median(xs):.2f}, "
            f"min {min(xs):.2f}, max {max(xs):.2f}"
        )
    far = [r for r in measured if r.factor > WARN_EXTRAPOLATION]
    unwarned = [f"{r.workload} {r.size}" for r in far if not r.warnings]
    print(
        f"  every memwatch prediction beyond {WARN_EXTRAPOLATION:g}x carried a warning: "
        + ("yes" if not unwarned else "NO, not: " + ", ".join(unwarned))
        + f" ({len(far) - len(unwarned)}/{len(far)})"
    )
    failed = [r for r in rows if r.failure and not r.actual]
    if failed:
        print(f"  {len(failed)} held-out run(s) failed and are not counted")
    unfitted = sorted({r.workload for r in rows if r.actual and r.recommended is None})
    if unfitted:
        print(f"  not counted, too few successful train runs to fit: {', '.join(unfitted)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=None, help="runs per train size (default 1)")
    ap.add_argument("--workloads", help="comma-separated, default all: " + ",".join(LARGEST_TRAIN))
    ap.add_argument("--json", metavar="PATH", help="save the raw measurements here")
    ap.add_argument("--from-json", metavar="PATH", help="re-fit saved measurements, run nothing")
    opts = ap.parse_args()
    if opts.repeat is not None and opts.repeat < 1:
        ap.error("--repeat must be at least 1")
    workloads = list(LARGEST_TRAIN)
    if opts.workloads:
        workloads = [w.strip() for w in opts.workloads.split(",") if w.strip()]
        unknown = [w for w in workloads if w not in LARGEST_TRAIN]
        if unknown:
            ap.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(LARGEST_TRAIN)}")

    if opts.from_json:
        runs = [r for r in load(opts.from_json) if r.workload in workloads]
        if opts.repeat is not None:
            runs = [r for r in runs if r.role != "train" or r.rep < opts.repeat]
        workloads = [w for w in workloads if any(r.workload == w for r in runs)]
        if not workloads:
            sys.exit(f"fit_accuracy.py: no runs of the chosen workloads in {opts.from_json}")
    else:
        if os.geteuid() != 0:
            progress("fit_accuracy.py: not root: peaks come from sampling, not exact cgroups")
        repeat = opts.repeat or 1
        t0 = time.monotonic()
        runs = measure_all(workloads, repeat)
        progress(f"measured {len(runs)} runs in {time.monotonic() - t0:.0f} s")
        if opts.json:
            save(opts.json, runs, repeat)

    failed = [r for r in runs if not r.ok and r.role != "warmup"]
    for r in failed:
        print(f"FAILED run: {r.workload} {r.size} ({r.role}): {r.failure()}")
    not_exact = sorted({r.workload for r in runs if r.ok and r.source != "cgroup"})
    if not_exact:
        print(f"peaks not from a cgroup (lower bounds, not exact) for: {', '.join(not_exact)}")
    print(f"fitted with {model_version()}")
    fits: list[str] = []
    rows = [row for w in workloads for row in evaluate(w, runs, fits)]
    report(rows, fits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
