"""Swap suspicion: resident memory that stops growing while swap keeps growing. Pure, no I/O.

When a job outgrows the RAM it may use (a cgroup limit, or a full machine), the kernel
pushes its older pages to swap: VmRSS flattens at the limit while VmSwap, and the
system's pswpout counter, climb. Every RSS-only tool then reports the limit as the peak.
"""

from __future__ import annotations

from collections.abc import Iterable

from .types import Plateau, Sample

MIB = 1 << 20


class PlateauDetector:
    """Feed samples in time order; ``finish()`` returns the plateaus found.

    Streaming with O(1) state, so a day-long job at 10 Hz costs no memory.
    A window is a run of consecutive samples whose RSS stays within ``tolerance``
    (the larger of ``min_tolerance_bytes`` and ``rel_tolerance`` of its RSS). It is a
    plateau when it spans at least ``min_samples`` samples and, over it, the tree's own
    swap grew by ``min_swap_growth_bytes``, or the system's swap-out did while the tree
    had pages in swap.
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
        self._previous_window_was_plateau = False

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
        was_plateau, self._previous_window_was_plateau = self._previous_window_was_plateau, False
        first, last = self._first, self._last
        if first is None or last is None or self._count < self._min_samples:
            return
        if self._rss_max == 0:
            return
        growth = last.swap_bytes - first.swap_bytes
        system = 0
        if first.system_swapout_bytes is not None and last.system_swapout_bytes is not None:
            system = last.system_swapout_bytes - first.system_swapout_bytes
        tree_swapping = growth >= self._min_growth
        system_swapping = system >= self._min_growth and last.swap_bytes > 0
        if not (tree_swapping or system_swapping):
            return
        plateau = Plateau(first.at_s, last.at_s, self._rss_max, growth, system)
        before = self._found[-1] if was_plateau else None
        # Windows are contiguous: RSS wobbling just past the tolerance while it still hugs
        # the same limit splits one plateau in two. Join them back.
        if before and abs(before.rss_bytes - plateau.rss_bytes) <= 2 * self._tolerance(
            plateau.rss_bytes
        ):
            plateau = Plateau(
                before.start_s,
                plateau.end_s,
                max(before.rss_bytes, plateau.rss_bytes),
                before.swap_growth_bytes + plateau.swap_growth_bytes,
                before.system_swapout_bytes + plateau.system_swapout_bytes,
            )
            self._found.pop()
        self._found.append(plateau)
        self._previous_window_was_plateau = True

    def finish(self) -> list[Plateau]:
        """Close the open window and return every plateau, in time order."""
        self._close()
        self._first = self._last = None
        return list(self._found)


def detect_plateaus(samples: Iterable[Sample], **params: int | float) -> list[Plateau]:
    """Run the detector over a whole series (convenience for tests and offline analysis)."""
    detector = PlateauDetector(**params)  # type: ignore[arg-type]
    for sample in samples:
        detector.feed(sample)
    return detector.finish()
