"""What a first-time user meets: help texts that say what each command does and takes,
options that are not taken for others."""

from __future__ import annotations

import pytest

from memwatch import cli


def _help(capsys, *words: str) -> str:
    with pytest.raises(SystemExit):
        cli.main([*words, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_fit_and_predict_help_carry_their_own_exit_status_and_example(capsys, command):
    text = _help(capsys, command)
    assert "sweep" not in text.split("exit status:")[1]
    assert f"memwatch {command} " in text.split("example:")[1]


def test_history_help_describes_the_command(capsys):
    text = _help(capsys, "history")
    assert "List the runs recorded in the history" in text


def test_an_option_of_run_given_to_sweep_is_named_not_taken_for_another(capsys):
    code = cli.main(["sweep", "--size", "5", "--sizes", "1,2", "--", "true", "{size}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("memwatch: error: sweep does not take --size, an option of ")
    assert err.count("\n") == 1
