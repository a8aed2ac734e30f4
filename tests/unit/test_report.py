"""memwatch.report: human summary, JSON summary, streamed samples, output path checks."""

from __future__ import annotations

import csv
import json
import os

import pytest

from memwatch.errors import UsageError
from memwatch.measures import Bounds, CgroupPeak, Peak, Plateau, Sample
from memwatch.report import (
    SCHEMA,
    SampleWriter,
    check_writable,
    format_human,
    human_bytes,
    to_json,
    write_json,
)

MIB = 1 << 20


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "n/a"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * MIB, "5.0 MiB"),
        (int(2.25 * (1 << 30)), "2.2 GiB"),
        (3 << 40, "3.0 TiB"),
        (5000 << 40, "5000.0 TiB"),
    ],
)
def test_human_bytes_uses_binary_units(n, text):
    assert human_bytes(n) == text


# --- format_human ---------------------------------------------------------------------------


def test_human_summary_shows_peak_source_bounds_and_ru_maxrss(run_summary):
    text = format_human(run_summary())
    assert "peak 820.0 MiB (RAM 700.0 MiB + swap 120.0 MiB) at 7.25 s" in text
    assert "source: cgroup (kernel cgroup peak, exact)" in text
    assert "bounds 800.0 MiB .. 820.0 MiB" in text
    assert "ru_maxrss (what GNU time reports): 210.0 MiB" in text
    assert "5 process(es), 124 samples every 0.1 s over 12.35 s; exit status 0" in text


def test_human_summary_prefixes_every_line_and_lists_warnings_last(run_summary):
    warnings = ("no job cgroup (permission denied): the peak comes from sampling", "second")
    lines = format_human(run_summary(warnings=warnings)).splitlines()
    assert all(line.startswith("memwatch: ") for line in lines)
    assert lines[-2:] == [f"memwatch: warning: {w}" for w in warnings]


def test_human_summary_names_job_and_size_when_given(run_summary):
    assert "job train, size 1000000" in format_human(run_summary(job="train", size=1e6))
    assert "size" not in format_human(run_summary(job=None, size=None))


def test_human_summary_without_warnings_has_no_warning_line(run_summary):
    assert "warning" not in format_human(run_summary())


def test_human_summary_in_pss_mode_splits_pss_and_swap(run_summary):
    peak = Peak(500 * MIB, 900 * MIB, 100 * MIB, 400 * MIB, None, "sampling")
    text = format_human(run_summary(peak=peak, bounds=Bounds(500 * MIB, 1000 * MIB)))
    assert "peak 500.0 MiB (PSS 400.0 MiB + SwapPss 100.0 MiB);" in text
    assert "RSS summed per process 900.0 MiB" in text
    assert " at " not in text.splitlines()[0]


@pytest.mark.parametrize("source", ["sampling", "hwm"])
def test_human_summary_names_every_source(run_summary, source):
    peak = Peak(1 * MIB, 1 * MIB, 0, None, 0.5, source)
    assert f"source: {source} (" in format_human(run_summary(peak=peak))


def test_human_summary_of_a_signalled_command_shows_128_plus_n(run_summary):
    text = format_human(run_summary(exit_code=None, signal=9))
    assert "killed by SIGKILL (exit status 137)" in text


def test_human_summary_of_an_oom_kill_says_so(run_summary):
    text = format_human(run_summary(exit_code=None, signal=9, oom_killed=True))
    assert "killed by the OOM killer (exit status 137)" in text


# --- JSON -----------------------------------------------------------------------------------

DESIGN_KEYS = {
    "schema",
    "command",
    "exit_code",
    "signal",
    "oom_killed",
    "duration_s",
    "interval_s",
    "samples",
    "peak",
    "bounds",
    "ru_maxrss_bytes",
    "swap_suspected",
    "plateaus",
    "warnings",
    "size",
    "job",
}


def test_json_has_every_key_design_md_promises(run_summary):
    doc = to_json(run_summary())
    assert doc.keys() >= DESIGN_KEYS
    assert doc["schema"] == SCHEMA
    assert set(doc["peak"]) == {
        "total_bytes",
        "rss_bytes",
        "swap_bytes",
        "pss_bytes",
        "at_s",
        "source",
    }
    assert set(doc["bounds"]) == {"lower_bytes", "upper_bytes"}


def test_json_values_match_the_summary(run_summary):
    plateau = Plateau(3.0, 9.5, 200 * MIB, 64 * MIB, 80 * MIB)
    doc = to_json(
        run_summary(
            plateaus=(plateau,),
            swap_suspected=True,
            warnings=("w1",),
            size=1e6,
            job="train",
            cgroup=CgroupPeak(1, 700 * MIB, 820 * MIB, True, 0),
        )
    )
    assert doc["command"] == ["python3", "train.py", "--rows", "1000000"]
    assert (doc["exit_code"], doc["signal"], doc["oom_killed"]) == (0, None, False)
    assert doc["duration_s"] == 12.345679
    assert (doc["interval_s"], doc["samples"]) == (0.1, 124)
    assert doc["peak"]["total_bytes"] == 820 * MIB
    assert doc["peak"]["pss_bytes"] is None
    assert doc["peak"]["source"] == "cgroup"
    assert doc["bounds"] == {"lower_bytes": 800 * MIB, "upper_bytes": 820 * MIB}
    assert doc["ru_maxrss_bytes"] == 210 * MIB
    assert doc["swap_suspected"] is True
    assert doc["plateaus"] == [
        {
            "start_s": 3.0,
            "end_s": 9.5,
            "rss_bytes": 200 * MIB,
            "swap_growth_bytes": 64 * MIB,
            "system_swapout_bytes": 80 * MIB,
        }
    ]
    assert doc["warnings"] == ["w1"]
    assert (doc["size"], doc["job"]) == (1000000, "train")
    assert doc["cgroup"]["total_bytes"] == 820 * MIB


def test_json_counts_processes_it_could_not_read(run_summary):
    assert to_json(run_summary(unreadable_processes=3))["unreadable_processes"] == 3


def test_json_round_trips(run_summary):
    doc = to_json(run_summary(plateaus=(Plateau(1.0, 2.0, 3, 4, 5),), warnings=("a", "b"), job="j"))
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_json_of_a_signalled_run_has_null_exit_code(run_summary):
    doc = to_json(run_summary(exit_code=None, signal=15))
    assert (doc["exit_code"], doc["signal"]) == (None, 15)


def test_write_json_writes_the_summary_and_leaves_no_temp_file(run_summary, tmp_path):
    path = tmp_path / "peak.json"
    write_json(run_summary(), str(path))
    assert json.loads(path.read_text()) == to_json(run_summary())
    assert os.listdir(tmp_path) == ["peak.json"]


# --- SampleWriter ---------------------------------------------------------------------------


def samples():
    return [
        Sample(0.0, 100 * MIB, 90 * MIB, 10 * MIB, None, 1),
        Sample(0.1000004, 300 * MIB, 250 * MIB, 50 * MIB, None, 3, 7 * MIB),
    ]


def test_csv_has_a_header_and_one_row_per_sample(tmp_path):
    path = tmp_path / "mem.csv"
    writer = SampleWriter(str(path))
    for s in samples():
        writer(s)
    writer.close()
    rows = list(csv.reader(path.open()))
    assert rows == [
        ["at_s", "total_bytes", "rss_bytes", "swap_bytes", "pss_bytes", "processes"],
        ["0.0", str(100 * MIB), str(90 * MIB), str(10 * MIB), "", "1"],
        ["0.1", str(300 * MIB), str(250 * MIB), str(50 * MIB), "", "3"],
    ]


def test_csv_header_and_each_row_are_on_disk_before_close(tmp_path):
    path = tmp_path / "mem.csv"
    writer = SampleWriter(str(path))
    assert path.read_text().splitlines() == [
        "at_s,total_bytes,rss_bytes,swap_bytes,pss_bytes,processes"
    ]
    writer(samples()[0])
    assert len(path.read_text().splitlines()) == 2
    writer(samples()[1])
    assert len(path.read_text().splitlines()) == 3
    writer.close()


@pytest.mark.parametrize("ext", [".jsonl", ".ndjson"])
def test_jsonl_has_one_flushed_object_per_sample_and_no_header(tmp_path, ext):
    path = tmp_path / f"mem{ext}"
    writer = SampleWriter(str(path))
    assert path.read_text() == ""
    writer(samples()[0])
    first = path.read_text().splitlines()
    assert [json.loads(line) for line in first] == [
        {
            "at_s": 0.0,
            "total_bytes": 100 * MIB,
            "rss_bytes": 90 * MIB,
            "swap_bytes": 10 * MIB,
            "pss_bytes": None,
            "processes": 1,
        }
    ]
    writer(samples()[1])
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["at_s"] == 0.1
    writer.close()


@pytest.mark.parametrize("name", ["mem.txt", "mem.json", "mem", "mem.csv.gz"])
def test_unknown_samples_extension_is_a_usage_error_before_creating_a_file(tmp_path, name):
    with pytest.raises(UsageError, match=r"\.csv or \.jsonl"):
        SampleWriter(str(tmp_path / name))
    assert not (tmp_path / name).exists()


def test_samples_in_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--samples"):
        SampleWriter(str(tmp_path / "nope" / "mem.csv"))


def test_writing_after_close_is_harmless_and_writes_nothing(tmp_path):
    path = tmp_path / "mem.csv"
    writer = SampleWriter(str(path))
    writer(samples()[0])
    writer.close()
    before = path.read_text()
    writer(samples()[1])
    writer.close()
    assert path.read_text() == before
    assert writer.error is None


def test_write_error_stops_the_stream_and_is_reported(tmp_path):
    path = tmp_path / "mem.jsonl"
    os.symlink("/dev/full", path)  # every write fails with ENOSPC
    writer = SampleWriter(str(path))
    writer(samples()[0])
    assert writer.error is not None
    assert str(path) in writer.error
    assert "No space left on device" in writer.error
    first_error = writer.error
    writer(samples()[1])  # stream already stopped: no second attempt, no exception
    assert writer.error == first_error


# --- check_writable -------------------------------------------------------------------------


def test_check_writable_rejects_a_missing_directory_naming_it(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(UsageError) as info:
        check_writable(str(missing / "peak.json"), "--json")
    message = str(info.value)
    assert message.startswith("--json ")
    assert str(missing) in message
    assert "\n" not in message


def test_check_writable_accepts_a_new_file_in_an_existing_directory(tmp_path):
    assert check_writable(str(tmp_path / "peak.json"), "--json") is None
    assert not (tmp_path / "peak.json").exists()


def test_json_command_with_non_utf8_bytes_is_valid_utf8(run_summary):
    summary = run_summary(command=("echo", "caf\udce9"))
    text = json.dumps(to_json(summary), ensure_ascii=False)
    text.encode("utf-8")  # a lone surrogate would raise UnicodeEncodeError here
    assert to_json(summary)["command"] == ["echo", "caf\ufffd"]


# --- the backend that sampled ----------------------------------------------------------------


def test_json_names_the_backend(run_summary):
    assert to_json(run_summary())["backend"] == "proc"
    assert to_json(run_summary(backend="psutil"))["backend"] == "psutil"


def test_human_summary_mentions_psutil_and_unknown_figures_only_when_so(run_summary):
    assert "psutil" not in format_human(run_summary())
    peak = Peak(500 * MIB, 500 * MIB, None, None, 1.0, "sampling")
    text = format_human(run_summary(backend="psutil", peak=peak, bounds=Bounds(200 * MIB, None)))
    assert "(sampled through psutil)" in text
    assert "RAM 500.0 MiB + swap n/a" in text
    assert "bounds 200.0 MiB .. n/a" in text
    doc = to_json(run_summary(backend="psutil", peak=peak, bounds=Bounds(200 * MIB, None)))
    assert doc["peak"]["swap_bytes"] is None
    assert doc["bounds"]["upper_bytes"] is None


def test_ru_maxrss_of_a_job_shorter_than_a_sample_is_unknown_not_zero(run_summary):
    summary = run_summary(ru_maxrss_bytes=None)
    assert json.loads(json.dumps(to_json(summary)))["ru_maxrss_bytes"] is None
    assert "ru_maxrss (what GNU time reports): unknown" in format_human(summary)
