"""The stored evaluation corpus (benchmarks/corpus/) is complete and its split is sound."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "benchmarks" / "corpus"
REPEATS = 3


@pytest.fixture(scope="module")
def programs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("corpus_programs", CORPUS / "programs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(CORPUS / "measurements.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_corpus_has_30_workloads_of_10_kinds_and_every_pattern_twice(programs: ModuleType) -> None:
    workloads = programs.WORKLOADS.values()
    assert len(programs.WORKLOADS) >= 30
    assert len({w.kind for w in workloads}) >= 10
    patterns = Counter(w.pattern for w in workloads)
    assert set(patterns) == set(programs.PATTERNS)
    assert min(patterns.values()) >= 2


def test_sizes_span_32x_on_a_sqrt2_grid(programs: ModuleType) -> None:
    for name, w in programs.WORKLOADS.items():
        sizes = programs.sizes(w)
        assert len(set(sizes)) == 11, name
        assert sizes == sorted(sizes), name
        assert sizes[-1] / sizes[0] == pytest.approx(32, rel=0.05), name


def test_split_is_a_partition_of_the_workloads_into_halves(programs: ModuleType) -> None:
    split = json.loads((CORPUS / "split.json").read_text())
    development, held_out = set(split["development"]), set(split["held_out"])
    assert isinstance(split["seed"], int)
    assert not development & held_out
    assert development | held_out == set(programs.WORKLOADS)
    assert abs(len(development) - len(held_out)) <= 1


def test_every_workload_is_measured_at_every_size_with_every_repeat(
    programs: ModuleType, rows: list[dict[str, str]]
) -> None:
    measured = Counter((r["workload"], int(r["size"]), int(r["repeat"])) for r in rows)
    expected = {
        (name, size, repeat)
        for name, w in programs.WORKLOADS.items()
        for size in programs.sizes(w)
        for repeat in range(1, REPEATS + 1)
    }
    assert set(measured) == expected
    assert max(measured.values()) == 1  # no run recorded twice


def test_rows_carry_the_tags_of_the_table_and_positive_peaks(
    programs: ModuleType, rows: list[dict[str, str]]
) -> None:
    for r in rows:
        w = programs.WORKLOADS[r["workload"]]
        assert (r["kind"], r["pattern"]) == (w.kind, w.pattern), r
        assert int(r["peak_bytes"]) > 0, r
        assert float(r["duration_s"]) > 0, r
