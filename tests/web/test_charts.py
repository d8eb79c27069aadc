"""The usage page's SVG chart (app/charts.py): axis ticks, accessibility, layouts."""

from decimal import Decimal

import pytest

from app.charts import COMPACT, WIDE, ChartDay, ChartText, nice_ticks, usage_chart


@pytest.mark.parametrize("maximum, minimum_step, expected", [
    (Decimal("0"), Decimal("0.01"), ["0", "0.01"]),
    (Decimal("7.3"), Decimal("0.01"), ["0", "2", "4", "6", "8"]),
    (Decimal("10"), Decimal("0.01"), ["0", "2.5", "5", "7.5", "10"]),
    (Decimal("1234"), Decimal("0.1"), ["0", "500", "1000", "1500"]),
    (Decimal("0.007"), Decimal("0.01"), ["0", "0.01"]),
])
def test_axis_ticks_are_round_numbers_from_zero_past_the_maximum(maximum, minimum_step, expected):
    assert nice_ticks(maximum, minimum_step) == [Decimal(value) for value in expected]


def chart_days(count: int, spend_on: dict[int, str]) -> list[ChartDay]:
    return [ChartDay(f"D{index}", f"Day {index} <details>", Decimal(spend_on.get(index, "0")),
                     Decimal(index)) for index in range(count)]


TEXT = ChartText(title="Ausgaben & Minuten", description="Balken <Ausgaben>", spend_heading="Ausgaben pro Tag",
                 minutes_heading="Minuten pro Tag")


def test_the_chart_is_an_accessible_svg_with_a_bar_per_day_with_spend_and_a_minutes_line():
    svg = str(usage_chart(chart_days(30, {3: "12.5", 4: "1"}), text=TEXT, spend_tick=lambda v: f"{v} €",
                          minutes_tick=str, chart_id="c1"))
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-labelledby="c1-title c1-desc"' in svg
    assert '<title id="c1-title">Ausgaben &amp; Minuten</title>' in svg
    assert '<desc id="c1-desc">Balken &lt;Ausgaben&gt;</desc>' in svg
    assert svg.count('fill="#0172ad"') == 1 + 2  # the legend swatch and two bars
    assert svg.count('<g class="chart-day">') == 30 and "Day 3 &lt;details&gt;" in svg
    assert "<polyline" in svg and ">Ausgaben pro Tag<" in svg and ">Minuten pro Tag<" in svg
    assert ">15 €<" in svg  # the spend axis reaches past 12.5


def test_the_compact_chart_labels_fewer_days_and_both_fit_their_viewbox():
    days = chart_days(90, {0: "1"})
    wide = str(usage_chart(days, text=TEXT, spend_tick=str, minutes_tick=str, chart_id="w", layout=WIDE))
    compact = str(usage_chart(days, text=TEXT, spend_tick=str, minutes_tick=str, chart_id="c", layout=COMPACT))
    x_labels = lambda svg: sum(1 for index in range(90) if f">D{index}</text>" in svg)  # noqa: E731
    assert x_labels(wide) <= WIDE.max_x_labels and x_labels(compact) <= COMPACT.max_x_labels
    assert 'viewBox="0 0 960 360"' in wide and 'viewBox="0 0 360 330"' in compact
    assert "<circle" not in compact  # too narrow for dots on 90 days


def test_a_chart_without_any_spend_draws_no_bars_and_does_not_fail():
    svg = str(usage_chart(chart_days(1, {}), text=TEXT, spend_tick=str, minutes_tick=str, chart_id="z"))
    assert svg.count('fill="#0172ad"') == 1 and "nan" not in svg.lower()
