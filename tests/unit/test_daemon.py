"""memwatch.daemon against a fake /proc, a fake metrics server and fake clocks; no sleeping.

Passes are driven by ``tick(now)`` with a hand-moved monotonic clock; signals are put in
the daemon's queue (or sent for real to this process once, to prove the handler wiring).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
from dataclasses import replace
from types import SimpleNamespace

import pytest

from memwatch import cli, model
from memwatch.config import Config, Selector, WatchEntry, WebConfig
from memwatch.daemon import Daemon
from memwatch.errors import ConfigError, MemwatchError
from memwatch.history import History
from memwatch.measures import Peak
from memwatch.procfs import StatusFiles
from memwatch.recommender import Recommender, predictions
from memwatch.sdnotify import notify, reloading_state, watchdog_period_s
from memwatch.tree import ProcessTable
from memwatch.watching import by_cgroup, observed_size

MIB = 1 << 20
T0 = 1_700_000_000.0  # the wall clock at the first pass


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeServer:
    """Records start/stop in ``events``; a port in ``busy`` fails to start."""

    def __init__(self, events, busy, address, port, web):
        self.events, self.busy = events, busy
        self.address, self._port, self.web = address, port, web

    @property
    def port(self):
        return self._port

    def start(self):
        if self._port in self.busy:
            raise MemwatchError(f"cannot listen on {self.address}:{self._port}: port in use")
        self.events.append(("start", self._port, self.web))

    def stop(self):
        self.events.append(("stop", self._port, self.web))

    def update_web(self, web):
        self.web = web
        self.events.append(("update", self._port, web))


def entry(job, **fields):
    selector = fields.pop("selector", None) or Selector(cmdline=re.compile(rf"--job {job}\b"))
    return WatchEntry(job, selector, **fields)


class Harness:
    """A Daemon over the fake /proc, with its clocks, server events, log and configs."""

    def __init__(self, proc, tmp_path, *entries, env=None, **config):
        self.proc = proc
        self.clock = Clock()
        self.wall = Clock(T0)
        self.events: list[tuple[str, int, WebConfig]] = []
        self.busy: set[int] = set()
        self.lines: list[str] = []
        self.next_config: Config | ConfigError | None = None
        config.setdefault("history_path", str(tmp_path / "history.sqlite"))
        self.config = Config(str(tmp_path / "memwatch.yaml"), port=9793, watch=entries, **config)
        self.daemon = Daemon(
            self.config,
            procfs=proc.path,
            server_factory=lambda a, p, w: FakeServer(self.events, self.busy, a, p, w),
            load=self.load,
            clock=self.clock,
            wall_clock=self.wall,
            env=env or {},
            log=self.lines.append,
            fit_job=predictions,  # in this process, where model.fit can be watched
        )

    def load(self, path):
        assert path == self.config.path
        if isinstance(self.next_config, ConfigError):
            raise self.next_config
        return self.next_config

    def job(self, name):
        snap = self.daemon.snapshot()
        assert snap is not None
        [found] = [j for j in snap.jobs if j.job == name]
        return found

    def advance(self, seconds):
        """Move both clocks and run the passes due then."""
        self.clock.now += seconds
        self.wall.now += seconds
        self.daemon.tick(self.clock.now)


def worker(proc, pid, job, *, ppid=1, start=None, rss_mib=10.0, swap_mib=0.0, **kw):
    proc.add(
        pid,
        ppid=ppid,
        start=start if start is not None else 1000 + pid,
        comm="python3",
        cmdline=["python3", "work.py", "--job", job, *kw.pop("args", [])],
        rss_kb=int(rss_mib * 1024),
        swap_kb=int(swap_mib * 1024),
        **kw,
    )


# --- what a pass publishes --------------------------------------------------------------------


def test_a_pass_sums_each_jobs_tree_into_an_immutable_snapshot(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=100, swap_mib=20)
    worker(fake_proc, 11, "other", ppid=10, rss_mib=50, swap_mib=5)  # a child: etl's too
    worker(fake_proc, 20, "web", rss_mib=30)
    h = Harness(fake_proc, tmp_path, entry("etl"), entry("web"))
    snap = h.daemon.sample()
    assert h.daemon.snapshot() is snap
    etl, web = snap.jobs
    assert (etl.processes, etl.rss_bytes, etl.swap_bytes) == (2, 150 * MIB, 25 * MIB)
    assert etl.pss_bytes is None
    assert (etl.peak_total_bytes, etl.peak_at_unix_s) == (175 * MIB, T0)
    assert (web.processes, web.rss_bytes) == (1, 30 * MIB)
    assert (snap.taken_at_unix_s, snap.passes_total, snap.read_errors_total) == (T0, 1, 0)
    assert snap.pass_duration_s == 0  # the fake monotonic clock did not move


def test_a_job_with_no_processes_is_exported_with_zero_processes(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("idle"))
    h.daemon.sample()
    idle = h.job("idle")
    assert (idle.processes, idle.rss_bytes, idle.peak_total_bytes, idle.peak_at_unix_s) == (
        0,
        0,
        0,
        None,
    )


def test_pss_entries_export_pss_and_peak_on_pss_plus_swap_pss(fake_proc, tmp_path):
    worker(fake_proc, 10, "cow", rss_mib=100, pss_kb=40 * 1024, swap_mib=8, swap_pss_kb=4 * 1024)
    worker(fake_proc, 11, "cow", rss_mib=100, pss_kb=40 * 1024, swap_mib=8, swap_pss_kb=4 * 1024)
    h = Harness(fake_proc, tmp_path, entry("cow", pss=True))
    h.daemon.sample()
    cow = h.job("cow")
    assert (cow.rss_bytes, cow.pss_bytes, cow.swap_bytes) == (200 * MIB, 80 * MIB, 16 * MIB)
    assert cow.peak_total_bytes == 88 * MIB


def test_unreadable_processes_are_counted_per_job_and_logged_once(fake_proc, tmp_path, deny_open):
    worker(fake_proc, 10, "etl", rss_mib=100)
    worker(fake_proc, 11, "etl", rss_mib=50)
    deny_open(f"{fake_proc.path}/11/status")
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    h.daemon.sample()
    etl = h.job("etl")
    assert (etl.processes, etl.unreadable_processes, etl.rss_bytes) == (2, 1, 100 * MIB)
    assert h.daemon.snapshot().read_errors_total == 2  # cumulative, one per pass
    assert sum("unreadable" in line for line in h.lines) == 1


def test_a_process_vanishing_mid_pass_is_left_out_quietly(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=100)
    worker(fake_proc, 11, "etl", rss_mib=50)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    table = h.daemon.watcher.table
    listed = table.refresh

    def refresh_then_exit():
        listed()
        fake_proc.remove(11)  # gone between the listing and the read

    table.refresh = refresh_then_exit
    h.daemon.sample()
    assert (h.job("etl").processes, h.job("etl").unreadable_processes) == (1, 0)
    assert h.lines == ["job etl: 1 process(es) appeared"]


def test_a_process_vanishing_mid_pass_gives_no_size(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", start=100, args=["--rows", "10"])
    worker(fake_proc, 11, "etl", start=200, args=["--rows", "20"])
    e = entry("etl", size_from_cmdline=re.compile(r"--rows (\d+)"))
    h = Harness(fake_proc, tmp_path, e)
    # A fake /proc file stays readable once open, where the kernel answers ESRCH: open
    # each file per read here.
    no_kept_files = StatusFiles(fake_proc.path, max_open=0)
    h.daemon.watcher.table = ProcessTable(fake_proc.path, status_files=no_kept_files)
    h.daemon.sample()
    assert h.job("etl").observed_size == 10.0
    table = h.daemon.watcher.table
    listed = table.refresh

    def refresh_then_exit():
        listed()
        fake_proc.remove(10)

    table.refresh = refresh_then_exit
    h.advance(1)
    assert (h.job("etl").processes, h.job("etl").observed_size) == (1, 20.0)


def test_a_pid_reused_by_another_program_leaves_the_job_at_the_next_pass(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=100, start=5000)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    fake_proc.add(10, ppid=1, start=6000, comm="nginx", cmdline=["nginx"], rss_kb=900 * 1024)
    h.advance(1)  # its status shows another name: its stat is read again at the next pass
    h.advance(1)
    assert (h.job("etl").processes, h.job("etl").rss_bytes) == (0, 0)


# --- the peak ---------------------------------------------------------------------------------


def test_the_peak_holds_its_largest_total_and_when_it_was_seen(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=100)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    worker(fake_proc, 10, "etl", rss_mib=300, swap_mib=10)
    h.advance(1)
    worker(fake_proc, 10, "etl", rss_mib=120)
    h.advance(1)
    etl = h.job("etl")
    assert (etl.rss_bytes, etl.peak_total_bytes, etl.peak_at_unix_s) == (
        120 * MIB,
        310 * MIB,
        T0 + 1,
    )


def test_a_spike_between_two_passes_counts_through_the_high_water_mark(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=100)
    worker(fake_proc, 11, "etl", rss_mib=50)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    worker(fake_proc, 10, "etl", rss_mib=100, hwm_kb=400 * 1024)  # rose to 400 MiB and fell
    h.advance(1)
    etl = h.job("etl")
    # The kernel proves 400 MiB held at one moment; what 11 held then is not known.
    assert (etl.rss_bytes, etl.peak_total_bytes, etl.peak_at_unix_s) == (
        150 * MIB,
        400 * MIB,
        T0 + 1,
    )


def test_marks_reached_before_the_first_look_are_exported_apart_not_as_the_peak(
    fake_proc, tmp_path
):
    # Two processes that each peaked at 2 GiB, at different moments, before memwatch
    # started: the job never held their sum, and maybe not either mark, while watched.
    worker(fake_proc, 10, "etl", rss_mib=100, hwm_kb=2048 * 1024)
    worker(fake_proc, 11, "etl", rss_mib=110, hwm_kb=2048 * 1024)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    h.advance(1)
    etl = h.job("etl")
    assert etl.peak_total_bytes == 210 * MIB
    assert etl.process_hwm_bytes == 2048 * MIB


def test_the_peak_stays_while_the_job_is_gone_and_resets_when_it_comes_back(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=300)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    fake_proc.remove(10)
    h.advance(1)
    gone = h.job("etl")
    assert (gone.processes, gone.peak_total_bytes, gone.peak_at_unix_s) == (0, 300 * MIB, T0)
    worker(fake_proc, 12, "etl", rss_mib=40)
    h.advance(1)
    back = h.job("etl")
    assert (back.processes, back.peak_total_bytes, back.peak_at_unix_s) == (1, 40 * MIB, T0 + 2)
    assert [line for line in h.lines if line.startswith("job etl")] == [
        "job etl: 1 process(es) appeared",
        "job etl: no processes left; peak 300.0 MiB stays exported until they return",
        "job etl: 1 process(es) appeared",
    ]


# --- swap suspicion ---------------------------------------------------------------------------


def test_flat_rss_with_growing_swap_is_suspected_while_it_lasts(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    seen = []
    for i, (rss, swap) in enumerate([(100, 0), (200, 0), (200, 10), (200, 20), (200, 40)]):
        worker(fake_proc, 10, "etl", rss_mib=rss, swap_mib=swap)
        if i:
            h.advance(1)
        else:
            h.daemon.sample()
        seen.append(h.job("etl").swap_suspected)
    worker(fake_proc, 10, "etl", rss_mib=400, swap_mib=40)  # room again: RSS grows
    h.advance(1)
    seen.append(h.job("etl").swap_suspected)
    assert seen == [False, False, False, False, True, False]


# --- sizes and recommendations ----------------------------------------------------------------


def record(path, job, size, peak_mib, run_summary, exit_code=0):
    peak = Peak(int(peak_mib * MIB), int(peak_mib * MIB), 0, None, 1.0, "cgroup")
    History(str(path)).record(run_summary(size=size, peak=peak, exit_code=exit_code), job)


def table_of(proc):
    table = ProcessTable(proc.path)
    table.refresh()
    return table


def test_observed_size_comes_from_the_oldest_process_whose_command_line_has_one(fake_proc):
    fake_proc.add(10, start=300, cmdline=["run.sh"])
    fake_proc.add(11, start=200, cmdline=["etl", "--rows", "5e3"])
    fake_proc.add(12, start=100, cmdline=["etl", "--rows", "many"])  # not a number
    fake_proc.add(13, start=400, cmdline=["etl", "--rows", "9000"])
    e = entry("etl", size_from_cmdline=re.compile(r"--rows (\S+)"))
    assert observed_size(e, [10, 11, 12, 13], table_of(fake_proc)) == 5000.0
    assert observed_size(entry("etl"), [11], table_of(fake_proc)) is None


def test_recommendations_for_configured_and_observed_sizes_from_the_history(
    fake_proc, tmp_path, run_summary
):
    history = tmp_path / "history.sqlite"
    for size, peak in [(1000, 110), (2000, 210), (3000, 310), (4000, 410), (5000, 510)]:
        record(history, "etl", size, peak, run_summary)
    record(history, "etl", 6000, 999, run_summary, exit_code=1)  # failed: not fitted
    worker(fake_proc, 10, "etl", args=["--rows", "3500"])
    h = Harness(
        fake_proc,
        tmp_path,
        entry("etl", sizes=(8000.0,), size_from_cmdline=re.compile(r"--rows (\d+)")),
    )
    h.daemon.sample()
    assert h.job("etl").recommended_bytes == ()  # asked: a pass never waits for a fit
    h.daemon.recommender.update()  # the worker's step
    h.daemon.sample()
    etl = h.job("etl")
    assert etl.observed_size == 3500.0
    labels = [label for label, _ in etl.recommended_bytes]
    assert labels == ["8000", "3500"]
    rec = dict(etl.recommended_bytes)
    assert rec["8000"] >= 810 * MIB  # never below the trend, plus a margin
    assert 360 * MIB <= rec["3500"] < rec["8000"]


def test_a_job_with_too_few_sized_runs_gets_no_recommendation_and_no_error(
    fake_proc, tmp_path, run_summary
):
    record(tmp_path / "history.sqlite", "etl", 1000, 110, run_summary)
    worker(fake_proc, 10, "etl")
    h = Harness(fake_proc, tmp_path, entry("etl", sizes=(2000.0,)))
    h.daemon.sample()
    h.daemon.recommender.update()
    h.daemon.sample()
    assert h.job("etl").recommended_bytes == ()
    assert h.lines == ["job etl: 1 process(es) appeared"]


def test_the_model_is_fitted_once_per_history_change(tmp_path, run_summary, monkeypatch):
    history = tmp_path / "history.sqlite"
    for size, peak in [(1, 110), (2, 210), (3, 310)]:
        record(history, "etl", size, peak, run_summary)
    fits = []
    real_fit = model.fit
    monkeypatch.setattr(model, "fit", lambda m, **kw: fits.append(len(m)) or real_fit(m, **kw))
    rec = Recommender(str(history), print, fit_job=predictions)
    assert rec.recommend("etl", [4.0, 5.0]) == ()  # not fitted yet: asked of the worker
    for _ in range(3):
        rec.update()
        first = rec.recommend("etl", [4.0, 5.0])
    assert len(first) == 2
    assert fits == [3]
    record(history, "other", 1, 10, run_summary)  # another job's run: etl's stay fitted
    rec.update()
    assert fits == [3]
    record(history, "etl", 4, 900, run_summary)
    rec.update()
    assert rec.recommend("etl", [4.0, 5.0]) != first
    assert fits == [3, 4]


def test_fits_run_in_the_workers_thread_and_a_pass_never_waits_for_one(
    fake_proc, tmp_path, run_summary, monkeypatch
):
    import threading

    history = tmp_path / "history.sqlite"
    for size, peak in [(1, 110), (2, 210), (3, 310)]:
        record(history, "etl", size, peak, run_summary)
    release, fitting = threading.Event(), threading.Event()
    real_fit = model.fit

    def slow_fit(m, **kw):
        fitting.set()
        release.wait()
        return real_fit(m, **kw)

    monkeypatch.setattr(model, "fit", slow_fit)
    worker(fake_proc, 10, "etl")
    h = Harness(fake_proc, tmp_path, entry("etl", sizes=(4.0,)))
    h.daemon.recommender.start()
    try:
        h.daemon.sample()
        assert fitting.wait(10)
        h.advance(1)  # the fit is blocked: the pass goes on without it
        assert h.job("etl").recommended_bytes == ()
        release.set()
        for _ in range(1000):  # the worker publishes its answer; no duration is asserted
            h.advance(1)
            if h.job("etl").recommended_bytes:
                break
        assert [label for label, _ in h.job("etl").recommended_bytes] == ["4"]
    finally:
        release.set()
        h.daemon.recommender.stop()


def test_an_unusable_history_is_reported_once_and_recommends_nothing(tmp_path):
    bad = tmp_path / "history.sqlite"
    bad.write_text("not a database, just text that is long enough to have a header " * 20)
    lines: list[str] = []
    rec = Recommender(str(bad), lines.append, fit_job=predictions)
    for _ in range(3):
        assert rec.recommend("etl", [1.0]) == ()
        assert rec.recommend("web", [1.0]) == ()
        rec.update()
    assert len(lines) == 1 and "no recommendations" in lines[0]


# --- schedules --------------------------------------------------------------------------------


def test_each_entry_runs_on_its_own_fixed_schedule(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("fast", interval_s=1.0), entry("slow", interval_s=2.5))
    sampled: list[str] = []
    real = h.daemon.watcher._sample_job
    h.daemon.watcher._sample_job = lambda e, *args: sampled.append(e.name) or real(e, *args)
    seen = {}
    for at in [0.0, 0.5, 1.0, 2.0, 2.6, 3.05, 5.0, 7.4, 7.5]:
        h.clock.now = 100.0 + at
        h.daemon.tick(h.clock.now)
        seen[at], sampled[:] = tuple(sampled), []
    assert seen == {
        0.0: ("fast", "slow"),
        0.5: (),
        1.0: ("fast",),
        2.0: ("fast",),
        2.6: ("slow",),  # slot 2.5, on its own schedule
        3.05: ("fast",),
        5.0: ("fast", "slow"),  # fast was late (slot 4): its next slot is 6, not 5
        7.4: ("fast",),
        7.5: ("slow",),
    }


def test_a_pass_samples_only_the_due_entries_and_keeps_the_others_figures(fake_proc, tmp_path):
    worker(fake_proc, 10, "fast", rss_mib=10)
    worker(fake_proc, 20, "slow", rss_mib=20)
    h = Harness(fake_proc, tmp_path, entry("fast", interval_s=1.0), entry("slow", interval_s=3.0))
    h.daemon.tick(h.clock.now)
    worker(fake_proc, 10, "fast", rss_mib=11)
    worker(fake_proc, 20, "slow", rss_mib=21)
    h.advance(1)
    assert (h.job("fast").rss_bytes, h.job("slow").rss_bytes) == (11 * MIB, 20 * MIB)
    h.advance(2)
    assert (h.job("fast").rss_bytes, h.job("slow").rss_bytes) == (11 * MIB, 21 * MIB)


def test_an_overrun_skips_the_missed_slots_instead_of_bursting(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl", interval_s=1.0))
    h.daemon.tick(h.clock.now)  # slot 0
    h.clock.now += 3.5  # the loop was late by three slots
    h.daemon.tick(h.clock.now)
    passes = h.daemon.snapshot().passes_total
    h.clock.now += 0.4  # 3.9: slot 4 is not due yet
    h.daemon.tick(h.clock.now)
    assert h.daemon.snapshot().passes_total == passes == 2
    h.clock.now += 0.1  # 4.0
    h.daemon.tick(h.clock.now)
    assert h.daemon.snapshot().passes_total == 3


def test_a_failed_pass_is_logged_once_and_the_last_snapshot_stays(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.tick(h.clock.now)
    kept = h.daemon.snapshot()

    def fail():
        raise OSError(24, "Too many open files")

    h.daemon.watcher.table.refresh = fail
    h.advance(1)
    h.advance(1)
    assert h.daemon.snapshot() is kept
    assert [line for line in h.lines if "failed" in line] == [
        "sampling pass failed: [Errno 24] Too many open files"
    ]


# --- signals and the main loop ----------------------------------------------------------------


def test_the_signal_handler_only_enqueues(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.next_config = replace(h.config, watch=())
    for signum in (signal.SIGHUP, signal.SIGTERM):
        h.daemon.handle_signal(signum, None)
    assert h.daemon.config.watch == h.config.watch  # nothing reloaded yet
    assert h.daemon._stopping is False
    assert [h.daemon._signals.get_nowait() for _ in range(2)] == [signal.SIGHUP, signal.SIGTERM]


def test_run_serves_reloads_and_stops_on_queued_signals(fake_proc, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    h = Harness(fake_proc, tmp_path, entry("etl"), env={"NOTIFY_SOCKET": sock_path})
    h.next_config = replace(h.config, watch=(entry("etl"), entry("web")))
    h.daemon.handle_signal(signal.SIGHUP)
    h.daemon.handle_signal(signal.SIGTERM)
    assert h.daemon.run() == 0
    listener.setblocking(False)
    states = []
    while True:
        try:
            states.append(listener.recv(4096).decode().split("\n")[0])
        except BlockingIOError:
            break
    listener.close()
    assert states == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    assert [name for name, _, _ in h.events] == ["start", "stop"]
    assert [e.name for e in h.daemon.config.watch] == ["etl", "web"]
    assert h.lines[-2:] == ["SIGTERM received: stopping", "stopped"]


def test_a_port_that_cannot_be_bound_fails_before_any_job_event_is_logged(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl")
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.busy.add(9793)
    assert h.daemon.run() == 1
    assert h.lines == ["error: cannot listen on 127.0.0.1:9793: port in use"]


def test_a_real_signal_reaches_the_loop_through_the_queue(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    before = signal.getsignal(signal.SIGTERM)

    class SelfSignalling(FakeServer):
        def start(self):
            super().start()
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the daemon runs

    h.daemon._server_factory = lambda a, p, w: SelfSignalling(h.events, h.busy, a, p, w)
    assert h.daemon.run() == 0
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_a_port_that_cannot_be_served_at_start_exits_1(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.busy.add(9793)
    assert h.daemon.run() == 1
    assert h.lines[-1] == "error: cannot listen on 127.0.0.1:9793: port in use"


class Waiting:
    """Stands in for the signal queue: waiting moves the fake clock, and no signal comes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def get(self, timeout: float) -> int:
        self.clock.now += timeout
        raise queue.Empty


def test_watchdog_pings_at_half_the_interval_from_the_sampling_loop(fake_proc, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.setblocking(False)
    env = {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "4000000"}
    h = Harness(fake_proc, tmp_path, entry("etl", interval_s=5.0), env=env)
    h.daemon._signals = Waiting(h.clock)
    events = []
    for _ in range(6):
        h.daemon._step()
        while True:
            try:
                events.append((h.clock.now - 100, listener.recv(4096).decode()))
            except BlockingIOError:
                break
        passes = h.daemon.snapshot().passes_total
        events.append((h.clock.now - 100, f"passes={passes}"))
    listener.close()
    assert [e for e in events if e[1] == "WATCHDOG=1"] == [
        (t, "WATCHDOG=1") for t in (0.0, 2.0, 4.0, 6.0, 8.0)
    ]
    assert h.daemon.snapshot().passes_total == 2  # at 0 and 5 s: pings do not sample


# --- reloading --------------------------------------------------------------------------------


def test_a_bad_config_on_reload_is_reported_line_by_line_and_the_old_one_keeps_running(
    fake_proc, tmp_path
):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon._server = h.daemon._start_server(h.daemon.config)
    problems = [
        "memwatch.yaml:3: watch[0].interval: must be > 0 (got -1)",
        "memwatch.yaml:7: watch[1].cmdline: not a valid regular expression (got '(')",
    ]
    h.next_config = ConfigError(problems)
    assert h.daemon.reload() is False
    assert h.daemon.config is h.config
    assert h.lines == [f"reload failed, the running configuration stays: {p}" for p in problems]
    assert [name for name, _, _ in h.events] == ["start"]  # the server was left alone


def test_a_reload_adds_and_removes_jobs(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl")
    worker(fake_proc, 20, "web")
    h = Harness(fake_proc, tmp_path, entry("etl"), entry("old"))
    h.daemon.sample()
    h.next_config = replace(h.config, watch=(entry("etl"), entry("web")))
    assert h.daemon.reload()
    h.daemon.tick(h.clock.now)  # every entry is due right after a reload
    assert [j.job for j in h.daemon.snapshot().jobs] == ["etl", "web"]
    assert h.job("web").processes == 1
    assert set(h.daemon.watcher.jobs) == {"etl", "web"}
    assert h.lines[-2].startswith("reloaded: serving http://127.0.0.1:9793/metrics; watching 2")


def test_a_reload_keeps_a_jobs_peak(fake_proc, tmp_path):
    worker(fake_proc, 10, "etl", rss_mib=300)
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.sample()
    worker(fake_proc, 10, "etl", rss_mib=100)
    h.next_config = replace(h.config, interval_s=5.0)
    h.daemon.reload()
    h.advance(0)
    assert h.job("etl").peak_total_bytes == 300 * MIB


def test_a_new_port_is_bound_before_the_old_server_stops(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon._server = h.daemon._start_server(h.daemon.config)
    h.next_config = replace(h.config, port=9800)
    assert h.daemon.reload()
    assert [(name, port) for name, port, _ in h.events] == [
        ("start", 9793),
        ("start", 9800),
        ("stop", 9793),
    ]
    assert h.daemon.server.port == 9800


def test_a_new_port_that_cannot_be_bound_keeps_the_old_config_and_server(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon._server = old = h.daemon._start_server(h.daemon.config)
    h.busy.add(9800)
    h.next_config = replace(h.config, port=9800, watch=())
    assert h.daemon.reload() is False
    assert h.daemon.config is h.config and h.daemon.server is old
    assert h.lines == [
        "reload failed, the running configuration stays: cannot listen on 127.0.0.1:9800: "
        "port in use"
    ]


def test_changed_web_settings_go_into_the_running_server_on_its_socket(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon._server = running = h.daemon._start_server(h.daemon.config)
    secret = "$2b$10$" + "a" * 53
    web = WebConfig(basic_auth_users=(("prometheus", secret),))
    h.next_config = replace(h.config, web=web)
    assert h.daemon.reload()
    # No stop and start on the same port: scrapes in between were refused (issue 11).
    assert [(name, w) for name, _, w in h.events] == [("start", WebConfig()), ("update", web)]
    assert h.daemon.server is running
    assert "basic auth" in h.lines[-1]
    assert all(secret not in line for line in h.lines)  # never a credential in the log


def test_tls_files_are_read_again_at_every_reload(fake_proc, tmp_path):
    tls = WebConfig(cert_file="c.pem", key_file="k.pem")
    h = Harness(fake_proc, tmp_path, entry("etl"), web=tls)
    h.daemon._server = h.daemon._start_server(h.daemon.config)
    h.next_config = h.config  # the same paths, maybe renewed files
    assert h.daemon.reload()
    assert [name for name, _, _ in h.events] == ["start", "update"]


def test_new_web_settings_that_cannot_be_served_keep_the_old_ones(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon._server = h.daemon._start_server(h.daemon.config)
    web = WebConfig(cert_file="c.pem", key_file="k.pem")
    h.next_config = replace(h.config, web=web, watch=())

    class Refusing(FakeServer):
        def update_web(self, web):
            raise MemwatchError("cannot load TLS cert_file c.pem / key_file k.pem: no such file")

    h.daemon._server = Refusing(h.events, h.busy, "127.0.0.1", 9793, WebConfig())
    assert h.daemon.reload() is False
    assert h.daemon.config is h.config
    assert h.lines == [
        "reload failed, the running configuration stays: cannot load TLS cert_file c.pem / "
        "key_file k.pem: no such file"
    ]
    assert not h.daemon._stopping


def test_the_port_override_survives_a_reload(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon._port = 12345
    h.next_config = replace(h.config, port=9793)
    h.daemon._server = h.daemon._start_server(replace(h.config, port=12345))
    h.daemon.config = replace(h.config, port=12345)
    assert h.daemon.reload()
    assert h.daemon.config.port == 12345
    assert [name for name, _, _ in h.events] == ["start"]  # nothing about serving changed


# --- sd_notify --------------------------------------------------------------------------------


def test_notify_sends_one_datagram_to_a_socket_path(tmp_path):
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        assert notify("READY=1", {"NOTIFY_SOCKET": path})
        assert listener.recv(100) == b"READY=1"


def test_notify_reaches_an_abstract_socket_named_with_an_at_sign():
    name = f"memwatch-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert listener.recv(100) == b"STOPPING=1"


def test_notify_is_a_no_op_outside_systemd():
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_reloading_carries_the_monotonic_time_in_microseconds():
    assert reloading_state(5_000_000_123) == "RELOADING=1\nMONOTONIC_USEC=5000000"


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_period_is_half_the_usec_for_this_process(env, period):
    assert watchdog_period_s(env, pid=4242) == period


# --- the command line -------------------------------------------------------------------------


def test_daemon_with_a_bad_config_prints_every_problem_and_exits_1(tmp_path, capsys):
    path = tmp_path / "memwatch.yaml"
    path.write_text("port: 0\nwatch:\n  - name: etl\n    pid: -1\n")
    assert cli.main(["daemon", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:1: port: ")
    assert lines[1].startswith(f"{path}:4: watch[0].pid: ")
    assert lines[-1] == f"memwatch: error: 2 problem(s) in {path}; nothing started"


def test_daemon_passes_the_config_and_port_on(tmp_path, monkeypatch):
    from memwatch import daemon

    seen = []

    def run_daemon(path, port=None):
        seen.append((path, port))
        return 0

    monkeypatch.setattr(daemon, "run_daemon", run_daemon)
    assert cli.main(["daemon", "--config", "x.yaml", "--port", "9999"]) == 0
    assert cli.main(["daemon"]) == 0
    assert seen == [("x.yaml", 9999), ("/etc/memwatch/memwatch.yaml", None)]


def test_daemon_port_must_be_a_port_number(capsys):
    assert cli.main(["daemon", "--port", "0"]) == 2
    assert "--port: must be a port number from 1 to 65535 (got 0)" in capsys.readouterr().err


def test_an_optional_size_group_that_did_not_match_is_no_size(fake_proc):
    fake_proc.add(11, start=200, cmdline=["etl", "marker"])
    e = entry("etl", size_from_cmdline=re.compile(r"marker(?:-x(\d+))?"))
    assert observed_size(e, [11], table_of(fake_proc)) is None


def test_any_surprise_in_a_pass_is_logged_and_the_daemon_goes_on(fake_proc, tmp_path):
    h = Harness(fake_proc, tmp_path, entry("etl"))
    h.daemon.tick(h.clock.now)

    def fail():
        raise TypeError("float() argument must be a string or a real number, not 'NoneType'")

    h.daemon.watcher.table.refresh = fail
    h.advance(1)
    assert [line for line in h.lines if "failed" in line] == [
        "sampling pass failed: TypeError: float() argument must be a string or a real number, "
        "not 'NoneType'"
    ]


def test_a_locked_history_is_given_up_quickly_and_asked_again(tmp_path, run_summary):
    import sqlite3

    path = tmp_path / "history.sqlite"
    History(str(path)).record(run_summary(size=1.0), "etl")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        lines: list[str] = []
        recommender = Recommender(str(path), lines.append, fit_job=predictions)
        assert recommender.recommend("etl", [5.0]) == ()
        recommender.update()
        assert any("locked by another process for 0.3 s" in line for line in lines)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    recommender.update()  # the failure was not cached: the history is read again
    assert recommender._stamp is not None
    assert recommender._markers == {"etl": (1, 1)}


# --- entries sampled from their cgroup (fake cgroup filesystems, v1 and v2) ----------------


def unit_cgroup(fs, unit="app.service", *, pids=(10, 11), ram_mib=100, swap_mib=20, peak_mib=0):
    """A unit's cgroup under system.slice, with its counters set (v1 or v2 files)."""
    slice_ = fs.mount / "system.slice"
    if not slice_.exists():
        os.mkdir(slice_)
        if fs.version == 2:
            fs.set_controllers(slice_, "cgroup.subtree_control", "memory")
    path = slice_ / unit
    if not path.exists():
        os.mkdir(path)
    fs.set_procs(path, list(pids))
    set_counters(fs, path, ram_mib=ram_mib, swap_mib=swap_mib, peak_mib=peak_mib)
    return path


def set_counters(fs, path, *, ram_mib, swap_mib, peak_mib):
    files = (
        {
            "memory.usage_in_bytes": ram_mib,
            "memory.memsw.usage_in_bytes": ram_mib + swap_mib,
            "memory.memsw.max_usage_in_bytes": peak_mib,
        }
        if fs.version == 1
        else {"memory.current": ram_mib, "memory.swap.current": swap_mib, "memory.peak": peak_mib}
    )
    for name, mib in files.items():
        (path / name).write_text(f"{int(mib * MIB)}\n")


def cgroup_harness(fs, tmp_path, *entries):
    h = Harness(SimpleNamespace(path=fs.procfs_path), tmp_path, *entries)

    def no_listing():
        raise AssertionError("/proc was listed for an entry sampled from its cgroup")

    h.daemon.watcher.table.refresh = no_listing
    return h


UNIT = entry("app", selector=Selector(systemd_unit="app.service"))


@pytest.mark.parametrize("version", [1, 2])
def test_a_units_figures_come_from_its_cgroup_without_listing_proc(version, tmp_path, request):
    fs = request.getfixturevalue(f"cgroupfs_v{version}")
    unit_cgroup(fs, ram_mib=100, swap_mib=20, peak_mib=900)  # 900: before memwatch looked
    h = cgroup_harness(fs, tmp_path, UNIT)
    h.daemon.sample()
    app = h.job("app")
    assert (app.processes, app.rss_bytes, app.swap_bytes) == (2, 100 * MIB, 20 * MIB)
    assert (app.peak_total_bytes, app.peak_at_unix_s, app.process_hwm_bytes) == (
        120 * MIB,
        T0,
        None,
    )


@pytest.mark.parametrize("version", [1, 2])
def test_a_units_peak_is_the_kernels_once_reached_while_watched(version, tmp_path, request):
    fs = request.getfixturevalue(f"cgroupfs_v{version}")
    path = unit_cgroup(fs, ram_mib=100, swap_mib=20, peak_mib=900)
    h = cgroup_harness(fs, tmp_path, UNIT)
    h.daemon.sample()
    set_counters(fs, path, ram_mib=100, swap_mib=20, peak_mib=950)  # a spike between passes
    h.advance(1)
    assert (h.job("app").peak_total_bytes, h.job("app").peak_at_unix_s) == (950 * MIB, T0 + 1)
    h.advance(1)
    assert h.job("app").peak_at_unix_s == T0 + 1  # when it was first seen


def test_a_restarted_units_new_cgroup_counts_its_whole_kernel_peak(cgroupfs_v1, tmp_path):
    fs = cgroupfs_v1
    path = unit_cgroup(fs, peak_mib=900)
    h = cgroup_harness(fs, tmp_path, UNIT)
    h.daemon.sample()
    fs.set_procs(path, [])
    os.rmdir(path)  # the unit stopped: systemd removed its cgroup
    h.advance(1)
    assert (h.job("app").processes, h.job("app").peak_total_bytes) == (0, 120 * MIB)
    h.clock.now += 60  # past the pause between searches for a unit's cgroup
    unit_cgroup(fs, pids=(12,), ram_mib=30, swap_mib=0, peak_mib=400)  # made while watched
    h.advance(1)
    app = h.job("app")
    assert (app.processes, app.rss_bytes, app.peak_total_bytes) == (1, 30 * MIB, 400 * MIB)


def test_a_cgroup_entry_by_path_and_a_process_entry_in_one_pass(cgroupfs_v1, tmp_path):
    fs = cgroupfs_v1
    unit_cgroup(fs, ram_mib=50, swap_mib=0)
    by_path = entry("app", selector=Selector(cgroup="/system.slice/app.service"))
    h = Harness(SimpleNamespace(path=fs.procfs_path), tmp_path, by_path, entry("etl"))
    listed = []
    real = h.daemon.watcher.table.refresh
    h.daemon.watcher.table.refresh = lambda: listed.append(1) or real()
    h.daemon.sample(due=[0])
    assert (h.job("app").processes, h.job("app").rss_bytes, listed) == (2, 50 * MIB, [])
    h.daemon.sample()
    assert listed == [1]  # the process entry needs the listing


def test_a_unit_not_running_has_no_processes_and_no_error(cgroupfs_v1, tmp_path):
    h = cgroup_harness(cgroupfs_v1, tmp_path, UNIT)
    h.daemon.sample()
    assert (h.job("app").processes, h.job("app").peak_total_bytes) == (0, 0)
    assert h.lines == []


def test_a_cgroup_without_the_memory_controller_falls_back_to_its_processes(cgroupfs_v2, tmp_path):
    fs = cgroupfs_v2
    os.mkdir(fs.mount / "system.slice")  # memory not enabled below it: no memory.* files
    os.mkdir(fs.mount / "system.slice" / "app.service")
    h = Harness(SimpleNamespace(path=fs.procfs_path), tmp_path, UNIT)
    h.daemon.sample()
    assert h.daemon.watcher.jobs["app"].cgroup is None
    assert "its processes are read one by one" in h.lines[0]


@pytest.mark.parametrize(
    "fields",
    [dict(pss=True), dict(size_from_cmdline=re.compile(r"--rows (\d+)"))],
    ids=["pss", "size_from_cmdline"],
)
def test_entries_that_ask_for_what_only_processes_tell_are_not_sampled_by_cgroup(fields):
    assert by_cgroup(UNIT)
    assert not by_cgroup(replace(UNIT, **fields))
    both = Selector(systemd_unit="app.service", cmdline=re.compile("x"))
    assert not by_cgroup(replace(UNIT, selector=both))


def test_a_cgroup_entry_that_also_selects_a_user_reads_its_processes():
    # The cgroup's totals would count every user's processes in it.
    mine = Selector(systemd_unit="app.service", uid=1000)
    assert not by_cgroup(replace(UNIT, selector=mine))


def test_a_reload_that_changes_a_cgroup_entry_follows_the_new_selection(cgroupfs_v1, tmp_path):
    fs = cgroupfs_v1
    unit_cgroup(fs, ram_mib=50, swap_mib=0)
    unit_cgroup(fs, "other.service", pids=(20,), ram_mib=70, swap_mib=0)
    h = Harness(SimpleNamespace(path=fs.procfs_path), tmp_path, UNIT)
    h.daemon.sample()
    assert h.job("app").rss_bytes == 50 * MIB
    other = entry("app", selector=Selector(systemd_unit="other.service"))
    h.next_config = replace(h.config, watch=(other,))
    assert h.daemon.reload()
    h.daemon.sample()
    assert h.job("app").rss_bytes == 70 * MIB
    # Asked for PSS now: only processes can tell it, so the cgroup is let go.
    h.next_config = replace(h.config, watch=(replace(other, pss=True),))
    assert h.daemon.reload()
    h.daemon.sample()
    assert h.daemon.watcher.jobs["app"].cgroup is None
    assert h.job("app").processes == 0  # the fake /proc lists none of the unit's processes
