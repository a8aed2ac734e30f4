"""`memwatch fit RUNS.csv --at SIZE`: fit peaks measured anywhere and recommend memory."""

from __future__ import annotations

import argparse
import json
import os

from ._advice import FIT_EPILOG, add_fit_options, advise, check_fit_outputs
from ._common import Command


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch fit`."""
    p.add_argument("runs", metavar="RUNS.csv", help="CSV file with the header size,peak_bytes")
    add_fit_options(p)


def run(args: argparse.Namespace) -> int:
    """Read the CSV, fit it, print the sizes table and the advice (or the JSON)."""
    from ..fitreport import format_sizes_table, read_runs_csv

    check_fit_outputs(args)
    measurements = read_runs_csv(args.runs)
    advice = advise(args, measurements, title=os.path.basename(args.runs))
    if args.json:
        print(json.dumps(advice.json(), indent=2))
    else:
        print(format_sizes_table(measurements) + "\n" + advice.text())
    return 0


COMMAND = Command(
    help="fit peaks measured anywhere (CSV size,peak_bytes) and recommend memory",
    prepare_parser=prepare_parser,
    run=run,
    description="Fit peak memory against input size from a CSV file with the header "
    "size,peak_bytes (one row per run, repeats of a size allowed) and recommend what "
    "to provision at each --at size.",
    epilog=FIT_EPILOG,
    raw=True,
)
