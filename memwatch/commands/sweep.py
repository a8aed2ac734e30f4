"""`memwatch sweep --sizes ... -- CMD {size}`: measure CMD at several sizes, fit, and advise."""

from __future__ import annotations

import argparse
import json
import subprocess

from ..errors import OutputError, UsageError
from ..history import Store, new_entry
from ..limits import REFUSE_EXTRAPOLATION
from ..report import describe_ending, human_bytes, json_number, size_text
from ..spool import default_dir, deliver
from ..sweep import SweepRun, substitute, sweep
from ._advice import FIT_EPILOG, add_fit_options, advise, check_fit_outputs
from ._common import (
    Command,
    add_history_option,
    add_measure_options,
    command_of,
    history_ready,
    say,
    size,
)

DESCRIPTION = """\
Run CMD once per size (and repetition) with {size} replaced by the size, each under the
same true-peak measurement as 'memwatch run'. Every run is recorded in the history as it
ends. Then print one line per size, the fitted shape of growth in words, and for each
--at size the expected peak and the memory to provision. A failed run is reported with
its size and exit status and the others are still fitted. The job's stdin is /dev/null
and its stdout goes to memwatch's stderr, so stdout holds only the report (or the JSON
with --json)."""


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


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch sweep`."""
    p.add_argument(
        "--sizes",
        type=sizes,
        required=True,
        metavar="N,N,...",
        help="input sizes to run, comma-separated; each replaces {size} in CMD as typed",
    )
    p.add_argument(
        "--repeat",
        type=count,
        default=1,
        metavar="N",
        help="runs per size (default 1); repeats measure noise and widen the bound",
    )
    p.add_argument("--job", metavar="NAME", help="job name in the history (default: CMD as typed)")
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
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- CMD ... {size} ...", help="the command"
    )


def run(args: argparse.Namespace) -> int:
    """Check, run every size (recording each run), then print the table and the advice."""
    command = command_of(args)
    _check(args, command)
    job = args.job or " ".join(command)
    store = history_ready(args.history)
    progress = _Progress(args.repeat, store, job)
    # stdout carries only the report or the JSON; the job's own output goes to stderr.
    runs = sweep(
        command,
        args.sizes,
        args.repeat,
        job=job,
        warmup=not args.no_warmup,
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
    failed = [r for r in runs if not r.ok]
    from ..fitreport import format_sizes_table
    from ..model import Measurement

    # A failed run's peak is only a lower bound: only successful runs are fitted.
    measured = [
        Measurement(
            r.size, r.summary.peak.total_bytes, r.summary.swap_suspected, r.summary.duration_s
        )
        for r in runs
        if r.ok
    ]
    if not args.json:
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
    floors = [Measurement(r.size, r.summary.peak.total_bytes) for r in failed]
    advice = advise(args, measured, title=job, lower_bounds=floors, keep_going=True)
    if args.json:
        doc = advice.json()
        doc["failed_runs"] = [
            {"size": json_number(r.size), "repeat": r.repeat, "exit_status": r.summary.exit_status}
            for r in failed
        ]
        doc["refused"] = list(advice.refused)
        print(json.dumps(doc, indent=2))
    else:
        print(advice.text() + "".join(f"\nerror: {message}" for message in advice.refused))
    say(f"memwatch: {progress.where()}")
    return 1 if failed or progress.history_errors or advice.refused else 0


def _check(args: argparse.Namespace, command: list[str]) -> None:
    """Usage errors, before anything runs: no command, no {size}, a plot, --at too far."""
    if not command:
        raise UsageError(
            "no command given: memwatch sweep --sizes 1,2,4 -- CMD ... {size} ... "
            "(see 'memwatch sweep --help')"
        )
    substitute(command, "")  # a missing {size} is a usage error before anything runs
    check_fit_outputs(args)
    largest = max(float(s) for s in args.sizes)
    for at in args.at:
        if at / largest > REFUSE_EXTRAPOLATION and not args.force:
            raise UsageError(
                f"--at {size_text(at)} is {at / largest:.1f}x the largest size in --sizes "
                f"({size_text(largest)}); "
                f"beyond {REFUSE_EXTRAPOLATION:g}x memwatch will not guess: add a larger "
                "size, or pass --force"
            )


class _Progress:
    """Says each run's start and peak on stderr and records each fitted run as it ends."""

    def __init__(self, repeat: int, store: Store, job: str) -> None:
        self.repeat = repeat
        self.store = store
        self.job = job
        self.history_errors: list[str] = []  # runs neither the history nor the spool took
        self.spooled = 0
        self.last: SweepRun | None = None  # warm-up included: did a signal stop it?

    @staticmethod
    def _step(index: int, total: int, rep: int) -> str:
        return "memwatch: sweep [warm-up]" if rep == 0 else f"memwatch: sweep [{index}/{total}]"

    def before(self, index: int, total: int, size: str, rep: int) -> None:
        again = f", repeat {rep}/{self.repeat}" if self.repeat > 1 else ""
        note = " (not fitted: loads the job's libraries into the page cache)" if rep == 0 else ""
        say(f"{self._step(index, total, rep)} size {size}{again}{note} ...")

    def after(self, index: int, total: int, run: SweepRun) -> None:
        self.last = run
        s = run.summary
        say(
            f"{self._step(index, total, run.repeat)} size {run.size_text}: peak "
            f"{human_bytes(s.peak.total_bytes)} ({s.peak.source}) in {s.duration_s:.1f} s"
            + ("" if run.ok else f"; FAILED: {describe_ending(s)}")
        )
        if run.repeat == 0:
            return
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
    epilog=FIT_EPILOG,
    raw=True,
)
