"""Readers for Linux /proc. The only module that opens /proc files; OSError becomes typed errors.

Every reader takes ``procfs`` (default "/proc") so tests can point it at a fake tree.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Collection

from .errors import PermissionDenied, ProcessGone
from .measures import ProcMem

PROC = "/proc"


def _read(path: str, pid: int, whole: bool = False) -> bytes:
    """One read of a /proc file (``whole``: to the end); OS errors as typed errors."""
    # os.open/os.read: about 30 % cheaper than open().read() on these tiny files, and
    # the sampler reads thousands of them per second on a big tree.
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, 65536)
            while whole and (chunk := os.read(fd, 65536)):
                data += chunk
            return data
        finally:
            os.close(fd)
    except (FileNotFoundError, ProcessLookupError) as err:
        raise ProcessGone(pid) from err
    except PermissionError as err:
        raise PermissionDenied(pid, path) from err
    except OSError as err:
        # ESRCH comes back from reads of a task that exited after open().
        if err.errno == errno.ESRCH:
            raise ProcessGone(pid) from err
        raise


def _kb_field(data: bytes, key: bytes, start: int = 0) -> int | None:
    """Parse ``Key:   1234 kB`` (searched from ``start``) into bytes; None when absent."""
    at = data.find(key, start)
    if at < 0:
        return None
    end = data.find(b"\n", at + len(key))
    return int(data[at + len(key) : end].split()[0]) * 1024


def list_pids(procfs: str = PROC) -> list[int]:
    """All pids currently in /proc (one getdents; no per-process reads)."""
    return [int(name) for name in os.listdir(procfs) if name.isdigit()]


def read_stat(pid: int, procfs: str = PROC) -> tuple[int, int]:
    """Return (ppid, start_ticks) from /proc/PID/stat."""
    data = _read(f"{procfs}/{pid}/stat", pid)
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def is_running(pid: int, procfs: str = PROC) -> bool:
    """False once the process has exited, including as a not yet reaped zombie."""
    try:
        data = _read(f"{procfs}/{pid}/stat", pid)
    except ProcessGone:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] not in (b"Z", b"X")


def read_proc_mem(pid: int, *, pss: bool = False, procfs: str = PROC) -> ProcMem:
    """Read one process's memory: status always, smaps_rollup only with ``pss``."""
    _, start_ticks = read_stat(pid, procfs)
    return _mem(pid, start_ticks, _read(f"{procfs}/{pid}/status", pid), pss, procfs)


def read_status_mem(
    pid: int, start_ticks: int, *, pss: bool = False, procfs: str = PROC
) -> tuple[ProcMem, bytes, int]:
    """(memory, Name line, ppid) of a process whose start time is known from an earlier read.

    One read instead of read_proc_mem's two, for a watcher that read /proc/PID/stat when
    it first saw the process; the Name line (changed by exec) and PPid (changed when the
    parent dies) tell it when to read stat again.
    """
    return _status_mem(pid, start_ticks, _read(f"{procfs}/{pid}/status", pid), pss, procfs)


def _status_mem(
    pid: int, start_ticks: int, status: bytes, pss: bool, procfs: str
) -> tuple[ProcMem, bytes, int]:
    # The first line, "Name:\t<comm>", escaped by the kernel: a comm cannot forge a line.
    name = status[: status.find(b"\n")]
    at = status.find(b"\nPPid:")
    ppid = int(status[at + 6 : status.find(b"\n", at + 6)]) if at >= 0 else 0
    return _mem(pid, start_ticks, status, pss, procfs), name, ppid


class StatusFiles:
    """/proc/PID/status of watched processes, kept open and read again with pread.

    Opening walks the path through /proc every time; a kept file reads in about half the
    time. It also stays bound to the process it was opened for: once that process is
    gone, reads fail with ESRCH even after its pid was reused, so a reused pid is never
    taken for the old process. At most ``max_open`` files stay open (default: half the
    soft RLIMIT_NOFILE); beyond that, a file is opened for each read.
    """

    def __init__(self, procfs: str = PROC, max_open: int | None = None) -> None:
        self.procfs = procfs
        if max_open is None:
            import resource  # Unix only; this module is imported on Windows too (psutil)

            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            max_open = 1 << 16 if soft == resource.RLIM_INFINITY else soft // 2
        self.max_open = max_open
        self._fds: dict[int, int] = {}

    def read(self, pid: int, start_ticks: int, *, pss: bool = False) -> tuple[ProcMem, bytes, int]:
        """As read_status_mem; ProcessGone once the process it was opened for is gone."""
        fd = self._fds.get(pid)
        if fd is None and len(self._fds) < self.max_open:
            fd = self._open(pid)
        if fd is None:
            # No kept file to tell a reused pid: the start time in stat does.
            if read_stat(pid, self.procfs)[1] != start_ticks:
                raise ProcessGone(pid)
            return read_status_mem(pid, start_ticks, pss=pss, procfs=self.procfs)
        try:
            status = os.pread(fd, 65536, 0)
        except OSError as err:
            self.close(pid)
            if err.errno == errno.ESRCH:
                raise ProcessGone(pid) from err
            raise
        return _status_mem(pid, start_ticks, status, pss, self.procfs)

    def _open(self, pid: int) -> int | None:
        path = f"{self.procfs}/{pid}/status"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError) as err:
            raise ProcessGone(pid) from err
        except PermissionError as err:
            raise PermissionDenied(pid, path) from err
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE):
                self.max_open = len(self._fds)  # out of descriptors: open per read from now
                return None
            raise
        self._fds[pid] = fd
        return fd

    def close(self, pid: int) -> None:
        """Close the file of a process that is gone (or no longer watched)."""
        fd = self._fds.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def retain(self, pids: Collection[int]) -> None:
        """Close the files of processes not in ``pids`` (gone, or no longer watched)."""
        for pid in [p for p in self._fds if p not in pids]:
            self.close(pid)

    def close_all(self) -> None:
        for pid in list(self._fds):
            self.close(pid)

    def __len__(self) -> int:
        return len(self._fds)


# The kernel prints VmHWM and VmRSS on consecutive lines (fs/proc/task_mmu.c, task_mem):
# one search finds both, at about a third of the cost of three; a sampler does this for
# every process at every sample.
_HWM_RSS = re.compile(rb"\nVmHWM:\s*(\d+) kB\nVmRSS:\s*(\d+) kB\n")


def _mem(pid: int, start_ticks: int, status: bytes, pss: bool, procfs: str) -> ProcMem:
    # Kernel threads and zombies have no Vm* lines: they hold no user memory.
    # Keys are matched at a line start: the Name: line is the process's own comm, which it
    # can set to anything, "VmSwap: 9999999" included (the kernel escapes a newline in it).
    found = _HWM_RSS.search(status)
    if found is None:
        rss = _kb_field(status, b"\nVmRSS:") or 0
        hwm = _kb_field(status, b"\nVmHWM:") or 0
        swap = _kb_field(status, b"\nVmSwap:") or 0
    else:
        hwm, rss = int(found[1]) << 10, int(found[2]) << 10
        swap = _kb_field(status, b"\nVmSwap:", found.end() - 1) or 0
    pss_bytes = swap_pss = None
    if pss:
        # smaps_rollup walks every VMA under mmap_lock: ~20x the cost of status, so it is
        # opt-in (Documentation/filesystems/proc.rst, "smaps_rollup").
        rollup = _read(f"{procfs}/{pid}/smaps_rollup", pid)
        pss_bytes = _kb_field(rollup, b"\nPss:") or 0
        swap_pss = _kb_field(rollup, b"\nSwapPss:") or 0
    return ProcMem(pid, start_ticks, rss, swap, max(hwm, rss), pss_bytes, swap_pss)


def flat_keyed(text: str, key: str) -> int | None:
    """``key N`` from a flat-keyed file (/proc/vmstat, memory.stat, memory.events); None if absent.

    Matched at a line start, so ``total_active_file`` is not found for ``active_file``.
    """
    at = ("\n" + text).find(f"\n{key} ")
    if at < 0:
        return None
    end = text.find("\n", at)
    return int(text[at + len(key) + 1 : None if end < 0 else end])


class VmstatFile:
    """/proc/vmstat kept open and read again with pread, for a counter read at every sample
    (opening it and wrapping it in a text file cost more than the kernel's own work)."""

    def __init__(self, procfs: str = PROC) -> None:
        self.path = f"{procfs}/vmstat"
        self._fd: int | None = None

    def read(self, key: bytes) -> int | None:
        """The counter ``key``; None where /proc/vmstat cannot be read or lacks it."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            data = b"\n" + os.pread(self._fd, 65536, 0)
        except OSError:
            return None
        at = data.find(b"\n" + key + b" ")
        if at < 0:
            return None
        return int(data[at + len(key) + 2 : data.find(b"\n", at + 1)])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_vmstat(keys: tuple[str, ...], procfs: str = PROC) -> dict[str, int]:
    """Selected counters of /proc/vmstat (e.g. pswpout, oom_kill); absent keys are left out."""
    try:
        with open(f"{procfs}/vmstat") as f:
            text = f.read()
    except OSError:
        return {}
    # Read once per sample: find the few keys rather than split ~180 lines.
    found = {key: flat_keyed(text, key) for key in keys}
    return {key: value for key, value in found.items() if value is not None}


def read_meminfo(procfs: str = PROC) -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in bytes; None where /proc/meminfo cannot be read."""
    try:
        with open(f"{procfs}/meminfo", "rb") as f:
            data = b"\n" + f.read()
    except OSError:
        return None
    total = _kb_field(data, b"\nMemTotal:")
    # MemAvailable (Linux >= 3.14) is the kernel's estimate of what can be allocated
    # without swapping: free memory plus the reclaimable part of the page cache.
    available = _kb_field(data, b"\nMemAvailable:")
    if total is None:
        return None
    return total, total if available is None else available


def read_shmem_bytes(procfs: str = PROC) -> int | None:
    """Shared memory of the whole system (meminfo Shmem: tmpfs, memfd, SysV and POSIX
    shared memory), mapped or not; None where /proc/meminfo cannot be read."""
    try:
        with open(f"{procfs}/meminfo", "rb") as f:
            return _kb_field(b"\n" + f.read(), b"\nShmem:")
    except OSError:
        return None


# --- what selection needs: who a process is (comm, exe, command line, cgroups) ----------


def read_stat_comm(pid: int, procfs: str = PROC) -> tuple[str, int, int]:
    """Return (comm, ppid, start_ticks) from one read of /proc/PID/stat.

    comm is the same 15-character name as /proc/PID/comm: one read instead of two.
    """
    data = _read(f"{procfs}/{pid}/stat", pid)
    # comm may itself contain ") ": it lies between the first '(' and the *last* ')'.
    close = data.rfind(b")")
    comm = data[data.find(b"(") + 1 : close].decode("utf-8", "replace")
    fields = data[close + 2 :].split()
    return comm, int(fields[1]), int(fields[19])


def read_cmdline(pid: int, procfs: str = PROC) -> str:
    """The command line, arguments joined by spaces; "" for kernel threads and zombies."""
    path = f"{procfs}/{pid}/cmdline"
    # Unlike the small status files, a command line can exceed one read (ARG_MAX is
    # megabytes): read to the end. The kernel reads it from the process's own memory, so
    # this can wait on a process whose mmap_lock is held (`ps` hangs the same way):
    # callers read it only when a selector needs it.
    data = _read(path, pid, whole=True)
    # Arguments end in NUL; a process that rewrote its title (setproctitle) may use spaces.
    return data.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def read_exe(pid: int, procfs: str = PROC) -> str | None:
    """Path of the executable (/proc/PID/exe); None for kernel threads and zombies.

    Needs ptrace read access to the process (another user's: CAP_SYS_PTRACE), so it
    raises PermissionDenied where /proc/PID/comm and stat would still be readable.
    """
    path = f"{procfs}/{pid}/exe"
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        # Also what a kernel thread or a zombie gives (no mm, no exe); a process that is
        # really gone is noticed by the next read of its stat.
        return None
    except PermissionError as err:
        raise PermissionDenied(pid, path) from err
    except ProcessLookupError as err:
        raise ProcessGone(pid) from err
    # A binary replaced on disk (a package upgrade) while it runs reads "/usr/sbin/x (deleted)".
    return target.removesuffix(" (deleted)")


def read_uid(pid: int, procfs: str = PROC) -> int:
    """The real user id of a process (status "Uid:", first field): who started it.

    Unlike comm, the executable's name or the command line, no process can set it to
    another user's (setuid(2) needs privilege).
    """
    data = _read(f"{procfs}/{pid}/status", pid)
    start = data.find(b"\nUid:")
    if start < 0:
        raise ProcessGone(pid)  # not a status file of a live process
    return int(data[start + 5 : data.index(b"\n", start + 1)].split()[0])


def read_cgroups(pid: int, procfs: str = PROC) -> tuple[str, ...]:
    """The cgroup paths of a process, one per hierarchy (v1) or the single v2 path."""
    data = _read(f"{procfs}/{pid}/cgroup", pid)
    # Lines are "ID:CONTROLLERS:PATH"; a path may contain ':' itself, so split twice only.
    paths = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths.append(parts[2])
    return tuple(dict.fromkeys(paths))  # v1 repeats "/" for most controllers


def read_pidfile(path: str) -> int | None:
    """The pid in a pidfile (first line); None when it is missing, unreadable or not a pid."""
    # O_NONBLOCK and a regular-file check: a FIFO at that path must not stall the daemon's
    # loop (and its watchdog) waiting for a writer.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            first = os.read(fd, 64).split(b"\n", 1)[0].strip()
        finally:
            os.close(fd)
    except OSError:
        return None
    return int(first) if first.isdigit() and int(first) > 0 else None
