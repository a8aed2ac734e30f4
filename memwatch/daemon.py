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
from typing import TYPE_CHECKING, Any, Protocol

from .config import Config, WatchEntry, WebConfig, load_config
from .console import say
from .errors import (
    ConfigError,
    FitError,
    HistoryError,
    MemwatchError,
    PermissionDenied,
    ProcessGone,
)
from .history import default_path, open_history
from .peak import TreeAccumulator
from .plateau import RECENT_SAMPLES, swapping_recently
from .procfs import PROC, is_running, read_vmstat
from .records import is_url
from .report import human_bytes, parse_size, size_text
from .sdnotify import notify, reloading_state, watchdog_period_s
from .tree import ProcessTable, ProcessView, assign
from .types import JobSnapshot, ProcMem, Sample, Snapshot

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .model import Model

HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Distinct (job, size) predictions remembered between history changes: a job whose
# observed size changes at every run must not grow the cache for months.
MAX_CACHED_PREDICTIONS = 1024
DAEMON_HISTORY_TIMEOUT_S = 0.3
# A PostgreSQL history is asked whether it changed at most this often: each question is a
# connection, and an unreachable server can hold a pass for libpq's shortest connect
# timeout (2 s).
URL_REFRESH_S = 60.0


def log(text: str) -> None:
    """One line on stderr (the journal under systemd); a closed stderr is not fatal."""
    say(f"memwatch: {text}")


class Server(Protocol):
    """What the daemon needs of the metrics server (exporter.MetricsServer)."""

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


class Recommender:
    """Recommended memory per (job, size) from the run history's model of the job.

    Each job's runs are fitted once per change of the history (a file's inode, size and
    mtime; a PostgreSQL history's run count and last id, asked every URL_REFRESH_S), not
    at every pass. A job with too few sized runs gets no recommendation, and no error:
    most watched jobs never were measured at several sizes.
    """

    def __init__(
        self,
        path: str,
        report: Callable[[str], None] = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._report = report
        self._clock = clock
        self._asked_at: float | None = None
        self._stamp: tuple[Any, ...] | None = None
        self._models: dict[str, Model | None] = {}
        self._predictions: dict[tuple[str, float], int | None] = {}
        self._last_error: str | None = None

    def refresh(self) -> None:
        """Forget every fit if the history changed since the last call."""
        stamp = self._read_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._models.clear()
            self._predictions.clear()

    def _read_stamp(self) -> tuple[Any, ...] | None:
        """What changes when a run is recorded; None when there is no history (yet)."""
        if not is_url(self.path):
            try:
                st = os.stat(self.path)
            except OSError:
                return None  # nothing to recommend; the store says why if asked
            return (st.st_ino, st.st_size, st.st_mtime_ns)
        now = self._clock()
        if self._asked_at is not None and now - self._asked_at < URL_REFRESH_S:
            return self._stamp
        self._asked_at = now
        try:
            store = open_history(self.path, timeout_s=DAEMON_HISTORY_TIMEOUT_S)
            return tuple(store.rows("SELECT count(*), max(id) FROM runs", ()) or ())
        except HistoryError:
            return None  # _fit says why, once

    def recommend(self, job: str, sizes: Iterable[float]) -> tuple[tuple[str, int], ...]:
        """(size label, recommended bytes) for each size the job's model can answer."""
        found = []
        for size in sizes:
            key = (job, size)
            if key not in self._predictions:
                if len(self._predictions) >= MAX_CACHED_PREDICTIONS:
                    self._predictions.clear()
                self._predictions[key] = self._predict(job, size)
            value = self._predictions[key]
            if value is not None:
                found.append((size_text(size), value))
        return tuple(found)

    def _predict(self, job: str, size: float) -> int | None:
        if job not in self._models:
            self._models[job] = self._fit(job)
        model = self._models[job]
        if model is None:
            return None
        from .model import predict

        try:
            return predict(model, size).recommended_bytes
        except FitError:
            return None  # far beyond the measured sizes: memwatch does not guess there

    def _fit(self, job: str) -> Model | None:
        from .fitreport import history_measurements  # numpy: loaded only when a job asks
        from .model import fit

        try:
            # A short busy timeout: a history locked by a writer must not stall the passes
            # (and the watchdog) for the minute a recording CLI may wait.
            store = open_history(self.path, timeout_s=DAEMON_HISTORY_TIMEOUT_S)
            # A failed run's peak is only a lower bound, as `memwatch predict` has it too.
            measurements = history_measurements(store, job)[0]
        except HistoryError as err:
            if str(err) != self._last_error:  # once per distinct problem, not every pass
                self._report(f"no recommendations: {err}")
                self._last_error = str(err)
            self._stamp = None  # not cached: a lock is released, a file fixed; ask again
            return None
        self._last_error = None
        try:
            return fit(measurements)
        except FitError:
            return None


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
    $WATCHDOG_USEC) and ``log``. ``port`` overrides the config's port, at reloads too.
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
        self._recommender = Recommender(self._history_path(self.config), self._log)
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
        """One pass: list /proc once, assign every process, read the due entries' members.

        ``due``: indexes into ``config.watch`` (default: all). The other jobs keep the
        figures of their own last pass in the new snapshot.
        """
        started = self._clock()
        entries = self.config.watch
        self._table.refresh()
        view = self._table
        members = assign(entries, view, exclude=(self._own_pid,))
        pswpout = read_vmstat(("pswpout",), self._procfs).get("pswpout")
        swapout = None if pswpout is None else pswpout * PAGE_SIZE
        now_unix = self._wall_clock()
        self._recommender.refresh()
        for i in range(len(entries)) if due is None else due:
            entry = entries[i]
            state = self._jobs.setdefault(entry.name, _JobState())
            state.snapshot = self._sample_job(entry, state, members[i], view, now_unix, swapout)
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
        if count and not state.present:
            # The job (re)appears: its peak and its swap history start afresh.
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
        sizes = list(entry.sizes)
        if size is not None and size not in sizes:
            sizes.append(size)
        return JobSnapshot(
            job=entry.name,
            processes=count,
            rss_bytes=rss,
            swap_bytes=swap,
            pss_bytes=pss,
            peak_total_bytes=state.peak_total_bytes,
            peak_at_unix_s=state.peak_at_unix_s,
            swap_suspected=state.present and swapping_recently(state.recent),
            unreadable_processes=unreadable,
            observed_size=size,
            recommended_bytes=self._recommender.recommend(entry.name, sizes) if sizes else (),
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
        self._jobs = {name: state for name, state in self._jobs.items() if name in names}
        if self._history_path(new) != self._recommender.path:
            self._recommender = Recommender(self._history_path(new), self._log)
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

    def _configure(self, config: Config) -> Config:
        return config if self._port is None else dataclasses.replace(config, port=self._port)

    @staticmethod
    def _history_path(config: Config) -> str:
        return config.history_path or default_path()

    def _start_server(self, config: Config) -> Server:
        server = self._server_factory(config.listen_address, config.port, config.web)
        server.start()
        return server

    def _metrics_server(self, address: str, port: int, web: WebConfig) -> Server:
        from .exporter import MetricsServer, make_registry

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

    The larger of the largest sampled total and what the processes' high-water marks
    (VmHWM) show between two passes, so a spike shorter than the interval still counts.
    A process's VmHWM may predate memwatch's first look at it: it is still a true peak of
    that process, seen (and time-stamped) at that first pass.
    """
    sampled = acc.max_sample
    best, at = (sampled.total_bytes, sampled.at_s) if sampled else (0, None)
    if acc.spike_estimate_bytes > best:
        best, at = acc.spike_estimate_bytes, acc.spike_estimate_at_s
    return best, at


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
