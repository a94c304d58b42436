"""Inline SVG charts for the daily report (and the notebook): plain strings, no dependency, no script.

Every chart is an `<svg>` element with `data-chart="<name>"`; every mark carries `data-*` attributes
with the exact value it draws (`data-value="2006272.35"`), a `<title>` tooltip and text a screen
reader can use. Styling is by class (`bar`, `series-0` ...), set by the page's inline CSS; the charts
also carry a minimal `<style>` of their own so that they render the same when shown alone.
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from decimal import Decimal

Number = int | float | Decimal

STYLE = """<style>
.chart text { font: 11px system-ui, sans-serif; fill: #444; }
.chart .axis { stroke: #bbb; stroke-width: 1; }
.chart .grid { stroke: #eee; stroke-width: 1; }
.chart .series-0 { fill: #9cc3e6; }
.chart .series-1 { fill: #1f5f99; }
.chart .series-2 { fill: #e8a33d; }
.chart .series-3 { fill: #c0392b; }
.chart .highlight { stroke: #222; stroke-width: 1.5; }
.chart .value { fill: #222; }
.chart .label.current { font-weight: bold; fill: #000; }
.chart .pass { fill: #3c9a5f; } .chart .warn { fill: #e8a33d; }
.chart .fail { fill: #c0392b; } .chart .error { fill: #7b241c; }
</style>"""


def esc(value: object) -> str:
    """Text for HTML/SVG content and attribute values."""
    return html.escape(str(value), quote=True)


def _attrs(**data: object) -> str:
    return "".join(f' data-{key.replace("_", "-")}="{esc(value)}"' for key, value in data.items() if value is not None)


def nice_max(value: float) -> float:
    """The top of an axis: the next 1, 2, 2.5 or 5 x 10^k at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def compact(value: float) -> str:
    """An axis label: 1.2M, 350k, 42."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def column_chart(
    chart: str, title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[Number | None]]],
    *, labels: Sequence[str] | None = None, highlight: str | None = None,
    fmt: Callable[[Number], str] = str, width: int = 720, height: int = 260,
) -> str:
    """Grouped vertical bars: one group per category (e.g. a date), one bar per series."""
    labels = list(labels or categories)
    left, right, top, bottom = 56, 12, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for _, vals in series for v in vals if v is not None]
    top_value = nice_max(max(values, default=0.0))
    group_w = plot_w / max(len(categories), 1)
    bar_w = max(min((group_w * 0.8) / max(len(series), 1), 28), 2)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
             f'{_attrs(chart=chart, categories=len(categories), series=len(series))}>',
             f"<title>{esc(title)}</title>", STYLE]
    for i in range(5):  # gridlines and y labels
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(compact(top_value * i / 4))}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    for index, category in enumerate(categories):
        x0 = left + group_w * index + (group_w - bar_w * len(series)) / 2
        current = category == highlight
        for s, (name, vals) in enumerate(series):
            value = vals[index]
            if value is None:
                continue
            h = plot_h * float(value) / top_value
            x, y = x0 + s * bar_w, top + plot_h - h
            parts.append(
                f'<rect class="bar series-{s}{" highlight" if current else ""}" x="{x:.1f}" y="{y:.1f}"'
                f' width="{bar_w - 1:.1f}" height="{max(h, 0):.1f}"'
                f'{_attrs(series=name, category=category, value=value)}>'
                f"<title>{esc(name)} {esc(labels[index])}: {esc(fmt(value))}</title></rect>")
        cx = left + group_w * index + group_w / 2
        parts.append(f'<text class="label{" current" if current else ""}" x="{cx:.1f}" y="{height - bottom + 16}"'
                     f' text-anchor="middle">{esc(labels[index])}</text>')
    legend_x = left
    for s, (name, _) in enumerate(series):  # legend
        parts.append(f'<rect class="series-{s}" x="{legend_x}" y="8" width="10" height="10"/>'
                     f'<text x="{legend_x + 14}" y="17">{esc(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def bar_list(
    chart: str, title: str, rows: Sequence[tuple[str, Number]], *, fmt: Callable[[Number], str] = str,
    notes: Sequence[str] | None = None, key: str = "label", width: int = 720, row_height: int = 26,
    series_class: str = "series-1",
) -> str:
    """Horizontal bars, one per row, labelled with their value (funnel steps, quarantine reasons)."""
    # room for the longest label (about 6.5 px a character at 11 px)
    label_w, value_w = min(max(int(6.5 * max((len(str(label)) for label, _ in rows), default=0)) + 14, 120), 330), 150
    height = max(len(rows), 1) * row_height + 10
    plot_w = width - label_w - value_w
    top_value = max((float(v) for _, v in rows), default=0.0) or 1.0
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
             f'{_attrs(chart=chart, rows=len(rows))}>', f"<title>{esc(title)}</title>", STYLE]
    if not rows:
        parts.append(f'<text x="0" y="{row_height - 8}">none</text>')
    for index, (label, value) in enumerate(rows):
        y = 5 + index * row_height
        w = plot_w * float(value) / top_value
        note = f" ({notes[index]})" if notes and notes[index] else ""
        parts.append(f'<text x="{label_w - 8}" y="{y + row_height / 2 + 4:.1f}" text-anchor="end">{esc(label)}</text>')
        parts.append(f'<rect class="bar {series_class}" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}"'
                     f' height="{row_height - 8}"{_attrs(**{key: label}, value=value)}>'
                     f"<title>{esc(label)}: {esc(fmt(value))}{esc(note)}</title></rect>")
        parts.append(f'<text class="value" x="{label_w + max(w, 1) + 6:.1f}" y="{y + row_height / 2 + 4:.1f}">'
                     f"{esc(fmt(value))}{esc(note)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(chart: str, title: str, parts_: Sequence[tuple[str, int, str]], *, width: int = 720,
                height: int = 46) -> str:
    """One horizontal bar split into (name, count, css class) parts, e.g. checks passed / warned / failed."""
    total = sum(n for _, n, _ in parts_)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
             f'{_attrs(chart=chart, total=total)}>', f"<title>{esc(title)}</title>", STYLE]
    x = 0.0
    for name, count, css in parts_:
        w = width * count / (total or 1)
        if count:
            parts.append(f'<rect class="bar {esc(css)}" x="{x:.1f}" y="0" width="{w:.1f}" height="22"'
                         f'{_attrs(part=name, value=count)}><title>{esc(name)}: {count}</title></rect>')
        x += w
    x = 0.0
    for name, count, css in parts_:  # legend under the bar
        parts.append(f'<rect class="{esc(css)}" x="{x}" y="30" width="10" height="10"/>'
                     f'<text x="{x + 14}" y="39">{esc(name)} {count}</text>')
        x += 30 + 7 * (len(name) + len(str(count)))
    parts.append("</svg>")
    return "".join(parts)
