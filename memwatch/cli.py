"""Command line: thin argparse front over the library. ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .errors import MemwatchError, OutputError, UsageError
from .report import SampleWriter, check_writable, format_human, write_json
from .run import interval_problem, measure

SUBCOMMANDS = ("run",)

RUN_DESCRIPTION = """\
Run CMD exactly as it would run without memwatch (same stdin, stdout, stderr and exit
status) and, when it ends, print its true peak memory to stderr: RAM + swap summed over
the whole process tree, shared pages counted once where the kernel can tell, spikes
between samples caught by the kernel's high-water marks."""

RUN_EPILOG = """\
where the peak comes from:
  cgroup    memwatch put the job in a memory cgroup of its own and read the kernel's
            exact peak (needs root on cgroup v1, or a delegated cgroup v2)
  sampling  the largest total of RSS + swap (PSS + SwapPss with --pss) it sampled
  hwm       per-process VmHWM (and ru_maxrss) show a higher peak between two samples

exit status: the command's own; 128+N if it died from signal N; 125 if memwatch
itself failed; 126 if CMD is not executable; 127 if it is not found; 2 for a usage
error (no command started).

examples:
  memwatch -- python train.py --rows 1000000
  memwatch --json peak.json --samples mem.csv --size 1e6 -- ./pipeline.sh input.csv"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage dump: what went wrong and where to look.
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    problem = interval_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _size(text: str) -> float:
    """An input size: a finite number >= 0 (1000, 2.5, 1e6)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r} (sizes are numbers, e.g. 1e6)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="memwatch",
        description="Measure how much memory a job really needs. "
        "Shorthand: 'memwatch [options] -- CMD' is 'memwatch run [options] -- CMD'.",
    )
    parser.add_argument("--version", action="version", version=f"memwatch {__version__}")
    sub = parser.add_subparsers(dest="subcommand", parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="run a command and report its true peak memory",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--interval",
        type=_interval,
        default=0.1,
        metavar="SECONDS",
        help="sampling interval, down to 0.001 (default 0.1: sampling then takes ~4.5%% "
        "of one core for a 100-process tree, under 1%% for ten processes; spikes in "
        "between are caught by high-water marks and the cgroup peak)",
    )
    run.add_argument("--json", metavar="PATH", help="write the summary as JSON to PATH")
    run.add_argument(
        "--samples",
        metavar="PATH",
        help="stream every sample to PATH (.csv or .jsonl), flushed as it is taken",
    )
    run.add_argument(
        "--pss",
        action="store_true",
        help="count proportional set size (smaps_rollup) so copy-on-write pages shared "
        "by forked processes count once; costs ~7x more per process",
    )
    run.add_argument(
        "--no-cgroup", action="store_true", help="do not make a job cgroup; sample only"
    )
    run.add_argument(
        "--size",
        type=_size,
        metavar="N",
        help="input size of this run (a number), kept in the summary",
    )
    run.add_argument("--job", metavar="NAME", help="job name, kept in the summary")
    run.add_argument("-q", "--quiet", action="store_true", help="print no summary to stderr")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command")
    return parser


def _say(text: str) -> None:
    """Print to stderr; a closed or full stderr must not cost the command's exit status."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memwatch`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in (*SUBCOMMANDS, "-h", "--help", "--version"):
        args_list.insert(0, "run")
    try:
        args = build_parser().parse_args(args_list)
        if args.subcommand is None:
            raise UsageError("no command given: memwatch -- CMD [ARGS...] (see 'memwatch --help')")
        # REMAINDER keeps everything from the command on, '--' included: CMD's own
        # options and its own '--' reach it untouched.
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return _run(args, command)
    except MemwatchError as err:
        _say(f"memwatch: error: {err}")
        return err.exit_code
    except KeyboardInterrupt:  # before the command started (e.g. opening a FIFO)
        _say("memwatch: interrupted before the command started")
        return 128 + 2
    except OSError as err:  # the last line of defence: one line, no traceback
        _say(f"memwatch: error: {err}")
        return 125


def _run(args: argparse.Namespace, command: list[str]) -> int:
    if not command:
        raise UsageError("no command given: memwatch -- CMD [ARGS...] (see 'memwatch run --help')")
    if args.json:
        check_writable(args.json, "--json")
        if args.samples and os.path.realpath(args.json) == os.path.realpath(args.samples):
            raise UsageError(f"--json and --samples both name {args.json}: give two files")
    writer = SampleWriter(args.samples) if args.samples else None
    try:
        summary = measure(
            command,
            interval_s=args.interval,
            pss=args.pss,
            use_cgroup=not args.no_cgroup,
            on_sample=writer,
            forward_signals=True,
            job=args.job,
            size=args.size,
        )
    finally:
        if writer:
            writer.close()
    if writer and writer.error:
        summary = dataclasses.replace(summary, warnings=(*summary.warnings, writer.error))
    if args.json:
        try:
            write_json(summary, args.json)
        except OutputError as err:
            # The measurement is not lost: it goes to stderr even with --quiet.
            _say(format_human(summary))
            _say(
                f"memwatch: error: {err} (the command ended with exit status "
                f"{summary.exit_status}; its summary is above)"
            )
            return err.exit_code
    if not args.quiet:
        _say(format_human(summary))
    return summary.exit_status
