"""From per-process readings to the tree's peak, its bounds and its provenance. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from .measures import Bounds, CgroupPeak, Peak, PeakSource, ProcMem, Sample

Key = tuple[int, int]


class TreeAccumulator:
    """Folds successive readings of a tree into the few figures a summary needs.

    Keeps only the previous reading and running maxima, so memory stays flat however long
    the job runs. Three figures come out:

    - ``max_sample``: the largest tree total actually observed (a lower bound);
    - ``spike_estimate_bytes``: what VmHWM says happened *between* samples. A process
      whose high-water mark rose since the last sample was, at some moment in between,
      ``hwm - rss`` more resident than now; the rest of the tree is taken at the smaller
      of its two neighbouring readings, so short spikes are not missed;
    - ``upper_bytes``: per interval, every process at its own high-water mark plus the
      most swap it was seen to use, summed: the tree cannot have held more than that
      (processes born and gone between two samples aside). None once a process was read
      without a high-water mark (psutil outside Windows): nothing then bounds a spike
      between samples, and such a process adds nothing to ``spike_estimate_bytes``.
    """

    def __init__(self, *, pss: bool = False) -> None:
        self.pss = pss
        self.samples = 0
        self.max_sample: Sample | None = None
        self.spike_estimate_bytes = 0
        self.spike_estimate_at_s: float | None = None
        self.upper_bytes: int | None = 0
        self.processes_seen = 0
        self.max_process_hwm_bytes = 0  # the largest single process: what GNU time reports
        self.max_process_bytes = 0  # the largest single process with its swap
        # The largest VmHWM a process reached after its first reading: the kernel's proof
        # that the tree held at least that much at one moment while it was watched.
        self.risen_hwm_bytes = 0
        self.risen_hwm_at_s: float | None = None
        self._prev: dict[Key, ProcMem] = {}
        self._max_swap: dict[Key, int] = {}

    def feed(
        self,
        at_s: float,
        procs: Iterable[ProcMem],
        system_swapout_bytes: int | None = None,
        *,
        torn: bool = False,
    ) -> Sample:
        """Account one reading of the tree taken ``at_s`` seconds after the start.

        ``torn``: a process exited while the tree was being read. Its sharers' PSS grew
        after it was read, so the PSS sum over-counts: such a sample cannot set the peak.
        """
        sample = self.observe(at_s, procs, system_swapout_bytes)
        self.record(sample, can_set_peak=not (torn and self.pss))
        return sample

    def record(self, sample: Sample, *, can_set_peak: bool = True) -> None:
        """Count one sample of the tree (summed from its processes, or the cgroup's totals)."""
        self.samples += 1
        if can_set_peak and (
            self.max_sample is None or sample.total_bytes > self.max_sample.total_bytes
        ):
            self.max_sample = sample

    def observe(
        self, at_s: float, procs: Iterable[ProcMem], system_swapout_bytes: int | None = None
    ) -> Sample:
        """Fold one reading of every process into the per-process figures; returns their sum.

        The sum is not counted as a sample: ``record`` does that (``feed`` does both).
        """
        cur = {p.key: p for p in procs}
        prev = self._prev
        counted = {k: p.counted_bytes(self.pss) for k, p in cur.items()}
        # A platform without per-process swap (psutil on macOS, Windows) reports None for
        # every process: the sample's swap is then unknown, not zero.
        swap_known = not cur or any(p.swap_bytes is not None for p in cur.values())
        sample = Sample(
            at_s=at_s,
            total_bytes=sum(counted.values()),
            rss_bytes=sum(p.rss_bytes for p in cur.values()),
            swap_bytes=sum(p.swap_bytes or 0 for p in cur.values()) if swap_known else None,
            pss_bytes=sum(p.pss_bytes or 0 for p in cur.values()) if self.pss else None,
            processes=len(cur),
            system_swapout_bytes=system_swapout_bytes,
        )
        self.processes_seen += sum(1 for k in cur if k not in prev)

        # Spikes between the previous reading and this one. At its high-water mark a process
        # was resident at ``hwm``; its swap then is unknown, so take the smaller of its two
        # readings (pages swapped out after the peak must not count twice).
        low = {k: min(counted[k], prev[k].counted_bytes(self.pss)) for k in cur if k in prev}
        base = sum(low.values())
        for k, p in cur.items():
            hwm = p.hwm_bytes
            if hwm is None:
                continue  # no high-water mark on this platform: nothing seen between samples
            rose = k not in prev or hwm > (prev[k].hwm_bytes or 0)
            if rose and k in prev and hwm > self.risen_hwm_bytes:
                self.risen_hwm_bytes, self.risen_hwm_at_s = hwm, at_s
            if rose and hwm > p.rss_bytes:
                resident = hwm - p.rss_bytes + p.resident_bytes(self.pss)
                swapped = p.swapped_bytes(self.pss)
                if k in prev:
                    swapped = min(swapped, prev[k].swapped_bytes(self.pss))
                estimate = base - low.get(k, 0) + resident + swapped
                if estimate > self.spike_estimate_bytes:
                    self.spike_estimate_bytes = estimate
                    self.spike_estimate_at_s = at_s
        # Without a high-water mark the largest resident size seen stands in for it, and
        # nothing bounds what happened between two samples.
        hwms = [p.rss_bytes if p.hwm_bytes is None else p.hwm_bytes for p in cur.values()]
        if self.upper_bytes is not None and any(p.hwm_bytes is None for p in cur.values()):
            self.upper_bytes = None
        self.max_process_hwm_bytes = max([self.max_process_hwm_bytes, *hwms])
        swaps = [p.swap_bytes or 0 for p in cur.values()]
        self.max_process_bytes = max(
            [self.max_process_bytes, *(h + s for h, s in zip(hwms, swaps, strict=True))]
        )

        # Upper bound over this interval: everyone alive at either end, each at its maximum.
        old_swap = self._max_swap
        max_swap = {k: max(s, old_swap.get(k, 0)) for k, s in zip(cur, swaps, strict=True)}
        if self.upper_bytes is not None:
            interval_upper = sum(h + m for h, m in zip(hwms, max_swap.values(), strict=True))
            interval_upper += sum(
                _hwm(p) + self._max_swap.get(k, p.swap_bytes or 0)
                for k, p in prev.items()
                if k not in cur
            )
            self.upper_bytes = max(self.upper_bytes, interval_upper)
        self._max_swap = max_swap
        self._prev = cur
        return sample


def _hwm(p: ProcMem) -> int:
    return p.rss_bytes if p.hwm_bytes is None else p.hwm_bytes


def resolve_peak(
    acc: TreeAccumulator,
    *,
    cgroup: CgroupPeak | None,
    ru_maxrss_bytes: int | None,
    escaped_cgroup: int = 0,
) -> tuple[Peak, Bounds, list[str]]:
    """Choose the reported peak and its bounds from every source, and say why.

    ``ru_maxrss_bytes`` must already be trustworthy (see run.py): one process's resident
    peak, so the tree held at least that.
    """
    warnings: list[str] = []
    best = acc.max_sample
    sampled = best.total_bytes if best else 0
    rss = best.rss_bytes if best else 0
    swap = best.swap_bytes if best else 0
    pss = best.pss_bytes if best else None
    at_s = best.at_s if best else None
    source: PeakSource = "sampling"
    total = sampled
    spike = max(acc.spike_estimate_bytes, ru_maxrss_bytes or 0)
    if spike > sampled:
        total, source, rss = spike, "hwm", max(0, spike - (swap or 0))
        from_hwm = acc.spike_estimate_bytes >= (ru_maxrss_bytes or 0)
        at_s = acc.spike_estimate_at_s if from_hwm else None
    # Summed RSS counts pages shared between processes once per process, so it is no lower
    # bound; the largest single process is. PSS sums count each page once.
    process_lower = total if acc.pss else min(total, max(acc.max_process_bytes, spike))
    lower = process_lower
    upper = None if acc.upper_bytes is None else max(acc.upper_bytes, total)

    if cgroup is not None and cgroup.total_bytes is not None:
        kernel = cgroup.total_bytes
        ram = min(cgroup.ram_bytes if cgroup.ram_bytes is not None else kernel, kernel)
        if escaped_cgroup:
            warnings.append(
                f"{escaped_cgroup} process(es) moved out of the job cgroup: the cgroup peak is a "
                "lower bound, so the larger of it and the sampled peak is reported"
            )
            # The cgroup saw part of the tree: the truth is at least either figure and at
            # most both together.
            upper = None if acc.upper_bytes is None else kernel + acc.upper_bytes
            lower = max(kernel, process_lower)
            if kernel >= total:
                total, source, at_s, rss, swap = kernel, "cgroup", None, ram, kernel - ram
        else:
            # The kernel's peak has no time stamp: at_s is unknown.
            total, source, at_s, rss, swap = kernel, "cgroup", None, ram, kernel - ram
            # v2's two peaks may come at different moments: their sum is only an upper bound.
            lower = kernel if cgroup.total_is_exact else ram
            upper = kernel
            # One process alone was more resident than the whole cgroup's peak: pages it
            # mapped (shared libraries, files cached before the job) were charged to the
            # cgroup that first touched them (memory.rst, "Shared Page Accounting"). A
            # limit counts only the cgroup's figure; the job still used the larger.
            single = max(acc.max_process_bytes, ru_maxrss_bytes or 0)
            if single > kernel:
                warnings.append(
                    f"the cgroup peak ({kernel / 2**20:.1f} MiB) is below one process's "
                    f"resident peak ({single / 2**20:.1f} MiB): pages the job used that "
                    "another cgroup was already charged for (shared libraries, files cached "
                    "before it started) are not in the cgroup's figure; the upper bound "
                    "includes them"
                )
                upper = single
            cache = cgroup.file_cache_bytes
            if cache >= max(4 << 20, kernel // 20):
                warnings.append(
                    f"{cache >> 20} MiB page cache was still charged to the job at its end "
                    "(files it read or wrote): the cgroup peak counts such cache, which the "
                    "kernel reclaims under a memory limit, so the job may fit in less; its "
                    f"processes held at least {process_lower >> 20} MiB"
                )
                lower = min(lower, process_lower)
    elif cgroup is not None and cgroup.ram_bytes is not None:
        warnings.append(
            "the job cgroup does not account swap (cgroup v1 needs swapaccount=1): "
            "swap comes from sampling"
        )
        if upper is not None:
            upper = max(upper, cgroup.ram_bytes + (swap or 0))
        lower = max(lower, cgroup.ram_bytes)  # the RAM peak alone is a lower bound
        if cgroup.ram_bytes > total:
            total, source, at_s, rss, swap = cgroup.ram_bytes, "cgroup", None, cgroup.ram_bytes, 0
            lower = total
    bounds = Bounds(lower, None if upper is None else max(upper, total))
    return Peak(total, rss, swap, pss, at_s, source), bounds, warnings
