"""Huge numbers in, short one-line messages out."""

from __future__ import annotations

import pytest

from memwatch import cli


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "{runs}", "--at", "1e308"],
        ["sweep", "--sizes", "1,2", "--at", "1e308", "--", "true", "{{size}}"],
        ["fit", "{runs}", "--at", "5", "--margin", "1e308"],
    ],
    ids=["fit-at", "sweep-at", "margin"],
)
def test_a_huge_number_gives_a_short_one_line_error(tmp_path, capsys, argv):
    runs = tmp_path / "runs.csv"
    runs.write_text("size,peak_bytes\n1,100000000\n2,200000000\n3,300000000\n")
    assert cli.main([a.format(runs=runs) for a in argv]) in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memwatch: error: ")
    assert len(err) < 250, err  # no 300-digit factor
    assert "%%" not in err
