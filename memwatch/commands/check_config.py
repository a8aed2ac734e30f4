"""`memwatch check-config PATH`: validate a daemon config file without starting anything."""

from __future__ import annotations

import argparse

from ._common import Command, say
from .daemon import DAEMON_CONFIG

DESCRIPTION = """\
Validate a memwatch daemon config file (see config/memwatch.yaml) without starting
anything: YAML syntax, unknown keys, every value, regexes compiled, TLS certificate and
key loaded, basic auth values checked to be bcrypt hashes (never printed). Prints
'PATH: OK (N watch entries)' on stdout, or every problem found, one per line on stderr:

  FILE:LINE: key.path: problem (got value)

A valid file may still get warnings on stderr (a TLS certificate that expired or expires
within 14 days): FILE:LINE: key.path: warning: ..."""

EPILOG = """\
exit status: 0 when the file is valid; 1 when it is not (or cannot be read);
2 for a usage error.

example:
  memwatch check-config /etc/memwatch/memwatch.yaml && systemctl reload memwatch"""


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch check-config`."""
    p.add_argument(
        "config",
        nargs="?",
        default=DAEMON_CONFIG,
        metavar="PATH",
        help=f"the YAML config file (default {DAEMON_CONFIG}, the daemon's)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the config; print OK and the watch count, or every problem found."""
    from ..config import load_config
    from ..errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as err:
        for problem in err.problems:  # file:line: first, as compilers do: editors jump there
            say(problem)
        return err.exit_code
    for warning in config.warnings:
        say(warning)
    count = len(config.watch)
    print(f"{args.config}: OK ({count} watch {'entry' if count == 1 else 'entries'})")
    return 0


COMMAND = Command(
    help="validate a daemon config file (watch list, listen address, TLS, basic auth)",
    prepare_parser=prepare_parser,
    run=run,
    description=DESCRIPTION,
    epilog=EPILOG,
    raw=True,
)
