"""Recommended memory per (job, size) for the daemon, fitted in a worker thread.

The daemon's loop samples and pings the watchdog; a fit of a long history takes seconds.
So the loop only asks and reads what is ready (one dict, replaced whole by the worker);
the worker thread asks the history whether a job's runs changed and has a child process
read them and fit (its own interpreter: no GIL shared with the daemon, no numpy in it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import FitError, HistoryError
from .history import open_history
from .records import is_url
from .report import size_text

# (history location, job, sizes) -> {size: recommended bytes or None}; raises HistoryError.
FitJob = Callable[[str, str, Sequence[float]], dict[float, int | None]]

# Distinct (job, size) predictions asked for between history changes: a job whose
# observed size changes at every run must not grow them for months.
MAX_CACHED_PREDICTIONS = 1024
# A history locked by a writer is given up this soon, and asked again at the next pass.
HISTORY_TIMEOUT_S = 0.3
# A PostgreSQL history is asked whether it changed at most this often: each question is a
# connection, and an unreachable server holds the worker for libpq's shortest connect
# timeout (2 s).
URL_REFRESH_S = 60.0
# A fit that takes longer is given up (and asked again at the next history change).
FIT_TIMEOUT_S = 600.0


class Recommender:
    """Recommended memory per (job, size), from fits made in a worker thread.

    A pass asks (``recommend``) and gets what is ready, never waiting: fitting a long
    history takes seconds, and the loop that samples (and pings the watchdog) must not
    stall. The worker (``update``, run by ``start``'s thread at each ``poke``) looks at
    the history when it changed (a file's inode, size and mtime; a PostgreSQL history's
    run count and last id, asked every URL_REFRESH_S), refits a job only when its own runs
    changed (their count and last id), and predicts the sizes asked for. A job with too
    few sized runs gets no recommendation, and no error: most watched jobs never were
    measured at several sizes.
    """

    def __init__(
        self,
        path: str,
        report: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        fit_job: FitJob | None = None,
    ) -> None:
        self.path = path
        self._report = report
        self._clock = clock
        self._fit_job = fit_job if fit_job is not None else fit_in_child
        self._asked_at: float | None = None
        self._stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()  # guards _wanted, written by the loop, read by the worker
        self._wanted: dict[str, frozenset[float]] = {}
        # (job, size) -> recommended bytes (None: no answer); replaced whole by the worker,
        # so a pass reads one consistent mapping without a lock.
        self._ready: dict[tuple[str, float], int | None] = {}
        self._markers: dict[str, tuple[Any, ...]] = {}
        self._last_error: str | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def recommend(self, job: str, sizes: Iterable[float]) -> tuple[tuple[str, int], ...]:
        """(size label, recommended bytes) for each size whose answer is ready; asks the
        worker for the others."""
        ready = self._ready
        found, missing = [], []
        for size in sizes:
            if (job, size) not in ready:
                missing.append(size)
            elif (value := ready[(job, size)]) is not None:
                found.append((size_text(size), value))
        if missing:
            with self._lock:
                if sum(map(len, self._wanted.values())) >= MAX_CACHED_PREDICTIONS:
                    self._wanted.clear()  # sizes read from command lines come and go
                self._wanted[job] = self._wanted.get(job, frozenset()).union(missing)
            self._wake.set()
        return tuple(found)

    def poke(self) -> None:
        """Have the worker look for history changes (called at every pass)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Fit in a background thread from now on."""
        self._thread = threading.Thread(target=self._run, name="memwatch-fits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.update()
            except Exception as err:  # noqa: BLE001 - the worker's boundary: report, go on
                self._note(f"no recommendations: {type(err).__name__}: {err}")

    def update(self) -> None:
        """The worker's step: refit the jobs whose runs changed; predict the sizes asked."""
        with self._lock:
            wanted = dict(self._wanted)
        stamp = self._read_stamp()
        ready = self._ready
        if stamp == self._stamp and all((j, s) in ready for j, ss in wanted.items() for s in ss):
            return  # nothing recorded since the last look, nothing new asked
        ready = dict(ready)
        failed = False
        for job, sizes in wanted.items():
            try:
                # A short busy timeout: a history locked by a writer is asked again later.
                store = open_history(self.path, timeout_s=HISTORY_TIMEOUT_S)
                rows = store.rows("SELECT count(*), max(id) FROM runs WHERE job = ?", (job,))
                marker = tuple(rows[0]) if rows else ()
                if marker != self._markers.get(job):
                    ready = {key: v for key, v in ready.items() if key[0] != job}
                missing = sorted(s for s in sizes if (job, s) not in ready)
                if missing:
                    found = self._fit_job(self.path, job, missing)
                    ready.update(((job, size), value) for size, value in found.items())
                self._markers[job] = marker
            except HistoryError as err:
                self._note(f"no recommendations: {err}")
                failed = True  # not cached: a lock is released, a file fixed; ask again
                continue
        if not failed:
            self._last_error = None
        self._stamp = None if failed else stamp
        self._ready = ready  # the atomic swap: a pass sees the old or the new, whole

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
            store = open_history(self.path, timeout_s=HISTORY_TIMEOUT_S)
            return tuple(store.rows("SELECT count(*), max(id) FROM runs", ()) or ())
        except HistoryError:
            return None  # update says why, once

    def _note(self, problem: str) -> None:
        if problem != self._last_error:  # once per distinct problem, not at every pass
            self._report(problem)
            self._last_error = problem


def predictions(path: str, job: str, sizes: Sequence[float]) -> dict[float, int | None]:
    """Fit the job's runs in the history at ``path``; what to provision at each size (None:
    no answer: too few sized runs, or far beyond them). HistoryError if it cannot be read."""
    from .fitreport import history_measurements  # numpy: loaded only for a fit
    from .model import fit, predict

    store = open_history(path, timeout_s=HISTORY_TIMEOUT_S)
    # A failed run's peak is only a lower bound, as `memwatch predict` has it too.
    measurements = history_measurements(store, job)[0]
    try:
        model = fit(measurements)
    except FitError:
        return dict.fromkeys(sizes)
    found: dict[float, int | None] = {}
    for size in sizes:
        try:
            found[size] = predict(model, size).recommended_bytes
        except FitError:
            found[size] = None  # far beyond the measured sizes: memwatch does not guess there
    return found


def fit_in_child(path: str, job: str, sizes: Sequence[float]) -> dict[float, int | None]:
    """``predictions`` in a child interpreter: its GIL is not the daemon's, so passes and
    scrapes keep their pace while it fits (in a thread, a fit of 100000 runs stretched
    passes to ~0.9 s), and numpy never loads into the daemon."""
    request = json.dumps({"path": path, "job": job, "sizes": list(sizes)})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "memwatch.recommender"],
            input=request,
            capture_output=True,
            text=True,
            timeout=FIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HistoryError(f"the fit of job {job} failed: {err}") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise HistoryError(f"the fit of job {job} failed (exit {done.returncode}): {last}")
    reply = json.loads(done.stdout)
    if "error" in reply:
        raise HistoryError(reply["error"])
    return {float(size): value for size, value in reply["predictions"]}


def _child() -> None:
    """`python -m memwatch.recommender`: a request on stdin, the predictions on stdout."""
    # The fit gives way to the daemon: on a small machine a fit at full priority, with a
    # BLAS thread per core, stretched passes and scrapes (benchmarks/daemon_scale.py).
    os.nice(19)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # read when numpy loads, in predictions()
    request = json.load(sys.stdin)
    try:
        found = predictions(request["path"], request["job"], request["sizes"])
    except HistoryError as err:
        json.dump({"error": str(err)}, sys.stdout)
        return
    json.dump({"predictions": list(found.items())}, sys.stdout)


if __name__ == "__main__":
    _child()
