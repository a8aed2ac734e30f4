"""`memwatch plot SAMPLES -o PATH`: draw one run's RAM and swap over time."""

from __future__ import annotations

import argparse
import os

from ..report import read_samples
from ._common import Command, say


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch plot`."""
    p.add_argument("samples", metavar="SAMPLES", help="a .csv or .jsonl samples file")
    p.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="image to write (.png/.svg/.pdf)"
    )


def run(args: argparse.Namespace) -> int:
    """Draw the samples file into the image --output names."""
    from ..plot import check_plot_path, plot_samples  # matplotlib only when drawing

    check_plot_path(args.output, "--output")
    samples = read_samples(args.samples)
    plot_samples(samples, args.output, title=os.path.basename(args.samples))
    say(f"memwatch: wrote {args.output}")
    return 0


COMMAND = Command(
    help="draw one run's RAM and swap over time from its samples file",
    prepare_parser=prepare_parser,
    run=run,
    description="Draw RAM and swap over time (stacked) from a file written by "
    "'memwatch run --samples', with the peak and suspected-swapping ranges marked.",
)
