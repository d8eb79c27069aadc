"""Server-rendered SVG charts: no JavaScript, readable by screen readers, crisp at any size.

Pure Python (no Flask). The caller passes every visible text already translated and formatted,
so the chart speaks the page's language. Geometry uses floats; values arrive as Decimal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

SPEND_COLOUR = "#0172ad"
MINUTES_COLOUR = "#c2410c"
TEXT_COLOUR = "#475467"
GRID_COLOUR = "#e4e7ec"
AXIS_COLOUR = "#98a2b3"
_NICE = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


@dataclass(frozen=True)
class ChartDay:
    label: str  # short x-axis label, e.g. "3. Nov."
    tooltip: str  # everything about the day, shown on hover
    spend: Decimal  # EUR
    minutes: Decimal


@dataclass(frozen=True)
class ChartText:
    title: str
    description: str
    spend_heading: str  # e.g. "Spend per day (EUR)"
    minutes_heading: str  # e.g. "Minutes per day"


@dataclass(frozen=True)
class Layout:
    """Drawing sizes in the SVG's own units; the SVG scales to its container's width."""

    width: int
    height: int
    left: int  # room for the y-axis labels
    font_size: int
    max_x_labels: int


WIDE = Layout(width=960, height=360, left=76, font_size=13, max_x_labels=11)
COMPACT = Layout(width=360, height=330, left=60, font_size=12, max_x_labels=5)


def nice_ticks(maximum: Decimal, minimum_step: Decimal, count: int = 4) -> list[Decimal]:
    """0, step, 2·step … up to the first multiple ≥ maximum; step is 1, 2, 2.5 or 5 × 10^n."""
    raw = max(maximum / count, minimum_step)
    magnitude = Decimal(1).scaleb(raw.adjusted())
    step = next(nice for nice in _NICE if nice * magnitude >= raw) * magnitude
    top = max(math.ceil(maximum / step), 1)
    return [step * index for index in range(top + 1)]


def usage_chart(days: Sequence[ChartDay], *, text: ChartText, spend_tick: Callable[[Decimal], str],
                minutes_tick: Callable[[Decimal], str], chart_id: str, layout: Layout = WIDE) -> Markup:
    """Two panels over the same days: bars of the daily spend above, a line of the daily minutes
    below, each with its own axis. Every day has a hover title with its figures."""
    width, height, left, size = layout.width, layout.height, layout.left, layout.font_size
    right, plot_width = 10, layout.width - layout.left - 10
    spend_top, spend_bottom = 30, 30 + round((height - 100) * 0.58)
    minutes_heading_y = spend_bottom + 28
    minutes_top, minutes_bottom = minutes_heading_y + 12, height - 30
    slot = plot_width / max(len(days), 1)
    spend_ticks = nice_ticks(max((day.spend for day in days), default=Decimal(0)), Decimal("0.01"))
    minutes_ticks = nice_ticks(max((day.minutes for day in days), default=Decimal(0)), Decimal("0.1"))

    def y_of(value: Decimal, ticks: list[Decimal], top: int, bottom: int) -> float:  # not money
        return bottom - float(value / ticks[-1]) * (bottom - top)  # not money

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}" class="chart" '
        f'font-size="{size}" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{chart_id}-title">{escape(text.title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(text.description)}</desc>',
        f'<rect x="{left}" y="8" width="10" height="10" rx="2" fill="{SPEND_COLOUR}"/>',
        f'<text x="{left + 16}" y="17" class="chart-heading" fill="{TEXT_COLOUR}">{escape(text.spend_heading)}</text>',
        f'<line x1="{left}" x2="{left + 10}" y1="{minutes_heading_y - 4}" y2="{minutes_heading_y - 4}" '
        f'stroke="{MINUTES_COLOUR}" stroke-width="2.5"/>',
        f'<text x="{left + 16}" y="{minutes_heading_y}" class="chart-heading" fill="{TEXT_COLOUR}">'
        f'{escape(text.minutes_heading)}</text>',
    ]
    for ticks, top, bottom, label_of in ((spend_ticks, spend_top, spend_bottom, spend_tick),
                                         (minutes_ticks, minutes_top, minutes_bottom, minutes_tick)):
        for tick in ticks:
            y = y_of(tick, ticks, top, bottom)
            colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}"/>')
            parts.append(f'<text x="{left - 6}" y="{y:.1f}" dy="0.35em" text-anchor="end" fill="{TEXT_COLOUR}">'
                         f'{escape(label_of(tick))}</text>')

    bar_width = max(slot * 0.68, 1.0)
    points = []
    for index, day in enumerate(days):
        x = left + index * slot
        centre = x + slot / 2
        spend_y = y_of(day.spend, spend_ticks, spend_top, spend_bottom)
        minutes_y = y_of(day.minutes, minutes_ticks, minutes_top, minutes_bottom)
        points.append((centre, minutes_y))
        parts.append(f'<g class="chart-day"><title>{escape(day.tooltip)}</title>'
                     f'<rect class="chart-hit" x="{x:.1f}" y="{spend_top}" width="{slot:.1f}" '
                     f'height="{minutes_bottom - spend_top}" fill="transparent"/>')
        if day.spend > 0:
            bar_height = max(spend_bottom - spend_y, 1.0)
            parts.append(f'<rect x="{centre - bar_width / 2:.1f}" y="{spend_bottom - bar_height:.1f}" '
                         f'width="{bar_width:.1f}" height="{bar_height:.1f}" rx="{min(2.0, bar_width / 4):.1f}" '
                         f'fill="{SPEND_COLOUR}"/>')
        parts.append("</g>")
    if points:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        area = f"{points[0][0]:.1f},{minutes_bottom} {line} {points[-1][0]:.1f},{minutes_bottom}"
        parts.append(f'<polygon points="{area}" fill="{MINUTES_COLOUR}" fill-opacity="0.08" pointer-events="none"/>')
        parts.append(f'<polyline points="{line}" fill="none" stroke="{MINUTES_COLOUR}" stroke-width="2" '
                     f'stroke-linejoin="round" stroke-linecap="round" pointer-events="none"/>')
        if slot >= 14:  # dots only where they do not run into each other
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{MINUTES_COLOUR}" pointer-events="none"/>'
                         for x, y in points)

    label_width = max((len(day.label) for day in days), default=1) * size * 0.6 + 12  # about, in SVG units
    fitting = max(min(int(plot_width // label_width), layout.max_x_labels), 1)
    every = max(math.ceil(len(days) / fitting), 1)
    for index in range(0, len(days), every):
        half = len(days[index].label) * size * 0.3  # about half the label's width: keep it inside
        centre = min(max(left + index * slot + slot / 2, half), width - half)
        parts.append(f'<text x="{centre:.1f}" y="{height - 10}" text-anchor="middle" fill="{TEXT_COLOUR}">'
                     f'{escape(days[index].label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
