"""The watch daemon: samples the watch list's process trees and serves them as metrics.

One main thread does everything but the HTTP serving, in the style of gunicorn's arbiter:
signal handlers only enqueue the signal; the loop waits on that queue until the next
entry is due (or the watchdog needs a ping), then dispatches a signal (SIGHUP reloads the
config, SIGTERM/SIGINT stop) or runs a sampling pass. A pass lists /proc once, gives
every process to the first entry that selects it, reads the members of the entries due
now and publishes a new immutable Snapshot: one reference assignment, so a scrape (in the
server's threads) reads whole snapshots and never waits for, or walks, /proc.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from .cgroup import CgroupCounters, cgroup_directory, find_unit_cgroup, memory_mount
from .config import Config, Selector, WatchEntry, WebConfig, load_config
from .console import say
from .errors import (
    CgroupUnavailable,
    ConfigError,
    MemwatchError,
    PermissionDenied,
    ProcessGone,
)
from .history import default_path
from .measures import JobSnapshot, ProcMem, Sample, Snapshot
from .peak import TreeAccumulator
from .plateau import RECENT_SAMPLES, swapping_recently
from .procfs import PROC, is_running, read_vmstat
from .recommender import FitJob, Recommender
from .report import human_bytes, parse_size
from .sdnotify import notify, reloading_state, watchdog_period_s
from .tree import FACTS_MAX_AGE_S, ProcessTable, ProcessView, assign

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def log(text: str) -> None:
    """One line on stderr (the journal under systemd); a closed stderr is not fatal."""
    say(f"memwatch: {text}")


class Server(Protocol):
    """What the daemon needs of the metrics server (metrics_server.MetricsServer)."""

    @property
    def port(self) -> int: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def update_web(self, web: WebConfig) -> None: ...


ServerFactory = Callable[[str, int, WebConfig], Server]


class _Schedule:
    """One entry's sampling slots t0 + k*interval; a pass that overruns skips missed slots."""

    def __init__(self, t0: float, interval_s: float) -> None:
        self.t0 = t0
        self.interval_s = interval_s
        self.k = 0

    @property
    def next_s(self) -> float:
        return self.t0 + self.k * self.interval_s

    def advance(self, now: float) -> None:
        self.k = max(self.k + 1, math.floor((now - self.t0) / self.interval_s) + 1)


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


class Daemon:
    """Watches the processes named in ``config`` and serves them as Prometheus metrics.

    The OS and the outside world are parameters, so tests can drive a pass or a signal
    without a real server or real time: ``procfs``, ``table`` (the /proc view it keeps),
    ``server_factory`` (address, port, web) -> server, ``load`` (config path -> Config),
    ``clock`` (monotonic), ``wall_clock`` (unix time), ``env`` ($NOTIFY_SOCKET,
    $WATCHDOG_USEC), ``log`` and ``fit_job`` (how the recommender fits: by default in a
    child process). ``port`` overrides the config's port, at reloads too.
    """

    def __init__(
        self,
        config: Config,
        *,
        port: int | None = None,
        procfs: str = PROC,
        table: ProcessTable | None = None,
        server_factory: ServerFactory | None = None,
        load: Callable[[str], Config] = load_config,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        env: Mapping[str, str] = os.environ,
        log: Callable[[str], None] = log,
        fit_job: FitJob | None = None,
    ) -> None:
        self._port = port
        self.config = self._configure(config)
        self._procfs = procfs
        self._table = table if table is not None else ProcessTable(procfs, clock=clock)
        self._server_factory = server_factory or self._metrics_server
        self._load = load
        self._clock = clock
        self._wall_clock = wall_clock
        self._env = env
        self._log = log
        self._own_pid = os.getpid()
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stopping = False
        self._registry: CollectorRegistry | None = None
        self._server: Server | None = None
        self._jobs: dict[str, _JobState] = {}
        self._fit_job = fit_job
        self._recommender = self._make_recommender(self.config)
        self._schedules: list[_Schedule] = []
        self._reset_schedules()
        self._snapshot: Snapshot | None = None
        self._passes = 0
        self._read_errors = 0
        self._pass_error: str | None = None
        self._notify_error: str | None = None
        self._watchdog_s = watchdog_period_s(env)
        self._next_watchdog = self._clock()

    # -- what the exporter reads ---------------------------------------------------------

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first pass): what every scrape shows."""
        return self._snapshot

    @property
    def server(self) -> Server | None:
        return self._server

    # -- sampling ------------------------------------------------------------------------

    def sample(self, due: Collection[int] | None = None) -> Snapshot:
        """One pass: read the due entries' cgroups, or list /proc once and read the members.

        ``due``: indexes into ``config.watch`` (default: all). The other jobs keep the
        figures of their own last pass in the new snapshot. /proc is listed only when a
        due entry selects processes (a cgroup's totals need no listing).
        """
        started = self._clock()
        entries = self.config.watch
        due = range(len(entries)) if due is None else due
        now_unix = self._wall_clock()
        states = [self._jobs.setdefault(e.name, _JobState()) for e in entries]
        for i in due:
            if by_cgroup(entries[i]):
                self._open_cgroup(entries[i], states[i])
            elif states[i].cgroup is not None:  # a reload made it select processes
                self._close_cgroups([states[i]])
        selecting = [i for i, st in enumerate(states) if st.cgroup is None]
        swapout = None
        if any(i in selecting for i in due):
            self._table.refresh()
            found = assign([entries[i] for i in selecting], self._table, exclude=(self._own_pid,))
            members = dict(zip(selecting, found, strict=True))
            pswpout = read_vmstat(("pswpout",), self._procfs).get("pswpout")
            swapout = None if pswpout is None else pswpout * PAGE_SIZE
        self._recommender.poke()
        for i in due:
            entry, state = entries[i], states[i]
            if state.cgroup is not None:
                state.snapshot = self._sample_cgroup(entry, state, now_unix)
            else:
                state.snapshot = self._sample_job(
                    entry, state, members[i], self._table, now_unix, swapout
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
        state = self._jobs.get(job)
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
                procs.append(self._table.read_mem(pid, pss=entry.pss))
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
            recommended_bytes=self._recommender.recommend(entry.name, sizes) if sizes else (),
            process_hwm_bytes=process_hwm,
        )

    def _reset_schedules(self) -> None:
        """Every entry due now, then on its own slots from here."""
        now = self._clock()
        self._schedules = [_Schedule(now, e.interval_s) for e in self.config.watch]

    def tick(self, now: float) -> None:
        """Run a pass over the entries due at ``now``, if any, and move their slots on."""
        due = [i for i, s in enumerate(self._schedules) if s.next_s <= now]
        if not due:
            return
        try:
            self.sample(due)
            self._pass_error = None
        except Exception as err:  # noqa: BLE001 - the daemon's boundary: one bad pass
            # (EMFILE listing /proc, a surprise in a reader) must not end the watching:
            # report it once and try again at the next slot.
            problem = str(err) if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
            if problem != self._pass_error:
                self._log(f"sampling pass failed: {problem}")
                self._pass_error = problem
        after = self._clock()
        for i in due:
            self._schedules[i].advance(after)

    # -- signals and the main loop --------------------------------------------------------

    def handle_signal(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler: only enqueue (SimpleQueue.put is reentrant); the loop acts."""
        self._signals.put_nowait(signum)

    def dispatch(self, signum: int) -> None:
        """Act on one signal taken from the queue, in the main loop."""
        if signum == signal.SIGHUP:
            self.reload()
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self._log(f"{signal.Signals(signum).name} received: stopping")
            self._stopping = True

    def run(self) -> int:
        """Sample, serve and handle signals until SIGTERM or SIGINT; returns the exit status."""
        previous = {s: signal.signal(s, self.handle_signal) for s in HANDLED_SIGNALS}
        try:
            return self._serve()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _serve(self) -> int:
        self._recommender.start()  # fits from now on in their own thread, never in a pass
        try:
            # Bound first: a daemon that cannot serve logs no job events before failing.
            try:
                self._server = self._start_server(self.config)
            except MemwatchError as err:
                self._log(f"error: {err}")
                return 1
            try:
                self._log(f"{self._describe(self.config)}; pid {self._own_pid}")
                for warning in self.config.warnings:
                    self._log(warning)
                self.tick(self._clock())  # the first pass, before READY: scrapes have figures
                self._notify("READY=1")
                while not self._stopping:
                    self._step()
            finally:
                self._notify("STOPPING=1")
                if self._server is not None:
                    self._server.stop()
        finally:
            self._table.close()
            self._recommender.stop()
            self._close_cgroups(self._jobs.values())
        self._log("stopped")
        return 0

    def _step(self) -> None:
        """Wait for a signal or the next due entry (or watchdog ping), then act on it."""
        now = self._clock()
        deadline = min((s.next_s for s in self._schedules), default=now + 60.0)
        if self._watchdog_s is not None:
            deadline = min(deadline, self._next_watchdog)
        try:
            signum = self._signals.get(timeout=max(0.0, deadline - now))
        except queue.Empty:
            pass
        else:
            self.dispatch(signum)
            return
        now = self._clock()
        if self._watchdog_s is not None and now >= self._next_watchdog:
            # Pinged from the loop that samples: a hung pass stops the pings, and systemd
            # restarts a daemon that no longer samples.
            self._notify("WATCHDOG=1")
            self._next_watchdog = max(self._next_watchdog + self._watchdog_s, now)
        self.tick(now)

    def _notify(self, state: str) -> None:
        try:
            notify(state, self._env)
        except OSError as err:
            if str(err) != self._notify_error:
                self._log(f"cannot notify systemd ({state.split('=')[0]}): {err}")
                self._notify_error = str(err)

    # -- reloading ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the config file again; a bad one is reported and the running one stays."""
        self._notify(reloading_state())
        try:
            return self._reload()
        finally:
            self._notify("READY=1")

    def _reload(self) -> bool:
        path = self.config.path
        try:
            new = self._configure(self._load(path))
        except ConfigError as err:
            for problem in err.problems:
                self._log(f"reload failed, the running configuration stays: {problem}")
            return False
        except Exception as err:  # noqa: BLE001 - a reload must never end the daemon
            self._log(f"reload failed, the running configuration stays: {type(err).__name__}")
            return False
        old = self.config
        try:
            if (new.listen_address, new.port) != (old.listen_address, old.port):
                self._move_server(new)
            elif self._server is not None and (new.web != old.web or new.web.tls):
                # Certificates are read again at every reload (the usual certbot deploy
                # hook is `systemctl reload`), into the server that keeps its socket:
                # rebinding the port refused scrapes meanwhile.
                self._server.update_web(new.web)
        except (MemwatchError, OSError, ValueError) as err:
            self._log(f"reload failed, the running configuration stays: {err}")
            return False
        self.config = new
        names = {e.name for e in new.watch}
        # A job gone, or one selecting something else now: its cgroup is looked for afresh.
        kept = {e.name: e.selector for e in old.watch} | {e.name: e.selector for e in new.watch}
        changed = {e.name for e in old.watch if kept[e.name] != e.selector}
        self._close_cgroups(
            st for name, st in self._jobs.items() if name not in names or name in changed
        )
        self._jobs = {name: state for name, state in self._jobs.items() if name in names}
        if self._history_path(new) != self._recommender.path:
            running = self._recommender.running
            self._recommender.stop()
            self._recommender = self._make_recommender(new)
            if running:
                self._recommender.start()
        self._reset_schedules()  # every entry is sampled at once under the new config
        self._table.close()  # status files of processes no entry may watch any more
        self._log(f"reloaded: {self._describe(new)}")
        for warning in new.warnings:
            self._log(warning)
        return True

    def _move_server(self, new: Config) -> None:
        """Serve at the new address; on failure the old server keeps serving."""
        started = self._start_server(new)  # the new address first: no gap if it fails
        if self._server is not None:
            self._server.stop()
        self._server = started

    # -- helpers --------------------------------------------------------------------------

    @property
    def recommender(self) -> Recommender:
        return self._recommender

    @staticmethod
    def _close_cgroups(states: Iterable[_JobState]) -> None:
        """Close their cgroup files and forget their cgroups (found again if still watched)."""
        for state in states:
            if state.cgroup is not None and state.cgroup.counters is not None:
                state.cgroup.counters.close()
            state.cgroup = None

    def _configure(self, config: Config) -> Config:
        return config if self._port is None else dataclasses.replace(config, port=self._port)

    def _make_recommender(self, config: Config) -> Recommender:
        return Recommender(self._history_path(config), self._log, fit_job=self._fit_job)

    @staticmethod
    def _history_path(config: Config) -> str:
        return config.history_path or default_path()

    def _start_server(self, config: Config) -> Server:
        server = self._server_factory(config.listen_address, config.port, config.web)
        server.start()
        return server

    def _metrics_server(self, address: str, port: int, web: WebConfig) -> Server:
        from .exporter import make_registry
        from .metrics_server import MetricsServer

        if self._registry is None:
            self._registry = make_registry(self.snapshot)
        return MetricsServer(self._registry, address, port, web)

    def _describe(self, config: Config) -> str:
        """Where it listens and what it watches; never a credential."""
        host = config.listen_address
        if ":" in host:
            host = f"[{host}]"  # IPv6
        port = self._server.port if self._server is not None else config.port
        scheme = "https" if config.web.tls else "http"
        auth = ", basic auth" if config.web.basic_auth_users else ""
        names = ", ".join(e.name for e in config.watch) or "nothing"
        return (
            f"serving {scheme}://{host}:{port}/metrics{auth}; "
            f"watching {len(config.watch)} job(s): {names}"
        )


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


def run_daemon(config_path: str, *, port: int | None = None) -> int:
    """``memwatch daemon``: load the config (every problem printed, exit 1) and run."""
    try:
        config = load_config(config_path)
    except ConfigError as err:
        for problem in err.problems:
            say(problem)
        log(f"error: {len(err.problems)} problem(s) in {config_path}; nothing started")
        return 1
    raise_fd_limit()
    # A scrape thread waits for the GIL while a pass runs in Python; at the default 5 ms
    # switch interval that wait set the scrape p99 (8 ms at 1000 processes in
    # benchmarks/daemon_scale.py). 1 ms keeps scrapes short for a little more switching.
    sys.setswitchinterval(0.001)
    return Daemon(config, port=port).run()


def raise_fd_limit(want: int = 1 << 16) -> None:
    """Raise the soft limit on open files towards the hard one (systemd's soft default is
    1024, its hard 524288: services are meant to raise it when they need to). The daemon
    keeps each watched process's status file open (procfs.StatusFiles)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # not allowed here: fewer files stay open, each read opens its own
