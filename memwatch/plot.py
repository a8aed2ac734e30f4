"""Plots: the fit (runs, fitted shapes, envelope, advice) and one run's memory over time.

matplotlib is an optional extra (``pip install 'memwatch[plot]'``), imported only when a
plot is drawn. Figures are built with the object-oriented API on an Agg canvas, never
through pyplot: no global backend is switched, no window opens, and a notebook or a
program that uses another backend is left alone.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import InputError, OutputError, UsageError
from .fitreport import SHOWN_SHAPES
from .measures import Sample
from .model import Model, Prediction, predict
from .plateau import detect_plateaus
from .report import check_writable, human_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg", ".pdf")
INSTALL_HINT = "plotting needs matplotlib: pip install 'memwatch[plot]'"

BEST_COLOUR = "tab:blue"
OTHER_COLOURS = ("tab:orange", "tab:green", "tab:purple", "tab:brown")
ADVICE_COLOUR = "tab:red"
RAM_COLOUR = "#4c72b0"
SWAP_COLOUR = "#dd8452"
SWAPPING_COLOUR = "tab:red"
CURVE_POINTS = 300
THIN_BUCKETS = 1000  # time slices kept when a run has far more samples than pixels


def check_plot_path(path: str, option: str = "--plot") -> None:
    """Fail before any work if ``path`` cannot become a plot (suffix, matplotlib, directory)."""
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise UsageError(f"{option} {path}: {_suffix_problem(path)}")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(INSTALL_HINT)
    check_writable(path, option)


def plot_fit(
    model: Model, predictions: Sequence[Prediction], path: str, title: str | None = None
) -> None:
    """Draw the measured runs, every plausible fitted shape, the envelope and the advice."""
    fmt = _format(path)
    _save(fit_figure(model, predictions, title), path, fmt)


def plot_samples(samples: Sequence[Sample], path: str, title: str | None = None) -> None:
    """Draw one run's RAM and swap over time, its peak and its suspected-swapping ranges."""
    fmt = _format(path)
    _save(samples_figure(samples, title), path, fmt)


def fit_figure(model: Model, predictions: Sequence[Prediction], title: str | None = None) -> Figure:
    """The figure plot_fit saves, for callers who want to adjust it before saving."""
    figure = _new_figure()
    ax = figure.add_subplot()
    sizes = [m.size for m in model.measurements]
    x_end = max([model.max_size, *(p.size for p in predictions)])
    # From 0 the fixed overhead (the intercept) shows; but sizes that all sit far from 0
    # would be squeezed into a corner, so then start at the smallest one.
    x_low = min([*sizes, *(p.size for p in predictions)])
    x_start = 0.0 if x_low <= 0.25 * x_end else x_low
    xs = [x_start + (x_end - x_start) * i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)]
    tops: list[float] = [m.peak_bytes for m in model.measurements]
    tops += [p.recommended_bytes for p in predictions]
    _draw_runs(ax, model)
    tops += _draw_fits(ax, model, xs)
    tops += _draw_band(ax, model, x_end)
    _draw_advice(ax, model, predictions, x_start, x_end)
    _draw_measured_end(ax, model)
    pad = 0.04 * (x_end - x_start)
    ax.set_xlim(x_start - pad if x_start > 0 else 0.0, x_end + pad)
    _byte_axis(ax, max(tops) * 1.2)  # room for the advice written above its marker
    _size_axis(ax)
    ax.set_xlabel("input size")
    ax.set_ylabel("peak memory (RAM + swap)")
    ax.grid(True, color="0.9")
    ax.set_axisbelow(True)
    _legend_below(ax)
    best = model.best
    _titles(
        ax,
        title or "Peak memory vs input size",
        f"peak memory vs input size; best fit {best.formula}: {best.describe()}",
    )
    return figure


def _draw_runs(ax: Axes, model: Model) -> None:
    """Every measured run: a dot, hollow where swapping was suspected."""
    normal = [m for m in model.measurements if not m.swap_suspected]
    swapped = [m for m in model.measurements if m.swap_suspected]
    if normal:
        ax.scatter(
            [m.size for m in normal],
            [m.peak_bytes for m in normal],
            s=28,
            color="black",
            zorder=6,
            label=f"measured peak ({_count(len(normal), 'run')})",
        )
    if swapped:
        ax.scatter(
            [m.size for m in swapped],
            [m.peak_bytes for m in swapped],
            s=40,
            facecolors="white",
            edgecolors=SWAPPING_COLOUR,
            linewidths=1.5,
            zorder=6,
            label=f"measured, swapping suspected ({_count(len(swapped), 'run')})",
        )


def _draw_fits(ax: Axes, model: Model, xs: list[float]) -> list[float]:
    """The best fit, thick, and up to SHOWN_SHAPES - 1 other plausible ones; their tops."""
    tops: list[float] = []
    others = iter(OTHER_COLOURS * 2)
    for shape in model.plausible[:SHOWN_SHAPES]:
        is_best = shape is model.best
        ys = [max(0.0, shape.predict(x)) for x in xs]
        tops.append(max(ys))
        ax.plot(
            xs,
            ys,
            color=BEST_COLOUR if is_best else next(others),
            linewidth=2.6 if is_best else 1.1,
            zorder=4 if is_best else 3,
            label=shape.formula + (" (best fit)" if is_best else ""),
        )
    return tops


def _draw_band(ax: Axes, model: Model, x_end: float) -> list[float]:
    """The plausible range beyond the measured sizes, where it has width; its tops."""
    # predict() itself gives the envelope, so the band is exactly what the advice used.
    xe = [model.max_size + (x_end - model.max_size) * i / 99 for i in range(100)]
    band = [predict(model, x, force=True) for x in xe] if x_end > model.max_size else []
    high = [p.high_bytes for p in band]
    # Where the plausible shapes agree the band has no width: no legend entry for nothing.
    if band and max(h - p.low_bytes for h, p in zip(high, band, strict=True)) > 0.005 * max(high):
        ax.fill_between(
            xe,
            [p.low_bytes for p in band],
            high,
            color="0.55",
            alpha=0.25,
            linewidth=0,
            zorder=1,
            label="plausible range beyond the measurements",
        )
        return [float(h) for h in high]
    return []


def _draw_advice(
    ax: Axes, model: Model, predictions: Sequence[Prediction], x_start: float, x_end: float
) -> None:
    """A marker and a callout at each recommendation."""
    for i, p in enumerate(predictions):
        # Up and to the left of the marker: the curves and the band never decrease, and all
        # pass below a recommendation, so that corner is free. Unless it is off the plot.
        room_left = (p.size - x_start) / ((x_end - x_start) or 1.0) > 0.2
        ax.plot(
            [p.size],
            [p.recommended_bytes],
            marker="D",
            markersize=7,
            color=ADVICE_COLOUR,
            linestyle="none",
            zorder=7,
            label="recommended (best fit, widened by its own misses)" if i == 0 else None,
        )
        _callout(
            ax,
            f"size {_size_text(p.size)}\nprovision {human_bytes(p.recommended_bytes)}",
            (p.size, p.recommended_bytes),
            (-4 if room_left else 4, 7),
            zorder=8,
        )


def _draw_measured_end(ax: Axes, model: Model) -> None:
    """A dotted line where the measured sizes end and extrapolation begins."""
    ax.axvline(model.max_size, color="0.3", linestyle=":", linewidth=1.2, zorder=2)
    ax.annotate(
        "measured range ends",
        xy=(model.max_size, 0.02),
        xycoords=("data", "axes fraction"),
        xytext=(-5, 0),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=8,
        color="0.3",
    )


def samples_figure(samples: Sequence[Sample], title: str | None = None) -> Figure:
    """The figure plot_samples saves, for callers who want to adjust it before saving."""
    if not samples:
        raise InputError("no samples to plot; record some with memwatch run --samples")
    figure = _new_figure()
    ax = figure.add_subplot()
    scale, unit = _time_unit(samples[-1].at_s)
    drawn = _thin(samples)
    t = [s.at_s / scale for s in drawn]
    pss = all(s.pss_bytes is not None for s in samples)
    ram = [_ram(s) for s in drawn]
    swap = [_swap(s) for s in drawn]
    ax.stackplot(
        t,
        ram,
        swap,
        colors=[RAM_COLOUR, SWAP_COLOUR],
        alpha=0.85,
        linewidth=0,
        labels=["RAM (PSS)" if pss else "RAM (RSS)", "swap (SwapPss)" if pss else "swap"],
    )
    width = (t[-1] - t[0]) or 1.0
    if len(samples) == 1:  # one instant has no width: show it as a point
        ax.plot(t, [samples[0].total_bytes], marker="o", color=RAM_COLOUR)

    spans = detect_plateaus(samples)
    for i, p in enumerate(spans):
        start, end = p.start_s / scale, p.end_s / scale
        ax.axvspan(
            start,
            end,
            facecolor=SWAPPING_COLOUR,
            alpha=0.10,
            linewidth=0,
            zorder=0,
        )
        # A bar along the top marks the range where the areas hide the shading.
        ax.axvspan(
            start,
            end,
            ymin=0.95,
            ymax=1.0,
            color=SWAPPING_COLOUR,
            alpha=0.75,
            zorder=5,
            label="suspected swapping (RAM flat, swap growing)" if i == 0 else None,
        )
        if (end - start) / width >= 0.12:  # narrower bars are explained by the legend alone
            ax.text(
                (start + end) / 2,
                0.975,
                "suspected swapping",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="center",
                fontsize=8,
                color="white",
                zorder=6,
            )

    peak = max(samples, key=lambda s: s.total_bytes)  # the first, if the maximum repeats
    y_top = max(peak.total_bytes, 1) * 1.25  # room for the peak's label under the top bar
    ax.plot(
        [peak.at_s / scale],
        [peak.total_bytes],
        marker="v",
        markersize=9,
        color=ADVICE_COLOUR,
        linestyle="none",
        zorder=6,
        clip_on=False,
    )
    right_half = peak.at_s / scale > (t[0] + t[-1]) / 2
    _callout(
        ax,
        f"peak {human_bytes(peak.total_bytes)} at {_time_text(peak.at_s, scale, unit)}",
        (peak.at_s / scale, peak.total_bytes),
        (-8 if right_half else 8, 12),
        zorder=7,
    )

    # From 0, the command's start, unless the samples begin well after it.
    left = 0.0 if 0 <= t[0] <= 0.1 * t[-1] else t[0]
    ax.set_xlim(left, t[-1] + 0.015 * width if t[-1] > t[0] else t[0] + 1)
    _byte_axis(ax, y_top)
    ax.set_xlabel(f"time since start ({unit})")
    ax.set_ylabel("memory of the process tree")
    ax.grid(True, color="0.9")
    ax.set_axisbelow(True)
    _legend_below(ax)
    split = f"{'PSS' if pss else 'RAM'} {human_bytes(_ram(peak))} + swap {human_bytes(_swap(peak))}"
    note = f"peak {human_bytes(peak.total_bytes)} ({split}); {_count(len(samples), 'sample')}"
    note += f", up to {_count(max(s.processes for s in samples), 'process')}"
    if spans:
        note += f"; swapping suspected in {_count(len(spans), 'range')}"
    _titles(ax, title or "Memory over time", note)
    return figure


# --- helpers ---------------------------------------------------------------------------------


def _ram(s: Sample) -> int:
    return s.pss_bytes if s.pss_bytes is not None else s.rss_bytes


def _swap(s: Sample) -> int:
    # The two layers add up to total_bytes, the figure memwatch reports as the peak:
    # RSS + swap, or PSS + SwapPss with --pss (total - PSS, as Sample keeps no SwapPss).
    return max(0, s.total_bytes - _ram(s))


def _thin(samples: Sequence[Sample], buckets: int = THIN_BUCKETS) -> Sequence[Sample]:
    """At most the lowest and highest sample of each of ``buckets`` time slices, in order.

    A day at 10 Hz is 864,000 samples for under 1,000 pixels: drawn as is, a spike one
    sample wide is thinner than a pixel and vanishes. Keeping each slice's extremes
    keeps every spike (and dip) visible, and the drawing fast.
    """
    if len(samples) <= 4 * buckets:
        return samples
    start, span = samples[0].at_s, (samples[-1].at_s - samples[0].at_s) or 1.0
    low: dict[int, Sample] = {}
    high: dict[int, Sample] = {}
    for s in samples:
        b = min(buckets - 1, int((s.at_s - start) / span * buckets))
        if b not in low or s.total_bytes < low[b].total_bytes:
            low[b] = s
        if b not in high or s.total_bytes > high[b].total_bytes:
            high[b] = s
    kept = {id(s): s for s in (samples[0], *low.values(), *high.values(), samples[-1])}
    return sorted(kept.values(), key=lambda s: s.at_s)


def _suffix_problem(path: str) -> str:
    suffix = os.path.splitext(path)[1]
    got = f"unknown image format {suffix!r}" if suffix else "no image format suffix"
    return f"{got}; the name must end in {', '.join(FORMATS[:-1])} or {FORMATS[-1]}"


def _format(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise OutputError(f"cannot write plot {path}: {_suffix_problem(path)}")
    return suffix[1:]


def _new_figure() -> Figure:
    try:
        # The package itself first: a submodule already in sys.modules would import even
        # with the package blocked (sys.modules["matplotlib"] = None, as tests do).
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise OutputError(INSTALL_HINT) from err
    figure = Figure(figsize=(9.6, 5.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str, fmt: str) -> None:
    # Rendered in memory first: a rendering failure leaves no half-written file behind.
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt)
    try:
        with open(path, "wb") as f:
            f.write(buffer.getvalue())
    except OSError as err:
        raise OutputError(
            f"cannot write plot {path}: {err.strerror or err}; choose another path"
        ) from err


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def _callout(
    ax: Axes, text: str, xy: tuple[float, float], offset: tuple[float, float], zorder: int
) -> None:
    """A red label beside a marked point, on the side with room (offset < 0: left of it)."""
    ax.annotate(
        text,
        xy=xy,
        xytext=offset,
        textcoords="offset points",
        ha="right" if offset[0] < 0 else "left",
        va="bottom",
        fontsize=9,
        color=ADVICE_COLOUR,
        bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "none"},
        zorder=zorder,
    )


def _legend_below(ax: Axes) -> None:
    # Below the axes: curves and advice can fill any corner, and the legend must hide none.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3, fontsize=9, frameon=False)


def _titles(ax: Axes, title: str, subtitle: str) -> None:
    ax.set_title(subtitle, fontsize=9, color="0.35", loc="left")
    ax.figure.suptitle(title, fontsize=13, fontweight="bold", x=0.01, ha="left")


def _byte_axis(ax: Axes, top: float) -> None:
    """0..top with ticks at round binary amounts, labelled by human_bytes."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    # Tick steps are chosen in the unit of the axis' top (MiB, GiB...). Below 10 units the
    # steps can be fractions, so no 2s: 0.25 GiB is 256 MiB, where 0.2 GiB is 204.8 MiB.
    unit = 1
    while top / unit >= 1024 and unit < 1 << 40:
        unit *= 1024
    locator = MaxNLocator(
        nbins=6, steps=[1, 2, 2.5, 5, 10] if top / unit >= 10 else [1, 2.5, 5, 10]
    )
    ticks = [float(v) * unit for v in locator.tick_values(0, top / unit) if 0 <= v * unit <= top]
    ax.set_ylim(0, top)
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(FuncFormatter(_byte_label))


def _byte_label(value: float, _position: Any = None) -> str:
    """human_bytes, but exact: one decimal shows 1.25 GiB as "1.2 GiB", so widen it then."""
    text = human_bytes(round(value))
    number, unit = text.split()
    scale = 1024.0 ** ("B", "KiB", "MiB", "GiB", "TiB").index(unit)
    if abs(float(number) * scale - value) > 1e-6 * max(abs(value), 1.0):
        number = f"{value / scale:.3g}"
    return f"{number.removesuffix('.0')} {unit}"


def _size_axis(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: _size_text(v)))


def _size_text(size: float) -> str:
    """2000000 -> '2M', 1500 -> '1.5k', 0.25 -> '0.25': sizes are counts, not bytes."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(size) >= factor:
            return f"{size / factor:.4g}{suffix}"
    return f"{size:.4g}"


def _time_unit(duration_s: float) -> tuple[float, str]:
    if duration_s >= 2 * 3600:
        return 3600.0, "h"
    if duration_s >= 10 * 60:
        return 60.0, "min"
    return 1.0, "s"


def _time_text(at_s: float, scale: float, unit: str) -> str:
    return f"{at_s / scale:.2f} {unit}" if unit == "s" else f"{at_s / scale:.1f} {unit}"
