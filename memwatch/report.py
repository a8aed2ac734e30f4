"""Reporters: the human summary, the JSON summary and the streamed samples file."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import math
import os
import re
import signal
import sys
from collections.abc import Iterator
from typing import IO, Any

from .errors import InputError, OutputError, UsageError
from .measures import RunSummary, Sample

SCHEMA = "memwatch.run/1"
SAMPLE_FIELDS = ("at_s", "total_bytes", "rss_bytes", "swap_bytes", "pss_bytes", "processes")
SOURCE_NOTES = {
    "cgroup": "kernel cgroup peak, exact",
    "sampling": "largest sampled total",
    "hwm": "per-process high-water marks, between samples",
}


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; binary units, as free(1) -h and the kernel use."""
    if n is None:
        return "n/a"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1023.95 or unit == "TiB":  # so 1048575 B is 1.0 MiB, not 1024.0 KiB
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


BYTE_UNITS = {
    "": 1,
    "b": 1,
    # One letter means binary, as in systemd's MemoryMax=, docker -m and free(1).
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    # Kubernetes and numfmt write binary units without the B.
    "ki": 1 << 10,
    "mi": 1 << 20,
    "gi": 1 << 30,
    "ti": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}


def parse_bytes(text: str) -> int:
    """'16GiB' -> 17179869184. K/M/G/T and KiB/MiB/GiB/TiB are binary, KB/MB/GB/TB decimal.

    Raises ValueError with a message that says what is accepted.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in BYTE_UNITS:
        raise ValueError(
            f"not an amount of memory: {text!r} (e.g. 16GiB, 512M, 200GB, 1.5T; "
            "K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB of 1000)"
        )
    value = float(match.group(1)) * BYTE_UNITS[unit]
    if not math.isfinite(value) or value >= 2**63:
        raise ValueError(f"too large: {text!r} (at most 8 EiB)")
    if value < 1:
        raise ValueError(f"must be at least 1 byte (got {text!r})")
    if not unit and value < 1 << 20:
        raise ValueError(
            f"{text!r} without a unit is {int(value)} bytes; give a unit, e.g. {text}G"
        )
    return int(value)


def parse_size(text: str) -> float:
    """An input size as typed: a finite number >= 0 ('1000', '2.5', '1e6')."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number (got {text.strip()!r})") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0 (got {text.strip()})")
    return value


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h30m', '500ms' -> seconds.

    Raises ValueError with a message that says what is accepted.
    """
    try:
        value = float(text)
    except ValueError:
        match = _DURATION.fullmatch(text.strip())
        if not text.strip() or match is None:
            raise ValueError(
                f"not a duration: {text.strip()!r} (e.g. 90, 90s, 10m, 1h30m, 500ms)"
            ) from None
        h, m, s, ms = (int(g) if g else 0 for g in match.groups())
        return h * 3600.0 + m * 60.0 + s + ms / 1000.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number of seconds >= 0 (got {text.strip()})")
    return value


def json_number(x: float | None) -> float | int | None:
    """A size as JSON: 2000.0 -> 2000, so scripts see the number the user typed."""
    return int(x) if x is not None and float(x).is_integer() and abs(x) < 2**53 else x


def ratio_text(x: float) -> str:
    """A factor for people: 3.25 -> '3.2', 1e305 -> '1e+305' (never 300 digits)."""
    return f"{x:.1f}" if abs(x) < 1e6 else f"{x:.3g}"


def size_text(x: float) -> str:
    """A size for people: 1000000.0 -> '1000000', 2.5 -> '2.5'."""
    return str(json_number(x))


def format_human(s: RunSummary) -> str:
    """The short summary printed to stderr when the command ends."""
    p, b = s.peak, s.bounds
    at = f" at {p.at_s:.2f} s" if p.at_s is not None else ""
    # A PSS split only describes a sampled peak; hwm and cgroup figures are RSS-based.
    sampled_pss = p.pss_bytes if p.source == "sampling" else None
    if sampled_pss is not None:
        swap_pss = max(0, p.total_bytes - sampled_pss)
        split = f"PSS {human_bytes(sampled_pss)} + SwapPss {human_bytes(swap_pss)}"
    else:
        split = f"RAM {human_bytes(p.rss_bytes)} + swap {human_bytes(p.swap_bytes)}"
    lines = [
        f"peak {human_bytes(p.total_bytes)} ({split}){at}; "
        f"source: {p.source} ({SOURCE_NOTES[p.source]})",
        f"  bounds {human_bytes(b.lower_bytes)} .. {human_bytes(b.upper_bytes)}"
        + (
            f"; RSS summed per process {human_bytes(p.rss_bytes)}"
            if sampled_pss is not None
            else ""
        ),
        "  ru_maxrss (what GNU time reports): "
        + ("unknown" if s.ru_maxrss_bytes is None else human_bytes(s.ru_maxrss_bytes)),
        f"  {s.processes_seen} process(es), {s.samples} samples every {s.interval_s:g} s over "
        f"{s.duration_s:.2f} s"
        + (" (sampled through psutil)" if s.backend == "psutil" else "")
        + f"; {describe_ending(s)}",
    ]
    if s.job is not None or s.size is not None:
        lines.append(f"  job {s.job or '-'}, size {'-' if s.size is None else size_text(s.size)}")
    lines += [f"warning: {w}" for w in s.warnings]
    return "\n".join("memwatch: " + line for line in lines)


def describe_ending(s: RunSummary) -> str:
    """How the command ended, e.g. "exit status 1" or "killed by SIGKILL (exit status 137)"."""
    if s.signal is not None:
        killed = (
            "killed by the OOM killer" if s.oom_killed else f"killed by {signal_name(s.signal)}"
        )
        return f"{killed} (exit status {s.exit_status})"
    return f"exit status {s.exit_code}"


def valid_utf8(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 shown as U+FFFD.

    Arguments and file names that are not UTF-8 reach Python as lone surrogates
    (surrogateescape), which cannot be encoded as UTF-8: sqlite, JSON parsers and
    Prometheus label values all refuse them.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def signal_name(signo: int) -> str:
    """15 -> 'SIGTERM'; a number without a name as 'signal 99'."""
    return signal.Signals(signo).name if signo in signal.valid_signals() else f"signal {signo}"


def to_json(s: RunSummary) -> dict[str, Any]:
    """The versioned JSON summary (DESIGN.md, 'JSON summary')."""
    return {
        "schema": SCHEMA,
        "command": [valid_utf8(a) for a in s.command],
        "exit_code": s.exit_code,
        "signal": s.signal,
        "oom_killed": s.oom_killed,
        "duration_s": round(s.duration_s, 6),
        "interval_s": s.interval_s,
        "samples": s.samples,
        "processes_seen": s.processes_seen,
        "unreadable_processes": s.unreadable_processes,
        "vanished_reads": s.vanished_reads,
        "peak": dataclasses.asdict(s.peak),
        "bounds": dataclasses.asdict(s.bounds),
        "ru_maxrss_bytes": s.ru_maxrss_bytes,
        "backend": s.backend,
        "cgroup": dataclasses.asdict(s.cgroup) if s.cgroup else None,
        "swap_suspected": s.swap_suspected,
        "plateaus": [dataclasses.asdict(p) for p in s.plateaus],
        "warnings": [valid_utf8(w) for w in s.warnings],
        "size": json_number(s.size),
        "job": None if s.job is None else valid_utf8(s.job),
    }


STDOUT = "-"  # as an output path: standard output, as for most Unix tools


def write_json(s: RunSummary, path: str) -> None:
    """Write the summary to ``path`` ("-": stdout), as write_output does."""
    write_output(json.dumps(to_json(s), indent=2) + "\n", path, "--json")


def write_output(text: str, path: str, option: str) -> None:
    """Write ``text``; a regular file atomically (temp file + rename), never half-written.

    "-" is stdout. Symlinks are followed (the link stays a link), and a path that is not a
    regular file (/dev/stdout, a FIFO) is written in place. OutputError names ``option``.
    """
    if path == STDOUT:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as err:
            raise OutputError(f"cannot write {option} to stdout: {err.strerror}") from err
        return
    if os.path.exists(path) and not os.path.isfile(path):
        _write_in_place(text, path, option)
        return
    target = os.path.realpath(path)
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write {option} {path}: {err.strerror}") from err


def _write_in_place(text: str, path: str, option: str) -> None:
    try:
        # O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of blocking memwatch
        # after the job has ended; once open, writing may wait for a slow reader.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        reason = "no process is reading it" if err.errno == errno.ENXIO else err.strerror
        raise OutputError(f"cannot write {option} {path}: {reason}") from err
    try:
        os.set_blocking(fd, True)
        with open(fd, "w") as f:
            f.write(text)
    except OSError as err:
        raise OutputError(f"cannot write {option} {path}: {err.strerror}") from err


def check_writable(path: str, option: str) -> None:
    """Fail before the command starts if ``path`` cannot be written ("-" always can)."""
    if path == STDOUT or (
        os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)
    ):
        return  # stdout, /dev/stdout, a FIFO: written in place
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {path}: not writable; choose another path")
    # Make the temp file the real write will make: access(2) says yes to root everywhere,
    # also in /proc and on a read-only mount, where creating a file then fails.
    probe = f"{target}.tmp{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise UsageError(
            f"{option} {path}: cannot create a file in {directory} ({err.strerror}); "
            "choose another path"
        ) from err


class SampleWriter:
    """Streams samples to CSV or JSON Lines (chosen by extension), flushed per sample.

    A memwatch killed with SIGKILL leaves a valid file up to its last sample. A write
    error (disk full) stops the stream and is reported once, without stopping the run.
    """

    def __init__(self, path: str) -> None:
        if path.endswith((".jsonl", ".ndjson")):
            self._jsonl = True
        elif (
            path == STDOUT
            or path.endswith(".csv")
            or (os.path.exists(path) and not os.path.isfile(path))
        ):
            self._jsonl = False  # CSV also to stdout, /dev/stdout, a FIFO, a pipe
        else:
            raise UsageError(f"--samples {path}: the name must end in .csv or .jsonl, or be -")
        self.path = path
        self.error: str | None = None
        self._owned = path != STDOUT  # stdout stays open after the run
        try:
            # Kept open for the whole run and closed by close(): not a with-block.
            self._file: IO[str] | None = (
                open(path, "w", newline="") if self._owned else sys.stdout  # noqa: SIM115
            )
        except OSError as err:
            raise UsageError(f"--samples {path}: {err.strerror}; choose another path") from err
        self._csv = None if self._jsonl else csv.writer(self._file)
        if self._csv:
            try:
                self._csv.writerow(SAMPLE_FIELDS)
                self._file.flush()
            except OSError as err:
                self.close()
                raise UsageError(f"--samples {path}: {err.strerror}; choose another path") from err

    def __call__(self, sample: Sample) -> None:
        if self._file is None:
            return
        row = [getattr(sample, name) for name in SAMPLE_FIELDS]
        row[0] = round(sample.at_s, 6)
        try:
            if self._csv:
                self._csv.writerow(["" if v is None else v for v in row])
            else:
                self._file.write(json.dumps(dict(zip(SAMPLE_FIELDS, row, strict=True))) + "\n")
            self._file.flush()
        except OSError as err:
            self.error = f"--samples {self.path}: writing stopped: {err.strerror}"
            self.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                if self._owned:
                    self._file.close()
                else:
                    self._file.flush()
            except OSError:
                pass
            self._file = None


SAMPLES_HINT = "expected a samples file written by memwatch run --samples"


def read_samples(path: str) -> list[Sample]:
    """Read back a samples file written by SampleWriter (.csv, or .jsonl / .ndjson).

    A memwatch killed mid-write leaves its last line cut off: that line is dropped
    silently. A bad line anywhere else is an error naming the line, column and value.
    """
    if path.endswith((".jsonl", ".ndjson")):
        rows = _jsonl_rows
    elif path.endswith(".csv") or (os.path.exists(path) and not os.path.isfile(path)):
        rows = _csv_rows  # /dev/stdin, a FIFO: SampleWriter writes CSV there
    else:
        raise InputError(f"{path}: the name must end in .csv, .jsonl or .ndjson; {SAMPLES_HINT}")
    samples: list[Sample] = []
    cut_off: InputError | None = None  # a bad row that may just be the truncated last line
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        # errors="replace": stray bytes become U+FFFD and are reported as a bad value.
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            for line, fields, may_be_cut in rows(path, _Lines(f)):
                if cut_off is not None:
                    raise cut_off  # it was not the last line after all
                try:
                    if isinstance(fields, InputError):
                        raise fields
                    samples.append(_sample(path, line, fields, samples[-1] if samples else None))
                except InputError as err:
                    if not may_be_cut:
                        raise
                    cut_off = err
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from err
    if not samples:
        raise InputError(f"{path}: no samples; {SAMPLES_HINT}")
    return samples


# One parsed line: its number, its fields by column (or why it could not be split into
# fields), and whether it may be a line cut off by a killed writer.
_Row = tuple[int, "dict[str, Any] | InputError", bool]


class _Lines:
    """A text file's lines, counting them and noting whether the last one was complete."""

    def __init__(self, f: IO[str]) -> None:
        self._f = f
        self.number = 0
        self.complete = True

    def __iter__(self) -> Iterator[str]:
        for line in self._f:
            self.number += 1
            # A writer killed mid-row leaves a last line without its line end.
            self.complete = line.endswith(("\n", "\r"))
            yield line


def _csv_rows(path: str, lines: _Lines) -> Iterator[_Row]:
    reader = csv.reader(lines)
    header: list[str] | None = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            yield (
                lines.number,
                InputError(f"{path}:{lines.number}: {err}; fix or delete that line"),
                not lines.complete,
            )
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            missing = [c for c in SAMPLE_FIELDS if c not in header]
            if missing:
                plural = "s" if len(missing) > 1 else ""
                raise InputError(
                    f"{path}: missing column{plural} {', '.join(missing)}; {SAMPLES_HINT}"
                )
            continue
        if len(row) != len(header):
            error = InputError(
                f"{path}:{lines.number}: {len(row)} fields, expected {len(header)} "
                f"({','.join(header)}); fix or delete that line"
            )
            yield lines.number, error, len(row) < len(header) or not lines.complete
            continue
        yield lines.number, dict(zip(header, row, strict=True)), not lines.complete
    if header is None:
        raise InputError(f"{path}: empty; {SAMPLES_HINT}")


def _jsonl_rows(path: str, lines: _Lines) -> Iterator[_Row]:
    for text in lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as err:
            reason = str(err)
            if isinstance(err, json.JSONDecodeError):  # "Expecting value", "... at": add where
                where = "" if err.msg.endswith(" at") else " at"
                reason = f"{err.msg}{where} column {err.colno}"
            error = InputError(
                f"{path}:{lines.number}: not valid JSON ({reason}); fix or delete that line"
            )
            yield lines.number, error, True
            continue
        if not isinstance(record, dict):
            error = InputError(
                f"{path}:{lines.number}: not a JSON object (got {_shown(record)}); {SAMPLES_HINT}"
            )
            yield lines.number, error, not lines.complete
            continue
        missing = [c for c in SAMPLE_FIELDS if c not in record]
        if missing:
            error = InputError(
                f"{path}:{lines.number}: missing {', '.join(missing)}; {SAMPLES_HINT}"
            )
            yield lines.number, error, not lines.complete
            continue
        yield lines.number, record, not lines.complete


def _sample(path: str, line: int, fields: dict[str, Any], before: Sample | None) -> Sample:
    def integer(column: str, nullable: bool = False) -> int | None:
        value = fields.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            if nullable:
                return None
            raise _bad(path, line, column, "no value", value)
        try:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError
            number = int(value)
        except ValueError:
            raise _bad(path, line, column, "not an integer", value) from None
        if number < 0:
            raise _bad(path, line, column, "must be >= 0", value)
        return number

    at = fields["at_s"]
    try:
        if isinstance(at, bool) or not isinstance(at, (int, float, str)):
            raise ValueError
        at_s = float(at)
    except ValueError:
        raise _bad(path, line, "at_s", "not a number", at) from None
    if not math.isfinite(at_s) or at_s < 0:
        raise _bad(path, line, "at_s", "must be a finite number of seconds >= 0", at)
    if before is not None and at_s < before.at_s:
        raise InputError(
            f"{path}:{line}: at_s: earlier than the line before ({at_s:g} s < {before.at_s:g} s); "
            "a samples file holds one run, in time order"
        )
    total, rss, processes = (integer(c) for c in ("total_bytes", "rss_bytes", "processes"))
    assert total is not None and rss is not None and processes is not None
    return Sample(
        at_s=at_s,
        total_bytes=total,
        rss_bytes=rss,
        # Empty where the platform reports no per-process swap (the psutil backend).
        swap_bytes=integer("swap_bytes", nullable=True),
        pss_bytes=integer("pss_bytes", nullable=True),
        processes=processes,
        # Not written by SampleWriter, but read when a file has it (made by hand or by a
        # later version): the plateau detector uses it to see system-wide swapping.
        system_swapout_bytes=integer("system_swapout_bytes", nullable=True),
    )


def _bad(path: str, line: int, column: str, problem: str, value: object) -> InputError:
    return InputError(
        f"{path}:{line}: {column}: {problem} (got {_shown(value)}); fix or delete that line"
    )


def _shown(value: object) -> str:
    """A bad value as the user wrote it, short enough for a one-line message."""
    text = repr(value.strip()) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
