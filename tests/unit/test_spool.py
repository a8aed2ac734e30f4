"""memwatch.spool: runs the history could not take wait on disk and are sent exactly once."""

from __future__ import annotations

import dataclasses
import os

import pytest

from memwatch import spool
from memwatch.errors import HistoryError, OutputError
from memwatch.history import History, new_entry


class Refusing(History):
    """A history whose writes fail, as a full disk or a stopped server makes them."""

    def add(self, entries):
        raise HistoryError(f"cannot write history {self.path}: No space left on device")


def test_a_refused_run_waits_in_the_spool_and_a_later_run_takes_it_along(tmp_path, run_summary):
    spool_dir = str(tmp_path / "spool")
    path = str(tmp_path / "h.sqlite")
    first = new_entry(run_summary(size=1.0), "train")
    message = spool.deliver(Refusing(path), first, spool_dir)
    waiting = os.path.join(spool_dir, f"{first.run.uid}.json")
    assert message == (
        f"not recorded in the history: cannot write history {path}: No space left on device; "
        f"the run waits in {waiting}: send it with memwatch history sync --history {path}"
    )
    assert os.stat(spool_dir).st_mode & 0o777 == 0o700
    second = new_entry(run_summary(size=2.0), "train")
    assert spool.deliver(History(path), second, spool_dir) is None
    assert [e.run for e in History(path).entries()] == [
        dataclasses.replace(second.run, id=1),
        dataclasses.replace(first.run, id=2),
    ]
    assert os.listdir(spool_dir) == []


def test_send_is_exactly_once_even_when_a_file_cannot_be_removed(
    tmp_path, run_summary, monkeypatch
):
    spool_dir = str(tmp_path / "spool")
    store = History(str(tmp_path / "h.sqlite"))
    for size in (1.0, 2.0):
        spool.keep(new_entry(run_summary(size=size), "train"), store.location, spool_dir)
    real_unlink = os.unlink
    monkeypatch.setattr(os, "unlink", lambda p: (_ for _ in ()).throw(PermissionError(13, "no")))
    sent, new, problems = spool.send(store, spool_dir)
    assert (sent, new, len(problems)) == (2, 2, 2)
    assert problems[0].endswith(": sent, but cannot remove it: no")
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert spool.send(store, spool_dir) == (2, 0, [])  # sent again: stored once
    assert [r.size for r in store.runs()] == [1.0, 2.0]


def test_runs_for_another_history_and_broken_files_stay(tmp_path, run_summary):
    spool_dir = tmp_path / "spool"
    store = History(str(tmp_path / "h.sqlite"))
    spool.keep(new_entry(run_summary(), "other"), str(tmp_path / "other.sqlite"), str(spool_dir))
    (spool_dir / "broken.json").write_text("{")
    sent, new, problems = spool.send(store, str(spool_dir))
    assert (sent, new) == (0, 0)
    assert problems == [
        f"{spool_dir}/broken.json: not a spooled run (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)); left as it is"
    ]
    assert len(os.listdir(spool_dir)) == 2 and store.runs() == []


def test_a_history_failing_while_sending_leaves_every_file(tmp_path, run_summary):
    spool_dir = str(tmp_path / "spool")
    store = Refusing(str(tmp_path / "h.sqlite"))
    spool.keep(new_entry(run_summary(), "train"), store.location, spool_dir)
    with pytest.raises(HistoryError):
        spool.send(store, spool_dir)
    assert len(os.listdir(spool_dir)) == 1


def test_an_unwritable_spool_is_an_output_error_naming_the_variable(tmp_path, run_summary):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"cannot keep the run in the spool .*MEMWATCH_SPOOL"):
        spool.keep(new_entry(run_summary(), "train"), "h", str(tmp_path / "file" / "spool"))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MEMWATCH_SPOOL": "/s", "XDG_STATE_HOME": "/x", "HOME": "/h"}, "/s"),
        ({"XDG_STATE_HOME": "/x", "HOME": "/h"}, "/x/memwatch/spool"),
        ({"XDG_STATE_HOME": "rel", "HOME": "/h"}, "/h/.local/state/memwatch/spool"),
    ],
)
def test_the_spool_directory_follows_the_xdg_state_directory(env, expected):
    assert spool.default_dir(env) == expected
