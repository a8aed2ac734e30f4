"""Runs whose history write failed, kept on local disk until a later run or `history sync`.

One JSON file per run, named by its uid: a file is written whole (renamed into place) and
removed only after the history has committed the run. A run sent twice is stored once (the
history keeps one row per uid), so a sync stopped at any point loses and doubles nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from .errors import HistoryError, OutputError
from .records import Entry, HistoryRun, Store, is_url

SPOOL_ENV = "MEMWATCH_SPOOL"


def default_dir(env: Mapping[str, str] = os.environ) -> str:
    """$MEMWATCH_SPOOL, else $XDG_STATE_HOME/memwatch/spool, else ~/.local/state/..."""
    if env.get(SPOOL_ENV):
        return env[SPOOL_ENV]
    state = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):  # the XDG spec: a relative path there is ignored
        state = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "memwatch", "spool")


def _key(location: str) -> str:
    """The history a spooled run is for: a URL without password, or an absolute path."""
    return location if is_url(location) else os.path.abspath(location)


def keep(entry: Entry, location: str, directory: str | None = None) -> str:
    """Write the entry to the spool for the history at ``location``; returns the file."""
    directory = directory or default_dir()
    path = os.path.join(directory, f"{entry.run.uid}.json")
    doc = {
        "history": _key(location),
        "run": dataclasses.asdict(entry.run),
        "summary": entry.summary,
    }
    temporary = os.path.join(directory, f".{entry.run.uid}.tmp")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)  # commands can hold secrets
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())  # the only copy of the run: on disk before it counts as kept
        os.replace(temporary, path)
    except OSError as err:
        raise OutputError(
            f"cannot keep the run in the spool {directory}: {err.strerror}; set "
            f"${SPOOL_ENV} to a writable directory"
        ) from err
    return path


def pending(
    location: str, directory: str | None = None
) -> tuple[list[tuple[str, Entry]], list[str]]:
    """The spooled runs for the history at ``location`` (file, entry), and unreadable files."""
    directory = directory or default_dir()
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except FileNotFoundError:
        return [], []
    except OSError as err:
        raise HistoryError(f"cannot read the spool {directory}: {err.strerror}") from err
    found, problems = [], []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc["history"] != _key(location):
                continue
            run = doc["run"]
            entry = Entry(HistoryRun(**{**run, "command": tuple(run["command"])}), doc["summary"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append(f"{path}: not a spooled run ({err}); left as it is")
            continue
        found.append((path, entry))
    found.sort(key=lambda item: item[1].run.recorded_at)  # stored in the order they ran
    return found, problems


def send(store: Store, directory: str | None = None) -> tuple[int, int, list[str]]:
    """Send the spooled runs for ``store`` in one transaction, then remove their files.

    Returns (runs sent, of them new to the history, problems). Raises HistoryError when the
    history cannot take them: the files then stay.
    """
    found, problems = pending(store.location, directory)
    if not found:
        return 0, 0, problems
    new = store.add([entry for _, entry in found])
    for path, _ in found:
        try:
            os.unlink(path)
        except OSError as err:  # sent already: a later sync finds it stored and skips it
            problems.append(f"{path}: sent, but cannot remove it: {err.strerror}")
    return len(found), new, problems


def deliver(store: Store, entry: Entry, directory: str | None = None) -> str | None:
    """Record a run that just ended, or keep it in the spool when the history fails.

    None when recorded (runs spooled earlier for this history then go along, if they can);
    else the one-line message saying why and where the run waits. Raises OutputError when
    the spool cannot be written either.
    """
    try:
        store.add([entry])
    except HistoryError as err:
        path = keep(entry, store.location, directory)
        return (
            f"not recorded in the history: {err}; the run waits in {path}: send it with "
            f"memwatch history sync --history {store.location}"
        )
    try:
        send(store, directory)
    except HistoryError:
        pass  # they wait for the next run or `history sync`, which reports why
    return None
