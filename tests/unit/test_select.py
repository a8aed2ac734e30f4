"""Which processes a watch entry selects: memwatch.tree.select/assign over plain data, and
the /proc readers behind the live view (procfs) against a fake /proc tree."""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field

import pytest

from memwatch import procfs
from memwatch.config import Selector, WatchEntry
from memwatch.errors import PermissionDenied, ProcessGone
from memwatch.tree import ProcessTable, assign, descendants, matches, select


@dataclass
class View:
    """A ProcessView from dicts; ``asked`` records which facts selection read."""

    stats: dict[int, tuple[int, int]]
    comms: dict[int, str] = field(default_factory=dict)
    exes: dict[int, str | None] = field(default_factory=dict)
    uids: dict[int, int | None] = field(default_factory=dict)
    cmdlines: dict[int, str | None] = field(default_factory=dict)
    cgroup_paths: dict[int, tuple[str, ...]] = field(default_factory=dict)
    pidfiles: dict[str, int | None] = field(default_factory=dict)
    asked: list[tuple[str, int]] = field(default_factory=list)

    def comm(self, pid: int) -> str | None:
        self.asked.append(("comm", pid))
        return self.comms.get(pid)

    def exe(self, pid: int) -> str | None:
        self.asked.append(("exe", pid))
        return self.exes.get(pid)

    def uid(self, pid: int) -> int | None:
        self.asked.append(("uid", pid))
        return self.uids.get(pid)

    def cmdline(self, pid: int) -> str | None:
        self.asked.append(("cmdline", pid))
        return self.cmdlines.get(pid)

    def cgroups(self, pid: int) -> tuple[str, ...]:
        return self.cgroup_paths.get(pid, ())

    def pidfile(self, path: str) -> int | None:
        return self.pidfiles.get(path)


def machine() -> View:
    """init, an sshd, a postgres with two backends (one with a child), a batch job."""
    return View(
        stats={
            1: (0, 1),
            300: (1, 50),
            400: (1, 60),
            401: (400, 61),
            402: (400, 62),
            403: (401, 63),
            500: (300, 70),
            501: (500, 71),
        },
        comms={1: "systemd", 300: "sshd", 400: "postgres", 401: "postgres", 402: "postgres",
               403: "sh", 500: "python3", 501: "python3"},
        exes={1: "systemd", 300: "sshd", 400: "postgres", 401: "postgres", 402: "postgres",
              403: "dash", 500: "python3.11", 501: "python3.11"},
        cmdlines={1: "/sbin/init", 300: "sshd: /usr/sbin/sshd -D",
                  400: "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql",
                  401: "postgres: checkpointer", 402: "postgres: walwriter",
                  403: "sh -c archive", 500: "python3 etl.py --rows 5000", 501: "python3 -c w"},
        cgroup_paths={
            1: ("/init.scope",),
            300: ("/system.slice/ssh.service",),
            400: ("/system.slice/postgresql@15-main.service",),
            401: ("/system.slice/postgresql@15-main.service",),
            402: ("/system.slice/postgresql@15-main.service",),
            403: ("/system.slice/postgresql@15-main.service",),
            500: ("/user.slice/user-1000.slice/session-3.scope",),
            501: ("/user.slice/user-1000.slice/session-3.scope",),
        },
    )  # fmt: skip


def entry(job: str, children: bool = True, **selector: object) -> WatchEntry:
    return WatchEntry(job, Selector(**selector), children=children)  # type: ignore[arg-type]


# --- single selectors ---------------------------------------------------------------------


def test_pid_selects_that_process_only_and_nothing_once_it_is_gone():
    view = machine()
    assert select(Selector(pid=401), view) == {401}
    assert select(Selector(pid=999), view) == set()


def test_pidfile_selects_the_pid_written_in_it_and_nothing_when_missing_or_stale():
    view = machine()
    view.pidfiles = {"/run/pg.pid": 400, "/run/stale.pid": 999}
    assert select(Selector(pidfile="/run/pg.pid"), view) == {400}
    assert select(Selector(pidfile="/run/stale.pid"), view) == set()
    assert select(Selector(pidfile="/run/missing.pid"), view) == set()


def test_name_matches_comm_without_reading_the_executable():
    view = machine()
    assert select(Selector(name="postgres"), view) == {400, 401, 402}
    assert ("exe", 400) not in view.asked  # comm matched: no ptrace-guarded readlink


def test_name_matches_the_executable_basename_when_comm_differs():
    # comm is cut to 15 characters and processes may rename themselves.
    view = machine()
    view.comms[500] = "etl-worker-main"
    view.exes[500] = "etl-worker-main-v2"
    assert select(Selector(name="etl-worker-main-v2"), view) == {500}
    assert select(Selector(name="python3.11"), view) == {501}  # comm "python3", exe python3.11


def test_cmdline_is_a_regex_searched_in_the_arguments_joined_by_spaces():
    view = machine()
    assert select(Selector(cmdline=re.compile(r"etl\.py --rows \d+")), view) == {500}
    assert select(Selector(cmdline=re.compile(r"^postgres: ")), view) == {401, 402}


def test_cgroup_selects_the_cgroup_and_everything_below_it_but_not_a_sibling_prefix():
    view = machine()
    view.stats[600] = (1, 80)
    view.cgroup_paths[600] = ("/user.slice/user-10000.slice/session-9.scope",)
    assert select(Selector(cgroup="/user.slice/user-1000.slice"), view) == {500, 501}
    assert select(Selector(cgroup="/user.slice/user-1000.slice/"), view) == {500, 501}
    assert select(Selector(cgroup="/system.slice/ssh.service"), view) == {300}


def test_systemd_unit_matches_the_units_cgroup_in_any_hierarchy():
    view = machine()
    # cgroup v1: the unit path is in the name=systemd hierarchy; memory may say "/".
    view.cgroup_paths[300] = ("/", "/system.slice/ssh.service")
    assert select(Selector(systemd_unit="ssh.service"), view) == {300}
    assert select(Selector(systemd_unit="postgresql@15-main.service"), view) == {
        400,
        401,
        402,
        403,
    }


def test_systemd_unit_includes_a_delegated_units_sub_cgroups_but_not_a_longer_name():
    view = machine()
    view.cgroup_paths[500] = ("/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",)
    view.cgroup_paths[501] = ("/system.slice/xssh.service",)
    assert select(Selector(systemd_unit="user@1000.service"), view) == {500}
    assert select(Selector(systemd_unit="ssh.service"), view) == {300}


def test_every_given_field_must_match():
    view = machine()
    both = Selector(name="postgres", cmdline=re.compile("walwriter"))
    assert select(both, view) == {402}
    assert select(Selector(pid=401, cmdline=re.compile("walwriter")), view) == set()


def test_a_selector_that_gives_nothing_selects_nothing():
    assert select(Selector(), machine()) == set()
    assert not matches(Selector(), 1, machine())


def test_unreadable_facts_do_not_match_and_do_not_fail():
    view = machine()
    view.cmdlines[500] = None  # the kernel refused, or the process is gone
    view.exes[500] = None
    assert select(Selector(cmdline=re.compile("etl")), view) == set()
    assert select(Selector(name="python3.11"), view) == {501}


# --- assignment to entries ---------------------------------------------------------------------


def test_children_adds_every_descendant_by_ppid():
    view = machine()
    [members] = assign([entry("pg", pid=400)], view)
    assert members == {400, 401, 402, 403}


def test_without_children_only_the_selected_processes_belong():
    view = machine()
    [members] = assign([entry("pg", children=False, pid=400)], view)
    assert members == {400}


def test_a_process_belongs_to_the_first_entry_that_selects_it():
    view = machine()
    first, second = assign(
        [entry("checkpointer", cmdline=re.compile("checkpointer")), entry("pg", name="postgres")],
        view,
    )
    # 401 and its child 403 went to the first entry; the second keeps the rest of its tree.
    assert first == {401, 403}
    assert second == {400, 402}


def test_a_descendant_claimed_first_is_not_taken_by_a_later_direct_match():
    view = machine()
    first, second = assign([entry("pg", pid=400), entry("sh", name="sh")], view)
    assert 403 in first
    assert second == set()


def test_a_later_entry_takes_the_children_an_earlier_entry_left():
    view = machine()
    first, second = assign(
        [entry("main", children=False, pid=400), entry("tree", name="postgres")], view
    )
    assert first == {400}
    assert second == {401, 402, 403}  # 400's descendants: selected by the second entry


def test_a_process_older_than_its_listed_parent_is_not_its_descendant():
    # 404 names 400 as its parent but started before it: its parent had pid 400 before
    # the postgres that has it now (pid reuse), so it is not postgres's (psutil's rule).
    view = machine()
    view.stats[404] = (400, 55)
    view.stats[405] = (404, 56)
    [members] = assign([entry("pg", pid=400)], view)
    assert members == {400, 401, 402, 403}


def test_memwatch_itself_is_never_selected():
    view = machine()
    view.stats[700] = (300, 90)
    view.cmdlines[700] = "memwatch daemon --config /etc/memwatch/etl.yaml"
    [members] = assign([entry("etl", cmdline=re.compile("etl"))], view, exclude=(700,))
    assert members == {500, 501}


def test_descendants_stop_at_a_cycle_from_a_torn_listing():
    # Pid reuse between two stat reads can make a listing claim 10 -> 11 -> 10.
    assert descendants([10], {10: [11], 11: [10]}) == {11, 10}


# --- the process table (the live view) and its /proc readers ---------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proc(fake_proc):
    fake_proc.add(1, ppid=0, start=1, comm="systemd", exe="/usr/lib/systemd/systemd")
    fake_proc.add(2, ppid=0, start=1, comm="kthreadd", user_memory=False)
    fake_proc.add(
        40,
        ppid=1,
        start=500,
        comm="my (odd) name",
        cmdline=["python3", "job.py", "--size", "40"],
        exe="/usr/bin/python3.11 (deleted)",
        cgroup="12:memory:/jobs/a\n1:name=systemd:/system.slice/job.service\n0::/\n",
    )
    return fake_proc


def table(proc, clock=None):
    t = ProcessTable(proc.path, clock=clock or Clock(), max_age_s=10.0)
    t.refresh()
    return t


@pytest.fixture
def opened(monkeypatch):
    """The /proc files os.open opened, as 'PID/NAME'."""
    seen: list[str] = []
    real = os.open

    def spy(path, flags, *args, **kwargs):
        seen.append("/".join(str(path).split("/")[-2:]))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return seen


def test_the_table_reads_comm_ppid_and_start_from_one_stat_read(proc):
    t = table(proc)
    assert t.stats == {1: (0, 1), 2: (0, 1), 40: (1, 500)}
    assert t.comm(40) == "my (odd) name"  # parentheses inside comm


def test_the_table_reads_cmdline_exe_and_cgroups_of_a_process(proc):
    t = table(proc)
    assert t.cmdline(40) == "python3 job.py --size 40"
    assert t.exe(40) == "/usr/bin/python3.11"  # an upgraded binary: "(deleted)" dropped
    assert t.cgroups(40) == ("/jobs/a", "/system.slice/job.service", "/")


def test_a_kernel_thread_has_no_command_line_and_no_executable(proc):
    t = table(proc)
    assert t.cmdline(2) == ""
    assert t.exe(2) is None


def test_a_process_gone_mid_pass_reads_as_unknown_and_leaves_at_the_next_refresh(proc):
    t = table(proc)
    proc.remove(40)
    assert t.cmdline(40) is None
    assert t.cgroups(40) == ()
    with pytest.raises(ProcessGone):
        t.read_mem(40)
    t.refresh()
    assert 40 not in t.stats


def test_an_executable_the_kernel_refuses_reads_as_unknown(proc, monkeypatch):
    real = os.readlink

    def readlink(path, *args, **kwargs):
        if path.endswith("/40/exe"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", readlink)
    t = table(proc)
    assert t.exe(40) is None
    assert select(Selector(name="python3.11"), t) == set()


def test_a_stat_the_kernel_refuses_leaves_the_process_out(proc, deny_open):
    deny_open(f"{proc.path}/40/stat")
    assert 40 not in table(proc).stats


def test_a_pass_reads_stat_once_per_process_and_facts_only_once(proc, opened):
    t = table(proc)
    assert t.cmdline(40) == t.cmdline(40)
    t.refresh()
    t.cmdline(40)
    assert sorted(opened) == ["1/stat", "1/stat", "2/stat", "2/stat", "40/cmdline"] + [
        "40/stat",
        "40/stat",
    ]


def test_a_process_whose_memory_was_read_costs_no_stat_at_the_next_refresh(proc, opened):
    t = table(proc)
    mem = t.read_mem(40)
    assert (mem.pid, mem.start_ticks) == (40, 500)
    opened.clear()
    t.refresh()
    assert "40/stat" not in opened and "40/status" not in opened


def test_a_reused_pid_is_a_new_process_with_new_facts(proc):
    t = table(proc)
    assert t.cmdline(40) == "python3 job.py --size 40"
    proc.add(40, ppid=1, start=900, comm="my (odd) name", cmdline=["other"])
    t.refresh()
    assert t.stats[40] == (1, 900)
    assert t.cmdline(40) == "other"


def test_an_exec_seen_in_status_brings_the_stat_and_the_facts_back(proc):
    t = table(proc)
    t.read_mem(40)
    assert t.cmdline(40) == "python3 job.py --size 40"
    proc.add(40, ppid=1, start=500, comm="etl", cmdline=["etl", "--rows", "9"])  # exec
    t.read_mem(40)  # Name changed: what selection knew is void
    assert t.cmdline(40) == "etl --rows 9"
    t.refresh()
    assert t.comm(40) == "etl"


def test_a_new_parent_seen_in_status_counts_from_the_next_assignment(proc):
    t = table(proc)
    proc.add(41, ppid=40, start=600)
    t.refresh()
    t.read_mem(41)
    proc.remove(40)
    proc.add(41, ppid=1, start=600)  # orphaned: reparented to init
    t.read_mem(41)
    assert t.stats[41] == (1, 600)


def test_an_orphan_is_read_again_when_its_parent_is_gone(proc, opened):
    t = table(proc)
    proc.add(41, ppid=40, start=600)
    t.refresh()
    t.read_mem(41)
    proc.remove(40)
    proc.add(41, ppid=1, start=600)
    opened.clear()
    t.refresh()
    assert "41/stat" in opened
    assert t.stats[41] == (1, 600)


def test_facts_are_read_again_once_they_are_older_than_their_age(proc):
    clock = Clock()
    t = table(proc, clock)
    assert t.cmdline(40) == "python3 job.py --size 40"
    proc.add(40, ppid=1, start=500, comm="my (odd) name", cmdline=["renamed", "by", "setproctitle"])
    clock.now = 9.9
    assert t.cmdline(40) == "python3 job.py --size 40"
    clock.now = 20.0  # past any pid's spread age (10 s x [1, 2))
    assert t.cmdline(40) == "renamed by setproctitle"


def test_status_files_stay_open_between_reads_up_to_their_limit(proc, opened):
    files = procfs.StatusFiles(proc.path, max_open=1)
    for _ in range(2):
        files.read(40, 500)
        mem, name, ppid = files.read(1, 1)  # over the limit: opened at each read
    assert (mem.pid, mem.start_ticks, name, ppid) == (1, 1, b"Name:\tsystemd", 0)
    # Without a kept file, stat is read too: only the start time tells a reused pid then.
    assert sorted(opened) == ["1/stat", "1/stat", "1/status", "1/status", "40/status"]
    assert len(files) == 1
    files.close_all()
    assert len(files) == 0


def test_a_status_file_that_cannot_be_opened_names_the_reason(proc, deny_open):
    files = procfs.StatusFiles(proc.path)
    with pytest.raises(ProcessGone):
        files.read(77, 1)
    deny_open(f"{proc.path}/40/status")
    with pytest.raises(PermissionDenied):
        files.read(40, 500)
    assert len(files) == 0


def test_a_long_command_line_is_read_to_its_end(fake_proc):
    args = ["x" * 100_000, "--size", "7"]
    fake_proc.add(9, cmdline=args)
    assert procfs.read_cmdline(9, fake_proc.path).endswith("--size 7")


def test_cmdline_readers_translate_errors(fake_proc, deny_open):
    with pytest.raises(ProcessGone):
        procfs.read_cmdline(77, fake_proc.path)
    with pytest.raises(ProcessGone):
        procfs.read_cgroups(77, fake_proc.path)
    fake_proc.add(9)
    deny_open(f"{fake_proc.path}/9/cmdline")
    with pytest.raises(PermissionDenied):
        procfs.read_cmdline(9, fake_proc.path)


def test_a_cgroup_path_may_contain_colons(fake_proc):
    fake_proc.add(9, cgroup="0::/machine.slice/libpod-a:b.scope\n")
    assert procfs.read_cgroups(9, fake_proc.path) == ("/machine.slice/libpod-a:b.scope",)


@pytest.mark.parametrize(
    ("text", "pid"),
    [(b"1234\n", 1234), (b"  77  \nextra\n", 77), (b"", None), (b"abc\n", None), (b"0\n", None)],
)
def test_pidfile_holds_a_positive_pid_on_its_first_line(tmp_path, text, pid):
    path = tmp_path / "x.pid"
    path.write_bytes(text)
    assert procfs.read_pidfile(str(path)) == pid
    assert procfs.read_pidfile(str(tmp_path / "missing.pid")) is None


def test_a_fifo_at_a_pidfile_path_is_no_pid_and_does_not_block(tmp_path):
    from memwatch.procfs import read_pidfile

    fifo = tmp_path / "daemon.pid"
    os.mkfifo(fifo)
    assert read_pidfile(str(fifo)) is None
    regular = tmp_path / "other.pid"
    regular.write_text("4242\n")
    assert read_pidfile(str(regular)) == 4242
