"""memwatch's own lines on stderr, written so that a closed or full stderr never costs
the wrapped command's exit status (cron mails, CI log pipes that went away)."""

from __future__ import annotations

import os
import sys


def open_standard_fds() -> None:
    """Open /dev/null on any of fds 0, 1 and 2 that memwatch was started without.

    Otherwise the next file memwatch opens (a job cgroup's cgroup.procs, the --json file)
    takes that number and the command inherits it as its stdin, stdout or stderr.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            # open(2) returns the lowest free descriptor: this one, as the lower are open.
            os.open(os.devnull, os.O_RDWR)


def say(text: str) -> None:
    """Print one line to stderr; a closed, full or vanished stderr is not an error."""
    stream = sys.stderr
    if stream is None:  # started with fd 2 closed: print(file=None) would use stdout
        return
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):  # ValueError: the stream was closed
        # The line stays in the stream's buffer, and the interpreter's flush at exit
        # would fail again and turn the exit status into 120 (Py_FinalizeEx). Later lines
        # go nowhere: the failures this catches (ENOSPC, EPIPE, EBADF) do not pass.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until the process ends
