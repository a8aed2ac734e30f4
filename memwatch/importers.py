"""Runs from records other tools keep: Nextflow traces, Snakemake benchmarks, Slurm sacct, GNU time.

Each reader turns a file into history entries; a row it cannot use becomes one line
``file:line: what; how to fix`` and the other rows are kept. Formats, as documented:
- Nextflow trace: https://docs.seqera.io/nextflow/reference/config/trace (tab-separated,
  header row; sizes like "1.1 GB" in powers of 1024, or bytes with trace.raw = true)
- Snakemake benchmark: https://snakemake.readthedocs.io (tutorial "Benchmarking"; columns
  s, h:m:s, max_rss [MiB], ...; one row per repeat)
- Slurm: sacct(1), https://slurm.schedmd.com/sacct.html (--parsable2: '|'-separated,
  header row; MaxRSS per step like "1180K"; Elapsed [days-]hours:minutes:seconds)
- GNU time: time(1), https://www.gnu.org/software/time/ (-v report; -f FORMAT with %M in
  KiB; its default format, as time.c has it, "%Uuser %Ssystem %Eelapsed ... %Mmaxresident)k")
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from .errors import InputError, UsageError
from .records import Entry, HistoryRun

FORMATS = ("nextflow", "snakemake", "slurm", "time")

# Nextflow's MemoryUnit: B, KB, MB, ... each 1024 times the last. Slurm's K/M/G/T alike.
_POWERS = {"": 0, "B": 0, "K": 1, "KB": 1, "M": 2, "MB": 2, "G": 3, "GB": 3, "T": 4, "TB": 4}
_POWERS.update({"P": 5, "PB": 5})
_AMOUNT = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGTP]?B?)", re.IGNORECASE)
# GNU time's conversions that memwatch reads; any other %x matches one non-blank word.
_TIME_FIELDS = {
    "M": r"(?P<M>\d+)",
    "e": r"(?P<e>[0-9.]+)",
    "E": r"(?P<E>[0-9:.]+)",
    "x": r"(?P<x>-?\d+)",
    "C": r"(?P<C>.*)",
}
TIME_DEFAULT_FORMAT = (
    "%Uuser %Ssystem %Eelapsed %PCPU (%Xavgtext+%Davgdata %Mmaxresident)k\n"
    "%Iinputs+%Ooutputs (%Fmajor+%Rminor)pagefaults %Wswaps"
)


@dataclass(frozen=True)
class ImportOptions:
    """How records become runs: the format, and where the job and the size come from."""

    format: str
    job: str | None = None
    size_column: str | None = None
    size_from: re.Pattern[str] | None = None  # searched in the record's name (see NAMES)
    time_format: str = TIME_DEFAULT_FORMAT  # GNU time -f; the -v report is read anyway
    fallback_job: str | None = None  # for records with no job name; None: such a record is bad


# What --size-from searches, per format: the name a person reads in that tool's output.
NAMES = {
    "nextflow": "the task name with its tag",
    "snakemake": "the benchmark file's path",
    "slurm": "JobName",
    "time": "the command",
}


class _Bad(ValueError):
    """One record that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class _Record:
    """What a reader found in one record, before the job and size are settled."""

    name: str  # what --size-from searches
    job: str | None  # the format's own job name, if it has one
    fields: dict[str, str]  # the raw fields, kept as the run's document
    peak_bytes: int
    exit_status: int
    oom_killed: bool
    duration_s: float
    command: tuple[str, ...]
    identity: str  # unique among the tool's records: the uid is derived from it
    host: str = ""
    default_size: str | None = None  # the column holding the size when none is given


Found = tuple[int, "_Record | _Bad"]  # (line number, record or why not)


def import_file(path: str, options: ImportOptions) -> tuple[list[Entry], list[str]]:
    """The runs a file holds, and one line per record that could not be used."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}") from err
    readers: dict[str, Callable[[str, list[str]], Iterator[Found]]] = {
        "nextflow": _nextflow,
        "snakemake": _snakemake,
        "slurm": _slurm,
        "time": lambda path, lines: _time(path, lines, options.time_format),
    }
    entries, problems = [], []
    for line_no, record in readers[options.format](path, lines):
        try:
            if isinstance(record, _Bad):
                raise record
            entries.append(_entry(path, options, record))
        except _Bad as err:
            problems.append(f"{path}:{line_no}: {err}")
    return entries, problems


def _entry(path: str, options: ImportOptions, record: _Record) -> Entry:
    found = options.size_from.search(record.name) if options.size_from else None
    if options.size_from and not found:
        raise _Bad(
            f"--size-from {options.size_from.pattern!r} does not match {record.name!r} "
            f"({NAMES[options.format]})"
        )
    groups = found.groupdict() if found else {}
    job = options.job or groups.get("job") or record.job or options.fallback_job
    if job is None:
        raise _Bad("no job name: give --job NAME or a (?P<job>...) group in --size-from")
    text = None
    if found:
        text = groups.get("size") or found.group(1 if found.re.groups else 0)
    elif options.size_column or record.default_size:
        column = options.size_column or record.default_size or ""
        if column not in record.fields:
            raise _Bad(f"no column {column!r} (there are: {', '.join(record.fields)})")
        text = record.fields[column]
    try:
        size = None if text is None else float(_number(text) or amount_bytes(text))
    except _Bad:
        raise _Bad(f"the size {text!r} is not a number or an amount of bytes") from None
    run = HistoryRun(
        id=0,
        recorded_at=time.time(),  # when imported: the tools' own time stamps stay in the fields
        job=job,
        size=size,
        peak_bytes=record.peak_bytes,
        exit_status=record.exit_status,
        oom_killed=record.oom_killed,
        swap_suspected=False,
        duration_s=record.duration_s,
        source=options.format,
        command=record.command,
        host=record.host,
        # The same record imported twice is stored once.
        uid=hashlib.sha256(f"{options.format}\0{record.identity}".encode()).hexdigest()[:32],
    )
    doc = {"imported": {"format": options.format, "file": path}, "fields": record.fields}
    return Entry(run, json.dumps(doc))


def _number(text: str) -> float | None:
    """A plain number (an input size as such), or None when it has a unit or is no number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def amount_bytes(text: str, unit_bytes: int = 1) -> int:
    """'1.1 GB' / '1180K' / '2048' (a plain number counts in ``unit_bytes``) -> bytes."""
    match = _AMOUNT.fullmatch(text.strip())
    if not match:
        raise _Bad(f"not an amount of memory: {text!r}")
    unit = match.group(2).upper()
    value = float(match.group(1)) * (1024 ** _POWERS[unit] if unit else unit_bytes)
    if not math.isfinite(value) or value >= 2**63:
        raise _Bad(f"too large: {text!r}")
    return int(value)


def _seconds(text: str) -> float:
    """'1h 2m 3s' / '350ms' / '[days-]hh:mm:ss[.frac]' / '12.5' -> seconds."""
    text = text.strip()
    if _number(text) is not None:
        return float(text)
    if ":" in text:
        days, _, clock = text.rpartition("-")
        try:
            parts = [float(p) for p in clock.split(":")]
            return float(days or 0) * 86400 + sum(p * 60.0**i for i, p in enumerate(parts[::-1]))
        except ValueError:
            raise _Bad(f"not a duration: {text!r}") from None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    found = re.findall(r"([0-9.]+)(ms|d|h|m|s)", text.replace(" ", ""))
    if not found or "".join(n + u for n, u in found) != text.replace(" ", ""):
        raise _Bad(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in found)


def _table(
    path: str, lines: list[str], sep: str, needed: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str] | _Bad]]:
    """Rows of a delimited file with a header row, as dicts; a row of the wrong width: _Bad."""
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise InputError(f"{path}: empty; expected a header row")
    header_no, header = numbered[0]
    names = [name.strip() for name in header.split(sep)]
    missing = [name for name in needed if name not in names]
    if missing:
        raise InputError(
            f"{path}:{header_no}: no column {', '.join(missing)} in the header "
            f"({', '.join(names)[:200]}); is this the right --format?"
        )
    for line_no, line in numbered[1:]:
        cells = line.split(sep)
        if len(cells) != len(names):
            yield line_no, _Bad(f"{len(cells)} fields where the header has {len(names)}")
        else:
            yield line_no, dict(zip(names, (c.strip() for c in cells), strict=True))


def _rows(
    path: str,
    lines: list[str],
    sep: str,
    needed: tuple[str, ...],
    make: Callable[[dict[str, str], int], _Record],
) -> Iterator[Found]:
    """Each row of a table through ``make``; what it cannot read is that line's _Bad."""
    for line_no, row in _table(path, lines, sep, needed):
        if isinstance(row, _Bad):
            yield line_no, row
        else:
            yield line_no, _attempt(partial(make, row, line_no), "row")


def _nextflow(path: str, lines: list[str]) -> Iterator[Found]:
    def make(row: dict[str, str], line_no: int) -> _Record:
        status = row["status"]
        if row["peak_rss"] in ("", "-"):
            raise _Bad(f"no peak_rss ({status} task): nothing to record")
        failed = status in ("FAILED", "ABORTED")
        exit_text = row.get("exit", "-")
        exit_status = int(exit_text) if re.fullmatch(r"-?\d+", exit_text) else 0
        if failed and exit_status == 0:
            exit_status = 1  # failed all the same: its peak is a floor, not a measurement
        duration = row.get("realtime") or row.get("duration") or "-"
        return _Record(
            name=row["name"],
            job=re.sub(r"\s*\(.*\)$", "", row["name"]),  # "ALIGN (s1)": the process name
            fields=row,
            peak_bytes=amount_bytes(row["peak_rss"]),
            exit_status=exit_status,
            oom_killed=False,
            # trace.raw = true writes durations in milliseconds, else "1m 2s"
            duration_s=0.0
            if duration == "-"
            else (float(duration) / 1000 if _number(duration) is not None else _seconds(duration)),
            command=(row["name"],),
            identity=row.get("hash") or "\t".join(row.values()),  # a resumed task: same hash
            default_size="rchar",
        )

    return _rows(path, lines, "\t", ("name", "status", "peak_rss"), make)


def _snakemake(path: str, lines: list[str]) -> Iterator[Found]:
    where = os.path.abspath(path)

    def make(row: dict[str, str], line_no: int) -> _Record:
        if not _number(row["max_rss"]):
            raise _Bad(f"max_rss is {row['max_rss']!r}: no memory figure")
        return _Record(
            name=path,
            job=None,
            fields=row,
            peak_bytes=int(float(row["max_rss"]) * (1 << 20)),  # MiB, from psutil's bytes
            exit_status=0,  # Snakemake writes a benchmark only for a job that succeeded
            oom_killed=False,
            duration_s=float(row["s"]),
            command=(),
            identity=f"{where}\0{line_no}\0{sorted(row.items())}",
        )

    return _rows(path, lines, "\t", ("s", "max_rss"), make)


def _slurm(path: str, lines: list[str]) -> Iterator[Found]:
    """One record per job: its steps' largest MaxRSS, the allocation row's name and state."""
    jobs: dict[str, tuple[int, list[dict[str, str]]]] = {}
    for line_no, row in _table(path, lines, "|", ("JobID", "MaxRSS")):
        if isinstance(row, _Bad):
            yield line_no, row
            continue
        base = row["JobID"].split(".")[0]
        jobs.setdefault(base, (line_no, []))[1].append(row)
    for base, (line_no, rows) in jobs.items():
        yield line_no, _attempt(partial(_slurm_job, base, rows), f"job {base}")


def _attempt(make: Callable[[], _Record], what: str) -> _Record | _Bad:
    """The record ``make`` reads, or why it cannot: a _Bad for its line."""
    try:
        return make()
    except _Bad as err:
        return err
    except ValueError as err:
        return _Bad(f"unreadable {what} ({err})")


def _slurm_job(base: str, rows: list[dict[str, str]]) -> _Record:
    main = next((r for r in rows if r["JobID"] == base), rows[0])
    # MaxRSS is the largest task of a step; the steps of a batch job run one after another.
    peaks = [amount_bytes(r["MaxRSS"], 1024) for r in rows if r["MaxRSS"]]
    if not peaks:
        raise _Bad(f"job {base} has no MaxRSS in any step (is job accounting gathering on?)")
    state = main.get("State", "COMPLETED")
    code, _, sig = main.get("ExitCode", "0:0").partition(":")
    exit_status = 128 + int(sig) if sig and int(sig) else int(code or 0)
    if not state.startswith("COMPLETED") and exit_status == 0:
        exit_status = 1  # CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL: a floor, not fitted
    elapsed = main.get("Elapsed", "")
    return _Record(
        name=main.get("JobName", ""),
        job=main.get("JobName") or None,
        fields={"JobID": base, **{k: v for k, v in main.items() if k != "JobID"}},
        peak_bytes=max(peaks),
        exit_status=exit_status,
        oom_killed=state.startswith("OUT_OF_MEMORY"),
        duration_s=_seconds(elapsed) if elapsed else 0.0,
        command=(main.get("JobName", ""),),
        identity=f"{main.get('Cluster', '')}\0{base}",
        host=main.get("NodeList", ""),
    )


def _time(path: str, lines: list[str], time_format: str) -> Iterator[Found]:
    """GNU time's -v reports, else the records written by -f FORMAT (default format too)."""
    where = os.path.abspath(path)
    starts = [n for n, line in enumerate(lines) if "Command being timed:" in line]
    if starts:
        for first, end in zip(starts, [*starts[1:], len(lines)], strict=True):
            report = partial(_time_verbose, lines, first, end, where)
            yield first + 1, _attempt(report, "GNU time -v report")
        return
    if "%M" not in time_format:
        raise UsageError(f"--time-format {time_format!r} has no %M: it records no peak")
    pattern = _time_pattern(time_format)
    text = "\n".join(lines)
    count = 0
    for found in pattern.finditer(text):
        count += 1
        line_no = text.count("\n", 0, found.start()) + 1
        fields = {k: v for k, v in found.groupdict().items() if v is not None}
        # GNU time says how a job that did not exit 0 ended on the line before its record.
        before = lines[line_no - 2] if line_no >= 2 else ""
        yield (
            line_no,
            _Record(
                name=fields.get("C", ""),
                job=None,
                fields=fields,
                peak_bytes=int(fields["M"]) * 1024,
                exit_status=int(fields["x"]) if "x" in fields else _time_ending(before),
                oom_killed=False,
                duration_s=float(fields["e"]) if "e" in fields else _seconds(fields.get("E", "0")),
                command=(fields["C"],) if "C" in fields else (),
                identity=f"{where}\0{line_no}",
            ),
        )
    if not count:
        raise InputError(
            f"{path}: no GNU time record (neither a -v report nor the format "
            f"{time_format!r}); pass --time-format with the -f format used"
        )


def _time_pattern(time_format: str) -> re.Pattern[str]:
    """A regex for GNU time's -f FORMAT: %M, %e, %E, %x, %C as groups, other %X as a word."""
    parts = []
    for literal, conversion in re.findall(r"([^%]*)(%.|$)", time_format.replace("\\n", "\n")):
        parts.append(re.escape(literal))
        if conversion == "%%":
            parts.append("%")
        elif conversion:
            parts.append(_TIME_FIELDS.get(conversion[1], r"\S*?"))
    return re.compile("".join(parts))


def _time_ending(line: str) -> int:
    """The exit status from GNU time's line before a record (none there: 0)."""
    if found := re.search(r"Command exited with non-zero status (\d+)", line):
        return int(found.group(1))
    if found := re.search(r"Command terminated by signal (\d+)", line):
        return 128 + int(found.group(1))
    return 0


def _time_verbose(lines: list[str], first: int, end: int, where: str) -> _Record:
    fields = {}
    for line in lines[first:end]:
        key, colon, value = line.strip().partition(": ")
        if colon:
            fields[key] = value.strip()
    command = fields.get("Command being timed", "").strip('"')
    peak = fields.get("Maximum resident set size (kbytes)", "")
    if not peak.isdigit():
        raise _Bad(f"no 'Maximum resident set size (kbytes)' in the report of {command!r}")
    status = fields.get("Exit status", "0")
    elapsed = next((v for k, v in fields.items() if k.startswith("Elapsed (wall clock)")), "0")
    ending = _time_ending(lines[first - 1]) if first else 0
    return _Record(
        name=command,
        job=None,
        fields=fields,
        peak_bytes=int(peak) * 1024,
        # A killed command reports "Exit status: 0"; the line above says the signal.
        exit_status=ending if ending > 128 else int(status),
        oom_killed=False,
        duration_s=_seconds(elapsed),
        command=(command,),
        identity=f"{where}\0{first + 1}",
    )
