"""The planning answers: does it fit, how many at once, how big can the input get. Pure.

The machine's memory and cgroup limit are read by procfs.read_meminfo and
cgroup.memory_limit at the edge and passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .errors import FitError
from .limits import REFUSE_EXTRAPOLATION
from .measures import MemoryLimit
from .model import Model, Prediction, ShapeFit, predict
from .report import size_text

BudgetSource = Literal["--budget", "cgroup limit", "machine RAM"]
GrowthKind = Literal["constant", "slower than linear", "linear", "faster than linear"]
LINEAR_TOLERANCE = 0.1  # exponents within 1 +- this read as linear
FORCED_SEARCH_FACTOR = 1e6  # how far beyond the measured sizes --force lets the inverse look


@dataclass(frozen=True)
class Budget:
    """The memory a job may use, where that figure came from, and what is free of it now."""

    total_bytes: int
    source: BudgetSource
    available_bytes: int | None = None  # None for a given --budget: all of it is for tasks

    @property
    def for_tasks_bytes(self) -> int:
        return self.total_bytes if self.available_bytes is None else self.available_bytes


@dataclass(frozen=True)
class Verdict:
    """Whether one recommended allocation fits the budget, and how many fit side by side."""

    fits: bool
    headroom_bytes: int  # negative: that much short
    parallel_tasks: int


@dataclass(frozen=True)
class Growth:
    """How the peak grows with the input: the best shape's exponent at the largest size."""

    kind: GrowthKind
    exponent: float | None  # d log(growing part) / d log(size); None when nothing grows
    words: str


@dataclass(frozen=True)
class MaxSize:
    """The largest input whose recommended allocation fits ``memory_bytes``."""

    memory_bytes: int
    size: float | None  # None: not even size 0 fits
    recommended_bytes: int  # at ``size`` (at size 0 when nothing fits)
    extrapolation_factor: float | None
    capped: bool  # the search stopped at the extrapolation limit: larger may fit too
    warnings: tuple[str, ...] = ()


def choose_budget(
    given_bytes: int | None, machine: tuple[int, int] | None, limit: MemoryLimit | None
) -> Budget:
    """--budget if given, else the cgroup limit if tighter than RAM, else this machine's RAM.

    ``machine`` is (MemTotal, MemAvailable); the default budgets count what is free now
    for running tasks side by side, since what other processes hold is not theirs.
    """
    if given_bytes is not None:
        return Budget(given_bytes, "--budget")
    if limit is not None and (machine is None or limit.limit_bytes < machine[0]):
        free = max(0, limit.limit_bytes - limit.usage_bytes)
        if machine is not None:
            free = min(free, machine[1])
        return Budget(limit.limit_bytes, "cgroup limit", free)
    if machine is None:
        raise ValueError("this machine's memory is unknown: give --budget")
    return Budget(machine[0], "machine RAM", machine[1])


def judge(budget: Budget, recommended_bytes: int) -> Verdict:
    """Fits or not, the headroom, and how many such tasks fit at once."""
    return Verdict(
        fits=recommended_bytes <= budget.total_bytes,
        headroom_bytes=budget.total_bytes - recommended_bytes,
        parallel_tasks=budget.for_tasks_bytes // max(1, recommended_bytes),
    )


def growth(model: Model) -> Growth:
    """Constant, linear or faster: the local exponent of the best shape's growing part."""
    exponent = _exponent(model.best, model.max_size)
    faster_plausible = any(
        (e := _exponent(s, model.max_size)) is not None and e > 1 + LINEAR_TOLERANCE
        for s in model.plausible
    )
    if exponent is None:
        kind: GrowthKind = "constant"
        words = "does not grow with the input size (within the runs' scatter)"
    elif model.best.shape == "nlogn" or exponent > 1 + LINEAR_TOLERANCE:
        kind = "faster than linear"
        shape = "n log n" if model.best.shape == "nlogn" else f"about size^{exponent:.2f}"
        words = (
            f"grows faster than linear: {shape} (twice the size needs "
            f"{2**exponent:.1f}x the growing part)"
        )
    elif exponent < 1 - LINEAR_TOLERANCE:
        kind = "slower than linear"
        words = f"grows slower than linear: about size^{exponent:.2f}"
    else:
        kind = "linear"
        words = "grows linearly with the input size"
    if kind != "faster than linear" and faster_plausible:
        words += "; faster-than-linear growth is also plausible"
    return Growth(kind, exponent, words)


def _exponent(shape: ShapeFit, size: float) -> float | None:
    """The log-log slope of the growing part at ``size``; None when flat."""
    if shape.term is None:
        return None
    # d ln(x^i * log2(x)^j) / d ln(x) = i + j / ln(x)
    return float(shape.term.exponent) + shape.term.log_power / math.log(max(size, math.e))


def max_size_for(model: Model, memory_bytes: int, force: bool = False) -> MaxSize:
    """The largest size whose recommendation fits ``memory_bytes`` (bisection; it is monotone).

    Every shape's growth terms are non-negative and the floor is the largest peak seen up
    to the size, so the recommendation never falls as the size grows.
    """
    limit = model.max_size * (FORCED_SEARCH_FACTOR if force else REFUSE_EXTRAPOLATION)

    def advice(size: float) -> Prediction:
        return predict(model, size, force=True)

    def need(size: float) -> float:
        try:
            return advice(size).recommended_bytes
        except FitError:  # overflows far out: certainly more than any memory
            return math.inf

    if need(0.0) > memory_bytes:
        return MaxSize(memory_bytes, None, advice(0.0).recommended_bytes, None, False)
    if need(limit) <= memory_bytes:
        return _found(memory_bytes, advice(limit), capped=True, forced=force)
    low, high = 0.0, limit
    while high - low > max(1e-9 * limit, 1e-12):
        middle = (low + high) / 2
        if need(middle) <= memory_bytes:
            low = middle
        else:
            high = middle
    size = _round_down(low, integral=all(float(s).is_integer() for s in model.sizes))
    return _found(memory_bytes, advice(size), capped=False, forced=force)


def _found(memory_bytes: int, p: Prediction, capped: bool, forced: bool) -> MaxSize:
    warnings = list(p.warnings)
    if capped:
        warnings.append(
            f"size {size_text(p.size)} ({p.extrapolation_factor:.3g}x the largest measured) "
            "still fits: "
            + (
                f"the search stops at {FORCED_SEARCH_FACTOR:g}x"
                if forced
                else "memwatch does not extrapolate further without --force; measure larger sizes"
            )
        )
    return MaxSize(
        memory_bytes, p.size, p.recommended_bytes, p.extrapolation_factor, capped, tuple(warnings)
    )


def _round_down(size: float, integral: bool) -> float:
    """Three significant digits, rounded down so the answer still fits: 14237.6 -> 14200."""
    if size <= 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(size)) - 2)
    rounded = math.floor(size / step) * step
    if integral:
        rounded = math.floor(rounded)
    return float(f"{rounded:.12g}")


@dataclass(frozen=True)
class Plan:
    """The planning answers for one fit: budget, a verdict per target size, growth, inverse."""

    budget: Budget
    verdicts: tuple[Verdict, ...]  # one per prediction, in order
    growth: Growth
    max_size: MaxSize | None  # for --max-size-for
    largest_fitting: MaxSize | None  # the largest size within the budget, when a target is not


def plan(
    model: Model,
    predictions: tuple[Prediction, ...] | list[Prediction],
    budget: Budget,
    max_size_memory: int | None = None,
    force: bool = False,
) -> Plan:
    """Judge every prediction against the budget and answer the inverse question if asked."""
    verdicts = tuple(judge(budget, p.recommended_bytes) for p in predictions)
    over = not all(v.fits for v in verdicts)
    return Plan(
        budget=budget,
        verdicts=verdicts,
        growth=growth(model),
        max_size=None if max_size_memory is None else max_size_for(model, max_size_memory, force),
        largest_fitting=max_size_for(model, budget.total_bytes, force) if over else None,
    )
