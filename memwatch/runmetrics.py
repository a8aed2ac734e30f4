"""A finished run's result as Prometheus metrics: `memwatch run --pushgateway / --textfile`.

Per the Prometheus batch-job conventions: one gauge per figure, the only label ``job``
(see ``exporter`` on ``honor_labels``).
"""

from __future__ import annotations

import os
import time
import urllib.error
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .errors import OutputError
from .measures import RunSummary
from .report import valid_utf8

PUSH_TIMEOUT_S = 10.0


def run_job_name(job: str | None, command: Sequence[str]) -> str:
    """The job label of a run: its --job, else the command's basename; valid UTF-8."""
    if job:
        return valid_utf8(job)
    return valid_utf8(os.path.basename(command[0])) if command else "memwatch"


def run_metrics(summary: RunSummary, job: str, completed_at_unix_s: float) -> list[Metric]:
    """The final result of one wrapped run, per the Prometheus batch-job conventions."""

    def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"memwatch_run_{name}", documentation, labels=["job"])
        family.add_metric([job], value)
        return family

    p = summary.peak
    families: list[Metric] = [
        gauge(
            "peak_memory_bytes",
            "True peak of the run: RAM + swap of its whole process tree at its peak.",
            p.total_bytes,
        ),
        gauge("peak_rss_bytes", "Resident part of the run's peak.", p.rss_bytes),
    ]
    if p.swap_bytes is not None:
        families.append(
            gauge("peak_swap_bytes", "Swapped-out part of the run's peak.", p.swap_bytes)
        )
    families += [
        gauge("duration_seconds", "Wall-clock duration of the run.", summary.duration_s),
        gauge(
            "exit_status",
            "Exit status of the run: the command's own code, 128+N after signal N.",
            summary.exit_status,
        ),
        gauge(
            "swap_suspected",
            "1 when the run was suspected of swapping (resident memory flat while swap "
            "grew), else 0.",
            int(summary.swap_suspected),
        ),
        gauge(
            "oom_killed", "1 when the OOM killer killed the run, else 0.", int(summary.oom_killed)
        ),
        gauge(
            "last_completion_timestamp_seconds",
            "Unix time at which the run completed (successfully or not).",
            completed_at_unix_s,
        ),
    ]
    if summary.size is not None:
        families.append(gauge("input_size", "Input size of the run (unitless).", summary.size))
    return families


class _StaticCollector:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def run_registry(
    summary: RunSummary, job: str | None = None, completed_at_unix_s: float | None = None
) -> CollectorRegistry:
    """A private registry holding the run's final result (``job`` defaults to run_job_name)."""
    registry = CollectorRegistry()
    when = time.time() if completed_at_unix_s is None else completed_at_unix_s
    name = job or run_job_name(summary.job, summary.command)
    registry.register(_StaticCollector(run_metrics(summary, name, when)))
    return registry


def write_run_textfile(summary: RunSummary, path: str, job: str | None = None) -> None:
    """Write the run's result for node_exporter's textfile collector, atomically.

    The temporary file sits next to ``path`` (same filesystem, so the rename is atomic)
    and does not end in .prom, so the collector never reads it half-written.
    """
    target = os.path.realpath(path)  # a symlink stays a link; its target is replaced
    try:
        write_to_textfile(target, run_registry(summary, job))
    except OSError as err:
        raise OutputError(f"cannot write --textfile {path}: {err.strerror or err}") from err


def push_run(
    summary: RunSummary, url: str, job: str | None = None, timeout_s: float = PUSH_TIMEOUT_S
) -> None:
    """Push the run's result to a Pushgateway, grouping key job=<job> (replaces the group)."""
    name = job or run_job_name(summary.job, summary.command)
    try:
        push_to_gateway(url, job=name, registry=run_registry(summary, name), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace").strip().splitlines()
        reason = f"HTTP {err.code} {err.reason}" + (f": {detail[0]}" if detail else "")
        raise OutputError(f"cannot push to --pushgateway {url}: {reason}") from err
    except urllib.error.URLError as err:
        raise OutputError(f"cannot push to --pushgateway {url}: {err.reason}") from err
    except (OSError, ValueError) as err:  # timeouts, resets, a URL urllib cannot use
        raise OutputError(f"cannot push to --pushgateway {url}: {err}") from err


def pushgateway_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Pushgateway address, or None if it can."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        return f"not a usable URL: {url} ({err})"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL (got {url})"
    if parts.username is not None or parts.password is not None:
        # Never echoed: the URL would carry a password into logs and error messages.
        return (
            "must not carry a user or password (user:pass@host); put the Pushgateway "
            "behind a proxy on loopback, or use --textfile"
        )
    if not parts.hostname:
        return f"no host in {url}"
    return None
