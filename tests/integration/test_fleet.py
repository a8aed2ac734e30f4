"""Many machines, one history: the real CLI against a real PostgreSQL server.

A server stopped in the middle of a sweep costs no run, no summary and no exit status;
the same runs give the same advice from PostgreSQL as from SQLite; a Nextflow trace goes
in with `history import` and out as a prediction.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from memwatch.history import open_history

from .conftest import MEMHOG, REPO

SIZES = "40,80,120,160"


def test_a_server_stopped_in_a_sweep_costs_no_run_and_sync_sends_each_once(
    cli, postgres, pg_url, tmp_path
):
    # The size-80 run waits until the test has stopped the server: the runs from then on
    # cannot be written, deterministically, however slow the machine.
    asked, stopped = tmp_path / "stop-now", tmp_path / "stopped"
    job = (
        f"if [ {{size}} = 80 ]; then touch {asked}; while [ ! -e {stopped} ]; do sleep 0.05; "
        f'done; fi; exec "{sys.executable}" "{MEMHOG}" hold {{size}} 0.2'
    )

    def stop_server_when_asked() -> None:
        while not asked.exists() and sweep.poll() is None:
            threading.Event().wait(0.05)
        if asked.exists():
            postgres.stop()
            stopped.touch()

    sweep = cli(
        "sweep", "--sizes", SIZES, "--no-warmup", "--at", "320", "--json", "--job", "hog",
        "--history", pg_url, "--", "sh", "-c", job, wait=False,
    )  # fmt: skip
    stopper = threading.Thread(target=stop_server_when_asked)
    stopper.start()
    try:
        out, err = sweep.communicate(timeout=300)
    finally:
        stopper.join()
        postgres.start()
    assert sweep.returncode == 0, err
    doc = json.loads(out)  # the whole report, as if the server had stayed up
    assert [m["size"] for m in doc["measurements"]] == [40, 80, 120, 160]
    spool = tmp_path / "spool"
    assert len(os.listdir(spool)) == 3
    assert f"wait in the spool {spool} for memwatch history sync --history {pg_url}" in err
    store = open_history(pg_url)
    assert [r.size for r in store.runs("hog")] == [40.0]

    code, _, err = cli("history", "sync", "--history", pg_url)
    assert code == 0, err
    assert err.endswith(f"sent 3 spooled run(s) to {pg_url} (3 new)\n")
    code, _, err = cli("history", "sync", "--history", pg_url)
    assert err.endswith(f"sent 0 spooled run(s) to {pg_url} (0 new)\n")
    runs = store.runs("hog")
    assert sorted(r.size for r in runs) == [40.0, 80.0, 120.0, 160.0]
    assert len({r.uid for r in runs}) == 4 and os.listdir(spool) == []


def test_predict_from_postgresql_equals_predict_from_sqlite(cli, pg_url, tmp_path):
    code, _, err = cli(
        "sweep", "--sizes", SIZES, "--no-warmup", "--at", "320", "--job", "hog", "--",
        sys.executable, MEMHOG, "hold", "{size}", "0.2",
    )  # fmt: skip
    assert code == 0, err
    sqlite = str(cli.history.path)
    code, _, err = cli("history", "copy", sqlite, pg_url)
    assert code == 0 and err.endswith(f"copied 4 run(s) from {sqlite} to {pg_url} (4 new)\n")
    reports = []
    for history in (sqlite, pg_url):
        code, out, err = cli(
            "predict", "--job", "hog", "--at", "320", "--json", "--history", history
        )
        assert code == 0, err
        reports.append(json.loads(out))
    for report in reports:  # what depends on the memory free right now is not compared
        for prediction in report["predictions"]:
            prediction.pop("parallel_tasks", None)
        report.pop("plan", None)
        report["budget"].pop("available_bytes")
    assert reports[0] == reports[1]


# Written by hand in the trace file format Nextflow documents (default fields, human-readable
# sizes in powers of 1024): https://docs.seqera.io/nextflow/reference/config/trace. ALIGN's
# peak_rss is 0.5 GB + its rchar; its task at rchar 6 GB failed at 4 GB (a floor).
NEXTFLOW_TRACE = REPO / "examples" / "nextflow-trace.txt"
GIB = 1 << 30


def test_a_nextflow_trace_imported_into_postgresql_gives_a_prediction(cli, pg_url):
    code, _, err = cli(
        "history", "import", "--format", "nextflow", str(NEXTFLOW_TRACE), "--history", pg_url
    )
    assert code == 0, err
    assert err.endswith(f"imported 6 run(s) from 1 file(s) into {pg_url} (6 new)\n")
    code, out, err = cli(
        "predict", "--job", "NFCORE_DEMO:ALIGN", "--at", str(8 * GIB), "--json", "--history", pg_url
    )
    assert code == 0, err
    [prediction] = json.loads(out)["predictions"]
    assert abs(prediction["expected_bytes"] - 8.5 * GIB) < 0.05 * 8.5 * GIB
    assert prediction["recommended_bytes"] >= prediction["expected_bytes"]
