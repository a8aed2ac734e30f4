"""Swap suspicion: resident memory that stops growing while swap keeps growing. Pure, no I/O.

When a job outgrows the RAM it may use (a cgroup limit, or a full machine), the kernel
pushes its older pages to swap: VmRSS flattens at the limit while VmSwap, and the
system's pswpout counter, climb. Every RSS-only tool then reports the limit as the peak.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .measures import Plateau, Sample

MIB = 1 << 20


class PlateauDetector:
    """Feed samples in time order; ``finish()`` returns the plateaus found.

    Streaming with O(1) state, so a day-long job at 10 Hz costs no memory.
    A window is a run of consecutive samples whose RSS stays within ``tolerance``
    (the larger of ``min_tolerance_bytes`` and ``rel_tolerance`` of its RSS). It is a
    plateau when it spans at least ``min_samples`` samples and, over it, the tree's own
    swap grew by ``min_swap_growth_bytes``, or the system's swap-out did while the tree
    had pages in swap (or while the tree's swap is unknown: a platform without
    per-process swap leaves only the system's counter to go by).
    """

    def __init__(
        self,
        *,
        rel_tolerance: float = 0.03,
        min_tolerance_bytes: int = 4 * MIB,
        min_samples: int = 4,
        min_swap_growth_bytes: int = 4 * MIB,
    ) -> None:
        self._rel = rel_tolerance
        self._min_tol = min_tolerance_bytes
        self._min_samples = min_samples
        self._min_growth = min_swap_growth_bytes
        self._first: Sample | None = None
        self._last: Sample | None = None
        self._count = 0
        self._rss_min = self._rss_max = 0
        self._found: list[Plateau] = []
        self._open_plateau_first: Sample | None = None  # first sample of the last plateau

    def _tolerance(self, rss: int) -> int:
        return max(self._min_tol, int(rss * self._rel))

    def feed(self, sample: Sample) -> None:
        if self._first is not None:
            lo = min(self._rss_min, sample.rss_bytes)
            hi = max(self._rss_max, sample.rss_bytes)
            if hi - lo <= self._tolerance(hi):
                self._rss_min, self._rss_max = lo, hi
                self._last = sample
                self._count += 1
                return
            self._close()
        self._first = self._last = sample
        self._count = 1
        self._rss_min = self._rss_max = sample.rss_bytes

    def _close(self) -> None:
        first, last = self._first, self._last
        if first is None or last is None or self._count < self._min_samples:
            return  # too short to judge; a one-sample blip does not end a plateau either
        before = self._open_plateau_first
        self._open_plateau_first = None
        if self._rss_max == 0 or not self._swapping(first, last):
            return
        # Windows are contiguous: RSS wobbling just past the tolerance while it still hugs
        # the same limit splits one plateau in two. Join them back, measuring growth over
        # the whole joined range.
        if before is not None:
            joined = self._found[-1]
            if abs(joined.rss_bytes - self._rss_max) <= 2 * self._tolerance(self._rss_max):
                self._found.pop()
                self._rss_max = max(self._rss_max, joined.rss_bytes)
                first = before
        self._found.append(
            Plateau(
                first.at_s,
                last.at_s,
                self._rss_max,
                _tree_growth(first, last),
                _system_growth(first, last),
            )
        )
        self._open_plateau_first = first

    def _swapping(self, first: Sample, last: Sample) -> bool:
        tree = (_tree_growth(first, last) or 0) >= self._min_growth
        in_swap = last.swap_bytes is None or last.swap_bytes > 0
        system = _system_growth(first, last) >= self._min_growth and in_swap
        return tree or system

    def finish(self) -> list[Plateau]:
        """Close the open window and return every plateau, in time order."""
        self._close()
        self._first = self._last = None
        return list(self._found)


RECENT_SAMPLES = 12  # the live flag's window: the last 12 passes (12 s at 1 s)


def swapping_recently(
    samples: Sequence[Sample],
    *,
    rel_tolerance: float = 0.03,
    min_tolerance_bytes: int = 4 * MIB,
    min_samples: int = 4,
    min_swap_growth_bytes: int = 4 * MIB,
) -> bool:
    """The live flag of a watcher: over the recent samples, RSS flat while swap grew.

    Judged on a sliding window, not on the whole flat stretch: a steady service's RSS
    stays flat for days, and growth of its swap (or of the machine's swap-out) since the
    start of that stretch would keep the flag up long after swapping stopped. The tree's
    own swap decides; the machine's swap-out only where per-process swap is unknown.
    """
    # The flat stretch at the end of the window: RSS within tolerance back from the last.
    flat: list[Sample] = []
    low = high = samples[-1].rss_bytes if samples else 0
    for s in reversed(samples):
        low, high = min(low, s.rss_bytes), max(high, s.rss_bytes)
        if high - low > max(min_tolerance_bytes, int(high * rel_tolerance)):
            break
        flat.append(s)
    if len(flat) < min_samples or high == 0:
        return False
    first, last = flat[-1], flat[0]
    growth = _tree_growth(first, last)
    if growth is None:
        growth = _system_growth(first, last)
    return growth >= min_swap_growth_bytes


def _tree_growth(first: Sample, last: Sample) -> int | None:
    if first.swap_bytes is None or last.swap_bytes is None:
        return None
    return last.swap_bytes - first.swap_bytes


def _system_growth(first: Sample, last: Sample) -> int:
    if first.system_swapout_bytes is None or last.system_swapout_bytes is None:
        return 0
    return last.system_swapout_bytes - first.system_swapout_bytes


def detect_plateaus(samples: Iterable[Sample], **params: int | float) -> list[Plateau]:
    """Run the detector over a whole series (convenience for tests and offline analysis)."""
    detector = PlateauDetector(**params)  # type: ignore[arg-type]
    for sample in samples:
        detector.feed(sample)
    return detector.finish()
