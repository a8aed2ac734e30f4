"""Immutable records passed between the readers, the sampler and the reporters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PeakSource = Literal["cgroup", "sampling", "hwm"]
BackendName = Literal["proc", "psutil"]


@dataclass(frozen=True)
class ProcMem:
    """One process's memory at one instant, from /proc/PID/status (and smaps_rollup with --pss).

    Read through psutil (the backend where /proc is missing), a figure the platform does
    not report is None: ``swap_bytes`` on macOS and Windows, ``hwm_bytes`` everywhere but
    Windows, ``swap_pss_bytes`` always.
    """

    pid: int
    # With pid, identifies the process across pid reuse: /proc/PID/stat field 22 (clock
    # ticks after boot) from the /proc backend; from psutil, the hash of its Process
    # (pid + start time).
    start_ticks: int
    rss_bytes: int
    swap_bytes: int | None
    hwm_bytes: int | None  # VmHWM: the kernel's resident high-water mark of this process
    pss_bytes: int | None = None
    swap_pss_bytes: int | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_ticks)

    def resident_bytes(self, pss: bool) -> int:
        """Its share of RAM: RSS, or PSS when measured."""
        return self.pss_bytes if pss and self.pss_bytes is not None else self.rss_bytes

    def swapped_bytes(self, pss: bool) -> int:
        """Its share of swap: VmSwap, or SwapPss when PSS was measured (0 when not reported)."""
        if pss and self.pss_bytes is not None and self.swap_pss_bytes is not None:
            return self.swap_pss_bytes
        # PSS without SwapPss (psutil): swapped pages shared by processes count once per process.
        return self.swap_bytes or 0

    def counted_bytes(self, pss: bool) -> int:
        """What this process adds to the tree total: RSS + swap, or PSS + SwapPss."""
        return self.resident_bytes(pss) + self.swapped_bytes(pss)


@dataclass(frozen=True)
class Sample:
    """The whole tree summed at one instant; ``at_s`` counts from the command's start."""

    at_s: float
    total_bytes: int  # RSS + swap summed over the tree (PSS + SwapPss with --pss)
    rss_bytes: int
    swap_bytes: int | None  # None where the platform reports no per-process swap
    pss_bytes: int | None
    processes: int
    system_swapout_bytes: int | None = None  # cumulative /proc/vmstat pswpout, in bytes


@dataclass(frozen=True)
class Plateau:
    """A stretch where resident memory stopped growing while swap kept growing."""

    start_s: float
    end_s: float
    rss_bytes: int
    swap_growth_bytes: int | None  # None where the platform reports no per-process swap
    system_swapout_bytes: int


@dataclass(frozen=True)
class CgroupPeak:
    """What the job cgroup recorded; ``total_bytes`` is None where swap is not accounted."""

    version: int
    ram_bytes: int | None
    total_bytes: int | None
    total_is_exact: bool  # v1 memsw is one counter; v2 adds two peaks that may not coincide
    oom_kills: int
    file_cache_bytes: int = 0  # page cache of files still charged at the end (reclaimable)


@dataclass(frozen=True)
class CgroupUsage:
    """A cgroup's memory at one instant, as the kernel charges it (page cache included)."""

    ram_bytes: int
    swap_bytes: int | None  # None where the kernel does not account swap


@dataclass(frozen=True)
class MemoryLimit:
    """The tightest cgroup memory limit over a process: what its OOM killer enforces."""

    version: int
    path: str  # the cgroup that sets it: memwatch's own or an ancestor
    limit_bytes: int
    usage_bytes: int  # what that cgroup already holds


@dataclass(frozen=True)
class Peak:
    """The reported peak of the tree, with its provenance."""

    total_bytes: int
    rss_bytes: int
    swap_bytes: int | None  # None where the platform reports no per-process swap
    pss_bytes: int | None
    at_s: float | None
    source: PeakSource


@dataclass(frozen=True)
class Bounds:
    lower_bytes: int
    # None when no upper bound is known: without per-process high-water marks (the psutil
    # backend outside Windows) a spike between two samples can go unseen.
    upper_bytes: int | None


@dataclass(frozen=True)
class RunSummary:
    """Everything memwatch knows about one wrapped run; serialised as the JSON summary."""

    command: tuple[str, ...]
    exit_code: int | None  # None when the command died from a signal
    signal: int | None
    oom_killed: bool
    duration_s: float
    interval_s: float
    samples: int
    peak: Peak
    bounds: Bounds
    ru_maxrss_bytes: int | None
    swap_suspected: bool
    plateaus: tuple[Plateau, ...] = ()
    warnings: tuple[str, ...] = ()
    size: float | None = None  # the job's input size, as given with --size
    job: str | None = None
    cgroup: CgroupPeak | None = None
    processes_seen: int = 0
    unreadable_processes: int = 0
    vanished_reads: int = 0  # processes that exited between listing and reading: normal
    received_signal: int | None = None  # a SIGINT/TERM/HUP/QUIT memwatch got while it ran
    backend: BackendName = "proc"  # what sampled the tree: /proc readers or psutil

    @property
    def exit_status(self) -> int:
        """What a shell would see: the command's code, or 128+N after signal N."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 125


@dataclass(frozen=True)
class JobSnapshot:
    """One watched job at the last sampling pass: what the exporter turns into metrics."""

    job: str
    processes: int
    rss_bytes: int
    swap_bytes: int
    pss_bytes: int | None  # None unless the job is sampled with PSS
    peak_total_bytes: int  # largest RAM + swap total since the job's processes appeared
    peak_at_unix_s: float | None  # when that peak was sampled; None before any sample
    swap_suspected: bool
    unreadable_processes: int  # processes of the job the kernel refused to show (EACCES)
    observed_size: float | None = None  # input size read from a command line, if configured
    recommended_bytes: tuple[tuple[str, int], ...] = ()  # (size label, bytes) from history
    # The largest VmHWM of one of its processes, which may predate memwatch's first look;
    # None where processes are not read (an entry sampled from its cgroup).
    process_hwm_bytes: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """All jobs at one instant; immutable, so a scrape never waits for or walks /proc."""

    taken_at_unix_s: float
    jobs: tuple[JobSnapshot, ...]
    pass_duration_s: float  # how long the last full sampling pass took
    passes_total: int
    read_errors_total: int  # permission denied, cumulative
