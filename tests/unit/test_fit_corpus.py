"""The model on the evaluation corpus (benchmarks/corpus/): real peaks, forward prediction.

The same protocol as benchmarks/fit_corpus.py, on its stored cgroup measurements: fit the
4 and the 5 smallest sizes (3 repeats each) of every program, predict 2x, 4x and 8x the
largest fitted size, compare with the largest measured peak there. The bounds are the
figures the model reached when it was frozen (held-out half never used for tuning), so a
change that makes any of them worse fails here.
"""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    "fit_corpus", os.path.join(ROOT, "benchmarks", "fit_corpus.py")
)
assert spec and spec.loader
fit_corpus = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = fit_corpus  # dataclasses look their module up there
spec.loader.exec_module(fit_corpus)

# half -> (under-provisioned, median, p90, max) of recommended/actual, as frozen. The
# held-out figures miss issue 9's targets (none under, p90 <= 1.6, max <= 3): see the
# README's "How good it is" for where and why.
BOUNDS = {"development": (5, 1.15, 1.93, 4.62), "held-out": (2, 1.30, 3.69, 20.6)}


@pytest.fixture(scope="module")
def rows():
    rows = fit_corpus.corpus_rows(["development", "held-out"])
    return [r for r in rows if r.recommender == "new"]


@pytest.mark.parametrize("half", sorted(BOUNDS))
def test_recommendations_on_the_corpus_hold_their_frozen_figures(rows, half):
    summary = fit_corpus.summarise([r for r in rows if r.half == half])
    under, median, p90, worst = BOUNDS[half]
    assert summary["predictions"] >= 90
    assert summary["under"] <= under
    assert summary["refused_pct"] <= 5.0
    assert summary["median"] <= median and summary["p90"] <= p90 and summary["max"] <= worst
    assert summary["wide_unwarned"] == 0
