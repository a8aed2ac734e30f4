"""Fit peak memory against input size and recommend what to provision. Pure numpy, no I/O.

The question is always beyond the data: how much at a size nobody has run yet. So:

- The hypotheses are a fixed grid in the style of Extra-P's performance-model normal form
  (Calotoiu et al., SC'13): ``a + b * x^i * log2(x)^j``, ``i`` from a small set of
  rationals up to 3, ``j`` 0 or 1. A free exponent fitted to four noisy sizes ran to
  x^3 on jobs that were linear past a fixed baseline.
- The smallest sizes may sit on a floor the growth has not reached yet (imports, a fixed
  pool): ``max(c, a + b*x^i)``, a knee. Those sizes say only "at least c"; the growth is
  fitted on the sizes above them, so a baseline the data fit inside is not read as
  cubic growth.
- Each hypothesis is judged by forward prediction: fitted on the smaller sizes, how far
  off it was at each larger one. Leave-one-out also rewards interpolation, which is not
  the question asked.
- A prior prefers linear growth: steeper or gentler must predict better, and steeper
  than x^2 clearly better, not merely fail to be ruled out.
- The margin is calibrated from the chosen hypothesis's own forward misses of its
  growth, grown with the distance of the extrapolation; the user's ``margin`` is its
  floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import ExtrapolationRefused, FitError
from .hypotheses import (
    ORDINARY_GROWTH,
    RESOLUTION,
    UNSEEN_GROWTH_SIGMAS,
    Forward,
    Term,
    constant_forward,
    evaluate,
    fit_terms,
    floor_sizes,
    forward_predictions,
    hypotheses,
    reduce_runs,
    repeat_noise,
    scatter,
)
from .limits import DEFAULT_MARGIN, REFUSE_EXTRAPOLATION, WARN_EXTRAPOLATION
from .report import human_bytes, ratio_text, size_text

FEW_SIZES = 5
# The prior. Growth from linear to x^2 is ordinary; growth outside must be shown: its
# forward error must beat the best ordinary hypothesis by this factor, over at least
# this many forward predictions (one prediction from three growing sizes shows no
# exponent). Above x^2: 0.1.0 picked x^3 for a pandas merge that was a line on top of
# a floor, and recommended 62.5 GiB for a 1.7 GiB job. Below linear: a baseline that
# is still settling at small sizes looks like x^(2/3), and a pandas group-by fitted so
# was 23 % under at 8x.
SHOWN_EVIDENCE = 0.33
SHOWN_PREDICTIONS = 3
# Within the ordinary range a hypothesis's forward error is multiplied by 1 + this per
# order of growth above linear: the simpler explanation wins near-ties.
GROWTH_PRIOR = 0.25
# With no forward prediction at all (two growing sizes) nothing tells the shapes apart:
# the steepest ordinary growth is the one that does not under-provision. An image
# registration, flat to 226 px and then x^2, got 0.81x at 4x from the straight line.
NO_EVIDENCE_GROWTH = ORDINARY_GROWTH[1]
# The recommendation leans this far (geometrically) from the calibrated best fit toward
# the highest plausible ordinary hypothesis: a fit chosen among near-equals is one guess
# of several. On the development half 0.3 took under-provisioned predictions from 7 to 5
# of 102, for a p90 of recommended/actual of 1.92 instead of 1.85.
RANGE_WEIGHT = 0.3
# A hypothesis stays plausible while its (prior-weighted) forward error is within this
# factor of the best one's, plus the repeats' noise.
PLAUSIBLE_FACTOR = 1.5
# A floor must be clear: the line through the sizes above it passes this far below it
# (or 3 times the runs' noise), and the floor's own sizes are this flat.
FLOOR_GAP = 0.01
FLOOR_GAP_UNREPEATED = 0.02
# An exponent missed by more than one (x^2 taken for x^3) is no calibration but a wrong
# hypothesis; beyond it the range warning speaks.
MAX_GROWTH_MISS = 1.0
# Time is assumed to grow at least linearly with the size: start-up makes small runs
# look flat, and a time budget is a limit, so the estimate errs high.
MIN_TIME_EXPONENT = 1.0
MAX_TIME_EXPONENT = 3.0
# Run times of short jobs scatter by tens of percent on a loaded machine: two sizes gave
# exponents of 1.0 and 2.1 for the same job; the largest four agree better.
TIMED_SIZES = 4
NOISY_REPEATS = 0.05  # relative standard deviation of repeats that earns a warning
NOISE_WIDENING = 2.0  # the recommendation covers this many repeat standard deviations
WIDE_RANGE = 1.5  # a plausible range wider than this (high / low) earns a warning


@dataclass(frozen=True)
class Measurement:
    """One measured run: the input size and the true peak (RAM + swap) in bytes."""

    size: float
    peak_bytes: int
    swap_suspected: bool = False
    duration_s: float | None = None
    sampled: bool = False  # the peak came from sampling, not from the kernel's cgroup figure


@dataclass(frozen=True)
class ShapeFit:
    """One hypothesis fitted to the measurements: floor, a + b*term(x/scale).

    ``forward_error`` is the root mean square of log(actual / predicted) over the
    forward predictions; None when too few sizes grow to predict one from the others.
    """

    term: Term | None  # None: the constant
    # (a,) for the constant, (a, b) for a + b*term, (a, b, c) for a + b*x + c*term
    params: tuple[float, ...]
    scale: float
    floor: float  # the knee's floor c, 0 without one
    # How far this hypothesis was off beyond the data it saw: its score and the margin's
    # calibration.
    forward: tuple[Forward, ...] = ()
    plausible: bool = True

    @property
    def forward_error(self) -> float | None:
        f = self.forward
        return math.sqrt(sum(p.log_error**2 for p in f) / len(f)) if f else None

    @property
    def shape(self) -> str:
        name = "constant" if self.term is None else self.term.name
        return f"knee {name}" if self.floor and self.term is not None else name

    @property
    def formula(self) -> str:
        growth = "a" if self.term is None else f"a + b*{self.term.text('x')}"
        if self.term is not None and self.term.plus_linear:
            growth = f"a + b*x + c*{self.term.text('x')}"
        return f"max(c, {growth})" if self.floor and self.term is not None else growth

    @property
    def growth_order(self) -> float:
        return 0.0 if self.term is None else self.term.growth_order

    def predict(self, size: float) -> float:
        """The fitted peak in bytes at ``size``."""
        return float(self.evaluate(np.array([float(size)]))[0])

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        return evaluate(self.term, self.params, self.scale, x, self.floor)

    def describe(self) -> str:
        """The fitted parameters in words a person can check, e.g. '96 MiB + 78 KiB x size'."""
        a = human_bytes(round(self.params[0]))
        if self.term is None:
            return f"{a} whatever the size"
        per_unit = self.params[-1] / self.scale ** float(self.term.exponent)
        text = f"{a} + {_coefficient(per_unit)} x {self.term.text('size')}"
        if len(self.params) == 3:
            text = f"{a} + {_coefficient(self.params[1] / self.scale)} x size" + text[len(a) :]
        return text + (f", at least {human_bytes(round(self.floor))}" if self.floor else "")


@dataclass(frozen=True)
class Model:
    """Every hypothesis fitted to the measurements, best first, and the runs' noise."""

    shapes: tuple[ShapeFit, ...]
    measurements: tuple[Measurement, ...]
    margin: float
    noise: float | None  # pooled relative standard deviation of repeats; None without repeats
    warnings: tuple[str, ...] = ()
    # Runs that failed (OOM-killed, crashed): the job needed more than their peak at their
    # size. Not fitted, but no recommendation at or above their size goes below them.
    lower_bounds: tuple[Measurement, ...] = ()
    floor_sizes: int = 0  # how many of the smallest sizes sit on the knee's floor

    @property
    def best(self) -> ShapeFit:
        return self.shapes[0]

    @property
    def plausible(self) -> tuple[ShapeFit, ...]:
        return tuple(s for s in self.shapes if s.plausible)

    @property
    def sizes(self) -> tuple[float, ...]:
        """The distinct measured sizes, ascending."""
        return tuple(sorted({m.size for m in self.measurements}))

    @property
    def max_size(self) -> float:
        return max(m.size for m in self.measurements)


@dataclass(frozen=True)
class NextRun:
    """The size to measure next to narrow the plausible range most, and what it will cost."""

    size: float
    memory_bytes: int  # what to give that run: the recommendation at its size
    duration_s: float | None  # None when no run's duration is known


@dataclass(frozen=True)
class Prediction:
    """What to provision at one size: the expected peak, the plausible range, the advice."""

    size: float
    expected_bytes: int  # the best hypothesis's prediction
    low_bytes: int  # the lowest plausible hypothesis
    high_bytes: int  # the highest plausible hypothesis
    recommended_bytes: int  # what to provision: expected, widened by its own misses, >= seen
    extrapolation_factor: float  # size / largest measured size
    margin: float = 0.0  # recommended / expected - 1: the margin applied
    warnings: tuple[str, ...] = field(default=())
    next_run: NextRun | None = None  # set when the plausible range is wide


def fit(
    measurements: Sequence[Measurement],
    margin: float = DEFAULT_MARGIN,
    lower_bounds: Sequence[Measurement] = (),
) -> Model:
    """Fit every hypothesis, judge it by forward prediction, and rank with the prior.

    ``lower_bounds`` are failed runs: the floor of every recommendation at or above their
    size, never fitted.
    """
    _check(measurements, margin, lower_bounds)
    x = np.array([m.size for m in measurements], dtype=float)
    y = np.array([m.peak_bytes for m in measurements], dtype=float)
    distinct = len(np.unique(x))
    if distinct < 2:
        raise FitError(
            f"need runs at 2 or more distinct sizes to fit (got {distinct}); "
            "measure at more sizes, e.g. memwatch sweep --sizes 1,2,4,8"
        )
    scale = float(x.max())
    if scale > 1e100:  # coefficients per unit of size (b / scale^3) would underflow
        raise FitError(
            f"cannot fit sizes this large (up to {scale:g}): they overflow; "
            "count sizes in a larger unit (e.g. GB instead of bytes)"
        )
    noise = repeat_noise(x, y)
    s = reduce_runs(x, y)
    terms = hypotheses(float(s.x.min()))
    # Without repeats the runs' noise is unknown: a floor must stand out further.
    gap = FLOOR_GAP_UNREPEATED if noise is None else max(FLOOR_GAP, 3 * (RESOLUTION + noise))
    on_floor = floor_sizes(terms, s, scale, gap)
    floor = s[:on_floor].mean() if on_floor else 0.0
    rise = s[on_floor:]
    params = fit_terms(terms, rise, scale)
    constant = constant_forward(rise)
    visible = UNSEEN_GROWTH_SIGMAS * scatter(terms, params, rise, scale, noise)
    forward = forward_predictions(terms, rise, scale, floor, visible)
    fits = [
        ShapeFit(None, (max(rise.mean(), floor),), scale, 0.0, tuple(constant)),
        *(
            ShapeFit(t, p, scale, floor, tuple(f))
            for t, p, f in zip(terms, params, forward, strict=True)
            # No growth is the constant again; no linear part, the term alone again.
            if p[-1] > 0 and (len(p) == 2 or p[1] > 0)
        ),
    ]
    warnings = _model_warnings(measurements, distinct, noise, lower_bounds)
    if on_floor:
        warnings = (
            f"the {on_floor} smallest size{'s' if on_floor > 1 else ''} sit on a floor of "
            f"{human_bytes(round(floor))} that the growth has not reached: growth is fitted "
            f"on the {len(rise.x)} sizes above",
            *warnings,
        )
    return Model(
        tuple(_rank(fits, noise)),
        tuple(measurements),
        margin,
        noise,
        warnings,
        tuple(lower_bounds),
        on_floor,
    )


def _check(
    measurements: Sequence[Measurement], margin: float, lower_bounds: Sequence[Measurement]
) -> None:
    if not 0 <= margin <= 10 or not math.isfinite(margin):
        raise FitError(f"margin must be between 0 and 10 (got {margin}); 0.1 means 10 %")
    for m in (*measurements, *lower_bounds):
        if not (math.isfinite(m.size) and m.size >= 0):
            raise FitError(f"size must be a finite number >= 0 (got {m.size})")
        if not 0 < m.peak_bytes < 2**63:
            raise FitError(
                f"peak must be between 1 byte and 8 EiB (got {m.peak_bytes} at size "
                f"{size_text(m.size)})"
            )


def _ordinary(f: ShapeFit) -> bool:
    return ORDINARY_GROWTH[0] <= f.growth_order <= ORDINARY_GROWTH[1]


def _rank(fits: list[ShapeFit], noise: float | None) -> list[ShapeFit]:
    """Best first by forward error weighted by the prior; the plausible ones marked.

    With no forward prediction possible (two growing sizes) the prior alone ranks and
    nothing is ruled out.
    """
    floor = RESOLUTION + (noise or 0.0)

    def error(f: ShapeFit) -> float:
        return max(f.forward_error, floor) if f.forward_error is not None else floor

    best_ordinary = min((error(f) for f in fits if _ordinary(f)), default=0.0)

    def admissible(f: ShapeFit) -> bool:
        shown = len(f.forward) >= SHOWN_PREDICTIONS and error(f) <= SHOWN_EVIDENCE * best_ordinary
        return _ordinary(f) or shown

    def score(f: ShapeFit) -> float:
        return error(f) * (1 + GROWTH_PRIOR * abs(f.growth_order - 1))

    if all(f.forward_error is None for f in fits if f.term is not None):
        ranked = sorted(
            fits, key=lambda f: (not _ordinary(f), abs(f.growth_order - NO_EVIDENCE_GROWTH))
        )
    else:
        ranked = sorted(fits, key=lambda f: (not admissible(f), score(f), abs(f.growth_order - 1)))
    # Plausible: not ruled out. Growth that is not shown cannot be the best fit,
    # but while the data do not rule it out it widens the range (and earns the warning).
    limit = PLAUSIBLE_FACTOR * score(ranked[0]) + NOISE_WIDENING * (noise or 0.0)
    return [replace(f, plausible=f.forward_error is None or score(f) <= limit) for f in ranked]


def _model_warnings(
    measurements: Sequence[Measurement],
    distinct: int,
    noise: float | None,
    lower_bounds: Sequence[Measurement],
) -> tuple[str, ...]:
    warnings = [
        f"a run at size {size_text(m.size)} failed after using {human_bytes(m.peak_bytes)}: "
        "the job needs more than that there; no recommendation from that size up is lower"
        for m in sorted(lower_bounds, key=lambda m: m.size)
    ]
    if distinct < FEW_SIZES:
        warnings.append(
            f"only {distinct} distinct sizes: with fewer than {FEW_SIZES} the shape of growth "
            "is a guess; measure at more sizes"
            + ("; faster-than-linear growth could not be tested" if distinct < 3 else "")
        )
    if noise is not None and noise > NOISY_REPEATS:
        warnings.append(
            f"repeats at the same size differ by {noise:.0%} (relative standard deviation): "
            f"the recommendation is widened by {NOISE_WIDENING:g}x that"
        )
    sampled = sum(m.sampled for m in measurements)
    if sampled:
        warnings.append(
            f"the peaks of {sampled} of {len(measurements)} fitted runs come from sampling, "
            "not from the kernel's cgroup figure: sampled RSS counts shared pages once per "
            "process and misses memory no process maps; run as root or in a delegated cgroup "
            "for exact peaks"
        )
    swapped = sorted({m.size for m in measurements if m.swap_suspected})
    if swapped:
        warnings.append(
            "suspected swapping (resident-memory plateau) in the runs at size "
            + ", ".join(f"{size_text(s)}" for s in swapped)
            + ": those peaks count swap, but the job may behave differently with room"
        )
    return tuple(warnings)


def _growth_miss(model: Model) -> float:
    """The best fit's forward misses of its growth, as an exponent of the distance: root
    mean square of log(actual / predicted growth) / log(size / largest fitted), where the
    actual growth was more than predicted."""
    # Only misses below the truth: one that over-predicted already errs on the safe side.
    rates = [max(0.0, f.growth_log_error) / math.log(f.factor) for f in model.best.forward]
    rms = math.sqrt(sum(r * r for r in rates) / len(rates)) if rates else 0.0
    return min(rms, MAX_GROWTH_MISS)


def _covered(model: Model, size: float) -> float:
    """The best fit at ``size``, its growth widened by its own forward misses, then by
    the repeats' noise: a fit whose growth was 10 % off at 1.5x the sizes it saw
    (an exponent miss of 0.23) is trusted to 8^0.23 = 1.6x at 8x."""
    best = model.best
    expected = max(0.0, best.predict(size))
    growth = 0.0 if best.term is None else max(0.0, expected - best.params[0])
    factor = max(size / model.max_size, 1.0)
    widened = expected + growth * (factor ** _growth_miss(model) - 1.0)
    return float(widened * (1 + NOISE_WIDENING * (model.noise or 0.0)))


def predict(model: Model, size: float, force: bool = False) -> Prediction:
    """Expected peak and recommended allocation at ``size``, with warnings."""
    if not (math.isfinite(size) and size >= 0):
        raise FitError(f"target size must be a finite number >= 0 (got {size})")
    factor = size / model.max_size
    if factor > REFUSE_EXTRAPOLATION and not force:
        raise ExtrapolationRefused(
            f"size {size_text(size)} is {ratio_text(factor)}x the largest measured size "
            f"({size_text(model.max_size)}); "
            f"beyond {REFUSE_EXTRAPOLATION:g}x memwatch will not guess: measure a larger "
            "size, or pass --force to accept a guess"
        )
    expected = max(0.0, model.best.predict(size))
    recommended = _recommend(model, size)
    low, high = _range(model, size)
    warnings = []
    if factor > WARN_EXTRAPOLATION:
        warnings.append(
            f"extrapolating {ratio_text(factor)}x beyond the largest measured size "
            f"({size_text(model.max_size)}): errors grow fast out there; "
            f"measure nearer to {size_text(size)}"
        )
    next_run = None
    if low > 0 and high / low > WIDE_RANGE and factor > 1:
        next_run = _next_run(model, size)
        warnings.append(
            f"the plausible range at size {size_text(size)} spans {ratio_text(high / low)}x "
            f"({human_bytes(round(low))} .. {human_bytes(round(high))}): measure size "
            f"{size_text(next_run.size)} next to narrow it (give it "
            f"{human_bytes(next_run.memory_bytes)}"
            + (f", about {duration_text(next_run.duration_s)}" if next_run.duration_s else "")
            + ")"
        )
    return Prediction(
        size=size,
        expected_bytes=round(expected),
        low_bytes=round(low),
        high_bytes=round(high),
        recommended_bytes=recommended,
        extrapolation_factor=factor,
        margin=recommended / expected - 1 if expected > 0 else model.margin,
        warnings=tuple(warnings),
        next_run=next_run,
    )


def _recommend(model: Model, size: float) -> int:
    # Memory does not shrink as the input grows: never advise less than was seen at or
    # below this size.
    seen = max(
        (m.peak_bytes for m in (*model.measurements, *model.lower_bounds) if m.size <= size),
        default=0,
    )
    covered = _covered(model, size)
    ordinary = [max(0.0, f.predict(size)) for f in model.plausible if _ordinary(f)]
    if ordinary:
        covered = max(covered, covered ** (1 - RANGE_WEIGHT) * max(ordinary) ** RANGE_WEIGHT)
    top = max(covered, seen) * (1 + model.margin)
    if not math.isfinite(top) or top >= 2**63:
        raise FitError(
            f"the prediction at size {size_text(size)} overflows: it is far beyond what "
            "the measured sizes can say; ask for a nearer size"
        )
    return math.ceil(top)


def _range(model: Model, size: float) -> tuple[float, float]:
    values = [max(0.0, s.predict(size)) for s in model.plausible]
    return min(values), max(values)


def _next_run(model: Model, size: float) -> NextRun:
    """Geometrically halfway from the largest measured size to the target, and at most
    half the target: the plausible hypotheses already part there, for a part of its cost."""
    largest = model.max_size
    step = min(math.sqrt(largest * size), size / 2) if size / 2 > largest else size
    if all(float(m.size).is_integer() for m in model.measurements):
        step = float(max(math.ceil(step), math.floor(largest) + 1))
    return NextRun(step, _recommend(model, step), duration_at(model.measurements, step))


def duration_at(measurements: Sequence[Measurement], size: float) -> float | None:
    """A run's expected time at ``size``: a power law fitted (log-log least squares) to the
    TIMED_SIZES largest timed sizes, its exponent held between MIN_TIME_EXPONENT and
    MAX_TIME_EXPONENT; None when no run is timed."""
    timed: dict[float, float] = {}
    for m in measurements:
        if m.duration_s is not None and m.duration_s > 0 and m.size > 0:
            timed[m.size] = min(timed.get(m.size, math.inf), m.duration_s)
    if not timed:
        return None
    top = sorted(timed)[-TIMED_SIZES:]
    x = np.log(top)
    y = np.log([timed[s] for s in top])
    slope = float(np.polyfit(x, y, 1)[0]) if len(top) > 1 else 0.0
    exponent = min(max(slope, MIN_TIME_EXPONENT), MAX_TIME_EXPONENT)
    # The least-squares line through the means, with the exponent held in its bounds.
    return math.exp(float(y.mean()) + exponent * (math.log(size) - float(x.mean())))


def duration_text(seconds: float) -> str:
    """12.3 -> '12 s', 750 -> '12 min', 9000 -> '2.5 h'; tenths below 10 s."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _coefficient(value: float) -> str:
    """Bytes per unit can be far below one byte: keep three significant digits then."""
    return human_bytes(round(value)) if abs(value) >= 1024 else f"{value:.4g} B"
