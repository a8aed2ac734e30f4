"""memwatch.tree.TreeTracker against a fake /proc tree."""

from __future__ import annotations

import pytest

from memwatch.errors import ProcessGone
from memwatch.tree import TreeTracker

REAPER = 500  # memwatch itself, a child subreaper
ROOT = 600  # the wrapped command
ROOT_START = 10_000


@pytest.fixture
def proc(fake_proc):
    """A machine with init, an unrelated daemon, memwatch and the job's root process."""
    fake_proc.add(1, ppid=0, start=1, comm="systemd")
    fake_proc.add(2, ppid=0, start=1, comm="kthreadd", user_memory=False)
    fake_proc.add(300, ppid=1, start=50, comm="sshd")
    fake_proc.add(REAPER, ppid=300, start=9_990, comm="memwatch")
    fake_proc.add(ROOT, ppid=REAPER, start=ROOT_START, comm="make")
    return fake_proc


def tracker(proc, reaper=REAPER):
    return TreeTracker(ROOT, reaper_pid=reaper, procfs=proc.path)


def test_root_alone_is_the_only_member(proc):
    assert tracker(proc).refresh() == {ROOT: ROOT_START}


def test_children_and_grandchildren_are_members_with_their_start_ticks(proc):
    t = tracker(proc)
    t.refresh()
    proc.add(601, ppid=ROOT, start=10_010)
    proc.add(602, ppid=ROOT, start=10_011)
    t.refresh()
    proc.add(700, ppid=601, start=10_020)
    assert t.refresh() == {ROOT: ROOT_START, 601: 10_010, 602: 10_011, 700: 10_020}


def test_grandchild_found_in_the_same_listing_as_its_parent(proc):
    t = tracker(proc)
    proc.add(650, ppid=ROOT, start=10_010)
    proc.add(651, ppid=650, start=10_011)
    proc.add(652, ppid=651, start=10_012)
    assert set(t.refresh()) == {ROOT, 650, 651, 652}


def test_descendant_with_a_lower_pid_than_its_parent_is_found(proc):
    # After pid wrap-around a grandchild can get a smaller pid than its parent.
    t = tracker(proc)
    proc.add(9000, ppid=ROOT, start=10_010)
    proc.add(17, ppid=9000, start=10_011)
    proc.add(16, ppid=17, start=10_012)
    assert set(t.refresh()) == {ROOT, 9000, 17, 16}


def test_orphan_reparented_to_the_reaper_is_a_member(proc):
    # A grandchild that double-forked: its parent exited, the subreaper adopted it.
    t = tracker(proc)
    t.refresh()
    proc.add(800, ppid=REAPER, start=10_500, comm="daemonized")
    assert 800 in t.refresh()


def test_orphan_born_in_the_same_tick_as_the_root_is_a_member(proc):
    t = tracker(proc)
    proc.add(801, ppid=REAPER, start=ROOT_START)
    assert 801 in t.refresh()


def test_reaper_children_older_than_the_root_are_not_members(proc):
    # memwatch's own helpers, started before the job, are not the job's.
    proc.add(510, ppid=REAPER, start=9_995, comm="helper")
    t = tracker(proc)
    assert 510 not in t.refresh()


def test_reaper_children_count_only_when_a_reaper_is_given(proc):
    proc.add(800, ppid=REAPER, start=10_500)
    assert 800 not in tracker(proc, reaper=None).refresh()


def test_unrelated_processes_and_their_children_are_excluded(proc):
    t = tracker(proc)
    proc.add(1200, ppid=300, start=10_100, comm="bash")
    proc.add(1201, ppid=1200, start=10_200, comm="vim")
    proc.add(1202, ppid=1, start=10_300, comm="cron job")
    members = t.refresh()
    proc.add(1203, ppid=1200, start=10_400)
    members |= t.refresh()
    assert set(members) == {ROOT}


def test_member_that_exits_is_dropped(proc):
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    proc.add(602, ppid=ROOT, start=10_011)
    assert set(t.refresh()) == {ROOT, 601, 602}
    proc.remove(601)
    assert set(t.refresh()) == {ROOT, 602}


def test_child_of_an_exited_member_stays_a_member_after_reparenting(proc):
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    proc.add(700, ppid=601, start=10_020)
    t.refresh()
    proc.remove(601)
    proc.add(700, ppid=1, start=10_020)  # no subreaper in between: init adopted it
    assert set(t.refresh()) == {ROOT, 700}


def test_root_that_exits_is_dropped_but_its_descendants_remain(proc):
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    t.refresh()
    proc.remove(ROOT)
    proc.add(601, ppid=REAPER, start=10_010)
    assert t.refresh() == {601: 10_010}


def test_pid_that_vanishes_between_listing_and_reading_is_skipped(proc):
    t = tracker(proc)
    (proc.root / "4000").mkdir()  # listed, but its files are already gone
    proc.add(601, ppid=ROOT, start=10_010)
    assert set(t.refresh()) == {ROOT, 601}


def test_unreadable_stat_is_skipped_and_retried_next_refresh(proc, deny_open):
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    allow_again = deny_open(f"{proc.path}/601/stat")
    assert 601 not in t.refresh()
    allow_again()
    assert 601 in t.refresh()


def test_a_child_older_than_its_member_parent_is_not_a_member(proc):
    # 650's stat names ppid 601, but 650 started before 601 did: its real parent had pid
    # 601, exited, and the pid went to a child of the job (psutil's Process.children rule).
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    proc.add(650, ppid=601, start=10_005, comm="unrelated")
    proc.add(651, ppid=601, start=10_010)  # born in the same tick as its parent: a child
    assert t.refresh() == {ROOT: ROOT_START, 601: 10_010, 651: 10_010}


def test_forget_reclassifies_a_reused_pid(proc):
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    t.refresh()
    # 601 exited and an unrelated process got the same pid before the next listing.
    proc.add(601, ppid=300, start=10_900, comm="unrelated")
    t.forget(601)
    assert 601 not in t.refresh()


def test_forget_then_same_parent_rejoins_with_the_new_start(proc):
    t = tracker(proc)
    proc.add(601, ppid=ROOT, start=10_010)
    t.refresh()
    proc.add(601, ppid=ROOT, start=10_950)
    t.forget(601)
    assert t.refresh()[601] == 10_950


def test_forget_of_an_unknown_pid_is_harmless(proc):
    t = tracker(proc)
    t.forget(99999)
    assert t.refresh() == {ROOT: ROOT_START}


def test_refresh_returns_a_copy_the_caller_may_change(proc):
    t = tracker(proc)
    members = t.refresh()
    members.clear()
    assert t.refresh() == {ROOT: ROOT_START}


def test_missing_root_raises_process_gone(fake_proc):
    with pytest.raises(ProcessGone):
        TreeTracker(ROOT, procfs=fake_proc.path)
