#!/usr/bin/env python3
"""Does the size `--max-size-for BUDGET` answers really run in a memory limit of BUDGET?

Run by hand, as root, on a machine with a cgroup v1 memory controller, from the repository:

    python3 benchmarks/max_size.py [--workloads linear,fillin] [--budgets 512MiB,1.5GiB]
                                   [--json /tmp/max_size.json]
    python3 benchmarks/max_size.py --from-json /tmp/max_size.json  # re-fit, no runs

The acceptance test of the inverse question: on real workloads (examples/workloads.py)
with linear and faster-than-linear growth, the size memwatch answers for a budget must
complete under a cgroup memory limit equal to that budget, and must not be more than
35 % below the largest size that really completes under that limit (max/true >= 0.65).

For every workload:
  train   memwatch.measure() takes the true peak at the 5 train sizes of
          benchmarks/fit_accuracy.py, after one unrecorded warm-up run (the first run
          after a while charges the libraries' page cache to its cgroup, which is not what
          the job needs); memwatch.model.fit, then for every budget
          memwatch.planning.max_size_for(model, BUDGET, force=True): the CLI's answer.
For every (workload, budget), every run below is the bare job (no memwatch) alone in a
fresh cgroup made inside memwatch's own memory cgroup, with memory.limit_in_bytes =
memory.memsw.limit_in_bytes = BUDGET (no swap: over the budget the job is OOM-killed):
  answer  one run at memwatch's size: did it complete (exit 0) or was it OOM-killed?
  bisect  the largest size that really completes under the same limit: first the size
          where max/true would be exactly 0.65 (if that completes, the case fails and
          the bracket grows), then halving [largest completing, smallest failing] until
          it is within --precision of the size (or one unit). A run that exceeds
          --timeout (thrashing at the limit) counts as not completing.

The table also shows, side by side, the classic recipe (a straight line through the
train peaks + 10 %, solved for the budget) judged against the same bisected truth, with
no extra runs: a size at or below the largest completing size completes, one at or above
the smallest failing size does not, one in between is "?" (not run). Bisection assumes
that a larger size never needs less memory; a run that contradicts that is reported.

Progress goes to stderr, the table and summary to stdout. --json saves every run;
--from-json re-fits the saved train runs (the model may have changed since) and judges
the new answers against the saved limit runs in the same way as the classic recipe.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from fit_accuracy import LARGEST_TRAIN, SCRIPT, Run, run_one, train_sizes  # noqa: E402

from memwatch.cgroup import find_memory_cgroup  # noqa: E402
from memwatch.errors import CgroupUnavailable  # noqa: E402
from memwatch.model import Measurement, Model, fit  # noqa: E402
from memwatch.planning import max_size_for  # noqa: E402
from memwatch.report import human_bytes, parse_bytes  # noqa: E402

MIB = 1 << 20
SCHEMA = "memwatch-max-size/1"
WORKLOADS = ("linear", "nlogn", "quadratic", "fillin", "upscale")
# Both budgets put memwatch's answer 2-9x beyond the largest train size of every workload.
BUDGETS = "512MiB,1536MiB"
ACCEPT = 0.65  # max/true at or above this: memwatch's answer is at most 35 % below the truth
CLASSIC_MARGIN = 0.10
GROW = 1.5  # when the 0.65 size completes too, the bracket grows by this factor at a time
MAX_GROW = 16.0  # ... up to this many times memwatch's answer


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- one run under a memory limit ---------------------------------------------------------
@dataclass
class LimitRun:
    """The bare job at one size, alone in a fresh cgroup limited to the budget."""

    workload: str
    budget: int
    size: int
    purpose: str  # "answer" | "bisect" | "floor" (the largest train size, when the answer fails)
    returncode: int | None = None  # subprocess's: -9 is SIGKILL
    timed_out: bool = False
    oom_kills: int = 0  # memory.oom_control oom_kill
    # memory.failcnt, memory.memsw.failcnt: times the limit was hit (reclaim, not only OOM);
    # some kernels (6.x with cgroup v1) leave them at 0, so they decide nothing here.
    failcnt: int = 0
    memsw_failcnt: int = 0
    peak_bytes: int | None = None  # memory.memsw.max_usage_in_bytes: at most the budget
    cache_bytes: int | None = None  # page cache still charged after the job ended
    duration_s: float | None = None
    stderr_tail: str = ""

    @property
    def completed(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def outcome(self) -> str:
        if self.completed:
            return "completed"
        if self.timed_out:
            return "timed out"
        if self.oom_kills or self.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
            return "OOM-killed" if self.oom_kills else "SIGKILL"
        return f"exit {self.returncode}"


class LimitedCgroup:
    """A fresh v1 memory cgroup inside ``parent`` with RAM = RAM+swap = ``limit`` bytes."""

    def __init__(self, parent: str, name: str, limit: int) -> None:
        self.path = os.path.join(parent, name)
        os.mkdir(self.path)
        try:
            # RAM first: memsw.limit_in_bytes may never be below limit_in_bytes.
            self._put("memory.limit_in_bytes", limit)
            self._put("memory.memsw.limit_in_bytes", limit)
        except OSError:
            self.remove()
            raise

    @property
    def procs(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def _put(self, name: str, value: object) -> None:
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def text(self, name: str) -> str:
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def keyed(self, name: str, key: str) -> int:
        for line in self.text(name).splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.text("cgroup.procs").split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Kill whatever is left in it, then rmdir (EBUSY for a moment while tasks exit)."""
        for _ in range(200):
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(self.path)
                return
            except OSError as err:
                if err.errno == errno.ENOENT:
                    return
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)
        progress(f"warning: could not remove {self.path}: remove it by hand")


def run_limited(
    own: str, n: int, workload: str, size: int, budget: int, purpose: str, timeout: float
) -> LimitRun:
    run = LimitRun(workload, budget, size, purpose)
    cgroup = LimitedCgroup(own, f"memwatch-maxsize-{os.getpid()}-{n}", budget)
    try:
        # sh joins the cgroup, then execs the job: the job alone is charged, from its first page.
        join = 'echo $$ > "$0" && exec "$@"'
        command = ["sh", "-c", join, cgroup.procs, sys.executable, SCRIPT, workload, str(size)]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # killpg reaches everything it started
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        run.duration_s = round(time.monotonic() - t0, 3)
        run.returncode = proc.returncode
        run.stderr_tail = err.decode(errors="replace").strip()[-300:]
        run.oom_kills = cgroup.keyed("memory.oom_control", "oom_kill")
        run.failcnt = int(cgroup.text("memory.failcnt"))
        run.memsw_failcnt = int(cgroup.text("memory.memsw.failcnt"))
        run.peak_bytes = int(cgroup.text("memory.memsw.max_usage_in_bytes"))
        run.cache_bytes = cgroup.keyed("memory.stat", "total_cache")
    finally:
        cgroup.remove()
    return run


# ---- one case: memwatch's answer, then the truth by bisection -------------------------------
@dataclass
class Case:
    workload: str
    budget: int
    train_top: int  # the largest train size
    answer: int | None = None  # memwatch's max size
    answer_recommended: int | None = None  # memwatch's recommendation at that size
    answer_warnings: tuple[str, ...] = ()
    capped: bool = False
    classic: int | None = None  # the classic recipe's max size
    runs: list[LimitRun] = field(default_factory=list)
    note: str = ""

    def completing(self) -> list[int]:
        return [r.size for r in self.runs if r.completed]

    def failing(self) -> list[int]:
        return [r.size for r in self.runs if not r.completed]

    @property
    def true_largest(self) -> int | None:
        """The largest size that really completed under the limit."""
        return max(self.completing(), default=None)

    @property
    def smallest_failing(self) -> int | None:
        return min(self.failing(), default=None)

    def judge(self, size: int | None) -> str:
        """'yes'/'no' from a run at that size, else by the bracket: 'yes*'/'no*', or '?'."""
        if size is None:
            return "-"
        at = [r for r in self.runs if r.size == size]
        if at:
            return "yes" if all(r.completed for r in at) else "no"
        if self.true_largest is not None and size <= self.true_largest:
            return "yes*"
        if self.smallest_failing is not None and size >= self.smallest_failing:
            return "no*"
        return "?"

    def contradictions(self) -> list[str]:
        """Runs that break monotonicity: a size completed although a smaller one did not."""
        return [
            f"{bad} failed but {ok} completed"
            for bad in self.failing()
            for ok in self.completing()
            if ok > bad
        ]


def classic_max_size(train: list[Run], budget: int) -> int | None:
    """The classic recipe solved for the budget: (intercept + slope*x) * 1.1 = budget."""
    x = np.array([r.size for r in train], dtype=float)
    y = np.array([r.peak_bytes for r in train], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    if slope <= 0:
        return None
    return max(0, math.floor((budget / (1 + CLASSIC_MARGIN) - intercept) / slope))


def answer_case(case: Case, model: Model, train: list[Run]) -> None:
    """memwatch's answer (as `--max-size-for BUDGET --force` gives it) and the classic one."""
    answer = max_size_for(model, case.budget, force=True)
    case.capped = answer.capped
    case.answer_warnings = answer.warnings
    case.answer_recommended = answer.recommended_bytes
    # The workloads take whole sizes; with integral train sizes the answer is whole too.
    case.answer = None if answer.size is None else math.floor(answer.size)
    case.classic = classic_max_size(train, case.budget)


def bisect_case(
    case: Case, own: str, counter: list[int], precision: float, timeout: float, max_runs: int
) -> None:
    """One run at memwatch's answer, then bisect the largest size that completes."""

    def attempt(size: int, purpose: str) -> bool:
        counter[0] += 1
        r = run_limited(own, counter[0], case.workload, size, case.budget, purpose, timeout)
        case.runs.append(r)
        peak = "-" if r.peak_bytes is None else f"{r.peak_bytes / MIB:.0f} MiB"
        progress(
            f"  [{counter[0]}] {case.workload} {human_bytes(case.budget)} size {size} "
            f"({purpose}): {r.outcome()} in {r.duration_s:.1f} s, peak {peak}, "
            f"cache left {(r.cache_bytes or 0) / MIB:.0f} MiB"
        )
        return r.completed

    answer = case.answer
    if answer is None or answer < 1:
        case.note = "memwatch says nothing fits: no runs"
        return
    if attempt(answer, "answer"):
        low = answer
        # The size where max/true would be exactly ACCEPT: if that completes, the case fails.
        probe = max(answer + 1, math.ceil(answer / ACCEPT))
        while True:
            if probe > MAX_GROW * answer:
                case.note = f"still completes at {low} ({low / answer:.1f}x the answer): stopped"
                return
            if not attempt(probe, "bisect"):
                high = probe
                break
            low, probe = probe, max(probe + 1, math.ceil(probe * GROW))
    else:
        high = answer
        if attempt(min(case.train_top, answer - 1), "floor"):
            low = min(case.train_top, answer - 1)
        else:
            case.note = "even the largest train size does not complete under the limit"
            return
    runs = 0
    while high - low > max(1, precision * low) and runs < max_runs:
        middle = (low + high) // 2
        if attempt(middle, "bisect"):
            low = middle
        else:
            high = middle
        runs += 1
    if high - low > max(1, precision * low):
        case.note = f"stopped after {max_runs} bisection runs"


# ---- train --------------------------------------------------------------------------------
def train(workload: str, counter: list[int]) -> list[Run]:
    plan = [(train_sizes(workload)[0], "warmup")] + [(s, "train") for s in train_sizes(workload)]
    runs = []
    for size, role in plan:
        counter[0] += 1
        r = run_one(workload, size, role, 0)
        runs.append(r)
        what = f"  [{counter[0]}] {workload} {size} {role}"
        if r.ok:
            note = "" if r.source == "cgroup" else f" (NOT exact: {'; '.join(r.warnings)})"
            progress(f"{what}: {r.peak_bytes / MIB:.1f} MiB in {r.duration_s:.2f} s{note}")
        else:
            progress(f"{what}: FAILED: {r.failure()}")
    return runs


def fit_train(workload: str, runs: list[Run]) -> tuple[Model | None, list[Run], str]:
    ok = [r for r in runs if r.workload == workload and r.role == "train" and r.ok]
    if len({r.size for r in ok}) < 2:
        return None, ok, f"{workload}: cannot fit: {len(ok)} successful train runs"
    model = fit([Measurement(r.size, r.peak_bytes or 0, r.swap_suspected) for r in ok])
    plausible = ", ".join(shape_name(s.shape, s.params) for s in model.plausible)
    peaks = [r.peak_bytes or 0 for r in ok]
    line = (
        f"{workload}: sizes {','.join(str(r.size) for r in ok)}, peaks "
        f"{min(peaks) / MIB:.0f}-{max(peaks) / MIB:.0f} MiB; best "
        f"{shape_name(model.best.shape, model.best.params)}: {model.best.describe()}; "
        f"plausible: {plausible}"
    )
    return model, ok, line


def shape_name(shape: str, params: tuple[float, ...]) -> str:
    return f"power k={params[2]:.2f}" if shape == "power" else shape


# ---- JSON ---------------------------------------------------------------------------------
def model_version() -> str:
    """Which model.py and planning.py answered: they are being tuned."""
    digest = hashlib.sha256()
    for name in ("model.py", "planning.py", "limits.py"):
        with open(os.path.join(REPO, "memwatch", name), "rb") as f:
            digest.update(f.read())
    try:
        git = ["git", "-C", REPO]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        files = ["memwatch/model.py", "memwatch/planning.py", "memwatch/limits.py"]
        dirty = subprocess.run(
            [*git, "status", "--porcelain", *files], capture_output=True, text=True
        ).stdout.strip()
        head += ", modified" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        head = "no git"
    return f"memwatch model.py+planning.py+limits.py sha256 {digest.hexdigest()[:12]} (git {head})"


def save(path: str, train_runs: list[Run], cases: list[Case], opts: argparse.Namespace) -> None:
    doc = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "precision": opts.precision,
        "timeout_s": opts.timeout,
        "model_when_measured": model_version(),
        "train_runs": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(r).items()}
            for r in train_runs
        ],
        "cases": [
            {
                **{k: v for k, v in asdict(c).items() if k != "runs"},
                "answer_warnings": list(c.answer_warnings),
                "limit_runs": [asdict(r) for r in c.runs],
            }
            for c in cases
        ],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    progress(f"raw runs saved to {path} (re-analyse with --from-json {path})")


def load(path: str) -> tuple[list[Run], list[Case], dict[str, object]]:
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != SCHEMA:
        sys.exit(f"max_size.py: {path} is not a {SCHEMA} file (schema {doc.get('schema')!r})")
    train_runs = [Run(**{**r, "warnings": tuple(r.get("warnings", ()))}) for r in doc["train_runs"]]
    cases = []
    for c in doc["cases"]:
        runs = [LimitRun(**r) for r in c.pop("limit_runs")]
        cases.append(Case(**{**c, "answer_warnings": tuple(c["answer_warnings"]), "runs": runs}))
    return train_runs, cases, doc


# ---- report -------------------------------------------------------------------------------
def verdict(case: Case) -> str:
    """PASS: completes and max/true >= ACCEPT; UNKNOWN: not run at that size, inside the bracket."""
    completes = case.judge(case.answer)
    r = ratio(case.answer, case.true_largest)
    if completes.startswith("no") or completes == "-" or r is None or r < ACCEPT:
        return "FAIL"
    return "UNKNOWN" if completes == "?" else "PASS"


def ratio(got: int | None, truth: int | None) -> float | None:
    return None if got is None or not truth else got / truth


def report(cases: list[Case], fits: list[str]) -> None:
    hdr = (
        f"{'workload':9} {'budget':>10} {'memwatch max':>12} {'beyond':>6} {'completes?':>10} "
        f"{'peak there':>10} {'true largest':>12} {'1st failing':>11} {'max/true':>8} "
        f"{'within 35%?':>11} {'runs':>4} | {'classic max':>11} {'completes?':>10} "
        f"{'cl/true':>7}"
    )
    print(f"{hdr}\n{'-' * len(hdr)}")
    for c in cases:
        at = [r for r in c.runs if r.size == c.answer and r.completed]
        peak = f"{at[0].peak_bytes / MIB:.0f} MiB" if at and at[0].peak_bytes else "-"
        r = ratio(c.answer, c.true_largest)
        cl = ratio(c.classic, c.true_largest)
        beyond = "-" if c.answer is None else f"{c.answer / c.train_top:.1f}x"
        print(
            f"{c.workload:9} {human_bytes(c.budget):>10} {fmt(c.answer):>12} {beyond:>6} "
            f"{c.judge(c.answer):>10} {peak:>10} {fmt(c.true_largest):>12} "
            f"{fmt(c.smallest_failing):>11} {'-' if r is None else f'{r:.2f}':>8} "
            f"{('yes' if r is not None and r >= ACCEPT else 'NO'):>11} {len(c.runs):>4} | "
            f"{fmt(c.classic):>11} {c.judge(c.classic):>10} "
            f"{'-' if cl is None else f'{cl:.2f}':>7}"
        )
    legend = (
        "memwatch max: max_size_for(fit(train runs), BUDGET, force=True), what "
        "`--max-size-for BUDGET` answers; beyond: that / the largest train size. completes?: "
        "the bare job under memory.limit_in_bytes = memory.memsw.limit_in_bytes = BUDGET "
        "(yes*/no*: not run at that size, judged by the bisected bracket; ?: inside it). "
        "peak there: memory.memsw.max_usage_in_bytes of that run. true largest / 1st "
        "failing: the bisected bracket (real runs under the same limit). classic: a "
        f"straight line through the train peaks + {CLASSIC_MARGIN:.0%}, solved for BUDGET."
    )
    print("\n" + textwrap.fill(legend, 100))
    print("\nFits (train runs only):")
    for f in fits:
        print(f"  {f}")
    notes = []
    for c in cases:
        name = f"{c.workload} {human_bytes(c.budget)}"
        notes += [f"{name}: {w}" for w in c.answer_warnings]
        notes += [f"{name}: {c.note}"] if c.note else []
        notes += [f"{name}: not monotone: {x}" for x in c.contradictions()]
        notes += [
            f"{name}: size {r.size} {r.outcome()}: {r.stderr_tail.splitlines()[-1]}"
            for r in c.runs
            if not r.completed and not r.oom_kills and r.stderr_tail
        ]
    if notes:
        print("\nNotes:")
        for n in notes:
            print(f"  {n}")
    verdicts = [f"{c.workload}/{human_bytes(c.budget)} {verdict(c)}" for c in cases]
    ok = sum(verdict(c) == "PASS" for c in cases)
    print(f"\nSummary: {ok}/{len(cases)} cases pass (completes and max/true >= {ACCEPT:.2f}):")
    print("  " + ", ".join(verdicts))


def fmt(x: int | None) -> str:
    return "-" if x is None else str(x)


# ---- main ---------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", help="comma-separated, default " + ",".join(WORKLOADS))
    ap.add_argument("--budgets", help=f"comma-separated, default {BUDGETS}")
    ap.add_argument(
        "--precision",
        type=float,
        default=0.01,
        help="bisect until the bracket is this fraction of the size, or 1 unit (default 0.01)",
    )
    ap.add_argument(
        "--max-runs", type=int, default=8, help="bisection runs per case at most (default 8)"
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=120,
        help="seconds a run under the limit may take; longer counts as not completing",
    )
    ap.add_argument("--json", metavar="PATH", help="save every run here")
    ap.add_argument("--from-json", metavar="PATH", help="re-fit saved runs, run nothing")
    opts = ap.parse_args()
    try:
        budgets = [parse_bytes(b) for b in (opts.budgets or BUDGETS).split(",") if b.strip()]
    except ValueError as err:
        ap.error(f"--budgets: {err}")
    workloads = list(WORKLOADS)
    if opts.workloads:
        workloads = [w.strip() for w in opts.workloads.split(",") if w.strip()]
        unknown = [w for w in workloads if w not in LARGEST_TRAIN]
        if unknown:
            known = ", ".join(LARGEST_TRAIN)
            ap.error(f"unknown workload(s) {', '.join(unknown)}; known: {known}")

    fits: list[str] = []
    if opts.from_json:
        train_runs, saved, doc = load(opts.from_json)
        progress(f"runs measured with {doc.get('model_when_measured')}")
        cases = [c for c in saved if c.workload in workloads]
        if opts.budgets:
            cases = [c for c in cases if c.budget in budgets]
        for w in dict.fromkeys(c.workload for c in cases):
            model, ok, line = fit_train(w, train_runs)
            fits.append(line)
            for c in cases:
                if c.workload == w and model is not None:
                    answer_case(c, model, ok)
    else:
        if os.geteuid() != 0:
            sys.exit("max_size.py: needs root (it creates memory cgroups with limits)")
        try:
            version, own = find_memory_cgroup()
        except CgroupUnavailable as err:
            sys.exit(f"max_size.py: {err}")
        if version != 1:
            sys.exit(f"max_size.py: needs a cgroup v1 memory controller (found v{version})")
        progress(
            f"limits in fresh cgroups under {own}; budgets {', '.join(map(human_bytes, budgets))}"
        )
        t0 = time.monotonic()
        counter = [0]
        train_runs: list[Run] = []
        cases = []
        try:
            for w in workloads:
                progress(f"{w}: train")
                train_runs += train(w, counter)
                model, ok, line = fit_train(w, train_runs)
                fits.append(line)
                for budget in budgets:
                    case = Case(w, budget, train_sizes(w)[-1])
                    cases.append(case)
                    if model is None:
                        case.note = "no fit"
                        continue
                    answer_case(case, model, ok)
                    progress(
                        f"{w} {human_bytes(budget)}: memwatch max size {case.answer} "
                        f"(recommends {human_bytes(case.answer_recommended)} there)"
                    )
                    bisect_case(case, own, counter, opts.precision, opts.timeout, opts.max_runs)
        finally:
            progress(f"{counter[0]} runs in {time.monotonic() - t0:.0f} s")
            if opts.json:
                save(opts.json, train_runs, cases, opts)
    print(f"answers from {model_version()}")
    report(cases, fits)
    return 0 if all(verdict(c) == "PASS" for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
