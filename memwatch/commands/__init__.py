"""Command line: one module per subcommand (``prepare_parser`` + ``run``), and ``main``.

To change a subcommand, read its module here (``sweep.py`` for `memwatch sweep`); what
several share is in ``_common.py`` (argparse types, option groups, ``say``) and
``_advice.py`` (the fitting options and the advice of fit, predict and sweep).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from ..console import open_standard_fds
from ..errors import MemwatchError, UsageError
from . import check_config, daemon, fit, history, plot, predict, run, sweep
from ._common import Command, say

COMMANDS: dict[str, Command] = {
    "run": run.COMMAND,
    "sweep": sweep.COMMAND,
    "fit": fit.COMMAND,
    "predict": predict.COMMAND,
    "history": history.COMMAND,
    "plot": plot.COMMAND,
    "check-config": check_config.COMMAND,
    "daemon": daemon.COMMAND,
}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `sweep --size 5` was taken for --sizes and failed there.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage dump: what went wrong and where to look.
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The `memwatch` parser with every subcommand's."""
    parser = _Parser(
        prog="memwatch",
        description="Measure how much memory a job really needs, and predict it at other "
        "input sizes. Shorthand: 'memwatch [options] -- CMD' is 'memwatch run [options] -- CMD'.",
    )
    parser.add_argument("--version", action="version", version=f"memwatch {__version__}")
    sub = parser.add_subparsers(dest="subcommand", parser_class=_Parser)
    for name, command in COMMANDS.items():
        command.prepare_parser(
            sub.add_parser(
                name,
                help=command.help,
                description=command.description,
                epilog=command.epilog,
                formatter_class=(
                    argparse.RawDescriptionHelpFormatter if command.raw else argparse.HelpFormatter
                ),
            )
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memwatch`` command; returns the exit status."""
    open_standard_fds()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in (*COMMANDS, "-h", "--help", "--version"):
        args_list.insert(0, "run")
    try:
        args = build_parser().parse_args(args_list)
        if args.subcommand is None:
            raise UsageError("no command given: memwatch -- CMD [ARGS...] (see 'memwatch --help')")
        return COMMANDS[args.subcommand].run(args)
    except MemwatchError as err:
        say(f"memwatch: error: {err}")
        return err.exit_code
    except BrokenPipeError:  # `memwatch history | head`: the reader has all it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # outside a wrapped command (opening a FIFO, a long fit)
        say("memwatch: interrupted")
        return 128 + 2
    except OSError as err:  # the last line of defence: one line, no traceback
        say(f"memwatch: error: {err}")
        return 125
