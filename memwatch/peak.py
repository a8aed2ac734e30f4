"""From per-process readings to the tree's peak, its bounds and its provenance. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from .types import Bounds, CgroupPeak, Peak, ProcMem, Sample

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
      (processes born and gone between two samples aside).
    """

    def __init__(self, *, pss: bool = False) -> None:
        self.pss = pss
        self.samples = 0
        self.max_sample: Sample | None = None
        self.spike_estimate_bytes = 0
        self.spike_estimate_at_s: float | None = None
        self.upper_bytes = 0
        self.processes_seen = 0
        self._prev: dict[Key, ProcMem] = {}
        self._max_swap: dict[Key, int] = {}

    def feed(
        self, at_s: float, procs: Iterable[ProcMem], system_swapout_bytes: int | None = None
    ) -> Sample:
        """Account one reading of the tree taken ``at_s`` seconds after the start."""
        cur = {p.key: p for p in procs}
        prev = self._prev
        counted = {k: p.counted_bytes(self.pss) for k, p in cur.items()}
        sample = Sample(
            at_s=at_s,
            total_bytes=sum(counted.values()),
            rss_bytes=sum(p.rss_bytes for p in cur.values()),
            swap_bytes=sum(p.swap_bytes for p in cur.values()),
            pss_bytes=sum(p.pss_bytes or 0 for p in cur.values()) if self.pss else None,
            processes=len(cur),
            system_swapout_bytes=system_swapout_bytes,
        )
        self.samples += 1
        self.processes_seen += sum(1 for k in cur if k not in prev)
        if self.max_sample is None or sample.total_bytes > self.max_sample.total_bytes:
            self.max_sample = sample

        # Spikes between the previous reading and this one.
        low = {k: min(counted[k], prev[k].counted_bytes(self.pss)) for k in cur if k in prev}
        base = sum(low.values())
        for k, p in cur.items():
            rose = k not in prev or p.hwm_bytes > prev[k].hwm_bytes
            if rose and p.hwm_bytes > p.rss_bytes:
                estimate = base - low.get(k, 0) + counted[k] + (p.hwm_bytes - p.rss_bytes)
                if estimate > self.spike_estimate_bytes:
                    self.spike_estimate_bytes = estimate
                    self.spike_estimate_at_s = at_s

        # Upper bound over this interval: everyone alive at either end, each at its maximum.
        max_swap = {k: max(p.swap_bytes, self._max_swap.get(k, 0)) for k, p in cur.items()}
        interval_upper = sum(p.hwm_bytes + max_swap[k] for k, p in cur.items())
        interval_upper += sum(
            p.hwm_bytes + self._max_swap.get(k, p.swap_bytes)
            for k, p in prev.items()
            if k not in cur
        )
        self.upper_bytes = max(self.upper_bytes, interval_upper)
        self._max_swap = max_swap
        self._prev = cur
        return sample


def resolve_peak(
    acc: TreeAccumulator,
    *,
    cgroup: CgroupPeak | None,
    ru_maxrss_bytes: int | None,
    escaped_cgroup: int = 0,
) -> tuple[Peak, Bounds, list[str]]:
    """Choose the reported peak and its bounds from every source, and say why."""
    warnings: list[str] = []
    best = acc.max_sample
    sampled = best.total_bytes if best else 0
    # ru_maxrss is one process's resident peak (what GNU time prints): the tree held at least that.
    spike = max(acc.spike_estimate_bytes, ru_maxrss_bytes or 0)
    lower = max(sampled, spike)
    sampled_at_s = at_s = best.at_s if best else None
    if spike > sampled:
        source = "hwm"
        rss = lower - (best.swap_bytes if best else 0)
        at_s = (
            acc.spike_estimate_at_s if acc.spike_estimate_bytes >= (ru_maxrss_bytes or 0) else None
        )
    else:
        source = "sampling"
        rss = best.rss_bytes if best else 0
    swap = best.swap_bytes if best else 0
    pss = best.pss_bytes if best else None
    total, upper = lower, max(acc.upper_bytes, lower)

    if cgroup is not None and cgroup.total_bytes is not None:
        if escaped_cgroup:
            warnings.append(
                f"{escaped_cgroup} process(es) moved out of the job cgroup: the cgroup peak is a "
                "lower bound, so the larger of it and the sampled peak is reported"
            )
        if escaped_cgroup and lower > cgroup.total_bytes:
            upper = max(upper, lower)
        else:
            total, source, at_s = cgroup.total_bytes, "cgroup", sampled_at_s
            ram = cgroup.ram_bytes if cgroup.ram_bytes is not None else total
            rss, swap = min(ram, total), max(0, total - ram)
            lower = cgroup.total_bytes if cgroup.total_is_exact else (cgroup.ram_bytes or 0)
            upper = total
    elif cgroup is not None and cgroup.ram_bytes is not None:
        warnings.append(
            "the job cgroup does not account swap (cgroup v1 needs swapaccount=1): "
            "swap comes from sampling"
        )
        if cgroup.ram_bytes > lower:
            total, source, rss, swap = cgroup.ram_bytes + swap, "cgroup", cgroup.ram_bytes, swap
            lower, upper = total, max(upper, total)
    return Peak(total, rss, swap, pss, at_s, source), Bounds(lower, max(upper, total)), warnings  # type: ignore[arg-type]
