"""Server-rendered SVG charts: readable with JavaScript off, and allowed by our CSP.

Every chart is plain SVG markup inlined in the page: shapes carry their geometry as
attributes and their colours as CSS classes (no inline `style`, which the Content-Security-Policy
would refuse), each mark has a `<title>` tooltip, and each chart a `<title>` for screen readers.
The pages print the same numbers in a table next to each chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Segment:
    label: str
    value: int
    css: str  # class of the segment's rect: its colour in static/app.css


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (axis maxima people can read)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value - 1e-9:
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def _num(value: float) -> str:
    """A coordinate with at most one decimal, so the markup stays small and stable."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 or value == int(value) else f"{value:g}"


def _svg(width: int, height: int, title: str, css: str, body: list[str]) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart {escape(css)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{label}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>' + "".join(body) + "</svg>"
    )


def stacked_bar(segments: Sequence[Segment], *, title: str, width: int = 640) -> Markup:
    """One horizontal bar split into segments in proportion to their values."""
    height, bar = 30, 22
    total = sum(max(0, s.value) for s in segments)
    body = [f'<rect class="track" x="0" y="0" width="{width}" height="{bar}" rx="4"></rect>']
    x = 0.0
    for s in segments:
        if s.value <= 0 or total == 0:
            continue
        w = width * s.value / total
        share = 100.0 * s.value / total
        tip = escape(f"{s.label}: {s.value:,} ({share:.1f}%)")
        body.append(
            f'<rect class="{escape(s.css)}" x="{_num(x)}" y="0" width="{_num(w)}" '
            f'height="{bar}"><title>{tip}</title></rect>'
        )
        x += w
    return _svg(width, height, title, "stacked", body)


def bar_rows(
    rows: Sequence[tuple[str, int]],
    *,
    title: str,
    css: str = "bars",
    label_width: int = 220,
    width: int = 640,
) -> Markup:
    """Horizontal bars, one labelled row per (label, value), with the value printed at the end."""
    row_h, top = 22, 4
    height = top + row_h * max(1, len(rows)) + 4
    peak = max((v for _, v in rows), default=0)
    scale_max = nice_ceiling(peak) if peak else 1.0
    plot = width - label_width - 70
    body = []
    for k, (label, value) in enumerate(rows):
        y = top + k * row_h
        w = plot * value / scale_max if value > 0 else 0.0
        tip = escape(f"{label}: {value:,}")
        body.append(
            f'<text class="label" x="{label_width - 8}" y="{y + 15}" text-anchor="end" '
            f'font-size="12">{escape(label)}</text>'
            f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{_num(w)}" '
            f'height="{row_h - 7}">'
            f"<title>{tip}</title></rect>"
            f'<text class="value" x="{_num(label_width + w + 6)}" y="{y + 15}" '
            f'font-size="12">{value:,}</text>'
        )
    if not rows:
        body.append(f'<text class="label" x="8" y="{top + 15}" font-size="12">no data yet</text>')
    return _svg(width, height, title, css, body)


def columns(
    buckets: Sequence[tuple[str, int]],
    *,
    title: str,
    css: str = "timeline",
    width: int = 720,
    height: int = 220,
    max_labels: int = 8,
) -> Markup:
    """Vertical bars over time (label, count), with a y axis and every n-th x label."""
    left, right, top, bottom = 48, 8, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, v in buckets), default=0)
    scale_max = nice_ceiling(peak) if peak else 1.0
    body = []
    for tick in (0.0, scale_max / 2, scale_max):
        y = top + plot_h - plot_h * tick / scale_max
        body.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}">'
            f'</line><text class="axis" x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" '
            f'font-size="11">{_count(tick)}</text>'
        )
    n = len(buckets)
    if n == 0:
        body.append(
            f'<text class="label" x="{left + 8}" y="{top + plot_h / 2:.0f}" font-size="12">'
            "no annotations yet</text>"
        )
        return _svg(width, height, title, css, body)
    slot = plot_w / n
    gap = min(2.0, slot * 0.2)
    every = max(1, math.ceil(n / max_labels))
    for k, (label, value) in enumerate(buckets):
        x = left + k * slot
        h = plot_h * value / scale_max
        tip = escape(f"{label}: {value:,}")
        body.append(
            f'<rect class="bar" x="{_num(x + gap / 2)}" y="{_num(top + plot_h - h)}" '
            f'width="{_num(max(0.5, slot - gap))}" height="{_num(h)}"><title>{tip}</title></rect>'
        )
        if k % every == 0:
            body.append(
                f'<text class="axis" x="{_num(x + slot / 2)}" y="{height - bottom + 16}" '
                f'text-anchor="middle" font-size="11">{escape(label)}</text>'
            )
    body.append(
        f'<line class="baseline" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"></line>'
    )
    return _svg(width, height, title, css, body)


def gauge(value: float | None, *, title: str, marks: Sequence[float] = (0.667, 0.8)) -> Markup:
    """A short 0..1 bar for an agreement figure, with ticks at the reading thresholds.

    Negative values (worse than chance) draw as an empty bar; None as an empty track.
    """
    width, height, bar = 160, 16, 10
    body = [f'<rect class="track" x="0" y="3" width="{width}" height="{bar}" rx="2"></rect>']
    if value is not None and value > 0:
        w = width * min(1.0, value)
        band = "good" if value >= marks[-1] else "fair" if value >= marks[0] else "low"
        body.append(
            f'<rect class="fill {band}" x="0" y="3" width="{_num(w)}" height="{bar}"></rect>'
        )
    for mark in marks:
        x = width * mark
        body.append(
            f'<line class="mark" x1="{_num(x)}" x2="{_num(x)}" y1="0" y2="{height}"></line>'
        )
    return _svg(width, height, title, "gauge", body)
