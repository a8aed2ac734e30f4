"""`memwatch fit FILE --at SIZE`: fit peaks measured anywhere and recommend memory."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..errors import InputError, UsageError
from ..importers import FORMATS
from ._advice import (
    add_fit_options,
    advise,
    check_fit_outputs,
    fit_epilog,
    report_on_stdout,
    write_fit_json,
)
from ._common import Command
from ._imports import add_import_options, read_records

if TYPE_CHECKING:
    from ..model import Measurement  # numpy: loaded when the fit runs, not when memwatch starts

DESCRIPTION = """\
Fit peak memory against input size and recommend what to provision at each --at size.
The runs come from a CSV file with the header size,peak_bytes (one row per run, repeats
of a size allowed), or, with --format, from a Nextflow trace, Snakemake benchmark files,
Slurm 'sacct --parsable2' output or GNU time output. A failed run's peak is a floor, not
fitted. The same records go into the history with 'memwatch history import'."""


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch fit`."""
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="CSV with the header size,peak_bytes, or other tools' records (see --format)",
    )
    add_import_options(p, ("csv", *FORMATS))
    add_fit_options(p)


def run(args: argparse.Namespace) -> int:
    """Read the runs, fit them, print the sizes table and the advice (or the JSON)."""
    from ..fitreport import format_sizes_table

    check_fit_outputs(args)
    measurements, floors = _read(args)
    advice = advise(args, measurements, title=os.path.basename(args.files[0]), lower_bounds=floors)
    write_fit_json(args, advice.json())
    if report_on_stdout(args):
        print(format_sizes_table(measurements) + "\n" + advice.text())
    return 0


def _read(args: argparse.Namespace) -> tuple[list[Measurement], list[Measurement]]:
    """The runs to fit and the failed runs' floors, from every file."""
    from ..fitreport import read_runs_csv
    from ..model import Measurement

    if args.format == "csv":
        if args.job or args.size_column or args.size_from:
            raise UsageError("--job, --size-column and --size-from need --format (not csv)")
        return [m for path in args.files for m in read_runs_csv(path)], []
    entries = read_records(args, None, fallback_job="")
    jobs = sorted({e.run.job for e in entries})
    where = ", ".join(args.files)
    if args.job:
        entries = [e for e in entries if e.run.job == args.job]
        if not entries:
            raise InputError(
                f"{where}: no runs of job {args.job!r} (jobs there: {', '.join(jobs)})"
            )
    elif len(jobs) > 1:
        raise InputError(
            f"{where}: runs of {len(jobs)} jobs ({', '.join(jobs)}); pick one with --job"
        )
    sized = [(e.run.size, e.run) for e in entries if e.run.size is not None]
    if not sized:
        raise InputError(
            f"{where}: no run with a size; say where it is with --size-column or --size-from"
        )
    fitted = [Measurement(size, r.peak_bytes) for size, r in sized if r.exit_status == 0]
    # A failed run's peak is only a lower bound: a floor, never fitted.
    floors = [Measurement(size, r.peak_bytes) for size, r in sized if r.exit_status]
    return fitted, floors


COMMAND = Command(
    help="fit peaks measured anywhere (a CSV, or other tools' records) and recommend memory",
    prepare_parser=prepare_parser,
    run=run,
    description=DESCRIPTION,
    epilog=fit_epilog(
        "0; 1 when the runs cannot be read or fitted; 2 for a usage error.",
        "memwatch fit runs.csv --at 1e7 --json",
    ),
    raw=True,
)
