"""The fit's files and reports: the runs CSV it reads, the table, advice and JSON it prints."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InputError
from .model import Measurement, Model, Prediction, ShapeFit
from .planning import Budget, MaxSize, Plan, Verdict
from .records import Store
from .report import human_bytes, json_number, parse_size, size_text

SCHEMA = "memwatch.fit/1"
RUNS_COLUMNS = ("size", "peak_bytes")


def read_runs_csv(path: str) -> list[Measurement]:
    """Read a CSV with the header ``size,peak_bytes`` (repeats of a size allowed)."""
    try:
        # utf-8-sig: spreadsheets write a byte-order mark before the header.
        with open(path, encoding="utf-8-sig", newline="") as f:
            table = list(csv.reader(f))
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: not a CSV text file ({err}); expected size,peak_bytes") from err
    rows = [(n, r) for n, r in enumerate(table, start=1) if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"{path}: empty; expected a header size,peak_bytes and one row per run")
    header = [cell.strip() for cell in rows[0][1]]
    missing = [c for c in RUNS_COLUMNS if c not in header]
    extra = [c for c in header if c not in RUNS_COLUMNS]
    if missing or extra or len(header) != len(RUNS_COLUMNS):
        problem = f"missing column {', '.join(missing)}" if missing else "unexpected column"
        raise InputError(
            f"{path}:{rows[0][0]}: {problem} (got header {','.join(header)}); "
            f"the header must be exactly {','.join(RUNS_COLUMNS)}"
        )
    size_at, peak_at = header.index("size"), header.index("peak_bytes")
    runs = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise InputError(
                f"{path}:{line}: {len(row)} fields, expected {len(header)} ({','.join(header)})"
            )
        size = _number(path, line, "size", row[size_at])
        peak = _number(path, line, "peak_bytes", row[peak_at])
        if not peak.is_integer() or peak <= 0:
            raise InputError(
                f"{path}:{line}: peak_bytes: must be a whole number of bytes > 0 "
                f"(got {row[peak_at].strip()})"
            )
        runs.append(Measurement(size, int(peak)))
    if not runs:
        raise InputError(f"{path}: has a header but no runs; add one row per measured run")
    return runs


def fitted_and_floors(
    runs: Iterable[tuple[Measurement, bool]],
) -> tuple[list[Measurement], list[Measurement]]:
    """Runs (measurement, succeeded) as the model takes them: the successful runs, fitted,
    and the failed runs' floors. A failed run's peak is only a lower bound; one that ended
    before any memory was seen (peak 0) says nothing."""
    fitted: list[Measurement] = []
    floors: list[Measurement] = []
    for measurement, succeeded in runs:
        if succeeded:
            fitted.append(measurement)
        elif measurement.peak_bytes > 0:
            floors.append(measurement)
    return fitted, floors


def history_measurements(
    store: Store, job: str
) -> tuple[list[Measurement], list[Measurement], int]:
    """The job's runs as the model takes them: the fitted (successful, sized) runs, the failed
    runs (floors, never fitted), and how many runs are not fitted. One query, no JSON read."""
    points, unsized = store.points(job)
    fitted, floors = fitted_and_floors(
        (Measurement(s, peak, swap, seconds, source != "cgroup"), not code)
        for s, peak, swap, code, seconds, source in points
    )
    return fitted, floors, unsized + len(points) - len(fitted)


def _number(path: str, line: int, column: str, text: str) -> float:
    try:
        return parse_size(text)
    except ValueError as err:
        raise InputError(f"{path}:{line}: {column}: {err}") from None


def format_sizes_table(measurements: Sequence[Measurement]) -> str:
    """One line per measured size: its peak (largest of the repeats) and the repeats' spread."""
    lines = [f"{'size':>12}  {'peak':>10}  {'runs':>4}  spread of repeats"]
    for size in sorted({m.size for m in measurements}):
        peaks = [m.peak_bytes for m in measurements if m.size == size]
        spread = (max(peaks) - min(peaks)) / (sum(peaks) / len(peaks))
        lines.append(
            f"{size_text(size):>12}  {human_bytes(max(peaks)):>10}  {len(peaks):>4}  "
            + (f"{spread:.1%}" if len(peaks) > 1 else "-")
        )
    return "\n".join(lines)


def _shape_line(s: ShapeFit) -> str:
    return f"{s.formula}: {s.describe()}; forward error {_error_text(s)}"


def _error_text(s: ShapeFit) -> str:
    return "n/a (too few growing sizes)" if s.forward_error is None else f"{s.forward_error:.1%}"


# The report names this many plausible shapes; the JSON has them all.
SHOWN_SHAPES = 4


BUDGET_SOURCES = {
    "--budget": "--budget",
    "cgroup limit": "the cgroup memory limit over memwatch",
    "machine RAM": "this machine's RAM",
}


def _budget_text(b: Budget) -> str:
    return f"{human_bytes(b.total_bytes)} ({BUDGET_SOURCES[b.source]})"


def _verdict_line(v: Verdict, b: Budget) -> str:
    budget = human_bytes(b.total_bytes)
    if not v.fits:
        return f"  does NOT fit in the {budget} budget: {human_bytes(-v.headroom_bytes)} short"
    if b.available_bytes is None:
        room = f"{v.parallel_tasks} at once"
    elif v.parallel_tasks == 0:
        room = f"but not in the {human_bytes(b.available_bytes)} free now"
    else:
        room = f"{v.parallel_tasks} at once in the {human_bytes(b.available_bytes)} free now"
    return f"  fits in the {budget} budget with {human_bytes(v.headroom_bytes)} to spare; {room}"


def _max_size_line(m: MaxSize, what: str) -> list[str]:
    if m.size is None:
        return [
            f"{what}: none; even size 0 needs {human_bytes(m.recommended_bytes)} "
            f"(more than {human_bytes(m.memory_bytes)})"
        ]
    return [
        f"{what}: size {size_text(m.size)}"
        + (" or more" if m.capped else "")
        + f" (provision {human_bytes(m.recommended_bytes)}; "
        f"{m.extrapolation_factor:.2g}x the largest measured)",
        *(f"  warning: {w}" for w in m.warnings),
    ]


def format_fit(model: Model, predictions: Sequence[Prediction], plan: Plan) -> str:
    """The fitted shape in words, the growth, and advice and a budget verdict per size."""
    lines = [
        f"best fit {_shape_line(model.best)}",
        *(f"  also plausible {_shape_line(s)}" for s in model.plausible[1:SHOWN_SHAPES]),
    ]
    more = len(model.plausible) - SHOWN_SHAPES
    if more > 0:
        lines.append(f"  and {more} more plausible shapes (--json lists them)")
    ruled_out = len(model.shapes) - len(model.plausible)
    if ruled_out:
        lines.append(f"  ruled out: {ruled_out} shapes that predicted the larger sizes worse")
    if model.noise is not None:
        lines.append(f"  repeats: relative standard deviation {model.noise:.1%}")
    lines.append(f"growth: {plan.growth.words}")
    lines += [f"warning: {w}" for w in model.warnings]
    b = plan.budget
    free = f"; {human_bytes(b.available_bytes)} free now" if b.available_bytes is not None else ""
    lines.append(f"budget: {_budget_text(b)}{free}")
    for p, v in zip(predictions, plan.verdicts, strict=True):
        band = (
            f"; plausible {human_bytes(p.low_bytes)} .. {human_bytes(p.high_bytes)}"
            if p.high_bytes != p.low_bytes
            else ""
        )
        lines.append(
            f"at size {size_text(p.size)} ({p.extrapolation_factor:.2g}x the largest measured): "
            f"expected {human_bytes(p.expected_bytes)}{band}; "
            f"provision {human_bytes(p.recommended_bytes)} ({p.recommended_bytes} bytes, "
            f"+{p.margin:.0%})"
        )
        lines.append(_verdict_line(v, b))
        lines += [f"  warning: {w}" for w in p.warnings]
    if plan.largest_fitting is not None:
        lines += _max_size_line(plan.largest_fitting, f"largest size within {_budget_text(b)}")
        lines.append(_chunking_advice(plan))
    if plan.max_size is not None:
        lines += _max_size_line(
            plan.max_size, f"largest size within {human_bytes(plan.max_size.memory_bytes)}"
        )
    return "\n".join(lines)


def _chunking_advice(plan: Plan) -> str:
    """What to do when a size does not fit: the usual remedy is smaller pieces."""
    fitting = plan.largest_fitting
    piece = (
        f"pieces of at most size {size_text(fitting.size)}"
        if fitting is not None and fitting.size
        else "smaller pieces"
    )
    if plan.growth.kind == "faster than linear":
        return (
            "advice: memory grows faster than linear, so the job outgrows the budget sooner "
            f"the larger the input: process it in batches or chunks ({piece}; halving a "
            "piece more than halves its memory), or use an algorithm that needs less"
        )
    return f"advice: process the input in batches or chunks ({piece}), or get a bigger budget"


def _shape_json(s: ShapeFit) -> dict[str, Any]:
    return {
        "shape": s.shape,
        "formula": s.formula,
        "params": list(s.params),
        "floor_bytes": s.floor or None,
        "description": s.describe(),
        "forward_error": s.forward_error,
    }


def _next_run_json(p: Prediction) -> dict[str, Any] | None:
    if p.next_run is None:
        return None
    return {
        "size": json_number(p.next_run.size),
        "memory_bytes": p.next_run.memory_bytes,
        "duration_s": p.next_run.duration_s,
    }


def _max_size_json(m: MaxSize | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "memory_bytes": m.memory_bytes,
        "size": None if m.size is None else json_number(m.size),
        "recommended_bytes": m.recommended_bytes,
        "extrapolation_factor": m.extrapolation_factor,
        "capped": m.capped,
        "warnings": list(m.warnings),
    }


def fit_json(model: Model, predictions: Sequence[Prediction], plan: Plan) -> dict[str, Any]:
    """The fit contract of DESIGN.md: model, plausible shapes, predictions; plus the plan."""
    b = plan.budget
    return {
        "schema": SCHEMA,
        "model": {
            **_shape_json(model.best),
            "margin": model.margin,
            "noise": model.noise,
            "distinct_sizes": len(model.sizes),
            "floor_sizes": model.floor_sizes,
            "max_size": json_number(model.max_size),
            "warnings": list(model.warnings),
        },
        "plausible_shapes": [_shape_json(s) for s in model.plausible],
        "ruled_out_shapes": [_shape_json(s) for s in model.shapes if not s.plausible],
        "measurements": [
            {"size": json_number(m.size), "peak_bytes": m.peak_bytes} for m in model.measurements
        ],
        "predictions": [
            {
                "size": json_number(p.size),
                "expected_bytes": p.expected_bytes,
                "low_bytes": p.low_bytes,
                "high_bytes": p.high_bytes,
                "recommended_bytes": p.recommended_bytes,
                "margin": round(p.margin, 4),
                "extrapolation_factor": round(p.extrapolation_factor, 4),
                "next_run": _next_run_json(p),
                "fits": v.fits,
                "headroom_bytes": v.headroom_bytes,
                "parallel_tasks": v.parallel_tasks,
                # Scripts read one prediction: it carries the fit-wide warnings too.
                "warnings": [*model.warnings, *p.warnings],
            }
            for p, v in zip(predictions, plan.verdicts, strict=True)
        ],
        "budget": {
            "bytes": b.total_bytes,
            "source": b.source,
            "available_bytes": b.available_bytes,
        },
        "growth": {
            "kind": plan.growth.kind,
            "exponent": plan.growth.exponent,
            "words": plan.growth.words,
        },
        "max_size": _max_size_json(plan.max_size),
        "largest_size_within_budget": _max_size_json(plan.largest_fitting),
    }
