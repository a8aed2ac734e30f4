"""memwatch.plateau: swap suspicion over synthetic sample series."""

from __future__ import annotations

import dataclasses

from memwatch.plateau import PlateauDetector, detect_plateaus, swapping_recently

MIB = 1 << 20


def test_flat_rss_with_growing_swap_is_one_plateau_from_flattening_to_end(sample):
    ramp = [sample(t, 40 * (t + 1)) for t in range(4)]  # 40..160 MiB
    flat = [sample(t, 200, swap_mib=10 * (t - 4)) for t in range(4, 10)]  # swap 0..50 MiB
    [p] = detect_plateaus(ramp + flat)
    assert (p.start_s, p.end_s) == (4, 9)
    assert p.rss_bytes == 200 * MIB
    assert p.swap_growth_bytes == 50 * MIB


def test_rss_jitter_within_tolerance_keeps_one_plateau(sample):
    rss = [200, 201, 199, 202, 200, 198, 201]
    series = [sample(t, r, swap_mib=8 * t) for t, r in enumerate(rss)]
    [p] = detect_plateaus(series)
    assert (p.start_s, p.end_s) == (0, 6)
    assert p.rss_bytes == 202 * MIB
    assert p.swap_growth_bytes == 48 * MIB


def test_relative_tolerance_scales_with_rss(sample):
    # 3 % of 1 GiB is ~30 MiB: 20 MiB of jitter is still "flat".
    rss = [1024, 1044, 1030, 1040, 1024]
    [p] = detect_plateaus([sample(t, r, swap_mib=16 * t) for t, r in enumerate(rss)])
    assert (p.start_s, p.end_s) == (0, 4)


def test_flat_rss_without_swap_growth_is_no_plateau(sample):
    assert detect_plateaus([sample(t, 200, swap_mib=30) for t in range(20)]) == []


def test_swap_growth_below_threshold_is_no_plateau(sample):
    series = [sample(t, 200, swap_mib=t) for t in range(4)]  # grows 3 MiB < 4 MiB
    assert detect_plateaus(series) == []


def test_growing_rss_is_no_plateau_even_with_swap_growing(sample):
    series = [sample(t, 100 + 20 * t, swap_mib=10 * t) for t in range(20)]
    assert detect_plateaus(series) == []


def test_system_swapout_while_tree_has_swap_is_a_plateau(sample):
    # The tree's own VmSwap stays put (its pages went out earlier) but the machine keeps
    # swapping while the tree is flat: the system counter is the evidence.
    series = [sample(t, 300, swap_mib=8, system_swapout_mib=1000 + 25 * t) for t in range(6)]
    [p] = detect_plateaus(series)
    assert (p.start_s, p.end_s) == (0, 5)
    assert p.swap_growth_bytes == 0
    assert p.system_swapout_bytes == 125 * MIB


def test_system_swapout_while_tree_has_no_swap_is_no_plateau(sample):
    series = [sample(t, 300, swap_mib=0, system_swapout_mib=1000 + 25 * t) for t in range(6)]
    assert detect_plateaus(series) == []


def test_too_few_samples_is_no_plateau(sample):
    series = [sample(t, 200, swap_mib=50 * t) for t in range(3)]
    assert detect_plateaus(series) == []


def test_min_samples_is_inclusive(sample):
    series = [sample(t, 200, swap_mib=50 * t) for t in range(4)]
    assert len(detect_plateaus(series)) == 1


def test_empty_tree_is_never_a_plateau(sample):
    series = [sample(t, 0, system_swapout_mib=100 * t) for t in range(10)]
    assert detect_plateaus(series) == []


def test_two_separate_plateaus_are_reported_in_time_order(sample):
    first = [sample(t, 100, swap_mib=10 * t) for t in range(5)]  # t 0..4
    climb = [sample(5, 200, swap_mib=40), sample(6, 300, swap_mib=40)]
    second = [sample(t, 400, swap_mib=40 + 10 * (t - 7)) for t in range(7, 12)]  # t 7..11
    p1, p2 = detect_plateaus(first + climb + second)
    assert (p1.start_s, p1.end_s, p1.rss_bytes) == (0, 4, 100 * MIB)
    assert (p2.start_s, p2.end_s, p2.rss_bytes) == (7, 11, 400 * MIB)
    assert p1.swap_growth_bytes == p2.swap_growth_bytes == 40 * MIB


def test_streaming_detector_matches_the_batch_helper(sample):
    series = [sample(t, 200, swap_mib=10 * t) for t in range(8)]
    detector = PlateauDetector()
    for s in series:
        detector.feed(s)
    assert detector.finish() == detect_plateaus(series)
    assert len(detect_plateaus(series)) == 1


def test_parameters_change_what_counts(sample):
    series = [sample(t, 200, swap_mib=t) for t in range(3)]  # 2 MiB over 3 samples
    assert detect_plateaus(series) == []
    found = detect_plateaus(series, min_samples=3, min_swap_growth_bytes=2 * MIB)
    assert [(p.start_s, p.end_s) for p in found] == [(0, 2)]


def test_rss_stepping_just_past_the_tolerance_stays_one_plateau(sample):
    # At a limit RSS can step by a little more than the tolerance (7 MiB > 3 % of 207 MiB):
    # the two windows hug the same level and are one swapping episode.
    first = [sample(t, 200, swap_mib=10 * t) for t in range(5)]  # t 0..4, swap 0..40
    second = [sample(t, 207, swap_mib=10 * t) for t in range(5, 10)]  # t 5..9, swap 50..90
    [p] = detect_plateaus(first + second)
    assert (p.start_s, p.end_s) == (0, 9)
    assert p.rss_bytes == 207 * MIB


def test_joined_plateau_counts_the_swap_growth_over_its_whole_range(sample):
    # Same series: swap went from 0 (at 0 s) to 90 MiB (at 9 s). Summing the two windows'
    # own growth (40 + 40) loses the 10 MiB that went out between 4 s and 5 s.
    first = [sample(t, 200, swap_mib=10 * t, system_swapout_mib=10 * t) for t in range(5)]
    second = [sample(t, 207, swap_mib=10 * t, system_swapout_mib=10 * t) for t in range(5, 10)]
    [p] = detect_plateaus(first + second)
    assert p.swap_growth_bytes == 90 * MIB
    assert p.system_swapout_bytes == 90 * MIB


def test_one_sample_rss_blip_does_not_split_a_plateau(sample):
    # A single reading 7 MiB above the level (a transient allocation) in the middle of a
    # swapping stretch is the same episode, as when RSS steps (joined above).
    series = [sample(t, 200, swap_mib=10 * t) for t in range(5)]  # t 0..4
    series.append(sample(5, 207, swap_mib=50))
    series += [sample(t, 200, swap_mib=10 * t) for t in range(6, 11)]  # t 6..10
    assert [(p.start_s, p.end_s) for p in detect_plateaus(series)] == [(0, 10)]


def test_windows_far_apart_in_rss_are_not_joined(sample):
    first = [sample(t, 200, swap_mib=10 * t) for t in range(5)]
    second = [sample(t, 260, swap_mib=10 * t) for t in range(5, 10)]
    assert [(p.start_s, p.end_s) for p in detect_plateaus(first + second)] == [(0, 4), (5, 9)]


def test_without_per_process_swap_the_systems_swap_out_still_flags_a_plateau(sample):
    # The psutil backend on macOS: RSS flat, the tree's swap unknown, the system swapping.
    series = [
        dataclasses.replace(sample(t, 200, system_swapout_mib=100 + 20 * t), swap_bytes=None)
        for t in range(6)
    ]
    [p] = detect_plateaus(series)
    assert (p.start_s, p.end_s) == (0, 5)
    assert (p.swap_growth_bytes, p.system_swapout_bytes) == (None, 100 * MIB)


def test_without_any_swap_figure_flat_rss_is_no_plateau(sample):
    series = [dataclasses.replace(sample(t, 200), swap_bytes=None) for t in range(6)]
    assert detect_plateaus(series) == []


def test_the_live_flag_is_judged_on_the_recent_samples_only(sample):
    swapping = [sample(t, 200, swap_mib=10 * t) for t in range(6)]  # flat RSS, swap +50 MiB
    assert swapping_recently(swapping) is True
    assert swapping_recently(swapping[:3]) is False  # too few samples to judge
    # Days of flat RSS after one swap-out: the window sees no growth, the flag drops.
    settled = [sample(t, 200, swap_mib=50) for t in range(6, 18)]
    assert swapping_recently((swapping + settled)[-12:]) is False
    growing = [sample(t, 100 + 50 * t, swap_mib=10 * t) for t in range(6)]
    assert swapping_recently(growing) is False  # RSS grows: not a plateau


def test_the_live_flag_uses_the_machines_swap_out_only_without_per_process_swap(sample):
    flat = [
        dataclasses.replace(sample(t, 200, swap_mib=1), system_swapout_bytes=t * 10 * MIB)
        for t in range(6)
    ]
    assert swapping_recently(flat) is False  # the tree's own swap did not grow
    unknown = [dataclasses.replace(s, swap_bytes=None) for s in flat]
    assert swapping_recently(unknown) is True
