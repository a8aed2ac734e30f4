"""Immutable records passed between the readers, the sampler and the reporters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PeakSource = Literal["cgroup", "sampling", "hwm"]


@dataclass(frozen=True)
class ProcMem:
    """One process's memory at one instant, from /proc/PID/status (and smaps_rollup with --pss)."""

    pid: int
    start_ticks: int  # /proc/PID/stat field 22: with pid, identifies the process across pid reuse
    rss_bytes: int
    swap_bytes: int
    hwm_bytes: int  # VmHWM: the kernel's resident high-water mark of this process
    pss_bytes: int | None = None
    swap_pss_bytes: int | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_ticks)

    def resident_bytes(self, pss: bool) -> int:
        """Its share of RAM: RSS, or PSS when measured."""
        return self.pss_bytes if pss and self.pss_bytes is not None else self.rss_bytes

    def swapped_bytes(self, pss: bool) -> int:
        """Its share of swap: VmSwap, or SwapPss when PSS was measured."""
        if pss and self.pss_bytes is not None:
            return self.swap_pss_bytes or 0
        return self.swap_bytes

    def counted_bytes(self, pss: bool) -> int:
        """What this process adds to the tree total: RSS + swap, or PSS + SwapPss."""
        return self.resident_bytes(pss) + self.swapped_bytes(pss)


@dataclass(frozen=True)
class Sample:
    """The whole tree summed at one instant; ``at_s`` counts from the command's start."""

    at_s: float
    total_bytes: int  # RSS + swap summed over the tree (PSS + SwapPss with --pss)
    rss_bytes: int
    swap_bytes: int
    pss_bytes: int | None
    processes: int
    system_swapout_bytes: int | None = None  # cumulative /proc/vmstat pswpout, in bytes


@dataclass(frozen=True)
class Plateau:
    """A stretch where resident memory stopped growing while swap kept growing."""

    start_s: float
    end_s: float
    rss_bytes: int
    swap_growth_bytes: int
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
    swap_bytes: int
    pss_bytes: int | None
    at_s: float | None
    source: PeakSource


@dataclass(frozen=True)
class Bounds:
    lower_bytes: int
    upper_bytes: int


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

    @property
    def exit_status(self) -> int:
        """What a shell would see: the command's code, or 128+N after signal N."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 125
