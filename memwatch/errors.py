"""Typed errors. Each carries a one-line, user-facing message: what, where, what to do."""

from __future__ import annotations


class MemwatchError(Exception):
    """Base class: ``str(err)`` is the message for the user, ``exit_code`` what the CLI returns."""

    exit_code = 125


class UsageError(MemwatchError):
    """Bad command line or option value, found before any command was started."""

    exit_code = 2


class CommandNotFound(MemwatchError):
    """The command to wrap does not exist (exit 127, as ``env`` and ``timeout`` do)."""

    exit_code = 127


class CommandNotExecutable(MemwatchError):
    """The command exists but cannot be executed (exit 126)."""

    exit_code = 126


class OutputError(MemwatchError):
    """A result file could not be written; the measurement itself is not lost."""


class MetricsServerError(MemwatchError):
    """The metrics endpoint cannot be served (port in use, bad address, TLS files)."""


class ProcessGone(MemwatchError):
    """The process exited (or its pid was reused) while memwatch was reading it."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"process {pid} is gone")
        self.pid = pid


class PermissionDenied(MemwatchError):
    """The kernel refused to show a process's memory (another user's process, no ptrace right)."""

    def __init__(self, pid: int, path: str) -> None:
        super().__init__(f"permission denied reading {path}: run memwatch as that process's user")
        self.pid = pid
        self.path = path


class CgroupUnavailable(MemwatchError):
    """No job cgroup can be made here; memwatch falls back to sampling."""


class FitError(MemwatchError):
    """The measurements cannot be fitted (too few sizes, bad values); exit 1."""

    exit_code = 1


class ExtrapolationRefused(FitError):
    """A target size too far beyond the measured sizes, asked without ``force``."""


class HistoryError(MemwatchError):
    """The run history cannot be read or written; the measurement itself is not lost."""

    exit_code = 1


class HistoryUnavailable(HistoryError):
    """The history cannot be reached now (server down, file locked): a run is spooled."""


class InputError(MemwatchError):
    """A file given to memwatch (runs CSV, samples file) cannot be used; exit 1."""

    exit_code = 1


class ConfigError(MemwatchError):
    """A config file is invalid. ``problems`` holds every problem, one line each; exit 1.

    Each line reads ``file:line: key.path: problem (got value)``; ``str(err)`` joins them
    with newlines. A secret (a bcrypt hash) is never part of a message.
    """

    exit_code = 1

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
