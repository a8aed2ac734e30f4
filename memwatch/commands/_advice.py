"""Fitting shared by `fit`, `predict` and `sweep`: their options, and the advice they print.

numpy (model.py) is imported when a fit runs, not when memwatch starts: wrapping a job
with `memwatch run` must stay light.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend import machine_memory
from ..cgroup import memory_limit
from ..errors import FitError, UsageError
from ..limits import DEFAULT_MARGIN, REFUSE_EXTRAPOLATION
from ..report import STDOUT, check_writable, parse_bytes, size_text, write_output
from ._common import size

if TYPE_CHECKING:
    from ..model import Measurement, Model, Prediction
    from ..planning import Budget, Plan

RECOMMENDATION = """\
how the recommendation is made:
  Shapes a, a+b*x, a+b*x*ln(x), a+b*x^k and a+b*x+c*x^2 are fitted (growth terms never
  negative) and scored by leave-one-size-out error. Every shape the data cannot rule out
  is plausible, and the recommendation covers the highest of them at the target size,
  widened by the noise between repeats, times (1 + margin), and never below the largest
  peak measured at or below that size times (1 + margin).

warnings: fewer than 5 sizes; more than 4x beyond the largest measured size (more
than 16x is refused without --force); plausible shapes that disagree by more than the
margin; noisy repeats; suspected swapping in a measured run."""


def fit_epilog(exit_status: str, example: str) -> str:
    """The epilog of a fitting command: how it recommends, its exit status, an example."""
    return f"{RECOMMENDATION}\n\nexit status: {exit_status}\n\nexample:\n  {example}"


def margin(text: str) -> float:
    """--margin: a fraction from 0 to 10."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (0.1 means 10 %)") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10 (got {text}; 0.1 is 10 %)")
    return value


def memory(text: str) -> int:
    """An amount of memory: 16GiB, 512M, 200GB."""
    try:
        return parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_fit_options(p: argparse.ArgumentParser) -> None:
    """What to predict and how to plan: the options of `fit`, `predict` and `sweep`."""
    p.add_argument(
        "--at",
        type=size,
        action="append",
        default=[],
        metavar="SIZE",
        help="predict the peak and recommend an allocation at SIZE (repeatable)",
    )
    p.add_argument(
        "--margin",
        type=margin,
        default=DEFAULT_MARGIN,
        metavar="FRACTION",
        help="safety margin added on top of the highest plausible shape (default 0.1 = 10%%)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=f"predict even beyond {REFUSE_EXTRAPOLATION:g}x the largest measured size",
    )
    p.add_argument(
        "--budget",
        type=memory,
        metavar="MEM",
        help="memory to plan for, e.g. 16GiB, 512M, 200GB (default: the cgroup memory limit "
        "over memwatch if one is set, else this machine's RAM): says whether each --at size "
        "fits and how many run at once",
    )
    p.add_argument(
        "--max-size-for",
        type=memory,
        metavar="MEM",
        help="also find the largest input size whose recommended allocation fits in MEM",
    )
    p.add_argument(
        "--json",
        nargs="?",
        const=STDOUT,
        metavar="PATH",
        help="the fit as JSON: on stdout (instead of the report) when PATH is - or not "
        "given, else written to PATH",
    )
    p.add_argument(
        "--plot", metavar="PATH", help="draw points, fitted shapes and advice (.png/.svg/.pdf)"
    )


def check_fit_outputs(args: argparse.Namespace) -> None:
    """A --json or plot that cannot be written (suffix, matplotlib, directory) fails before
    any work."""
    if args.json is not None:
        check_writable(args.json, "--json")
    if args.plot:
        from ..plot import check_plot_path

        check_plot_path(args.plot)


def report_on_stdout(args: argparse.Namespace) -> bool:
    """Whether stdout carries the report for people (it carries the JSON with --json -)."""
    return bool(args.json != STDOUT)


def write_fit_json(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The fit's JSON to where --json says, if it says anything."""
    if args.json is not None:
        write_output(json.dumps(doc, indent=2) + "\n", args.json, "--json")


@dataclass(frozen=True)
class Advice:
    """A fit, its predictions at the --at sizes, and what they mean for the memory budget."""

    model: Model
    predictions: tuple[Prediction, ...]
    plan: Plan
    refused: tuple[str, ...] = ()  # --at targets too far out (only when asked to go on)

    def json(self) -> dict[str, Any]:
        """The documented fit JSON: model, plausible shapes, predictions, plan."""
        from ..fitreport import fit_json

        return fit_json(self.model, self.predictions, self.plan)

    def text(self) -> str:
        """The report for people."""
        from ..fitreport import format_fit

        return format_fit(self.model, self.predictions, self.plan)


def budget_of(args: argparse.Namespace) -> Budget:
    """The memory to plan for: --budget, else the cgroup limit or this machine's RAM."""
    from ..planning import choose_budget

    try:
        return choose_budget(args.budget, machine_memory(), memory_limit())
    except ValueError as err:
        raise UsageError(str(err)) from None


def advise(
    args: argparse.Namespace,
    measurements: list[Measurement],
    title: str,
    lower_bounds: Sequence[Measurement] = (),
    keep_going: bool = False,
) -> Advice:
    """Fit, predict at every --at, plan against the budget, and draw the plot if asked.

    ``lower_bounds`` are failed runs (a floor, not fitted). With ``keep_going``, a target
    too far out goes into ``Advice.refused`` instead of failing the whole report (a sweep
    has measured too much to print nothing).
    """
    from ..errors import ExtrapolationRefused
    from ..model import fit, predict
    from ..planning import plan

    if not measurements and lower_bounds:
        raise FitError(
            "no run succeeded ("
            + ", ".join(f"size {size_text(m.size)} failed" for m in lower_bounds[:5])
            + "): nothing to fit; fix the job and run again"
        )
    model = fit(measurements, margin=args.margin, lower_bounds=lower_bounds)
    predictions = []
    refused = []
    for at in args.at:
        try:
            predictions.append(predict(model, at, force=args.force))
        except ExtrapolationRefused as err:
            if not keep_going:
                raise
            refused.append(str(err))
    answers = plan(model, predictions, budget_of(args), args.max_size_for, args.force)
    if args.plot:
        from ..plot import plot_fit

        plot_fit(model, predictions, args.plot, title=title)
    return Advice(model, tuple(predictions), answers, tuple(refused))
