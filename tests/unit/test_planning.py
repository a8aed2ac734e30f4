"""Planning answers: memory units, the budget, fits and parallel tasks, growth, the inverse."""

from __future__ import annotations

import json
import math

import pytest

from memwatch import cli
from memwatch.backend import machine_memory
from memwatch.cgroup import memory_limit
from memwatch.commands import _advice
from memwatch.measures import MemoryLimit
from memwatch.model import Measurement, fit, predict
from memwatch.planning import Budget, choose_budget, growth, judge, max_size_for, plan
from memwatch.procfs import read_meminfo
from memwatch.report import parse_bytes

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize(
    "text, expected",
    [
        ("16GiB", 16 * GiB),
        ("512M", 512 * MiB),
        ("512m", 512 * MiB),
        ("200GB", 200 * 10**9),
        ("1.5T", int(1.5 * 2**40)),
        ("64 KiB", 64 * KiB),
        ("1e9", 10**9),
        ("1073741824", GiB),
        ("2kb", 2000),
        ("16Gi", 16 * GiB),
    ],
)
def test_memory_amounts_in_human_units(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["", "16XB", "-1G", "G", "1.2.3G", "sixteen", "0", "0.5", "16", "1e400"]
)
def test_bad_memory_amounts_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="e.g. 16GiB|at least 1 byte|give a unit|too large"):
        parse_bytes(text)


def test_without_proc_the_machine_memory_comes_from_psutil(tmp_path):
    import psutil

    assert machine_memory(str(tmp_path / "no-proc")) == (
        psutil.virtual_memory().total,
        pytest.approx(psutil.virtual_memory().available, rel=0.2),
    )


def test_machine_memory_comes_from_meminfo(tmp_path):
    (tmp_path / "meminfo").write_text(
        "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\n"
    )
    assert read_meminfo(str(tmp_path)) == (16384000 * KiB, 8192000 * KiB)
    (tmp_path / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree:  10 kB\n")
    assert read_meminfo(str(tmp_path)) == (16384000 * KiB, 16384000 * KiB)  # before 3.14
    assert read_meminfo(str(tmp_path / "nowhere")) is None


def test_v1_unlimited_means_none(cgroupfs_v1):
    assert memory_limit(cgroupfs_v1.procfs_path) is None


def test_v2_unlimited_means_none(cgroupfs_v2):
    assert memory_limit(cgroupfs_v2.procfs_path) is None


def test_v1_limit_of_an_ancestor_is_found_with_its_usage(cgroupfs_v1):
    parent = cgroupfs_v1.own.parent
    (parent / "memory.limit_in_bytes").write_text(f"{4 * GiB}\n")
    (parent / "memory.usage_in_bytes").write_text(f"{GiB}\n")
    (cgroupfs_v1.own / "memory.limit_in_bytes").write_text(f"{8 * GiB}\n")
    limit = memory_limit(cgroupfs_v1.procfs_path)
    assert limit == MemoryLimit(1, str(parent), 4 * GiB, GiB)


def test_v2_tightest_limit_wins(cgroupfs_v2):
    own, parent = cgroupfs_v2.own, cgroupfs_v2.own.parent
    (parent / "memory.max").write_text(f"{6 * GiB}\n")
    (own / "memory.max").write_text(f"{2 * GiB}\n")
    (own / "memory.current").write_text(f"{512 * MiB}\n")
    assert memory_limit(cgroupfs_v2.procfs_path) == MemoryLimit(2, str(own), 2 * GiB, 512 * MiB)


def test_budget_is_the_option_else_a_tighter_cgroup_limit_else_ram():
    machine = (24 * GiB, 20 * GiB)
    limit = MemoryLimit(2, "/sys/fs/cgroup/job", 8 * GiB, 3 * GiB)
    assert choose_budget(GiB, machine, limit) == Budget(GiB, "--budget")
    assert choose_budget(None, machine, limit) == Budget(8 * GiB, "cgroup limit", 5 * GiB)
    loose = MemoryLimit(2, "/sys/fs/cgroup/job", 64 * GiB, 0)
    assert choose_budget(None, machine, loose) == Budget(24 * GiB, "machine RAM", 20 * GiB)
    assert choose_budget(None, None, limit).total_bytes == 8 * GiB
    with pytest.raises(ValueError, match="give --budget"):
        choose_budget(None, None, None)


def test_fits_headroom_and_parallel_tasks():
    given = Budget(16 * GiB, "--budget")
    verdict = judge(given, 5 * GiB)
    assert (verdict.fits, verdict.headroom_bytes, verdict.parallel_tasks) == (True, 11 * GiB, 3)
    short = judge(given, 20 * GiB)
    assert (short.fits, short.headroom_bytes, short.parallel_tasks) == (False, -4 * GiB, 0)
    # The machine's own budget counts only what is free now for tasks side by side.
    machine = Budget(24 * GiB, "machine RAM", available_bytes=10 * GiB)
    assert judge(machine, 3 * GiB).parallel_tasks == 3
    assert judge(machine, 16 * GiB).fits and judge(machine, 16 * GiB).parallel_tasks == 0


def quadratic_model():
    runs = [(n, 38 * MiB + 12 * n * n) for n in (1000, 2000, 3000, 4000, 5000)]
    return fit([Measurement(float(n), round(p)) for n, p in runs])


def test_growth_verdicts():
    assert growth(quadratic_model()).kind == "faster than linear"
    assert growth(quadratic_model()).exponent == pytest.approx(2.0, abs=0.02)
    assert "size^2.00" in growth(quadratic_model()).words
    linear = fit([Measurement(n, 10 * MiB + n * MiB) for n in (1, 2, 3, 4, 5)])
    assert (growth(linear).kind, growth(linear).exponent) == ("linear", pytest.approx(1.0))
    flat = fit([Measurement(n, 10 * MiB) for n in (1, 2, 3, 4, 5)])
    assert (growth(flat).kind, growth(flat).exponent) == ("constant", None)
    root = fit([Measurement(n, round(MiB * 100 * math.sqrt(n))) for n in (1, 2, 3, 4, 5, 6)])
    assert growth(root).kind == "slower than linear"


def test_the_inverse_is_the_largest_size_whose_recommendation_fits():
    model = quadratic_model()
    answer = max_size_for(model, 4 * GiB)
    assert answer.size is not None and not answer.capped
    assert predict(model, answer.size).recommended_bytes <= 4 * GiB
    # Rounded down to three digits: the next round size up no longer fits.
    assert predict(model, answer.size + 100).recommended_bytes > 4 * GiB
    assert answer.size == float(int(answer.size))  # sizes were whole numbers


def test_the_inverse_keeps_the_extrapolation_rules():
    model = quadratic_model()
    far = max_size_for(model, 16 * GiB)
    assert 4 < far.extrapolation_factor <= 16
    assert any("extrapolating" in w for w in far.warnings)
    capped = max_size_for(model, 2**40)  # 1 TiB: fits far beyond what memwatch will guess
    assert capped.capped and capped.size == 80000 and capped.extrapolation_factor == 16
    assert any("--force" in w for w in capped.warnings)
    forced = max_size_for(model, 2**40, force=True)
    assert not forced.capped and forced.size > 80000


def test_the_inverse_on_a_flat_model_and_when_nothing_fits():
    flat = fit([Measurement(n, 10 * MiB) for n in (1, 2, 3, 4, 5)])
    assert max_size_for(flat, GiB).capped  # memory does not grow: any size fits
    assert max_size_for(flat, GiB).size == 80
    nothing = max_size_for(quadratic_model(), 10 * MiB)
    assert nothing.size is None and nothing.recommended_bytes > 10 * MiB


def test_plan_looks_for_the_largest_fitting_size_only_when_a_target_does_not_fit():
    model = quadratic_model()
    predictions = [predict(model, 20000), predict(model, 40000, force=True)]
    roomy = plan(model, predictions, Budget(64 * GiB, "--budget"))
    assert roomy.largest_fitting is None and all(v.fits for v in roomy.verdicts)
    tight = plan(model, predictions, Budget(8 * GiB, "--budget"), max_size_memory=4 * GiB)
    assert [v.fits for v in tight.verdicts] == [True, False]
    assert tight.largest_fitting is not None and tight.largest_fitting.size > 20000
    assert tight.max_size is not None and tight.max_size.size < tight.largest_fitting.size


@pytest.fixture
def runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    lines = ["size,peak_bytes"] + [
        f"{n},{38 * MiB + 12 * n * n}" for n in (1000, 2000, 3000, 4000, 5000)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_cli_json_carries_the_planning_answers(capsys, runs_csv):
    argv = ["fit", runs_csv, "--at", "20000", "--at", "40000", "--budget", "8GiB"]
    assert cli.main([*argv, "--max-size-for", "4G", "--force", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["budget"] == {"bytes": 8 * GiB, "source": "--budget", "available_bytes": None}
    assert doc["growth"]["kind"] == "faster than linear"
    fits = [(p["fits"], p["parallel_tasks"]) for p in doc["predictions"]]
    assert fits == [(True, 1), (False, 0)]
    assert doc["predictions"][1]["headroom_bytes"] < 0
    assert 17000 < doc["max_size"]["size"] < 20000 and doc["max_size"]["memory_bytes"] == 4 * GiB
    assert doc["largest_size_within_budget"]["size"] > 20000


def test_cli_says_in_plain_words_and_points_at_chunking(capsys, runs_csv):
    argv = ["fit", runs_csv, "--at", "20000", "--at", "40000", "--budget", "8GiB", "--force"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "growth: grows faster than linear: about size^2.00" in out
    assert "budget: 8.0 GiB (--budget)" in out
    assert "  fits in the 8.0 GiB budget with 3.0 GiB to spare; 1 at once" in out
    assert "  does NOT fit in the 8.0 GiB budget: 11.7 GiB short" in out
    assert "advice: memory grows faster than linear" in out and "batches or chunks" in out


def test_cli_default_budget_is_the_machine(capsys, runs_csv, monkeypatch):
    monkeypatch.setattr(_advice, "machine_memory", lambda: (32 * GiB, 30 * GiB))
    monkeypatch.setattr(_advice, "memory_limit", lambda: None)
    assert cli.main(["fit", runs_csv, "--at", "10000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["budget"] == {
        "bytes": 32 * GiB,
        "source": "machine RAM",
        "available_bytes": 30 * GiB,
    }
    assert (
        doc["predictions"][0]["parallel_tasks"]
        == 30 * GiB // doc["predictions"][0]["recommended_bytes"]
    )


@pytest.mark.parametrize("option", ["--budget", "--max-size-for"])
@pytest.mark.parametrize("value", ["lots", "0", "-5G", "16XB"])
def test_bad_budgets_are_one_line_usage_errors(capsys, runs_csv, option, value):
    code = cli.main(["fit", runs_csv, option, value])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and option in err
