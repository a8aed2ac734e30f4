"""Which processes belong to a job: a wrapped command's tree, or a watch entry's selection.

TreeTracker follows a wrapped command: the root and every descendant, daemonized ones
included. ``select``/``assign`` pick the processes of the daemon's watch entries from one
listing of /proc (a ProcessView), purely, so the rules are testable on plain data.

/proc/PID/task/TID/children would give children directly, but it needs
CONFIG_PROC_CHILDREN, which many distribution kernels (and this project's CI kernel)
leave out. Instead each refresh lists /proc once (a single getdents) and reads
/proc/PID/stat only for pids it has not classified yet, so a steady tree costs one
directory listing per sample, not a read of every process on the machine (which is
what psutil's ``children(recursive=True)`` does on every call).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from .config import Selector, WatchEntry
from .errors import MemwatchError, ProcessGone
from .measures import ProcMem
from .procfs import (
    PROC,
    StatusFiles,
    list_pids,
    read_cgroups,
    read_cmdline,
    read_exe,
    read_pidfile,
    read_stat,
    read_stat_comm,
    read_uid,
)


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
            return _born_after(self._members[ppid], start)
        # An orphan reparented to the subreaper: ours only if born after the job was.
        return ppid == self._reaper_pid and start >= self._root_start

    def forget(self, pid: int) -> None:
        """Drop a pid whose start time changed (pid reuse); it is re-classified next refresh."""
        self._members.pop(pid, None)


def _born_after(parent_start: int, child_start: int) -> bool:
    """Whether a process started at ``child_start`` can be a child of one started at
    ``parent_start``: a child is never older than its parent.

    One that is named, in a stat read before it was reparented, a parent that has exited
    since and whose pid a newer process now has. psutil's ``Process.children`` drops such
    a child the same way.
    """
    return parent_start <= child_start


# --- watch entries: which processes each selects ---------------------------------------------


_T = TypeVar("_T")


class ProcessView(Protocol):
    """What selection may know about the processes of one pass.

    ``stats`` is read for every process; the other facts only when a selector asks, and
    each at most once per pass. A fact the kernel refused to show is None (or empty).
    """

    @property
    def stats(self) -> Mapping[int, tuple[int, int]]:
        """pid -> (ppid, start_ticks) of every process listed."""
        ...

    def comm(self, pid: int) -> str | None: ...

    def exe(self, pid: int) -> str | None: ...

    def uid(self, pid: int) -> int | None: ...

    def cmdline(self, pid: int) -> str | None: ...

    def cgroups(self, pid: int) -> tuple[str, ...]: ...

    def pidfile(self, path: str) -> int | None: ...


# How long what selection read of a process is trusted: setproctitle, a cgroup migration or
# an exec that keeps the comm are seen within this (up to twice this: spread by pid).
FACTS_MAX_AGE_S = 10.0


class ProcessTable:
    """A ProcessView kept from pass to pass, so that a pass costs about one read per process.

    ``refresh()`` lists /proc once and reads /proc/PID/stat of each process, except those
    whose memory was read since the last refresh: ``read_mem`` reads their status (from a
    file kept open, which also tells a reused pid: procfs.StatusFiles), whose Name and
    PPid lines show an exec or a new parent, which brings the stat read back. A process's
    stat is read anyway when its parent is gone (it was reparented) and once its last
    stat read is older than about ``max_age_s``. The command line, executable and cgroups are read
    when a selector first asks, and kept until the comm or the start time changes or they
    are older than about ``max_age_s``. Ages are spread by pid, so that refreshes do not all
    fall on one pass. Processes that vanish while being read are left out: processes come
    and go. A fact the kernel refuses (``exe`` of another user's process without
    CAP_SYS_PTRACE) reads as None.
    """

    def __init__(
        self,
        procfs: str = PROC,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age_s: float = FACTS_MAX_AGE_S,
        status_files: StatusFiles | None = None,
    ) -> None:
        self.procfs = procfs
        self._status = status_files if status_files is not None else StatusFiles(procfs)
        self.stats: dict[int, tuple[int, int]] = {}
        self._clock = clock
        self._max_age_s = max_age_s
        self._comm: dict[int, str] = {}
        self._stat_until: dict[int, float] = {}
        self._name: dict[int, bytes] = {}  # the status Name line at the last memory read
        self._status_read: set[int] = set()  # status read since the last refresh
        self._cmdline: dict[int, tuple[str | None, float]] = {}
        self._exe: dict[int, tuple[str | None, float]] = {}
        self._uid: dict[int, tuple[int | None, float]] = {}
        self._cgroups: dict[int, tuple[tuple[str, ...] | None, float]] = {}
        self._pidfiles: dict[str, int | None] = {}

    def refresh(self) -> None:
        """List /proc again (one getdents) and bring ``stats`` up to date."""
        now = self._clock()
        self._pidfiles.clear()
        alive = list_pids(self.procfs)
        present = set(alive)
        for pid in [p for p in self.stats if p not in present]:
            self._forget(pid)
        checked, self._status_read = self._status_read, set()
        for pid in alive:
            known = self.stats.get(pid)
            if (
                known is not None
                and pid in checked
                and (known[0] in self.stats or known[0] == 0)
                and now < self._stat_until[pid]
            ):
                continue
            self._read_stat(pid, now)

    def _read_stat(self, pid: int, now: float) -> None:
        try:
            comm, ppid, start = read_stat_comm(pid, self.procfs)
        except MemwatchError:  # gone, or hidden from us: not a process we can watch
            self._forget(pid)
            return
        known = self.stats.get(pid)
        if known is None or known[1] != start or self._comm.get(pid) != comm:
            self._forget(pid)  # a new process, a reused pid, or an exec: facts are void
        self.stats[pid] = (ppid, start)
        self._comm[pid] = comm
        self._stat_until[pid] = now + self._age(pid)

    def _age(self, pid: int) -> float:
        return self._max_age_s * (1 + (pid % 16) / 16)

    def _forget(self, pid: int) -> None:
        for cache in (
            self.stats,
            self._comm,
            self._stat_until,
            self._name,
            self._cmdline,
            self._exe,
            self._uid,
            self._cgroups,
        ):
            cache.pop(pid, None)
        self._status_read.discard(pid)
        self._status.close(pid)

    def read_mem(self, pid: int, *, pss: bool = False) -> ProcMem:
        """Memory of a listed process; raises ProcessGone or PermissionDenied.

        Its status also tells of an exec (a new Name: the next refresh reads its stat and
        selection reads its facts again) and of a new parent (used from the next pass on).
        """
        listed = self.stats.get(pid)
        if listed is None:
            raise ProcessGone(pid)  # gone since the listing (its read failed before)
        ppid, start = listed
        try:
            mem, name, new_ppid = self._status.read(pid, start, pss=pss)
        except ProcessGone:
            # Gone, or its pid already reused: the next refresh sees a new process, if any.
            self._forget(pid)
            raise
        if self._name.get(pid, name) != name:
            for cache in (self._cmdline, self._exe, self._uid, self._cgroups):
                cache.pop(pid, None)
            self._status_read.discard(pid)
        else:
            self._status_read.add(pid)
        self._name[pid] = name
        if new_ppid != ppid:
            self.stats[pid] = (new_ppid, start)
        return mem

    def close(self) -> None:
        """Close the status files kept open."""
        self._status.close_all()

    def comm(self, pid: int) -> str | None:
        return self._comm.get(pid)

    def exe(self, pid: int) -> str | None:
        return self._cached(self._exe, pid, read_exe)

    def uid(self, pid: int) -> int | None:
        return self._cached(self._uid, pid, read_uid)

    def cmdline(self, pid: int) -> str | None:
        return self._cached(self._cmdline, pid, read_cmdline)

    def cgroups(self, pid: int) -> tuple[str, ...]:
        return self._cached(self._cgroups, pid, read_cgroups) or ()

    def pidfile(self, path: str) -> int | None:
        if path not in self._pidfiles:  # read once per pass: the service may have restarted
            self._pidfiles[path] = read_pidfile(path)
        return self._pidfiles[path]

    def _cached(
        self,
        cache: dict[int, tuple[_T | None, float]],
        pid: int,
        reader: Callable[[int, str], _T | None],
    ) -> _T | None:
        now = self._clock()
        found = cache.get(pid)
        if found is not None and now < found[1]:
            return found[0]
        value: _T | None
        try:
            value = reader(pid, self.procfs)
        except MemwatchError:  # gone (forgotten at the next refresh), or refused
            value = None
        if pid in self.stats:
            cache[pid] = (value, now + self._age(pid))
        return value


def _in_cgroup(paths: Iterable[str], cgroup: str) -> bool:
    """Whether a path is ``cgroup`` or below it (memory is accounted hierarchically too)."""
    top = cgroup.rstrip("/")
    if not top:
        return True  # "/": the whole hierarchy
    return any(p == top or p.startswith(top + "/") for p in paths)


def _in_unit(paths: Iterable[str], unit: str) -> bool:
    """Whether a path is the unit's cgroup or below it, in any hierarchy.

    A unit's processes sit in ".../<unit>"; a unit with Delegate=yes (user@.service, a
    container manager) puts them in sub-cgroups ".../<unit>/...", still its processes.
    """
    leaf, inner = "/" + unit, "/" + unit + "/"
    return any(p.endswith(leaf) or inner in p for p in paths)


def _name_matches(name: str, pid: int, view: ProcessView) -> bool:
    """A path names the executable itself; a bare name its basename or the comm.

    Any user can name a process anything (prctl PR_SET_NAME, or a copy of a binary under
    that name), so a bare name lets anyone's process join the job; the executable's path
    cannot be faked by a user who cannot write there (and needs ptrace access to read).
    """
    if name.startswith("/"):
        return view.exe(pid) == name
    # comm is cut to 15 characters, and a process can rename itself: the executable's
    # basename matches too (read only when comm does not, as it needs ptrace access).
    if view.comm(pid) == name:
        return True
    exe = view.exe(pid)
    return exe is not None and os.path.basename(exe) == name


def matches(selector: Selector, pid: int, view: ProcessView) -> bool:
    """Whether the process passes every field the selector gives (cheapest checks first)."""
    given = False
    if selector.pid is not None:
        given = True
        if pid != selector.pid:
            return False
    if selector.pidfile is not None:
        given = True
        if pid != view.pidfile(selector.pidfile):
            return False
    if selector.uid is not None:
        given = True
        if view.uid(pid) != selector.uid:
            return False
    if selector.name is not None:
        given = True
        if not _name_matches(selector.name, pid, view):
            return False
    if selector.cmdline is not None:
        given = True
        cmdline = view.cmdline(pid)
        if not cmdline or selector.cmdline.search(cmdline) is None:
            return False
    if selector.cgroup is not None:
        given = True
        if not _in_cgroup(view.cgroups(pid), selector.cgroup):
            return False
    if selector.systemd_unit is not None:
        given = True
        if not _in_unit(view.cgroups(pid), selector.systemd_unit):
            return False
    return given  # a selector that gives nothing selects nothing, not everything


def select(
    selector: Selector, view: ProcessView, candidates: Collection[int] | None = None
) -> set[int]:
    """The pids the selector matches directly, among ``candidates`` (default: every process)."""
    pool: Iterable[int] = view.stats if candidates is None else candidates
    if selector.pid is not None:  # one pid to check, not the whole machine
        pool = [selector.pid] if selector.pid in pool else []
    elif selector.pidfile is not None:
        pid = view.pidfile(selector.pidfile)
        pool = [pid] if pid is not None and pid in pool else []
    return {pid for pid in pool if pid in view.stats and matches(selector, pid, view)}


def descendants(pids: Iterable[int], children: Mapping[int, Sequence[int]]) -> set[int]:
    """Every process below ``pids`` (not ``pids`` themselves) in the ppid tree."""
    found: set[int] = set()
    stack = [c for pid in pids for c in children.get(pid, ())]
    while stack:
        pid = stack.pop()
        if pid not in found:  # a torn listing (pid reuse mid-pass) must not loop forever
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


def assign(
    entries: Sequence[WatchEntry], view: ProcessView, *, exclude: Collection[int] = ()
) -> list[set[int]]:
    """The pids of each entry, in order: a process goes to the first entry that selects it,
    directly or as a descendant of a process it selects.

    ``exclude``: pids never selected (memwatch itself, whose command line names its config
    and would match a careless regex; ``pgrep -f`` excludes itself the same way).
    """
    children: dict[int, list[int]] = {}
    for pid, (ppid, start) in view.stats.items():
        parent = view.stats.get(ppid)
        if parent is None or _born_after(parent[1], start):
            children.setdefault(ppid, []).append(pid)
    everyone = view.stats.keys() - set(exclude)
    unclaimed = set(everyone)
    members = []
    for entry in entries:
        # A process an earlier entry holds can still be the root of this entry's tree (when
        # the earlier entry does not take children): only then are held processes tested.
        direct = select(entry.selector, view, everyone if entry.children else unclaimed)
        mine = direct | descendants(direct, children) if entry.children else direct
        mine &= unclaimed
        unclaimed -= mine
        members.append(mine)
    return members
