"""Bar charts drawn on the server as inline SVG: no JavaScript, nothing fetched from elsewhere.

Only the geometry is computed here; ``templates/dashboard/bar_chart.html`` draws it.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from .selectors import DailySeries, DayFigure

CHART_HEIGHT = 120
BAR_WIDTH = 14
BAR_GAP = 4
_PRECISION = Decimal("0.01")


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: Decimal
    height: Decimal
    figure: DayFigure


@dataclasses.dataclass(frozen=True, slots=True)
class BarChart:
    """One bar per day, its height proportional to the day's volume; the busiest day fills the chart."""

    series: DailySeries
    bars: list[Bar]
    width: int
    height: int = CHART_HEIGHT
    bar_width: int = BAR_WIDTH


def volume_chart(series: DailySeries) -> BarChart:
    highest = max((figure.volume.value for figure in series.days), default=0) or 1
    bars = []
    for index, figure in enumerate(series.days):
        height = (Decimal(figure.volume.value * CHART_HEIGHT) / highest).quantize(_PRECISION)
        bars.append(Bar(x=index * (BAR_WIDTH + BAR_GAP), y=CHART_HEIGHT - height, height=height, figure=figure))
    return BarChart(series=series, bars=bars, width=len(bars) * (BAR_WIDTH + BAR_GAP))
