"""`memwatch fit`, `predict`, `history` and `sweep` in-process: contracts and one-line errors.

``measure`` is faked with canned summaries, so no command runs here; real sweeps are in
tests/integration/test_sweep.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest

from memwatch import cli
from memwatch.commands import run as run_command
from memwatch.errors import HistoryError
from memwatch.history import History
from memwatch.measures import Peak

MiB = 2**20


def quadratic(n: float) -> int:
    return round(30 * MiB + 8 * n * n)


@pytest.fixture
def runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    rows = ["size,peak_bytes"] + [f"{n},{quadratic(n)}" for n in (500, 1000, 1500, 2000, 2500)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def one_line_error(capsys, code, expected_code=1):
    out, err = capsys.readouterr()
    assert code == expected_code
    assert err.startswith("memwatch: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return out, err


def test_fit_prints_the_table_the_shape_in_words_and_advice(capsys, runs_csv):
    assert cli.main(["fit", runs_csv, "--at", "5000"]) == 0
    out, _ = capsys.readouterr()
    assert "        2500    77.7 MiB     1  -" in out
    assert "best fit a + b*x^2: 30.0 MiB + 8 B x size^2; forward error 0.0%" in out
    assert re.search(r"ruled out: \d+ shapes that predicted the larger sizes worse", out)
    assert "at size 5000 (2x the largest measured): expected 220.7 MiB" in out
    assert "provision 242.8 MiB" in out


def test_fit_json_follows_the_contract(capsys, runs_csv):
    assert cli.main(["fit", runs_csv, "--at", "5000", "--at", "20000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"model", "plausible_shapes", "predictions"} <= set(doc)
    assert doc["model"]["shape"] in {s["shape"] for s in doc["plausible_shapes"]}
    first, far = doc["predictions"]
    assert set(first) >= {
        "size",
        "expected_bytes",
        "recommended_bytes",
        "extrapolation_factor",
        "warnings",
    }
    assert first["size"] == 5000 and first["extrapolation_factor"] == 2.0
    assert first["recommended_bytes"] >= quadratic(5000)
    assert far["warnings"] and "extrapolating 8.0x" in far["warnings"][-1]


def test_fit_margin_raises_the_recommendation(capsys, runs_csv):
    cli.main(["fit", runs_csv, "--at", "5000", "--json"])
    ten = json.loads(capsys.readouterr().out)["predictions"][0]
    cli.main(["fit", runs_csv, "--at", "5000", "--json", "--margin", "0.5"])
    fifty = json.loads(capsys.readouterr().out)["predictions"][0]
    assert fifty["recommended_bytes"] == pytest.approx(ten["recommended_bytes"] / 1.1 * 1.5, 1e-6)


def test_fit_refuses_beyond_16x_unless_forced(capsys, runs_csv):
    out, err = one_line_error(capsys, cli.main(["fit", runs_csv, "--at", "40001"]))
    assert out == "" and "16x" in err and "--force" in err
    assert cli.main(["fit", runs_csv, "--at", "40001", "--force"]) == 0


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("size,peak_bytes\n", "no runs"),
        ("size\n1\n", "missing column peak_bytes"),
        ("size,peak_bytes,host\n1,2,a\n", "unexpected column"),
        ("size,peak\n1,2\n", "missing column peak_bytes"),
        ("size,peak_bytes\n1,2\n2\n", ":3: 1 fields, expected 2"),
        ("size,peak_bytes\n1,2\nbig,3\n", ":3: size: not a number (got 'big')"),
        ("size,peak_bytes\n1,2\n-2,3\n", ":3: size: must be a finite number >= 0 (got -2)"),
        ("size,peak_bytes\n1,2\n2,1.5e3x\n", ":3: peak_bytes: not a number"),
        ("size,peak_bytes\n1,2\n2,0\n", ":3: peak_bytes: must be a whole number of bytes > 0"),
        ("size,peak_bytes\n1,2\n2,2.5\n", ":3: peak_bytes: must be a whole number of bytes"),
        ("size,peak_bytes\n3,100\n3,200\n", "2 or more distinct sizes to fit (got 1)"),
    ],
)
def test_bad_runs_csv_is_one_line_naming_file_and_line(capsys, tmp_path, content, message):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    _, err = one_line_error(capsys, cli.main(["fit", str(path), "--at", "5"]))
    assert message in err


def test_runs_csv_accepts_columns_in_any_order_and_blank_lines(capsys, tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("peak_bytes,size\n\n100000000,1\n200000000,2\n\n300000000,3\n")
    assert cli.main(["fit", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["size"] for m in doc["measurements"]] == [1, 2, 3]


def test_missing_runs_file_is_one_line(capsys, tmp_path):
    _, err = one_line_error(capsys, cli.main(["fit", str(tmp_path / "nope.csv")]))
    assert "nope.csv: cannot read: No such file or directory" in err


def record(run_summary, job, size, peak, **changes):
    summary = run_summary(size=size, **changes)
    summary = dataclasses.replace(summary, peak=dataclasses.replace(summary.peak, total_bytes=peak))
    History(str_history()).record(summary, job)


def str_history():
    return os.environ["MEMWATCH_HISTORY"]  # set for every unit test by conftest.py


def test_predict_fits_the_successful_sized_runs_of_the_job(capsys, run_summary):
    for n in (500, 1000, 1500, 2000, 2500):
        record(run_summary, "pairs", float(n), quadratic(n))
    record(run_summary, "pairs", 3000.0, 5 * MiB, exit_code=1)  # failed: not fitted
    record(run_summary, "pairs", None, 5 * MiB)  # no size: not fitted
    record(run_summary, "other", 1.0, 5 * MiB)
    assert cli.main(["predict", "--job", "pairs", "--at", "5000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["size"] for m in doc["measurements"]] == [500, 1000, 1500, 2000, 2500]
    assert doc["predictions"][0]["recommended_bytes"] >= quadratic(5000)
    assert cli.main(["predict", "--job", "pairs", "--at", "5000"]) == 0
    assert "not fitted: 2 recorded run(s) that failed or had no --size" in capsys.readouterr().out


def test_predict_for_an_unknown_job_names_the_known_ones(capsys, run_summary):
    record(run_summary, "etl", 1.0, MiB)
    _, err = one_line_error(capsys, cli.main(["predict", "--job", "train", "--at", "5"]))
    assert "no runs recorded for job 'train'" in err and "(jobs there: etl)" in err


def test_predict_with_an_empty_history_is_one_line(capsys):
    _, err = one_line_error(capsys, cli.main(["predict", "--job", "train", "--at", "5"]))
    assert "no runs recorded for job 'train'" in err and "memwatch sweep --job train" in err


def test_history_lists_runs_and_json_lines(capsys, run_summary):
    record(run_summary, "etl", 1e6, 300 * MiB)
    record(run_summary, "train", None, 200 * MiB, swap_suspected=True)
    assert cli.main(["history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[1].split()[3:7] == ["1000000", "300.0", "MiB", "0"] and lines[1].endswith("etl")
    assert lines[2].endswith("train (swap suspected)")
    assert cli.main(["history", "--job", "etl", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["job"], row["size"], row["peak_bytes"]) == ("etl", 1000000, 300 * MiB)


def test_run_with_a_job_is_recorded_with_the_commands_status(monkeypatch, run_summary):
    monkeypatch.setattr(
        run_command, "measure", lambda command, **kw: run_summary(exit_code=3, **kw_of(kw))
    )
    assert cli.main(["run", "--job", "etl", "--size", "10", "--", "true"]) == 3
    (row,) = History(str_history()).runs()
    assert (row.job, row.size, row.exit_status) == ("etl", 10.0, 3)


def make_fifo(path):
    os.mkfifo(path)


def make_symlink_loop(path):
    os.symlink(path, path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100), "not a usable SQLite database"),
        (lambda p: p.mkdir(), "Is a directory"),
        (make_fifo, "not a regular file (a FIFO or a device)"),
        (make_symlink_loop, "Too many levels of symbolic links"),
    ],
)
def test_a_history_that_cannot_record_is_a_usage_error_before_the_job_starts(
    capsys, monkeypatch, tmp_path, make, reason
):
    # Issue 11, item 2: memwatch ran the job, exited 0 and recorded nothing.
    monkeypatch.setattr(run_command, "measure", lambda *a, **kw: pytest.fail("the job ran"))
    path = tmp_path / "history.sqlite"
    make(path)
    code = cli.main(["run", "-q", "--job", "etl", "--history", str(path), "--", "true"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("memwatch: error: --history: ") and reason in err
    assert err.count("\n") == 1


def test_a_history_write_failing_after_the_job_spools_the_run_and_says_so_even_quiet(
    capsys, monkeypatch, run_summary, tmp_path
):
    # Issue 11, item 2 and issue 12: the run is kept, the status is the job's, and the
    # message (printed even with -q) says where the record waits.
    monkeypatch.setattr(
        run_command, "measure", lambda command, **kw: run_summary(exit_code=3, **kw_of(kw))
    )
    path = tmp_path / "history.sqlite"

    def disk_full(self, entries):
        raise HistoryError(f"cannot write history {path}: database or disk is full")

    with monkeypatch.context() as full:
        full.setattr(History, "add", disk_full)
        code = cli.main(
            ["run", "-q", "--job", "etl", "--size", "10", "--history", str(path), "--", "x"]
        )
    err = capsys.readouterr().err
    assert code == 3
    [spooled] = os.listdir(os.environ["MEMWATCH_SPOOL"])
    assert err == (
        f"memwatch: warning: not recorded in the history: cannot write history {path}: "
        f"database or disk is full; the run waits in {os.environ['MEMWATCH_SPOOL']}/{spooled}: "
        f"send it with memwatch history sync --history {path}\n"
    )
    assert cli.main(["history", "sync", "--history", str(path)]) == 0
    (row,) = History(str(path)).runs()
    assert (row.job, row.size, row.exit_status) == ("etl", 10.0, 3)
    assert os.listdir(os.environ["MEMWATCH_SPOOL"]) == []


def kw_of(kwargs):
    """The job and size that measure() was asked to record."""
    return {"job": kwargs["job"], "size": kwargs["size"]}


def test_sweep_usage_errors_start_nothing(capsys, tmp_path):
    def no_run(argv, fragment):
        code = cli.main(argv)
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err, err

    cmd = ["--", "python3", "job.py", "{size}"]
    no_run(["sweep", "--sizes", "1,2", "--", "python3", "job.py"], "no {size}")
    no_run(["sweep", "--sizes", "3", *cmd], "2 or more distinct sizes")
    no_run(["sweep", "--sizes", "1,x", *cmd], "not a number (got 'x')")
    no_run(["sweep", "--sizes", "1,2", "--repeat", "0", *cmd], "whole number >= 1")
    no_run(["sweep", "--sizes", "1,2", "--at", "33", *cmd], "16.5x the largest size")
    no_run(["sweep", "--sizes", "1,2", "--margin", "-1", *cmd], "between 0 and 10")
    no_run(["sweep", "--sizes", "1,2"], "no command given")
    no_run(["sweep", *cmd], "--sizes")
    no_run(
        ["sweep", "--sizes", "1,2", "--plot", str(tmp_path / "no" / "p.png"), *cmd],
        "does not exist",
    )


def test_sweep_substitutes_sizes_as_typed_and_fits_only_successes(capsys, monkeypatch, run_summary):
    calls = []

    def fake_measure(command, **kwargs):
        calls.append(command)
        size = kwargs["size"]
        failed = size == 4e3
        return dataclasses.replace(
            run_summary(**kw_of(kwargs)),
            exit_code=1 if failed else 0,
            peak=Peak(round(10 * MiB + 1000 * size), 0, 0, None, None, "cgroup"),
        )

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    code = cli.main(["sweep", "--sizes", "1000,2e3,3000,4e3", "--job", "j", "--", "x", "n={size}"])
    out, err = capsys.readouterr()
    assert code == 1  # a run failed
    # The smallest size runs first as an unrecorded warm-up.
    assert [c[1] for c in calls] == ["n=1000", "n=1000", "n=2e3", "n=3000", "n=4e3"]
    assert "sweep [warm-up] size 1000 (not fitted" in err
    assert "size 4e3 (repeat 1) failed: exit status 1" in out
    assert "best fit a + b*x: 10.0 MiB + 1000 B x size" in out
    assert "sweep [4/4] size 4e3" in err
    assert [r.size for r in History(str_history()).runs("j")] == [1000.0, 2000.0, 3000.0, 4000.0]


@pytest.mark.parametrize(
    "ending", [{"exit_code": None, "signal": 2}, {"exit_code": 130, "signal": None}]
)
def test_a_run_stopped_by_ctrl_c_stops_the_sweep_and_keeps_the_runs(
    capsys, monkeypatch, run_summary, ending
):
    calls = []

    def fake_measure(command, **kwargs):
        calls.append(command)
        stopped = len(calls) == 2
        return run_summary(**kw_of(kwargs), **(ending if stopped else {}))

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    argv = ["sweep", "--sizes", "1,2,3", "--no-warmup", "--job", "j", "--", "x", "{size}"]
    code = cli.main(argv)
    _, err = capsys.readouterr()
    assert code == 130 and len(calls) == 2
    assert "sweep stopped after 2 run(s); they are in the history" in err
    assert [r.exit_status for r in History(str_history()).runs("j")] == [0, 130]


def test_a_sweep_whose_largest_size_failed_still_reports_the_rest(capsys, monkeypatch, run_summary):
    def fake_measure(command, **kwargs):
        size = kwargs["size"]
        peak = Peak(round(10 * MiB + MiB * size), 0, 0, None, None, "cgroup")
        code = 137 if size == 8 else 0
        return dataclasses.replace(run_summary(**kw_of(kwargs)), exit_code=code, peak=peak)

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    argv = ["sweep", "--sizes", "1,2,3,4,5,8", "--at", "8", "--at", "100", "--json"]
    code = cli.main([*argv, "--no-warmup", "--", "x", "{size}"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    (at8,) = doc["predictions"]  # 100 is 20x the largest size that succeeded: refused
    assert "20.0x the largest measured size" in doc["refused"][0]
    assert at8["recommended_bytes"] >= 18 * MiB * 1.1  # the failed run at 8 is a floor
    assert any("size 8 failed after using 18.0 MiB" in w for w in at8["warnings"])
    assert doc["failed_runs"] == [{"size": 8, "repeat": 1, "exit_status": 137}]


def test_a_failed_run_that_saw_no_memory_is_no_floor_and_sampled_peaks_are_said(
    capsys, monkeypatch, run_summary
):
    # Unprivileged: no cgroup, and a run that exits at once was never sampled (peak 0).
    def fake_measure(command, **kwargs):
        size = kwargs["size"]
        failed = size == 8
        peak = Peak(0 if failed else round(10 * MiB + MiB * size), 0, 0, None, None, "sampling")
        code = 3 if failed else 0
        return dataclasses.replace(run_summary(**kw_of(kwargs)), exit_code=code, peak=peak)

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    code = cli.main(["sweep", "--sizes", "1,2,3,4,8", "--no-warmup", "--", "x", "{size}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "best fit" in out and "size 8 (repeat 1) failed: exit status 3" in out
    assert "warning: the peaks of 4 of 4 fitted runs come from sampling" in out


def test_a_sweep_where_every_run_failed_says_so(capsys, monkeypatch, run_summary):
    def fake_measure(command, **kwargs):
        return dataclasses.replace(run_summary(**kw_of(kwargs)), exit_code=3)

    monkeypatch.setattr("memwatch.sweep.measure", fake_measure)
    code = cli.main(["sweep", "--sizes", "1,2", "--no-warmup", "--", "x", "{size}"])
    _, err = capsys.readouterr()
    assert code == 1 and "no run succeeded (size 1 failed, size 2 failed)" in err


def test_a_json_that_cannot_be_written_still_records_the_run(capsys, monkeypatch, run_summary):
    monkeypatch.setattr(run_command, "measure", lambda command, **kw: run_summary(**kw_of(kw)))
    code = cli.main(["run", "--job", "j", "--size", "1", "--json", "/dev/full", "--", "true"])
    assert code == 125
    assert [r.size for r in History(str_history()).runs("j")] == [1.0]


def test_a_runs_csv_with_a_byte_order_mark_reads(capsys, tmp_path):
    path = tmp_path / "runs.csv"
    path.write_bytes(b"\xef\xbb\xbfsize,peak_bytes\n1,100000000\n2,200000000\n")
    assert cli.main(["fit", str(path), "--json"]) == 0


def test_successful_runs_are_fitted_and_failed_ones_that_saw_memory_are_floors():
    # One rule for sweep's runs and the history's (predict, the daemon's recommendations).
    from memwatch.fitreport import fitted_and_floors
    from memwatch.model import Measurement

    ok, failed, unseen = Measurement(1, 100), Measurement(2, 300), Measurement(3, 0)
    runs = [(ok, True), (failed, False), (unseen, False)]
    assert fitted_and_floors(runs) == ([ok], [failed])
