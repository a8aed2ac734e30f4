"""Hostile or odd files where memwatch reads its config: FIFOs, directories, huge files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from memwatch.config import load_config
from memwatch.errors import ConfigError


def _load_in_thread(path: Path) -> list[object]:
    """load_config(path) in a thread; what it returned or raised, [] if it is still blocked."""
    outcome: list[object] = []

    def load() -> None:
        try:
            outcome.append(load_config(str(path)))
        except ConfigError as err:
            outcome.append(err)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=30)
    return outcome


def test_a_fifo_as_config_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "memwatch.yaml"
    os.mkfifo(fifo)
    try:
        outcome = _load_in_thread(fifo)
    finally:
        # Unblocks a reader that waits (the old code): opening for writing completes it.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if not outcome else None
        if fd is not None:
            os.close(fd)
    assert outcome, "load_config blocked on a FIFO (the daemon's loop would block at SIGHUP)"
    (err,) = outcome
    assert isinstance(err, ConfigError)
    assert err.problems == [f"{fifo}: cannot read: not a regular file; give the config file itself"]


def test_a_directory_as_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert info.value.problems == [f"{tmp_path}: cannot read: Is a directory"]


def test_a_config_over_the_size_cap_is_refused_before_parsing(tmp_path):
    path = tmp_path / "memwatch.yaml"
    entry = "  - name: job{i}\n    pid: {pid}\n"
    with open(path, "w") as f:
        f.write("watch:\n")
        i = 0
        while f.tell() <= 256 << 10:
            f.write(entry.format(i=i, pid=i + 1))
            i += 1
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: larger than 256 KiB, the most memwatch reads")
