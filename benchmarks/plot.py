"""``python -m benchmarks plot``: p50 and p99 against node count, one panel per scenario, as a PNG.

Each panel draws its series (p50 solid, p99 dashed, same colour) and, in grey, the baselines they
were measured against in the same run; both axes are logarithmic (node counts and latencies span
orders of magnitude). The memory panel draws RSS (MiB) instead of latency, with its floor. Rows
marked ``plotted: false`` (points off the node-count axis, e.g. the spec-size sweep) are left out.

Each panel's legend sits below its axes, never over the data, and the figure is laid out by
matplotlib's constrained layout and saved with ``bbox_inches="tight"``, so no title or legend is cut
off (``layout_problems`` checks a drawn figure for both).

matplotlib is an optional dependency (``pip install -e '.[bench]'``), used with the Agg backend (no
display needed).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import load_results

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PlotError", "figure", "layout_problems", "plot"]

_GREYS = ("0.35", "0.55", "0.7", "0.45", "0.6", "0.8")
_MEMORY_SERIES = (
    ("rss_mib", "RSS, table loaded", "-", "o"),
    ("rss_after_filter_mib", "RSS after a /filter call", "-.", "s"),
    ("peak_rss_mib", "peak RSS (VmHWM)", ":", "^"),
)


class PlotError(Exception):
    """Nothing to plot, or no matplotlib."""


def _points(rows: Iterable[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts: dict[int, float] = {}
    for r in rows:
        value = r.get(key)
        if value is None:
            value = r.get("extra", {}).get(key)
        if value is not None and value > 0:
            pts.setdefault(int(r["nodes"]), float(value))
    xs = sorted(pts)
    return xs, [pts[x] for x in xs]


def _plain(value: float, _pos: object) -> str:
    """Tick labels as numbers (``5,000``, ``0.1``), not powers of ten."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _minor(value: float, _pos: object) -> str:
    """Minor ticks: only 2× and 5× a power of ten are labelled."""
    if value <= 0:
        return ""
    lead = round(value / 10 ** math.floor(math.log10(value)), 6)
    return _plain(value, _pos) if lead in (2.0, 5.0) else ""


def _title(doc: dict[str, Any]) -> str:
    return str(doc["title"]) + (" (quick run)" if doc["quick"] else "")


def _latency_panel(ax: Axes, doc: dict[str, Any]) -> None:
    rows = [r for r in doc["rows"] if r.get("plotted", True)]
    series = list(dict.fromkeys(r["series"] for r in rows))
    for i, name in enumerate(series):
        mine = [r for r in rows if r["series"] == name]
        colour = f"C{i % 10}"
        for key, style, marker, label in (("p50_ms", "-", "o", "p50"), ("p99_ms", "--", "x", "p99")):
            xs, ys = _points(mine, key)
            if xs:
                ax.plot(xs, ys, linestyle=style, marker=marker, color=colour, label=f"{name} {label}")
    baselines = list(dict.fromkeys(r["baseline"] for r in rows))
    for i, name in enumerate(baselines):
        mine = [r for r in rows if r["baseline"] == name]
        grey = _GREYS[i % len(_GREYS)]
        for key, style, label in (("baseline_p50_ms", "-", "p50"), ("baseline_p99_ms", ":", "p99")):
            xs, ys = _points(mine, key)
            if xs:
                ax.plot(xs, ys, linestyle=style, marker=".", color=grey, linewidth=1, label=f"{name} {label}")
    ax.set_ylabel("ms per call (log)")


def _memory_panel(ax: Axes, doc: dict[str, Any]) -> None:
    rows = [r for r in doc["rows"] if r.get("plotted", True)]
    for i, (key, label, style, marker) in enumerate(_MEMORY_SERIES):
        xs, ys = _points(rows, key)
        if xs:
            ax.plot(xs, ys, linestyle=style, marker=marker, color=f"C{i}", label=label)
    xs, ys = _points(rows, "baseline_rss_mib")
    if xs:
        ax.plot(xs, ys, linestyle="-", marker=".", color="0.5", linewidth=1, label="floor: no nodes")
    ax.axhline(1024, color="C3", linewidth=0.8, linestyle=":", label="1 GiB (goal at 50,000 nodes)")
    ax.set_ylabel("MiB (log)")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - the bench extra is installed by the Makefile
        raise PlotError(f"matplotlib is not installed ({exc}): pip install -e '.[bench]'") from None
    return plt


def figure(docs: list[dict[str, Any]]) -> Figure:
    """One panel per scenario document (``load_results``), legends below the axes. The caller closes
    it (``matplotlib.pyplot.close``)."""
    if not docs:
        raise PlotError("no results to plot")
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    cols = 1 if len(docs) == 1 else 2
    nrows = math.ceil(len(docs) / cols)
    fig: Figure
    fig, axes = plt.subplots(
        nrows, cols, figsize=(7.5 * cols, 6.2 * nrows), squeeze=False, layout="constrained"
    )
    flat = list(axes.flat)
    for ax, doc in zip(flat, docs, strict=False):
        if doc["metric"] == "memory":
            _memory_panel(ax, doc)
        else:
            _latency_panel(ax, doc)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(_plain))
            axis.set_minor_formatter(FuncFormatter(_minor))
        ax.set_xlabel(f"nodes: {doc['nodes_mean']}", fontsize=8)
        ax.set_title(textwrap.fill(_title(doc), 70), fontsize=10)
        ax.grid(True, which="both", linewidth=0.3, alpha=0.6)
        # below the axes (under the x label), in columns: it never covers a data point
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    for ax in flat[len(docs) :]:
        ax.set_visible(False)
    m = docs[-1]["machine"]
    started = min(d["started"] for d in docs)[:10]
    fig.suptitle(
        textwrap.fill(
            f"nfd-compat-extender benchmarks: {m['cpu']}, nproc {m['nproc']}, python {m['python']} "
            f"(runs from {started}; greys are each panel's baselines)",
            60 * cols,
        ),
        fontsize=10,
    )
    return fig


def layout_problems(fig: Figure) -> list[str]:
    """What is wrong with a figure's layout once drawn: a title (the figure's or a panel's) or a
    legend that reaches outside the figure, or a legend that overlaps any panel's plotting area."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    page = fig.bbox
    problems: list[str] = []

    def inside(box: Any) -> bool:
        return bool(
            box.x0 >= page.x0 - 0.5
            and box.y0 >= page.y0 - 0.5
            and box.x1 <= page.x1 + 0.5
            and box.y1 <= page.y1 + 0.5
        )

    for text in fig.texts:  # the suptitle
        if text.get_text() and not inside(text.get_window_extent(renderer)):
            problems.append(f"the figure's title is clipped: {text.get_text()!r}")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    for ax in visible:
        title = ax.title
        if title.get_text() and not inside(title.get_window_extent(renderer)):
            problems.append(f"panel title clipped: {title.get_text()!r}")
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        if not inside(box):
            problems.append(f"legend of {title.get_text()!r} reaches outside the figure")
        for other in visible:
            if box.overlaps(other.bbox):
                problems.append(f"legend of {title.get_text()!r} covers the panel {other.title.get_text()!r}")
    return problems


def plot(results_dir: Path, out: Path) -> Path:
    """Draw every scenario found in ``results_dir`` into ``out`` (PNG). Returns ``out``."""
    plt = _pyplot()
    docs = load_results(results_dir)
    if not docs:
        raise PlotError(f"no results in {results_dir}: run `python -m benchmarks run` first")
    fig = figure(docs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out
