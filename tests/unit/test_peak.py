"""memwatch.peak: TreeAccumulator and resolve_peak over synthetic per-process readings."""

from __future__ import annotations

import dataclasses

import pytest

from memwatch.measures import CgroupPeak
from memwatch.peak import TreeAccumulator, resolve_peak

MIB = 1 << 20


def accumulate(readings, *, pss=False):
    """``readings``: [(at_s, [ProcMem, ...]), ...] fed in order."""
    acc = TreeAccumulator(pss=pss)
    for at_s, procs in readings:
        acc.feed(at_s, procs)
    return acc


# --- TreeAccumulator ------------------------------------------------------------------------


def test_tree_total_is_the_sum_over_processes_not_the_largest(proc_mem):
    acc = TreeAccumulator()
    s = acc.feed(0.5, [proc_mem(pid, 200) for pid in (11, 12, 13, 14)])
    assert s.total_bytes == 800 * MIB
    assert s.rss_bytes == 800 * MIB
    assert s.processes == 4
    assert s.at_s == 0.5
    assert acc.max_sample is s


def test_sample_splits_ram_and_swap(proc_mem):
    s = TreeAccumulator().feed(0, [proc_mem(1, 100, swap_mib=50), proc_mem(2, 30, swap_mib=5)])
    assert (s.total_bytes, s.rss_bytes, s.swap_bytes) == (185 * MIB, 130 * MIB, 55 * MIB)
    assert s.pss_bytes is None


def test_sample_carries_the_system_swapout_counter(proc_mem):
    s = TreeAccumulator().feed(0, [proc_mem(1, 10)], system_swapout_bytes=123 * MIB)
    assert s.system_swapout_bytes == 123 * MIB


def test_max_sample_is_the_largest_total_seen(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 100)]),
            (1, [proc_mem(1, 100), proc_mem(2, 250)]),
            (2, [proc_mem(1, 50)]),
        ]
    )
    assert acc.samples == 3
    assert acc.max_sample is not None
    assert (acc.max_sample.at_s, acc.max_sample.total_bytes) == (1, 350 * MIB)


def test_spike_between_samples_of_a_single_process_is_seen_via_hwm(proc_mem):
    acc = accumulate(
        [
            (0.1, [proc_mem(1, 100)]),
            (0.2, [proc_mem(1, 100, hwm_mib=400)]),  # went to 400 and back in between
        ]
    )
    assert acc.max_sample is not None and acc.max_sample.total_bytes == 100 * MIB
    assert acc.spike_estimate_bytes == 400 * MIB
    assert acc.spike_estimate_at_s == 0.2


def test_spike_adds_the_rest_of_the_tree_at_its_smaller_reading(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 100), proc_mem(2, 200)]),
            (1, [proc_mem(1, 100, hwm_mib=400), proc_mem(2, 150)]),
        ]
    )
    assert acc.spike_estimate_bytes == (400 + 150) * MIB


def test_spike_of_a_process_born_between_samples_counts_the_others(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 100)]),
            (1, [proc_mem(1, 100), proc_mem(2, 50, hwm_mib=300)]),
        ]
    )
    assert acc.spike_estimate_bytes == (100 + 300) * MIB


def test_no_spike_estimate_when_hwm_did_not_rise(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 300, hwm_mib=300)]),
            (1, [proc_mem(1, 100, hwm_mib=300)]),  # freed memory: hwm is old news
            (2, [proc_mem(1, 120, hwm_mib=300)]),
        ]
    )
    assert acc.spike_estimate_bytes == 0
    assert acc.spike_estimate_at_s is None


def test_spike_estimate_does_not_count_swapped_out_pages_twice(proc_mem):
    # Between the samples the process grew to 200 MiB resident (VmHWM), then the kernel
    # swapped 100 MiB of it out: RSS 100 + swap 100. RSS + swap never exceeded 200 MiB on
    # this history, so a *lower* bound must not exceed 200 MiB; hwm + current swap
    # counts the swapped-out 100 MiB twice (300 MiB).
    acc = accumulate(
        [
            (0, [proc_mem(1, 50)]),
            (1, [proc_mem(1, 100, swap_mib=100, hwm_mib=200)]),
        ]
    )
    _, bounds, _ = resolve_peak(acc, cgroup=None, ru_maxrss_bytes=None)
    assert bounds.lower_bytes <= 200 * MIB


def test_upper_bound_is_at_least_every_total_and_every_spike(proc_mem):
    readings = [
        (0, [proc_mem(1, 100), proc_mem(2, 40, swap_mib=10)]),
        (1, [proc_mem(1, 180, hwm_mib=260), proc_mem(2, 20, swap_mib=60)]),
        (2, [proc_mem(1, 90, hwm_mib=260), proc_mem(3, 300, hwm_mib=350)]),
        (3, [proc_mem(3, 10, swap_mib=5, hwm_mib=350)]),
    ]
    acc = TreeAccumulator()
    totals = [acc.feed(t, procs).total_bytes for t, procs in readings]
    assert acc.upper_bytes >= max(totals)
    assert acc.upper_bytes >= acc.spike_estimate_bytes > max(totals)


def test_upper_bound_covers_a_process_that_exited_during_the_interval(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 100), proc_mem(2, 300, swap_mib=20)]),
            (1, [proc_mem(1, 100)]),
        ]
    )
    assert acc.upper_bytes >= 420 * MIB


def test_upper_bound_keeps_the_most_swap_a_process_was_seen_using(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 100, swap_mib=80)]),
            (1, [proc_mem(1, 100, swap_mib=0)]),  # swapped back in
        ]
    )
    assert acc.upper_bytes >= 180 * MIB


def test_processes_seen_counts_each_process_once(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 10), proc_mem(2, 10)]),
            (1, [proc_mem(1, 10), proc_mem(2, 10), proc_mem(3, 10)]),
            (2, [proc_mem(1, 10), proc_mem(3, 10)]),
            (3, [proc_mem(1, 10), proc_mem(3, 10), proc_mem(2, 10, start=99_999)]),  # pid reused
        ]
    )
    assert acc.processes_seen == 4


def test_pss_mode_counts_pss_plus_swap_pss(proc_mem):
    acc = TreeAccumulator(pss=True)
    s = acc.feed(
        0,
        [
            proc_mem(1, 800, swap_mib=40, pss_mib=200, swap_pss_mib=10),
            proc_mem(2, 800, swap_mib=40, pss_mib=200, swap_pss_mib=10),
        ],
    )
    assert s.total_bytes == 420 * MIB
    assert s.pss_bytes == 400 * MIB
    assert s.rss_bytes == 1600 * MIB  # RSS is still reported, just not counted
    assert s.swap_bytes == 80 * MIB


def test_without_pss_mode_pss_readings_are_ignored(proc_mem):
    s = TreeAccumulator().feed(0, [proc_mem(1, 800, pss_mib=200, swap_pss_mib=10)])
    assert s.total_bytes == 800 * MIB
    assert s.pss_bytes is None


# --- resolve_peak -------------------------------------------------------------------------


@pytest.fixture
def sampled(proc_mem):
    """Two readings of a two-process tree: max total 350 MiB (300 RAM + 50 swap) at 1 s."""
    return accumulate(
        [
            (0, [proc_mem(1, 100), proc_mem(2, 100)]),
            (1, [proc_mem(1, 150, swap_mib=30), proc_mem(2, 150, swap_mib=20)]),
        ]
    )


def test_sampling_only_reports_the_largest_sample(sampled):
    peak, bounds, warnings = resolve_peak(sampled, cgroup=None, ru_maxrss_bytes=150 * MIB)
    assert peak.source == "sampling"
    assert (peak.total_bytes, peak.rss_bytes, peak.swap_bytes) == (350 * MIB, 300 * MIB, 50 * MIB)
    assert peak.at_s == 1
    assert peak.pss_bytes is None
    # Summed RSS may count shared pages twice: only the largest process (150 + 30 swap)
    # is sure.
    assert bounds.lower_bytes == 180 * MIB
    assert bounds.upper_bytes >= 350 * MIB
    assert warnings == []


def test_hwm_spike_above_the_samples_is_reported_as_hwm(proc_mem):
    acc = accumulate(
        [
            (0, [proc_mem(1, 100), proc_mem(2, 100)]),
            (0.5, [proc_mem(1, 100, hwm_mib=500), proc_mem(2, 100)]),
        ]
    )
    peak, bounds, _ = resolve_peak(acc, cgroup=None, ru_maxrss_bytes=None)
    assert peak.source == "hwm"
    assert peak.total_bytes == 600 * MIB
    assert peak.at_s == 0.5
    assert bounds.lower_bytes == 600 * MIB


def test_ru_maxrss_above_the_samples_is_reported_as_hwm_without_a_time(sampled):
    peak, bounds, _ = resolve_peak(sampled, cgroup=None, ru_maxrss_bytes=900 * MIB)
    assert peak.source == "hwm"
    assert peak.total_bytes == 900 * MIB
    assert peak.rss_bytes + peak.swap_bytes == peak.total_bytes
    assert peak.at_s is None
    assert bounds.lower_bytes == 900 * MIB


def test_cgroup_v1_exact_peak_wins_with_equal_bounds(sampled):
    cg = CgroupPeak(
        version=1, ram_bytes=380 * MIB, total_bytes=450 * MIB, total_is_exact=True, oom_kills=0
    )
    peak, bounds, warnings = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=150 * MIB)
    assert peak.source == "cgroup"
    assert (peak.total_bytes, peak.rss_bytes, peak.swap_bytes) == (450 * MIB, 380 * MIB, 70 * MIB)
    assert bounds.lower_bytes == bounds.upper_bytes == 450 * MIB
    assert warnings == []


def test_cgroup_exact_peak_wins_even_below_a_sampled_figure(sampled):
    # Sampled RSS counts shared file pages charged to another cgroup; the kernel's figure
    # for the job is the truth.
    cg = CgroupPeak(1, 300 * MIB, 320 * MIB, True, 0)
    peak, bounds, _ = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert (peak.source, peak.total_bytes) == ("cgroup", 320 * MIB)
    assert bounds.lower_bytes == bounds.upper_bytes == 320 * MIB


def test_a_cgroup_peak_below_one_process_is_explained_and_widens_the_upper_bound(proc_mem):
    # Seen for real: a cgroup peak of 3.9 MiB against ru_maxrss 9.3 MiB (shared library
    # pages charged to another cgroup before the job started).
    acc = accumulate([(0, [proc_mem(1, 9.3)])])
    cg = CgroupPeak(1, ram_bytes=4 * MIB, total_bytes=4 * MIB, total_is_exact=True, oom_kills=0)
    peak, bounds, warnings = resolve_peak(acc, cgroup=cg, ru_maxrss_bytes=None)
    assert (peak.source, peak.total_bytes) == ("cgroup", 4 * MIB)
    assert (bounds.lower_bytes, bounds.upper_bytes) == (4 * MIB, int(9.3 * MIB))
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "the cgroup peak (4.0 MiB) is below one process's resident peak (9.3 MiB): pages"
    )


def test_cgroup_v2_separate_peaks_give_ram_as_lower_and_sum_as_upper(sampled):
    cg = CgroupPeak(
        2, ram_bytes=400 * MIB, total_bytes=480 * MIB, total_is_exact=False, oom_kills=0
    )
    peak, bounds, _ = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert peak.source == "cgroup"
    assert peak.total_bytes == 480 * MIB
    assert (bounds.lower_bytes, bounds.upper_bytes) == (400 * MIB, 480 * MIB)


def test_cgroup_v2_without_swap_use_is_exact(sampled):
    cg = CgroupPeak(2, 400 * MIB, 400 * MIB, True, 0)
    peak, bounds, _ = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert (peak.total_bytes, peak.swap_bytes) == (400 * MIB, 0)
    assert bounds.lower_bytes == bounds.upper_bytes == 400 * MIB


def test_cgroup_without_swap_accounting_warns_and_bounds_with_sampled_swap(sampled):
    # The RAM peak and the sampled swap may come from different moments: the RAM peak is
    # the figure, RAM peak + sampled swap only the upper bound.
    cg = CgroupPeak(1, ram_bytes=500 * MIB, total_bytes=None, total_is_exact=True, oom_kills=0)
    peak, bounds, warnings = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert peak.source == "cgroup"
    assert (peak.rss_bytes, peak.total_bytes) == (500 * MIB, 500 * MIB)
    assert (bounds.lower_bytes, bounds.upper_bytes) == (500 * MIB, 550 * MIB)
    assert len(warnings) == 1 and "swap" in warnings[0]


def test_cgroup_without_swap_accounting_below_the_samples_keeps_sampling(sampled):
    cg = CgroupPeak(1, ram_bytes=200 * MIB, total_bytes=None, total_is_exact=True, oom_kills=0)
    peak, bounds, warnings = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert (peak.source, peak.total_bytes) == ("sampling", 350 * MIB)
    assert bounds.lower_bytes == 200 * MIB  # the kernel's RAM peak is sure; summed RSS is not
    assert len(warnings) == 1 and "swap" in warnings[0]


def test_cgroup_ram_peak_and_sampled_swap_from_other_moments_are_no_lower_bound(proc_mem):
    # Without swap accounting the cgroup's RAM peak (500 MiB: a short-lived child at
    # ~0.5 s, while the tree had no swap) and the swap of the largest sample (300 MiB at
    # 1 s, after the child was gone) need not coincide: this history never held more than
    # 500 MiB, so the lower bound must not say 800.
    acc = accumulate(
        [
            (0, [proc_mem(1, 100)]),
            (1, [proc_mem(1, 100, swap_mib=300)]),
        ]
    )
    cg = CgroupPeak(1, ram_bytes=500 * MIB, total_bytes=None, total_is_exact=True, oom_kills=0)
    _, bounds, _ = resolve_peak(acc, cgroup=cg, ru_maxrss_bytes=None)
    assert bounds.lower_bytes <= 500 * MIB


def test_escaped_process_with_larger_sampled_peak_reports_the_sample(sampled):
    cg = CgroupPeak(1, 200 * MIB, 250 * MIB, True, 0)
    peak, bounds, warnings = resolve_peak(
        sampled, cgroup=cg, ru_maxrss_bytes=None, escaped_cgroup=1
    )
    assert (peak.source, peak.total_bytes) == ("sampling", 350 * MIB)
    assert bounds.lower_bytes <= 350 * MIB <= bounds.upper_bytes
    assert len(warnings) == 1
    assert "1 process(es) moved out of the job cgroup" in warnings[0]


def test_escaped_process_with_larger_cgroup_peak_reports_the_cgroup(sampled):
    cg = CgroupPeak(1, 380 * MIB, 450 * MIB, True, 0)
    peak, _, warnings = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None, escaped_cgroup=2)
    assert (peak.source, peak.total_bytes) == ("cgroup", 450 * MIB)
    assert "2 process(es) moved out" in warnings[0]


def test_escaped_process_leaves_the_upper_bound_above_the_cgroup_peak(proc_mem):
    # B (350 MiB at both samples) moved out of the job cgroup, so the cgroup's exact 500 MiB
    # does not include it: on the history where B held its 350 MiB throughout, the tree
    # peaked at 500 + 350 MiB. The warning says the cgroup figure is a lower bound; the
    # bounds must not then claim it is also the upper one.
    acc = accumulate(
        [
            (0, [proc_mem(1, 100), proc_mem(2, 350)]),
            (1, [proc_mem(1, 100), proc_mem(2, 350)]),
        ]
    )
    cg = CgroupPeak(1, 500 * MIB, 500 * MIB, True, 0)
    peak, bounds, _ = resolve_peak(acc, cgroup=cg, ru_maxrss_bytes=None, escaped_cgroup=1)
    assert peak.total_bytes == 500 * MIB
    assert bounds.upper_bytes >= 850 * MIB


def _scenarios(proc_mem):
    spiky = accumulate(
        [
            (0, [proc_mem(1, 100), proc_mem(2, 100, swap_mib=10)]),
            (1, [proc_mem(1, 100, hwm_mib=500), proc_mem(2, 60, swap_mib=40)]),
        ]
    )
    plain = accumulate([(0, [proc_mem(1, 300, swap_mib=50)])])
    return {
        "empty": (TreeAccumulator(), dict(cgroup=None, ru_maxrss_bytes=None)),
        "sampling": (plain, dict(cgroup=None, ru_maxrss_bytes=10 * MIB)),
        "hwm": (spiky, dict(cgroup=None, ru_maxrss_bytes=None)),
        "ru_maxrss": (plain, dict(cgroup=None, ru_maxrss_bytes=900 * MIB)),
        "v1": (
            spiky,
            dict(cgroup=CgroupPeak(1, 500 * MIB, 700 * MIB, True, 0), ru_maxrss_bytes=None),
        ),
        "v2": (
            spiky,
            dict(cgroup=CgroupPeak(2, 600 * MIB, 700 * MIB, False, 0), ru_maxrss_bytes=None),
        ),
        "v2-small": (
            spiky,
            dict(cgroup=CgroupPeak(2, 50 * MIB, 60 * MIB, False, 0), ru_maxrss_bytes=None),
        ),
        "noswap-big": (
            spiky,
            dict(cgroup=CgroupPeak(1, 900 * MIB, None, True, 0), ru_maxrss_bytes=None),
        ),
        "noswap-small": (
            spiky,
            dict(cgroup=CgroupPeak(1, 9 * MIB, None, True, 0), ru_maxrss_bytes=None),
        ),
        "escaped-small": (
            spiky,
            dict(
                cgroup=CgroupPeak(1, 9 * MIB, 10 * MIB, True, 0),
                ru_maxrss_bytes=None,
                escaped_cgroup=1,
            ),
        ),
        "escaped-big": (
            spiky,
            dict(
                cgroup=CgroupPeak(2, 800 * MIB, 900 * MIB, False, 0),
                ru_maxrss_bytes=None,
                escaped_cgroup=1,
            ),
        ),
        "cgroup-no-ram": (
            plain,
            dict(cgroup=CgroupPeak(2, None, None, False, 0), ru_maxrss_bytes=None),
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "empty",
        "sampling",
        "hwm",
        "ru_maxrss",
        "v1",
        "v2",
        "v2-small",
        "noswap-big",
        "noswap-small",
        "escaped-small",
        "escaped-big",
        "cgroup-no-ram",
    ],
)
def test_bounds_always_enclose_the_reported_total(proc_mem, name):
    acc, kwargs = _scenarios(proc_mem)[name]
    peak, bounds, _ = resolve_peak(acc, **kwargs)
    assert 0 <= bounds.lower_bytes <= peak.total_bytes <= bounds.upper_bytes
    assert peak.rss_bytes >= 0 and peak.swap_bytes >= 0
    assert peak.source in ("cgroup", "sampling", "hwm")


def test_page_cache_left_in_the_cgroup_is_flagged_and_lowers_the_lower_bound(sampled):
    # `cat big.file`: the cgroup peak counts the file's pages, the processes held little.
    cg = CgroupPeak(1, 600 * MIB, 600 * MIB, True, 0, file_cache_bytes=500 * MIB)
    peak, bounds, warnings = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert (peak.source, peak.total_bytes) == ("cgroup", 600 * MIB)
    assert bounds.lower_bytes == 180 * MIB
    assert any("500 MiB page cache" in w for w in warnings)


def test_little_page_cache_is_not_worth_a_warning(sampled):
    cg = CgroupPeak(1, 600 * MIB, 600 * MIB, True, 0, file_cache_bytes=1 * MIB)
    _, bounds, warnings = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert bounds.lower_bytes == 600 * MIB
    assert warnings == []


def test_cgroup_peak_has_no_time_stamp(sampled):
    cg = CgroupPeak(1, 600 * MIB, 600 * MIB, True, 0)
    peak, _, _ = resolve_peak(sampled, cgroup=cg, ru_maxrss_bytes=None)
    assert peak.at_s is None


# --- figures the platform does not give (the psutil backend) ---------------------------------


def without_hwm_or_swap(p, swap=True):
    """The same reading as the psutil backend gives it: no VmHWM (and no swap on macOS)."""
    return dataclasses.replace(p, hwm_bytes=None, swap_bytes=p.swap_bytes if swap else None)


def test_without_high_water_marks_no_spike_is_guessed_and_no_upper_bound_is_claimed(proc_mem):
    acc = accumulate(
        [
            (0, [without_hwm_or_swap(proc_mem(1, 100))]),
            (1, [without_hwm_or_swap(proc_mem(1, 100, hwm_mib=500))]),
        ]
    )
    assert acc.spike_estimate_bytes == 0
    assert acc.upper_bytes is None
    assert acc.max_process_hwm_bytes == 100 * MIB  # the largest RSS seen stands in
    peak, bounds, _ = resolve_peak(acc, cgroup=None, ru_maxrss_bytes=None)
    assert (peak.total_bytes, peak.source) == (100 * MIB, "sampling")
    assert (bounds.lower_bytes, bounds.upper_bytes) == (100 * MIB, None)


def test_without_high_water_marks_the_commands_ru_maxrss_still_catches_a_spike(proc_mem):
    acc = accumulate([(0, [without_hwm_or_swap(proc_mem(1, 100, swap_mib=10))])])
    peak, bounds, _ = resolve_peak(acc, cgroup=None, ru_maxrss_bytes=400 * MIB)
    assert (peak.total_bytes, peak.source, peak.rss_bytes) == (400 * MIB, "hwm", 390 * MIB)
    assert bounds.upper_bytes is None


def test_without_per_process_swap_the_swap_figures_are_unknown_not_zero(proc_mem):
    acc = TreeAccumulator()
    s = acc.feed(0, [without_hwm_or_swap(proc_mem(pid, 100), swap=False) for pid in (1, 2)])
    assert (s.total_bytes, s.rss_bytes, s.swap_bytes) == (200 * MIB, 200 * MIB, None)
    peak, _, _ = resolve_peak(acc, cgroup=None, ru_maxrss_bytes=None)
    assert (peak.total_bytes, peak.swap_bytes) == (200 * MIB, None)


def test_a_cgroup_peak_bounds_the_tree_even_without_high_water_marks(proc_mem):
    acc = accumulate([(0, [without_hwm_or_swap(proc_mem(1, 100))])])
    cgroup = CgroupPeak(1, 110 * MIB, 120 * MIB, True, 0)
    peak, bounds, _ = resolve_peak(acc, cgroup=cgroup, ru_maxrss_bytes=None)
    assert (peak.total_bytes, peak.swap_bytes) == (120 * MIB, 10 * MIB)
    assert bounds.upper_bytes == 120 * MIB
