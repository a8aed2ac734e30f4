"""memwatch.importers: other tools' records, in their documented formats, become runs."""

from __future__ import annotations

import json
import re

import pytest

from memwatch.errors import InputError
from memwatch.importers import ImportOptions, import_file


def tsv(*rows: list[str]) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10

# A Nextflow trace with the default fields, as `nextflow run -with-trace` writes it.
# Fields: https://docs.seqera.io/nextflow/reference/config/trace ("trace.fields": task_id,
# hash, native_id, name, status, exit, submit, duration, realtime, %cpu, peak_rss, peak_vmem,
# rchar, wchar are the defaults). Memory and I/O figures are human readable in powers of
# 1024 ("1.1 GB"), "-" when there is none; status is COMPLETED, FAILED, ABORTED (or CACHED).
# Row 5 is garbage (a cut-off line), row 6 has no peak_rss.
NEXTFLOW_HEADER = [
    "task_id",
    "hash",
    "native_id",
    "name",
    "status",
    "exit",
    "submit",
    "duration",
    "realtime",
    "%cpu",
    "peak_rss",
    "peak_vmem",
    "rchar",
    "wchar",
]
NEXTFLOW_TRACE = tsv(
    NEXTFLOW_HEADER,
    ["1", "2b/9d4e3a", "4051", "ALIGN (sample_1)", "COMPLETED", "0", "2026-11-30 01:00:00.000"]
    + ["1m 2s", "58.3s", "98.5%", "1.1 GB", "2 GB", "512 MB", "10 MB"],
    ["2", "7c/1a2b3c", "4052", "ALIGN (sample_2)", "COMPLETED", "0", "2026-11-30 01:00:01.000"]
    + ["2m 5s", "1m 59s", "99.0%", "2.2 GB", "3 GB", "1 GB", "20 MB"],
    ["3", "0f/00aa11", "4053", "ALIGN (sample_3)", "FAILED", "137", "2026-11-30 01:00:02.000"]
    + ["10s", "9.5s", "50.0%", "3 GB", "4 GB", "2 GB", "0"],
    ["4", "aa/bbccdd", "-", "NFCORE:QC:FASTQC (s1)", "ABORTED", "-", "2026-11-30 01:00:03.000"]
    + ["-", "-", "-", "100 MB", "-", "5 MB", "-"],
    ["5", "broken"],
    ["6", "ee/ff0011", "4055", "ALIGN (sample_4)", "FAILED", "1", "2026-11-30 01:00:04.000"]
    + ["1s", "0ms", "-", "-", "-", "-", "-"],
)

# The same trace with `trace.raw = true` (same page): memory in bytes, durations in
# milliseconds, no units.
NEXTFLOW_RAW = tsv(
    NEXTFLOW_HEADER,
    ["1", "2b/9d4e3a", "4051", "ALIGN (sample_1)", "COMPLETED", "0", "1796000000000", "62000"]
    + ["58300", "98.5", "1181116006", "2147483648", "536870912", "10485760"],
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def runs_of(entries):
    return [(e.run.job, e.run.size, e.run.peak_bytes, e.run.exit_status) for e in entries]


def test_nextflow_trace_rows_become_runs_and_bad_rows_one_line_errors(tmp_path):
    path = write(tmp_path, "trace.txt", NEXTFLOW_TRACE)
    entries, problems = import_file(path, ImportOptions("nextflow"))
    assert runs_of(entries) == [
        ("ALIGN", 512 * MIB, int(1.1 * GIB), 0),
        ("ALIGN", GIB, int(2.2 * GIB), 0),
        ("ALIGN", 2 * GIB, 3 * GIB, 137),  # FAILED: kept, its peak a floor
        ("NFCORE:QC:FASTQC", 5 * MIB, 100 * MIB, 1),  # ABORTED with no exit code: failed
    ]
    assert [e.run.duration_s for e in entries[:2]] == [58.3, 119.0]
    assert {e.run.source for e in entries} == {"nextflow"}
    assert problems == [
        f"{path}:6: 2 fields where the header has 14",
        f"{path}:7: no peak_rss (FAILED task): nothing to record",
    ]
    doc = json.loads(entries[0].summary)
    assert doc["fields"]["hash"] == "2b/9d4e3a" and doc["imported"]["format"] == "nextflow"


def test_a_raw_nextflow_trace_reads_bytes_and_milliseconds(tmp_path):
    path = write(tmp_path, "trace.txt", NEXTFLOW_RAW)
    [entry], problems = import_file(path, ImportOptions("nextflow"))
    assert problems == []
    assert runs_of([entry]) == [("ALIGN", 536870912.0, 1181116006, 0)]
    assert entry.run.duration_s == 58.3


def test_the_same_nextflow_task_imported_twice_has_one_uid(tmp_path):
    first, _ = import_file(write(tmp_path, "a.txt", NEXTFLOW_TRACE), ImportOptions("nextflow"))
    again, _ = import_file(write(tmp_path, "b.txt", NEXTFLOW_RAW), ImportOptions("nextflow"))
    assert again[0].run.uid == first[0].run.uid  # same task hash: the same run
    assert len({e.run.uid for e in first}) == len(first)


def test_size_from_the_task_tag_and_a_size_column(tmp_path):
    path = write(tmp_path, "trace.txt", NEXTFLOW_TRACE)
    tagged, problems = import_file(
        path, ImportOptions("nextflow", size_from=re.compile(r"sample_(\d+)"))
    )
    assert [e.run.size for e in tagged] == [1.0, 2.0, 3.0]
    assert f"{path}:5: --size-from 'sample_(\\\\d+)' does not match" in problems[0]
    by_wchar, _ = import_file(path, ImportOptions("nextflow", size_column="wchar", job="aln"))
    assert [(e.run.job, e.run.size) for e in by_wchar][:2] == [("aln", 10 * MIB), ("aln", 20 * MIB)]
    _, problems = import_file(path, ImportOptions("nextflow", size_column="nope"))
    assert problems[0].startswith(f"{path}:2: no column 'nope' (there are: task_id, hash")


def test_a_file_of_another_format_is_refused_by_its_header(tmp_path):
    path = write(tmp_path, "bench.tsv", SNAKEMAKE_BENCHMARK)
    with pytest.raises(InputError, match=r"tsv:1: no column name, status, peak_rss .*--format"):
        import_file(path, ImportOptions("nextflow"))


# A Snakemake benchmark file (`benchmark:` directive), one row per repeat. Columns from
# https://snakemake.readthedocs.io/en/stable/tutorial/additional_features.html#benchmarking
# and snakemake/benchmark.py: s, h:m:s, max_rss, max_vms, max_uss, max_pss, io_in, io_out,
# mean_load, cpu_time; memory in MiB ("memory usage (in MiB)"), "NA" when not measured.
SNAKEMAKE_BENCHMARK = """\
s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time
12.3456\t0:00:12\t1024.50\t2048.00\t1000.00\t1010.00\t0.10\t5.00\t95.00\t11.80
13.0000\t0:00:13\t1030.00\t2048.00\t1001.00\t1011.00\t0.10\t5.00\t95.00\t12.30
14.0000\t0:00:14\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA
"""


def test_snakemake_benchmarks_take_job_and_size_from_the_path(tmp_path):
    path = write(tmp_path, "benchmarks/bwa_map/sample_4000.tsv", SNAKEMAKE_BENCHMARK)
    size_from = re.compile(r"benchmarks/(?P<job>\w+)/sample_(?P<size>\d+)\.tsv$")
    entries, problems = import_file(path, ImportOptions("snakemake", size_from=size_from))
    assert runs_of(entries) == [
        ("bwa_map", 4000.0, int(1024.5 * MIB), 0),
        ("bwa_map", 4000.0, 1030 * MIB, 0),
    ]
    assert entries[0].run.duration_s == 12.3456
    assert problems == [f"{path}:4: max_rss is 'NA': no memory figure"]


def test_a_snakemake_benchmark_without_a_job_name_says_how_to_give_one(tmp_path):
    path = write(tmp_path, "b.tsv", SNAKEMAKE_BENCHMARK)
    entries, problems = import_file(path, ImportOptions("snakemake"))
    assert entries == []
    assert problems[0] == (
        f"{path}:2: no job name: give --job NAME or a (?P<job>...) group in --size-from"
    )


# `sacct --parsable2 --format=JobID,JobName,State,ExitCode,Elapsed,ReqMem,MaxRSS,NodeList`:
# '|' between fields, no trailing '|', a header row. Fields: sacct(1),
# https://slurm.schedmd.com/sacct.html: MaxRSS "Maximum resident set size of all tasks in
# job" per step (the allocation row has none), with a K/M/G suffix; ExitCode "code:signal";
# Elapsed "[days-]hours:minutes:seconds"; State COMPLETED, FAILED, CANCELLED by UID,
# OUT_OF_MEMORY, TIMEOUT ...
SACCT = """\
JobID|JobName|State|ExitCode|Elapsed|ReqMem|MaxRSS|NodeList
1001|align_2000|COMPLETED|0:0|00:10:00|8G||node01
1001.batch|batch|COMPLETED|0:0|00:10:00||1180K|node01
1001.extern|extern|COMPLETED|0:0|00:10:00||992K|node01
1001.0|bwa|COMPLETED|0:0|00:09:58||5266672K|node01
1002|align_4000|OUT_OF_MEMORY|0:9|1-02:03:04|8G||node02
1002.batch|batch|OUT_OF_MEMORY|0:9|1-02:03:04||7.95G|node02
1003|align_8000|COMPLETED|0:0|00:01:00|8G||node03
1004|align_1000|CANCELLED by 1000|0:15|00:00:05|8G|garbage|node04
1005|short
"""


def test_sacct_steps_fold_into_one_run_per_job(tmp_path):
    path = write(tmp_path, "sacct.txt", SACCT)
    size_from = re.compile(r"(?P<job>\w+)_(?P<size>\d+)")
    entries, problems = import_file(path, ImportOptions("slurm", size_from=size_from))
    assert runs_of(entries) == [
        ("align", 2000.0, 5266672 * KIB, 0),
        ("align", 4000.0, int(7.95 * GIB), 128 + 9),
    ]
    assert entries[1].run.oom_killed and entries[1].run.duration_s == 93784.0
    assert [e.run.host for e in entries] == ["node01", "node02"]
    assert json.loads(entries[0].summary)["fields"]["ReqMem"] == "8G"
    assert problems == [
        f"{path}:10: 2 fields where the header has 8",
        f"{path}:8: job 1003 has no MaxRSS in any step (is job accounting gathering on?)",
        f"{path}:9: not an amount of memory: 'garbage'",
    ]


# GNU time -v (time(1), https://www.gnu.org/software/time/manual/html_node/Resource-Measurement.html
# "Maximum resident set size (kbytes)"), appended to one log by `time -a -o LOG -v CMD`;
# the second command exited 3, which GNU time says on the line before its report.
TIME_VERBOSE = """\
job output line: ignored
\tCommand being timed: "sort --buffer-size=1G big_2000.txt"
\tUser time (seconds): 1.50
\tSystem time (seconds): 0.20
\tPercent of CPU this job got: 98%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:01.73
\tMaximum resident set size (kbytes): 204800
\tExit status: 0
Command exited with non-zero status 3
\tCommand being timed: "sort --buffer-size=1G big_4000.txt"
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03
\tMaximum resident set size (kbytes): 409600
\tExit status: 3
\tCommand being timed: "sort big_8000.txt"
\tExit status: 0
"""


def test_gnu_time_verbose_reports_become_runs(tmp_path):
    path = write(tmp_path, "time.log", TIME_VERBOSE)
    size_from = re.compile(r"big_(\d+)")
    entries, problems = import_file(path, ImportOptions("time", job="sort", size_from=size_from))
    assert runs_of(entries) == [("sort", 2000.0, 200 * MIB, 0), ("sort", 4000.0, 400 * MIB, 3)]
    assert [e.run.duration_s for e in entries] == [1.73, 3723.0]
    assert entries[0].run.command == ("sort --buffer-size=1G big_2000.txt",)
    assert problems == [
        f"{path}:14: no 'Maximum resident set size (kbytes)' in the report of 'sort big_8000.txt'"
    ]


# GNU time's default format (no -v, no -f): time.c's DEFAULT_FORMAT "%Uuser %Ssystem
# %Eelapsed %PCPU (%Xavgtext+%Davgdata %Mmaxresident)k\n%Iinputs+%Ooutputs
# (%Fmajor+%Rminor)pagefaults %Wswaps" (the man page abbreviates it); a command killed by
# a signal is announced on the line before, as /usr/bin/time 1.9 prints it.
TIME_DEFAULT = """\
1.50user 0.20system 0:01.73elapsed 98%CPU (0avgtext+0avgdata 204800maxresident)k
0inputs+8outputs (0major+51000minor)pagefaults 0swaps
Command terminated by signal 9
0.50user 0.10system 0:00.90elapsed 66%CPU (0avgtext+0avgdata 99999maxresident)k
0inputs+0outputs (0major+100minor)pagefaults 0swaps
"""


def test_gnu_time_default_and_custom_formats(tmp_path):
    path = write(tmp_path, "time.log", TIME_DEFAULT)
    entries, problems = import_file(path, ImportOptions("time", job="sort"))
    assert problems == []
    assert [(e.run.peak_bytes, e.run.exit_status) for e in entries] == [
        (204800 * KIB, 0),
        (99999 * KIB, 137),
    ]
    custom = write(tmp_path, "custom.log", "x\nsize=2000 peak=1024 took=1.5s rc=0\n")
    entries, _ = import_file(
        custom,
        ImportOptions(
            "time",
            job="j",
            size_from=None,
            time_format="size=%C peak=%M took=%es rc=%x",
        ),
    )
    assert [(e.run.command, e.run.peak_bytes, e.run.duration_s) for e in entries] == [
        (("2000",), 1024 * KIB, 1.5)
    ]
    assert entries[0].run.uid != import_file(path, ImportOptions("time", job="j"))[0][0].run.uid
