"""memwatch.cli.main in-process: usage errors, --help/--version, argument hand-off.

No command is ever started here: ``measure`` is replaced by a tripwire (or a fake that
returns a canned summary), so a parsing bug cannot run anything in the test process.
Real runs are in tests/integration.
"""

from __future__ import annotations

import json

import pytest

from memwatch import __version__, cli
from memwatch.commands import run as run_command


@pytest.fixture(autouse=True)
def no_real_runs(monkeypatch):
    def tripwire(command, **kwargs):
        pytest.fail(f"memwatch would have started {command!r} with {kwargs!r}")

    monkeypatch.setattr(run_command, "measure", tripwire)


def usage_error(capsys, argv):
    """Run main(argv), check it is a clean usage error, return the message."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("memwatch: error: ")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "argv",
    [[], ["run"], ["--"], ["run", "--"], ["-q"], ["--json", "peak.json"]],
    ids=["nothing", "run-alone", "dashdash-alone", "run-dashdash", "only-options", "json-only"],
)
def test_no_command_is_a_usage_error(capsys, argv):
    err = usage_error(capsys, argv)
    assert "no command given" in err


@pytest.mark.parametrize(
    "argv",
    [["--bogus"], ["run", "--bogus"], ["--bogus", "--", "true"], ["--pss=yes", "--", "true"]],
)
def test_unknown_option_is_a_usage_error(capsys, argv):
    err = usage_error(capsys, argv)
    assert "unrecognized arguments" in err or "ignored explicit argument" in err
    assert "--help" in err


@pytest.mark.parametrize("value", ["0", "-1", "abc", "0.0005", "nan", "", "1e-9"])
def test_bad_interval_is_a_usage_error_naming_the_option(capsys, value):
    err = usage_error(capsys, ["--interval", value, "--", "true"])
    assert "--interval" in err


@pytest.mark.parametrize("value", ["inf", "1e300"])
def test_interval_too_large_to_wait_for_is_a_usage_error(capsys, value):
    # threading.Event.wait() raises OverflowError beyond threading.TIMEOUT_MAX (~292 years):
    # accepted, it kills the sampler thread with a traceback after the first sample.
    err = usage_error(capsys, ["--interval", value, "--", "true"])
    assert "--interval" in err


def test_interval_without_a_value_is_a_usage_error(capsys):
    err = usage_error(capsys, ["--interval"])
    assert "--interval" in err


def test_json_in_a_missing_directory_fails_before_the_command_starts(capsys, tmp_path):
    err = usage_error(capsys, ["--json", str(tmp_path / "no" / "peak.json"), "--", "true"])
    assert str(tmp_path / "no") in err


def test_samples_with_an_unknown_extension_fails_before_the_command_starts(capsys, tmp_path):
    path = tmp_path / "mem.txt"
    err = usage_error(capsys, ["--samples", str(path), "--", "true"])
    assert ".csv or .jsonl" in err
    assert not path.exists()


@pytest.mark.parametrize("argv", [["--help"], ["-h"]])
def test_help_exits_zero_with_usage_on_stdout(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: memwatch")
    assert err == ""


def test_run_help_explains_sources_and_exit_status(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "where the peak comes from" in out
    assert "128+N" in out


def test_version_exits_zero_and_prints_the_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memwatch {__version__}"


# --- hand-off to measure(), with a fake measure ----------------------------------------------


@pytest.fixture
def fake_measure(monkeypatch, run_summary):
    calls = []

    def measure(command, **kwargs):
        calls.append((list(command), kwargs))
        return run_summary(command=tuple(command), **fake_measure_result)

    fake_measure_result: dict[str, object] = {}
    monkeypatch.setattr(run_command, "measure", measure)
    return calls, fake_measure_result


def test_options_after_dashdash_belong_to_the_command(capsys, fake_measure):
    calls, _ = fake_measure
    code = cli.main(["--interval", "0.5", "-q", "--", "python3", "-q", "--interval", "x", "--"])
    assert code == 0
    [(command, kwargs)] = calls
    assert command == ["python3", "-q", "--interval", "x", "--"]
    assert kwargs["interval_s"] == 0.5
    assert capsys.readouterr().err == ""  # -q


def test_shorthand_and_run_subcommand_are_the_same(fake_measure):
    calls, _ = fake_measure
    cli.main(["--pss", "--job", "etl", "--size", "1e6", "--", "make"])
    cli.main(["run", "--pss", "--job", "etl", "--size", "1e6", "--", "make"])
    assert calls[0] == calls[1]
    command, kwargs = calls[0]
    assert command == ["make"]
    assert (kwargs["pss"], kwargs["job"], kwargs["size"]) == (True, "etl", 1e6)
    assert kwargs["use_cgroup"] is True


def test_exit_status_is_the_commands_and_summary_goes_to_stderr(capsys, fake_measure):
    _, result = fake_measure
    result.update(exit_code=None, signal=9)
    code = cli.main(["--no-cgroup", "--", "hog"])
    out, err = capsys.readouterr()
    assert code == 137
    assert out == ""
    assert err.startswith("memwatch: peak ")


def test_json_summary_is_written_where_asked(tmp_path, fake_measure):
    path = tmp_path / "peak.json"
    assert cli.main(["-q", "--json", str(path), "--", "make"]) == 0
    assert json.loads(path.read_text())["command"] == ["make"]


@pytest.mark.parametrize("subcommand", [[], ["run"]])
def test_backend_option_reaches_measure(fake_measure, subcommand):
    calls, _ = fake_measure
    assert cli.main([*subcommand, "-q", "--backend", "psutil", "--", "make"]) == 0
    assert cli.main([*subcommand, "-q", "--", "make"]) == 0
    assert [kwargs["backend"] for _, kwargs in calls] == ["psutil", "auto"]


def test_unknown_backend_is_a_usage_error(capsys):
    err = usage_error(capsys, ["--backend", "kvm", "--", "true"])
    assert "--backend" in err and "psutil" in err


def test_backend_option_reaches_every_run_of_a_sweep(monkeypatch, run_summary, tmp_path, capsys):
    seen = []

    def measure(command, **kwargs):
        seen.append(kwargs["backend"])
        return run_summary(job=kwargs["job"], size=kwargs["size"])

    monkeypatch.setattr("memwatch.sweep.measure", measure)
    history = str(tmp_path / "history.sqlite")
    argv = ["sweep", "--sizes", "1,2", "--backend", "psutil", "--history", history]
    cli.main([*argv, "--", "job", "{size}"])
    assert seen and set(seen) == {"psutil"}
