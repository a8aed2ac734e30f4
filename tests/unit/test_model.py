"""The model on synthetic data with known shapes and noise."""

import math

import numpy as np
import pytest

from memwatch.errors import ExtrapolationRefused, FitError
from memwatch.model import Measurement, fit, predict

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
        (lambda n: 10 * MiB + 5000 * n**1.5, [100, 200, 300, 400, 500], "x^(3/2)"),
        (lambda n: 10 * MiB + 50 * n * math.log2(n), [1e4, 2e4, 3e4, 4e4, 5e4], "nlogn"),
    ],
)
def test_exact_data_finds_its_own_shape_and_predicts_it(truth, sizes, shape):
    model = fit(measured(truth, sizes))
    assert model.best.shape == shape
    p = predict(model, 4 * max(sizes))
    assert p.expected_bytes == pytest.approx(truth(4 * max(sizes)), rel=1e-3)
    # A fit that predicted its own larger sizes exactly gets the user's margin, no more.
    assert p.recommended_bytes == pytest.approx(p.expected_bytes * 1.1, rel=1e-3)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("seed", range(10))
def test_recommendation_covers_the_truth_under_one_percent_noise(name, seed):
    truth, sizes = SHAPES[name]
    model = fit(measured(truth, sizes, noise=0.01, seed=seed))
    for factor in (2, 4, 8):
        target = factor * max(sizes)
        p = predict(model, target)
        assert p.recommended_bytes >= truth(target), (name, factor, model.best)


def test_super_linear_growth_rules_out_the_straight_line():
    truth, sizes = SHAPES["quadratic"]
    model = fit(measured(truth, sizes, noise=0.01))
    assert {"constant", "linear"}.isdisjoint(s.shape for s in model.plausible)
    assert {"constant", "linear"} <= {s.shape for s in model.shapes if not s.plausible}


def test_growth_faster_than_quadratic_is_taken_when_the_data_show_it():
    model = fit(measured(lambda n: 20 * MiB + 2 * n**3, [100, 141, 200, 283, 400]))
    assert model.best.shape == "cubic"
    assert predict(model, 1600).recommended_bytes >= 20 * MiB + 2 * 1600**3


def test_steep_growth_on_three_growing_sizes_is_not_taken():
    # The pandas merge of issue 9: a floor, then three sizes that curve up. Only x^3 was
    # plausible to 0.1.0 (62.5 GiB for a 1.7 GiB job at 8x); growth above x^2 needs
    # more forward predictions than three growing sizes give.
    runs = [Measurement(s, p * MiB) for s, p in ((0.5, 142), (1, 150), (1.5, 185), (2, 251))]
    model = fit(runs)
    assert model.best.growth_order <= 2
    # Not ruled out either: the range says how far apart the shapes are, and what to run.
    p = predict(model, 16)
    assert any(s.growth_order > 2 for s in model.plausible)
    assert p.next_run is not None and any("plausible range" in w for w in p.warnings)


def test_a_floor_the_small_sizes_fit_inside_is_not_read_as_growth():
    # 150 MiB until the work outgrows it, then 40 MiB + 60 B per unit: a knee.
    truth = lambda n: max(150 * MiB, 40 * MiB + 60 * n)  # noqa: E731
    sizes = [1e6, 1.41e6, 2e6, 2.83e6, 4e6]
    model = fit(measured(truth, sizes, noise=0.002, repeats=3, seed=1))
    assert model.floor_sizes == 2
    assert model.best.shape == "knee linear"
    assert any("2 smallest sizes sit on a floor of 150." in w for w in model.warnings)
    for target in (8e6, 16e6, 32e6):
        assert truth(target) <= predict(model, target).recommended_bytes <= 1.3 * truth(target)


def test_curved_growth_is_not_mistaken_for_a_floor():
    truth, sizes = SHAPES["quadratic"]
    assert fit(measured(truth, sizes, noise=0.01, seed=3)).floor_sizes == 0


def test_recommendation_widens_with_the_fits_own_forward_misses():
    # Growth that bends the fit keeps missing its larger sizes: the margin grows with
    # the distance asked for; an exact straight line keeps the user's margin.
    bent = fit(
        measured(lambda n: 30 * MiB + 2000 * n**1.3 + 5e-4 * n**2.6, [1e3, 2e3, 3e3, 4e3, 5e3])
    )
    straight = fit(measured(SHAPES["linear"][0], SHAPES["linear"][1]))
    assert predict(straight, 40_000).margin == pytest.approx(0.1, abs=1e-3)
    near, far = predict(bent, 10_000).margin, predict(bent, 40_000).margin
    assert 0.1 < near < far


def test_never_below_the_largest_peak_seen_at_or_below_the_size():
    # Peaks that shrink with size: the fit is flat, but 120 MiB was seen at size 1.
    data = [Measurement(1, 120 * MiB), Measurement(2, 100 * MiB), Measurement(3, 90 * MiB)]
    model = fit(data)
    assert predict(model, 6, force=True).recommended_bytes >= math.ceil(120 * MiB * 1.1)


def test_growth_terms_are_never_negative():
    # Concave data would pull a steep term negative and bend it down beyond 5.
    model = fit(measured(lambda n: 100 * MiB * math.sqrt(n), [1, 2, 3, 4, 5]))
    assert all(s.params[1] > 0 for s in model.shapes if s.term is not None)


def test_repeats_give_a_noise_estimate_that_widens_the_recommendation_and_warns():
    truth, sizes = SHAPES["linear"]
    quiet = fit(measured(truth, sizes, noise=0.001, repeats=3))
    noisy = fit(measured(truth, sizes, noise=0.08, repeats=3, seed=0))
    assert quiet.noise is not None and quiet.noise < 0.01
    assert noisy.noise is not None and 0.04 < noisy.noise < 0.15
    assert any("repeats at the same size differ" in w for w in noisy.warnings)
    assert not any("repeats" in w for w in quiet.warnings)
    p = predict(noisy, 10_000)
    assert p.recommended_bytes >= p.expected_bytes * (1 + 2 * noisy.noise) * 1.1


def test_no_repeats_means_no_noise_estimate():
    truth, sizes = SHAPES["linear"]
    assert fit(measured(truth, sizes)).noise is None


def test_fewer_than_five_sizes_warns_and_two_cannot_test_faster_growth():
    truth, _ = SHAPES["linear"]
    four = fit(measured(truth, [1, 2, 3, 4]))
    assert any("only 4 distinct sizes" in w for w in four.warnings)
    two = fit(measured(truth, [1, 2]))
    assert any("faster-than-linear growth could not be tested" in w for w in two.warnings)
    five = fit(measured(truth, [1, 2, 3, 4, 5]))
    assert not any("distinct sizes" in w for w in five.warnings)


def test_two_sizes_rule_no_growth_out_and_the_steepest_ordinary_growth_is_taken():
    # Nothing tells the shapes apart: x^2 is the one that does not under-provision.
    model = fit(measured(SHAPES["linear"][0], [1000, 2000]))
    assert model.best.shape == "quadratic" and model.best.forward_error is None
    assert all(s.plausible for s in model.shapes if s.term is not None)
    p = predict(model, 8000)
    assert p.high_bytes / p.low_bytes > 1.5 and p.next_run is not None


def test_x_log_x_needs_sizes_of_at_least_16():
    truth, _ = SHAPES["linear"]
    assert "nlogn" not in {s.shape for s in fit(measured(truth, [1, 2, 3, 4])).shapes}
    assert "nlogn" in {s.shape for s in fit(measured(truth, [16, 32, 48, 64])).shapes}


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


def test_a_wide_plausible_range_names_the_next_size_with_its_memory_and_time():
    truth, _ = SHAPES["quadratic"]
    runs = [
        Measurement(s, round(truth(s) * (1 + 0.02 * e)), duration_s=s / 100)
        for s, e in zip([500, 1000, 1500], [0.5, -1, 1], strict=True)
    ]
    model = fit(runs)
    p = predict(model, 6000)
    assert p.high_bytes / p.low_bytes > 1.5
    assert p.next_run is not None and 1500 < p.next_run.size <= 3000
    assert p.next_run.memory_bytes >= truth(p.next_run.size)
    assert p.next_run.duration_s == pytest.approx(p.next_run.size / 100, rel=0.05)
    (wide,) = [w for w in p.warnings if "plausible range" in w]
    assert f"measure size {p.next_run.size:g} next" in wide and " s)" in wide


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
    assert model.best.describe() == "96.0 MiB + 781.2 KiB x size"
    tiny = fit(measured(lambda n: 10 * MiB + 0.5 * n, [1e6, 2e6, 3e6, 4e6, 5e6]))
    assert tiny.best.describe() == "10.0 MiB + 0.5 B x size"


def test_many_distinct_sizes_are_binned_and_fit_as_well():
    # A fleet history: 100k runs, each at its own size. Binned to MAX_BINS points.
    rng = np.random.default_rng(0)
    sizes = rng.uniform(1e3, 1e5, 100_000)
    runs = [Measurement(float(s), round(50 * MiB + 1000 * s)) for s in sizes]
    model = fit(runs)
    assert model.best.shape == "linear"
    assert predict(model, 2e5).expected_bytes == pytest.approx(50 * MiB + 2e8, rel=1e-3)


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


@pytest.mark.parametrize(
    "workload",
    [
        pytest.param(
            w,
            marks=pytest.mark.xfail(
                strict=True,
                reason="known miss (issue 9 note): eigh's x^2 hides under lower-order terms "
                "at 100-500, the fit takes x^(3/2)*log2(x) and gives 0.79x at 8x",
            ),
        )
        if w == "dense"
        else w
        for w in sorted(REAL_RUNS)
    ],
)
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
    truth = lambda n: 10 * MiB + n**4  # noqa: E731
    model = fit(measured(truth, [10, 20, 30, 40, 50]))
    assert max(s.growth_order for s in model.shapes) <= 3.0
    # Not silently too little: beyond the hypotheses, the range says so.
    p = predict(model, 100)
    assert p.recommended_bytes >= truth(100) or any("plausible range" in w for w in p.warnings)
