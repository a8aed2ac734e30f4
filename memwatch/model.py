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

from .errors import ExtrapolationRefused, FitError
from .limits import DEFAULT_MARGIN, REFUSE_EXTRAPOLATION, WARN_EXTRAPOLATION
from .report import human_bytes, size_text

FEW_SIZES = 5
# A shape is plausible while its AICc is within 7 of the best (Burnham & Anderson,
# "Model Selection and Multimodel Inference", 2002, sec. 2.6: beyond 4-7 a model has
# "considerably less" support). With 5 runs AICc charges a third parameter heavily, so
# curvature fitted to noise does not inflate the envelope; curvature that is really
# there still wins. In benchmarks/fit_accuracy.py, 4 gave a lower median but under-
# provisioned more; 7 under-provisioned none.
PLAUSIBLE_DELTA_AICC = 7.0
# With too few runs for AICc (runs <= parameters + 1), a shape is plausible while its
# leave-one-out error is within this factor of the best's plus a slack.
PLAUSIBLE_FACTOR = 2.0
PLAUSIBLE_SLACK = 0.02
# Residuals below 0.1 % of the peak are no evidence for a shape: a cgroup peak is exact,
# but a job's allocator and page rounding move its peak by about that much between runs.
RESOLUTION = 0.001
NOISY_REPEATS = 0.05  # relative standard deviation of repeats that earns a warning
NOISE_WIDENING = 2.0  # the upper bound is widened by this many repeat standard deviations
EXPONENTS = np.round(np.arange(0.1, 4.0001, 0.05), 2)  # searched for a + b*x^k

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
    aicc: float | None = None

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
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


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
        return ShapeFit(shape, params, None, aicc=_aicc(shape, params, x, y))
    errors, loo_params = [], []
    for s in sizes:
        held = x == s
        loo_params.append(_fit_shape(shape, x[~held], y[~held]))
        truth = float(np.mean(y[held]))
        predicted = float(_evaluate(shape, loo_params[-1], np.array([s]))[0])
        errors.append((predicted - truth) / truth if truth > 0 else 0.0)
    error = math.sqrt(float(np.mean(np.square(errors))))
    return ShapeFit(
        shape, params, error, loo_params=tuple(loo_params), aicc=_aicc(shape, params, x, y)
    )


def _aicc(shape: str, params: tuple[float, ...], x: np.ndarray, y: np.ndarray) -> float | None:
    """Akaike's criterion corrected for small samples; None when runs <= parameters + 1."""
    n, p = len(x), _parameter_count(shape)
    if n - p - 1 <= 0:
        return None
    sse = float(np.sum((_evaluate(shape, params, x) - y) ** 2))
    sse = max(sse, n * (RESOLUTION * float(np.mean(y))) ** 2)
    return n * math.log(sse / n) + 2 * p + 2 * p * (p + 1) / (n - p - 1)


def _noise(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pooled relative standard deviation of repeated sizes; None when nothing was repeated."""
    variances = []
    for s in np.unique(x):
        group = y[x == s]
        if len(group) > 1 and np.mean(group) > 0:
            variances.append(float(np.var(group, ddof=1)) / float(np.mean(group)) ** 2)
    return math.sqrt(float(np.mean(variances))) if variances else None


def fit(measurements: Sequence[Measurement], margin: float = DEFAULT_MARGIN) -> Model:
    """Fit every candidate shape, score it, and mark the ones the data cannot rule out."""
    if not 0 <= margin <= 10 or not math.isfinite(margin):
        raise FitError(f"margin must be between 0 and 10 (got {margin}); 0.1 means 10 %")
    for m in measurements:
        if not (math.isfinite(m.size) and m.size >= 0):
            raise FitError(f"size must be a finite number >= 0 (got {m.size})")
        if m.peak_bytes <= 0:
            raise FitError(
                f"peak must be > 0 bytes (got {m.peak_bytes} at size {size_text(m.size)})"
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
    candidates = [_fit_candidate(s, x, y) for s in shapes if distinct >= _parameter_count(s)]
    noise = _noise(x, y)
    # AICc compares shapes only when it is defined for all of them (runs > parameters + 1).
    by_aicc = all(c.aicc is not None for c in candidates)
    best_aicc = min(c.aicc or 0.0 for c in candidates) if by_aicc else 0.0
    best_loo = min((c.loo_error for c in candidates if c.loo_error is not None), default=None)

    def plausible(c: ShapeFit) -> bool:
        if by_aicc:
            return (c.aicc or 0.0) - best_aicc <= PLAUSIBLE_DELTA_AICC
        if c.loo_error is None or best_loo is None:
            return True  # too few sizes to rule it out
        limit = PLAUSIBLE_FACTOR * best_loo + PLAUSIBLE_SLACK + NOISE_WIDENING * (noise or 0)
        return c.loo_error <= limit

    def score(c: ShapeFit) -> float:
        value = c.aicc if by_aicc else c.loo_error
        return math.inf if value is None else round(value, 4)

    # Best first: plausible before ruled out, then by score; ties go to fewer parameters
    # and then to the simpler shape.
    ranked = sorted(
        (dataclasses.replace(c, plausible=plausible(c)) for c in candidates),
        key=lambda c: (
            not c.plausible,
            score(c),
            _parameter_count(c.shape),
            shapes.index(c.shape),
        ),
    )
    warnings = _model_warnings(measurements, distinct, noise)
    return Model(tuple(ranked), tuple(measurements), margin, noise, warnings)


def _model_warnings(
    measurements: Sequence[Measurement], distinct: int, noise: float | None
) -> tuple[str, ...]:
    warnings = []
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
    seen = max((m.peak_bytes for m in model.measurements if m.size <= size), default=0)
    recommended = math.ceil(max(high, expected, seen) * (1 + model.margin))

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
