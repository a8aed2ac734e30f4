"""memwatch.psutil_backend and memwatch.backend over fake psutil processes: no real process read.

Each fake platform answers with the field names psutil 7 gives there (Linux: swap and pss
only in memory_full_info; macOS: neither; Windows: peak_wset), so what the backend
reports, and the warnings it adds, follow from psutil's answer and not from a table.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import psutil
import pytest

from memwatch import psutil_backend
from memwatch.backend import open_backend
from memwatch.errors import PermissionDenied, ProcessGone, UsageError
from memwatch.proc_backend import ProcBackend
from memwatch.psutil_backend import (
    NO_HWM,
    NO_PSS,
    NO_SWAP,
    NO_SWAP_DETECTION,
    NO_SWAP_PSS,
    PsutilBackend,
    PsutilTreeTracker,
)
from memwatch.rusage import maxrss_bytes

MIB = 1 << 20
ME, REAPER, ROOT = 100, 100, 600  # memwatch is the reaper, the job's root its child

LINUX = (
    namedtuple("pmem", "rss vms shared text lib data dirty"),
    namedtuple("pfullmem", "rss vms shared text lib data dirty uss pss swap"),
)
MACOS = (
    namedtuple("pmem", "rss vms pfaults pageins"),
    namedtuple("pfullmem", "rss vms pfaults pageins uss"),
)
_WIN_FIELDS = (
    "rss vms num_page_faults peak_wset wset peak_paged_pool paged_pool peak_nonpaged_pool "
    "nonpaged_pool pagefile peak_pagefile private"
)
WINDOWS = (namedtuple("pmem", _WIN_FIELDS), namedtuple("pfullmem", _WIN_FIELDS + " uss"))


@dataclass
class Entry:
    ppid: int
    created: float
    rss: int
    swap: int = 0
    pss: int = 0
    peak: int = 0
    fails: type[Exception] | None = None  # raised by memory reads
    status: str = psutil.STATUS_SLEEPING


class FakeSystem:
    """A process table and the ``psutil.Process`` class over it, for one platform's fields."""

    def __init__(self, platform: tuple[type, type]) -> None:
        self.basic, self.full = platform
        self.table: dict[int, Entry] = {ME: Entry(ppid=1, created=500.0, rss=20 * MIB)}
        self.full_reads = 0
        self.listing_fails: type[Exception] | None = None

    def add(self, pid: int, ppid: int, created: float, **kw: object) -> None:
        self.table[pid] = Entry(ppid=ppid, created=created, **kw)  # type: ignore[arg-type]

    def process(self, pid: int | None = None) -> FakeProcess:
        pid = ME if pid is None else pid
        if pid not in self.table:
            raise psutil.NoSuchProcess(pid)
        return FakeProcess(self, pid)

    def mem(self, e: Entry, cls: type) -> object:
        values = {"rss": e.rss, "swap": e.swap, "pss": e.pss, "peak_wset": e.peak}
        return cls(*(values.get(f, 0) for f in cls._fields))


class FakeProcess:
    def __init__(self, system: FakeSystem, pid: int) -> None:
        self.system, self.pid = system, pid
        self._created = system.table[pid].created  # psutil reads it when the object is made

    def _entry(self) -> Entry:
        if self.pid not in self.system.table:
            raise psutil.NoSuchProcess(self.pid)
        entry = self.system.table[self.pid]
        if entry.fails is not None:
            raise entry.fails(self.pid)
        return entry

    def __hash__(self) -> int:
        return hash((self.pid, self._created))  # as psutil: pid and start time

    def create_time(self) -> float:
        return self._created

    def memory_info(self) -> object:
        return self.system.mem(self._entry(), self.system.basic)

    def memory_full_info(self) -> object:
        self.system.full_reads += 1
        return self.system.mem(self._entry(), self.system.full)

    def status(self) -> str:
        if self.pid not in self.system.table:
            raise psutil.NoSuchProcess(self.pid)
        return self.system.table[self.pid].status

    def children(self, recursive: bool = False) -> list[FakeProcess]:
        # As psutil does: one pass over the table; children older than the parent are a
        # reused pid, not a child.
        if self.system.listing_fails is not None:
            raise self.system.listing_fails(self.pid)
        if self.pid not in self.system.table:
            raise psutil.NoSuchProcess(self.pid)
        found, stack = [], [self.pid]
        while stack:
            parent = stack.pop()
            for pid, e in self.system.table.items():
                if e.ppid == parent and e.created >= self._created and pid != parent:
                    found.append(FakeProcess(self.system, pid))
                    if recursive:
                        stack.append(pid)
        return found


def fake_psutil(monkeypatch, platform: tuple[type, type]) -> FakeSystem:
    system = FakeSystem(platform)
    monkeypatch.setattr(psutil_backend.psutil, "Process", system.process)
    return system


# --- reading one process --------------------------------------------------------------------


def test_linux_reads_swap_from_memory_full_info_but_has_no_high_water_mark(monkeypatch):
    system = fake_psutil(monkeypatch, LINUX)
    system.add(ROOT, ME, 1001.5, rss=300 * MIB, swap=40 * MIB, pss=250 * MIB)
    backend = PsutilBackend("linux")
    mem = backend.read_mem(ROOT)
    assert (mem.rss_bytes, mem.swap_bytes, mem.hwm_bytes) == (300 * MIB, 40 * MIB, None)
    assert (mem.pss_bytes, mem.swap_pss_bytes) == (None, None)  # PSS only when asked
    assert mem.start_ticks == hash((ROOT, 1001.5))  # psutil's identity: pid + start time
    assert backend.limitations(pss=False) == [NO_HWM]


def test_linux_pss_is_read_when_asked_and_swap_pss_is_missing(monkeypatch):
    system = fake_psutil(monkeypatch, LINUX)
    system.add(ROOT, ME, 1001.0, rss=300 * MIB, swap=40 * MIB, pss=250 * MIB)
    backend = PsutilBackend("linux")
    mem = backend.read_mem(ROOT, pss=True)
    assert (mem.pss_bytes, mem.swap_pss_bytes) == (250 * MIB, None)
    # Without SwapPss the process's whole swap counts: shared swap is not split.
    assert mem.counted_bytes(pss=True) == 290 * MIB
    assert backend.limitations(pss=True) == [NO_HWM, NO_SWAP_PSS]


def test_macos_gives_rss_only_and_names_what_is_missing(monkeypatch):
    system = fake_psutil(monkeypatch, MACOS)
    system.add(ROOT, ME, 1001.0, rss=300 * MIB)
    backend = PsutilBackend("darwin")
    reads_before = system.full_reads
    mem = backend.read_mem(ROOT, pss=True)
    assert (mem.rss_bytes, mem.swap_bytes, mem.hwm_bytes, mem.pss_bytes) == (
        300 * MIB,
        None,
        None,
        None,
    )
    assert system.full_reads == reads_before  # memory_full_info would cost, for nothing
    assert backend.limitations(pss=True) == [NO_HWM, NO_SWAP, NO_PSS]


def test_windows_peak_working_set_is_the_high_water_mark(monkeypatch):
    system = fake_psutil(monkeypatch, WINDOWS)
    system.add(ROOT, ME, 1001.0, rss=300 * MIB, peak=450 * MIB)
    backend = PsutilBackend("win32")
    mem = backend.read_mem(ROOT)
    assert (mem.hwm_bytes, mem.swap_bytes) == (450 * MIB, None)
    # psutil's swap-out counter is always 0 on Windows: no way to suspect swapping.
    assert backend.system_swapout_bytes() is None
    assert backend.limitations(pss=False) == [NO_SWAP_DETECTION]


@pytest.mark.parametrize(
    ("error", "translated"),
    [
        (psutil.NoSuchProcess, ProcessGone),
        (psutil.ZombieProcess, ProcessGone),
        (psutil.AccessDenied, PermissionDenied),
    ],
)
def test_psutil_errors_become_memwatch_errors_with_the_pid(monkeypatch, error, translated):
    system = fake_psutil(monkeypatch, LINUX)
    system.add(ROOT, ME, 1001.0, rss=MIB, fails=error)
    with pytest.raises(translated) as info:
        PsutilBackend("linux").read_mem(ROOT)
    assert info.value.pid == ROOT
    assert isinstance(info.value.__cause__, error)


def test_a_pid_that_does_not_exist_is_gone(monkeypatch):
    fake_psutil(monkeypatch, LINUX)
    with pytest.raises(ProcessGone):
        PsutilBackend("linux").read_mem(4242)


def test_zombie_and_vanished_processes_are_not_running(monkeypatch):
    system = fake_psutil(monkeypatch, LINUX)
    system.add(ROOT, ME, 1001.0, rss=MIB)
    system.add(601, ROOT, 1002.0, rss=0, status=psutil.STATUS_ZOMBIE)
    backend = PsutilBackend("linux")
    assert backend.is_running(ROOT)
    assert not backend.is_running(601)
    assert not backend.is_running(4242)


def test_system_swapout_is_psutil_sout_or_none(monkeypatch):
    fake_psutil(monkeypatch, LINUX)
    backend = PsutilBackend("linux")
    swap = namedtuple("sswap", "total used free percent sin sout")
    monkeypatch.setattr(psutil_backend.psutil, "swap_memory", lambda: swap(0, 0, 0, 0, 1, 7 * MIB))
    assert backend.system_swapout_bytes() == 7 * MIB

    def broken() -> None:
        raise OSError("no /proc/vmstat")

    monkeypatch.setattr(psutil_backend.psutil, "swap_memory", broken)
    assert backend.system_swapout_bytes() is None


# --- ru_maxrss units --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "raw", "expected"),
    [("linux", 2048, 2 * MIB), ("darwin", 2 * MIB, 2 * MIB), ("freebsd13", 2048, 2 * MIB)],
)
def test_ru_maxrss_is_normalised_to_bytes_by_platform(platform, raw, expected):
    assert maxrss_bytes(raw, platform) == expected


@pytest.mark.parametrize(
    ("platform", "expected"), [("darwin", 30 * MIB), ("linux", 30 * MIB * 1024)]
)
def test_own_high_water_mark_comes_from_rusage_self_in_the_platforms_unit(
    monkeypatch, platform, expected
):
    import resource

    fake_psutil(monkeypatch, LINUX)
    rusage = namedtuple("rusage", "ru_maxrss")
    monkeypatch.setattr(resource, "getrusage", lambda who: rusage(30 * MIB))
    assert PsutilBackend(platform).own_hwm_bytes() == expected


# --- the tree ------------------------------------------------------------------------------


def tree(monkeypatch) -> FakeSystem:
    system = fake_psutil(monkeypatch, LINUX)
    system.add(50, REAPER, 900.0, rss=MIB)  # the caller's older child: not the job's
    system.add(51, 50, 1001.0, rss=MIB)  # ... and its child, born after the job: still not
    system.add(ROOT, REAPER, 1000.0, rss=MIB)
    system.add(601, ROOT, 1001.0, rss=MIB)
    system.add(602, 601, 1002.0, rss=MIB)
    system.add(700, REAPER, 1003.0, rss=MIB)  # an orphan reparented to the subreaper
    system.add(701, 700, 1004.0, rss=MIB)
    system.add(900, 1, 1000.5, rss=MIB)  # unrelated
    return system


def test_tree_is_the_root_and_its_descendants(monkeypatch):
    tree(monkeypatch)
    members = PsutilTreeTracker(ROOT).refresh()
    assert members == {pid: hash((pid, 1000.0 + pid - ROOT)) for pid in (ROOT, 601, 602)}


def test_a_reused_pid_has_another_start_key(monkeypatch):
    system = tree(monkeypatch)
    tracker = PsutilTreeTracker(ROOT)
    before = tracker.refresh()[601]
    system.add(601, 1, 2000.0, rss=MIB)  # 601 exited; an unrelated process got its pid
    assert PsutilBackend("linux").read_mem(601).start_ticks != before
    assert 601 not in tracker.refresh()


def test_orphans_born_after_the_job_and_reparented_to_the_reaper_stay_members(monkeypatch):
    tree(monkeypatch)
    members = PsutilTreeTracker(ROOT, reaper_pid=REAPER).refresh()
    assert set(members) == {ROOT, 601, 602, 700, 701}


def test_root_reaped_leaves_its_orphans_members(monkeypatch):
    system = tree(monkeypatch)
    tracker = PsutilTreeTracker(ROOT, reaper_pid=REAPER)
    del system.table[ROOT]
    for pid in (601,):
        system.table[pid].ppid = REAPER  # reparented when the root exited
    assert set(tracker.refresh()) == {601, 602, 700, 701}


def test_listing_refused_keeps_the_members_known_so_far(monkeypatch):
    system = tree(monkeypatch)
    tracker = PsutilTreeTracker(ROOT)
    first = tracker.refresh()
    system.listing_fails = psutil.AccessDenied
    assert tracker.refresh() == first


def test_tracker_of_a_root_that_is_gone_raises_process_gone(monkeypatch):
    fake_psutil(monkeypatch, LINUX)
    with pytest.raises(ProcessGone):
        PsutilTreeTracker(4242)


# --- choosing the backend ---------------------------------------------------------------------


def test_auto_is_proc_where_proc_self_status_exists(fake_proc):
    (fake_proc.root / "self" / "status").write_text("Name:\tpython3\n")
    assert isinstance(open_backend("auto", procfs=fake_proc.path), ProcBackend)


def test_auto_is_psutil_where_there_is_no_proc(tmp_path):
    backend = open_backend("auto", procfs=str(tmp_path / "no-proc"))
    assert backend.name == "psutil"


def test_proc_backend_where_there_is_no_proc_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--backend proc: .*does not exist.*--backend psutil"):
        open_backend("proc", procfs=str(tmp_path / "no-proc"))


def test_unknown_backend_is_a_usage_error():
    with pytest.raises(UsageError, match="auto, proc, psutil"):
        open_backend("kvm")
