"""What the daemon measures of each watch entry, pass after pass.

A pass reads the due entries' cgroups (an entry that selects only a cgroup or a unit), or
lists /proc once, gives every process to the first entry that selects it and reads the
members; then it publishes a new immutable Snapshot: one reference assignment, so a
scrape (in the server's threads) reads whole snapshots and never waits for, or walks,
/proc. Each job keeps its peak and recent samples between passes. ``daemon`` decides when
a pass runs.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from .cgroup import CgroupCounters, cgroup_directory, find_unit_cgroup, memory_mount
from .config import Selector, WatchEntry
from .errors import CgroupUnavailable, PermissionDenied, ProcessGone
from .measures import JobSnapshot, ProcMem, Sample, Snapshot
from .peak import TreeAccumulator
from .plateau import RECENT_SAMPLES, swapping_recently
from .procfs import is_running, read_vmstat
from .recommender import Recommender
from .report import human_bytes, parse_size
from .tree import FACTS_MAX_AGE_S, ProcessTable, ProcessView, assign

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class _JobState:
    """What the daemon remembers of one job between passes."""

    present: bool = False  # the job had processes at its last pass
    # Both restart when the job's processes (re)appear. The accumulator is fed unix times,
    # so its peak's at_s is the unix time of the pass that saw it.
    accumulator: TreeAccumulator = field(default_factory=TreeAccumulator)
    recent: deque[Sample] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLES))
    peak_total_bytes: int = 0
    peak_at_unix_s: float | None = None
    warned_unreadable: bool = False
    snapshot: JobSnapshot | None = None
    cgroup: _CgroupState | None = None  # set for an entry sampled from its cgroup


@dataclass
class _CgroupState:
    """An entry sampled from its cgroup: the files kept open and the kernel's peak."""

    counters: CgroupCounters | None = None
    # Looked for and missing (a unit not running, or stopped): a cgroup found after that
    # was made while memwatch watched, so its whole peak is since then ("fresh").
    missed: bool = False
    fresh: bool = False
    searched_at: float | None = None  # when a unit's cgroup was last looked for, not found
    # The kernel's peak when the job's processes (re)appeared: only a peak above it is
    # known to have happened while memwatch watched.
    peak_before: int = 0
    kernel_peak: int = 0  # the kernel's peak since then, once above peak_before
    kernel_peak_at_unix_s: float | None = None  # the pass that first saw it


def observed_size(entry: WatchEntry, pids: Collection[int], view: ProcessView) -> float | None:
    """The input size read by ``size_from_cmdline`` from the job's oldest matching process."""
    pattern = entry.size_from_cmdline
    if pattern is None:
        return None
    listed = view.stats
    # Oldest first; a process gone since the listing (no longer listed) has no size to give.
    for pid in sorted((p for p in pids if p in listed), key=lambda p: (listed[p][1], p)):
        found = pattern.search(view.cmdline(pid) or "")
        text = None if found is None else found.group(1) if pattern.groups else found.group(0)
        if text is None:  # no match, or an optional group that did not take part
            continue
        try:
            return parse_size(text)
        except ValueError:
            continue  # "(\S+)" caught something that is not a size: try the next one
    return None


class Watcher:
    """The jobs of a watch list and their figures; ``sample`` runs one pass.

    ``table`` is the /proc view it keeps, ``procfs`` the /proc it reads, ``clock``
    (monotonic) times the passes and paces the search for a unit's cgroup, ``wall_clock``
    (unix time) stamps the samples, ``log`` takes job events and ``recommender`` gives
    the recommendations.
    """

    def __init__(
        self,
        table: ProcessTable,
        procfs: str,
        recommender: Recommender,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        log: Callable[[str], None],
    ) -> None:
        self.table = table
        self.recommender = recommender  # replaced when a reload names another history
        self.jobs: dict[str, _JobState] = {}
        self._procfs = procfs
        self._clock = clock
        self._wall_clock = wall_clock
        self._log = log
        self._own_pid = os.getpid()
        self._snapshot: Snapshot | None = None
        self._passes = 0
        self._read_errors = 0

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first pass): what every scrape shows."""
        return self._snapshot

    def sample(self, entries: Sequence[WatchEntry], due: Collection[int] | None = None) -> Snapshot:
        """One pass: read the due entries' cgroups, or list /proc once and read the members.

        ``due``: indexes into ``entries`` (default: all). The other jobs keep the
        figures of their own last pass in the new snapshot. /proc is listed only when a
        due entry selects processes (a cgroup's totals need no listing).
        """
        started = self._clock()
        due = range(len(entries)) if due is None else due
        now_unix = self._wall_clock()
        states = [self.jobs.setdefault(e.name, _JobState()) for e in entries]
        for i in due:
            if by_cgroup(entries[i]):
                self._open_cgroup(entries[i], states[i])
            elif states[i].cgroup is not None:  # a reload made it select processes
                _close_cgroups([states[i]])
        selecting = [i for i, st in enumerate(states) if st.cgroup is None]
        swapout = None
        if any(i in selecting for i in due):
            self.table.refresh()
            found = assign([entries[i] for i in selecting], self.table, exclude=(self._own_pid,))
            members = dict(zip(selecting, found, strict=True))
            pswpout = read_vmstat(("pswpout",), self._procfs).get("pswpout")
            swapout = None if pswpout is None else pswpout * PAGE_SIZE
        self.recommender.poke()
        for i in due:
            entry, state = entries[i], states[i]
            if state.cgroup is not None:
                state.snapshot = self._sample_cgroup(entry, state, now_unix)
            else:
                state.snapshot = self._sample_job(
                    entry, state, members[i], self.table, now_unix, swapout
                )
        jobs = tuple(self._job_snapshot(e.name) for e in entries)
        self._passes += 1
        snapshot = Snapshot(
            taken_at_unix_s=now_unix,
            jobs=jobs,
            pass_duration_s=self._clock() - started,
            passes_total=self._passes,
            read_errors_total=self._read_errors,
        )
        self._snapshot = snapshot  # the atomic swap: scrapes see the old or the new, whole
        return snapshot

    # -- entries sampled from their cgroup --------------------------------------------------

    def _open_cgroup(self, entry: WatchEntry, state: _JobState) -> None:
        """Keep the entry's cgroup files open; where they cannot be read, its processes are
        selected instead (state.cgroup None), as for any other entry."""
        cg = state.cgroup if state.cgroup is not None else _CgroupState()
        if cg.counters is not None:
            state.cgroup = cg
            return
        path = self._cgroup_path(entry.selector, cg)
        if path is None:
            cg.missed = True
            state.cgroup = cg  # a unit not running now: no processes, nothing to select
            return
        try:
            cg.counters = CgroupCounters(*path, nested=True)
        except CgroupUnavailable as err:
            if os.path.isdir(path[1]):
                # No memory controller there (a v2 cgroup without it): select processes.
                self._log(f"job {entry.name}: {err}: its processes are read one by one")
                state.cgroup = None
                return
            cg.missed = True  # removed meanwhile: looked for again at the next pass
            state.cgroup = cg
            return
        cg.fresh, cg.missed = cg.missed, False
        state.cgroup = cg

    def _cgroup_path(self, selector: Selector, cg: _CgroupState) -> tuple[int, str] | None:
        try:
            if selector.cgroup is not None:
                version, directory = cgroup_directory(selector.cgroup, self._procfs)
                return (version, directory) if os.path.isdir(directory) else None
            assert selector.systemd_unit is not None
            now = self._clock()
            if cg.searched_at is not None and now - cg.searched_at < FACTS_MAX_AGE_S:
                return None  # looked for a moment ago: a walk of the hierarchy is not free
            version, top = memory_mount(self._procfs)
            found = find_unit_cgroup(top, selector.systemd_unit)
            cg.searched_at = None if found else now
            return None if found is None else (version, found)
        except CgroupUnavailable:
            return None

    def _sample_cgroup(self, entry: WatchEntry, state: _JobState, now_unix: float) -> JobSnapshot:
        assert state.cgroup is not None
        cg = state.cgroup
        usage = processes = kernel_peak = None
        if cg.counters is not None:
            try:
                usage, processes = cg.counters.read(), cg.counters.processes()
                kernel_peak = cg.counters.peak_bytes()
            except CgroupUnavailable:  # the unit stopped: its cgroup is gone
                cg.counters.close()
                cg.counters = None
                cg.missed = True
                usage = None
        count = processes or 0
        if count and not state.present:
            cg.peak_before = 0 if cg.fresh else kernel_peak or 0
            cg.fresh = False
            cg.kernel_peak, cg.kernel_peak_at_unix_s = 0, None
        self._appear(entry, state, count)
        rss = swap = 0
        if state.present and usage is not None:
            rss, swap = usage.ram_bytes, usage.swap_bytes or 0
            sample = Sample(now_unix, rss + swap, rss, usage.swap_bytes, None, count)
            state.accumulator.record(sample)
            state.recent.append(sample)
            if kernel_peak is not None and kernel_peak > max(cg.peak_before, cg.kernel_peak):
                cg.kernel_peak, cg.kernel_peak_at_unix_s = kernel_peak, now_unix
            best, at = _peak(state.accumulator)
            # The kernel's peak of the whole cgroup, reached while memwatch watched: it
            # counts what happened between two passes too.
            if cg.kernel_peak > best:
                best, at = cg.kernel_peak, cg.kernel_peak_at_unix_s
            state.peak_total_bytes, state.peak_at_unix_s = best, at
        return self._figures(entry, state, count, rss, swap)

    def _appear(self, entry: WatchEntry, state: _JobState, count: int) -> None:
        """Note a job's processes appearing (its peak and swap history start afresh) or
        all leaving (its peak stays exported)."""
        if count and not state.present:
            state.present = True
            state.accumulator = TreeAccumulator(pss=entry.pss)
            state.recent.clear()
            self._log(f"job {entry.name}: {count} process(es) appeared")
        elif not count and state.present:
            state.present = False
            self._log(
                f"job {entry.name}: no processes left; peak "
                f"{human_bytes(state.peak_total_bytes)} stays exported until they return"
            )

    # -- entries that select processes ------------------------------------------------------

    def _job_snapshot(self, job: str) -> JobSnapshot:
        state = self.jobs.get(job)
        if state is None or state.snapshot is None:
            return JobSnapshot(job, 0, 0, 0, None, 0, None, False, 0)  # not sampled yet
        return state.snapshot

    def _sample_job(
        self,
        entry: WatchEntry,
        state: _JobState,
        pids: Collection[int],
        view: ProcessView,
        now_unix: float,
        swapout: int | None,
    ) -> JobSnapshot:
        procs: list[ProcMem] = []
        unreadable = 0
        for pid in pids:
            try:
                procs.append(self.table.read_mem(pid, pss=entry.pss))
            except ProcessGone:
                continue  # exited since the listing: processes come and go
            except PermissionDenied:
                unreadable += 1
        self._read_errors += unreadable
        if unreadable and not state.warned_unreadable:
            state.warned_unreadable = True
            self._log(
                f"job {entry.name}: {unreadable} process(es) unreadable (permission denied), "
                "their memory is not counted: run memwatch as root or with CAP_SYS_PTRACE "
                "(see systemd/memwatch.service)"
            )
        count = len(procs) + unreadable
        self._appear(entry, state, count)
        rss = swap = 0
        pss = 0 if entry.pss else None
        if state.present:
            if state.accumulator.pss != entry.pss:  # changed by a reload: figures restart
                state.accumulator = TreeAccumulator(pss=entry.pss)
            # PSS splits a shared page among the processes mapping it when read: one that
            # exits mid-pass raises its sharers' PSS after it was counted (see sampler.py).
            torn = entry.pss and any(not is_running(p.pid, self._procfs) for p in procs)
            sample = state.accumulator.feed(now_unix, procs, swapout, torn=torn)
            state.recent.append(sample)
            rss, swap, pss = sample.rss_bytes, sample.swap_bytes or 0, sample.pss_bytes
            state.peak_total_bytes, state.peak_at_unix_s = _peak(state.accumulator)
        size = observed_size(entry, pids, view) if count else None
        hwm = state.accumulator.max_process_hwm_bytes if state.present else None
        return self._figures(entry, state, count, rss, swap, pss, unreadable, size, hwm)

    def _figures(
        self,
        entry: WatchEntry,
        state: _JobState,
        processes: int,
        rss: int,
        swap: int,
        pss: int | None = None,
        unreadable: int = 0,
        size: float | None = None,
        process_hwm: int | None = None,
    ) -> JobSnapshot:
        """The job's snapshot from this pass's figures and what the daemon kept of it."""
        sizes = list(entry.sizes)
        if size is not None and size not in sizes:
            sizes.append(size)
        return JobSnapshot(
            job=entry.name,
            processes=processes,
            rss_bytes=rss,
            swap_bytes=swap,
            pss_bytes=pss,
            peak_total_bytes=state.peak_total_bytes,
            peak_at_unix_s=state.peak_at_unix_s,
            swap_suspected=state.present and swapping_recently(state.recent),
            unreadable_processes=unreadable,
            observed_size=size,
            recommended_bytes=self.recommender.recommend(entry.name, sizes) if sizes else (),
            process_hwm_bytes=process_hwm,
        )

    def reconfigure(self, old: Sequence[WatchEntry], new: Sequence[WatchEntry]) -> None:
        """After a reload: forget the jobs gone; a job gone, or one selecting something
        else now, has its cgroup looked for afresh."""
        names = {e.name for e in new}
        kept = {e.name: e.selector for e in old} | {e.name: e.selector for e in new}
        changed = {e.name for e in old if kept[e.name] != e.selector}
        _close_cgroups(st for name, st in self.jobs.items() if name not in names or name in changed)
        self.jobs = {name: state for name, state in self.jobs.items() if name in names}
        self.table.close()  # status files of processes no entry may watch any more

    def close(self) -> None:
        """Close the files kept open: status files and cgroup files."""
        self.table.close()
        _close_cgroups(self.jobs.values())


def _close_cgroups(states: Iterable[_JobState]) -> None:
    """Close their cgroup files and forget their cgroups (found again if still watched)."""
    for state in states:
        if state.cgroup is not None and state.cgroup.counters is not None:
            state.cgroup.counters.close()
        state.cgroup = None


def _peak(acc: TreeAccumulator) -> tuple[int, float | None]:
    """The job's peak so far and the unix time of the pass that saw it.

    A total the job really held at one moment: the largest sampled total, or one process's
    high-water mark (VmHWM) that rose while memwatch watched it, which the kernel proves
    the job held at least (a spike shorter than the interval still counts). Never a sum
    of marks from different moments, nor a mark a process reached before memwatch's first
    look at it (those are exported apart: memwatch_job_process_hwm_bytes).
    """
    sampled = acc.max_sample
    best, at = (sampled.total_bytes, sampled.at_s) if sampled else (0, None)
    if acc.risen_hwm_bytes > best:
        best, at = acc.risen_hwm_bytes, acc.risen_hwm_at_s
    return best, at


def by_cgroup(entry: WatchEntry) -> bool:
    """Whether the entry is sampled from its cgroup's totals: it selects a cgroup or a
    systemd unit and nothing else, and asks for nothing only processes can tell (PSS, a
    size from a command line)."""
    sel = entry.selector
    if entry.pss or entry.size_from_cmdline is not None:
        return False
    # Any other field (a name, a user, ...) picks some of the cgroup's processes only.
    alone = dataclasses.replace(sel, cgroup=None, systemd_unit=None) == Selector()
    return alone and (sel.cgroup is None) != (sel.systemd_unit is None)
