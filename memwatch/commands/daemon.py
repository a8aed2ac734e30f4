"""`memwatch daemon [--config PATH] [--port PORT]`: watch process trees, serve metrics."""

from __future__ import annotations

import argparse

from ._common import Command

DAEMON_CONFIG = "/etc/memwatch/memwatch.yaml"  # check-config's default too


def port(text: str) -> int:
    """A TCP port number from 1 to 65535."""
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535 (got {text})")
    return int(text)


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch daemon`."""
    p.add_argument(
        "--config",
        default=DAEMON_CONFIG,
        metavar="PATH",
        help=f"the YAML config (default {DAEMON_CONFIG}; check it with memwatch check-config)",
    )
    p.add_argument(
        "--port",
        type=port,
        metavar="PORT",
        help="listen on PORT instead of the config's port (also after reloads)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    from ..daemon import run_daemon  # the exporter's imports only for the daemon

    return run_daemon(args.config, port=args.port)


COMMAND = Command(
    help="watch the process trees of a YAML watch list and serve Prometheus metrics",
    prepare_parser=prepare_parser,
    run=run,
    description="Sample the processes named in the config's watch list and serve their "
    "memory, peaks, swap suspicion and recommendations at /metrics. SIGHUP reloads the "
    "config (a bad one is reported and the running one stays); SIGTERM stops. Under "
    "systemd (Type=notify) it reports READY/RELOADING/STOPPING and pings the watchdog.",
    epilog="exit status: 0 after SIGTERM or SIGINT; 1 when the config is invalid or "
    "the port cannot be served; 2 for a usage error.",
)
