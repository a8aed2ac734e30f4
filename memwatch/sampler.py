"""The polling thread: reads the tree on a fixed monotonic schedule until told to stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .backend import Backend, Tracker
from .errors import PermissionDenied, ProcessGone
from .peak import TreeAccumulator
from .plateau import PlateauDetector
from .proc_backend import ProcBackend
from .procfs import PROC
from .types import ProcMem, Sample


class Sampler:
    """Samples a tree every ``interval_s`` seconds, on the schedule t0 + k*interval.

    A fixed schedule, not ``sleep(interval)`` after each sample, so time spent sampling
    does not make samples drift; when a sample overruns its slot the missed slots are
    skipped and counted. Stops on an Event, so ``stop()`` returns within one sample.
    Processes are read through ``backend`` (default: the /proc readers at ``procfs``);
    ``tracker`` must come from the same backend, so their start keys agree.
    """

    def __init__(
        self,
        tracker: Tracker,
        *,
        interval_s: float,
        pss: bool = False,
        t0: float,
        on_sample: Callable[[Sample], None] | None = None,
        after_sample: Callable[[dict[int, int]], None] | None = None,
        cgroup_pids: Callable[[], set[int]] | None = None,
        procfs: str = PROC,
        clock: Callable[[], float] = time.monotonic,
        backend: Backend | None = None,
        system_shmem: Callable[[], int | None] | None = None,
    ) -> None:
        self.tracker = tracker
        self.backend: Backend = backend if backend is not None else ProcBackend(procfs)
        self.interval_s = interval_s
        self.pss = pss
        self.accumulator = TreeAccumulator(pss=pss)
        self.plateaus = PlateauDetector()
        self.missed_ticks = 0  # slots lost to passes slower than the interval
        self.held_up_ticks = 0  # slots lost waking late: memwatch stopped, or starved of CPU
        self.vanished = 0
        self.unreadable: set[int] = set()
        self.escaped_cgroup: set[int] = set()
        self._missing_from_cgroup: set[tuple[int, int]] = set()
        self.error: str | None = None
        self.last_procs: list[ProcMem] = []
        self.shmem_max_bytes: int | None = None  # the system's shared memory at its highest
        self._system_shmem = system_shmem
        self._t0 = t0
        self._on_sample = on_sample
        self._after_sample = after_sample
        self._cgroup_pids = cgroup_pids
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memwatch-sampler")

    def start(self) -> None:
        """Take the first sample now, then keep sampling in the background."""
        self.sample_once()
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and take one last sample (the tree as the command ends); idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.error is None:
            self.sample_once()

    def _run(self) -> None:
        k = 1
        while not self._stop.wait(max(0.0, self._t0 + k * self.interval_s - self._clock())):
            began, began_cpu = self._clock(), time.thread_time()
            try:
                self.sample_once()
            except OSError as err:  # e.g. EMFILE: report it, keep what was measured
                self.error = f"sampling stopped at {self._clock() - self._t0:.2f} s: {err}"
                return
            ended = self._clock()
            # Slots that passed before this pass began were lost waiting to wake (SIGSTOP,
            # Ctrl-Z, no CPU). Those that passed while it ran were lost to reading the tree
            # if the pass was mostly working; a pass that mostly did not run (stopped or
            # descheduled midway) was held up too.
            held_up = max(0, int((began - self._t0) / self.interval_s) - k)
            due = int((ended - self._t0) / self.interval_s) + 1
            during = max(0, due - k - 1 - held_up)
            if 2 * (time.thread_time() - began_cpu) < ended - began:
                held_up += during
            else:
                self.missed_ticks += during
            self.held_up_ticks += held_up
            k = max(k + 1, due)

    def sample_once(self) -> Sample:
        """Read every member of the tree once and fold the reading into the accumulator."""
        members = self.tracker.refresh()
        procs: list[ProcMem] = []
        read_mem, backend = self.backend.read_mem, self.backend
        for pid, start in members.items():
            try:
                mem = read_mem(pid, pss=self.pss)
            except ProcessGone:
                self.vanished += 1  # exited between the listing and the read: normal
                continue
            except PermissionDenied:
                self.unreadable.add(pid)
                continue
            if mem.start_ticks != start:
                self.tracker.forget(pid)  # pid reused by an unrelated process
                continue
            procs.append(mem)
        # PSS splits a shared page among the processes mapping it *when read*; a process
        # exiting mid-pass raises its sharers' PSS after it was counted. Detect that.
        torn = self.pss and any(not backend.is_running(p.pid) for p in procs)
        sample = self.accumulator.feed(
            self._clock() - self._t0, procs, backend.system_swapout_bytes(), torn=torn
        )
        self.plateaus.feed(sample)
        if self._system_shmem is not None:
            self._note_shmem(self._system_shmem())
        if self._cgroup_pids is not None:
            self._check_cgroup(procs)
        self.last_procs = procs
        if self._on_sample is not None:
            self._on_sample(sample)
        if self._after_sample is not None:
            self._after_sample(members)
        return sample

    def _note_shmem(self, shmem: int | None) -> None:
        if shmem is not None:
            self.shmem_max_bytes = max(shmem, self.shmem_max_bytes or 0)

    def _check_cgroup(self, procs: list[ProcMem]) -> None:
        # A live process of the tree missing from the job cgroup moved itself out; its
        # memory is then missing from the cgroup peak. But a child is visible in /proc a
        # moment before fork attaches it to its cgroup (kernel/fork.c: cgroup_post_fork
        # runs after attach_pid), and zombies (no VmRSS) leave the cgroup: so only a live
        # process missing at two samples in a row counts as escaped.
        assert self._cgroup_pids is not None
        missing = {p.key for p in procs if p.rss_bytes > 0}
        if missing:
            inside = self._cgroup_pids()
            missing = {key for key in missing if key[0] not in inside}
        self.escaped_cgroup |= {pid for pid, _ in missing & self._missing_from_cgroup}
        self._missing_from_cgroup = missing
