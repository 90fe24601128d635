"""Charts drawn on the server as inline SVG: no chart library, no script, no
CDN — the page's CSP stays ``default-src 'self'`` and the chart is there
before any script runs.

:func:`buckets` turns timed events into counts per hour (or per day for
long spans) in the site's zone, every bucket between the first and the last
present so the time axis is even; :func:`line_chart` draws one line per
series with its legend, axis labels naming the zone, and a ``<title>`` on
every point for the exact figure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 40
#: at most this many buckets are drawn (the newest)
MAX_BUCKETS = 240


def _floor(moment: datetime, tz: ZoneInfo, step: timedelta) -> datetime:
    local = moment.astimezone(tz)
    if step >= timedelta(days=1):
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if step >= timedelta(hours=1):
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(minute=local.minute - local.minute % int(step.total_seconds() // 60), second=0,
                         microsecond=0)


def step_for(first: datetime, last: datetime) -> timedelta:
    """An hour for spans up to three days, else a day."""
    return timedelta(hours=1) if last - first <= timedelta(days=3) else timedelta(days=1)


def buckets(events, tz: ZoneInfo, step: timedelta | None = None, until: datetime | None = None,
            since: datetime | None = None) -> tuple[list[datetime], dict[str, list]]:
    """``events`` as (when, series name, amount) → (bucket starts, {series: amount per bucket})."""
    events = [(when, name, amount) for when, name, amount in events if when is not None]
    if not events and since is None:
        return [], {}
    moments = [when for when, _, _ in events]
    first = since or min(moments)
    last = until or max(moments)
    step = step or step_for(first, last)
    start, end = _floor(first, tz, step), _floor(last, tz, step)
    starts = []
    current = start
    if start == end:  # one bucket: show the hour before and after it, so a line has somewhere to go
        current = start = _shift(start, -step, tz)
        end = _shift(end, step, tz)
    while current <= end:
        starts.append(current)
        current = _shift(current, step, tz)
    starts = starts[-MAX_BUCKETS:]
    index = {moment: position for position, moment in enumerate(starts)}
    series: dict[str, list] = {}
    for when, name, amount in events:
        position = index.get(_floor(when, tz, step))
        values = series.setdefault(name, [0] * len(starts))
        if position is not None:
            values[position] += amount
    return starts, series


def _shift(moment: datetime, step: timedelta, tz: ZoneInfo) -> datetime:
    """``moment`` moved by ``step`` in the zone's wall-clock time (a day stays a calendar day)."""
    return (moment.replace(tzinfo=None) + step).replace(tzinfo=tz)


def _label(moment: datetime, step: timedelta) -> str:
    return moment.strftime("%m-%d") if step >= timedelta(days=1) else moment.strftime("%m-%d %H:%M")


def line_chart(starts: list[datetime], series: dict[str, list], colours: dict[str, str], title: str,
               zone_name: str, chart_id: str, unit: str = "") -> Markup:
    """One line per series over ``starts``; ``colours`` orders the series (and colours them)."""
    names = [name for name in colours if name in series] + sorted(set(series) - set(colours))
    peak = max((float(value) for name in names for value in series[name]), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = len(starts)
    step = (starts[1] - starts[0]) if count > 1 else timedelta(hours=1)

    def x(position: int) -> float:
        return LEFT + (plot_w * position / (count - 1) if count > 1 else plot_w / 2)

    def y(value) -> float:
        return TOP + plot_h - plot_h * float(value) / peak

    parts = [f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">',
             f'<title>{escape(title)}</title>',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#b8c0cc"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="#e6e9ef" stroke-dasharray="4 3"/>',
             f'<text x="{LEFT - 6}" y="{TOP + 4}" font-size="11" fill="#677086" text-anchor="end">'
             f'{escape(_amount(peak))}{escape(unit)}</text>',
             f'<text x="{LEFT - 6}" y="{TOP + plot_h + 4}" font-size="11" fill="#677086" text-anchor="end">0</text>']
    every = max(1, count // 8)
    for position in range(0, count, every):
        parts.append(f'<text x="{x(position):.1f}" y="{HEIGHT - 22}" font-size="10" fill="#677086" '
                     f'text-anchor="middle">{escape(_label(starts[position], step))}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" font-size="10" fill="#677086" text-anchor="end">'
                 f'{escape(zone_name)}</text>')
    for name in names:
        colour = colours.get(name, "#1f5fbf")
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(series[name]))
        parts.append(f'<polyline data-series="{escape(name)}" fill="none" stroke="{escape(colour)}" '
                     f'stroke-width="2" points="{points}"/>')
        for position, value in enumerate(series[name]):
            if value:
                parts.append(f'<circle cx="{x(position):.1f}" cy="{y(value):.1f}" r="3" fill="{escape(colour)}">'
                             f'<title>{escape(_label(starts[position], step))} {escape(zone_name)}: '
                             f'{escape(_amount(value))}{escape(unit)} {escape(name)}</title></circle>')
    legend_x = LEFT
    for name in names:
        colour = colours.get(name, "#1f5fbf")
        total = sum(series[name])
        parts.append(f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{escape(colour)}"/>'
                     f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" font-size="11" fill="#333" '
                     f'data-total="{escape(name)}">{escape(name)} {escape(_amount(total))}{escape(unit)}</text>')
        legend_x += 24 + 8 * (len(name) + len(_amount(total)) + len(unit))
    parts.append("</svg>")
    return Markup("".join(parts))


def _amount(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value))
