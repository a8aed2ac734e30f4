"""The adaptive sweep's planner on plain data: a fake measure function, a fake clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from memwatch.adaptive import Goal, Next, Run, Stop, adaptive_sweep, decide
from memwatch.model import Measurement, duration_at, fit, predict

MiB = 2**20
GiB = 2**30


class FakeJob:
    """A job whose peak and run time follow given functions of the size; counts its time."""

    def __init__(
        self,
        peak: Callable[[float], float],
        seconds: Callable[[float], float] = lambda s: 0.5 + s / 1000,
        fails_at: float | None = None,
    ) -> None:
        self.peak = peak
        self.seconds = seconds
        self.fails_at = fails_at
        self.now = 0.0
        self.sizes: list[str] = []

    def measure(self, size_text: str) -> list[Run]:
        size = float(size_text)
        self.sizes.append(size_text)
        duration = self.seconds(size)
        self.now += duration
        m = Measurement(size, round(self.peak(size)), duration_s=duration)
        return [Run(size_text, m, ok=size != self.fails_at)]

    def sweep(self, goal: Goal) -> tuple[list[Run], Stop, list[Next | Stop]]:
        choices: list[Next | Stop] = []
        outcome = adaptive_sweep(goal, self.measure, choices.append, clock=lambda: self.now)
        return list(outcome.runs), outcome.stop, choices


def goal(target: float = 3200, **changes: object) -> Goal:
    fields: dict[str, object] = dict(
        target=target,
        start=target / 32,
        max_size=target / 2,
        margin=0.1,
        memory_budget_bytes=64 * GiB,
    )
    fields.update(changes)
    return Goal(**fields)  # type: ignore[arg-type]


def advice_ratio(job: FakeJob, runs: list[Run], target: float) -> float:
    """Recommended / true peak at the target, from the runs the sweep made."""
    model = fit([r.measurement for r in runs if r.ok], margin=0.1)
    return predict(model, target, force=True).recommended_bytes / job.peak(target)


SHAPES = {
    "linear": lambda s: 100 * MiB + s * MiB / 4,
    "quadratic": lambda s: 60 * MiB + 40 * s * s,
    "knee": lambda s: max(400 * MiB, 50 * MiB + s * MiB / 2),
    "nlogn": lambda s: 80 * MiB + 2000 * s * math.log2(s),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_is_covered_at_the_target_without_running_above_half_of_it(shape):
    job = FakeJob(SHAPES[shape])
    runs, stop, _ = job.sweep(goal())
    assert all(float(s) <= 1600 for s in job.sizes)
    assert job.sizes[0] == "100"  # target / 32
    assert len({r.size for r in runs}) >= 4, stop
    assert 1.0 <= advice_ratio(job, runs, 3200) <= 1.5


def test_noisy_peaks_are_still_covered_at_the_target():
    noise = random.Random(7)
    job = FakeJob(lambda s: (200 * MiB + s * MiB / 8) * (1 + noise.uniform(-0.04, 0.04)))
    runs, _, _ = job.sweep(goal())
    truth = 200 * MiB + 3200 * MiB / 8
    model = fit([r.measurement for r in runs], margin=0.1)
    ratio = predict(model, 3200, force=True).recommended_bytes / truth
    assert 1.0 <= ratio <= 1.5
    assert all(float(s) <= 1600 for s in job.sizes)


def test_sizes_grow_by_sqrt2_from_the_start_and_never_pass_max_size():
    job = FakeJob(SHAPES["knee"])
    job.sweep(goal(3000, start=30, max_size=1000))
    assert job.sizes[:5] == ["30", "42", "60", "85", "120"]
    assert all(float(s) <= 1000 for s in job.sizes)


def test_the_last_step_is_capped_at_max_size():
    job = FakeJob(lambda s: 100 * MiB + 1000 * s**1.5)
    job.sweep(goal(1000, start=200, max_size=500))
    assert job.sizes == ["200", "283", "400", "500"]  # 566 capped


@pytest.mark.parametrize("target", [7, 100, 999, 3200, 1e6])
def test_max_size_is_never_exceeded_whatever_the_target(target):
    for shape in SHAPES.values():
        job = FakeJob(shape, seconds=lambda s: 0.3)
        job.sweep(goal(target, start=max(1.0, target / 32)))
        assert job.sizes and all(float(s) <= target / 2 for s in job.sizes), job.sizes


def test_a_larger_max_size_is_used_only_when_given():
    job = FakeJob(lambda s: 50 * MiB + 3000 * s**1.7)
    job.sweep(goal(3200, max_size=3200, margin=0.0))  # no margin: it never settles
    assert max(float(s) for s in job.sizes) > 1600


def test_a_failed_run_stops_the_sweep_there():
    job = FakeJob(SHAPES["linear"], fails_at=400)
    runs, stop, _ = job.sweep(goal())
    assert job.sizes == ["100", "141", "200", "283", "400"]
    assert not stop.settled and "size 400 failed" in stop.reason
    assert [r.ok for r in runs] == [True, True, True, True, False]


def test_the_time_budget_stops_before_a_run_that_would_not_fit():
    job = FakeJob(SHAPES["linear"], seconds=lambda s: s / 40)  # 2.5 s at 100, 40 s at 1600
    runs, stop, _ = job.sweep(goal(time_budget_s=60))
    assert job.now <= 60
    assert "--time-budget" in stop.reason
    # 2.5 + 3.5 + 5 + 7.1 + 10 + 14.1 = 42.2 s; 800 would take 20 s more.
    assert job.sizes == ["100", "141", "200", "283", "400", "566"]


def test_with_a_time_budget_quick_is_a_twentieth_of_it():
    job = FakeJob(SHAPES["linear"], seconds=lambda s: s / 20)  # 5 s at 100: > 60 s / 20
    job.sweep(goal(time_budget_s=60))
    assert job.sizes[:3] == ["100", "50", "141"]


def test_slow_runs_halve_down_until_one_is_quick_then_grow_past_the_first():
    job = FakeJob(SHAPES["linear"], seconds=lambda s: s / 10)  # 32 s at the start size 320
    job.sweep(goal(10240))
    # 320 took 32 s, 160 took 16 s (> a quick 10 s), 80 took 8 s: quick; then up from 320.
    assert job.sizes[:4] == ["320", "160", "80", "453"]
    assert all(float(s) <= 5120 for s in job.sizes)


def test_halving_stops_when_it_no_longer_shortens_the_runs():
    job = FakeJob(SHAPES["linear"], seconds=lambda s: 30 + s / 1000)  # start-up dominates
    job.sweep(goal())
    assert job.sizes[:3] == ["100", "50", "141"]


def test_the_memory_budget_stops_before_a_run_predicted_to_exceed_it():
    job = FakeJob(SHAPES["linear"])  # 125 MiB at 100 .. 500 MiB at 1600
    runs, stop, choices = job.sweep(goal(memory_budget_bytes=300 * MiB))
    assert "memory budget" in stop.reason
    assert max(r.measurement.peak_bytes for r in runs) <= 300 * MiB
    planned = [c.memory_bytes for c in choices if isinstance(c, Next) and c.memory_bytes]
    assert planned and all(m <= 300 * MiB for m in planned)


def test_a_settled_answer_stops_a_sweep_told_to_go_beyond_half_the_target():
    job = FakeJob(SHAPES["linear"])
    runs, stop, choices = job.sweep(goal(max_size=3200))
    assert stop.settled, stop.reason
    assert 1600 <= max(r.size for r in runs) < 3200
    assert 1.0 <= advice_ratio(job, runs, 3200) <= 1.5
    # Below half the target a still answer is not yet settled.
    early = [c for c in choices if isinstance(c, Next) and "holds still" in c.reason]
    assert early and all(c.size <= 1600 for c in early)


def test_whole_number_sizes_for_whole_targets_and_decimals_otherwise():
    job = FakeJob(SHAPES["linear"])
    job.sweep(goal(1000, start=1000 / 32))
    assert all(s.isdigit() for s in job.sizes), job.sizes
    job = FakeJob(lambda s: 100 * MiB + s * 10 * MiB)
    job.sweep(goal(10.5, start=10.5 / 32, integral=False))
    assert job.sizes[0] == "0.328125" and all(float(s) <= 5.25 for s in job.sizes)


def test_with_one_size_allowed_the_sweep_goes_down_to_have_a_fit():
    job = FakeJob(SHAPES["linear"])
    runs, _, _ = job.sweep(goal(start=1600))
    assert job.sizes[:2] == ["1600", "800"]


def test_each_choice_says_why_and_what_the_next_run_costs():
    job = FakeJob(SHAPES["linear"])
    _, _, choices = job.sweep(goal())
    first, second, third = choices[:3]
    assert first.text() == "size 100 next: first run, at 1/32 of the target"
    assert second.text().startswith("size 141 next: one size cannot be fitted, next run ~")
    assert "sizes are too few to judge the shape" in third.text() and "MiB" in third.text()
    assert isinstance(choices[-1], Stop) and choices[-1].text().startswith("stopping: ")


def test_a_size_that_measured_nothing_ends_the_sweep():
    job = FakeJob(SHAPES["linear"])
    calls = []

    def stopped_at_the_third(size_text: str) -> list[Run]:
        calls.append(size_text)
        return [] if len(calls) == 3 else job.measure(size_text)

    outcome = adaptive_sweep(goal(), stopped_at_the_third)
    assert calls == ["100", "141", "200"] and len(outcome.runs) == 2
    assert outcome.stop.reason == "no run at size 200 was measured"


def test_decide_with_no_runs_starts_at_the_start_size():
    choice = decide(goal(start=7), [], 0.0)
    assert isinstance(choice, Next) and choice.size_text == "7"
    assert choice.reason == "first run, at --start"


def test_duration_estimate_grows_at_least_linearly():
    runs = [Measurement(100, MiB, duration_s=1.0), Measurement(200, MiB, duration_s=1.1)]
    # Start-up makes these look flat (exponent 0.14); the estimate grows linearly instead.
    assert duration_at(runs, 800) == pytest.approx(math.sqrt(1.1) * 800 / math.sqrt(100 * 200))
    quadratic = [Measurement(s, MiB, duration_s=(s / 100) ** 2) for s in (100, 200, 300, 400)]
    assert duration_at(quadratic, 800) == pytest.approx(64.0)
    # Only the four largest sizes count: the flat start-up of 10 and 20 is left out.
    early = [Measurement(10, MiB, duration_s=0.9), Measurement(20, MiB, duration_s=0.9)]
    assert duration_at(early + quadratic, 800) == pytest.approx(64.0)
    assert duration_at([Measurement(1, MiB)], 2) is None
