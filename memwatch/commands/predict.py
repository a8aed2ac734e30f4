"""`memwatch predict --job NAME --at SIZE`: fit a job's recorded runs and recommend memory."""

from __future__ import annotations

import argparse

from ..errors import FitError
from ..history import open_history
from ..report import valid_utf8
from ._advice import (
    add_fit_options,
    advise,
    check_fit_outputs,
    fit_epilog,
    report_on_stdout,
    write_fit_json,
)
from ._common import Command, add_history_option


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch predict`."""
    p.add_argument("--job", type=valid_utf8, required=True, metavar="NAME", help="the job to fit")
    add_fit_options(p)
    add_history_option(p)


def run(args: argparse.Namespace) -> int:
    """Fit the job's successful runs (failed ones are floors) and print the advice."""
    from ..fitreport import format_sizes_table, history_measurements

    check_fit_outputs(args)
    store = open_history(args.history)
    measurements, failed, skipped = history_measurements(store, args.job)
    if not (measurements or skipped):
        known = store.jobs()
        raise FitError(
            f"no runs recorded for job {args.job!r} in {store.location}"
            + (f" (jobs there: {', '.join(known)})" if known else "")
            + f"; record some with memwatch sweep --job {args.job} or "
            f"memwatch run --job {args.job} --size N -- CMD"
        )
    advice = advise(args, measurements, title=args.job, lower_bounds=failed)
    write_fit_json(args, advice.json())
    if not report_on_stdout(args):
        return 0
    report = format_sizes_table(measurements) + "\n" + advice.text()
    if skipped:
        report += f"\n(not fitted: {skipped} recorded run(s) that failed or had no --size)"
    print(report)
    return 0


COMMAND = Command(
    help="fit a job's recorded runs from the history and recommend memory",
    prepare_parser=prepare_parser,
    run=run,
    description="Fit the successful runs recorded for JOB (by 'memwatch run --job JOB "
    "--size N' or 'memwatch sweep') and recommend what to provision at each --at size.",
    epilog=fit_epilog(
        "0; 1 when the job's recorded runs cannot be fitted; 2 for a usage error.",
        "memwatch predict --job etl --at 5e6 --plot etl.png",
    ),
    raw=True,
)
