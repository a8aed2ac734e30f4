"""`memwatch history import/export/copy/sync` and `memwatch fit --format`, in-process."""

from __future__ import annotations

import csv
import io
import json

from test_importers import NEXTFLOW_HEADER, NEXTFLOW_TRACE, tsv  # tests/unit is on sys.path

from memwatch import cli
from memwatch.history import History

MIB = 1 << 20


def trace(rows: list[tuple[str, str, int, int]]) -> str:
    """A Nextflow trace (default fields, raw values) of (name, status, peak MiB, rchar MiB)."""
    return tsv(
        NEXTFLOW_HEADER,
        *(
            [str(n), f"{n:02x}/abcdef", str(4000 + n), name, status, "0" if status == "COMPLETED"
             else "1", "1796000000000", "1000", "900", "99", str(peak * MIB), "0",
             str(rchar * MIB), "0"]
            for n, (name, status, peak, rchar) in enumerate(rows)
        ),
    )  # fmt: skip


def test_import_keeps_good_rows_says_bad_ones_and_stores_each_task_once(
    tmp_path, capsys, private_history
):
    path = tmp_path / "trace.txt"
    path.write_text(NEXTFLOW_TRACE)
    assert cli.main(["history", "import", "--format", "nextflow", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"memwatch: {path}:6: 2 fields where the header has 14",
        f"memwatch: {path}:7: no peak_rss (FAILED task): nothing to record",
        f"memwatch: imported 4 run(s) from 1 file(s) into {str(private_history)} (4 new); "
        "2 record(s) skipped, see above",
    ]
    assert cli.main(["history", "import", "--format", "nextflow", str(path)]) == 1
    assert "(0 new)" in capsys.readouterr().err
    assert [r.job for r in History(str(private_history)).runs()] == ["ALIGN"] * 3 + [
        "NFCORE:QC:FASTQC"
    ]


def test_fit_reads_a_nextflow_trace_directly_and_picks_the_job(tmp_path, capsys):
    path = tmp_path / "trace.txt"
    rows = [(f"ALIGN (s{n})", "COMPLETED", 100 + 10 * n, 100 * n) for n in range(1, 6)]
    path.write_text(
        trace([*rows, ("QC (s1)", "COMPLETED", 50, 10), ("ALIGN (s9)", "FAILED", 80, 900)])
    )
    assert cli.main(["fit", "--format", "nextflow", str(path), "--at", "600"]) == 1
    assert capsys.readouterr().err == (
        f"memwatch: error: {path}: runs of 2 jobs (ALIGN, QC); pick one with --job\n"
    )
    argv = ["fit", "--format", "nextflow", str(path), "--job", "ALIGN", "--at", str(600 * MIB)]
    assert cli.main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [prediction] = doc["predictions"]
    # 100 MiB + 10 MiB per 100 MiB of input: 160 MiB at 600 MiB; the failed run a floor.
    assert abs(prediction["expected_bytes"] - 160 * MIB) < MIB
    assert prediction["recommended_bytes"] >= 80 * MIB


def test_fit_without_a_size_says_how_to_give_one(tmp_path, capsys):
    path = tmp_path / "time.log"
    path.write_text('\tCommand being timed: "sort x"\n\tMaximum resident set size (kbytes): 9\n')
    assert cli.main(["fit", "--format", "time", str(path), "--at", "10"]) == 1
    assert capsys.readouterr().err == (
        f"memwatch: error: {path}: no run with a size; say where it is with --size-column or "
        "--size-from\n"
    )


def test_export_as_json_lines_and_csv_and_copy_into_another_history(
    tmp_path, capsys, run_summary, private_history
):
    store = History(str(private_history))
    store.record(run_summary(size=2.0), "train", host="n1")
    store.record(run_summary(size=None), "etl", host="n2")
    assert cli.main(["history", "export"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["job"], d["size"], d["host"]) for d in docs] == [
        ("train", 2, "n1"),
        ("etl", None, "n2"),
    ]
    assert docs[0]["summary"]["peak"]["total_bytes"] == run_summary().peak.total_bytes
    out = tmp_path / "runs.csv"
    assert cli.main(["history", "export", "--format", "csv", "--job", "etl", "-o", str(out)]) == 0
    [row] = list(csv.DictReader(io.StringIO(out.read_text())))
    assert (row["job"], row["size"], row["host"]) == ("etl", "", "n2")
    assert json.loads(row["command"]) == list(run_summary().command)
    copy = tmp_path / "copy.sqlite"
    for _ in range(2):
        assert cli.main(["history", "copy", str(private_history), str(copy)]) == 0
    assert capsys.readouterr().err.splitlines()[-1].endswith("(0 new)")
    assert [(r.job, r.host, r.uid) for r in History(str(copy)).runs()] == [
        (r.job, r.host, r.uid) for r in store.runs()
    ]
