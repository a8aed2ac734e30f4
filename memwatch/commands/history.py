"""`memwatch history [--job NAME] [--json]`: list the recorded runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from ..history import History, default_path
from ..report import human_bytes, json_number, size_text
from ._common import Command, add_history_option, say


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch history`."""
    p.add_argument("--job", metavar="NAME", help="only this job's runs")
    p.add_argument("--json", action="store_true", help="print the runs as JSON Lines")
    add_history_option(p)


def run(args: argparse.Namespace) -> int:
    """Print one line (or one JSON object) per recorded run, oldest first."""
    runs = History(args.history or default_path()).runs(args.job)
    if args.json:
        for r in runs:
            print(json.dumps({**dataclasses.asdict(r), "size": json_number(r.size)}))
        return 0
    if not runs:
        say("memwatch: no runs recorded" + (f" for job {args.job!r}" if args.job else ""))
        return 0
    print(f"{'id':>5}  {'recorded (UTC)':19}  {'size':>10}  {'peak':>10}  exit  {'time':>8}  job")
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.recorded_at))
        size = "-" if r.size is None else f"{size_text(r.size)}"
        flag = " (swap suspected)" if r.swap_suspected else ""
        print(
            f"{r.id:>5}  {when:19}  {size:>10}  {human_bytes(r.peak_bytes):>10}  "
            f"{r.exit_status:>4}  {r.duration_s:>7.1f}s  {r.job}{flag}"
        )
    return 0


COMMAND = Command(help="list recorded runs", prepare_parser=prepare_parser, run=run)
