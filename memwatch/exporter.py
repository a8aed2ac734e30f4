"""Prometheus metrics: a Collector over immutable snapshots and its metric families.

A scrape never walks /proc: the sampler publishes an immutable :class:`Snapshot` and the
collector turns the latest one into metric families, built fresh on every scrape. Names
start with ``memwatch_`` and end in their base unit; the only labels are ``job``,
``memtype`` and ``size`` (and ``version`` on the build info): never pids or command
lines, whose values are unbounded. ``metrics_server`` serves them; ``runmetrics`` pushes
or writes a finished run's result.

Note for scrape configs: ``job`` here is memwatch's job, not Prometheus's scrape job.
Scrape memwatch (and a Pushgateway or node_exporter carrying its results) with
``honor_labels: true``, or Prometheus renames the label to ``exported_job``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__
from .measures import JobSnapshot, Sample, Snapshot
from .plateau import RECENT_SAMPLES, swapping_recently

# --- the live collector ---------------------------------------------------------------------


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _counter(name: str, documentation: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=[])


_Family = GaugeMetricFamily | CounterMetricFamily


def _families() -> dict[str, _Family]:
    """Every family the collector exports, empty; keyed by short name."""
    return {
        "memory": _gauge(
            "memwatch_job_memory_bytes",
            "Memory the job's processes use now, summed over its process tree: "
            "memtype rss (resident), swap (swapped out) or pss (proportional set size, "
            "shared pages split among sharers; only when sampled with PSS). For a job "
            "watched by cgroup or systemd_unit alone, the cgroup's own totals: rss is the RAM "
            "charged to it, page cache included.",
            ("job", "memtype"),
        ),
        "processes": _gauge(
            "memwatch_job_processes",
            "Number of processes of the job at the last sampling pass (0: none running).",
            ("job",),
        ),
        "peak": _gauge(
            "memwatch_job_peak_memory_bytes",
            "Largest RAM + swap total the job held at one moment since its processes appeared "
            "(or memwatch started): a sampled total, one process's high-water mark reached "
            "while watched, or the cgroup's kernel peak reached while watched. Marks reached "
            "before memwatch looked are not in it (see memwatch_job_process_hwm_bytes).",
            ("job",),
        ),
        "process_hwm": _gauge(
            "memwatch_job_process_hwm_bytes",
            "Largest resident high-water mark (VmHWM) of any one process of the job since its "
            "processes appeared. The kernel keeps the mark from the process's start, so it "
            "may have been reached before memwatch started watching; one process's figure, "
            "not a total of the job. Absent for jobs watched by cgroup or systemd_unit alone.",
            ("job",),
        ),
        "peak_at": _gauge(
            "memwatch_job_peak_timestamp_seconds",
            "Unix time of the sampling pass that saw memwatch_job_peak_memory_bytes, so a "
            "peak between two scrapes is not lost.",
            ("job",),
        ),
        "swap_suspected": _gauge(
            "memwatch_job_swap_suspected",
            "1 when the job is suspected of swapping (resident memory flat while swap grows), "
            "else 0.",
            ("job",),
        ),
        "unreadable": _gauge(
            "memwatch_job_unreadable_processes",
            "Processes of the job whose memory the kernel refused to show (permission "
            "denied); their memory is missing from the other figures.",
            ("job",),
        ),
        "size": _gauge(
            "memwatch_job_input_size",
            "Input size of the job, read from its command line (unitless).",
            ("job",),
        ),
        "recommended": _gauge(
            "memwatch_job_recommended_memory_bytes",
            "Memory to provision for the job at an input size, from the model fitted to "
            "its recorded runs (the best fit widened by its own forward misses, plus margin).",
            ("job", "size"),
        ),
        "duration": _gauge(
            "memwatch_sample_duration_seconds",
            "How long the last full sampling pass over every watched process took.",
        ),
        "passes": _counter("memwatch_samples_total", "Sampling passes over the watched processes."),
        "read_errors": _counter(
            "memwatch_read_errors_total",
            "Process reads that failed with permission denied, cumulative.",
        ),
        "last_sample": _gauge(
            "memwatch_last_sample_timestamp_seconds",
            "Unix time of the last sampling pass (the snapshot this scrape shows).",
        ),
        "build_info": _gauge(
            "memwatch_build_info",
            "Always 1; the version label names the memwatch version serving these metrics.",
            ("version",),
        ),
    }


class SnapshotCollector:
    """A prometheus_client Collector over the latest immutable Snapshot; never touches /proc.

    ``get_snapshot`` returns the sampler's latest snapshot (None before the first pass,
    when only the build info is exported). Job names must be unique within a snapshot.
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot | None]) -> None:
        self._get_snapshot = get_snapshot

    def describe(self) -> Iterable[Metric]:
        """The families collect() yields, without samples (so registering never scrapes)."""
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        """Build every family fresh from the snapshot at hand."""
        f = _families()
        f["build_info"].add_metric([__version__], 1)
        snap = self._get_snapshot()
        if snap is None:
            return [f["build_info"]]
        for job in snap.jobs:
            _add_job(f, job)
        f["duration"].add_metric([], snap.pass_duration_s)
        f["passes"].add_metric([], snap.passes_total)
        f["read_errors"].add_metric([], snap.read_errors_total)
        f["last_sample"].add_metric([], snap.taken_at_unix_s)
        return list(f.values())


def _add_job(f: dict[str, _Family], j: JobSnapshot) -> None:
    name = j.job
    f["memory"].add_metric([name, "rss"], j.rss_bytes)
    f["memory"].add_metric([name, "swap"], j.swap_bytes)
    if j.pss_bytes is not None:
        f["memory"].add_metric([name, "pss"], j.pss_bytes)
    f["processes"].add_metric([name], j.processes)
    f["peak"].add_metric([name], j.peak_total_bytes)
    if j.process_hwm_bytes is not None:
        f["process_hwm"].add_metric([name], j.process_hwm_bytes)
    if j.peak_at_unix_s is not None:
        f["peak_at"].add_metric([name], j.peak_at_unix_s)
    f["swap_suspected"].add_metric([name], int(j.swap_suspected))
    f["unreadable"].add_metric([name], j.unreadable_processes)
    if j.observed_size is not None:
        f["size"].add_metric([name], j.observed_size)
    for size, recommended in j.recommended_bytes:
        f["recommended"].add_metric([name, size], recommended)


def make_registry(get_snapshot: Callable[[], Snapshot | None]) -> CollectorRegistry:
    """A private registry holding only a SnapshotCollector (no process/platform collectors)."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(get_snapshot))
    return registry


class LiveRun:
    """Turns the samples of one wrapped run into Snapshots: ``measure(on_sample=live)``.

    Called from the sampler thread; ``snapshot()`` is read from scrape threads. Each call
    publishes a new immutable Snapshot (one reference assignment), so no lock is needed.
    """

    def __init__(
        self,
        job: str,
        interval_s: float,
        *,
        size: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job = job
        self.interval_s = interval_s
        self.size = size
        self._clock = clock
        self._epoch: float | None = None  # unix time of the command's start (at_s = 0)
        self._passes = 0
        self._peak: Sample | None = None
        self._recent: deque[Sample] = deque(maxlen=RECENT_SAMPLES)
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot; None before the first sample."""
        return self._snapshot

    def __call__(self, sample: Sample) -> None:
        now = self._clock()
        if self._epoch is None:
            self._epoch = now - sample.at_s
        self._passes += 1
        if self._peak is None or sample.total_bytes > self._peak.total_bytes:
            self._peak = sample
        self._recent.append(sample)
        job = JobSnapshot(
            job=self.job,
            processes=sample.processes,
            rss_bytes=sample.rss_bytes,
            swap_bytes=sample.swap_bytes or 0,  # None: the platform reports no swap
            pss_bytes=sample.pss_bytes,
            peak_total_bytes=self._peak.total_bytes,
            peak_at_unix_s=self._epoch + self._peak.at_s,
            # Now, as the daemon exports it; the run's summary covers the whole run.
            swap_suspected=swapping_recently(self._recent),
            unreadable_processes=0,  # not in a Sample; the final summary counts them
            observed_size=self.size,
        )
        self._snapshot = Snapshot(
            taken_at_unix_s=self._epoch + sample.at_s,
            jobs=(job,),
            pass_duration_s=self._pass_duration(sample.at_s),
            passes_total=self._passes,
            read_errors_total=0,
        )

    def _pass_duration(self, at_s: float) -> float:
        # A Sample carries when its pass ended, not how long it took. The run's sampler
        # starts every pass on the schedule t0 + k*interval, so the time past the last slot
        # is the pass's duration (plus the thread's wake-up latency), as long as it fits
        # in one interval.
        slots = math.floor(at_s / self.interval_s + 1e-9)
        return min(self.interval_s, max(0.0, at_s - slots * self.interval_s))


def fan_out_samples(
    *callbacks: Callable[[Sample], None] | None,
) -> Callable[[Sample], None] | None:
    """One on_sample callback calling each given one in turn (None when none is given)."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]

    def fan_out(sample: Sample) -> None:
        for callback in given:
            callback(sample)

    return fan_out


__all__ = [
    "LiveRun",
    "SnapshotCollector",
    "fan_out_samples",
    "make_registry",
]
