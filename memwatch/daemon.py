"""The watch daemon: samples the watch list's process trees and serves them as metrics.

One main thread does everything but the HTTP serving, in the style of gunicorn's arbiter:
signal handlers only enqueue the signal; the loop waits on that queue until the next
entry is due (or the watchdog needs a ping), then dispatches a signal (SIGHUP reloads the
config, SIGTERM/SIGINT stop) or runs a sampling pass over the entries due now. What a
pass reads and what each job keeps between passes is ``watching``; this module decides
when passes run, serves, reloads and talks to systemd.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Collection, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from .config import Config, WebConfig, load_config
from .console import say
from .errors import ConfigError, MemwatchError
from .history import default_path
from .measures import Snapshot
from .procfs import PROC
from .recommender import FitJob, Recommender
from .sdnotify import notify, reloading_state, watchdog_period_s
from .tree import ProcessTable
from .watching import Watcher

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


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
        self._server_factory = server_factory or self._metrics_server
        self._load = load
        self._clock = clock
        self._env = env
        self._log = log
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stopping = False
        self._registry: CollectorRegistry | None = None
        self._server: Server | None = None
        self._fit_job = fit_job
        self.watcher = Watcher(
            table if table is not None else ProcessTable(procfs, clock=clock),
            procfs,
            self._make_recommender(self.config),
            clock=clock,
            wall_clock=wall_clock,
            log=log,
        )
        self._schedules: list[_Schedule] = []
        self._reset_schedules()
        self._pass_error: str | None = None
        self._notify_error: str | None = None
        self._watchdog_s = watchdog_period_s(env)
        self._next_watchdog = self._clock()

    # -- what the exporter reads ---------------------------------------------------------

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first pass): what every scrape shows."""
        return self.watcher.snapshot()

    @property
    def server(self) -> Server | None:
        return self._server

    # -- sampling ------------------------------------------------------------------------

    def sample(self, due: Collection[int] | None = None) -> Snapshot:
        """One pass over ``due`` (indexes into ``config.watch``; default: all)."""
        return self.watcher.sample(self.config.watch, due)

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
        self.recommender.start()  # fits from now on in their own thread, never in a pass
        try:
            # Bound first: a daemon that cannot serve logs no job events before failing.
            try:
                self._server = self._start_server(self.config)
            except MemwatchError as err:
                self._log(f"error: {err}")
                return 1
            try:
                self._log(f"{self._describe(self.config)}; pid {os.getpid()}")
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
            self.watcher.close()
            self.recommender.stop()
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
        self.watcher.reconfigure(old.watch, new.watch)
        old_recommender = self.recommender
        if self._history_path(new) != old_recommender.path:
            running = old_recommender.running
            old_recommender.stop()
            self.watcher.recommender = self._make_recommender(new)
            if running:
                self.recommender.start()
        self._reset_schedules()  # every entry is sampled at once under the new config
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
        return self.watcher.recommender

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
