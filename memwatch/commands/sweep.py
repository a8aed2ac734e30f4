"""`memwatch sweep --sizes ... | --target SIZE -- CMD {size}`: measure CMD at several sizes
(listed, or picked by the adaptive planner in adaptive.py), fit, and advise."""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..errors import OutputError, UsageError
from ..history import Store, new_entry
from ..limits import MAX_FRACTION, REFUSE_EXTRAPOLATION, START_FRACTION
from ..report import (
    describe_ending,
    human_bytes,
    json_number,
    parse_duration,
    ratio_text,
    size_text,
    valid_utf8,
)
from ..spool import default_dir, deliver
from ..sweep import SweepRun, substitute, sweep
from ._advice import (
    add_fit_options,
    advise,
    budget_of,
    check_fit_outputs,
    fit_epilog,
    report_on_stdout,
    write_fit_json,
)
from ._common import (
    Command,
    add_history_option,
    add_measure_options,
    command_of,
    history_ready,
    say,
    size,
)

if TYPE_CHECKING:
    from ..adaptive import Choice, Outcome

DESCRIPTION = """\
Run CMD once per size (and repetition) with {size} replaced by the size, each under the
same true-peak measurement as 'memwatch run'. Every run is recorded in the history as it
ends. Then print one line per size, the fitted shape of growth in words, and for each
--at size the expected peak and the memory to provision. A failed run is reported with
its size and exit status and the others are still fitted. The job's stdin is /dev/null
and its stdout goes to memwatch's stderr, so stdout holds only the report (or the JSON
with --json).

With --target SIZE instead of --sizes, memwatch picks the sizes itself, none above
--max-size (default: half the target): it starts small, grows the size by sqrt(2) after
each run, refits, and stops once the recommendation at the target has settled or the next
run would not fit the time or memory budget. It says why it picks each size."""

ADAPTIVE_EPILOG = """\
how --target picks the sizes:
  The first run is at --start (default: target/32); nothing is known before it, so it is
  the one run no prediction protects: keep it small. While every run so far took longer
  than a quick run (10 s, or 1/20 of --time-budget if that is less), the next halves the
  smallest size, at most 4 times. Then each size is sqrt(2) times the one before
  (start x 2^(k/2); whole numbers when the target and --start are), the last capped at
  --max-size. After each run every shape is refitted. The sweep stops when the answer
  has settled: with 5 or more sizes, the largest at least half the target (so a sweep
  stops early only when told a --max-size above that), the plausible range at the
  target is within --margin and the last run moved the recommendation there by less
  than --margin. It also stops before a run above --max-size; a run whose predicted
  memory (the top of the plausible range, or the peak grown as size^2 while one size is
  known) exceeds the memory budget (--budget, else the memory free under the cgroup
  limit or on this machine); or a run whose predicted time (a power law fitted to the 4
  largest sizes, at least linear) does not fit in what is left of --time-budget. A
  failed run ends the sweep.

"""


def sizes(text: str) -> list[str]:
    """'1000,2000,4e3' -> the sizes as typed (they go into the command verbatim)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give sizes separated by commas, e.g. 1000,2000,4000")
    for part in parts:
        size(part)
    if len({float(p) for p in parts}) < 2:
        raise argparse.ArgumentTypeError(f"need 2 or more distinct sizes to fit (got {text})")
    return parts


def count(text: str) -> int:
    """A whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text})")
    return int(text)


def duration(text: str) -> float:
    """A time budget: 90, 90s, 10m, 1h30m; more than 0."""
    try:
        value = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch sweep`."""
    p.add_argument(
        "--sizes",
        type=sizes,
        metavar="N,N,...",
        help="input sizes to run, comma-separated; each replaces {size} in CMD as typed",
    )
    p.add_argument(
        "--target",
        type=size,
        metavar="SIZE",
        help="instead of --sizes: the size to provision for; memwatch picks the sizes to run "
        "(see below) and predicts at SIZE",
    )
    p.add_argument(
        "--start",
        type=size,
        metavar="SIZE",
        help="with --target: the first size to run (default: target/32)",
    )
    p.add_argument(
        "--max-size",
        type=size,
        metavar="SIZE",
        help="with --target: never run a size above this (default: half the target)",
    )
    p.add_argument(
        "--time-budget",
        type=duration,
        metavar="DURATION",
        help="with --target: stop before a run that would end after this long, e.g. 90s, "
        "10m, 1h (default: no limit)",
    )
    p.add_argument(
        "--repeat",
        type=count,
        default=1,
        metavar="N",
        help="runs per size (default 1); repeats measure noise and widen the bound",
    )
    p.add_argument(
        "--job",
        type=valid_utf8,
        metavar="NAME",
        help="job name in the history (default: CMD as typed)",
    )
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the first, unfitted run at the smallest size (it loads the job's "
        "libraries into the page cache, which the cgroup would otherwise charge to the "
        "first fitted run)",
    )
    add_fit_options(p)
    add_measure_options(p)
    add_history_option(p)
    # Named so that they are refused by name: unknown, `--size 5` ended in the command
    # (REMAINDER takes all from the first positional) and the error blamed --sizes.
    p.add_argument(*RUN_ONLY, action=_RunOnly, nargs="?", help=argparse.SUPPRESS)
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- CMD ... {size} ...", help="the command"
    )


RUN_ONLY = ("--samples", "--size", "-q", "--quiet", "--metrics-port", "--pushgateway", "--textfile")


class _RunOnly(argparse.Action):
    """An option of `memwatch run` that a sweep does not take."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        raise UsageError(
            f"sweep does not take {option}, an option of 'memwatch run' (a sweep's sizes come "
            "from --sizes; its outputs are the report, --json and the history)"
        )


def run(args: argparse.Namespace) -> int:
    """Check, run every size (recording each run), then print the table and the advice."""
    command = command_of(args)
    _check(args, command)
    job = args.job or valid_utf8(" ".join(command))
    store = history_ready(args.history)
    started = time.monotonic()
    listed = None if args.target is not None else len(args.sizes)
    progress = _Progress(args.repeat, store, job, started, listed)
    # stdout carries only the report or the JSON; the job's own output goes to stderr.
    options: dict[str, Any] = dict(
        job=job,
        before_run=progress.before,
        on_run=progress.after,
        interval_s=args.interval,
        pss=args.pss,
        use_cgroup=not args.no_cgroup,
        backend=args.backend,
        forward_signals=True,
        stdin=subprocess.DEVNULL,
        stdout=2,  # the job's stdout joins memwatch's stderr
    )
    if args.target is None:
        runs = sweep(command, args.sizes, args.repeat, warmup=not args.no_warmup, **options)
        return _report(args, runs, progress, job)
    runs, outcome = _adaptive(args, command, options)
    return _report(args, runs, progress, job, outcome, time.monotonic() - started)


def _adaptive(
    args: argparse.Namespace, command: list[str], options: dict[str, Any]
) -> tuple[list[SweepRun], Outcome]:
    """Let the planner pick the sizes; each is run (with its repeats) through sweep()."""
    from ..adaptive import Goal, Run, adaptive_sweep

    start = _start(args)
    goal = Goal(
        target=args.target,
        start=start,
        max_size=_max_size(args),
        margin=args.margin,
        memory_budget_bytes=budget_of(args).for_tasks_bytes,
        time_budget_s=args.time_budget,
        # The sizes the user typed decide: a default start of target/32 is not typed.
        integral=all(float(x).is_integer() for x in (args.target, args.start) if x is not None),
    )
    first = goal.size_text(start)
    if float(first) > goal.max_size:  # a whole-number size rounded up past it
        raise UsageError(
            f"the first size would be {first}, above the largest size "
            f"{size_text(goal.max_size)}: give a larger --target or --max-size"
        )
    runs: list[SweepRun] = []

    def measure(size_text: str) -> list[Run]:
        warm = not args.no_warmup and not runs  # the first size only, as a listed sweep
        new = sweep(command, [size_text], args.repeat, warmup=warm, **options)
        runs.extend(new)
        return [Run(r.size_text, r.measurement, r.ok) for r in new]

    def tell(choice: Choice) -> None:
        say(f"memwatch: {choice.text()}")

    return runs, adaptive_sweep(goal, measure, tell)


def _start(args: argparse.Namespace) -> float:
    return float(args.start if args.start is not None else args.target * START_FRACTION)


def _max_size(args: argparse.Namespace) -> float:
    return float(args.max_size if args.max_size is not None else args.target * MAX_FRACTION)


def _report(
    args: argparse.Namespace,
    runs: list[SweepRun],
    progress: _Progress,
    job: str,
    outcome: Outcome | None = None,
    total_s: float = 0.0,
) -> int:
    """The table, the failed runs, the advice (JSON or text), and the exit status."""
    failed = [r for r in runs if not r.ok]
    from ..fitreport import fitted_and_floors, format_sizes_table

    measured, floors = fitted_and_floors((r.measurement, r.ok) for r in runs)
    if report_on_stdout(args):
        print(format_sizes_table(measured) if measured else "no run succeeded")
        for r in failed:
            print(
                f"warning: size {r.size_text} (repeat {r.repeat}) failed: "
                f"{describe_ending(r.summary)}; its peak {human_bytes(r.summary.peak.total_bytes)}"
                " is only a lower bound and is not fitted"
            )
    stopped = progress.last.stopping_signal if progress.last else None
    if stopped is not None:
        where = "they are in the history"
        if progress.spooled or progress.history_errors:
            where = progress.where()
        say(f"memwatch: sweep stopped after {len(runs)} run(s); {where}")
        return 128 + stopped
    if args.target is not None and args.target not in args.at:
        args = argparse.Namespace(**{**vars(args), "at": [*args.at, args.target]})
    advice = advise(args, measured, title=job, lower_bounds=floors, keep_going=True)
    doc = advice.json()
    doc["failed_runs"] = [
        {"size": json_number(r.size), "repeat": r.repeat, "exit_status": r.summary.exit_status}
        for r in failed
    ]
    doc["refused"] = list(advice.refused)
    if outcome is not None:
        doc["adaptive"] = _adaptive_json(args, runs, outcome, total_s)
    doc["peak_sources"] = dict(Counter(r.summary.peak.source for r in runs if r.ok))
    write_fit_json(args, doc)
    if report_on_stdout(args):
        print(advice.text() + "".join(f"\nerror: {message}" for message in advice.refused))
        if outcome is not None:
            print(_adaptive_text(args, runs, outcome, total_s))
    say(f"memwatch: {progress.where()}")
    return 1 if failed or progress.history_errors or advice.refused else 0


def _target_run_s(args: argparse.Namespace, runs: list[SweepRun]) -> float | None:
    from ..model import duration_at

    return duration_at([r.measurement for r in runs if r.ok], args.target)


def _adaptive_text(
    args: argparse.Namespace, runs: list[SweepRun], outcome: Outcome, total_s: float
) -> str:
    from ..model import duration_text

    sizes = ", ".join(dict.fromkeys(r.size_text for r in runs))
    one = _target_run_s(args, runs)
    at_target = f"~{duration_text(one)} (estimated)" if one is not None else "unknown"
    return (
        f"adaptive sweep: {len(runs)} run(s) at sizes {sizes} (none above "
        f"{size_text(_max_size(args))}); {outcome.stop.text()}\n"
        f"sweep time {duration_text(total_s)}; one run at the target {size_text(args.target)}: "
        f"{at_target}"
    )


def _adaptive_json(
    args: argparse.Namespace, runs: list[SweepRun], outcome: Outcome, total_s: float
) -> dict[str, Any]:
    return {
        "target": json_number(args.target),
        "max_size": json_number(_max_size(args)),
        "time_budget_s": args.time_budget,
        "sizes": [json_number(s) for s in dict.fromkeys(r.size for r in runs)],
        "stop_reason": outcome.stop.reason,
        "settled": outcome.stop.settled,
        "total_duration_s": round(total_s, 3),
        "target_duration_s": _target_run_s(args, runs),
        "runs": [
            {
                "size": json_number(r.size),
                "peak_bytes": r.summary.peak.total_bytes,
                "duration_s": r.summary.duration_s,
                "exit_status": r.summary.exit_status,
            }
            for r in runs
        ],
    }


def _check(args: argparse.Namespace, command: list[str]) -> None:
    """Usage errors, before anything runs: no command, no {size}, sizes, a plot, --at too far."""
    if not command:
        raise UsageError(
            "no command given: memwatch sweep --sizes 1,2,4 -- CMD ... {size} ... "
            "(see 'memwatch sweep --help')"
        )
    substitute(command, "")  # a missing {size} is a usage error before anything runs
    check_fit_outputs(args)
    if args.target is None:
        _check_listed(args)
        largest = max(float(s) for s in args.sizes)
        where = "the largest size in --sizes"
    else:
        largest = _check_target(args)
        where = "--max-size" if args.max_size is not None else "half the --target"
    for at in [*args.at, *([] if args.target is None else [args.target])]:
        if at / largest > REFUSE_EXTRAPOLATION and not args.force:
            raise UsageError(
                f"{'--target' if at == args.target else '--at'} {size_text(at)} is "
                f"{ratio_text(at / largest)}x {where} "
                f"({size_text(largest)}); "
                f"beyond {REFUSE_EXTRAPOLATION:g}x memwatch will not guess: add a larger "
                "size, or pass --force"
            )


def _check_listed(args: argparse.Namespace) -> None:
    if args.sizes is None:
        raise UsageError(
            "give --sizes N,N,... (the sizes to run) or --target SIZE (memwatch picks them); "
            "see 'memwatch sweep --help'"
        )
    given = [
        o for o, v in (("--start", args.start), ("--max-size", args.max_size)) if v is not None
    ]
    given += ["--time-budget"] if args.time_budget is not None else []
    if given:
        raise UsageError(f"{' and '.join(given)} work only with --target, not with --sizes")


def _check_target(args: argparse.Namespace) -> float:
    """The --target options make sense together; returns the largest size the sweep may run."""
    if args.sizes is not None:
        raise UsageError(
            "give --sizes or --target, not both: --sizes runs the sizes listed, "
            "--target lets memwatch pick them"
        )
    if args.target <= 0:
        raise UsageError(f"--target must be more than 0 (got {size_text(args.target)})")
    largest = _max_size(args)
    start = _start(args)
    if not 0 < start <= largest:
        where = "--start" if args.start is not None else "target/32"
        raise UsageError(
            f"the first size {size_text(start)} ({where}) "
            f"must be more than 0 and at most the largest size {size_text(largest)}: "
            "give a --start in between, or a larger --max-size"
        )
    return largest


class _Progress:
    """Says each run's start and peak on stderr and records each fitted run as it ends."""

    def __init__(
        self, repeat: int, store: Store, job: str, started: float, sizes: int | None
    ) -> None:
        self.repeat = repeat
        self.store = store
        self.job = job
        self.started = started
        self.total = None if sizes is None else sizes * repeat  # unknown when memwatch picks
        self.done = 0  # fitted runs ended so far
        self.history_errors: list[str] = []  # runs neither the history nor the spool took
        self.spooled = 0
        self.last: SweepRun | None = None  # warm-up included: did a signal stop it?

    def _step(self, rep: int) -> str:
        if rep == 0:
            return "memwatch: sweep [warm-up]"
        return f"memwatch: sweep [{self.done + 1}{'' if self.total is None else f'/{self.total}'}]"

    def before(self, index: int, total: int, size: str, rep: int) -> None:
        again = f", repeat {rep}/{self.repeat}" if self.repeat > 1 else ""
        note = " (not fitted: loads the job's libraries into the page cache)" if rep == 0 else ""
        say(f"{self._step(rep)} size {size}{again}{note} ...")

    def after(self, index: int, total: int, run: SweepRun) -> None:
        self.last = run
        s = run.summary
        so_far = time.monotonic() - self.started
        say(
            f"{self._step(run.repeat)} size {run.size_text}: peak "
            f"{human_bytes(s.peak.total_bytes)} ({s.peak.source}) in {s.duration_s:.1f} s"
            + ("" if run.ok else f"; FAILED: {describe_ending(s)}")
            + f"; {so_far:.0f} s so far"
        )
        if run.repeat == 0:
            return
        self.done += 1
        try:
            spooled = deliver(self.store, new_entry(s, self.job))
        except OutputError as err:
            if not self.history_errors:
                say(f"memwatch: warning: not recorded in the history: {err}")
            self.history_errors.append(str(err))
            return
        if spooled and not self.spooled:
            say(f"memwatch: warning: {spooled}")
        self.spooled += bool(spooled)

    def where(self) -> str:
        """Where the sweep's runs are: the history, the spool, or (some) nowhere."""
        recorded = f"recorded as job {self.job!r} in {self.store.location}"
        if self.spooled:
            recorded = (
                f"{self.spooled} run(s) of job {self.job!r} wait in the spool {default_dir()} "
                f"for memwatch history sync --history {self.store.location}"
            )
        if self.history_errors:
            recorded = f"{len(self.history_errors)} run(s) not recorded; see the warning above"
        return recorded


COMMAND = Command(
    help="run a command at several input sizes, fit, and recommend memory",
    prepare_parser=prepare_parser,
    run=run,
    description=DESCRIPTION,
    epilog=ADAPTIVE_EPILOG
    + fit_epilog(
        "0; 1 when a run failed or the runs cannot be fitted; 2 for a usage error;\n"
        "128+N when the sweep was stopped by signal N.",
        "memwatch sweep --sizes 1000,2000,3000,4000,5000 --at 20000 -- python job.py {size}",
    ),
    raw=True,
)
