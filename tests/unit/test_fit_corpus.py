"""The model on the evaluation corpus (benchmarks/corpus/): real peaks, forward prediction.

The same protocol as benchmarks/fit_corpus.py, on its stored cgroup measurements: fit the
4 and the 5 smallest sizes (3 repeats each) of every program, predict 2x, 4x and 8x the
largest fitted size, compare with the largest measured peak there. The bounds are the
figures the model reached when it was frozen (held-out half never used for tuning), so a
change that makes any of them worse fails here.
"""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    "fit_corpus", os.path.join(ROOT, "benchmarks", "fit_corpus.py")
)
assert spec and spec.loader
fit_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fit_corpus)

# half -> (under-provisioned, median, p90, max) of recommended/actual, as frozen.
BOUNDS = {"development": (0, 0.0, 0.0, 0.0), "held-out": (0, 0.0, 0.0, 0.0)}


@pytest.fixture(scope="module")
def rows():
    return fit_corpus.corpus_rows(["development", "held-out"], ["new"])


@pytest.mark.parametrize("half", sorted(BOUNDS))
def test_recommendations_on_the_corpus_hold_their_frozen_figures(rows, half):
    summary = fit_corpus.summarise([r for r in rows if r.half == half])
    under, median, p90, worst = BOUNDS[half]
    assert summary["predictions"] >= 90
    assert summary["under"] <= under
    assert summary["refused_pct"] <= 5.0
    assert summary["median"] <= median and summary["p90"] <= p90 and summary["max"] <= worst
    assert summary["wide_unwarned"] == 0
