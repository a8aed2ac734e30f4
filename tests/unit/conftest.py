"""Shared fakes for the unit tests: a fake /proc, a fake cgroup filesystem, record factories.

The file shapes are copied from a real Linux 6.x kernel (``cat /proc/self/status`` and
friends); only the numbers a test cares about are parameters.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from memwatch import cgroup
from memwatch.measures import Bounds, Peak, ProcMem, RunSummary, Sample

MIB = 1 << 20

# /proc/PID/stat: field 4 is ppid, field 22 starttime (clock ticks after boot).
STAT = (
    "{pid} ({comm}) {state} {ppid} {ppid} 3949 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 "
    "{start} 3133440 397 18446744073709551615 93853054787584 93853054807465 "
    "140723685666704 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 93853054823472 93853054825088 "
    "93853656616960 140723685673698 140723685673718 140723685673718 140723685674987 0\n"
)

STATUS_HEAD = """\
Name:\t{name}
Umask:\t0022
State:\t{state_long}
Tgid:\t{pid}
Ngid:\t0
Pid:\t{pid}
PPid:\t{ppid}
TracerPid:\t0
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
FDSize:\t256
Groups:\t
NStgid:\t{pid}
NSpid:\t{pid}
NSpgid:\t{ppid}
NSsid:\t3949
Kthread:\t{kthread}
"""

# VmPeak/VmSize/RssAnon deliberately differ from VmRSS/VmHWM/VmSwap, so reading the
# wrong line shows up as a wrong number.
STATUS_VM = """\
VmPeak:\t{vmpeak:8d} kB
VmSize:\t{vmsize:8d} kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t{hwm:8d} kB
VmRSS:\t{rss:8d} kB
RssAnon:\t{anon:8d} kB
RssFile:\t    1620 kB
RssShmem:\t       0 kB
VmData:\t     360 kB
VmStk:\t     132 kB
VmExe:\t      20 kB
VmLib:\t    1528 kB
VmPTE:\t      48 kB
VmSwap:\t{swap:8d} kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
untag_mask:\t0xffffffffffffffff
"""

STATUS_TAIL = """\
Threads:\t1
SigQ:\t0/96365
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000000000
SigCgt:\t0000000000000000
CapInh:\t0000000000000000
CapPrm:\t000001fffeffffff
CapEff:\t000001fffeffffff
CapBnd:\t000001fffeffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
Seccomp_filters:\t0
Speculation_Store_Bypass:\tvulnerable
SpeculationIndirectBranch:\talways enabled
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t0
nonvoluntary_ctxt_switches:\t0
"""

# Pss_Dirty/Pss_Anon and Swap differ from Pss and SwapPss for the same reason.
SMAPS_ROLLUP = """\
559fc4f89000-7ffcb81c3000 ---p 00000000 00:00 0                          [rollup]
Rss:            {rss:8d} kB
Pss:            {pss:8d} kB
Pss_Dirty:      {pss_dirty:8d} kB
Pss_Anon:       {pss_dirty:8d} kB
Pss_File:            292 kB
Pss_Shmem:             0 kB
Shared_Clean:       1512 kB
Shared_Dirty:          0 kB
Private_Clean:        80 kB
Private_Dirty:       112 kB
Referenced:         1704 kB
Anonymous:           112 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:           {swap:8d} kB
SwapPss:        {swap_pss:8d} kB
Locked:                0 kB
"""

VMSTAT = """\
nr_free_pages 1227525
nr_zone_inactive_anon 1281
nr_swapcached 36
workingset_refault_anon 78531
pgpgin 1337
pgpgout 4242
pswpin {pswpin}
pswpout {pswpout}
pgalloc_normal 9999
oom_kill {oom_kill}
swap_ra 79864
swap_ra_hit 79176
"""

STATE_LONG = {"R": "R (running)", "S": "S (sleeping)", "Z": "Z (zombie)", "I": "I (idle)"}


class FakeProc:
    """A directory shaped like /proc: PID/stat, PID/status, PID/smaps_rollup, vmstat."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        # Non-pid entries that a real /proc has next to the pid directories.
        (root / "self").mkdir()
        (root / "sys").mkdir()
        (root / "meminfo").write_text("MemTotal:       24684084 kB\n")
        self.vmstat(pswpout=1770237)

    @property
    def path(self) -> str:
        return str(self.root)

    def add(
        self,
        pid: int,
        *,
        ppid: int = 1,
        start: int = 1000,
        comm: str = "worker",
        state: str = "S",
        rss_kb: int = 1728,
        swap_kb: int = 0,
        hwm_kb: int | None = None,
        pss_kb: int | None = None,
        swap_pss_kb: int | None = None,
        user_memory: bool = True,
        cmdline: Sequence[str] = (),
        exe: str | None = None,
        cgroup: str = "0::/user.slice\n",
    ) -> None:
        """Create or replace /proc/PID. ``user_memory=False``: a kernel thread or zombie.

        ``cmdline``: its arguments; ``exe``: where /proc/PID/exe points (no link: a kernel
        thread); ``cgroup``: the text of /proc/PID/cgroup.
        """
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        (d / "stat").write_text(
            STAT.format(pid=pid, comm=comm, state=state, ppid=ppid, start=start)
        )
        head = STATUS_HEAD.format(
            name=comm[:15],
            state_long=STATE_LONG[state],
            pid=pid,
            ppid=ppid,
            kthread=0 if user_memory or state == "Z" else 1,
        )
        vm = ""
        if user_memory:
            hwm = rss_kb if hwm_kb is None else hwm_kb
            vm = STATUS_VM.format(
                vmpeak=hwm + 99991,
                vmsize=rss_kb + 77773,
                hwm=hwm,
                rss=rss_kb,
                anon=rss_kb // 3,
                swap=swap_kb,
            )
        (d / "status").write_text(head + vm + STATUS_TAIL)
        (d / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in cmdline))
        (d / "cgroup").write_text(cgroup)
        if (d / "exe").is_symlink():
            (d / "exe").unlink()
        if exe is not None:
            (d / "exe").symlink_to(exe)
        (d / "smaps_rollup").write_text(
            SMAPS_ROLLUP.format(
                rss=rss_kb,
                pss=rss_kb if pss_kb is None else pss_kb,
                pss_dirty=7,
                swap=swap_kb,
                swap_pss=swap_kb if swap_pss_kb is None else swap_pss_kb,
            )
            if user_memory
            else ""
        )

    def remove(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))

    def vmstat(self, *, pswpin: int = 56245, pswpout: int, oom_kill: int = 10) -> None:
        (self.root / "vmstat").write_text(
            VMSTAT.format(pswpin=pswpin, pswpout=pswpout, oom_kill=oom_kill)
        )


@pytest.fixture
def deny_open(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Callable[[], None]]:
    """deny_open(path): os.open of ``path`` fails with EACCES; returns a function that undoes it.

    Root ignores file modes, so the EACCES of another user's process is simulated.
    """
    real_open = os.open

    def deny(denied: str) -> Callable[[], None]:
        def fake_open(path: str, flags: int, *args: object, **kwargs: object) -> int:
            if path == denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", fake_open)
        return lambda: monkeypatch.setattr(os, "open", real_open)

    return deny


@pytest.fixture
def fake_proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


# --- cgroup filesystem ---------------------------------------------------------------------

V1_SELF_CGROUP = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/efabd53490690ab5f0b669bc618f1a74
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""

# A hybrid host (this project's CI machine): the memory controller on its own v1
# hierarchy, an empty cgroup2 tree at /sys/fs/cgroup/unified. ``{r}`` is the fake root.
V1_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / {r}/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / {r}/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / {r}/sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / {r}/sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / {r}/sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / {r}/sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / {r}/sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / {r}/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V2_SELF_CGROUP = "0::/user.slice/user-1000.slice/session-3.scope\n"

# A systemd host on the unified hierarchy; note the optional field "shared:9".
V2_MOUNTINFO = """\
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
35 24 0:30 / {r}/sys/fs/cgroup rw,nosuid,nodev,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""

V1_KERNEL_FILES = {
    "cgroup.procs": "",
    "memory.max_usage_in_bytes": "0\n",
    "memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
    "memory.usage_in_bytes": "0\n",
    "memory.memsw.max_usage_in_bytes": "0\n",
    "memory.memsw.usage_in_bytes": "0\n",
    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
}

V2_MEMORY_FILES = {
    "memory.current": "0\n",
    "memory.max": "max\n",
    "memory.peak": "0\n",
    "memory.swap.peak": "0\n",
    "memory.swap.current": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
}


def _busy(path: str) -> OSError:
    return OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)


class FakeCgroupFS:
    """Just enough cgroupfs semantics, on plain directories under ``tmp_path``.

    - mkdir creates the interface files the kernel would (v2: memory.* only when the
      parent enabled the memory controller in its cgroup.subtree_control);
    - writing a pid to cgroup.procs moves it out of every other cgroup;
    - v2 "no internal processes": +memory in subtree_control of a cgroup holding
      processes, or a pid written into a cgroup that has controllers enabled below it,
      fails with EBUSY;
    - rmdir succeeds despite interface files, but fails with EBUSY while the cgroup
      holds processes or child cgroups; a file kept open in it then reads ENODEV.
    """

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int) -> None:
        self.version = version
        self.root = tmp_path
        self.procfs = tmp_path / "proc"
        (self.procfs / "self").mkdir(parents=True)
        if version == 1:
            self.mount = tmp_path / "sys/fs/cgroup/memory"
            self_cgroup, mountinfo = V1_SELF_CGROUP, V1_MOUNTINFO
            own = "process_api/efabd53490690ab5f0b669bc618f1a74"
        else:
            self.mount = tmp_path / "sys/fs/cgroup"
            self_cgroup, mountinfo = V2_SELF_CGROUP, V2_MOUNTINFO
            own = "user.slice/user-1000.slice/session-3.scope"
        (self.procfs / "self/cgroup").write_text(self_cgroup)
        (self.procfs / "self/mountinfo").write_text(mountinfo.format(r=tmp_path))
        self.memory_peak_supported = True  # False: a v2 kernel older than 5.19
        self.writes: list[tuple[str, str]] = []
        self.rmdir_busy: dict[str, int] = {}  # path -> how many more rmdirs fail with EBUSY
        self.sleeps: list[float] = []

        self._real_mkdir = os.mkdir
        self._real_rmdir = os.rmdir
        self._real_pread = os.pread
        monkeypatch.setattr(os, "mkdir", self._mkdir)
        monkeypatch.setattr(os, "rmdir", self._rmdir)
        monkeypatch.setattr(os, "pread", self._pread)
        monkeypatch.setattr(cgroup, "_write", self._write)
        monkeypatch.setattr(cgroup.time, "sleep", self.sleeps.append)

        self.mount.mkdir(parents=True)
        self._populate(self.mount, is_root=True)
        # Every level down to memwatch's own cgroup delegates the memory controller, as
        # systemd does for a scope with Delegate=yes.
        level = self.mount
        for part in own.split("/"):
            if version == 2:
                self.set_controllers(level, "cgroup.subtree_control", "memory pids")
            level = level / part
            level.mkdir()
        self.own = level
        self.set_procs(self.own, [os.getpid()])

    # -- helpers for tests -------------------------------------------------------------

    @property
    def procfs_path(self) -> str:
        return str(self.procfs)

    def procs(self, cg: Path | str) -> list[int]:
        return [int(p) for p in (Path(cg) / "cgroup.procs").read_text().split()]

    def set_procs(self, cg: Path | str, pids: list[int]) -> None:
        (Path(cg) / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))

    def controllers(self, cg: Path | str, name: str) -> set[str]:
        return set((Path(cg) / name).read_text().split())

    def set_controllers(self, cg: Path | str, name: str, controllers: str) -> None:
        (Path(cg) / name).write_text(controllers + "\n")

    # -- the fake kernel ---------------------------------------------------------------

    def _inside(self, path: str | os.PathLike[str]) -> bool:
        return os.path.abspath(path).startswith(str(self.mount) + os.sep)

    def _populate(self, d: Path, *, is_root: bool = False) -> None:
        if self.version == 1:
            files = dict(V1_KERNEL_FILES)
        else:
            parent_subtree = (
                set() if is_root else self.controllers(d.parent, "cgroup.subtree_control")
            )
            available = "cpu io memory pids" if is_root else " ".join(sorted(parent_subtree))
            files = {
                "cgroup.procs": "",
                "cgroup.controllers": available + "\n",
                "cgroup.subtree_control": "\n",
            }
            if "memory" in parent_subtree and self.memory_peak_supported:
                files.update(V2_MEMORY_FILES)
        for name, text in files.items():
            (d / name).write_text(text)

    def _mkdir(self, path: str | os.PathLike[str], mode: int = 0o777, **kw: object) -> None:
        self._real_mkdir(path, mode, **kw)  # type: ignore[arg-type]
        if self._inside(path):
            self._populate(Path(path))

    def _rmdir(self, path: str | os.PathLike[str], **kw: object) -> None:
        if not self._inside(path):
            self._real_rmdir(path, **kw)  # type: ignore[arg-type]
            return
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        left = self.rmdir_busy.get(str(p), 0)
        if left:
            self.rmdir_busy[str(p)] = left - 1
            raise _busy(str(path))
        if self.procs(p) or any(c.is_dir() for c in p.iterdir()):
            raise _busy(str(path))
        for f in p.iterdir():
            f.unlink()
        self._real_rmdir(p)

    def _pread(self, fd: int, size: int, offset: int) -> bytes:
        # A file kept open in a cgroup that was removed answers ENODEV, as the kernel does.
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.endswith(" (deleted)") and self._inside(target.removesuffix(" (deleted)")):
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        return self._real_pread(fd, size, offset)

    def _write(self, path: str, text: str) -> None:
        self.writes.append((path, text))
        p = Path(path)
        cg = p.parent
        if p.name == "cgroup.procs":
            pid = int(text)
            is_root = cg == self.mount
            if self.version == 2 and not is_root and self.controllers(cg, "cgroup.subtree_control"):
                raise _busy(path)
            for procs_file in self.mount.rglob("cgroup.procs"):
                if procs_file != p:
                    others = [q for q in self.procs(procs_file.parent) if q != pid]
                    self.set_procs(procs_file.parent, others)
            self.set_procs(cg, [*self.procs(cg), pid])
        elif p.name == "cgroup.subtree_control":
            enabled = self.controllers(cg, "cgroup.subtree_control")
            for token in text.split():
                name = token[1:]
                if token.startswith("+"):
                    if name not in self.controllers(cg, "cgroup.controllers"):
                        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                    if cg != self.mount and self.procs(cg):
                        raise _busy(path)
                    enabled.add(name)
                else:
                    enabled.discard(name)
            self.set_controllers(cg, "cgroup.subtree_control", " ".join(sorted(enabled)))
        else:
            p.write_text(text)


@pytest.fixture
def cgroupfs_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCgroupFS:
    return FakeCgroupFS(tmp_path, monkeypatch, version=1)


@pytest.fixture
def cgroupfs_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCgroupFS:
    return FakeCgroupFS(tmp_path, monkeypatch, version=2)


# --- record factories ------------------------------------------------------------------------


@pytest.fixture
def proc_mem() -> Callable[..., ProcMem]:
    """``proc_mem(pid, rss_mib, swap_mib=0, hwm_mib=None, start=..., pss_mib=, swap_pss_mib=)``."""

    def make(
        pid: int,
        rss_mib: float,
        swap_mib: float = 0,
        hwm_mib: float | None = None,
        *,
        start: int | None = None,
        pss_mib: float | None = None,
        swap_pss_mib: float | None = None,
    ) -> ProcMem:
        def b(mib: float | None) -> int | None:
            return None if mib is None else int(mib * MIB)

        rss = int(rss_mib * MIB)
        return ProcMem(
            pid=pid,
            start_ticks=1000 + pid if start is None else start,
            rss_bytes=rss,
            swap_bytes=int(swap_mib * MIB),
            hwm_bytes=rss if hwm_mib is None else int(hwm_mib * MIB),
            pss_bytes=b(pss_mib),
            swap_pss_bytes=b(swap_pss_mib),
        )

    return make


@pytest.fixture
def sample() -> Callable[..., Sample]:
    """``sample(at_s, rss_mib, swap_mib=0, system_swapout_mib=None)``: a tree total."""

    def make(
        at_s: float, rss_mib: float, swap_mib: float = 0, system_swapout_mib: float | None = None
    ) -> Sample:
        rss, swap = int(rss_mib * MIB), int(swap_mib * MIB)
        return Sample(
            at_s=at_s,
            total_bytes=rss + swap,
            rss_bytes=rss,
            swap_bytes=swap,
            pss_bytes=None,
            processes=1,
            system_swapout_bytes=None
            if system_swapout_mib is None
            else int(system_swapout_mib * MIB),
        )

    return make


@pytest.fixture
def run_summary() -> Callable[..., RunSummary]:
    """A plausible RunSummary; keyword arguments replace any field."""

    def make(**changes: object) -> RunSummary:
        fields: dict[str, object] = dict(
            command=("python3", "train.py", "--rows", "1000000"),
            exit_code=0,
            signal=None,
            oom_killed=False,
            duration_s=12.3456789,
            interval_s=0.1,
            samples=124,
            peak=Peak(
                total_bytes=820 * MIB,
                rss_bytes=700 * MIB,
                swap_bytes=120 * MIB,
                pss_bytes=None,
                at_s=7.25,
                source="cgroup",
            ),
            bounds=Bounds(lower_bytes=800 * MIB, upper_bytes=820 * MIB),
            ru_maxrss_bytes=210 * MIB,
            swap_suspected=False,
            processes_seen=5,
        )
        fields.update(changes)
        return RunSummary(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture(autouse=True)
def private_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test writes to the user's own run history, nor to their spool."""
    path = tmp_path / "history.sqlite"
    monkeypatch.setenv("MEMWATCH_HISTORY", str(path))
    monkeypatch.setenv("MEMWATCH_SPOOL", str(tmp_path / "spool"))
    return path
