# The frozen memwatch 0.1.0 model (memwatch/model.py as it was on main at 74eb4b6), kept
# verbatim so benchmarks/fit_corpus.py can compare it with the classic line and the current
# model. Do not change it: only its imports were adjusted so it runs outside the package,
# and the three limits it imported are pinned to their 0.1.0 values.
"""Fit peak memory against input size and recommend what to provision. Pure numpy, no I/O.

The classic recipe (a straight line through a few sizes, +10 %) under-provisions anything
that grows faster than linearly. Here several shapes are fitted, each is scored by how
well it predicts a size it did not see (leave one size out), and the recommendation
covers every shape that the data cannot rule out: the envelope, not the single best.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from memwatch.errors import ExtrapolationRefused, FitError
from memwatch.report import human_bytes, size_text

DEFAULT_MARGIN = 0.10  # memwatch/limits.py in 0.1.0
WARN_EXTRAPOLATION = 4.0
REFUSE_EXTRAPOLATION = 16.0

FEW_SIZES = 5
# A shape stays plausible while its leave-one-out error is within this factor of the
# best shape's plus a slack (and twice the repeats' noise): with 4-6 sizes a slightly worse
# score is no evidence against a shape. AICc was tried instead (benchmarks/
# fit_accuracy.py): with 5 runs it charges a third parameter so much that a + b*x^k lost to
# x*ln(x) on an image upscale and the 8x prediction was 0.36x the true peak.
PLAUSIBLE_FACTOR = 2.0
PLAUSIBLE_SLACK = 0.02
# Growth smaller than this many times the scatter of the runs is not growth the data
# shows: a curve fitted to it (k -> 3 on a flat streaming job) would turn noise into
# gigabytes when extrapolated, so the shape counts as flat instead.
UNSEEN_GROWTH_SIGMAS = 3.0
# Scatter below 0.1 % of the peak is not resolved: a cgroup peak is exact, but a job's
# allocator and page rounding move its peak by about that much between runs.
RESOLUTION = 0.001
NOISY_REPEATS = 0.05  # relative standard deviation of repeats that earns a warning
NOISE_WIDENING = 2.0  # the upper bound is widened by this many repeat standard deviations
# Searched for a + b*x^k. Beyond cubic in the input size is rare (a dense 3-D grid is n^3),
# and a k that runs to the top of a wider grid is fitting noise.
EXPONENTS = np.round(np.arange(0.1, 3.0001, 0.05), 2)

Basis = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Measurement:
    """One measured run: the input size and the true peak (RAM + swap) in bytes."""

    size: float
    peak_bytes: int
    swap_suspected: bool = False


@dataclass(frozen=True)
class ShapeFit:
    """One candidate shape fitted to the measurements.

    ``params`` are (a, b) for linear and x*log x, (a, b, k) for a + b*x^k, (a, b, c) for
    a + b*x + c*x^2, (a,) for constant. ``loo_error`` is the root mean square relative
    error of predicting each measured size from the others; None when there are too few
    sizes to leave one out.
    """

    shape: str
    params: tuple[float, ...]
    loo_error: float | None
    plausible: bool = True
    # The fits with one size left out: how far the curve moves when one size is missing
    # is the spread of this shape's prediction, which the envelope must cover too.
    loo_params: tuple[tuple[float, ...], ...] = ()

    def predict(self, size: float) -> float:
        """The fitted peak in bytes at ``size``."""
        return float(_evaluate(self.shape, self.params, np.array([float(size)]))[0])

    @property
    def formula(self) -> str:
        return FORMULAS[self.shape]

    def describe(self) -> str:
        """The fitted parameters in words a person can check, e.g. '96 MiB + 78 KiB per unit'."""
        a, *rest = self.params
        if self.shape == "power":
            terms = [(rest[0], f" x size^{rest[1]:.2f}")]
        else:
            words = {
                "constant": [],
                "linear": [" per unit of size"],
                "nlogn": [" x size x ln(size)"],
                "quadratic": [" x size", " x size^2"],
            }
            terms = list(zip(rest, words[self.shape], strict=True))
        growth = [f"{_coefficient(c)}{word}" for c, word in terms if c > 0]
        return (
            " + ".join([human_bytes(round(a)), *growth])
            if growth
            else (f"{human_bytes(round(a))} whatever the size")
        )


@dataclass(frozen=True)
class Model:
    """Every shape fitted to the measurements, best first, and what the data says about noise."""

    shapes: tuple[ShapeFit, ...]
    measurements: tuple[Measurement, ...]
    margin: float
    noise: float | None  # pooled relative standard deviation of repeats; None without repeats
    warnings: tuple[str, ...] = ()
    # Runs that failed (OOM-killed, crashed): the job needed more than their peak at their
    # size. Not fitted, but no recommendation at or above their size goes below them.
    lower_bounds: tuple[Measurement, ...] = ()

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
class Prediction:
    """What to provision at one size: the best shape's figure, the envelope, the advice."""

    size: float
    expected_bytes: int  # the best shape's prediction
    low_bytes: int  # the lowest plausible shape
    high_bytes: int  # the highest plausible shape, widened by the repeats' noise
    recommended_bytes: int  # what to provision: high x (1 + margin), never below what was seen
    extrapolation_factor: float  # size / largest measured size
    warnings: tuple[str, ...] = field(default=())


FORMULAS = {
    "constant": "a",
    "linear": "a + b*x",
    "nlogn": "a + b*x*ln(x)",
    "power": "a + b*x^k",
    "quadratic": "a + b*x + c*x^2",
}


def _x_log_x(x: np.ndarray) -> np.ndarray:
    # x*ln(x) dips below 0 between 0 and 1; held at 0 there so the curve never falls.
    return np.asarray(x * np.log(np.maximum(x, 1.0)))


def _growth_terms(shape: str, k: float | None = None) -> list[Basis]:
    if shape == "constant":
        return []
    if shape == "linear":
        return [lambda x: x]
    if shape == "nlogn":
        return [_x_log_x]
    if shape == "power":
        assert k is not None
        return [lambda x: np.power(x, k)]
    return [lambda x: x, lambda x: x * x]


def _evaluate(shape: str, params: Sequence[float], x: np.ndarray) -> np.ndarray:
    if shape == "power":
        a, b, k = params
        coefficients, terms = [b], _growth_terms(shape, k)
    else:
        a, *coefficients = params
        terms = _growth_terms(shape)
    total = np.full_like(x, a)
    for c, term in zip(coefficients, terms, strict=True):
        total += c * term(x)
    return total


def _least_squares(
    terms: list[Basis], x: np.ndarray, y: np.ndarray
) -> tuple[tuple[float, ...], float]:
    """Intercept free, growth coefficients >= 0; returns (a, b, ...) and the squared error.

    Memory does not shrink as the input grows, and a fitted negative term would bend the
    curve down beyond the data: exactly the under-prediction this module exists to avoid.
    With at most two growth terms, trying every subset is the exact non-negative solution.
    """
    columns = [t(x) for t in terms]
    scales = [float(np.max(np.abs(c))) or 1.0 for c in columns]
    y_scale = float(np.max(np.abs(y))) or 1.0
    best: tuple[tuple[float, ...], float] | None = None
    for n in range(len(columns), -1, -1):
        for subset in combinations(range(len(columns)), n):
            design = np.column_stack([np.ones_like(x)] + [columns[i] / scales[i] for i in subset])
            solution, *_ = np.linalg.lstsq(design, y / y_scale, rcond=None)
            if any(solution[1:] < 0):
                continue
            # Round-off from an exact fit (1e-12 B per unit) is zero, not a term to print.
            solution[1:][solution[1:] < 1e-9] = 0.0
            error = float(np.sum((design @ solution - y / y_scale) ** 2)) * y_scale**2
            if best is None or error < best[1] * (1 - 1e-12):
                coefficients = [0.0] * len(columns)
                for i, value in zip(subset, solution[1:], strict=True):
                    coefficients[i] = float(value) * y_scale / scales[i]
                best = ((float(solution[0]) * y_scale, *coefficients), error)
    assert best is not None  # the empty subset is always feasible
    return best


def _fit_shape(shape: str, x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    if shape != "power":
        return _least_squares(_growth_terms(shape), x, y)[0]
    # a + b*x^k is linear in (a, b) for a fixed k: search k on a grid, then refine.
    fits = {float(k): _least_squares(_growth_terms("power", float(k)), x, y) for k in EXPONENTS}
    k = min(fits, key=lambda kk: fits[kk][1])
    low, high = max(EXPONENTS[0], k - 0.05), min(EXPONENTS[-1], k + 0.05)
    for _ in range(20):  # golden-section search inside the grid step
        m1, m2 = high - (high - low) / 1.618, low + (high - low) / 1.618
        e1 = _least_squares(_growth_terms("power", m1), x, y)[1]
        e2 = _least_squares(_growth_terms("power", m2), x, y)[1]
        low, high = (low, m2) if e1 < e2 else (m1, high)
    refined = (low + high) / 2
    refined_fit = _least_squares(_growth_terms("power", refined), x, y)
    (a, b), k = (refined_fit[0], refined) if refined_fit[1] <= fits[k][1] else (fits[k][0], k)
    return (a, b, k)


def _parameter_count(shape: str) -> int:
    return {"constant": 1, "linear": 2, "nlogn": 2, "power": 3, "quadratic": 3}[shape]


def _fit_candidate(shape: str, x: np.ndarray, y: np.ndarray) -> ShapeFit:
    """Fit on all sizes, then once per left-out size to score the shape by its prediction error.

    The score is the root mean square relative error predicting each size's mean peak from
    the other sizes; None when the shape has as many parameters as there are sizes left.
    """
    params = _fit_shape(shape, x, y)
    sizes = np.unique(x)
    if len(sizes) - 1 < _parameter_count(shape):
        return ShapeFit(shape, params, None)
    errors, loo_params = [], []
    for s in sizes:
        held = x == s
        loo_params.append(_fit_shape(shape, x[~held], y[~held]))
        truth = float(np.mean(y[held]))
        predicted = float(_evaluate(shape, loo_params[-1], np.array([s]))[0])
        errors.append((predicted - truth) / truth if truth > 0 else 0.0)
    error = math.sqrt(float(np.mean(np.square(errors))))
    return ShapeFit(shape, params, error, loo_params=tuple(loo_params))


def _scatter_bytes(
    candidates: Sequence[ShapeFit], x: np.ndarray, y: np.ndarray, noise: float | None
) -> float:
    """How far runs stray from the best growing curve: its residual, the noise, or 0.1 %.

    Not the constant's residual: with growth in the data that is the growth itself (with
    two sizes, half of it), and growth would then never count as seen.
    """
    growing = [c for c in candidates if c.shape != "constant"] or list(candidates)
    scored = [c for c in growing if c.loo_error is not None] or growing
    best = min(scored, key=lambda c: c.loo_error or 0.0)
    residual = math.sqrt(float(np.mean((_evaluate(best.shape, best.params, x) - y) ** 2)))
    return max(residual, (RESOLUTION + (noise or 0.0)) * float(np.mean(y)))


def _flatten_unseen_growth(c: ShapeFit, x: np.ndarray, scatter: float) -> ShapeFit:
    """Curvature the data cannot see (fits and leave-one-out fits) becomes a flat curve.

    Only the curved shapes: their extrapolation multiplies the noise they were fitted to
    (x^3 at 8x: 512 times). A straight line keeps even a small slope, which extrapolates
    only in proportion: flattening it under-provisioned a real 2.5 KB per unit slope
    hidden in 1 % noise (0.81x at 16x).
    """

    def seen(params: tuple[float, ...]) -> tuple[float, ...]:
        ends = _evaluate(c.shape, params, np.array([x.min(), x.max()]))
        if ends[1] - ends[0] >= UNSEEN_GROWTH_SIGMAS * scatter:
            return params
        flat = [0.0] * (len(params) - 1)
        if c.shape == "power":
            flat[1] = params[2]  # keep k: only b goes to zero
        return (float(np.max(ends)), *flat)

    if c.shape not in ("quadratic", "power"):
        return c
    return dataclasses.replace(
        c, params=seen(c.params), loo_params=tuple(seen(p) for p in c.loo_params)
    )


def _noise(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pooled relative standard deviation of repeated sizes; None when nothing was repeated."""
    variances = []
    for s in np.unique(x):
        group = y[x == s]
        if len(group) > 1 and np.mean(group) > 0:
            variances.append(float(np.var(group, ddof=1)) / float(np.mean(group)) ** 2)
    return math.sqrt(float(np.mean(variances))) if variances else None


def fit(
    measurements: Sequence[Measurement],
    margin: float = DEFAULT_MARGIN,
    lower_bounds: Sequence[Measurement] = (),
) -> Model:
    """Fit every candidate shape, score it, and mark the ones the data cannot rule out.

    ``lower_bounds`` are failed runs: the floor of every recommendation at or above their
    size, never fitted.
    """
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
    x = np.array([m.size for m in measurements], dtype=float)
    y = np.array([m.peak_bytes for m in measurements], dtype=float)
    distinct = len(np.unique(x))
    if distinct < 2:
        raise FitError(
            f"need runs at 2 or more distinct sizes to fit (got {distinct}); "
            "measure at more sizes, e.g. memwatch sweep --sizes 1,2,4,8"
        )
    shapes = ["constant", "linear", "quadratic", "power"]  # ties go to the earlier one
    if x.min() >= 1:  # x*ln(x) only grows for x above 1/e: it needs sizes counted in units
        shapes.insert(2, "nlogn")
    try:
        with np.errstate(over="raise", invalid="raise"):
            candidates = [
                _fit_candidate(s, x, y) for s in shapes if distinct >= _parameter_count(s)
            ]
    except (FloatingPointError, np.linalg.LinAlgError) as err:
        raise FitError(
            f"cannot fit these numbers ({err}): sizes this large overflow; "
            "count sizes in a larger unit (e.g. GB instead of bytes)"
        ) from None
    noise = _noise(x, y)
    scatter = _scatter_bytes(candidates, x, y, noise)
    candidates = [_flatten_unseen_growth(c, x, scatter) for c in candidates]
    best_loo = min((c.loo_error for c in candidates if c.loo_error is not None), default=None)

    def plausible(c: ShapeFit) -> bool:
        if c.loo_error is None or best_loo is None:
            return True  # too few sizes to rule it out
        limit = PLAUSIBLE_FACTOR * best_loo + PLAUSIBLE_SLACK + NOISE_WIDENING * (noise or 0)
        return c.loo_error <= limit

    # Best first: scored shapes by error, then unscored ones; ties go to fewer parameters
    # and then to the simpler shape.
    ranked = sorted(
        (dataclasses.replace(c, plausible=plausible(c)) for c in candidates),
        key=lambda c: (
            c.loo_error is None,
            round(c.loo_error or 0.0, 4),
            _parameter_count(c.shape),
            shapes.index(c.shape),
        ),
    )
    warnings = _model_warnings(measurements, distinct, noise, lower_bounds)
    return Model(tuple(ranked), tuple(measurements), margin, noise, warnings, tuple(lower_bounds))


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
            f"the upper bound is widened by {NOISE_WIDENING:g}x that"
        )
    swapped = sorted({m.size for m in measurements if m.swap_suspected})
    if swapped:
        warnings.append(
            "suspected swapping (resident-memory plateau) in the runs at size "
            + ", ".join(f"{size_text(s)}" for s in swapped)
            + ": those peaks count swap, but the job may behave differently with room"
        )
    return tuple(warnings)


def predict(model: Model, size: float, force: bool = False) -> Prediction:
    """Expected peak and recommended allocation at ``size``, with warnings."""
    if not (math.isfinite(size) and size >= 0):
        raise FitError(f"target size must be a finite number >= 0 (got {size})")
    factor = size / model.max_size
    if factor > REFUSE_EXTRAPOLATION and not force:
        raise ExtrapolationRefused(
            f"size {size_text(size)} is {factor:.1f}x the largest measured size "
            f"({size_text(model.max_size)}); "
            f"beyond {REFUSE_EXTRAPOLATION:g}x memwatch will not guess: measure a larger "
            "size, or pass --force to accept a guess"
        )
    predictions = {s.shape: max(0.0, s.predict(size)) for s in model.plausible}
    expected = max(0.0, model.best.predict(size))
    low = min(predictions.values())
    high = max(
        [
            *predictions.values(),
            *(
                float(_evaluate(s.shape, params, np.array([float(size)]))[0])
                for s in model.plausible
                for params in s.loo_params
            ),
        ]
    )
    high *= 1 + NOISE_WIDENING * (model.noise or 0.0)
    # Memory does not shrink as the input grows: never advise less than was seen at or
    # below this size.
    seen = max(
        (m.peak_bytes for m in (*model.measurements, *model.lower_bounds) if m.size <= size),
        default=0,
    )
    top = max(high, expected, seen) * (1 + model.margin)
    if not math.isfinite(top) or top >= 2**63:
        raise FitError(
            f"the prediction at size {size_text(size)} overflows: it is far beyond what "
            "the measured sizes can say; ask for a nearer size"
        )
    recommended = math.ceil(top)

    warnings = []
    if factor > WARN_EXTRAPOLATION:
        warnings.append(
            f"extrapolating {factor:.1f}x beyond the largest measured size "
            f"({size_text(model.max_size)}): errors grow fast out there; "
            f"measure nearer to {size_text(size)}"
        )
    if expected > 0 and (high - low) / expected > model.margin and len(predictions) > 1:
        ordered = sorted(predictions.items(), key=lambda kv: kv[1])
        spread = ", ".join(f"{FORMULAS[name]} {human_bytes(round(v))}" for name, v in ordered)
        warnings.append(
            f"plausible shapes disagree by more than the {model.margin:.0%} margin at "
            f"size {size_text(size)} ({spread}); the recommendation covers the highest"
        )
    return Prediction(
        size=size,
        expected_bytes=round(expected),
        low_bytes=round(low),
        high_bytes=round(high),
        recommended_bytes=recommended,
        extrapolation_factor=factor,
        warnings=tuple(warnings),
    )


def _coefficient(value: float) -> str:
    """Bytes per unit can be far below one byte: keep three significant digits then."""
    return human_bytes(round(value)) if abs(value) >= 1024 else f"{value:.4g} B"
