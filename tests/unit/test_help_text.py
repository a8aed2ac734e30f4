"""`memwatch --help` and every subcommand's `--help` print exactly the text in tests/unit/help/.

The golden files pin the CLI's text across refactors. A change that means to alter a help
text regenerates them with ``python tests/unit/test_help_text.py`` and shows the diff in
review. argparse wraps to the terminal width, so COLUMNS is fixed at 100.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from memwatch.cli import main

HELP_DIR = Path(__file__).parent / "help"
COLUMNS = "100"
SUBCOMMANDS = ("run", "sweep", "fit", "predict", "history", "plot", "check-config", "daemon")
PAGES = {"memwatch": [], **{name: [name] for name in SUBCOMMANDS}}


def help_text(words: list[str]) -> str:
    """What `memwatch WORDS --help` prints on stdout (it exits 0 through argparse)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main([*words, "--help"])
    assert stop.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("page", PAGES)
def test_help_text_is_unchanged(monkeypatch, page):
    monkeypatch.setenv("COLUMNS", COLUMNS)
    expected = (HELP_DIR / f"{page}.txt").read_text()
    assert help_text(PAGES[page]) == expected


if __name__ == "__main__":
    os.environ["COLUMNS"] = COLUMNS
    HELP_DIR.mkdir(exist_ok=True)
    for page, words in PAGES.items():
        (HELP_DIR / f"{page}.txt").write_text(help_text(words))
