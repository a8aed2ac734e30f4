"""Where the sampler's readings come from: Linux /proc (the default) or psutil (elsewhere).

A backend gives the sampler the few operations it needs: follow a job's process tree,
read one process's memory, tell whether a process still runs, and the system's swap-out
counter. It is chosen once per run: "auto" is /proc where /proc/self/status exists
(Linux), else psutil (macOS, Windows, the BSDs). ``--backend psutil`` selects the
portable one on Linux too, so it is tested where CI runs.

This module holds the protocols and the chooser; each backend lives in its own module
(proc_backend.py, psutil_backend.py), which imports nothing from here: no import cycle.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Literal, Protocol

from .errors import UsageError
from .measures import BackendName, ProcMem
from .proc_backend import ProcBackend
from .procfs import PROC, read_meminfo

BackendChoice = Literal["auto", "proc", "psutil"]
BACKEND_CHOICES: tuple[BackendChoice, ...] = ("auto", "proc", "psutil")


class Tracker(Protocol):
    """Follows the processes of one job (tree.TreeTracker is the /proc one)."""

    root_pid: int

    def refresh(self) -> dict[int, int]:
        """The current members: {pid: start key}, the key as ProcMem.start_ticks has it."""
        ...

    def forget(self, pid: int) -> None:
        """Drop a pid whose start key changed (pid reuse)."""
        ...


class Backend(Protocol):
    """The operations the sampler and ``measure()`` need from the OS."""

    name: BackendName

    def read_mem(self, pid: int, *, pss: bool = False) -> ProcMem:
        """One process's memory; raises ProcessGone or PermissionDenied."""
        ...

    def read_member(self, pid: int, start: int, *, pss: bool = False) -> ProcMem:
        """Memory of a tracked process known by (pid, start key); ProcessGone once that
        process is gone, its pid reused or not."""
        ...

    def release(self, keep: Collection[int]) -> None:
        """Let go of what is held open for processes not in ``keep``; of everything, when
        ``keep`` is empty."""
        ...

    def tracker(self, root_pid: int, *, reaper_pid: int | None = None) -> Tracker:
        """Follows ``root_pid``'s tree; with ``reaper_pid``, orphans adopted by it count too."""
        ...

    def is_running(self, pid: int) -> bool:
        """False once the process has exited, including as a not yet reaped zombie."""
        ...

    def system_swapout_bytes(self) -> int | None:
        """Bytes the whole system has swapped out so far; None where that is unknown."""
        ...

    def own_hwm_bytes(self) -> int:
        """memwatch's own resident high-water mark (run.py's ru_maxrss trust rule needs it)."""
        ...

    def limitations(self, *, pss: bool) -> list[str]:
        """Summary warnings naming each figure this backend cannot give here."""
        ...


def has_procfs(procfs: str = PROC) -> bool:
    """Whether a Linux /proc with per-process status files is mounted at ``procfs``."""
    return os.path.exists(f"{procfs}/self/status")


def open_backend(choice: str = "auto", *, procfs: str = PROC) -> Backend:
    """The backend for ``choice`` ("auto", "proc" or "psutil"); UsageError if it cannot work."""
    if choice not in BACKEND_CHOICES:
        raise UsageError(f"--backend must be one of {', '.join(BACKEND_CHOICES)} (got {choice!r})")
    proc_here = has_procfs(procfs)
    if choice == "proc" and not proc_here:
        raise UsageError(
            f"--backend proc: {procfs}/self/status does not exist (no Linux /proc here); "
            "use --backend psutil"
        )
    if choice == "proc" or (choice == "auto" and proc_here):
        return ProcBackend(procfs)
    from .psutil_backend import PsutilBackend  # imported only where it is used

    return PsutilBackend()


def machine_memory(procfs: str = PROC) -> tuple[int, int] | None:
    """(total, available) RAM in bytes: /proc/meminfo, else psutil (macOS, Windows)."""
    found = read_meminfo(procfs)
    if found is not None or has_procfs(procfs):
        return found
    import psutil

    memory = psutil.virtual_memory()
    return memory.total, memory.available
