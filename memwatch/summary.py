"""A run's summary from what it showed: peak, bounds, OOM verdict, warnings. Pure.

run.py is the OS edge (spawn, signals, sampling, reaping) and hands over an ``Observed``;
``summarise`` turns it into the ``RunSummary`` the reports print, so tests build one
from plain data with no process started.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from .measures import BackendName, Bounds, CgroupPeak, Plateau, RunSummary
from .peak import TreeAccumulator, resolve_peak
from .rusage import maxrss_bytes

UNSEEN_SHMEM_MIN_BYTES = 16 << 20  # below this, Shmem moves with the rest of the system


def _unseen_shmem_bytes(before: int | None, highest: int | None) -> int:
    """How far the system's shared memory rose during the run, when it rose noticeably."""
    if before is None or highest is None or highest - before < UNSEEN_SHMEM_MIN_BYTES:
        return 0
    return highest - before


@dataclass(frozen=True)
class Observed:
    """What one run showed: the plain data ``summarise`` turns into a RunSummary."""

    returncode: int  # as Popen has it: -N after signal N
    duration_s: float
    raw_maxrss: int | None  # the job's ru_maxrss in the platform's unit; None if unknown
    spawner_hwm_bytes: int  # memwatch's own VmHWM before it spawned the job
    accumulator: TreeAccumulator
    plateaus: tuple[Plateau, ...] = ()
    cgroup: CgroupPeak | None = None
    system_oom_kills: int | None = None  # the rise of /proc/vmstat oom_kill over the run
    received_signal: int | None = None
    sampling_error: str | None = None
    unreadable: int = 0
    vanished: int = 0
    stragglers: int = 0  # descendants still running when the command ended
    missed_ticks: int = 0
    held_up_ticks: int = 0
    escaped_cgroup: int = 0
    backend: BackendName = "proc"
    limitations: tuple[str, ...] = ()  # figures the backend cannot give here
    shmem_before_bytes: int | None = None  # the system's Shmem as the job started
    shmem_max_bytes: int | None = None  # and at its highest while it ran


def summarise(
    command: Sequence[str],
    observed: Observed,
    setup_warnings: Sequence[str] = (),
    *,
    interval_s: float,
    pss: bool = False,
    job: str | None = None,
    size: float | None = None,
) -> RunSummary:
    """The run's summary from what it showed: peak, bounds, OOM verdict, warnings. Pure."""
    o = observed
    acc = o.accumulator
    warnings = list(setup_warnings)
    exit_code = o.returncode if o.returncode >= 0 else None
    sig = -o.returncode if o.returncode < 0 else None
    # Linux carries the spawner's own high-water mark into the child's ru_maxrss at exec
    # (fs/exec.c, exec_mmap: setmax_mm_hiwater_rss), so a figure not above memwatch's own
    # peak may be memwatch's, not the job's. Then the largest VmHWM seen stands in for it.
    ru_maxrss = None if o.raw_maxrss is None else maxrss_bytes(o.raw_maxrss)
    trusted_maxrss = (
        ru_maxrss if ru_maxrss is not None and ru_maxrss > o.spawner_hwm_bytes else None
    )
    peak, bounds, peak_warnings = resolve_peak(
        acc, cgroup=o.cgroup, ru_maxrss_bytes=trusted_maxrss, escaped_cgroup=o.escaped_cgroup
    )
    warnings += peak_warnings
    unseen = _unseen_shmem_bytes(o.shmem_before_bytes, o.shmem_max_bytes)
    if unseen:
        warnings.append(
            f"the system's shared memory (memfd, tmpfs, SysV) grew by {unseen >> 20} MiB while "
            "the job ran: held without being mapped, it is in no process's figures, so the "
            "upper bound includes it (some may be another process's); a job cgroup counts "
            "it exactly"
        )
        upper = None if bounds.upper_bytes is None else bounds.upper_bytes + unseen
        bounds = Bounds(bounds.lower_bytes, upper)
    if peak.source != "cgroup":  # the kernel's exact peak needs none of what is missing
        warnings += o.limitations
    best = acc.max_sample
    if peak.source != "cgroup" and not pss and best is not None and best.processes > 1:
        warnings.append(
            f"{best.processes} processes at the sampled peak: RSS counts pages they share "
            "(copy-on-write after fork, shared memory) once per process; --pss counts them once"
        )
    if peak.total_bytes == 0:
        warnings.append(
            "the command ended before memwatch could read its memory: its peak is unknown, "
            "not zero (ru_maxrss cannot tell it apart from memwatch's own footprint)"
        )
    oom = _oom_verdict(o, sig)
    if oom:
        warnings.append(oom)
    warnings += _observation_warnings(o)
    return RunSummary(
        command=tuple(command),
        exit_code=exit_code,
        signal=sig,
        oom_killed=oom is not None,
        duration_s=o.duration_s,
        interval_s=interval_s,
        samples=acc.samples,
        peak=peak,
        bounds=bounds,
        # None, not 0, when neither says anything (a job shorter than one sample): unknown.
        ru_maxrss_bytes=trusted_maxrss or acc.max_process_hwm_bytes or None,
        swap_suspected=bool(o.plateaus),
        plateaus=o.plateaus,
        warnings=tuple(warnings),
        size=size,
        job=job,
        cgroup=o.cgroup,
        processes_seen=acc.processes_seen,
        unreadable_processes=o.unreadable,
        vanished_reads=o.vanished,
        backend=o.backend,
        received_signal=o.received_signal,
    )


def _observation_warnings(o: Observed) -> list[str]:
    """What the sampling itself says: swap plateaus, errors, unreadable or daemonized
    processes, and slots lost to slow reads or to memwatch being held up."""
    warnings: list[str] = []
    acc = o.accumulator
    for p in o.plateaus:
        grew = (
            f"swap grew {p.swap_growth_bytes >> 20} MiB"
            if p.swap_growth_bytes is not None
            else f"the system swapped out {p.system_swapout_bytes >> 20} MiB"
        )
        warnings.append(
            f"suspected swapping from {p.start_s:.2f} s to {p.end_s:.2f} s: "
            f"resident memory flat at {p.rss_bytes >> 20} MiB while {grew}"
        )
    if o.sampling_error:
        warnings.append(o.sampling_error)
    if o.unreadable:
        warnings.append(
            f"could not read {o.unreadable} process(es) of the tree (permission "
            "denied): their memory is not in the sampled figures"
        )
    if o.stragglers:
        warnings.append(
            f"{o.stragglers} descendant process(es) still running after the command exited "
            "(daemonized); their memory is counted up to that moment"
        )
    if o.missed_ticks > max(2, acc.samples // 20):
        warnings.append(
            f"{o.missed_ticks} sampling slots skipped: reading this tree takes longer "
            "than --interval; choose a larger one"
        )
    if o.held_up_ticks > max(2, acc.samples // 20):
        warnings.append(
            f"{o.held_up_ticks} sampling slots skipped while memwatch itself was held "
            "up (stopped, e.g. by Ctrl-Z, or given no CPU): between samples only the "
            "high-water marks and the cgroup peak saw the job"
        )
    return warnings


def _oom_verdict(o: Observed, sig: int | None) -> str | None:
    """Why the job counts as OOM-killed (the summary's warning), or None if it does not."""
    if o.cgroup is not None and o.cgroup.oom_kills:
        return (
            f"the kernel's OOM killer killed {o.cgroup.oom_kills} process(es) of the job "
            "(cgroup memory limit reached): the peak is the peak up to the kill"
        )
    if sig == getattr(signal, "SIGKILL", None) and o.system_oom_kills:
        return (
            "the command was killed by SIGKILL while the system's OOM-kill count rose: "
            "probably OOM-killed; the peak is the peak up to the kill"
        )
    return None
