"""`memwatch sweep --target` in-process: memwatch picks the sizes; ``measure`` is faked.

The planner's rules are tested on plain data in test_adaptive.py; here, the command line:
its usage errors, what it prints, its JSON, and what it records.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from memwatch import cli
from memwatch.history import History
from memwatch.measures import Peak

MiB = 2**20
CMD = ["--", "python3", "job.py", "{size}"]


def usage_error(capsys, argv: list[str], fragment: str) -> None:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("memwatch: error: ") and fragment in err, err


def test_target_usage_errors_start_nothing(capsys, monkeypatch):
    monkeypatch.setattr("memwatch.sweep.measure", pytest.fail)  # nothing may run
    usage_error(capsys, ["sweep", "--sizes", "1,2", "--target", "8", *CMD], "not both")
    usage_error(capsys, ["sweep", *CMD], "give --sizes N,N,... (the sizes to run) or --target")
    usage_error(capsys, ["sweep", "--sizes", "1,2", "--start", "1", *CMD], "--start work only")
    usage_error(
        capsys,
        ["sweep", "--sizes", "1,2", "--max-size", "1", "--time-budget", "1m", *CMD],
        "--max-size and --time-budget work only with --target",
    )
    usage_error(capsys, ["sweep", "--target", "0", *CMD], "--target must be more than 0")
    usage_error(capsys, ["sweep", "--target", "100", "--start", "60", *CMD], "at most the largest")
    usage_error(capsys, ["sweep", "--target", "100", "--max-size", "5", *CMD], "20.0x --max-size")
    usage_error(capsys, ["sweep", "--target", "100", "--time-budget", "soon", *CMD], "90s, 10m")
    usage_error(capsys, ["sweep", "--target", "100", "--time-budget", "0", *CMD], "more than 0")
    usage_error(capsys, ["sweep", "--target", "100", "--", "python3", "job.py"], "no {size}")


@pytest.fixture
def linear_job(monkeypatch, run_summary):
    """measure() faked: 20 MiB + 1 MiB per unit of size, 0.5 s per run; the commands run."""
    commands: list[list[str]] = []

    def fake_measure(command, **kwargs):
        commands.append(command)
        peak = round(20 * MiB + MiB * kwargs["size"])
        summary = run_summary(job=kwargs["job"], size=kwargs["size"], duration_s=0.5)
        return dataclasses.replace(summary, peak=Peak(peak, peak, 0, None, None, "cgroup"))

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    return commands


def test_target_picks_the_sizes_says_why_and_reports_like_sweep(capsys, linear_job):
    code = cli.main(["sweep", "--target", "640", "--job", "j", *CMD])
    out, err = capsys.readouterr()
    assert code == 0, err
    sizes = [c[-1] for c in linear_job]
    assert sizes[:3] == ["20", "20", "28"]  # the warm-up, then 640/32 and up by sqrt(2)
    assert max(int(s) for s in sizes) <= 320
    assert "memwatch: size 20 next: first run, at 1/32 of the target" in err
    assert "memwatch: size 28 next: one size cannot be fitted, next run ~0.7 s" in err
    assert "memwatch: sweep [2] size 28: peak 48.0 MiB (cgroup) in 0.5 s;" in err
    assert "memwatch: stopping: " in err
    assert "best fit a + b*x" in out and "at size 640 (" in out
    assert "adaptive sweep: " in out and "(none above 320)" in out
    assert "sweep time " in out and "one run at the target 640: ~" in out
    # Every fitted run is in the history, the warm-up is not.
    recorded = History(os.environ["MEMWATCH_HISTORY"]).runs("j")
    assert [r.size for r in recorded] == [float(s) for s in sizes[1:]]


def test_target_json_has_every_fitted_run_and_a_prediction_at_the_target(capsys, linear_job):
    code = cli.main(["sweep", "--target", "640", "--at", "100", "--json", "--no-warmup", *CMD])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    run_sizes = [int(c[-1]) for c in linear_job]
    assert [m["size"] for m in doc["measurements"]] == run_sizes
    assert all(m["peak_bytes"] == 20 * MiB + MiB * m["size"] for m in doc["measurements"])
    at100, at640 = doc["predictions"]
    assert at100["size"] == 100 and at640["size"] == 640
    assert at640["recommended_bytes"] >= 660 * MiB
    adaptive = doc["adaptive"]
    assert adaptive["target"] == 640 and adaptive["max_size"] == 320
    assert adaptive["sizes"] == run_sizes and adaptive["stop_reason"]
    assert [r["duration_s"] for r in adaptive["runs"]] == [0.5] * len(run_sizes)
    assert adaptive["total_duration_s"] >= 0 and adaptive["target_duration_s"] > 0


def test_a_failed_run_ends_the_target_sweep_and_is_a_floor(capsys, monkeypatch, run_summary):
    def fake_measure(command, **kwargs):
        size = kwargs["size"]
        summary = run_summary(job=kwargs["job"], size=size, duration_s=0.5)
        peak = round(20 * MiB + MiB * size)
        return dataclasses.replace(
            summary,
            exit_code=137 if size == 80 else 0,
            peak=Peak(peak, peak, 0, None, None, "cgroup"),
        )

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    code = cli.main(["sweep", "--target", "640", "--json", "--no-warmup", *CMD])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 1
    assert doc["adaptive"]["sizes"] == [20, 28, 40, 57, 80]
    assert "size 80 failed" in doc["adaptive"]["stop_reason"]
    assert doc["failed_runs"] == [{"size": 80, "repeat": 1, "exit_status": 137}]
    assert "memwatch: stopping: the run at size 80 failed" in captured.err


def test_repeat_runs_each_picked_size_that_many_times(capsys, linear_job):
    code = cli.main(["sweep", "--target", "640", "--repeat", "2", "--no-warmup", "--json", *CMD])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    sizes = [int(c[-1]) for c in linear_job]
    assert sizes[:4] == [20, 20, 28, 28] and sizes[::2] == sizes[1::2]
    assert doc["adaptive"]["sizes"] == sizes[::2]
    assert doc["model"]["noise"] == 0.0  # repeats were measured: the fake job has none


def test_ctrl_c_stops_the_target_sweep_and_keeps_the_runs(capsys, monkeypatch, run_summary):
    calls = []

    def fake_measure(command, **kwargs):
        calls.append(command)
        stopped = {"exit_code": None, "signal": 2} if len(calls) == 2 else {}
        return run_summary(job=kwargs["job"], size=kwargs["size"], duration_s=0.5, **stopped)

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    code = cli.main(["sweep", "--target", "640", "--no-warmup", "--job", "j", *CMD])
    _, err = capsys.readouterr()
    assert code == 130 and len(calls) == 2
    assert "sweep stopped after 2 run(s); they are in the history" in err
    assert [r.exit_status for r in History(os.environ["MEMWATCH_HISTORY"]).runs("j")] == [0, 130]


def test_whole_number_targets_run_whole_sizes_even_below_32(capsys, linear_job):
    assert cli.main(["sweep", "--target", "20", "--no-warmup", "--json", *CMD]) == 0
    capsys.readouterr()
    sizes = [c[-1] for c in linear_job]
    assert sizes[0] == "1" and all(s.isdigit() and int(s) <= 10 for s in sizes), sizes
    usage_error(capsys, ["sweep", "--target", "1", *CMD], "the first size would be 1, above")
