"""What every subcommand shares: its description record, argparse types, option groups, say().

A leaf: it imports no subcommand module, so each of them can import it (psutil's
``_common.py`` is the model).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from ..backend import BACKEND_CHOICES
from ..console import say as say  # re-exported: every subcommand prints through it
from ..errors import HistoryError, HistoryUnavailable, UsageError
from ..history import DEFAULT_ENV, Store, open_history
from ..report import parse_size
from ..run import interval_problem
from ..spool import default_dir


@dataclass(frozen=True)
class Command:
    """One subcommand: how ``--help`` shows it, its options, and what it does."""

    help: str
    prepare_parser: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    epilog: str | None = None
    raw: bool = False  # keep the description's and epilog's line breaks as written


def command_of(args: argparse.Namespace) -> list[str]:
    """The wrapped command as given after the options, without the '--' that began it."""
    # REMAINDER keeps everything from the command on, '--' included: CMD's own options and
    # its own '--' reach it untouched.
    command: list[str] = args.command
    return command[1:] if command[:1] == ["--"] else command


def interval(text: str) -> float:
    """A sampling interval in seconds, within run.py's bounds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    problem = interval_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def size(text: str) -> float:
    """An input size: a finite number >= 0 (1000, 2.5, 1e6)."""
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_measure_options(p: argparse.ArgumentParser) -> None:
    """How a job is measured: the options of both `run` and `sweep`."""
    p.add_argument(
        "--interval",
        type=interval,
        default=0.1,
        metavar="SECONDS",
        help="sampling interval, down to 0.001 (default 0.1: sampling then takes ~0.5%% "
        "of one core with the job cgroup, whatever the tree's size, ~2.5%% without it for "
        "a 100-process tree; spikes in between are caught by high-water marks and the "
        "cgroup peak)",
    )
    p.add_argument(
        "--pss",
        action="store_true",
        help="count proportional set size (smaps_rollup) so copy-on-write pages shared "
        "by forked processes count once; costs ~7x more per process",
    )
    p.add_argument("--no-cgroup", action="store_true", help="do not make a job cgroup; sample only")
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="how processes are sampled: proc reads Linux /proc (the default where it exists), "
        "psutil works anywhere but gives less: no per-process high-water mark outside "
        "Windows (spikes between samples are seen only in the command's own ru_maxrss, no "
        "upper bound), swap and PSS per process only on Linux, SwapPss nowhere",
    )


def add_history_option(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """--history, for every subcommand that reads or records runs.

    ``default=argparse.SUPPRESS`` in an action's parser (`history sync`) keeps the value
    given before the action: argparse lets a subparser's default overwrite it.
    """
    p.add_argument(
        "--history",
        default=default,
        metavar="PATH|URL",
        help=f"run history: a SQLite file, or postgresql://user@host:port/db for one history "
        f"shared by many machines (default ${DEFAULT_ENV}, else "
        "$XDG_DATA_HOME/memwatch/history.sqlite)",
    )


def history_ready(location: str | None) -> Store:
    """The history a job's runs go to, checked before the job starts, as --json is.

    A history that cannot take runs (a directory, a FIFO, a read-only or corrupt file,
    another program's database) is a usage error now. One that is only unreachable for
    the moment (a database server down, a lock held) is said, and the runs wait in the
    spool (memwatch.spool) until a later run or `memwatch history sync` sends them.
    """
    store = open_history(location)
    try:
        store.check()
    except HistoryUnavailable as err:
        say(f"memwatch: warning: {err}; runs will wait in the spool {default_dir()}")
    except HistoryError as err:
        raise UsageError(f"--history: {err}") from None
    return store
