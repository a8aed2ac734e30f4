"""Which processes belong to a job: the root and every descendant, daemonized ones included.

/proc/PID/task/TID/children would give children directly, but it needs
CONFIG_PROC_CHILDREN, which many distribution kernels (and this project's CI kernel)
leave out. Instead each refresh lists /proc once (a single getdents) and reads
/proc/PID/stat only for pids it has not classified yet, so a steady tree costs one
directory listing per sample, not a read of every process on the machine (which is
what psutil's ``children(recursive=True)`` does on every call).
"""

from __future__ import annotations

from .errors import MemwatchError
from .procfs import PROC, list_pids, read_stat


class TreeTracker:
    """Tracks the descendants of ``root_pid``.

    With ``reaper_pid`` (memwatch itself, made a child subreaper), processes that were
    orphaned and reparented to the reaper after the job started count as members too.
    """

    def __init__(self, root_pid: int, *, reaper_pid: int | None = None, procfs: str = PROC):
        self.root_pid = root_pid
        self._reaper_pid = reaper_pid
        self._procfs = procfs
        _, self._root_start = read_stat(root_pid, procfs)
        self._members: dict[int, int] = {root_pid: self._root_start}  # pid -> start ticks
        self._outsiders: set[int] = set()

    def refresh(self) -> dict[int, int]:
        """Re-scan for new processes; returns {pid: start_ticks} of the current members."""
        alive = set(list_pids(self._procfs))
        for pid in [p for p in self._members if p not in alive]:
            del self._members[pid]
        self._outsiders &= alive
        pending: dict[int, tuple[int, int]] = {}
        for pid in alive - self._members.keys() - self._outsiders:
            try:
                pending[pid] = read_stat(pid, self._procfs)
            except MemwatchError:  # gone or unreadable before we could look: not ours to count
                continue
        # A child can be discovered in the same listing as its parent: repeat until stable.
        changed = True
        while changed:
            changed = False
            for pid, (ppid, start) in list(pending.items()):
                if self._is_member(ppid, start):
                    self._members[pid] = start
                    del pending[pid]
                    changed = True
        self._outsiders.update(pending)
        return dict(self._members)

    def _is_member(self, ppid: int, start: int) -> bool:
        if ppid in self._members:
            return True
        # An orphan reparented to the subreaper: ours only if born after the job was.
        return ppid == self._reaper_pid and start >= self._root_start

    def forget(self, pid: int) -> None:
        """Drop a pid whose start time changed (pid reuse); it is re-classified next refresh."""
        self._members.pop(pid, None)
