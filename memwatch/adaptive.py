"""The adaptive sweep's planner: which size to measure next, and when to stop. Pure.

`memwatch sweep --target SIZE` measures nothing it was not asked to: it starts small,
grows the size geometrically, refits after every run, and stops as soon as the
recommendation at the target has settled or the next run would cross a limit. Running
the job is the caller's: ``adaptive_sweep`` is given a ``measure`` function, so the
planner is tested on plain data.

The rules, in the order ``decide`` applies them:

1. The first run is at ``Goal.start`` (``--start``, else 1/32 of the target). Nothing
   is known before it, so it is the one run no prediction protects; keep it small.
2. While every run so far was slow (longer than ``Goal.quick_s``), halve below the
   smallest size: larger sizes would only be slower. Halving stops once a run is quick,
   after MAX_HALVINGS, or when halving no longer shortens a run (start-up dominates).
3. Settled (stop): with SETTLED_SIZES or more sizes, the largest at least 1/SETTLED_DISTANCE
   of the target, the plausible range at the target is within the margin (every shape
   the data allow agrees) AND the recommendation moved by less than the margin with the
   last size (the newest, largest run, the one nearest the target, did not change the
   answer). Either alone is weaker: a narrow range can be the agreement of shapes that
   all share the same wrong floor, and a stable answer can be a stable guess. So with
   the default --max-size (half the target) a sweep always runs up to it; the rule ends
   early a sweep told to go further.
4. Otherwise the next size is the next on the grid start * GROWTH^k, capped at
   ``Goal.max_size`` (the last step lands on it: the largest size tells most about the
   target). The sweep stops before it when that size is above --max-size, when the
   memory it is predicted to need exceeds the memory budget, or when its predicted time
   does not fit in what is left of the time budget. With only one size measured it goes
   down instead, so that there is something to fit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import FitError
from .limits import START_FRACTION
from .model import FEW_SIZES, Measurement, Prediction, duration_at, duration_text, fit, predict
from .report import human_bytes, size_text

# Sizes grow by this factor between runs. The model judges shapes by how the smaller
# sizes predict the larger, on the largest few: at 2x steps five sizes span 16x, and a
# step or a knee between two of them is read as some other growth. Replayed on the 34
# corpus programs, 25 got within 1.0-1.5x of their true peak at 2x steps, 32 at sqrt(2)
# steps; the sweep then costs ~2.5 runs at the target (1.4 at 2x), ~1.7 for long jobs
# whose time is linear in the size.
GROWTH = math.sqrt(2)
# A run is quick when it takes at most QUICK_S, and at most this share of a time budget.
QUICK_S = 10.0
QUICK_SHARE = 0.05
MAX_HALVINGS = 4
# Halving must shorten a run to at least this share of the one before, or time is not
# in the size (interpreter start-up, imports) and smaller sizes only cost runs.
HALVING_PAYS = 0.75
# The fewest distinct sizes whose fit may count as settled: the model's own (below it,
# it warns that the shape of growth is a guess).
SETTLED_SIZES = FEW_SIZES
# An answer settles only from this close to the target. At up to 4x (the model's own
# warning distance) a multiprocess job of the corpus settled at 1/2.8 of its target on a
# confidently wrong log shape: 0.65x its true peak; run up to half the target it got
# 1.07x (benchmarks/adaptive_sweep.py --replay).
SETTLED_DISTANCE = 2.0
# With one size measured, the next run's memory is assumed to grow as size^2: the
# steepest growth the model accepts without evidence (its STEEP_GROWTH).
UNSEEN_EXPONENT = 2.0
# A last step to --max-size shorter than this adds a run that says little.
MIN_STEP = 1.1


@dataclass(frozen=True)
class Goal:
    """What the sweep is for (the target size) and what it may spend getting there."""

    target: float
    start: float
    max_size: float
    margin: float
    memory_budget_bytes: int
    time_budget_s: float | None = None
    integral: bool = True  # sizes go into the command as whole numbers

    def size_text(self, size: float) -> str:
        """A size as it goes into the command: whole when the user's sizes were whole."""
        if self.integral:
            return size_text(float(max(1, math.floor(size + 0.5))))
        return size_text(float(f"{size:.6g}"))

    @property
    def quick_s(self) -> float:
        """The longest run that still counts as quick."""
        if self.time_budget_s is None:
            return QUICK_S
        return min(QUICK_S, QUICK_SHARE * self.time_budget_s)


@dataclass(frozen=True)
class Run:
    """One measured run as the planner sees it: the size as run, its peak, whether it ended well."""

    size_text: str
    measurement: Measurement
    ok: bool = True

    @property
    def size(self) -> float:
        return self.measurement.size


@dataclass(frozen=True)
class Next:
    """Measure ``size_text`` next, and why; what it is expected to cost where known."""

    size_text: str
    reason: str
    duration_s: float | None = None
    memory_bytes: int | None = None

    @property
    def size(self) -> float:
        return float(self.size_text)

    def text(self) -> str:
        costs = [f"next run ~{duration_text(self.duration_s)}"] if self.duration_s else []
        costs += [f"~{human_bytes(self.memory_bytes)}"] if self.memory_bytes else []
        return f"size {self.size_text} next: " + ", ".join([self.reason, *costs])


@dataclass(frozen=True)
class Stop:
    """The sweep ends here, and why; ``settled`` when the answer at the target is stable."""

    reason: str
    settled: bool = False

    def text(self) -> str:
        return f"stopping: {self.reason}"


Choice = Next | Stop


@dataclass(frozen=True)
class Outcome:
    """Every run of the sweep, in order, and why it stopped."""

    runs: tuple[Run, ...]
    stop: Stop


def adaptive_sweep(
    goal: Goal,
    measure: Callable[[str], Sequence[Run]],
    on_choice: Callable[[Choice], None] = lambda choice: None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Decide, measure, refit, until ``decide`` says stop.

    ``measure(size_text)`` runs the job at one size and returns its runs (several with
    repeats; none when it was stopped before one was measured); ``on_choice`` hears every
    decision (the CLI prints it); ``clock`` measures the time spent against the budget.
    """
    started = clock()
    runs: list[Run] = []
    while True:
        choice = decide(goal, runs, clock() - started)
        on_choice(choice)
        if isinstance(choice, Stop):
            return Outcome(tuple(runs), choice)
        measured = measure(choice.size_text)
        if not measured:  # stopped before its first fitted run (a signal in the warm-up)
            stop = Stop(f"no run at size {choice.size_text} was measured")
            on_choice(stop)
            return Outcome(tuple(runs), stop)
        runs += measured


def decide(goal: Goal, runs: Sequence[Run], elapsed_s: float) -> Choice:
    """The next size to measure, or why to stop (the rules in this module's docstring)."""
    if not runs:
        default = goal.start == goal.target * START_FRACTION
        return Next(
            goal.size_text(goal.start),
            "first run, at 1/32 of the target" if default else "first run, at --start",
        )
    failed = [r for r in runs if not r.ok]
    if failed:
        return Stop(
            f"the run at size {failed[0].size_text} failed: a larger size would not do better; "
            "the runs before it are fitted"
        )
    halving = _halving(goal, runs)
    if halving is not None:
        return halving
    sizes = sorted({r.size for r in runs})
    measurements = [r.measurement for r in runs]
    settled, why = _settled(goal, measurements, sizes)
    if settled:
        return Stop(why, settled=True)
    up = _next_up(goal, sizes)
    if up is None:
        return _down_or_stop(
            goal,
            runs,
            elapsed_s,
            f"the next size would be above --max-size {size_text(goal.max_size)}",
        )
    memory = _memory_at(goal, runs, float(up))
    if memory > goal.memory_budget_bytes:
        return _down_or_stop(
            goal,
            runs,
            elapsed_s,
            f"size {up} would need ~{human_bytes(memory)}, more than the memory budget "
            f"{human_bytes(goal.memory_budget_bytes)}",
        )
    duration = duration_at(measurements, float(up))
    over = _over_time(goal, elapsed_s, duration)
    if over:
        return _down_or_stop(goal, runs, elapsed_s, f"size {up} {over}")
    return Next(up, why, duration, memory)


def _settled(
    goal: Goal, measurements: Sequence[Measurement], sizes: Sequence[float]
) -> tuple[bool, str]:
    """Whether the answer at the target has settled (rule 3), and why or why not."""
    now = _at_target(goal, measurements)
    if now is None:
        return False, "one size cannot be fitted"
    spread = now.high_bytes / now.low_bytes if now.low_bytes else math.inf
    if len(sizes) < SETTLED_SIZES:
        # Two sizes rule nothing out: their range says nothing yet.
        shown = f" (range at the target {spread:.2f}x)" if len(sizes) > 2 else ""
        return False, f"{len(sizes)} sizes are too few to judge the shape{shown}"
    if spread > 1 + goal.margin:
        return False, f"range at the target still {spread:.2f}x"
    before = _at_target(goal, [m for m in measurements if m.size < sizes[-1]])
    moved = abs(now.recommended_bytes / before.recommended_bytes - 1) if before else math.inf
    if moved > goal.margin:
        return False, f"the last run moved the recommendation at the target {moved:.0%}"
    distance = goal.target / sizes[-1]
    if distance > SETTLED_DISTANCE:
        return False, (
            f"the answer holds still, but {distance:.1f}x below the target (it settles "
            f"from 1/{SETTLED_DISTANCE:g} of it)"
        )
    return True, (
        f"settled: the plausible range at the target is {spread:.2f}x (within the "
        f"{goal.margin:.0%} margin) and the last run moved the recommendation {moved:.0%}"
    )


def _halving(goal: Goal, runs: Sequence[Run]) -> Next | None:
    """Halve below the smallest size while every run so far was slow (rule 2)."""
    fastest = _fastest(runs)
    if any(d <= goal.quick_s for d in fastest.values()) or len(fastest) > MAX_HALVINGS:
        return None
    sizes = sorted(fastest)
    if len(sizes) > 1 and fastest[sizes[0]] > HALVING_PAYS * fastest[sizes[1]]:
        return None  # the last halving did not shorten the run: time is not in the size
    half = goal.size_text(sizes[0] / 2)
    if float(half) >= sizes[0] or float(half) <= 0:
        return None
    return Next(
        half,
        f"the run at size {size_text(sizes[0])} took {duration_text(fastest[sizes[0]])}, "
        f"more than a quick {duration_text(goal.quick_s)}: halving down",
        fastest[sizes[0]] / 2,
    )


def _fastest(runs: Sequence[Run]) -> dict[float, float]:
    """The shortest run of each size (the least disturbed by other load)."""
    fastest: dict[float, float] = {}
    for r in runs:
        if r.measurement.duration_s is not None:
            fastest[r.size] = min(fastest.get(r.size, math.inf), r.measurement.duration_s)
    return fastest


def _down_or_stop(goal: Goal, runs: Sequence[Run], elapsed_s: float, why: str) -> Choice:
    """Stop for ``why``, unless only one size was measured: then halve, to have a fit."""
    sizes = sorted({r.size for r in runs})
    if len(sizes) > 1:
        return Stop(why)
    half = goal.size_text(sizes[0] / 2)
    duration = duration_at([r.measurement for r in runs], float(half))
    if float(half) >= sizes[0] or float(half) <= 0 or _over_time(goal, elapsed_s, duration):
        return Stop(f"{why}, and one size cannot be fitted")
    return Next(half, f"{why}; a second, smaller size gives a fit", duration)


def _over_time(goal: Goal, elapsed_s: float, duration_s: float | None) -> str | None:
    if goal.time_budget_s is None or duration_s is None:
        return None
    left = goal.time_budget_s - elapsed_s
    if duration_s <= left:
        return None
    return (
        f"would take ~{duration_text(duration_s)}, more than the "
        f"{duration_text(max(left, 0.0))} left of --time-budget"
    )


def _next_up(goal: Goal, sizes: Sequence[float]) -> str | None:
    """The next size on the grid start * GROWTH^k above the largest, capped at --max-size."""
    largest = sizes[-1]
    k = 0
    while float(goal.size_text(goal.start * GROWTH**k)) <= largest:
        k += 1  # a loop, not a logarithm: whole-number sizes round onto each other near 1
    up = float(goal.size_text(goal.start * GROWTH**k))
    if up > goal.max_size:
        up = math.floor(goal.max_size) if goal.integral else goal.max_size
        if up < largest * MIN_STEP:
            return None
    return size_text(up)


def _at_target(goal: Goal, measurements: Sequence[Measurement]) -> Prediction | None:
    """The advice at the target from these runs; None when they cannot be fitted yet."""
    if len({m.size for m in measurements}) < 2:
        return None
    try:
        return predict(fit(measurements, margin=goal.margin), goal.target, force=True)
    except FitError:
        return None


def _memory_at(goal: Goal, runs: Sequence[Run], size: float) -> int:
    """What a run at ``size`` is expected to need at most: the top of the plausible range
    and the recommendation, or the largest peak grown as size^2 when one size is known."""
    measurements = [r.measurement for r in runs]
    largest = max(measurements, key=lambda m: (m.size, m.peak_bytes))
    if len({m.size for m in measurements}) < 2:
        return round(largest.peak_bytes * math.pow(size / largest.size, UNSEEN_EXPONENT))
    try:
        p = predict(fit(measurements, margin=goal.margin), size, force=True)
    except FitError:
        return 2**63  # it overflows: more than any machine has
    return int(max(p.recommended_bytes, p.high_bytes))
