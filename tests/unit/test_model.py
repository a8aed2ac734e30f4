"""The model on synthetic data with known shapes and noise."""

import math

import numpy as np
import pytest

from memwatch.errors import ExtrapolationRefused, FitError
from memwatch.model import Measurement, ShapeFit, fit, predict

MiB = 2**20

SHAPES = {
    "constant": (lambda n: 80 * MiB + 0 * n, [1, 2, 3, 4, 5]),
    "linear": (lambda n: 50 * MiB + 8_000 * n, [1000, 2000, 3000, 4000, 5000]),
    "nlogn": (lambda n: 30 * MiB + 8 * n * math.log2(n), [1e5, 2e5, 3e5, 4e5, 5e5]),
    "power 1.5": (lambda n: 30 * MiB + 800 * n**1.5, [1000, 2000, 3000, 4000, 5000]),
    "quadratic": (lambda n: 30 * MiB + 8 * n * n, [500, 1000, 1500, 2000, 2500]),
}


def measured(truth, sizes, noise=0.0, repeats=1, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Measurement(float(s), round(truth(s) * (1 + noise * rng.standard_normal())))
        for s in sizes
        for _ in range(repeats)
    ]


@pytest.mark.parametrize(
    "truth, sizes, shape",
    [
        (SHAPES["constant"][0], SHAPES["constant"][1], "constant"),
        (SHAPES["linear"][0], SHAPES["linear"][1], "linear"),
        (SHAPES["quadratic"][0], SHAPES["quadratic"][1], "quadratic"),
        (lambda n: 10 * MiB + 5000 * n**1.7, [100, 200, 300, 400, 500], "power"),
    ],
)
def test_exact_data_finds_its_own_shape_and_predicts_it(truth, sizes, shape):
    model = fit(measured(truth, sizes))
    # Simpler shapes win ties: exact linear data is also an exact power law with k=1.
    assert model.best.shape == shape
    p = predict(model, 4 * max(sizes))
    assert p.expected_bytes == pytest.approx(truth(4 * max(sizes)), rel=1e-3)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("seed", range(10))
def test_envelope_covers_the_truth_under_one_percent_noise(name, seed):
    truth, sizes = SHAPES[name]
    model = fit(measured(truth, sizes, noise=0.01, seed=seed))
    for factor in (2, 4, 8):
        target = factor * max(sizes)
        p = predict(model, target)
        assert p.recommended_bytes >= truth(target), (name, factor, model.plausible)


def test_super_linear_growth_rules_out_the_straight_line():
    truth, sizes = SHAPES["quadratic"]
    model = fit(measured(truth, sizes, noise=0.01))
    assert "linear" not in {s.shape for s in model.plausible}
    assert {"constant", "linear"} <= {s.shape for s in model.shapes if not s.plausible}


def test_recommendation_is_the_highest_plausible_fit_plus_margin():
    truth, sizes = SHAPES["linear"]
    model = fit(measured(truth, sizes, noise=0.01, seed=3), margin=0.25)
    p = predict(model, 20_000)
    # Each plausible shape counts with its full fit and its fits with one size left out.
    curves = [(s.shape, params) for s in model.plausible for params in (s.params, *s.loo_params)]
    highest = max(ShapeFit(shape, params, None).predict(20_000) for shape, params in curves)
    assert highest > max(s.predict(20_000) for s in model.plausible)
    assert p.high_bytes == round(highest)
    assert p.recommended_bytes == math.ceil(highest * 1.25)
    assert p.low_bytes <= p.expected_bytes <= p.high_bytes


def test_never_below_the_largest_peak_seen_at_or_below_the_size():
    # Peaks that shrink with size: the fit is flat, but 120 MiB was seen at size 1.
    data = [Measurement(1, 120 * MiB), Measurement(2, 100 * MiB), Measurement(3, 90 * MiB)]
    model = fit(data)
    assert all(v >= 0 for s in model.shapes for v in s.params[1:2])
    assert predict(model, 6, force=True).recommended_bytes >= math.ceil(120 * MiB * 1.1)


def test_growth_terms_are_never_negative():
    # Concave data would pull a free quadratic term negative and bend it down beyond 4.
    data = measured(lambda n: 100 * MiB * math.sqrt(n), [1, 2, 3, 4, 5])
    quadratic = next(s for s in fit(data).shapes if s.shape == "quadratic")
    assert quadratic.params[1] >= 0 and quadratic.params[2] >= 0


def test_repeats_give_a_noise_estimate_that_widens_the_bound_and_warns():
    truth, sizes = SHAPES["linear"]
    quiet = fit(measured(truth, sizes, noise=0.001, repeats=3))
    noisy = fit(measured(truth, sizes, noise=0.08, repeats=3, seed=0))
    assert quiet.noise is not None and quiet.noise < 0.01
    assert noisy.noise is not None and 0.04 < noisy.noise < 0.15
    assert any("repeats at the same size differ" in w for w in noisy.warnings)
    assert not any("repeats" in w for w in quiet.warnings)
    p = predict(noisy, 10_000)
    assert p.high_bytes >= round(max(s.predict(10_000) for s in noisy.plausible) * 1.08)


def test_no_repeats_means_no_noise_estimate():
    truth, sizes = SHAPES["linear"]
    assert fit(measured(truth, sizes)).noise is None


def test_fewer_than_five_sizes_warns_and_two_cannot_test_faster_growth():
    truth, _ = SHAPES["linear"]
    four = fit(measured(truth, [1, 2, 3, 4]))
    assert any("only 4 distinct sizes" in w for w in four.warnings)
    two = fit(measured(truth, [1, 2]))
    assert {s.shape for s in two.shapes} == {"constant", "linear", "nlogn"}
    assert any("faster-than-linear growth could not be tested" in w for w in two.warnings)
    five = fit(measured(truth, [1, 2, 3, 4, 5]))
    assert not any("distinct sizes" in w for w in five.warnings)


def test_shapes_too_flexible_to_leave_a_size_out_stay_plausible():
    truth, _ = SHAPES["linear"]
    model = fit(measured(truth, [1000, 2000, 3000]))
    unscored = {s.shape: s for s in model.shapes if s.loo_error is None}
    assert set(unscored) == {"power", "quadratic"}
    assert all(s.plausible for s in unscored.values())


def test_x_log_x_needs_sizes_of_at_least_one():
    truth, _ = SHAPES["linear"]
    assert "nlogn" not in {s.shape for s in fit(measured(truth, [0.1, 0.2, 0.3])).shapes}


def test_swapping_runs_are_named_in_a_warning():
    data = [Measurement(1, 10 * MiB), Measurement(2, 20 * MiB, swap_suspected=True)]
    assert any("suspected swapping" in w and "size 2" in w for w in fit(data).warnings)


def test_extrapolation_beyond_4x_warns_and_beyond_16x_is_refused_without_force():
    truth, sizes = SHAPES["linear"]
    model = fit(measured(truth, sizes))
    assert not any("extrapolating" in w for w in predict(model, 20_000).warnings)
    p = predict(model, 20_001)
    assert p.extrapolation_factor == pytest.approx(4.0002)
    assert any("extrapolating 4.0x beyond" in w for w in p.warnings)
    predict(model, 80_000)  # exactly 16x is allowed
    with pytest.raises(ExtrapolationRefused, match=r"16.0x the largest measured size .*--force"):
        predict(model, 80_001)
    assert any("extrapolating" in w for w in predict(model, 1e6, force=True).warnings)


def test_disagreeing_shapes_warn_with_each_figure():
    # Three sizes: the quadratic and power fits cannot be ruled out and diverge far out.
    truth, _ = SHAPES["quadratic"]
    model = fit(measured(truth, [500, 1000, 1500], noise=0.02, seed=2))
    p = predict(model, 6000)
    assert any("plausible shapes disagree" in w for w in p.warnings)


@pytest.mark.parametrize(
    "data, message",
    [
        ([Measurement(5, MiB), Measurement(5, 2 * MiB)], "2 or more distinct sizes"),
        ([Measurement(1, MiB)], "got 1"),
        ([], "got 0"),
        ([Measurement(1, MiB), Measurement(2, 0)], "peak must be between 1 byte"),
        ([Measurement(-1, MiB), Measurement(2, MiB)], "size must be a finite number"),
        ([Measurement(math.nan, MiB), Measurement(2, MiB)], "size must be a finite number"),
    ],
)
def test_unfittable_input_is_a_fit_error(data, message):
    with pytest.raises(FitError, match=message):
        fit(data)


def test_parameters_read_as_words():
    model = fit(measured(lambda n: 96 * MiB + 800_000 * n, [1, 2, 3, 4, 5]))
    assert model.best.describe() == "96.0 MiB + 781.2 KiB per unit of size"
    tiny = fit(measured(lambda n: 10 * MiB + 0.5 * n, [1e6, 2e6, 3e6, 4e6, 5e6]))
    assert tiny.best.describe() == "10.0 MiB + 0.5 B per unit of size"


# Peaks measured by benchmarks/fit_accuracy.py (cgroup peaks, one run per train size; the
# held-out peak is the largest of 3 runs): (train runs, held-out runs at 2x, 4x, 8x).
REAL_RUNS = {
    "linear": (
        [
            (500000, 45912064),
            (1000000, 74432512),
            (1500000, 102834176),
            (2000000, 131350528),
            (2500000, 160075776),
        ],
        [(5000000, 302841856), (10000000, 588296192), (20000000, 1159700480)],
    ),
    "nlogn": (
        [
            (250000, 51240960),
            (500000, 89112576),
            (750000, 129163264),
            (1000000, 169103360),
            (1250000, 211005440),
        ],
        [(2500000, 424456192), (5000000, 871948288), (10000000, 1806651392)],
    ),
    "quadratic": (
        [(400, 41619456), (800, 47558656), (1200, 56877056), (1600, 70602752), (2000, 87883776)],
        [(4000, 232247296), (8000, 809590784), (16000, 3118030848)],
    ),
    "fillin": (
        [(20, 36507648), (40, 37834752), (60, 39841792), (80, 43384832), (100, 48054272)],
        [(200, 93618176), (400, 305156096), (800, 1278668800)],
    ),
    "dense": (
        [(100, 17661952), (200, 19623936), (300, 21794816), (400, 25411584), (500, 29224960)],
        [(1000, 61337600), (2000, 184385536), (4000, 670433280)],
    ),
    "streaming": (
        [(10, 9535488), (20, 9535488), (30, 9592832), (40, 9297920), (50, 9535488)],
        [(100, 9535488), (200, 9416704), (400, 9535488)],
    ),
    "baseline": (
        [(100, 64016384), (200, 64413696), (300, 64430080), (400, 64679936), (500, 64671744)],
        [(1000, 65114112), (2000, 65933312), (4000, 68059136)],
    ),
    "upscale": (
        [(1, 37879808), (2, 39575552), (3, 43184128), (4, 47296512), (5, 52445184)],
        [(10, 96751616), (20, 274259968), (40, 983461888)],
    ),
}


@pytest.mark.parametrize("workload", sorted(REAL_RUNS))
def test_real_workloads_are_never_under_provisioned(workload):
    train, held_out = REAL_RUNS[workload]
    model = fit([Measurement(size, peak) for size, peak in train])
    for size, truth in held_out:
        p = predict(model, size)
        assert truth <= p.recommended_bytes <= 1.6 * truth, (size, p, model.plausible)
        assert (p.extrapolation_factor <= 4) == (not any("extrapolating" in w for w in p.warnings))


def test_growth_the_runs_do_not_show_is_not_extrapolated():
    # A streaming job: flat within 0.2 %. A curve fitted to that scatter with k -> 3
    # would recommend gigabytes at 8x; a straight line through it only its slope x 8.
    truth, sizes = SHAPES["constant"]
    model = fit(measured(truth, sizes, noise=0.002, seed=4))
    seen = max(m.peak_bytes for m in model.measurements)
    curved = [s for s in model.shapes if s.shape in ("quadratic", "power")]
    assert curved and all(s.predict(40) <= 1.01 * seen for s in curved)
    assert predict(model, 40).recommended_bytes <= 1.25 * truth(40)


def test_two_sizes_see_their_growth():
    model = fit([Measurement(1, 10**9), Measurement(2, 2 * 10**9)])
    assert predict(model, 8).recommended_bytes >= 8 * 10**9


def test_a_small_slope_under_noise_is_not_flattened():
    truth = lambda n: 500e6 + 2500 * n  # noqa: E731
    model = fit(measured(truth, [1000, 2000, 3000, 4000, 5000], noise=0.01, repeats=3, seed=7))
    assert predict(model, 80000, force=True).recommended_bytes >= truth(80000)


def test_failed_runs_set_a_floor_and_a_warning():
    runs = [Measurement(n, 10 * MiB + n * MiB) for n in (1, 2, 3, 4, 5)]
    model = fit(runs, lower_bounds=[Measurement(8, 408 * MiB)])
    assert predict(model, 8).recommended_bytes >= 408 * MiB * 1.1
    assert predict(model, 7).recommended_bytes < 408 * MiB  # below its size it is no floor
    assert any("size 8 failed after using 408.0 MiB" in w for w in model.warnings)


def test_sizes_too_large_for_floating_point_are_one_fit_error():
    with pytest.raises(FitError, match="overflow"):
        fit([Measurement(10.0**k, MiB * k) for k in (200, 250, 300, 305, 308)])


def test_the_fitted_exponent_stays_at_or_below_cubic():
    model = fit(measured(lambda n: 10 * MiB + n**4, [10, 20, 30, 40, 50]))
    power = next(s for s in model.shapes if s.shape == "power")
    assert power.params[2] <= 3.0
