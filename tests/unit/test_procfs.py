"""memwatch.procfs against a fake /proc tree."""

from __future__ import annotations

import errno
import os

import pytest

from memwatch import procfs
from memwatch.errors import PermissionDenied, ProcessGone

KIB = 1024


def test_read_stat_returns_ppid_and_start_ticks(fake_proc):
    fake_proc.add(4590, ppid=4584, start=49362, comm="cat")
    assert procfs.read_stat(4590, procfs=fake_proc.path) == (4584, 49362)


@pytest.mark.parametrize(
    "comm",
    ["tmux: server", "a) b (c) 1 2 3", ")", "x) S 99 99 99"],
    ids=["spaces", "parens-and-digits", "lone-paren", "fake-fields"],
)
def test_read_stat_splits_after_the_last_paren_whatever_the_comm(fake_proc, comm):
    fake_proc.add(321, ppid=7, start=8888, comm=comm)
    assert procfs.read_stat(321, procfs=fake_proc.path) == (7, 8888)


def test_read_proc_mem_takes_rss_swap_hwm_from_status(fake_proc):
    fake_proc.add(100, start=555, rss_kb=204800, swap_kb=51200, hwm_kb=307200)
    mem = procfs.read_proc_mem(100, procfs=fake_proc.path)
    assert mem.pid == 100
    assert mem.start_ticks == 555
    assert mem.rss_bytes == 204800 * KIB
    assert mem.swap_bytes == 51200 * KIB
    assert mem.hwm_bytes == 307200 * KIB
    assert mem.pss_bytes is None
    assert mem.swap_pss_bytes is None


def test_read_proc_mem_without_pss_does_not_open_smaps_rollup(fake_proc):
    fake_proc.add(100)
    (fake_proc.root / "100" / "smaps_rollup").unlink()
    assert procfs.read_proc_mem(100, procfs=fake_proc.path).pss_bytes is None


def test_read_proc_mem_with_pss_reads_pss_and_swappss_not_their_neighbours(fake_proc):
    # Pss_Dirty/Pss_Anon follow Pss and Swap precedes SwapPss: a prefix match would be wrong.
    fake_proc.add(100, rss_kb=9000, swap_kb=4000, pss_kb=3000, swap_pss_kb=1500)
    mem = procfs.read_proc_mem(100, pss=True, procfs=fake_proc.path)
    assert mem.pss_bytes == 3000 * KIB
    assert mem.swap_pss_bytes == 1500 * KIB
    assert mem.rss_bytes == 9000 * KIB
    assert mem.swap_bytes == 4000 * KIB
    assert mem.counted_bytes(pss=True) == (3000 + 1500) * KIB
    assert mem.counted_bytes(pss=False) == (9000 + 4000) * KIB


def test_read_proc_mem_never_reports_hwm_below_rss(fake_proc):
    fake_proc.add(100, rss_kb=5000, hwm_kb=4000)
    mem = procfs.read_proc_mem(100, procfs=fake_proc.path)
    assert mem.hwm_bytes == 5000 * KIB


@pytest.mark.parametrize("state", ["I", "Z"], ids=["kernel-thread", "zombie"])
def test_process_without_vm_lines_holds_no_memory(fake_proc, state):
    fake_proc.add(2, ppid=0, comm="kthreadd", state=state, user_memory=False)
    mem = procfs.read_proc_mem(2, procfs=fake_proc.path)
    assert (mem.rss_bytes, mem.swap_bytes, mem.hwm_bytes) == (0, 0, 0)


def test_zombie_with_empty_smaps_rollup_has_zero_pss(fake_proc):
    fake_proc.add(77, state="Z", user_memory=False)
    mem = procfs.read_proc_mem(77, pss=True, procfs=fake_proc.path)
    assert (mem.pss_bytes, mem.swap_pss_bytes) == (0, 0)


def test_missing_pid_raises_process_gone_with_the_pid(fake_proc):
    with pytest.raises(ProcessGone) as info:
        procfs.read_proc_mem(4242, procfs=fake_proc.path)
    assert info.value.pid == 4242
    assert "4242" in str(info.value)


def test_pid_that_exits_between_stat_and_status_raises_process_gone(fake_proc):
    fake_proc.add(100)
    (fake_proc.root / "100" / "status").unlink()
    with pytest.raises(ProcessGone):
        procfs.read_proc_mem(100, procfs=fake_proc.path)


def test_missing_stat_raises_process_gone(fake_proc):
    with pytest.raises(ProcessGone) as info:
        procfs.read_stat(31337, procfs=fake_proc.path)
    assert info.value.pid == 31337


def test_unreadable_smaps_rollup_raises_permission_denied_naming_the_file(fake_proc, deny_open):
    fake_proc.add(100)
    denied = f"{fake_proc.path}/100/smaps_rollup"
    deny_open(denied)
    assert procfs.read_proc_mem(100, procfs=fake_proc.path).rss_bytes > 0  # status still fine
    with pytest.raises(PermissionDenied) as info:
        procfs.read_proc_mem(100, pss=True, procfs=fake_proc.path)
    assert info.value.pid == 100
    assert info.value.path == denied
    assert denied in str(info.value)


def test_esrch_from_read_after_open_raises_process_gone(fake_proc, monkeypatch):
    # The kernel answers ESRCH to a read of /proc/PID/... whose task exited after open().
    fake_proc.add(100)
    real_open, real_read = os.open, os.read
    doomed: set[int] = set()

    def fake_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if str(path).endswith("/100/status"):
            doomed.add(fd)
        return fd

    def fake_read(fd, n):
        if fd in doomed:
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
        return real_read(fd, n)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "read", fake_read)
    with pytest.raises(ProcessGone):
        procfs.read_proc_mem(100, procfs=fake_proc.path)


def test_other_os_errors_are_not_disguised_as_process_gone(fake_proc, monkeypatch):
    fake_proc.add(100)

    def fake_open(path, flags, *args, **kwargs):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), path)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(OSError) as info:
        procfs.read_stat(100, procfs=fake_proc.path)
    assert info.value.errno == errno.EMFILE
    assert not isinstance(info.value, ProcessGone)


def test_list_pids_returns_only_numeric_entries(fake_proc):
    for pid in (1, 42, 31337):
        fake_proc.add(pid)
    assert sorted(procfs.list_pids(fake_proc.path)) == [1, 42, 31337]


def test_read_vmstat_returns_only_the_asked_counters(fake_proc):
    fake_proc.vmstat(pswpin=11, pswpout=1770237, oom_kill=3)
    assert procfs.read_vmstat(("pswpout", "oom_kill"), fake_proc.path) == {
        "pswpout": 1770237,
        "oom_kill": 3,
    }


def test_read_vmstat_leaves_out_absent_keys(fake_proc):
    out = procfs.read_vmstat(("pswpout", "no_such_counter"), fake_proc.path)
    assert out == {"pswpout": 1770237}


def test_read_vmstat_does_not_match_a_key_by_prefix(fake_proc):
    # "swap_ra_hit" and "swap_ra" share a prefix; "swap" is in neither as a whole name.
    assert procfs.read_vmstat(("swap", "swap_ra"), fake_proc.path) == {"swap_ra": 79864}


def test_read_vmstat_without_the_file_is_empty(tmp_path):
    assert procfs.read_vmstat(("pswpout",), str(tmp_path)) == {}


def test_is_running_is_false_for_zombies_and_gone_pids(fake_proc):
    from memwatch.procfs import is_running

    fake_proc.add(700, state="S")
    fake_proc.add(701, state="Z", user_memory=False)
    assert is_running(700, fake_proc.path)
    assert not is_running(701, fake_proc.path)
    assert not is_running(702, fake_proc.path)


def test_status_keys_match_only_at_a_line_start_not_in_the_name(fake_proc):
    # A process may set its own comm (the Name: line) to look like a memory field.
    fake_proc.add(700, comm="VmSwap: 9999999", rss_kb=2048, swap_kb=0)
    mem = procfs.read_proc_mem(700, procfs=fake_proc.path)
    assert (mem.rss_bytes, mem.swap_bytes) == (2048 * 1024, 0)
