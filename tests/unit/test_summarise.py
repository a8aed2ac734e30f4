"""memwatch.summary.summarise: the run's summary from plain data, with no process started."""

from __future__ import annotations

import signal

from memwatch.measures import CgroupPeak, Sample
from memwatch.peak import TreeAccumulator
from memwatch.summary import Observed, summarise

MIB = 1 << 20
COMMAND = ("python3", "job.py")


def observed(proc_mem, **changes):
    """Two processes read twice (700 MiB at most), then what ``changes`` says."""
    acc = TreeAccumulator()
    acc.feed(0.1, [proc_mem(10, 300), proc_mem(11, 100)])
    acc.feed(0.2, [proc_mem(10, 500), proc_mem(11, 200)])
    fields = dict(
        returncode=0,
        duration_s=1.5,
        raw_maxrss=(500 << 20) // 1024,
        spawner_hwm_bytes=40 * MIB,
        accumulator=acc,
    )
    fields.update(changes)
    return Observed(**fields)


def test_a_sampled_run_reports_its_largest_sampled_total(proc_mem):
    summary = summarise(COMMAND, observed(proc_mem), interval_s=0.1)
    assert (summary.peak.source, summary.peak.total_bytes) == ("sampling", 700 * MIB)
    assert (summary.samples, summary.exit_status, summary.ru_maxrss_bytes) == (2, 0, 500 * MIB)
    assert any("2 processes at the sampled peak" in w for w in summary.warnings)


def test_the_cgroups_peak_wins_and_its_oom_kill_is_the_verdict(proc_mem):
    cgroup = CgroupPeak(1, 720 * MIB, 760 * MIB, True, oom_kills=1)
    o = observed(proc_mem, returncode=-signal.SIGKILL, cgroup=cgroup)
    summary = summarise(COMMAND, o, interval_s=0.1)
    assert (summary.peak.source, summary.peak.total_bytes) == ("cgroup", 760 * MIB)
    assert summary.oom_killed and summary.exit_status == 128 + signal.SIGKILL
    assert any("OOM killer killed 1 process" in w for w in summary.warnings)


def test_a_sigkill_while_the_systems_oom_count_rose_is_probably_an_oom_kill(proc_mem):
    o = observed(proc_mem, returncode=-signal.SIGKILL, system_oom_kills=1)
    assert summarise(COMMAND, o, interval_s=0.1).oom_killed
    o = observed(proc_mem, returncode=-signal.SIGKILL, system_oom_kills=0)
    assert not summarise(COMMAND, o, interval_s=0.1).oom_killed


def test_ru_maxrss_not_above_memwatchs_own_peak_is_not_trusted(proc_mem):
    # Linux carries the spawner's high-water mark into the child's ru_maxrss at exec.
    o = observed(proc_mem, raw_maxrss=(40 << 20) // 1024, spawner_hwm_bytes=40 * MIB)
    summary = summarise(COMMAND, o, interval_s=0.1)
    assert summary.ru_maxrss_bytes == 500 * MIB  # the largest VmHWM seen stands in


def test_cgroup_samples_with_a_walk_between_are_counted_once_each(proc_mem):
    acc = TreeAccumulator()
    acc.observe(0.0, [proc_mem(10, 300, hwm_mib=350)])
    for at, ram in [(0.0, 320), (0.05, 340), (0.1, 330)]:
        acc.record(Sample(at, ram * MIB, ram * MIB, 0, None, 1))
    o = observed(proc_mem, accumulator=acc, raw_maxrss=None)
    summary = summarise(COMMAND, o, interval_s=0.05)
    # Three samples, not four: the walk's sum is no sample. Its VmHWM shows more than any.
    assert (summary.samples, summary.peak.source) == (3, "hwm")
    assert summary.peak.total_bytes == 350 * MIB


def test_warnings_name_stragglers_skipped_slots_and_setup_problems(proc_mem):
    o = observed(proc_mem, stragglers=2, missed_ticks=40, sampling_error="sampling stopped")
    summary = summarise(COMMAND, o, ["no job cgroup (permission denied)"], interval_s=0.1)
    assert summary.warnings[0] == "no job cgroup (permission denied)"
    assert any("2 descendant process(es) still running" in w for w in summary.warnings)
    assert any("40 sampling slots skipped" in w for w in summary.warnings)
    assert "sampling stopped" in summary.warnings


def test_slots_lost_while_memwatch_was_held_up_are_not_blamed_on_the_interval(proc_mem):
    summary = summarise(COMMAND, observed(proc_mem, held_up_ticks=40), interval_s=0.1)
    assert any("40 sampling slots skipped while memwatch" in w for w in summary.warnings)
    assert not any("choose a larger one" in w for w in summary.warnings)


def test_growth_of_the_systems_shmem_widens_the_upper_bound(proc_mem):
    plain = summarise(COMMAND, observed(proc_mem), interval_s=0.1)
    o = observed(proc_mem, shmem_before_bytes=100 * MIB, shmem_max_bytes=164 * MIB)
    summary = summarise(COMMAND, o, interval_s=0.1)
    assert plain.bounds.upper_bytes is not None
    assert summary.bounds.upper_bytes == plain.bounds.upper_bytes + 64 * MIB
    assert any("shared memory (memfd, tmpfs, SysV) grew by 64 MiB" in w for w in summary.warnings)
    # A rise below UNSEEN_SHMEM_MIN_BYTES is the rest of the system moving: no change.
    o = observed(proc_mem, shmem_before_bytes=100 * MIB, shmem_max_bytes=104 * MIB)
    assert summarise(COMMAND, o, interval_s=0.1).bounds == plain.bounds


def test_ru_maxrss_is_unknown_when_nothing_measured_it(proc_mem):
    o = observed(proc_mem, accumulator=TreeAccumulator(), raw_maxrss=None)
    assert summarise(COMMAND, o, interval_s=0.1).ru_maxrss_bytes is None
