"""The real `memwatch` command: exit statuses, signals, output files and bad input."""

from __future__ import annotations

import csv
import ctypes
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memwatch import RunSummary, measure, run

from .conftest import MIB, REPO, memhog


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code_of_the_command_is_kept(code, memwatch, backend):
    result = memwatch(["--no-cgroup", "--backend", backend], memhog("exit", code))
    assert result.returncode == code
    assert result.summary["exit_code"] == code
    assert result.summary["signal"] is None
    assert result.summary["backend"] == backend


def test_command_not_found_exits_127(memwatch, backend):
    result = memwatch(["--backend", backend], ["memwatch-no-such-command"])
    assert result.returncode == 127
    assert "memwatch-no-such-command: command not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_not_executable_exits_126(memwatch, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = memwatch([], [str(script)])
    assert result.returncode == 126
    assert "cannot execute" in result.stderr
    assert "Traceback" not in result.stderr


def test_death_by_signal_exits_128_plus_n(memwatch, backend):
    job = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    result = memwatch(["--no-cgroup", "--backend", backend], job)
    assert result.returncode == 128 + signal.SIGKILL
    assert result.summary["signal"] == signal.SIGKILL
    assert result.summary["exit_code"] is None
    assert result.summary["oom_killed"] is False


def test_stdin_and_stdout_pass_through_unchanged():
    proc = subprocess.run(
        [sys.executable, "-m", "memwatch", "--no-cgroup", "-q", "--", "tr", "a-z", "A-Z"],
        input="hello\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stdout == "HELLO\n"
    assert proc.stderr == ""


def _start(args: list[str], job: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "memwatch", *args, "--", *job],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


TRAP_JOB = [
    sys.executable,
    "-c",
    "import signal, sys, time\n"
    "for s in (signal.SIGTERM, signal.SIGHUP):\n"
    "    signal.signal(s, lambda n, f: sys.exit(40 + n))\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n",
]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_memwatch_is_forwarded_and_summary_written(sig, started, tmp_path):
    out = tmp_path / "s.json"
    proc = _start(["--no-cgroup", "--json", str(out)], TRAP_JOB, tmp_path)
    started.append(proc)
    assert proc.stdout.readline() == "ready\n"
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 40 + sig, stderr
    assert json.loads(out.read_text())["exit_code"] == 40 + sig


def test_interrupt_of_the_whole_group_ends_job_before_memwatch(started, tmp_path):
    # Ctrl-C reaches every process of the foreground group: memwatch must outlive the job,
    # write the summary and pass on the job's status (Python exits 128+SIGINT).
    out = tmp_path / "s.json"
    job = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"]
    proc = _start(["--no-cgroup", "--json", str(out)], job, tmp_path)
    started.append(proc)
    assert proc.stdout.readline() == "ready\n"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert json.loads(out.read_text())["signal"] == signal.SIGINT
    assert "Traceback (most recent call last)" not in stderr.split("KeyboardInterrupt")[-1]


def _totals(text: str, suffix: str) -> list[int]:
    text = text[: text.rfind("\n") + 1]  # a line being written right now is not read
    if suffix == ".csv":
        return [int(row["total_bytes"]) for row in csv.DictReader(text.splitlines())]
    return [json.loads(line)["total_bytes"] for line in text.splitlines()]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_samples_file_is_valid_after_memwatch_is_killed(suffix, started, tmp_path):
    path = tmp_path / f"samples{suffix}"
    job = memhog("hold", 50, 120)
    proc = _start(["--no-cgroup", "--interval", "0.02", "--samples", str(path)], job, tmp_path)
    started.append(proc)
    # Kill memwatch only once the file shows the job holding its 50 MiB.
    while not path.exists() or max(_totals(path.read_text(), suffix), default=0) < 50 * MIB:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    text = path.read_text()
    assert text.endswith("\n")
    totals = _totals(text, suffix)  # every line parses: no half-written record
    assert len(totals) >= 2
    assert max(totals) >= 50 * MIB


def _is_subreaper() -> bool:
    flag = ctypes.c_int()
    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    return bool(flag.value)


def test_python_api_measures_a_command_and_leaves_the_caller_as_it_was(backend):
    assert not _is_subreaper()
    summary = measure(
        memhog("hold", 100, 0.3), interval_s=0.02, use_cgroup=False, job="demo", backend=backend
    )
    assert isinstance(summary, RunSummary)
    assert summary.backend == backend
    assert summary.exit_status == 0
    assert summary.job == "demo"
    assert summary.peak.source in ("sampling", "hwm")
    assert summary.peak.total_bytes >= 100 * MIB
    upper = summary.bounds.upper_bytes  # unknown without high-water marks (psutil on Linux)
    assert upper is None if backend == "psutil" else summary.peak.total_bytes <= upper
    assert not _is_subreaper()


def test_without_linux_facilities_a_run_degrades_and_says_what_is_missing(monkeypatch):
    # What macOS lacks: prctl (no subreaper), cgroups, sigtimedwait, and waitid before
    # Python 3.13. memwatch then samples through psutil, forwards no signals and reaps the
    # job as soon as it ends; the figures it has are still right.
    monkeypatch.setattr(run, "LINUX", False)
    monkeypatch.delattr(os, "waitid")
    monkeypatch.delattr(signal, "sigtimedwait")
    summary = measure(
        memhog("children", 2, 100, 1), interval_s=0.05, backend="psutil", forward_signals=True
    )
    assert (summary.exit_status, summary.backend) == (0, "psutil")
    assert summary.peak.total_bytes >= 200 * MIB
    assert summary.ru_maxrss_bytes is not None and summary.ru_maxrss_bytes >= 100 * MIB
    warnings = "\n".join(summary.warnings)
    for missing in (
        "no child subreaper on this platform",
        "no cgroup peak on this platform",
        "not forwarded to the command",
        "no per-process high-water mark",
    ):
        assert missing in warnings
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & run.FORWARDED_SIGNALS


def test_memwatch_stays_light_while_wrapping(started, tmp_path):
    job = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"]
    proc = _start(["--no-cgroup", "--interval", "0.01"], job, tmp_path)
    started.append(proc)
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.5)  # let it take a few dozen samples
    status = Path(f"/proc/{proc.pid}/status").read_text()
    hwm_kib = int(
        next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]
    )
    assert hwm_kib * 1024 <= 30 * MIB
    check = (
        "import sys, memwatch.cli; print(sorted({'numpy', 'prometheus_client'} & set(sys.modules)))"
    )
    heavy = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert heavy.stdout.strip() == "[]"


# --- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no command given"),
        (["--"], "no command given"),
        (["run"], "no command given"),
        (["--bogus", "--", "true"], "unrecognized arguments: --bogus"),
        (
            ["--interval", "0", "--", "true"],
            "must be at least 0.001 s and at most 3600 s (got 0)",
        ),
        (
            ["--interval", "-1", "--", "true"],
            "must be at least 0.001 s and at most 3600 s (got -1)",
        ),
        (["--samples", "x.txt", "--", "true"], "must end in .csv or .jsonl"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    marker = tmp_path / "ran"
    proc = subprocess.run(
        [sys.executable, "-m", "memwatch", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("memwatch: error:")
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not marker.exists()


def test_unwritable_json_path_is_refused_before_the_command_starts(tmp_path):
    marker = tmp_path / "ran"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memwatch",
            "--json",
            "/nonexistent/dir/s.json",
            "--",
            "touch",
            str(marker),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "memwatch: error: --json /nonexistent/dir/s.json" in proc.stderr
    assert not marker.exists()


def test_json_write_failure_after_the_run_keeps_the_measurement(tmp_path):
    # The job itself removes the output directory: the write fails only at the end.
    outdir = tmp_path / "out"
    outdir.mkdir()
    job = ["sh", "-c", f"rm -r {outdir} && exit 3"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memwatch",
            "--no-cgroup",
            "-q",
            "--json",
            str(outdir / "s.json"),
            "--",
            *job,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 125
    assert "memwatch: peak" in proc.stderr  # the summary is printed even with --quiet
    assert "cannot write --json" in proc.stderr
    assert "exit status 3" in proc.stderr
    assert "Traceback" not in proc.stderr


def _ctrl_c_on_a_terminal(argv: list[str], deadline_s: float = 120) -> int:
    """Run argv on a new pseudo-terminal, type Ctrl-C once it printed 'ready'; exit status.

    Reads with select() against a deadline, so a regression fails instead of hanging.
    """
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execv(argv[0], argv)
    end = time.monotonic() + deadline_s
    try:
        seen = b""
        typed = False
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            assert ready, f"no progress before the deadline; output so far: {seen!r}"
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's last process has gone
                break
            if not chunk:
                break
            seen += chunk
            if not typed and b"ready" in seen:
                os.write(fd, b"\x03")  # Ctrl-C, as typed
                typed = True
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        os.close(fd)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


COUNT_SIGINTS = (
    "import signal, sys, time\n"
    "hits = []\n"
    "signal.signal(signal.SIGINT, lambda n, f: hits.append(n))\n"
    "print('ready', flush=True)\n"
    "while not hits: time.sleep(0.01)\n"
    "time.sleep(0.5)  # room for a duplicate to arrive\n"
    "sys.exit(10 + len(hits))\n"
)


def test_ctrl_c_on_a_terminal_reaches_the_job_once(tmp_path):
    # The kernel sends Ctrl-C's SIGINT to the whole foreground group: memwatch must not
    # forward it a second time, and must outlive the job to write the summary.
    out = tmp_path / "s.json"
    memwatch = [sys.executable, "-m", "memwatch", "--no-cgroup", "--json", str(out), "--"]
    assert _ctrl_c_on_a_terminal([*memwatch, sys.executable, "-c", COUNT_SIGINTS]) == 11
    assert json.loads(out.read_text())["exit_code"] == 11


def test_ctrl_c_reaches_a_job_that_left_the_terminal_group(tmp_path):
    # After setsid the job is not in the group the terminal signals: memwatch passes it on.
    out = tmp_path / "s.json"
    memwatch = [sys.executable, "-m", "memwatch", "--no-cgroup", "--json", str(out), "--"]
    job = ["/usr/bin/setsid", sys.executable, "-c", COUNT_SIGINTS]
    assert _ctrl_c_on_a_terminal([*memwatch, *job]) == 11
    assert json.loads(out.read_text())["exit_code"] == 11


def _run_cli(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memwatch", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        **kwargs,  # type: ignore[call-overload]
    )


def test_words_before_the_double_dash_belong_to_the_command():
    proc = _run_cli(["--no-cgroup", "-q", "echo", "a", "--", "b"])
    assert (proc.returncode, proc.stdout) == (0, "a -- b\n")


def test_json_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    proc = _run_cli(["--no-cgroup", "-q", "--json", str(link), "--", "true"])
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink()
    assert json.loads(real.read_text())["schema"] == "memwatch.run/1"


@pytest.mark.parametrize("same", [True, False], ids=["same-as-samples", "directory"])
def test_json_path_that_cannot_hold_the_summary_is_refused_before_starting(same, tmp_path):
    marker = tmp_path / "ran"
    target = tmp_path / "out.csv" if same else tmp_path
    extra = ["--samples", str(tmp_path / "out.csv")] if same else []
    proc = _run_cli(["--json", str(target), *extra, "--", "touch", str(marker)])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("memwatch: error: --json")
    assert not marker.exists()


def test_unwritable_stderr_does_not_cost_the_exit_status():
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "memwatch", "--no-cgroup", "--", "sh", "-c", "exit 3"],
            stderr=full,
            cwd=REPO,
            timeout=120,
        )
    assert proc.returncode == 3


def test_script_without_shebang_runs_with_sh_and_bad_interpreter_is_126(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text('echo "plain $1"\n')
    plain.chmod(0o755)
    proc = _run_cli(["--no-cgroup", "-q", "--", str(plain), "x"])
    assert (proc.returncode, proc.stdout) == (0, "plain x\n")
    bad = tmp_path / "bad"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    proc = _run_cli(["--", str(bad)])
    assert proc.returncode == 126
    assert "bad interpreter" in proc.stderr
