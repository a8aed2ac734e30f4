"""memwatch.sampler.Sampler over a fake /proc: sums, vanishing processes, cgroup escapes.

The thread and its schedule are exercised by the integration tests; here sample_once()
is called by hand with a fake clock, so nothing sleeps.
"""

from __future__ import annotations

from memwatch.sampler import Sampler
from memwatch.tree import TreeTracker

MIB_KB = 1024
ROOT = 600


def make_sampler(fake_proc, cgroup_pids=None, pss=False, root_pss_kb=None):
    fake_proc.add(ROOT, ppid=500, start=10_000, rss_kb=100 * MIB_KB, pss_kb=root_pss_kb)
    now = [0.0]
    sampler = Sampler(
        TreeTracker(ROOT, reaper_pid=500, procfs=fake_proc.path),
        interval_s=0.1,
        t0=0.0,
        pss=pss,
        cgroup_pids=cgroup_pids,
        procfs=fake_proc.path,
        clock=lambda: now[0],
    )
    return sampler, now


def test_sample_sums_the_tree_and_timestamps_from_t0(fake_proc):
    sampler, now = make_sampler(fake_proc)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB, swap_kb=10 * MIB_KB)
    now[0] = 0.25
    sample = sampler.sample_once()
    assert sample.at_s == 0.25
    assert sample.processes == 2
    assert sample.total_bytes == (100 + 50 + 10) << 20
    assert sample.swap_bytes == 10 << 20


def test_process_gone_between_listing_and_read_is_counted_not_fatal(fake_proc, monkeypatch):
    sampler, _ = make_sampler(fake_proc)
    fake_proc.add(601, ppid=ROOT, start=10_001)
    sampler.tracker.refresh()
    members = sampler.tracker.refresh
    # The listing still names 601, but its files are gone by the time they are read.
    monkeypatch.setattr(sampler.tracker, "refresh", lambda: {**members(), 601: 10_001})
    fake_proc.remove(601)
    sample = sampler.sample_once()
    assert sample.processes == 1
    assert sampler.vanished == 1


def test_reused_pid_is_not_counted_as_the_old_process(fake_proc):
    sampler, _ = make_sampler(fake_proc)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once()
    fake_proc.add(601, ppid=1, start=20_000, rss_kb=999 * MIB_KB)  # another process, same pid
    sample = sampler.sample_once()
    assert sample.total_bytes == 100 << 20


def test_process_missing_from_the_cgroup_twice_in_a_row_has_escaped(fake_proc):
    inside = {ROOT}
    sampler, _ = make_sampler(fake_proc, cgroup_pids=lambda: set(inside))
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once()
    assert sampler.escaped_cgroup == set()  # once may be a fork not yet attached
    sampler.sample_once()
    assert sampler.escaped_cgroup == {601}


def test_process_missing_from_the_cgroup_only_once_has_not_escaped(fake_proc):
    inside = {ROOT}
    sampler, _ = make_sampler(fake_proc, cgroup_pids=lambda: set(inside))
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once()
    inside.add(601)  # cgroup_post_fork has run by now
    sampler.sample_once()
    sampler.sample_once()
    assert sampler.escaped_cgroup == set()


def test_pss_sample_torn_by_an_exit_cannot_set_the_peak(fake_proc, monkeypatch):
    # Readers sharing a buffer: one exits after being read, so the others' PSS, read
    # later, already includes its share. That sum is not one instant of the tree.
    sampler, _ = make_sampler(fake_proc, pss=True, root_pss_kb=50 * MIB_KB)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=100 * MIB_KB, pss_kb=50 * MIB_KB)
    assert sampler.sample_once().total_bytes == 100 << 20
    fake_proc.add(ROOT, ppid=500, start=10_000, rss_kb=100 * MIB_KB, pss_kb=90 * MIB_KB)
    monkeypatch.setattr(sampler.backend, "is_running", lambda pid: pid != 601)
    torn = sampler.sample_once()
    assert torn.total_bytes == 140 << 20  # still streamed to --samples as read
    assert sampler.accumulator.max_sample.total_bytes == 100 << 20
