"""`memwatch history`: list the recorded runs; import, export, copy and sync them."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import OutputError
from ..history import HistoryRun, open_history
from ..report import human_bytes, json_number, size_text, valid_utf8
from ..spool import send
from ._common import Command, add_history_option, say
from ._imports import add_import_options, read_records

DESCRIPTION = """\
List the runs recorded in the history (the default), or move runs in and out of it:
  import   read other tools' records (Nextflow trace, Snakemake benchmark, Slurm sacct,
           GNU time) as runs
  export   write the runs as CSV or JSON Lines
  copy     copy every run from one history to another (SQLite <-> PostgreSQL)
  sync     send the runs waiting in the spool (their history was away when they ended)
A run is stored once, however often it is imported, copied or synced."""


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch history` and of its actions."""
    p.add_argument("--job", type=valid_utf8, metavar="NAME", help="only this job's runs")
    p.add_argument("--json", action="store_true", help="print the runs as JSON Lines")
    add_history_option(p)
    actions = p.add_subparsers(dest="action", metavar="[ACTION]")
    imports = actions.add_parser("import", help="import other tools' records as runs")
    imports.add_argument("files", nargs="+", metavar="FILE")
    add_import_options(imports, job_default=argparse.SUPPRESS)
    add_history_option(imports, argparse.SUPPRESS)
    export = actions.add_parser("export", help="write the runs as CSV or JSON Lines")
    export.add_argument(
        "--job", type=valid_utf8, default=argparse.SUPPRESS, metavar="NAME", help="only its runs"
    )
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("-o", "--output", default="-", metavar="PATH", help="default: stdout")
    add_history_option(export, argparse.SUPPRESS)
    copy = actions.add_parser("copy", help="copy the runs of one history into another")
    copy.add_argument("source", metavar="FROM", help="a SQLite file or a postgresql:// URL")
    copy.add_argument("target", metavar="TO", help="a SQLite file or a postgresql:// URL")
    copy.add_argument(
        "--job", type=valid_utf8, default=argparse.SUPPRESS, metavar="NAME", help="only its runs"
    )
    sync = actions.add_parser("sync", help="send the runs waiting in the spool")
    add_history_option(sync, argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the action, or list the runs."""
    actions: dict[str | None, Callable[[argparse.Namespace], int]] = {
        None: _list,
        "import": _import,
        "export": _export,
        "copy": _copy,
        "sync": _sync,
    }
    return actions[args.action](args)


def _list(args: argparse.Namespace) -> int:
    runs = open_history(args.history).runs(args.job)
    if args.json:
        for r in runs:
            print(json.dumps(_run_doc(r)))
        return 0
    if not runs:
        say("memwatch: no runs recorded" + (f" for job {args.job!r}" if args.job else ""))
        return 0
    print(
        f"{'id':>5}  {'recorded (UTC)':19}  {'size':>10}  {'peak':>10}  exit  {'time':>8}  "
        f"{'host':12}  job"
    )
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.recorded_at))
        size = "-" if r.size is None else f"{size_text(r.size)}"
        flag = " (swap suspected)" if r.swap_suspected else ""
        print(
            f"{r.id:>5}  {when:19}  {size:>10}  {human_bytes(r.peak_bytes):>10}  "
            f"{r.exit_status:>4}  {r.duration_s:>7.1f}s  {r.host or '-':12}  {r.job}{flag}"
        )
    return 0


def _run_doc(r: HistoryRun) -> dict[str, Any]:
    return {**dataclasses.asdict(r), "size": json_number(r.size)}


def _import(args: argparse.Namespace) -> int:
    entries = read_records(args, args.job)
    store = open_history(args.history)
    new = store.add(entries) if entries else 0
    say(
        f"memwatch: imported {len(entries)} run(s) from {len(args.files)} file(s) into "
        f"{store.location} ({new} new)"
        + (f"; {args.problems} record(s) skipped, see above" if args.problems else "")
    )
    return 1 if args.problems or not entries else 0


def _export(args: argparse.Namespace) -> int:
    entries = open_history(args.history).entries(args.job)
    try:
        if args.output == "-":
            _write_runs(sys.stdout, entries, args.format)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                _write_runs(out, entries, args.format)
    except OSError as err:
        raise OutputError(f"cannot write {args.output}: {err.strerror}") from err
    return 0


def _write_runs(out: TextIO, entries: list[Any], form: str) -> None:
    """JSON Lines: each run with its whole summary; CSV: the run's columns only."""
    if form == "jsonl":
        for e in entries:
            out.write(json.dumps({**_run_doc(e.run), "summary": json.loads(e.summary)}) + "\n")
        return
    fields = [f.name for f in dataclasses.fields(HistoryRun)]
    writer = csv.writer(out)
    writer.writerow(fields)
    for e in entries:
        doc = _run_doc(e.run)
        writer.writerow([json.dumps(doc[f]) if f == "command" else doc[f] for f in fields])


def _copy(args: argparse.Namespace) -> int:
    source, target = open_history(args.source), open_history(args.target)
    entries = source.entries(args.job)
    new = target.add(entries) if entries else 0
    say(
        f"memwatch: copied {len(entries)} run(s) from {source.location} to {target.location} "
        f"({new} new)"
    )
    return 0


def _sync(args: argparse.Namespace) -> int:
    store = open_history(args.history)
    sent, new, problems = send(store)
    for problem in problems:
        say(f"memwatch: {problem}")
    say(f"memwatch: sent {sent} spooled run(s) to {store.location} ({new} new)")
    return 1 if problems else 0


COMMAND = Command(
    help="list recorded runs; import, export, copy or sync them",
    prepare_parser=prepare_parser,
    run=run,
    description=DESCRIPTION,
    raw=True,
)
