"""The psutil backend: sampling where there is no Linux /proc (macOS, Windows, the BSDs).

psutil gives per process what the platform reports, and memwatch claims no more:
  - RSS everywhere (``memory_info().rss``);
  - swap only on Linux, through ``memory_full_info().swap`` (smaps_rollup: several times
    the cost of the /proc backend's status read). macOS and Windows report no swap per
    process (Windows' ``pagefile`` is commit charge, not memory swapped out);
  - a resident high-water mark only on Windows (``peak_wset``). psutil exposes no VmHWM
    on Linux and macOS keeps none per process, so there a spike shorter than the
    sampling interval is caught only in the command's own ru_maxrss, and no upper bound
    is known;
  - PSS only on Linux (``memory_full_info().pss``), SwapPss nowhere.
Which of these this platform has is read once from psutil's own answer for memwatch's
process, not from a table of platforms. psutil.NoSuchProcess (ZombieProcess included)
becomes ProcessGone and AccessDenied becomes PermissionDenied here, at the boundary.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import Any

import psutil

from .errors import PermissionDenied, ProcessGone
from .measures import BackendName, ProcMem
from .rusage import maxrss_bytes

# Where psutil names a per-process resident high-water mark (Windows: the peak working set).
HWM_FIELDS = ("peak_rss", "peak_wset")

NO_HWM = (
    "psutil backend: no per-process high-water mark (VmHWM) on this platform: spikes "
    "between samples can be missed (only the command's own ru_maxrss sees them), so the "
    "upper bound is unknown"
)
NO_SWAP = "psutil backend: no swap per process on this platform: the figures are RAM only"
NO_SWAP_DETECTION = (
    "psutil backend: neither per-process nor system swap-out figures on this platform: "
    "swapping cannot be detected"
)
NO_PSS = "psutil backend: no PSS on this platform: --pss counts RSS (shared pages once per process)"
NO_SWAP_PSS = (
    "psutil backend: no SwapPss: with --pss, swapped-out pages shared between processes "
    "count once per process"
)


def start_key(proc: psutil.Process) -> int:
    """psutil's identity of the process, as an int: equal for the same process, not for a reuse.

    psutil hashes a Process by its pid and start time, and works the start time out when
    the object is made (since boot on Linux and macOS, so a clock step changes nothing).
    ``create_time()`` would read the files again (on Linux /proc/PID/stat and /proc/stat),
    and is wall-clock time.
    """
    return hash(proc)


def _denied(pid: int) -> PermissionDenied:
    return PermissionDenied(pid, f"the memory of process {pid} (psutil)")


class PsutilTreeTracker:
    """Follows ``root_pid`` and its descendants through psutil.

    ``children(recursive=True)`` walks the whole system's process table on every call,
    which is why this is not the Linux default. With ``reaper_pid`` (memwatch made a child
    subreaper) the reaper's other children born after the root, orphans reparented to it,
    and their descendants count too: the rule of tree.TreeTracker.
    """

    def __init__(self, root_pid: int, *, reaper_pid: int | None = None) -> None:
        self.root_pid = root_pid
        try:
            self._root = psutil.Process(root_pid)
            self._reaper = None if reaper_pid is None else psutil.Process(reaper_pid)
            self._root_created = self._root.create_time()
        except psutil.NoSuchProcess as err:
            raise ProcessGone(root_pid) from err
        except psutil.AccessDenied as err:
            raise _denied(root_pid) from err
        self._members: dict[int, int] = {root_pid: start_key(self._root)}

    def refresh(self) -> dict[int, int]:
        """Re-list the tree; returns {pid: start key} of the current members."""
        try:
            found = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            found = []  # the root has been reaped; orphans may still be the reaper's
        except psutil.AccessDenied:
            return dict(self._members)  # cannot list now: keep what was known
        if self._reaper is not None:
            try:
                adopted = self._reaper.children()
            except psutil.Error:
                adopted = []
            for orphan in adopted:
                # Ours only if born after the job was (the reaper may have older children);
                # children() has read each child's create_time already.
                if orphan.pid == self.root_pid or orphan.create_time() < self._root_created:
                    continue
                found.append(orphan)
                try:
                    found += orphan.children(recursive=True)
                except psutil.Error:
                    pass  # gone meanwhile, or not listable: the orphan itself still counts
        self._members = {p.pid: start_key(p) for p in found}
        return dict(self._members)

    def forget(self, pid: int) -> None:
        """Drop a pid whose start time changed (pid reuse); the next refresh re-lists it."""
        self._members.pop(pid, None)


class PsutilBackend:
    """Reads processes through psutil; says which figures this platform cannot give."""

    name: BackendName = "psutil"

    def __init__(self, platform: str = sys.platform) -> None:
        self.platform = platform
        me = psutil.Process()
        basic = set(me.memory_info()._fields)
        try:
            full = set(me.memory_full_info()._fields)
        except psutil.AccessDenied:  # not even for itself (a locked-down system): basic only
            full = basic
        self.has_swap = "swap" in basic or "swap" in full
        # Linux reports swap only in memory_full_info(): reading it costs smaps_rollup.
        self._swap_needs_full = "swap" not in basic and "swap" in full
        self.has_pss = "pss" in full
        self.hwm_field = next((f for f in HWM_FIELDS if f in basic), None)
        self.has_system_swapout = platform != "win32"  # psutil: sout is always 0 on Windows

    @property
    def has_hwm(self) -> bool:
        return self.hwm_field is not None

    def tracker(self, root_pid: int, *, reaper_pid: int | None = None) -> PsutilTreeTracker:
        return PsutilTreeTracker(root_pid, reaper_pid=reaper_pid)

    def read_mem(self, pid: int, *, pss: bool = False) -> ProcMem:
        """One process's memory; a figure this platform does not report is None."""
        want_pss = pss and self.has_pss
        try:
            proc = psutil.Process(pid)
            mem: Any = (
                proc.memory_full_info() if self._swap_needs_full or want_pss else proc.memory_info()
            )
        except psutil.NoSuchProcess as err:  # ZombieProcess too: it holds no memory
            raise ProcessGone(pid) from err
        except psutil.AccessDenied as err:
            raise _denied(pid) from err
        rss = int(mem.rss)
        swap = int(mem.swap) if self.has_swap else None
        hwm = None if self.hwm_field is None else max(rss, int(getattr(mem, self.hwm_field)))
        pss_bytes = int(mem.pss) if want_pss else None
        return ProcMem(pid, start_key(proc), rss, swap, hwm, pss_bytes, None)

    def read_member(self, pid: int, start: int, *, pss: bool = False) -> ProcMem:
        mem = self.read_mem(pid, pss=pss)
        if mem.start_ticks != start:
            raise ProcessGone(pid)  # the pid was reused by another process
        return mem

    def release(self, keep: Collection[int]) -> None:
        """Nothing is held open per process."""

    def is_running(self, pid: int) -> bool:
        """False once the process has exited, including as a not yet reaped zombie."""
        try:
            return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # it exists, even if psutil may not look at it

    def system_swapout_bytes(self) -> int | None:
        """Bytes the system swapped out so far (psutil.swap_memory().sout); None if unknown."""
        if not self.has_system_swapout:
            return None
        try:
            return int(psutil.swap_memory().sout)
        except (OSError, psutil.Error):
            return None

    def own_hwm_bytes(self) -> int:
        """memwatch's own resident high-water mark: getrusage(RUSAGE_SELF), else psutil's."""
        try:
            import resource
        except ImportError:  # Windows: no getrusage; the peak working set says the same
            mem = psutil.Process().memory_info()
            return int(getattr(mem, self.hwm_field or "rss"))
        return maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, self.platform)

    def limitations(self, *, pss: bool) -> list[str]:
        """Summary warnings naming each figure this platform cannot give."""
        notes = []
        if not self.has_hwm:
            notes.append(NO_HWM)
        if not self.has_swap:
            notes.append(NO_SWAP if self.has_system_swapout else NO_SWAP_DETECTION)
        if pss:
            notes.append(NO_SWAP_PSS if self.has_pss else NO_PSS)
        return notes
