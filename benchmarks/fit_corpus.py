#!/usr/bin/env python3
"""Do memory recommendations hold on the corpus? Forward prediction, three recommenders.

    python benchmarks/fit_corpus.py [--half development|held-out|both] [--detail]
                                    [--json PATH]

Reads benchmarks/corpus/measurements.csv (no runs: benchmarks/corpus/measure.py takes
them) and the split in benchmarks/corpus/split.json. For every workload of the half, each
recommender sees the runs (all repeats) at the 4 smallest sizes and, separately, at the 5
smallest, and recommends memory at 2x, 4x and 8x the largest size it saw: measured sizes
of the sqrt(2) grid. The truth there is the largest peak of its repeats.

  classic  a least-squares line through the fitted runs, extrapolated, + 10 %
  0.1.0    the frozen 0.1.0 envelope (benchmarks/baselines/model_0_1_0.py)
  new      memwatch.model as it is now: fit(runs, margin=0.1), predict(model, size)

recommended/actual below 1 is under-provisioned: the job would be killed or swap. A
FitError or ExtrapolationRefused is a refused prediction. For "new", "wide unwarned"
counts predictions whose plausible range high/low exceeds 1.5 but carry no warning that
mentions "measure" (the next size to measure).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from baselines import model_0_1_0 as old_model  # noqa: E402

import memwatch.model as new_model  # noqa: E402
from memwatch.errors import FitError  # noqa: E402  (ExtrapolationRefused is a FitError)

CORPUS = os.path.join(HERE, "corpus")
MARGIN = 0.10
FIT_COUNTS = (4, 5)
# The sqrt(2) grid: 2x, 4x and 8x the largest fitted size are 2, 4 and 6 sizes further.
FACTORS = {2: 2, 4: 4, 8: 6}
WIDE = 1.5
HALVES = {"development": "development", "held-out": "held_out"}
MIB = 1 << 20


@dataclass(frozen=True)
class Row:
    """One prediction: who made it, from what, and how it compares with the truth."""

    workload: str
    kind: str
    pattern: str
    half: str
    recommender: str
    fitted_sizes: int
    factor: int
    size: int
    actual_bytes: int
    recommended_bytes: int | None  # None: refused
    expected_bytes: int | None = None
    low_bytes: int | None = None
    high_bytes: int | None = None
    warnings: tuple[str, ...] = ()
    refusal: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.recommended_bytes is None:
            return None
        return self.recommended_bytes / self.actual_bytes

    @property
    def wide_unwarned(self) -> bool:
        """The plausible range spans more than 1.5x, and no warning names a size to measure."""
        if self.low_bytes is None or self.high_bytes is None or self.low_bytes <= 0:
            return False
        wide = self.high_bytes / self.low_bytes > WIDE
        return wide and not any("measure" in w for w in self.warnings)


Runs = dict[int, list[int]]  # size -> peaks of its repeats
Recommend = Callable[[Runs, int], dict[str, object]]


def classic(fitted: Runs, size: int) -> dict[str, object]:
    """A least-squares line through every fitted run, extrapolated, + 10 %."""
    x = [s for s, peaks in fitted.items() for _ in peaks]
    y = [p for peaks in fitted.values() for p in peaks]
    slope, intercept = np.polyfit(x, y, 1)
    return {"recommended_bytes": int((intercept + slope * size) * (1 + MARGIN))}


def memwatch_model(module: ModuleType) -> Recommend:
    """A recommender calling module.fit(runs, margin=0.1) and module.predict(model, size)."""

    def recommend(fitted: Runs, size: int) -> dict[str, object]:
        runs = [module.Measurement(size=s, peak_bytes=p) for s, ps in fitted.items() for p in ps]
        p = module.predict(module.fit(runs, margin=MARGIN), size)
        return {
            "recommended_bytes": int(p.recommended_bytes),
            "expected_bytes": int(p.expected_bytes),
            "low_bytes": int(p.low_bytes),
            "high_bytes": int(p.high_bytes),
            "warnings": tuple(p.warnings),
        }

    return recommend


RECOMMENDERS: dict[str, Recommend] = {
    "classic": classic,
    "0.1.0": memwatch_model(old_model),
    "new": memwatch_model(new_model),
}


def load_runs() -> dict[str, tuple[str, str, Runs]]:
    """workload -> (kind, pattern, size -> peaks) from measurements.csv."""
    found: dict[str, tuple[str, str, Runs]] = {}
    with open(os.path.join(CORPUS, "measurements.csv"), newline="") as f:
        for r in csv.DictReader(f):
            _, _, runs = found.setdefault(r["workload"], (r["kind"], r["pattern"], {}))
            runs.setdefault(int(r["size"]), []).append(int(r["peak_bytes"]))
    return found


def predictions(name: str, half: str, kind: str, pattern: str, runs: Runs) -> list[Row]:
    """Every recommender's predictions for one workload, both fit counts, every factor."""
    sizes = sorted(runs)
    rows = []
    for count in FIT_COUNTS:
        fitted = {s: runs[s] for s in sizes[:count]}
        for factor, step in FACTORS.items():
            size = sizes[count - 1 + step]
            for recommender, recommend in RECOMMENDERS.items():
                base = Row(name, kind, pattern, half, recommender, count, factor, size,
                           max(runs[size]), None)  # fmt: skip
                try:
                    rows.append(Row(**{**asdict(base), **recommend(fitted, size)}))
                except FitError as err:
                    rows.append(Row(**{**asdict(base), "refusal": str(err)}))
    return rows


def summarise(rows: list[Row]) -> dict[str, object]:
    """Counts and recommended/actual percentiles over one recommender's rows in one half."""
    ratios = [r.ratio for r in rows if r.ratio is not None]
    refused = sum(r.recommended_bytes is None for r in rows)
    return {
        "predictions": len(rows),
        "under": sum(x < 1 for x in ratios),
        "refused_pct": 100.0 * refused / len(rows) if rows else 0.0,
        "median": statistics.median(ratios) if ratios else None,
        "p90": float(np.percentile(ratios, 90)) if ratios else None,
        "max": max(ratios) if ratios else None,
        "wide_unwarned": sum(r.wide_unwarned for r in rows),
    }


def cell(value: object, recommender: str, key: str) -> str:
    if key == "wide_unwarned" and recommender != "new":
        return "-"
    if value is None:
        return "n/a"
    if key == "refused_pct":
        return f"{value:.1f}%"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_table(rows: list[Row], halves: list[str]) -> None:
    keys = ("predictions", "under", "refused_pct", "median", "p90", "max", "wide_unwarned")
    heads = ("preds", "under", "refused", "median", "p90", "max", "wide-unwarned")
    group = len("  ".join(f"{h:>7}" for h in heads))
    print(f"{'':<12}" + " | ".join(f"{h:^{group}}" for h in halves))
    print(f"{'recommender':<12}" + " | ".join("  ".join(f"{h:>7}" for h in heads) for _ in halves))
    for recommender in RECOMMENDERS:
        parts = []
        for half in halves:
            s = summarise([r for r in rows if r.recommender == recommender and r.half == half])
            parts.append("  ".join(f"{cell(s[k], recommender, k):>{max(7, len(h))}}"
                                   for k, h in zip(keys, heads, strict=True)))  # fmt: skip
        print(f"{recommender:<12}" + " | ".join(parts))


DETAIL = "{:<12}{:<22}{:<16}{:<12}{:>4}{:>3}{:>7}{:>12}{:>12}{:>7}  {}"


def print_detail(rows: list[Row]) -> None:
    heads = ("half", "workload", "pattern", "recommender", "fit", "x", "size")
    print(DETAIL.format(*heads, "actual MiB", "recomm. MiB", "ratio", "note"))
    for r in rows:
        rec = "refused" if r.recommended_bytes is None else f"{r.recommended_bytes / MIB:.1f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        note = "UNDER" if r.ratio is not None and r.ratio < 1 else ""
        if r.recommender == "new" and r.wide_unwarned:
            note += " wide-unwarned"
        actual = f"{r.actual_bytes / MIB:.1f}"
        where = (r.half, r.workload, r.pattern, r.recommender, r.fitted_sizes, r.factor, r.size)
        print(DETAIL.format(*where, actual, rec, ratio, note))


def corpus_rows(halves: list[str]) -> list[Row]:
    """Every recommender's predictions for every workload of the halves asked."""
    with open(os.path.join(CORPUS, "split.json")) as f:
        split = json.load(f)
    runs = load_runs()
    rows: list[Row] = []
    for half in halves:
        for name in split[HALVES[half]]:
            kind, pattern, measured = runs.get(name, ("", "", {}))
            if len(measured) < max(FIT_COUNTS) + max(FACTORS.values()):
                print(f"fit_corpus: {name} skipped: not measured at all 11 sizes yet",
                      file=sys.stderr)  # fmt: skip
                continue
            rows += predictions(name, half, kind, pattern, measured)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("development", "held-out", "both"), default="both")
    parser.add_argument("--detail", action="store_true", help="one row per prediction")
    parser.add_argument("--json", metavar="PATH", help="write every prediction as JSON")
    args = parser.parse_args(argv)
    halves = list(HALVES) if args.half == "both" else [args.half]
    rows = corpus_rows(halves)
    if args.detail:
        print_detail(rows)
        print()
    print_table(rows, halves)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**asdict(r), "ratio": r.ratio} for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
