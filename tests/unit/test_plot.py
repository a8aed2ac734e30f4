"""memwatch.plot: the fit plot and the samples plot, checked as figures and as real images."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from memwatch.errors import InputError, OutputError, UsageError
from memwatch.fitreport import SHOWN_SHAPES
from memwatch.measures import Sample
from memwatch.model import Measurement, fit, predict
from memwatch.plateau import detect_plateaus
from memwatch.plot import (
    INSTALL_HINT,
    _byte_label,
    check_plot_path,
    fit_figure,
    plot_fit,
    plot_samples,
    samples_figure,
)
from memwatch.report import human_bytes

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BEST_RGB = (31, 119, 180)  # tab:blue, the best shape's curve
ADVICE_RGB = (214, 39, 40)  # tab:red, the recommendations


@pytest.fixture
def mpl():
    """Skip on a machine without matplotlib (an optional extra); fail in CI, which has it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must provide matplotlib (pip install -e '.[dev]')")
        pytest.skip("matplotlib is not installed: pip install 'memwatch[plot]'")


@functools.cache  # the fit takes ~0.1 s; Model and Prediction are frozen
def quadratic_model():
    """Four sizes of a clearly super-linear job, two repeats each: the constant is ruled
    out, and several steeper shapes are not."""
    runs = [
        Measurement(size, int((80 * MIB + 2 * size * KIB + size * size * 20) * (1 + noise)))
        for size in (1000, 2000, 3000, 4000)
        for noise in (-0.03, 0.03)
    ]
    model = fit(runs)
    assert any(not s.plausible for s in model.shapes)  # so "not drawn" can be tested
    return model, (predict(model, 12000), predict(model, 20000))


def swapping_run() -> list[Sample]:
    """RSS climbs to a 300 MiB limit, stays there while swap grows, then the job ends."""
    samples = []
    for i in range(300):
        t = i * 0.1
        rss = int(min(300 * MIB, 50 * MIB + t * 25 * MIB))
        swap = int(max(0.0, t - 10) * 20 * MIB) if t < 25 else 300 * MIB
        samples.append(Sample(round(t, 1), rss + swap, rss, swap, None, 1 + i // 100))
    assert len(detect_plateaus(samples)) == 1
    return samples


def pixels(path):
    """The image as an (n, 3) array of 0-255 RGB values, read back by matplotlib."""
    from matplotlib.image import imread

    return np.rint(imread(path)[:, :, :3] * 255).astype(int).reshape(-1, 3)


def count_near(colours, rgb, tolerance=12):
    return int(np.sum(np.all(np.abs(colours - np.array(rgb)) <= tolerance, axis=1)))


def assert_real_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 20_000 < len(data) < 2_000_000


def texts(figure):
    ax = figure.axes[0]
    found = [t.get_text() for t in ax.texts] + [ax.get_title("left")]
    found += [t.get_text() for t in ax.get_legend().get_texts()]
    return found + [figure.get_suptitle()]


# --- plot_fit -------------------------------------------------------------------------------


def test_plot_fit_writes_a_png_showing_the_best_curve_and_the_advice(tmp_path, mpl):
    model, predictions = quadratic_model()
    path = tmp_path / "fit.png"
    plot_fit(model, predictions, str(path), title="runs.csv")
    assert_real_png(path)
    colours = pixels(path)
    assert len(np.unique(colours, axis=0)) > 200
    assert count_near(colours, BEST_RGB) > 500  # a thick line across most of the width
    assert count_near(colours, ADVICE_RGB) > 100  # two markers and their labels


def test_plot_fit_draws_each_plausible_shape_and_no_other(tmp_path, mpl):
    model, predictions = quadratic_model()
    ax = fit_figure(model, predictions).axes[0]
    curves = {line.get_label(): line for line in ax.get_lines() if len(line.get_xdata()) > 2}
    expected = {
        s.formula + (" (best fit)" if s is model.best else "")
        for s in model.plausible[:SHOWN_SHAPES]
    }
    assert set(curves) == expected
    best = curves[model.best.formula + " (best fit)"]
    assert all(best.get_linewidth() > c.get_linewidth() for c in curves.values() if c is not best)
    # Over [0, largest prediction]: the intercept shows, and the curve reaches the advice.
    assert min(best.get_xdata()) == 0
    assert max(best.get_xdata()) == 20000


def test_plot_fit_shows_every_repeat_and_the_end_of_the_measured_range(mpl):
    model, predictions = quadratic_model()
    ax = fit_figure(model, predictions).axes[0]
    points = [c for c in ax.collections if c.get_label().startswith("measured peak")]
    assert len(points[0].get_offsets()) == len(model.measurements) == 8
    dotted = [
        line
        for line in ax.get_lines()
        if line.get_linestyle() == ":" and list(line.get_xdata()) == [4000, 4000]
    ]
    assert len(dotted) == 1
    assert "measured range ends" in texts(ax.figure)


def test_plot_fit_marks_each_recommendation_with_its_size_and_amount(mpl):
    model, predictions = quadratic_model()
    figure = fit_figure(model, predictions)
    shown = texts(figure)
    for p in predictions:
        assert any(f"provision {human_bytes(p.recommended_bytes)}" in t for t in shown)
    markers = [line for line in figure.axes[0].get_lines() if line.get_marker() == "D"]
    assert sorted((m.get_xdata()[0], m.get_ydata()[0]) for m in markers) == sorted(
        (p.size, p.recommended_bytes) for p in predictions
    )


def test_plot_fit_band_is_the_plausible_envelope_beyond_the_measurements(mpl):
    model, predictions = quadratic_model()
    ax = fit_figure(model, predictions).axes[0]
    (band,) = [c for c in ax.collections if c.get_label().startswith("plausible range")]
    xs, ys = band.get_paths()[0].vertices.T
    assert min(xs) == pytest.approx(4000)
    assert max(xs) == pytest.approx(20000)
    assert max(ys) == pytest.approx(predict(model, 20000).high_bytes)
    assert min(ys[xs == max(xs)]) == pytest.approx(predict(model, 20000).low_bytes)


def test_plot_fit_without_extrapolation_has_no_band(mpl):
    model, _ = quadratic_model()
    ax = fit_figure(model, [predict(model, 3500)]).axes[0]
    assert not [c for c in ax.collections if c.get_label().startswith("plausible range")]


def test_plot_fit_axes_are_linear_with_bytes_in_binary_units(mpl):
    model, predictions = quadratic_model()
    figure = fit_figure(model, predictions)
    figure.canvas.draw()
    ax = figure.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "linear")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "0 B"
    assert all(label.endswith((" MiB", " GiB")) for label in labels[1:])


def test_plot_fit_title_is_the_given_one_or_a_default(mpl):
    model, predictions = quadratic_model()
    assert fit_figure(model, predictions, title="etl").get_suptitle() == "etl"
    assert fit_figure(model, predictions).get_suptitle() == "Peak memory vs input size"


def test_swap_suspected_runs_are_drawn_apart(mpl):
    runs = [Measurement(s, s * MIB, swap_suspected=s == 400) for s in (100, 200, 300, 400)]
    model = fit(runs)
    assert any("swapping suspected (1 run)" in t for t in texts(fit_figure(model, [])))


# --- plot_samples ---------------------------------------------------------------------------


def test_plot_samples_writes_a_png_with_ram_and_swap_areas(tmp_path, mpl):
    path = tmp_path / "mem.png"
    plot_samples(swapping_run(), str(path), title="mem.csv")
    assert_real_png(path)
    colours = pixels(path)
    r, g, b = colours.T
    blue = np.sum(b > r + 50)
    orange = np.sum((r > b + 80) & (g > b + 20))
    assert blue > 0.10 * len(colours)  # the RAM area
    assert orange > 0.03 * len(colours)  # the swap area on top of it


def test_plot_samples_stacks_swap_on_ram_up_to_the_total(mpl):
    samples = swapping_run()
    ax = samples_figure(samples).axes[0]
    ram, swap = (c for c in ax.collections if c.get_label() in ("RAM (RSS)", "swap"))
    assert max(ram.get_paths()[0].vertices[:, 1]) == max(s.rss_bytes for s in samples)
    assert max(swap.get_paths()[0].vertices[:, 1]) == max(s.total_bytes for s in samples)


def test_plot_samples_marks_the_peak_with_its_time_and_value(mpl):
    samples = swapping_run()
    peak = max(samples, key=lambda s: s.total_bytes)
    shown = texts(samples_figure(samples))
    assert f"peak {human_bytes(peak.total_bytes)} at {peak.at_s:.2f} s" in shown


def test_plot_samples_shades_suspected_swapping_with_a_label(mpl):
    samples = swapping_run()
    (plateau,) = detect_plateaus(samples)
    figure = samples_figure(samples)
    shown = texts(figure)
    assert "suspected swapping (RAM flat, swap growing)" in shown  # the legend
    assert "suspected swapping" in shown  # on the range itself
    spans = [p for p in figure.axes[0].patches if p.get_label().startswith("suspected")]
    xs = spans[0].get_transform().transform(spans[0].get_path().vertices)[:, 0]
    to_data = figure.axes[0].transData.inverted()
    data_xs = [to_data.transform((x, 0))[0] for x in xs]
    assert min(data_xs) == pytest.approx(plateau.start_s)
    assert max(data_xs) == pytest.approx(plateau.end_s)


def test_plot_samples_without_swapping_has_no_swapping_label(mpl):
    samples = [Sample(i * 0.1, (10 + i) * MIB, (10 + i) * MIB, 0, None, 1) for i in range(50)]
    assert not any("swapping" in t for t in texts(samples_figure(samples)))


def test_plot_samples_with_pss_labels_pss(mpl):
    samples = [Sample(i * 0.1, 12 * MIB, 20 * MIB, 2 * MIB, 10 * MIB, 2) for i in range(10)]
    shown = texts(samples_figure(samples))
    assert "RAM (PSS)" in shown
    assert "swap (SwapPss)" in shown


def test_a_one_sample_spike_in_a_long_run_still_reaches_the_top(mpl):
    # 100,000 samples for ~900 pixels: drawn naively, a one-sample spike vanishes.
    samples = [Sample(i * 0.1, 100 * MIB, 100 * MIB, 0, None, 1) for i in range(100_000)]
    samples[54_321] = Sample(5432.1, 900 * MIB, 900 * MIB, 0, None, 1)
    ax = samples_figure(samples).axes[0]
    (ram,) = (c for c in ax.collections if c.get_label() == "RAM (RSS)")
    assert max(ram.get_paths()[0].vertices[:, 1]) == 900 * MIB
    assert ax.get_xlabel() == "time since start (h)"


def test_plot_samples_of_nothing_is_an_input_error(tmp_path, mpl):
    with pytest.raises(InputError, match="no samples"):
        plot_samples([], str(tmp_path / "mem.png"))
    assert not (tmp_path / "mem.png").exists()


# --- formats and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "start"), [("p.svg", b"<?xml"), ("p.pdf", b"%PDF"), ("p.PNG", PNG_SIGNATURE)]
)
def test_the_format_follows_the_suffix(tmp_path, name, start, mpl):
    plot_samples(swapping_run(), str(tmp_path / name))
    assert (tmp_path / name).read_bytes().startswith(start)


@pytest.mark.parametrize("name", ["fit.jpg", "fit", "fit.png.gz"])
def test_an_unknown_suffix_is_a_one_line_error_listing_the_formats(tmp_path, name):
    model, predictions = quadratic_model()
    path = str(tmp_path / name)
    with pytest.raises(OutputError) as info:
        plot_fit(model, predictions, path)
    message = str(info.value)
    assert path in message
    assert "the name must end in .png, .svg or .pdf" in message
    assert "\n" not in message
    assert not os.listdir(tmp_path)
    with pytest.raises(UsageError, match=r"\.png, \.svg or \.pdf"):
        check_plot_path(path)


def test_without_matplotlib_plotting_is_a_one_line_error(tmp_path, monkeypatch):
    model, predictions = quadratic_model()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(OutputError) as info:
        plot_fit(model, predictions, str(tmp_path / "fit.png"))
    assert str(info.value) == "plotting needs matplotlib: pip install 'memwatch[plot]'"
    with pytest.raises(OutputError, match="^plotting needs matplotlib"):
        plot_samples(swapping_run(), str(tmp_path / "mem.png"))
    with pytest.raises(UsageError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        check_plot_path(str(tmp_path / "fit.png"))
    assert not os.listdir(tmp_path)


def test_an_unwritable_path_is_a_one_line_error_naming_it(tmp_path, mpl):
    path = str(tmp_path / "no" / "such" / "mem.png")
    with pytest.raises(OutputError) as info:
        plot_samples(swapping_run(), path)
    message = str(info.value)
    assert message == f"cannot write plot {path}: No such file or directory; choose another path"
    with pytest.raises(UsageError, match="does not exist"):
        check_plot_path(path)


def test_check_plot_path_accepts_a_good_path_without_creating_it(tmp_path, mpl):
    check_plot_path(str(tmp_path / "fit.svg"))
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0, "0 B"),
        (256 * MIB, "256 MiB"),
        (512 * MIB, "512 MiB"),
        (GIB, "1 GiB"),
        (1.5 * GIB, "1.5 GiB"),
        (1.25 * GIB, "1.25 GiB"),  # human_bytes alone would say 1.2 GiB
        (100 * MIB, "100 MiB"),
    ],
)
def test_byte_tick_labels_are_exact(value, label, mpl):
    assert _byte_label(value) == label


def test_importing_plot_loads_no_matplotlib_and_plotting_no_pyplot(tmp_path):
    code = (
        "import sys, memwatch.plot as p\n"
        "print('matplotlib' in sys.modules)\n"
        "from memwatch.measures import Sample\n"
        f"p.plot_samples([Sample(0.0, 1, 1, 0, None, 1)], {str(tmp_path / 'm.png')!r})\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    lines = done.stdout.split()
    assert lines[0] == "False", done.stderr
    if len(lines) > 1:  # matplotlib installed: the plot was drawn without pyplot
        assert lines[1] == "False", done.stderr
