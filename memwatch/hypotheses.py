"""The hypotheses the model fits, and the arithmetic of fitting them. Pure numpy.

The growth terms (``Term``), their weighted least-squares fits on one point per size
(``Sizes``), the floor the smallest sizes may sit on, and the forward predictions that
score each hypothesis: fitted on the smaller sizes, how far off at each larger one.
model.py ranks them and turns the best into advice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# Exponents of the growth term, times log2(x) or not: half-integers up to 3 (a dense 3-D
# grid is n^3; anything steeper seen on a few sizes is noise). Extra-P's finer grid
# (1/4, 1/3, 2/3, 3/4, 5/4, 4/3, 5/3, 7/4, ...) was tried on the corpus's development
# half: memory grows by whole powers under lower-order terms, and the in-between
# exponents fitted those terms (x^(5/3)*log2(x) for an image rotation that is x^2 past
# its first sizes): 8 under-provisioned predictions of 102 against 7.
EXPONENTS = tuple(Fraction(n, 2) for n in range(1, 7))
LOG_POWERS = (0, 1)
PLUS_LINEAR = (Fraction(3, 2), Fraction(2), Fraction(3))  # leading terms with a linear part
# log2(x) only where it bends the curve gently: from x = 16 its own log-log slope is at
# most 1/ln(16) = 0.36. On sizes like 1..5 (a zoom factor) log2(x) is as supple as any
# polynomial: x^(1/2)*log2(x)^2 fitted an x^2 image upscale and gave 0.28x at 8x.
LOG_MIN_SIZE = 16
# Growth from linear to x^2 is ordinary (model.py's prior asks the rest to be shown).
ORDINARY_GROWTH = (1.0, 2.0)
# Growth smaller than this many times the runs' scatter is not growth the data show: its
# forward misses are noise, not a miss of the growth to calibrate the margin on.
UNSEEN_GROWTH_SIGMAS = 3.0
# Scatter below 0.1 % of the peak is not resolved: a cgroup peak is exact, but a job's
# allocator and page rounding move its peak by about that much between runs.
RESOLUTION = 0.001
# More distinct sizes than this are merged into geometric bins before fitting: a fleet
# history of 100k runs at 100k sizes fits in the time of 64, with no quadratic step.
MAX_BINS = 64
# Forward validation fits the largest few prefixes: they are the ones that predict from
# where the full fit stands.
MAX_PREFIXES = 3


@dataclass(frozen=True)
class Term:
    """The growth term x^exponent * log2(x)^log_power."""

    exponent: Fraction
    log_power: int = 0
    # + b*x beside the term: a leading x^2 under a linear part that dominates the small
    # sizes (an image's pixels plus its rows) looks like x^(5/4) there alone.
    plus_linear: bool = False

    @property
    def growth_order(self) -> float:
        """How steep: x^2 log x is a little steeper than x^2 and less than x^(5/2)."""
        return float(self.exponent) + 0.1 * self.log_power

    @property
    def name(self) -> str:
        names = {(1.0, 0): "linear", (2.0, 0): "quadratic", (3.0, 0): "cubic", (1.0, 1): "nlogn"}
        name = names.get((float(self.exponent), self.log_power)) or self.text("x").replace("*", " ")
        return f"linear + {name}" if self.plus_linear else name

    def text(self, x: str) -> str:
        """The term written out with ``x`` for the size, e.g. 'x^(3/2)*log2(x)'."""
        parts = []
        e = self.exponent
        if e:
            parts.append(x if e == 1 else f"{x}^{e}" if e.denominator == 1 else f"{x}^({e})")
        if self.log_power:
            parts.append(f"log2({x})" + (f"^{self.log_power}" if self.log_power > 1 else ""))
        return "*".join(parts)

    def basis(self, x: np.ndarray, scale: float) -> np.ndarray:
        """The term at ``x``, with x^i taken of x/scale so that large sizes cannot overflow."""
        values = np.power(x / scale, float(self.exponent))
        if self.log_power:
            values = values * np.power(np.log2(np.maximum(x, 1.0)), self.log_power)
        return np.asarray(values)


@dataclass(frozen=True)
class Forward:
    """One forward prediction: fitted on the smaller sizes, predicting a larger one."""

    log_error: float  # log(actual / predicted) of the peak
    growth_log_error: float  # the same for the part above the intercept
    factor: float  # the size predicted / the largest size fitted


def evaluate(
    term: Term | None, params: Sequence[float], scale: float, x: np.ndarray, floor: float = 0.0
) -> np.ndarray:
    if term is None:
        return np.full(x.shape, max(params[0], floor))
    values = params[0] + params[-1] * term.basis(x, scale)
    if len(params) == 3:
        values = values + params[1] * x / scale
    return np.maximum(values, floor)


@dataclass(frozen=True)
class Sizes:
    """The runs reduced to one point per size (or per bin of sizes): what is fitted."""

    x: np.ndarray  # size
    y: np.ndarray  # mean peak
    w: np.ndarray  # weight: runs / peak^2, so errors count relative to the peak

    def __getitem__(self, part: slice) -> Sizes:
        return Sizes(self.x[part], self.y[part], self.w[part])

    def mean(self) -> float:
        return float(np.average(self.y, weights=self.w))


def reduce_runs(x: np.ndarray, y: np.ndarray) -> Sizes:
    """Mean peak per distinct size; geometric bins beyond MAX_BINS sizes."""
    sizes, index = np.unique(x, return_inverse=True)
    if len(sizes) > MAX_BINS:
        logs = np.log(np.maximum(x, sizes[sizes > 0].min() if (sizes > 0).any() else 1.0))
        edges = np.linspace(logs.min(), logs.max(), MAX_BINS + 1)[1:-1]
        _, index = np.unique(np.searchsorted(edges, logs), return_inverse=True)
        sizes = np.bincount(index, weights=x) / np.bincount(index)
    counts = np.bincount(index).astype(float)
    means = np.bincount(index, weights=y) / counts
    return Sizes(np.asarray(sizes, dtype=float), means, counts / means**2)


def fit_lines(g: np.ndarray, s: Sizes) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares y ~ a + b*g for every row of ``g`` at once, with b >= 0.

    Memory does not shrink as the input grows: a negative b would bend the curve down
    beyond the data, exactly the under-prediction this module exists to avoid.
    """
    total = s.w.sum()
    y_mean = (s.w * s.y).sum() / total
    g_mean = (g * s.w).sum(axis=1) / total
    centred = g - g_mean[:, None]
    spread = (s.w * centred * centred).sum(axis=1)
    covariance = (s.w * centred * (s.y - y_mean)).sum(axis=1)
    b = np.divide(covariance, spread, out=np.zeros_like(spread), where=spread > 0)
    b = np.maximum(b, 0.0)
    return y_mean - b * g_mean, b


def basis_rows(terms: Sequence[Term], x: np.ndarray, scale: float) -> np.ndarray:
    return np.stack([t.basis(x, scale) for t in terms])


def fit_terms(terms: Sequence[Term], s: Sizes, scale: float) -> list[tuple[float, ...]]:
    """(a, b) of a + b*term for every term, and (a, b, c) of a + b*x + c*term for the
    terms with a linear part: both coefficients >= 0, else the term alone (b = 0)."""
    g = basis_rows(terms, s.x, scale)
    a, b = fit_lines(g, s)
    params: list[tuple[float, ...]] = [(float(ai), float(bi)) for ai, bi in zip(a, b, strict=True)]
    rows = [i for i, t in enumerate(terms) if t.plus_linear]
    if not rows or len(s.x) < 3:
        return [(p[0], 0.0, p[1]) if terms[i].plus_linear else p for i, p in enumerate(params)]
    total = s.w.sum()
    lin = s.x / scale
    lc = lin - (s.w * lin).sum() / total
    gc = g[rows] - ((g[rows] * s.w).sum(axis=1) / total)[:, None]
    yc = s.y - (s.w * s.y).sum() / total
    s11, s22, s12 = (s.w * lc * lc).sum(), (s.w * gc * gc).sum(axis=1), (s.w * lc * gc).sum(axis=1)
    s1y, s2y = (s.w * lc * yc).sum(), (s.w * gc * yc).sum(axis=1)
    det = s11 * s22 - s12 * s12
    for j, i in enumerate(rows):
        b1 = (s22[j] * s1y - s12[j] * s2y[j]) / det[j] if det[j] > 0 else -1.0
        b2 = (s11 * s2y[j] - s12[j] * s1y) / det[j] if det[j] > 0 else -1.0
        if b1 > 0 and b2 > 0:
            a0 = (s.w * (s.y - b1 * lin - b2 * g[i])).sum() / total
            params[i] = (float(a0), float(b1), float(b2))
        else:
            params[i] = (params[i][0], 0.0, params[i][1])
    return params


def floor_sizes(terms: Sequence[Term], s: Sizes, scale: float, gap: float) -> int:
    """How many of the smallest sizes sit on a floor that the growth has not reached.

    Convex growth also passes below its first sizes, and noise makes floors anywhere, so
    a floor must earn its place: growth up to x^2 alone misses the runs by more than
    ``gap`` (root mean square, relative), floor + such growth by less than half that;
    the floor's sizes are flat within ``gap`` and the straight line through the sizes
    above passes clearly below it. Steeper growth is not asked: a floor the data fit
    inside is exactly what it would otherwise be mistaken for.
    """
    gentle = [i for i, t in enumerate(terms) if t.growth_order <= ORDINARY_GROWTH[1]]
    g = basis_rows([terms[i] for i in gentle], s.x, scale)
    linear = next(i for i, k in enumerate(gentle) if terms[k] == Term(Fraction(1)))

    def error(part: Sizes, rows: np.ndarray) -> float:
        a, b = fit_lines(rows, part)
        return float(np.min((part.w * (a[:, None] + b[:, None] * rows - part.y) ** 2).sum(axis=1)))

    runs = float((s.w * s.y**2).sum())  # sum of runs: w * y^2 is the count of each size
    no_floor = math.sqrt(error(s, g) / runs)
    if no_floor <= gap or s.y[-1] <= s.y[0] * (1 + UNSEEN_GROWTH_SIGMAS * gap):
        return 0  # growth alone explains the runs, or they do not grow beyond their noise
    # The longest floor that qualifies: a flat size left in the growing part would bend it.
    best, best_error = 0, (no_floor / 2) ** 2 * runs
    for m in range(1, len(s.x) - 1):
        flat, rise, c = s[:m], s[m:], s[:m].mean()
        if np.any(np.abs(flat.y / c - 1) > gap):
            break  # a larger floor is flat no more
        a, b = fit_lines(g[linear : linear + 1, m:], rise)
        if b[0] <= 0 or a[0] + b[0] * g[linear, m - 1] >= c * (1 - gap):
            continue
        if error(rise, g[:, m:]) + float((flat.w * (flat.y - c) ** 2).sum()) < best_error:
            best = m
    return best


def forward_predictions(
    terms: Sequence[Term], s: Sizes, scale: float, floor: float, visible: float
) -> list[list[Forward]]:
    """Per hypothesis: how far off it was at each larger size when fitted on the smaller."""
    n = len(s.x)
    found: list[list[Forward]] = [[] for _ in terms]
    for k in range(max(2, n - MAX_PREFIXES), n):  # fit on the k smallest, predict the rest
        later = s[k:]
        for i, (term, params) in enumerate(zip(terms, fit_terms(terms, s[:k], scale), strict=True)):
            predicted = evaluate(term, params, scale, later.x, floor)
            for size, actual, guess in zip(later.x, later.y, predicted, strict=True):
                growth = guess - params[0]
                # The growth part's miss matters beyond the data: at small sizes a
                # baseline dilutes it, at 8x it is most of the peak (a 2 % miss of the
                # total there was 37 % at 8x on a sparse factorisation). Growth within
                # the runs' noise is counted as that much: flat runs that were followed
                # by growth (an image registration, flat to 226 px) missed it.
                ratio = (actual - params[0]) / max(growth, visible * guess)
                if ratio * max(growth, visible * guess) <= visible * guess:
                    ratio = 1.0  # neither predicted nor actual growth is visible
                found[i].append(
                    Forward(
                        math.log(actual / guess),
                        math.log(max(ratio, 0.01)),
                        float(size / s.x[k - 1]),
                    )
                )
    return found


def constant_forward(s: Sizes) -> list[Forward]:
    n = len(s.x)
    return [
        Forward(math.log(actual / s[:k].mean()), 0.0, float(size / s.x[k - 1]))
        for k in range(max(1, n - MAX_PREFIXES), n)
        for size, actual in zip(s.x[k:], s.y[k:], strict=True)
    ]


def repeat_noise(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pooled relative standard deviation of repeated sizes; None when nothing was repeated."""
    _, index = np.unique(x, return_inverse=True)
    counts = np.bincount(index)
    repeated = counts > 1
    if not repeated.any():
        return None
    means = np.bincount(index, weights=y) / counts
    squares = np.bincount(index, weights=(y - means[index]) ** 2)
    variances = squares[repeated] / (counts[repeated] - 1) / means[repeated] ** 2
    return math.sqrt(float(np.mean(variances)))


def scatter(
    terms: Sequence[Term],
    params: Sequence[tuple[float, ...]],
    s: Sizes,
    scale: float,
    noise: float | None,
) -> float:
    """How far runs stray, relative: the repeats' noise, or without repeats the best
    ordinary fit's residual (root mean square), and at least the resolution."""
    residuals = [
        float(np.sqrt(np.average((evaluate(t, p, scale, s.x) / s.y - 1) ** 2)))
        for t, p in zip(terms, params, strict=True)
        if ORDINARY_GROWTH[0] <= t.growth_order <= ORDINARY_GROWTH[1]
    ]
    spread = noise if noise is not None else min(residuals, default=0.0)
    return RESOLUTION + spread


def hypotheses(x_min: float) -> list[Term]:
    logs = LOG_POWERS if x_min >= LOG_MIN_SIZE else (0,)
    return (
        [Term(e, j) for e in EXPONENTS for j in logs]
        + [Term(Fraction(0), 1)] * (x_min >= LOG_MIN_SIZE)
        + [Term(e, 0, plus_linear=True) for e in PLUS_LINEAR]
    )
