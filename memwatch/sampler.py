"""The polling thread: reads the tree on a fixed monotonic schedule until told to stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .backend import Backend, Tracker
from .cgroup import CgroupCounters
from .errors import CgroupUnavailable, PermissionDenied, ProcessGone
from .measures import CgroupUsage, ProcMem, Sample
from .peak import TreeAccumulator
from .plateau import PlateauDetector
from .proc_backend import ProcBackend
from .procfs import PROC

# With a job cgroup, a sample reads the kernel's totals; the walk over every process
# (escapes from the cgroup, the largest process, per-process high-water marks) runs at most
# once a second, and taking no more than WALK_SHARE of the time: a big tree is walked less
# often, so a sample costs about the same whatever the tree's size. And once at the end.
# The cgroup's processes are counted once a second (listing them costs the kernel ~10x
# more than the totals).
WALK_EVERY_S = 1.0
WALK_SHARE = 0.02
COUNT_EVERY_S = 1.0


class Sampler:
    """Samples a tree every ``interval_s`` seconds, on the schedule t0 + k*interval.

    A fixed schedule, not ``sleep(interval)`` after each sample, so time spent sampling
    does not make samples drift; when a sample overruns its slot the missed slots are
    skipped and counted. Stops on an Event, so ``stop()`` returns within one sample.
    Processes are read through ``backend`` (default: the /proc readers at ``procfs``);
    ``tracker`` must come from the same backend, so their start keys agree.

    With ``cgroup`` (the job's, which only the job's tree joins), a sample is the cgroup's
    totals (see cgroup.CgroupCounters), unless ``pss`` asks for every process at every
    sample, or a process was seen to leave the cgroup (its totals then miss part of the
    tree): then every sample walks the tree, as without a cgroup.
    """

    def __init__(
        self,
        tracker: Tracker,
        *,
        interval_s: float,
        pss: bool = False,
        t0: float,
        on_sample: Callable[[Sample], None] | None = None,
        after_walk: Callable[[dict[int, int]], None] | None = None,
        cgroup: CgroupCounters | None = None,
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
        self.walks = 0
        self.unreadable: set[int] = set()
        self.escaped_cgroup: set[int] = set()
        self._missing_from_cgroup: set[tuple[int, int]] = set()
        self.error: str | None = None
        self.last_procs: list[ProcMem] = []
        self.shmem_max_bytes: int | None = None  # the system's shared memory at its highest
        self._system_shmem = system_shmem
        self._t0 = t0
        self._on_sample = on_sample
        self._after_walk = after_walk
        self._cgroup = cgroup
        self._totals = cgroup is not None and not pss
        self._cgroup_processes = 0  # the job cgroup's, at the last count
        self._next_count = t0
        self._next_walk = t0
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
            self.sample_once(walk=True)
        self.backend.release(())

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

    def sample_once(self, *, walk: bool = False) -> Sample:
        """Take one sample: the cgroup's totals, or the sum over every process of the tree.

        The processes are read when there is no cgroup to sum them, when the walk is due,
        or when ``walk`` asks for it. A totals sample gives the cgroup's process count of
        at most COUNT_EVERY_S ago.
        """
        now = self._clock()
        at_s = now - self._t0
        usage = self._read_usage() if self._totals else None
        walked = usage is None or walk or now >= self._next_walk
        procs = self._walk() if walked else []
        if usage is not None and not walked and now >= self._next_count:
            assert self._cgroup is not None
            self._cgroup_processes = self._cgroup.processes()
            self._next_count = now + COUNT_EVERY_S
        if usage is None:
            swapout = self.backend.system_swapout_bytes()
            # PSS splits a shared page among the processes mapping it *when read*; a
            # process exiting mid-pass raises its sharers' PSS after it was counted.
            torn = self.pss and any(not self.backend.is_running(p.pid) for p in procs)
            sample = self.accumulator.feed(at_s, procs, swapout, torn=torn)
        else:
            # The system's swap-out only stands in where the tree's own swap is unknown;
            # the cgroup accounts it exactly (with v1 swap accounting, or on v2).
            swap = usage.swap_bytes
            swapout = None if swap is not None else self.backend.system_swapout_bytes()
            sample = Sample(
                at_s=at_s,
                total_bytes=usage.ram_bytes + (swap or 0),
                rss_bytes=usage.ram_bytes,
                swap_bytes=swap,
                pss_bytes=None,
                processes=self._cgroup_processes,
                system_swapout_bytes=swapout,
            )
            if walked:
                self.accumulator.observe(at_s, procs, swapout)
            self.accumulator.record(sample)
        if walked:
            spent = self._clock() - now
            self._next_walk = now + max(WALK_EVERY_S, spent / WALK_SHARE)
        self.plateaus.feed(sample)
        if self._system_shmem is not None:
            self._note_shmem(self._system_shmem())
        if self._on_sample is not None:
            self._on_sample(sample)
        return sample

    def _note_shmem(self, shmem: int | None) -> None:
        if shmem is not None:
            self.shmem_max_bytes = max(shmem, self.shmem_max_bytes or 0)

    def _read_usage(self) -> CgroupUsage | None:
        assert self._cgroup is not None
        try:
            return self._cgroup.read()
        except CgroupUnavailable:  # removed under memwatch: read the processes instead
            self._totals = False
            return None

    def _walk(self) -> list[ProcMem]:
        """Read every member of the tree once."""
        self.walks += 1
        members = self.tracker.refresh()
        procs: list[ProcMem] = []
        read = self.backend.read_member
        for pid, start in members.items():
            try:
                procs.append(read(pid, start, pss=self.pss))
            except ProcessGone:
                # Exited between the listing and the read (normal), or its pid was reused:
                # the next refresh classifies whatever holds the pid now.
                self.vanished += 1
                self.tracker.forget(pid)
            except PermissionDenied:
                self.unreadable.add(pid)
        self.backend.release(members)
        if self._cgroup is not None:
            self._check_cgroup(procs)
        self.last_procs = procs
        if self._after_walk is not None:
            self._after_walk(members)
        return procs

    def _check_cgroup(self, procs: list[ProcMem]) -> None:
        # A live process of the tree missing from the job cgroup moved itself out; its
        # memory is then missing from the cgroup peak. But a child is visible in /proc a
        # moment before fork attaches it to its cgroup (kernel/fork.c: cgroup_post_fork
        # runs after attach_pid), and zombies (no VmRSS) leave the cgroup: so only a live
        # process missing at two walks in a row counts as escaped. From then on every
        # sample walks the tree: the cgroup's totals miss the escaped process.
        assert self._cgroup is not None
        inside = self._cgroup.pids()
        self._cgroup_processes = len(inside)
        self._next_count = self._clock() + COUNT_EVERY_S
        missing = {p.key for p in procs if p.rss_bytes > 0 and p.pid not in inside}
        self.escaped_cgroup |= {pid for pid, _ in missing & self._missing_from_cgroup}
        self._missing_from_cgroup = missing
        if self.escaped_cgroup:
            self._totals = False
