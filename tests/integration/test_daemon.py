"""The real `memwatch daemon`: scraped by a real Prometheus, reloaded and stopped by signals.

The daemon, the jobs it watches and Prometheus run as subprocesses on loopback; each is
killed by the ``started`` fixture, also when a test fails. Readiness is polled with
generous deadlines, never assumed after a fixed sleep. Prometheus, promtool and
systemd-analyze are needed where a test uses them: skipped on a laptop without them,
failed under CI=true.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from memwatch.cgroup import memory_mount
from memwatch.errors import ProcessGone
from memwatch.procfs import StatusFiles, read_stat

from .conftest import MEMHOG, MIB, REPO, fetch, free_port, start_server, tool

DEADLINE_S = 90.0
HOG_MIB = 200
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], explain: Callable[[], str]) -> T:
    """Poll ``probe`` until it returns a value; fail naming ``what`` and the logs."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OSError:  # not listening yet, connection reset while restarting
            found = None
        if found is not None:
            return found
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}:\n{explain()}")


def series(text: str, name: str) -> dict[str, float]:
    """Samples called ``name`` by their job label (memtype rss only for the memory family)."""
    return {
        s.labels["job"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("memtype", "rss") == "rss"
    }


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Hog:
    """A memhog holding HOG_MIB, whose command line carries a unique marker."""

    proc: subprocess.Popen[str]
    marker: str


@pytest.fixture
def hog(tmp_path: Path, started: list[subprocess.Popen[str]]) -> Hog:
    marker = f"memhog-{uuid.uuid4().hex[:12]}"
    script = tmp_path / f"{marker}.py"  # the marker is in its command line, nowhere else
    shutil.copy(MEMHOG, script)
    proc = subprocess.Popen(
        [sys.executable, str(script), "hold", str(HOG_MIB), "3600"],
        text=True,
        start_new_session=True,
    )
    started.append(proc)
    wait_for(
        f"the memhog to hold {HOG_MIB} MiB",
        lambda: True if vm_rss_bytes(proc.pid) >= HOG_MIB * MIB else None,
        lambda: f"VmRSS {vm_rss_bytes(proc.pid)} bytes",
    )
    return Hog(proc, marker)


def config_text(history: Path, jobs: dict[str, str] | str) -> str:
    """A daemon config watching ``jobs`` (name -> cmdline regex, or the watch list's YAML),
    sampled every 0.5 s."""
    watch = (
        jobs
        if isinstance(jobs, str)
        else "".join(
            f"  - name: {name}\n    cmdline: {json.dumps(regex)}\n" for name, regex in jobs.items()
        )
    )
    return f"interval: 0.5\nhistory: {json.dumps(str(history))}\nwatch:\n{watch}"


@dataclass
class RunningDaemon:
    proc: subprocess.Popen[str]
    port: int
    config: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def scrape(self) -> str:
        return fetch(self.url)

    def stderr(self) -> str:
        return self.log.read_text()

    def explain(self) -> str:
        status = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"daemon {status}; its stderr:\n{self.stderr()}"

    def wait_scrape(self, what: str, check: Callable[[str], bool]) -> str:
        """Scrape until ``check`` accepts the text (the daemon must stay up meanwhile)."""

        def probe() -> str | None:
            assert self.proc.poll() is None, self.explain()
            text = self.scrape()
            return text if check(text) else None

        return wait_for(what, probe, self.explain)

    def wait_log(self, text: str) -> str:
        return wait_for(
            f"{text!r} on the daemon's stderr",
            lambda: self.stderr() if text in self.stderr() else None,
            self.explain,
        )


@pytest.fixture
def start_daemon(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> Callable[..., RunningDaemon]:
    """start_daemon({job: cmdline regex} or watch YAML, **env) -> a daemon on a loopback port."""

    def start(jobs: dict[str, str] | str, **extra_env: str) -> RunningDaemon:
        config = tmp_path / "memwatch.yaml"
        config.write_text(config_text(tmp_path / "history.sqlite", jobs))
        env = {**os.environ, "MEMWATCH_HISTORY": str(tmp_path / "history.sqlite")}
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)  # never talk to the test runner's own systemd
        env.update(extra_env)
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            port = free_port()
            log = tmp_path / f"daemon{attempt}.log"
            with open(log, "w") as stderr:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "memwatch", "daemon", "--config", str(config)]
                    + ["--port", str(port)],
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    text=True,
                    start_new_session=True,
                )
            started.append(proc)
            daemon = RunningDaemon(proc, port, config, log)

            def ready(daemon: RunningDaemon = daemon) -> bool | None:
                if daemon.proc.poll() is not None:
                    return False
                return True if "memwatch_job_processes" in daemon.scrape() else None

            if wait_for("the daemon to serve /metrics", ready, daemon.explain):
                return daemon
            assert "port already in use" in daemon.stderr(), daemon.explain()
        pytest.fail("no free port could be bound in 3 attempts")

    return start


@pytest.fixture
def prometheus(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> Iterator[Callable[[int], str]]:
    """prometheus(target_port) -> the URL of a real Prometheus scraping it every second."""
    exe = tool("prometheus")

    def start(target_port: int) -> str:
        config = tmp_path / "prometheus.yml"
        # honor_labels: memwatch's `job` label is the watched job, not the scrape job
        # (without it Prometheus renames it to exported_job).
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: memwatch\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        )
        return start_server(
            started,
            lambda port, attempt: [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / f'tsdb{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            tmp_path,
            "prometheus",
        )

    yield start


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant PromQL query through Prometheus' HTTP API."""
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    doc = json.loads(fetch(url))
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


# --- the tests ------------------------------------------------------------------------------


def test_prometheus_scrapes_the_watched_jobs_memory_within_10_percent(
    hog, start_daemon, prometheus
):
    daemon = start_daemon({"hog": hog.marker, "ghost": f"{hog.marker}-nobody-runs-this"})
    url = prometheus(daemon.port)

    def value_of(promql: str) -> float | None:
        result = query(url, promql)
        return float(result[0]["value"][1]) if result else None

    rss = wait_for(
        "Prometheus to return the job's RSS",
        lambda: value_of('memwatch_job_memory_bytes{job="hog",memtype="rss"}'),
        daemon.explain,
    )
    own = vm_rss_bytes(hog.proc.pid)  # what the kernel says of the job itself
    assert abs(rss - own) <= 0.10 * own, (rss, own)
    assert abs(rss - HOG_MIB * MIB) <= 0.10 * HOG_MIB * MIB, (rss / MIB, HOG_MIB)
    assert value_of('memwatch_job_processes{job="hog"}') == 1
    peak = value_of('memwatch_job_peak_memory_bytes{job="hog"}')
    assert peak is not None and peak >= 0.9 * HOG_MIB * MIB
    # A job with no processes is still there, with 0 processes.
    assert value_of('memwatch_job_processes{job="ghost"}') == 0


def test_a_job_with_no_processes_is_exported_with_zero_processes(start_daemon, tmp_path):
    daemon = start_daemon({"ghost": f"no-process-has-this-{uuid.uuid4().hex}"})
    text = daemon.scrape()
    assert series(text, "memwatch_job_processes") == {"ghost": 0.0}
    assert series(text, "memwatch_job_memory_bytes") == {"ghost": 0.0}


def test_promtool_accepts_a_real_scrape_of_the_daemon(hog, start_daemon):
    promtool = tool("promtool")
    daemon = start_daemon({"hog": hog.marker, "ghost": f"{hog.marker}-nobody"})
    text = daemon.wait_scrape(
        "the hog's figures", lambda t: series(t, "memwatch_job_processes").get("hog") == 1
    )
    res = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr


def test_sighup_with_a_broken_config_keeps_serving_and_a_good_one_adds_a_job(hog, start_daemon):
    daemon = start_daemon({"hog": hog.marker})
    daemon.wait_scrape("the hog", lambda t: series(t, "memwatch_job_processes").get("hog") == 1)
    good = daemon.config.read_text()

    daemon.config.write_text(good + "    interval: -1\n")  # the hog entry's interval
    daemon.proc.send_signal(signal.SIGHUP)
    log = daemon.wait_log("reload failed")
    assert f"{daemon.config}:6: watch[0].interval: must be > 0 (got -1)" in log
    assert daemon.proc.poll() is None
    text = daemon.scrape()  # still serving the old config
    assert series(text, "memwatch_job_processes") == {"hog": 1.0}

    second = f"{hog.marker}-second"
    daemon.config.write_text(
        config_text(daemon.config.parent / "history.sqlite", {"hog": hog.marker, "new": second})
    )
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("reloaded: ")
    text = daemon.wait_scrape("the new job", lambda t: "new" in series(t, "memwatch_job_processes"))
    assert series(text, "memwatch_job_processes") == {"hog": 1.0, "new": 0.0}
    assert "Traceback" not in daemon.stderr()


def test_sigterm_stops_the_daemon_cleanly_with_status_0(start_daemon):
    daemon = start_daemon({"ghost": f"nobody-{uuid.uuid4().hex}"})
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=DEADLINE_S) == 0, daemon.explain()
    log = daemon.stderr()
    assert "SIGTERM received: stopping" in log and log.rstrip().endswith("memwatch: stopped")
    with pytest.raises(OSError):
        daemon.scrape()  # the port is closed


def test_the_daemon_speaks_sd_notify_to_the_socket_systemd_names(start_daemon, tmp_path):
    # What systemd sees of a Type=notify service with WatchdogSec=, without systemd: the
    # datagrams on $NOTIFY_SOCKET (an abstract socket, as systemd >= 246 may pass).
    name = f"memwatch-test-notify-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(DEADLINE_S)
        daemon = start_daemon(
            {"ghost": f"nobody-{uuid.uuid4().hex}"},
            NOTIFY_SOCKET="@" + name,
            WATCHDOG_USEC="400000",  # a ping every 0.2 s
        )

        def until(state: str) -> list[str]:
            seen = []
            while not seen or seen[-1].split("\n")[0] != state:
                seen.append(listener.recv(4096).decode())
            return seen

        assert until("READY=1") == ["READY=1"]  # the first word: pings come from the loop
        until("WATCHDOG=1")
        daemon.proc.send_signal(signal.SIGHUP)
        reload = until("RELOADING=1")[-1]
        assert reload.startswith("RELOADING=1\nMONOTONIC_USEC=")
        until("READY=1")
        daemon.proc.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        assert daemon.proc.wait(timeout=DEADLINE_S) == 0, daemon.explain()


def test_a_bad_config_at_start_prints_every_problem_and_exits_1(tmp_path):
    config = tmp_path / "memwatch.yaml"
    config.write_text("port: 70000\nwatch:\n  - name: x\n    pid: 0\n")
    res = subprocess.run(
        [sys.executable, "-m", "memwatch", "daemon", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert lines[0].startswith(f"{config}:1: port: ")
    assert lines[1].startswith(f"{config}:4: watch[0].pid: ")
    assert lines[2] == f"memwatch: error: 2 problem(s) in {config}; nothing started"


# --- real /proc ------------------------------------------------------------------------------


def test_a_kept_status_file_stays_bound_to_its_process(started):
    # Once the process is reaped its pid may be reused at any time: the kept file must not
    # read the newcomer. The kernel answers ESRCH, which is ProcessGone.
    proc = subprocess.Popen(["sleep", "3600"], text=True, start_new_session=True)
    started.append(proc)
    files = StatusFiles()
    start = read_stat(proc.pid)[1]
    mem, name, ppid = files.read(proc.pid, start)
    assert (mem.pid, name, ppid) == (proc.pid, b"Name:\tsleep", os.getpid())
    proc.kill()
    proc.wait()
    with pytest.raises(ProcessGone):
        files.read(proc.pid, start)
    assert len(files) == 0


def test_the_daemon_raises_its_open_file_limit_within_the_hard_limit():
    script = (
        "import resource; from memwatch.daemon import raise_fd_limit; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096)); raise_fd_limit(); "
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert res.stdout.split() == ["4096", "4096"]


# --- the shipped systemd unit ---------------------------------------------------------------

UNIT = REPO / "systemd" / "memwatch.service"
EXEC_START = "/usr/local/bin/memwatch"


def test_the_shipped_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = tool("systemd-analyze")
    text = UNIT.read_text()
    assert f"ExecStart={EXEC_START} daemon --config /etc/memwatch/memwatch.yaml" in text
    # verify insists that ExecStart's binary exists: where memwatch is not installed
    # there, check a copy naming a stand-in executable; every other line is the shipped one.
    if not os.access(EXEC_START, os.X_OK):
        stand_in = tmp_path / "memwatch"
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
        text = text.replace(f"ExecStart={EXEC_START} ", f"ExecStart={stand_in} ")
    unit = tmp_path / "memwatch.service"
    unit.write_text(text)
    res = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0 and not res.stderr.strip(), res.stdout + res.stderr


# --- peaks: honest for processes, the kernel's for cgroups -------------------------------------

# Reaches PEAK MiB, frees it (RSS drops), then holds HOLD MiB and says so in READY.
PEAKED_BEFORE = r"""
import sys, time
peak, hold, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
buf = bytearray(b"\x01") * (peak << 20)
del buf
kept = bytearray(b"\x01") * (hold << 20)
open(ready, "w").close()
time.sleep(3600)
"""

# Holds 20 MiB; once GO exists, spikes to SPIKE MiB for a moment and holds 20 MiB again.
SPIKE_ON_GO = r"""
import os, sys, time
spike, go = int(sys.argv[1]), sys.argv[2]
kept = bytearray(b"\x01") * (20 << 20)
while not os.path.exists(go):
    time.sleep(0.05)
extra = bytearray(b"\x01") * (spike << 20)
del extra
time.sleep(3600)
"""


def passes(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "memwatch_samples_total"
    )


def help_of(text: str, name: str) -> str:
    [family] = [f for f in text_string_to_metric_families(text) if f.name == name]
    return family.documentation


def test_a_peak_reached_before_the_daemon_looked_is_not_its_peak(start_daemon, started, tmp_path):
    marker = f"peaked-{uuid.uuid4().hex[:12]}"
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", PEAKED_BEFORE, "600", "50", str(ready), marker],
        start_new_session=True,
    )
    started.append(proc)
    wait_for("the process to drop to 50 MiB", lambda: ready.exists() or None, lambda: "")
    daemon = start_daemon({"peaked": marker})
    text = daemon.wait_scrape("three passes over the process", lambda t: passes(t) >= 3)
    peak = series(text, "memwatch_job_peak_memory_bytes")["peaked"]
    rss = series(text, "memwatch_job_memory_bytes")["peaked"]
    assert 50 * MIB <= peak <= rss * 1.1, (peak / MIB, rss / MIB)  # near 50 MiB, not 600
    assert series(text, "memwatch_job_process_hwm_bytes")["peaked"] >= 600 * MIB
    assert "before memwatch started watching" in help_of(text, "memwatch_job_process_hwm_bytes")
    assert "before memwatch looked are not in it" in help_of(text, "memwatch_job_peak_memory_bytes")


def test_a_unit_style_cgroups_exported_peak_is_the_kernels(
    start_daemon, make_cgroup, started, tmp_path
):
    cgroup = make_cgroup()
    _, mount = memory_mount()
    as_in_proc = "/" + os.path.relpath(cgroup.path, mount)  # as /proc/PID/cgroup names it
    go = tmp_path / "go"
    proc = subprocess.Popen(
        ["sh", "-c", f'echo $$ > {cgroup.procs} && exec "$@"', "sh"]
        + [sys.executable, "-c", SPIKE_ON_GO, "200", str(go)],
        start_new_session=True,
    )
    started.append(proc)
    daemon = start_daemon(f"  - name: unit\n    cgroup: {json.dumps(as_in_proc)}\n")
    daemon.wait_scrape(
        "the daemon to see the cgroup's process",
        lambda t: series(t, "memwatch_job_processes").get("unit") == 1,
    )
    go.touch()
    kernel = cgroup.truth_bytes  # memsw.max_usage_in_bytes, once the spike is over

    def settled() -> float | None:
        nonlocal kernel
        kernel = cgroup.truth_bytes
        exported = series(daemon.scrape(), "memwatch_job_peak_memory_bytes").get("unit")
        return exported if exported == kernel and kernel >= 200 * MIB else None

    assert wait_for("the kernel's peak to be exported", settled, daemon.explain) == kernel
    assert "memwatch_job_process_hwm_bytes{" not in daemon.scrape()  # no process was read


def test_recommendations_are_fitted_in_a_child_process_without_numpy_in_the_daemon(
    start_daemon, tmp_path
):
    from memwatch.history import History
    from memwatch.measures import Bounds, Peak, RunSummary

    history = History(str(tmp_path / "history.sqlite"))  # the daemon's (start_daemon's) own
    for size in (1000.0, 2000.0, 3000.0, 4000.0):
        peak = Peak(int(size * 100_000), int(size * 100_000), 0, None, 1.0, "cgroup")
        summary = RunSummary(
            ("job",), 0, None, False, 1.0, 0.1, 10, peak, Bounds(1, 2), None, False
        )
        history.record(dataclasses.replace(summary, size=size), "fitted")
    watch = "  - name: fitted\n    cmdline: 'no-process-has-this-{}'\n    sizes: [8000]\n"
    daemon = start_daemon(watch.format(uuid.uuid4().hex))
    text = daemon.wait_scrape(
        "the recommendation", lambda t: "memwatch_job_recommended_memory_bytes{" in t
    )
    recommended = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "memwatch_job_recommended_memory_bytes"
    ]
    assert recommended and recommended[0] >= 8000 * 100_000
    assert "numpy" not in Path(f"/proc/{daemon.proc.pid}/maps").read_text()
