"""Run one command at several input sizes, each under the true-peak measurement."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .measures import RunSummary
from .run import measure

if TYPE_CHECKING:
    from .model import Measurement

PLACEHOLDER = "{size}"
# A run that died from one of these (or exited 128+N, as a shell script that traps them
# does) was most likely stopped by the user (Ctrl-C, kill, logout): the sweep stops
# there instead of starting the next size.
STOPPING_SIGNALS = {
    getattr(signal, name)  # Windows has neither SIGHUP nor SIGQUIT
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
}


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: the size as typed (it goes into the command) and its summary."""

    size_text: str
    repeat: int
    summary: RunSummary

    @property
    def size(self) -> float:
        return float(self.size_text)

    @property
    def measurement(self) -> Measurement:
        """What the model fits: size, peak, swap suspicion and duration."""
        from .model import Measurement  # numpy: only when a fit is coming

        s = self.summary
        return Measurement(
            self.size, s.peak.total_bytes, s.swap_suspected, s.duration_s, s.peak.source != "cgroup"
        )

    @property
    def ok(self) -> bool:
        return self.summary.exit_status == 0

    @property
    def stopping_signal(self) -> int | None:
        """The signal that stopped this run (and so the sweep), if one did."""
        if self.summary.received_signal in STOPPING_SIGNALS:
            return self.summary.received_signal
        number = self.summary.exit_status - 128
        return number if number in STOPPING_SIGNALS else None


def substitute(command: Sequence[str], size_text: str) -> list[str]:
    """The command with every ``{size}`` replaced by the size as the user typed it."""
    if not any(PLACEHOLDER in arg for arg in command):
        raise UsageError(
            f"the command has no {PLACEHOLDER} to put the size into: "
            f"e.g. memwatch sweep --sizes 1,2,4 -- python job.py --rows {PLACEHOLDER}"
        )
    return [arg.replace(PLACEHOLDER, size_text) for arg in command]


def sweep(
    command: Sequence[str],
    sizes: Sequence[str],
    repeat: int = 1,
    *,
    job: str,
    warmup: bool = True,
    on_run: Callable[[int, int, SweepRun], None] | None = None,
    before_run: Callable[[int, int, str, int], None] | None = None,
    **measure_options: Any,
) -> list[SweepRun]:
    """Measure ``command`` once per size and repetition, smallest size first.

    ``before_run(i, total, size, repeat)`` and ``on_run(i, total, run)`` report progress;
    ``on_run`` is where a caller stores each run as soon as it is measured. A failed run
    is kept (with its exit status) and the sweep goes on; a run stopped by SIGINT, SIGTERM,
    SIGHUP or SIGQUIT ends the sweep.

    ``warmup`` first runs the smallest size once, as run 0 with repeat 0, and does not
    return it: the first run after a while reads the program's libraries from disk, and
    the job cgroup is charged that page cache (60.9 MiB instead of 49.4 MiB for a numpy
    and scipy job here), which would bend the fit at its smallest size.
    """
    substitute(command, "")  # the placeholder check, before anything runs
    ordered = sorted(sizes, key=float)
    total = len(ordered) * repeat
    plan = [(ordered[0], 0)] if warmup else []
    plan += [(s, r) for s in ordered for r in range(1, repeat + 1)]
    runs: list[SweepRun] = []
    for size_text, rep in plan:
        index = len(runs) + (rep > 0)
        if before_run:
            before_run(index, total, size_text, rep)
        summary = measure(
            substitute(command, size_text), job=job, size=float(size_text), **measure_options
        )
        run = SweepRun(size_text, rep, summary)
        if rep > 0:
            runs.append(run)
        if on_run:
            on_run(index, total, run)
        if run.stopping_signal is not None:
            break
    return runs
