"""The Linux backend: procfs.py's readers and tree.py's walk, the fast path ("--backend proc")."""

from __future__ import annotations

import os
from collections.abc import Collection

from .measures import BackendName, ProcMem
from .procfs import PROC, StatusFiles, VmstatFile, is_running, read_proc_mem
from .tree import TreeTracker


class ProcBackend:
    """The Linux readers of procfs.py and tree.py: the fast path."""

    name: BackendName = "proc"

    def __init__(self, procfs: str = PROC) -> None:
        self.procfs = procfs
        self._page_size = os.sysconf("SC_PAGE_SIZE")
        self._status = StatusFiles(procfs)
        self._vmstat = VmstatFile(procfs)

    def read_mem(self, pid: int, *, pss: bool = False) -> ProcMem:
        """/proc/PID/status (and smaps_rollup with ``pss``): procfs.read_proc_mem."""
        return read_proc_mem(pid, pss=pss, procfs=self.procfs)

    def read_member(self, pid: int, start: int, *, pss: bool = False) -> ProcMem:
        """One pread of the process's status, kept open (procfs.StatusFiles): no stat read,
        as the open file already tells the process from a later one with its pid."""
        return self._status.read(pid, start, pss=pss)[0]

    def release(self, keep: Collection[int]) -> None:
        self._status.retain(keep)
        if not keep:
            self._vmstat.close()

    def tracker(self, root_pid: int, *, reaper_pid: int | None = None) -> TreeTracker:
        return TreeTracker(root_pid, reaper_pid=reaper_pid, procfs=self.procfs)

    def is_running(self, pid: int) -> bool:
        return is_running(pid, self.procfs)

    def system_swapout_bytes(self) -> int | None:
        """Cumulative pages swapped out by the whole system (/proc/vmstat pswpout), in bytes."""
        swapout = self._vmstat.read(b"pswpout")
        return None if swapout is None else swapout * self._page_size

    def own_hwm_bytes(self) -> int:
        """memwatch's own resident high-water mark (VmHWM)."""
        return read_proc_mem(os.getpid(), procfs=self.procfs).hwm_bytes or 0

    def limitations(self, *, pss: bool) -> list[str]:
        return []
