"""memwatch.report.read_samples: reading back what SampleWriter wrote, and bad input."""

from __future__ import annotations

import json
import os
import threading

import pytest

from memwatch.errors import InputError
from memwatch.measures import Sample
from memwatch.report import SampleWriter, read_samples

MIB = 1 << 20
HEADER = "at_s,total_bytes,rss_bytes,swap_bytes,pss_bytes,processes"


def series() -> list[Sample]:
    return [
        Sample(0.0, 100 * MIB, 90 * MIB, 10 * MIB, None, 1),
        Sample(0.1, 300 * MIB, 250 * MIB, 50 * MIB, None, 3),
        Sample(0.2, 310 * MIB, 250 * MIB, 60 * MIB, 200 * MIB, 12),
        Sample(12.345678, 5, 5, 0, 0, 1),
    ]


def written(path: str, samples: list[Sample]) -> str:
    writer = SampleWriter(path)
    for s in samples:
        writer(s)
    writer.close()
    return path


def error_of(path: str) -> str:
    with pytest.raises(InputError) as info:
        read_samples(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".ndjson"])
def test_reads_back_exactly_what_sample_writer_wrote(tmp_path, ext):
    path = written(str(tmp_path / f"mem{ext}"), series())
    assert read_samples(path) == series()


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_round_trip_keeps_at_s_to_the_microsecond_and_drops_system_swapout(tmp_path, ext):
    # The samples file does not carry system_swapout_bytes: it reads back as None.
    original = Sample(0.1000004, 1, 1, 0, None, 1, system_swapout_bytes=7 * MIB)
    (back,) = read_samples(written(str(tmp_path / f"mem{ext}"), [original]))
    assert back.at_s == 0.1
    assert back.system_swapout_bytes is None


def test_reads_csv_from_a_fifo(tmp_path):
    fifo = tmp_path / "mem.pipe"
    os.mkfifo(fifo)
    text = f"{HEADER}\r\n0.0,10,10,0,,1\r\n0.5,20,15,5,,2\r\n"

    def feed() -> None:
        with open(fifo, "w") as f:
            f.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        samples = read_samples(str(fifo))
    finally:
        writer.join()
    assert samples == [Sample(0.0, 10, 10, 0, None, 1), Sample(0.5, 20, 15, 5, None, 2)]


def test_csv_columns_may_come_in_any_order_with_extra_ones(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_text(
        "processes,note,pss_bytes,swap_bytes,rss_bytes,total_bytes,at_s,system_swapout_bytes\n"
        "2,x,,5,10,15,0.5,4096\n"
    )
    assert read_samples(str(path)) == [Sample(0.5, 15, 10, 5, None, 2, 4096)]


def test_blank_lines_and_a_byte_order_mark_are_harmless(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_bytes(f"\ufeff{HEADER}\n\n0.0,10,10,0,,1\n\n0.5,20,15,5,,2\n\n".encode())
    assert len(read_samples(str(path))) == 2


# --- a file cut off by a killed memwatch ----------------------------------------------------


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_a_last_line_cut_anywhere_is_dropped_and_every_complete_row_kept(tmp_path, ext):
    full = (tmp_path / f"full{ext}").as_posix()
    written(full, series())
    with open(full, "rb") as f:
        data = f.read()
    last_start = data.rstrip(b"\r\n").rfind(b"\n") + 1
    cut = tmp_path / f"cut{ext}"
    for end in range(last_start + 1, len(data)):
        cut.write_bytes(data[:end])
        samples = read_samples(str(cut))
        assert samples[:3] == series()[:3], end
        # A cut inside the last field can leave a shorter but valid number (processes 1 of
        # 12): only the line end would tell, and a hand-written file may lack one.
        assert len(samples) in (3, 4), end


@pytest.mark.parametrize(
    "last",
    ["0.3,31457280,2621", "0.3,31457280,26214400,524", "0.3,31457280,26214400,5242880,,"],
)
def test_a_csv_row_cut_short_at_the_end_is_ignored(tmp_path, last):
    path = tmp_path / "mem.csv"
    path.write_text(f"{HEADER}\n0.0,10,10,0,,1\n{last}")
    assert read_samples(str(path)) == [Sample(0.0, 10, 10, 0, None, 1)]


def test_a_jsonl_line_cut_at_the_end_is_ignored(tmp_path):
    path = tmp_path / "mem.jsonl"
    path.write_text(
        '{"at_s": 0, "total_bytes": 5, "rss_bytes": 5, "swap_bytes": 0, '
        '"pss_bytes": null, "processes": 1}\n{"at_s": 0.1, "total_by'
    )
    assert read_samples(str(path)) == [Sample(0.0, 5, 5, 0, None, 1)]


def test_a_short_csv_row_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_text(f"{HEADER}\n0.0,10,10,0,,1\n0.1,20,20\n0.2,30,30,0,,1\n")
    message = error_of(str(path))
    assert message.startswith(f"{path}:3: 3 fields, expected 6")


def test_a_cut_jsonl_line_in_the_middle_is_an_error(tmp_path):
    good = json.dumps(dict.fromkeys(HEADER.split(","), 1))
    path = tmp_path / "mem.jsonl"
    path.write_text(f'{good}\n{{"at_s": 0.1, "tot\n{good}\n')
    message = error_of(str(path))
    assert message.startswith(f"{path}:2: not valid JSON (")
    assert message.endswith("; fix or delete that line")


def test_a_bad_value_on_a_complete_last_line_is_an_error_not_a_truncation(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_text(f"{HEADER}\n0.0,10,10,0,,1\n0.1,abc,10,0,,1\n")
    assert error_of(str(path)).startswith(f"{path}:3: total_bytes: not an integer (got 'abc')")


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("0.1,abc,10,0,,1", "total_bytes: not an integer (got 'abc')"),
        ("0.1,10,1.5,0,,1", "rss_bytes: not an integer (got '1.5')"),
        ("0.1,10,10,-4,,1", "swap_bytes: must be >= 0 (got '-4')"),
        ("0.1,10,10,0,x,1", "pss_bytes: not an integer (got 'x')"),
        ("0.1,10,10,0,,", "processes: no value (got '')"),
        ("soon,10,10,0,,1", "at_s: not a number (got 'soon')"),
        ("nan,10,10,0,,1", "at_s: must be a finite number of seconds >= 0 (got 'nan')"),
    ],
)
def test_a_bad_csv_value_names_file_line_column_and_value(tmp_path, row, expected):
    path = tmp_path / "mem.csv"
    path.write_text(f"{HEADER}\n0.0,10,10,0,,1\n{row}\n0.2,10,10,0,,1\n")
    assert error_of(str(path)) == f"{path}:3: {expected}; fix or delete that line"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"total_bytes": "lots"}, "total_bytes: not an integer (got 'lots')"),
        ({"rss_bytes": 1.5}, "rss_bytes: not an integer (got 1.5)"),
        ({"processes": True}, "processes: not an integer (got true)"),
        ({"rss_bytes": None}, "rss_bytes: no value (got null)"),
        ({"at_s": [1]}, "at_s: not a number (got [1])"),
    ],
)
def test_a_bad_jsonl_value_names_file_line_key_and_value(tmp_path, change, expected):
    good = {"at_s": 0, "total_bytes": 5, "rss_bytes": 5, "swap_bytes": 0}
    good |= {"pss_bytes": None, "processes": 1}
    path = tmp_path / "mem.jsonl"
    lines = [json.dumps(good), json.dumps(good | change), json.dumps(good)]
    path.write_text("\n".join(lines) + "\n")
    assert error_of(str(path)) == f"{path}:2: {expected}; fix or delete that line"


def test_a_jsonl_line_that_is_not_an_object_is_an_error(tmp_path):
    path = tmp_path / "mem.jsonl"
    path.write_text("[1, 2]\n")
    assert error_of(str(path)).startswith(f"{path}:1: not a JSON object (got [1, 2]);")


def test_a_jsonl_line_without_a_key_names_it(tmp_path):
    path = tmp_path / "mem.jsonl"
    path.write_text('{"at_s": 0, "total_bytes": 5, "swap_bytes": 0, "processes": 1}\n')
    assert error_of(str(path)) == (
        f"{path}:1: missing rss_bytes, pss_bytes; "
        "expected a samples file written by memwatch run --samples"
    )


def test_time_going_backwards_is_an_error(tmp_path):
    # Two runs' files concatenated: the plot and the plateau detector need one run in order.
    path = tmp_path / "mem.csv"
    path.write_text(f"{HEADER}\n0.0,10,10,0,,1\n5.0,10,10,0,,1\n1.0,10,10,0,,1\n")
    assert error_of(str(path)).startswith(
        f"{path}:4: at_s: earlier than the line before (1 s < 5 s)"
    )


def test_a_long_bad_value_is_shortened_to_keep_one_line(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_text(f"{HEADER}\n0.0,{'9' * 30}x{'9' * 200},10,0,,1\n0.1,10,10,0,,1\n")
    assert len(error_of(str(path))) < 200


# --- the file as a whole --------------------------------------------------------------------


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_text("at_s,total_bytes,swap_bytes,pss_bytes,processes\n0.0,10,0,,1\n")
    assert error_of(str(path)) == (
        f"{path}: missing column rss_bytes; "
        "expected a samples file written by memwatch run --samples"
    )


def test_a_runs_csv_given_by_mistake_lists_every_missing_column(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("size,peak_bytes\n1000,1048576\n")
    assert error_of(str(path)).startswith(
        f"{path}: missing columns at_s, total_bytes, rss_bytes, swap_bytes, pss_bytes, processes;"
    )


@pytest.mark.parametrize(("name", "text"), [("mem.csv", ""), ("mem.jsonl", ""), ("mem.csv", "\n")])
def test_an_empty_file_is_an_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    message = error_of(str(path))
    assert message.startswith(f"{path}: ")
    assert "expected a samples file written by memwatch run --samples" in message


def test_a_header_without_samples_says_no_samples(tmp_path):
    path = tmp_path / "mem.csv"
    path.write_text(HEADER + "\r\n")
    assert error_of(str(path)).startswith(f"{path}: no samples;")


def test_a_file_holding_only_a_cut_line_has_no_samples(tmp_path):
    path = tmp_path / "mem.jsonl"
    path.write_text('{"at_s": 0, "tot')
    assert error_of(str(path)).startswith(f"{path}: no samples;")


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "nope.csv"
    assert error_of(str(path)) == f"{path}: cannot read: No such file or directory"


@pytest.mark.parametrize("name", ["mem.txt", "mem.json", "mem"])
def test_an_unknown_extension_is_an_error(tmp_path, name):
    path = tmp_path / name
    path.write_text(HEADER + "\n0,1,1,0,,1\n")
    assert ".csv, .jsonl or .ndjson" in error_of(str(path))


def test_input_errors_exit_with_1():
    assert InputError("x").exit_code == 1


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_unknown_swap_of_a_platform_without_it_reads_back_as_none(tmp_path, ext):
    # The psutil backend on macOS/Windows: no per-process swap, written as an empty cell.
    original = Sample(0.5, 7 * MIB, 7 * MIB, None, None, 2)
    assert read_samples(written(str(tmp_path / f"mem{ext}"), [original])) == [original]
