"""`memwatch sweep --target`: the real CLI picks the sizes of a real job and covers the target."""

from __future__ import annotations

import json
import sys

from .conftest import MEMHOG

TARGET = 640


def test_target_sweep_runs_at_most_half_the_target_and_covers_its_true_peak(cli):
    code, out, err = cli(
        "sweep", "--target", str(TARGET), "--json", "--job", "hog",
        "--", sys.executable, MEMHOG, "hold", "{size}", "0.2",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    sizes = doc["adaptive"]["sizes"]
    assert sizes[0] == TARGET // 32 and max(sizes) <= TARGET // 2
    assert sizes == sorted(sizes) and len(sizes) >= 3
    assert [m["size"] for m in doc["measurements"]] == sizes
    assert [r.size for r in cli.history.runs("hog")] == [float(s) for s in sizes]
    (prediction,) = doc["predictions"]
    assert prediction["size"] == TARGET
    assert "memwatch: stopping: " in err and f"size {sizes[1]} next: " in err

    # The target, run for real: the recommendation must cover its true peak, and not wildly.
    hog = [sys.executable, MEMHOG, "hold", str(TARGET), "0.2"]
    code, out, err = cli("run", "-q", "--json", "/dev/stdout", "--", *hog)
    assert code == 0, err
    truth = json.loads(out)["peak"]["total_bytes"]
    assert truth <= prediction["recommended_bytes"] <= 1.5 * truth


def test_target_sweep_text_report_puts_the_sweep_time_beside_one_target_run(cli):
    code, out, err = cli(
        "sweep", "--target", "96", "--max-size", "12", "--no-warmup",
        "--", sys.executable, "-c", "import sys; b = bytearray(int(sys.argv[1]) << 20)", "{size}",
    )  # fmt: skip
    assert code == 0, err
    assert (
        "adaptive sweep: 5 run(s) at sizes 3, 4, 6, 8, 12 (none above 12); stopping: the next "
        "size would be above --max-size 12"
    ) in out
    assert "sweep time " in out and "one run at the target 96: ~" in out
    assert "at size 96 (8x the largest measured)" in out
