"""Charts for the HTML report, drawn with matplotlib as inline SVG.

matplotlib is imported here only, when a chart is drawn (it costs ~0.4 s to import), so
text, CSV and JSON reports never pay for it. Text stays text in the SVG (`svg.fonttype:
none`), so charts are small, sharp in print and searchable.
"""
from __future__ import annotations

import io
import re

PALETTE = ["#2f6fbd", "#e07b39", "#3c9d5d", "#b5485d", "#7a5fb0", "#8a8a8a"]
INK = "#333333"
GRID = "#e3e3e3"


def _setup():
    import matplotlib

    matplotlib.use("svg", force=False)
    from matplotlib import rcParams

    rcParams.update({
        "svg.fonttype": "none",
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "sans-serif"],
        "font.size": 9,
        "axes.edgecolor": GRID,
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    from matplotlib.figure import Figure

    return Figure


def draw(section, result, salt: str = "") -> str:
    """The section's chart as an `<svg>` element (no XML prolog), sized for a 900px page."""
    Figure = _setup()
    from matplotlib import rcParams

    rcParams["svg.hashsalt"] = salt or section.name  # unique ids when several SVGs share a page
    chart = section.chart
    rows = section.dicts()
    height = 3.0 if chart.kind != "hbar" else max(1.6, 0.32 * len(rows) + 0.8)
    if chart.kind == "heatmap":
        height = 2.8
    fig = Figure(figsize=(8.6, height), dpi=96)
    ax = fig.add_subplot()
    {"bar": _bar, "hbar": _hbar, "line": _line, "heatmap": _heatmap}[chart.kind](ax, fig, chart, rows, section, result)
    ax.tick_params(length=0)
    ax.set_axisbelow(True)
    fig.tight_layout(pad=0.6)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    # Scale with the page; keep the aspect ratio from the viewBox.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', svg, count=1)
    return svg.replace(">", f"><title>{_esc(section.title)}</title>", 1)


def draw_cached(section, result, salt: str, cache_dir) -> str:
    """`draw`, remembered in `cache_dir` by a digest of everything the drawing reads (the
    section's rows, names, chart and labels, the report's locale and labels, this module and
    the installed matplotlib): a report drawn again with the same figures (a past week, a
    report mailed and also saved) does not even import matplotlib. The cache is best effort:
    a store this user may only read draws every time. At most CACHE_FILES charts are kept."""
    if cache_dir is None:
        return draw(section, result, salt)
    import hashlib
    from pathlib import Path

    import orjson

    L = result.labels
    key = orjson.dumps([CACHE_FORMAT, _code_stamp(), salt, section.name, section.title, section.kind,
                        [section.chart.kind, section.chart.x, list(section.chart.y), section.chart.value],
                        section.columns, section.rows, section.labels, result.locale,
                        getattr(L, "extra", None), getattr(L, "names", None), getattr(L, "tz_name", None)],
                       default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    path = Path(cache_dir) / f"{hashlib.sha256(key).hexdigest()}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    svg = draw(section, result, salt)
    try:
        from tix.store.files import atomic_write

        atomic_write(path, svg, sync_dir=False)  # a cache: a lost file is drawn again
        kept = sorted(Path(cache_dir).glob("*.svg"), key=lambda p: p.stat().st_mtime)
        for old in kept[:-CACHE_FILES]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
    return svg


CACHE_FORMAT = 1
CACHE_FILES = 200


def _code_stamp() -> list:
    """What identifies the drawing code: this file, and matplotlib's version (found without
    importing it)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("matplotlib")
    mpl = os.stat(spec.origin) if spec and spec.origin else None
    me = os.stat(__file__)
    return [me.st_size, me.st_mtime_ns, mpl.st_size if mpl else 0, mpl.st_mtime_ns if mpl else 0,
            spec.origin if spec else ""]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _x_labels(rows, col, result) -> list[str]:
    L = result.labels
    out = []
    for r in rows:
        v = r.get(col)
        out.append(L.value(v, col) if v is not None else L("none"))
    return out


def _series_label(result, section, col) -> str:
    if col in section.labels:
        return section.labels[col].get(result.locale) or col
    return result.labels(col)


def _bar(ax, fig, chart, rows, section, result) -> None:
    xs = _x_labels(rows, chart.x, result)
    n = len(chart.y)
    width = 0.8 / n
    for i, col in enumerate(chart.y):
        pos = [j + (i - (n - 1) / 2) * width for j in range(len(xs))]
        ax.bar(pos, [float(r.get(col) or 0) for r in rows], width=width * 0.95, color=PALETTE[i % len(PALETTE)],
               label=_series_label(result, section, col))
    ax.set_xticks(range(len(xs)), xs, rotation=0 if len(xs) <= 12 else 45,
                  ha="center" if len(xs) <= 12 else "right")
    _y_axis(ax, chart.y, result)
    if n > 1:
        ax.legend(frameon=False, loc="upper right")


def _hbar(ax, fig, chart, rows, section, result) -> None:
    ys = _x_labels(rows, chart.x, result)
    col = chart.y[0]
    vals = [float(r.get(col) or 0) for r in rows]
    pct = result.labels.is_percent(col)
    colors = [PALETTE[0]] * len(vals)
    if pct:  # compliance: green when at least 90%, orange from 75%, red below
        colors = ["#3c9d5d" if v >= 0.9 else "#e0a030" if v >= 0.75 else "#c8423b" for v in vals]
    top = 1.0 if pct else (max(vals) if vals else 1) or 1
    # a 0 (0% compliance) is a value, not a missing bar: a stub in its colour, beside its label
    ax.barh(range(len(ys)), [v if v else top * 0.006 for v in vals], color=colors, height=0.6)
    ax.set_yticks(range(len(ys)), ys)
    ax.invert_yaxis()
    for i, v in enumerate(vals):
        ax.text(v, i, " " + result.labels.value(v, col), va="center", fontsize=8, color=INK)
    if pct:
        ax.set_xlim(0, 1.12)
    else:
        ax.set_xlim(0, (max(vals) if vals else 1) * 1.15 or 1)
    _x_axis_percent(ax, col, result)
    ax.grid(axis="x", color=GRID)


def _line(ax, fig, chart, rows, section, result) -> None:
    xs = _x_labels(rows, chart.x, result)
    for i, col in enumerate(chart.y):
        ys = [None if r.get(col) is None else float(r.get(col)) for r in rows]
        ax.plot(range(len(xs)), ys, marker="o", color=PALETTE[i % len(PALETTE)], linewidth=2,
                label=_series_label(result, section, col))
        for j, y in enumerate(ys):
            if y is not None and len(chart.y) == 1:  # values on one line; several would collide
                ax.annotate(result.labels.value(rows[j].get(col), col), (j, y), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=7.5, color=INK)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.2)
    _y_axis(ax, chart.y, result)
    if len(chart.y) > 1:
        ax.legend(frameon=False)


def _heatmap(ax, fig, chart, rows, section, result) -> None:
    """x and y are small integers (hour 0-23, weekday 1-7); missing cells count as 0."""
    L = result.labels
    xs = sorted({r[chart.x] for r in rows if r.get(chart.x) is not None})
    ys = sorted({r[chart.y[0]] for r in rows if r.get(chart.y[0]) is not None})
    if chart.x == "hour":
        xs = list(range(24))
    if chart.y[0] == "weekday":
        ys = list(range(1, 8))
    grid = [[0.0] * len(xs) for _ in ys]
    xi = {x: i for i, x in enumerate(xs)}
    yi = {y: i for i, y in enumerate(ys)}
    for r in rows:
        if r.get(chart.x) in xi and r.get(chart.y[0]) in yi:
            grid[yi[r[chart.y[0]]]][xi[r[chart.x]]] = float(r.get(chart.value) or 0)
    img = ax.imshow(grid, aspect="auto", cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [L.value(y, chart.y[0]) for y in ys])
    ax.set_xlabel(L(chart.x))
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    cbar = fig.colorbar(img, ax=ax, fraction=0.03, pad=0.01)
    cbar.outline.set_visible(False)
    cbar.ax.tick_params(length=0, labelsize=7)


def _y_axis(ax, cols, result) -> None:
    from matplotlib.ticker import FuncFormatter

    col = cols[0]
    L = result.labels
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: L.value(float(v), col) if L.is_percent(col)
                                               else L.value(int(v) if float(v).is_integer() else float(v), col)))
    ax.grid(axis="y", color=GRID)


def _x_axis_percent(ax, col, result) -> None:
    from matplotlib.ticker import FuncFormatter

    L = result.labels
    if L.is_percent(col):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: L.value(float(v), col)))
