"""The options that read other tools' records (`history import`, `fit --format`)."""

from __future__ import annotations

import argparse
import re

from ..errors import UsageError
from ..importers import FORMATS, NAMES, TIME_DEFAULT_FORMAT, ImportOptions, import_file
from ..records import Entry
from ._common import say


def add_import_options(
    p: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS, job_default: str | None = None
) -> None:
    """--format and where the job and the size come from (see add_history_option on
    ``job_default``)."""
    # Import names its format; fit reads its own CSV unless told otherwise.
    default = formats[0] if formats[0] == "csv" else None
    p.add_argument(
        "--format",
        choices=formats,
        default=default,
        required=default is None,
        help="what the files are"
        + (f" (default {default})" if default else "")
        + ": a Nextflow trace file, Snakemake benchmark files, Slurm 'sacct --parsable2' "
        "output, GNU time -v or -f output",
    )
    p.add_argument(
        "--job",
        default=job_default,
        metavar="NAME",
        help="the job of every run read (default: the Nextflow process name, the Slurm "
        "JobName, or the group 'job' of --size-from)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--size-column",
        metavar="COL",
        help="the column holding each run's input size (Nextflow default: rchar)",
    )
    size.add_argument(
        "--size-from",
        metavar="REGEX",
        help="take the size from the first group (or the group 'size') of REGEX, searched in "
        + ", ".join(f"{fmt}: {where}" for fmt, where in NAMES.items()),
    )
    p.add_argument(
        "--time-format",
        metavar="FORMAT",
        default=TIME_DEFAULT_FORMAT,
        help="the -f FORMAT GNU time was given (default: its default format); -v reports "
        "are read anyway",
    )


def read_records(
    args: argparse.Namespace, job: str | None, fallback_job: str | None = None
) -> list[Entry]:
    """The runs in args.files, all of ``job`` if given; each unusable record is said on one
    line (file:line). ``fallback_job`` names records that have no job name of their own."""
    if args.size_column and args.format == "time":
        raise UsageError("--size-column: GNU time output has no columns; use --size-from")
    try:
        size_from = re.compile(args.size_from) if args.size_from else None
    except re.error as err:
        raise UsageError(
            f"--size-from {args.size_from!r}: not a regular expression ({err})"
        ) from None
    time_format = args.time_format.replace("\\n", "\n")  # as typed in a shell
    options = ImportOptions(
        args.format, job, args.size_column, size_from, time_format, fallback_job
    )
    entries: list[Entry] = []
    problems = 0
    for path in args.files:
        found, bad = import_file(path, options)
        entries += found
        problems += len(bad)
        for line in bad:
            say(f"memwatch: {line}")
    args.problems = problems  # the command's exit status says the file had bad records
    return entries
