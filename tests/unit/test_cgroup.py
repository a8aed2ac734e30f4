"""memwatch.cgroup on fake /proc/self files and a fake cgroup filesystem (no real cgroups)."""

from __future__ import annotations

import errno
import os

import pytest

from memwatch import cgroup
from memwatch.cgroup import CgroupCounters, JobCgroup, find_memory_cgroup, find_unit_cgroup
from memwatch.errors import CgroupUnavailable
from memwatch.measures import CgroupPeak

MIB = 1 << 20
NAME = "memwatch-4242"


def fake_self(tmp_path, membership, mountinfo):
    procfs = tmp_path / "proc"
    (procfs / "self").mkdir(parents=True)
    (procfs / "self" / "cgroup").write_text(membership)
    (procfs / "self" / "mountinfo").write_text(mountinfo.format(r=tmp_path))
    return str(procfs)


# --- find_memory_cgroup ---------------------------------------------------------------------


def test_hybrid_host_uses_the_v1_memory_hierarchy(cgroupfs_v1):
    version, path = find_memory_cgroup(cgroupfs_v1.procfs_path)
    assert version == 1
    assert path == str(cgroupfs_v1.mount / "process_api/efabd53490690ab5f0b669bc618f1a74")


def test_unified_host_uses_the_v2_tree(cgroupfs_v2):
    version, path = find_memory_cgroup(cgroupfs_v2.procfs_path)
    assert version == 2
    assert path == str(cgroupfs_v2.mount / "user.slice/user-1000.slice/session-3.scope")


def test_hybrid_prefers_v1_even_when_cgroup2_is_listed_first(tmp_path):
    procfs = fake_self(
        tmp_path,
        "4:memory:/batch/job7\n0::/\n",
        "41 31 0:38 / {r}/unified rw - cgroup2 cgroup2 rw\n"
        "35 31 0:32 / {r}/memory rw,relatime - cgroup cgroup rw,memory\n",
    )
    assert find_memory_cgroup(procfs) == (1, f"{tmp_path}/memory/batch/job7")


def test_v1_memory_comounted_with_other_controllers_is_found(tmp_path):
    procfs = fake_self(
        tmp_path,
        "3:cpu,memory:/slurm/uid_1000/job_77\n",
        "35 31 0:32 / {r}/cpu,memory rw - cgroup cgroup rw,cpu,memory\n",
    )
    assert find_memory_cgroup(procfs) == (1, f"{tmp_path}/cpu,memory/slurm/uid_1000/job_77")


def test_container_v2_mount_rooted_at_its_own_cgroup(tmp_path):
    # No cgroup namespace: /proc/self/cgroup shows the host path, and the container's
    # /sys/fs/cgroup is a bind mount whose root (mountinfo field 4) is that same cgroup.
    procfs = fake_self(
        tmp_path,
        "0::/system.slice/docker-ab12.scope\n",
        "1234 1200 0:30 /system.slice/docker-ab12.scope {r}/sys/fs/cgroup ro,nosuid - "
        "cgroup2 cgroup rw\n",
    )
    assert find_memory_cgroup(procfs) == (2, f"{tmp_path}/sys/fs/cgroup")


def test_container_v2_nested_below_the_mount_root(tmp_path):
    procfs = fake_self(
        tmp_path,
        "0::/system.slice/docker-ab12.scope/init\n",
        "1234 1200 0:30 /system.slice/docker-ab12.scope {r}/sys/fs/cgroup rw - cgroup2 cgroup rw\n",
    )
    assert find_memory_cgroup(procfs) == (2, f"{tmp_path}/sys/fs/cgroup/init")


def test_container_v1_mount_rooted_at_its_own_cgroup(tmp_path):
    procfs = fake_self(
        tmp_path,
        "4:memory:/docker/ab12\n0::/\n",
        "900 800 0:32 /docker/ab12 {r}/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
    )
    assert find_memory_cgroup(procfs) == (1, f"{tmp_path}/sys/fs/cgroup/memory")


def test_container_with_cgroup_namespace_is_at_the_mountpoint(tmp_path):
    procfs = fake_self(
        tmp_path, "0::/\n", "50 40 0:30 / {r}/sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    )
    assert find_memory_cgroup(procfs) == (2, f"{tmp_path}/sys/fs/cgroup")


def test_no_cgroup_filesystem_mounted_is_unavailable(tmp_path):
    procfs = fake_self(
        tmp_path,
        "4:memory:/process_api/x\n0::/\n",
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "31 23 0:28 / {r}/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n",
    )
    with pytest.raises(CgroupUnavailable, match="no memory cgroup"):
        find_memory_cgroup(procfs)


def test_v1_membership_without_a_mounted_memory_hierarchy_is_unavailable(tmp_path):
    procfs = fake_self(
        tmp_path,
        "4:memory:/process_api/x\n1:cpu:/\n0::/\n",
        "32 31 0:29 / {r}/cpu rw - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / {r}/unified rw - cgroup2 cgroup2 rw\n",
    )
    with pytest.raises(CgroupUnavailable):
        find_memory_cgroup(procfs)


def test_missing_proc_self_cgroup_is_unavailable_and_says_where(tmp_path):
    with pytest.raises(CgroupUnavailable, match=f"{tmp_path}/self/cgroup"):
        find_memory_cgroup(str(tmp_path))


# --- read_peak ------------------------------------------------------------------------------


def job_dir(tmp_path, files):
    d = tmp_path / NAME
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return JobCgroup(1 if "memory.max_usage_in_bytes" in files else 2, str(d), str(tmp_path))


def test_read_peak_v1_takes_ram_and_memsw_peaks_and_oom_kills(tmp_path):
    job = job_dir(
        tmp_path,
        {
            "memory.max_usage_in_bytes": f"{300 * MIB}\n",
            "memory.memsw.max_usage_in_bytes": f"{420 * MIB}\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            # Hierarchical totals count; the local inactive_file/active_file lines do not.
            "memory.stat": "cache 999\ninactive_file 1\nactive_file 2\n"
            f"total_inactive_file {30 * MIB}\ntotal_active_file {10 * MIB}\n",
        },
    )
    assert job.read_peak() == CgroupPeak(1, 300 * MIB, 420 * MIB, True, 2, 40 * MIB)


def test_read_peak_v1_without_swap_accounting_has_no_total(tmp_path):
    # swapaccount=0: the memsw files do not exist.
    job = job_dir(
        tmp_path,
        {
            "memory.max_usage_in_bytes": f"{300 * MIB}\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n",
        },
    )
    assert job.read_peak() == CgroupPeak(1, 300 * MIB, None, True, 0)


def test_read_peak_v2_sums_ram_and_swap_peaks_as_inexact(tmp_path):
    job = job_dir(
        tmp_path,
        {
            "memory.peak": f"{300 * MIB}\n",
            "memory.swap.peak": f"{100 * MIB}\n",
            "memory.events": "low 0\nhigh 0\nmax 12\noom 3\noom_kill 1\noom_group_kill 0\n",
            "memory.stat": f"anon 1\nfile {99 * MIB}\nactive_file {5 * MIB}\n"
            f"inactive_file {7 * MIB}\n",
        },
    )
    assert job.read_peak() == CgroupPeak(2, 300 * MIB, 400 * MIB, False, 1, 12 * MIB)


def test_read_peak_v2_without_swap_use_is_exact(tmp_path):
    job = job_dir(
        tmp_path,
        {"memory.peak": f"{300 * MIB}\n", "memory.swap.peak": "0\n", "memory.events": ""},
    )
    assert job.read_peak() == CgroupPeak(2, 300 * MIB, 300 * MIB, True, 0)


def test_read_peak_v2_before_linux_6_5_has_no_swap_peak_and_no_total(tmp_path):
    job = job_dir(tmp_path, {"memory.peak": f"{300 * MIB}\n", "memory.events": "oom_kill 0\n"})
    peak = job.read_peak()
    assert (peak.ram_bytes, peak.total_bytes) == (300 * MIB, None)


def test_pids_of_a_vanished_cgroup_is_empty(tmp_path):
    assert JobCgroup(2, str(tmp_path / "gone"), str(tmp_path)).pids() == set()


# --- create / remove, cgroup v1 -------------------------------------------------------------


def test_create_v1_makes_the_job_cgroup_inside_memwatchs_own(cgroupfs_v1):
    fs = cgroupfs_v1
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    assert job.version == 1
    assert job.parent == str(fs.own)
    assert job.path == str(fs.own / NAME)
    assert os.path.isdir(job.path)
    assert job.procs_path == str(fs.own / NAME / "cgroup.procs")
    assert job.read_peak() == CgroupPeak(1, 0, 0, True, 0)


def test_create_v1_remakes_an_empty_stale_cgroup_so_its_old_peak_is_gone(cgroupfs_v1):
    stale = cgroupfs_v1.own / NAME
    os.mkdir(stale)  # left by a killed memwatch with the same pid
    (stale / "memory.memsw.max_usage_in_bytes").write_text("209715200\n")
    job = JobCgroup.create(NAME, procfs=cgroupfs_v1.procfs_path)
    assert os.path.isdir(job.path)
    assert job.read_peak().total_bytes != 209715200


def test_create_v1_refuses_a_stale_cgroup_that_still_has_processes(cgroupfs_v1):
    os.mkdir(cgroupfs_v1.own / NAME)
    cgroupfs_v1.set_procs(cgroupfs_v1.own / NAME, [31337])
    with pytest.raises(CgroupUnavailable, match=str(cgroupfs_v1.own)):
        JobCgroup.create(NAME, procfs=cgroupfs_v1.procfs_path)
    assert cgroupfs_v1.procs(cgroupfs_v1.own / NAME) == [31337]


def test_create_removes_empty_job_cgroups_of_memwatches_that_are_gone(cgroupfs_v1):
    fs = cgroupfs_v1
    for name in ("memwatch-101", "memwatch-102-self", "memwatch-103", "memwatch-777"):
        os.mkdir(fs.own / name)
    fs.set_procs(fs.own / "memwatch-103", [31337])  # daemonized leftovers: kept
    (fs.procfs / "777").mkdir()  # a memwatch still running: its cgroup is its own
    (fs.procfs / "777" / "stat").write_text("777 (memwatch) S 1 1 1 0 -1\n")
    os.mkdir(fs.own / "memwatch-test-5")  # not a job cgroup name
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    assert job.stale_removed == (str(fs.own / "memwatch-101"), str(fs.own / "memwatch-102-self"))
    left = sorted(p.name for p in fs.own.iterdir() if p.is_dir())
    assert left == ["memwatch-103", NAME, "memwatch-777", "memwatch-test-5"]


def test_create_v1_without_permission_is_unavailable(cgroupfs_v1, monkeypatch):
    def denied(path, mode=0o777):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(os, "mkdir", denied)
    with pytest.raises(CgroupUnavailable, match="Permission denied"):
        JobCgroup.create(NAME, procfs=cgroupfs_v1.procfs_path)


def test_remove_v1_moves_leftovers_to_the_parent_and_deletes_the_cgroup(cgroupfs_v1):
    fs = cgroupfs_v1
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    fs.set_procs(job.path, [7002, 7001])  # daemonized descendants still running
    job.remove()
    assert not os.path.exists(job.path)
    assert sorted(fs.procs(fs.own)) == sorted([os.getpid(), 7001, 7002])
    assert (str(fs.own / "cgroup.procs"), "7001") in fs.writes


def test_remove_of_an_empty_cgroup_writes_no_pids(cgroupfs_v1):
    fs = cgroupfs_v1
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    job.remove()
    assert not os.path.exists(job.path)
    assert fs.writes == []


def test_remove_twice_is_harmless(cgroupfs_v1):
    job = JobCgroup.create(NAME, procfs=cgroupfs_v1.procfs_path)
    job.remove()
    job.remove()


def test_remove_retries_while_exiting_tasks_keep_the_cgroup_busy(cgroupfs_v1):
    fs = cgroupfs_v1
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    fs.rmdir_busy[job.path] = 2
    job.remove()
    assert not os.path.exists(job.path)
    assert len(fs.sleeps) == 2


# --- create / remove, cgroup v2 -------------------------------------------------------------


def test_create_v2_without_a_delegated_memory_controller_says_how_to_fix(cgroupfs_v2):
    fs = cgroupfs_v2
    fs.set_controllers(fs.own, "cgroup.controllers", "cpu pids")
    with pytest.raises(CgroupUnavailable) as info:
        JobCgroup.create(NAME, procfs=fs.procfs_path)
    message = str(info.value)
    assert str(fs.own) in message
    assert "Delegate=yes" in message
    assert sorted(p.name for p in fs.own.iterdir() if p.is_dir()) == []
    assert fs.procs(fs.own) == [os.getpid()]


def test_create_v2_moves_memwatch_into_a_leaf_before_enabling_memory(cgroupfs_v2):
    fs = cgroupfs_v2
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    leaf = fs.own / f"{NAME}-self"
    assert job.version == 2
    assert job.path == str(fs.own / NAME)
    assert fs.procs(leaf) == [os.getpid()]
    assert fs.procs(fs.own) == []
    assert "memory" in fs.controllers(fs.own, "cgroup.subtree_control")
    assert os.path.exists(os.path.join(job.path, "memory.peak"))
    assert job.read_peak() == CgroupPeak(2, 0, 0, True, 0)


def test_create_v2_when_memory_is_already_enabled_below_needs_no_leaf(cgroupfs_v2):
    fs = cgroupfs_v2
    fs.set_procs(fs.own, [])
    fs.set_controllers(fs.own, "cgroup.subtree_control", "memory")
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    assert os.path.isdir(job.path)
    assert not os.path.exists(fs.own / f"{NAME}-self")
    assert not any(path.endswith("cgroup.procs") for path, _ in fs.writes)


def test_remove_v2_puts_everything_back(cgroupfs_v2):
    fs = cgroupfs_v2
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    job.remove()
    assert not os.path.exists(job.path)
    assert not os.path.exists(fs.own / f"{NAME}-self")
    assert fs.procs(fs.own) == [os.getpid()]
    assert "memory" not in fs.controllers(fs.own, "cgroup.subtree_control")


def test_remove_v2_moves_leftovers_next_to_memwatch_and_keeps_their_leaf(cgroupfs_v2):
    fs = cgroupfs_v2
    job = JobCgroup.create(NAME, procfs=fs.procfs_path)
    fs.set_procs(job.path, [9001])
    job.remove()
    assert not os.path.exists(job.path)
    leaf = fs.own / f"{NAME}-self"
    assert fs.procs(leaf) == [9001]  # the leaf stays: the daemon still lives in it
    assert fs.procs(fs.own) == [os.getpid()]


def test_create_v2_with_other_processes_in_memwatchs_cgroup_is_unavailable_and_undone(
    cgroupfs_v2,
):
    fs = cgroupfs_v2
    fs.set_procs(fs.own, [os.getpid(), 777])  # e.g. the login shell shares the scope
    with pytest.raises(CgroupUnavailable) as info:
        JobCgroup.create(NAME, procfs=fs.procfs_path)
    assert "other processes share" in str(info.value)
    assert "Delegate=yes" in str(info.value)
    assert sorted(fs.procs(fs.own)) == sorted([os.getpid(), 777])
    assert not os.path.exists(fs.own / f"{NAME}-self")
    assert not os.path.exists(fs.own / NAME)


def test_create_v2_without_memory_peak_is_unavailable_and_undone(cgroupfs_v2):
    fs = cgroupfs_v2
    fs.memory_peak_supported = False  # Linux < 5.19
    with pytest.raises(CgroupUnavailable, match="memory.peak"):
        JobCgroup.create(NAME, procfs=fs.procfs_path)
    assert not os.path.exists(fs.own / NAME)
    assert not os.path.exists(fs.own / f"{NAME}-self")
    assert fs.procs(fs.own) == [os.getpid()]
    assert "memory" not in fs.controllers(fs.own, "cgroup.subtree_control")


def test_create_v2_failing_after_the_leaf_move_puts_memwatch_back(cgroupfs_v2, monkeypatch):
    # mkdir of the job cgroup fails (EAGAIN: cgroup.max.descendants reached) after memwatch
    # already moved itself into its leaf and enabled +memory: create() must undo both, as
    # it does when +memory or memory.peak fail, or memwatch is left in a leaf that nobody
    # removes.
    fs = cgroupfs_v2
    fake_mkdir = os.mkdir

    def mkdir(path, mode=0o777, **kw):
        if os.fspath(path) == str(fs.own / NAME):
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)
        fake_mkdir(path, mode, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(CgroupUnavailable):
        JobCgroup.create(NAME, procfs=fs.procfs_path)
    assert fs.procs(fs.own) == [os.getpid()]
    assert not os.path.exists(fs.own / f"{NAME}-self")
    assert "memory" not in fs.controllers(fs.own, "cgroup.subtree_control")


def test_write_helper_writes_text(tmp_path):
    target = tmp_path / "cgroup.procs"
    cgroup._write(str(target), "123")
    assert target.read_text() == "123"


# --- CgroupCounters: the kernel's totals ------------------------------------------------------


def test_v1_totals_are_the_usage_and_memsw_page_counters(tmp_path):
    (tmp_path / "memory.usage_in_bytes").write_text(f"{300 * MIB}\n")
    (tmp_path / "memory.memsw.usage_in_bytes").write_text(f"{340 * MIB}\n")
    (tmp_path / "cgroup.procs").write_text("10\n11\n")
    counters = CgroupCounters(1, str(tmp_path))
    usage = counters.read()
    assert (usage.ram_bytes, usage.swap_bytes, counters.processes()) == (300 * MIB, 40 * MIB, 2)
    (tmp_path / "memory.usage_in_bytes").write_text(f"{310 * MIB}\n")  # read again: pread
    assert counters.read().ram_bytes == 310 * MIB
    counters.close()


def test_v1_without_swap_accounting_has_unknown_swap(tmp_path):
    (tmp_path / "memory.usage_in_bytes").write_text(f"{300 * MIB}\n")
    assert CgroupCounters(1, str(tmp_path)).read().swap_bytes is None


def test_v2_totals_are_memory_current_and_swap_current(tmp_path):
    (tmp_path / "memory.current").write_text(f"{300 * MIB}\n")
    (tmp_path / "memory.swap.current").write_text(f"{25 * MIB}\n")
    (tmp_path / "memory.peak").write_text(f"{900 * MIB}\n")
    counters = CgroupCounters(2, str(tmp_path))
    usage = counters.read()
    assert (usage.ram_bytes, usage.swap_bytes) == (300 * MIB, 25 * MIB)
    assert counters.peak_bytes() == 900 * MIB


def test_v1_peak_is_ram_plus_swap_where_accounted_else_ram(tmp_path):
    (tmp_path / "memory.usage_in_bytes").write_text("0\n")
    (tmp_path / "memory.max_usage_in_bytes").write_text(f"{500 * MIB}\n")
    assert CgroupCounters(1, str(tmp_path)).peak_bytes() == 500 * MIB  # swapaccount=0
    (tmp_path / "memory.memsw.max_usage_in_bytes").write_text(f"{560 * MIB}\n")
    counters = CgroupCounters(1, str(tmp_path))
    assert counters.peak_bytes() == 560 * MIB
    (tmp_path / "memory.memsw.max_usage_in_bytes").write_text(f"{600 * MIB}\n")
    assert counters.peak_bytes() == 600 * MIB  # read again from the file kept open


def test_a_cgroup_without_memory_files_is_unavailable_and_says_which(tmp_path):
    with pytest.raises(CgroupUnavailable, match="memory.current"):
        CgroupCounters(2, str(tmp_path))


def test_a_removed_cgroup_is_unavailable_at_the_next_read(tmp_path, monkeypatch):
    (tmp_path / "memory.usage_in_bytes").write_text("0\n")
    counters = CgroupCounters(1, str(tmp_path))

    def gone(fd, size, offset):
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    monkeypatch.setattr(os, "pread", gone)
    with pytest.raises(CgroupUnavailable, match="No such device"):
        counters.read()


def test_processes_of_nested_cgroups_are_counted_with_nested(tmp_path):
    (tmp_path / "memory.current").write_text("0\n")
    (tmp_path / "cgroup.procs").write_text("10\n")
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload" / "cgroup.procs").write_text("11\n12\n")
    assert CgroupCounters(2, str(tmp_path)).processes() == 1
    assert CgroupCounters(2, str(tmp_path), nested=True).processes() == 3


def test_pids_are_read_to_the_end_of_a_file_served_a_page_at_a_time(tmp_path, monkeypatch):
    # A seq_file (cgroup.procs) answers about a page per read, however much is asked for:
    # stopping at the first short read lost processes (taken for escaped from the cgroup).
    pids = list(range(10_000, 12_000))
    (tmp_path / "memory.usage_in_bytes").write_text("0\n")
    (tmp_path / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 4096)))
    counters = CgroupCounters(1, str(tmp_path))
    assert counters.pids() == set(pids)
    assert counters.processes() == len(pids)


def test_a_units_cgroup_is_found_in_its_slice(tmp_path):
    (tmp_path / "system.slice" / "system-getty.slice" / "getty@tty1.service").mkdir(parents=True)
    (tmp_path / "user.slice" / "user-1000.slice" / "app.service").mkdir(parents=True)
    (tmp_path / "system.slice" / "app.service-helper").mkdir()
    found = find_unit_cgroup(str(tmp_path), "getty@tty1.service")
    assert found == str(tmp_path / "system.slice" / "system-getty.slice" / "getty@tty1.service")
    assert find_unit_cgroup(str(tmp_path), "app.service").endswith("user-1000.slice/app.service")
    assert find_unit_cgroup(str(tmp_path), "absent.service") is None
