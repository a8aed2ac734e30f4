"""Real sweeps, history, predictions and plots: the real CLI on real process trees."""

from __future__ import annotations

import json
import signal
import sys
import time

import psutil
import pytest

from .conftest import MEMHOG, MIB, need

SIZES = "40,80,120,160,200"


def hold(seconds: float = 0.3) -> list[str]:
    return memhog_hold("{size}", seconds)


def memhog_hold(size: object, seconds: float = 0.3) -> list[str]:
    return [sys.executable, MEMHOG, "hold", str(size), str(seconds)]


def test_sweep_recommends_at_least_the_true_peak_of_a_bigger_run(cli):
    code, out, err = cli(
        "sweep", "--sizes", SIZES, "--at", "600", "--json", "--job", "hog", "--", *hold()
    )
    assert code == 0, err
    doc = json.loads(out)  # the job's own output went to stderr: stdout is only JSON
    (prediction,) = doc["predictions"]
    assert doc["model"]["shape"] in {"linear", "power", "quadratic"}
    assert [m["size"] for m in doc["measurements"]] == [40, 80, 120, 160, 200]
    assert "extrapolating" not in " ".join(prediction["warnings"])  # 3x is not beyond 4x
    assert "sweep [5/5] size 200: peak" in err and "recorded as job 'hog'" in err

    # The size nobody ran yet, run for real: its true peak must be covered.
    code, out, err = cli("run", "-q", "--json", "/dev/stdout", "--", *memhog_hold(600))
    assert code == 0, err
    truth = json.loads(out)["peak"]["total_bytes"]
    assert prediction["recommended_bytes"] >= truth
    assert prediction["recommended_bytes"] <= 1.3 * truth  # safe, not absurd

    runs = cli.history.runs("hog")
    assert [(r.size, r.exit_status) for r in runs] == [
        (s, 0) for s in (40.0, 80.0, 120.0, 160.0, 200.0)
    ]
    code, out, err = cli("predict", "--job", "hog", "--at", "600", "--json")
    assert code == 0, err
    (again,) = json.loads(out)["predictions"]
    # The same runs, the same advice (parallel_tasks follows the memory free right now).
    for key in ("expected_bytes", "recommended_bytes", "extrapolation_factor", "warnings"):
        assert again[key] == prediction[key]


def test_a_failed_size_is_reported_and_the_others_still_fitted(cli):
    job = (
        f'if [ {{size}} -gt 100 ]; then exit 3; fi; exec "{sys.executable}" "{MEMHOG}" '
        "hold {size} 0.2"
    )
    code, out, err = cli(
        "sweep", "--sizes", "20,40,60,80,150", "--job", "flaky", "--", "sh", "-c", job
    )
    assert code == 1, err
    assert "size 150 (repeat 1) failed: exit status 3" in out
    assert "best fit" in out and "        80 " in out and "       150 " not in out
    assert "size 150: peak" in err and "FAILED: exit status 3" in err
    assert [r.exit_status for r in cli.history.runs("flaky")] == [0, 0, 0, 0, 3]


def test_sigterm_stops_the_sweep_and_keeps_what_was_measured(cli):
    proc = cli(
        "sweep",
        "--sizes",
        "10,20,30",
        "--no-warmup",
        "--job",
        "stopped",
        "--",
        *hold(60),
        wait=False,
    )
    # Wait until the first job holds its memory, then stop memwatch as a scheduler would.
    err = sigterm_when(
        proc, lambda: any("memhog" in " ".join(c.cmdline()) for c in _children(proc.pid))
    )
    assert "sweep stopped after 1 run(s); they are in the history" in err
    assert [(r.size, r.exit_status) for r in cli.history.runs("stopped")] == [(10.0, 143)]


def sigterm_when(proc, ready) -> str:
    """SIGTERM the sweep once ``ready()``; check it stopped with 143 and return its stderr."""
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    return err


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_sweep_plot_and_samples_plot_are_real_images(cli, tmp_path):
    need(_has_matplotlib(), "matplotlib is not installed (pip install 'memwatch[plot]')")
    fit_png, run_png, samples = tmp_path / "fit.png", tmp_path / "run.png", tmp_path / "mem.csv"
    code, _, err = cli(
        "sweep", "--sizes", "20,40,60", "--at", "120", "--plot", str(fit_png), "--", *hold()
    )
    assert code == 0, err
    code, _, err = cli(
        "run",
        "-q",
        "--samples",
        str(samples),
        "--",
        sys.executable,
        MEMHOG,
        "grow",
        "120",
        "20",
        "0.2",
    )
    assert code == 0, err
    code, _, err = cli("plot", str(samples), "-o", str(run_png))
    assert code == 0, err
    for png in (fit_png, run_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_run_with_a_job_is_recorded_for_predict(cli):
    for size in (30, 60):
        code, _, err = cli(
            "run", "-q", "--job", "two", "--size", str(size), "--", *memhog_hold(size)
        )
        assert code == 0, err
    (first, second) = cli.history.runs("two")
    assert (first.size, second.size) == (30.0, 60.0)
    assert second.peak_bytes - first.peak_bytes == pytest.approx(30 * MIB, rel=0.05)
    code, out, err = cli("predict", "--job", "two", "--at", "90")
    assert code == 0, err
    assert "only 2 distinct sizes" in out and "provision" in out


def test_sigterm_stops_the_sweep_even_when_the_job_catches_it(cli, tmp_path):
    ready = tmp_path / "handler-installed"
    job = (
        "import pathlib, signal, sys, time; "
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(1)); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    proc = cli(
        "sweep",
        "--sizes",
        "10,20,30",
        "--no-warmup",
        "--job",
        "trapped",
        "--",
        sys.executable,
        "-c",
        job,
        "{size}",
        wait=False,
    )
    err = sigterm_when(proc, ready.exists)  # the job's handler is in place: it catches it
    assert "sweep stopped after 1 run(s)" in err
    assert [(r.size, r.exit_status) for r in cli.history.runs("trapped")] == [(10.0, 1)]
