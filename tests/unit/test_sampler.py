"""memwatch.sampler.Sampler over a fake /proc: sums, vanishing processes, cgroup totals, escapes.

The thread and its schedule are exercised by the integration tests; here sample_once()
is called by hand with a fake clock, so nothing sleeps.
"""

from __future__ import annotations

import errno
import os

from memwatch.errors import CgroupUnavailable
from memwatch.measures import CgroupUsage
from memwatch.sampler import WALK_EVERY_S, Sampler
from memwatch.tree import TreeTracker

MIB_KB = 1024
ROOT = 600


class FakeCounters:
    """A job cgroup's totals and members, as cgroup.CgroupCounters reads them."""

    def __init__(self, inside, ram_bytes=0, swap_bytes=0):
        self.inside = inside
        self.usage = CgroupUsage(ram_bytes, swap_bytes)
        self.reads = 0

    def read(self):
        self.reads += 1
        if self.usage is None:
            raise CgroupUnavailable("cannot read /sys/fs/cgroup/memory/job: No such device")
        return self.usage

    def pids(self):
        return set(self.inside)

    def processes(self):
        return len(self.inside)


def make_sampler(fake_proc, cgroup=None, pss=False, root_pss_kb=None):
    fake_proc.add(ROOT, ppid=500, start=10_000, rss_kb=100 * MIB_KB, pss_kb=root_pss_kb)
    now = [0.0]
    sampler = Sampler(
        TreeTracker(ROOT, reaper_pid=500, procfs=fake_proc.path),
        interval_s=0.1,
        t0=0.0,
        pss=pss,
        cgroup=cgroup,
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


def test_reused_pid_is_not_counted_as_the_old_process(fake_proc, monkeypatch):
    sampler, _ = make_sampler(fake_proc)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once()
    fake_proc.add(601, ppid=1, start=20_000, rss_kb=999 * MIB_KB)  # another process, same pid
    # The kernel answers ESRCH on the old process's kept status file once it is gone, even
    # after its pid was reused (tests/integration/test_daemon.py shows it): a fake tree
    # cannot, so the read is made to answer as the kernel does.
    real_pread = os.pread

    def pread(fd, size, offset):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/601/status"):
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)
    sample = sampler.sample_once()
    assert sample.total_bytes == 100 << 20
    assert sampler.vanished == 1
    assert sampler.sample_once().processes == 1  # classified again: not a child of the job


def test_reused_pid_is_told_by_its_start_time_without_a_kept_file(fake_proc):
    sampler, _ = make_sampler(fake_proc)
    sampler.backend._status.max_open = 0  # out of descriptors: a file opened at each read
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once()
    fake_proc.add(601, ppid=1, start=20_000, rss_kb=999 * MIB_KB)
    assert sampler.sample_once().total_bytes == 100 << 20


def test_process_missing_from_the_cgroup_at_two_walks_in_a_row_has_escaped(fake_proc):
    cgroup = FakeCounters({ROOT}, ram_bytes=300 << 20)
    sampler, now = make_sampler(fake_proc, cgroup=cgroup)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once(walk=True)
    assert sampler.escaped_cgroup == set()  # once may be a fork not yet attached
    assert sampler.sample_once(walk=True).total_bytes == 300 << 20  # still the cgroup's
    assert sampler.escaped_cgroup == {601}
    # The cgroup's totals now miss a process of the tree: every sample walks it.
    now[0] = 0.1
    assert sampler.sample_once().total_bytes == 150 << 20


def test_process_missing_from_the_cgroup_only_once_has_not_escaped(fake_proc):
    cgroup = FakeCounters({ROOT})
    sampler, _ = make_sampler(fake_proc, cgroup=cgroup)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    sampler.sample_once(walk=True)
    cgroup.inside.add(601)  # cgroup_post_fork has run by now
    sampler.sample_once(walk=True)
    sampler.sample_once(walk=True)
    assert sampler.escaped_cgroup == set()


def test_with_a_cgroup_a_sample_is_its_totals_and_the_walk_waits_its_turn(fake_proc):
    cgroup = FakeCounters({ROOT, 601}, ram_bytes=180 << 20, swap_bytes=20 << 20)
    sampler, now = make_sampler(fake_proc, cgroup=cgroup)
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB, hwm_kb=70 * MIB_KB)
    first = sampler.sample_once()
    assert (first.total_bytes, first.rss_bytes, first.swap_bytes) == (
        200 << 20,
        180 << 20,
        20 << 20,
    )
    assert (first.processes, first.pss_bytes) == (2, None)
    assert sampler.walks == 1  # the first sample walks the tree too
    fake_proc.add(602, ppid=ROOT, start=10_002, rss_kb=900 * MIB_KB)
    for step in range(1, 9):
        now[0] = step * 0.1
        sampler.sample_once()
    assert sampler.walks == 1  # not yet due: the processes were not read
    cgroup.inside.add(602)
    now[0] = 0.95
    assert sampler.sample_once().processes == 2  # counted at most once a second
    assert sampler.accumulator.max_process_hwm_bytes == 100 << 20
    assert sampler.accumulator.samples == 10
    now[0] = WALK_EVERY_S
    assert sampler.sample_once().processes == 3
    assert sampler.walks == 2
    assert sampler.accumulator.max_process_hwm_bytes == 900 << 20
    assert sampler.accumulator.max_sample.total_bytes == 200 << 20  # samples stay the cgroup's


def test_the_last_sample_walks_the_tree_whatever_the_schedule(fake_proc):
    cgroup = FakeCounters({ROOT})
    sampler, now = make_sampler(fake_proc, cgroup=cgroup)
    sampler.sample_once()
    fake_proc.add(601, ppid=ROOT, start=10_001, rss_kb=50 * MIB_KB)
    now[0] = 0.1
    sampler.stop()  # the thread was never started: only the last sample is taken
    assert sampler.walks == 2
    assert {p.pid for p in sampler.last_procs} == {ROOT, 601}


def test_a_removed_cgroup_makes_the_sampler_walk_every_sample(fake_proc):
    cgroup = FakeCounters({ROOT}, ram_bytes=300 << 20)
    sampler, now = make_sampler(fake_proc, cgroup=cgroup)
    sampler.sample_once()
    cgroup.usage = None
    now[0] = 0.1
    assert sampler.sample_once().total_bytes == 100 << 20
    now[0] = 0.2
    sampler.sample_once()
    assert (sampler.walks, cgroup.reads) == (3, 2)


def test_pss_reads_every_process_at_every_sample_even_with_a_cgroup(fake_proc):
    cgroup = FakeCounters({ROOT}, ram_bytes=300 << 20)
    sampler, now = make_sampler(fake_proc, cgroup=cgroup, pss=True, root_pss_kb=40 * MIB_KB)
    for step in range(3):
        now[0] = step * 0.1
        assert sampler.sample_once().pss_bytes == 40 << 20
    assert (sampler.walks, cgroup.reads) == (3, 0)


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
