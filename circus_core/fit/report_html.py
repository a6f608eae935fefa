"""The fidelity report as one self-contained HTML page: inline SVG charts drawn here, no
JavaScript, no network, no plotting library (matplotlib is not a dependency, and a page that
loads nothing can be mailed, archived and opened anywhere).

Every text that comes from the data (category, type and column names) goes through
``html.escape``: an event log is input, and a category named ``<script>`` must stay text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["render_html"]

REAL = "#1f77b4"
SYNTHETIC = "#e8710a"
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 14, 36
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: the page's order (a report read back from its JSON has its keys sorted)
SECTIONS = (
    "hour_of_week",
    "events_per_member",
    "inter_event_time",
    "event_types",
    "transitions",
    "fields",
    "relationship",
)
QUANTILE_ORDER = ("p50", "p90", "p99", "max")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;
color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:16px 0 4px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 8px;border:1px solid #ddd;text-align:right}
th{background:#f6f6f6}td.l,th.l{text-align:left}.muted{color:#777;font-size:12px}
.key{display:inline-block;width:12px;height:3px;vertical-align:middle;margin:0 4px 0 10px}
table.heat td{min-width:34px;font-size:11px;text-align:center}
table.heat th{font-size:11px;max-width:90px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
svg{display:block;margin:4px 0 10px}svg text{font:11px system-ui,sans-serif;fill:#444}
.heats{display:flex;gap:24px;flex-wrap:wrap}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "&#8211;"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return _e(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{digits}g}"
    text = f"{x:,.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _legend() -> str:
    return (
        f'<div class="muted"><span class="key" style="background:{REAL}"></span>real'
        f'<span class="key" style="background:{SYNTHETIC}"></span>synthetic</div>'
    )


# --------------------------------------------------------------------------------------------
# charts


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        exp = math.floor(math.log10(abs(v)))
        mant = v / 10**exp
        return f"1e{exp}" if abs(mant - 1) < 1e-9 else f"{mant:.3g}e{exp}"
    return f"{v:.4g}"


def line_chart(
    series: Sequence[tuple[str, str, Sequence[float | None], Sequence[float | None]]],
    *,
    x_log: bool = False,
    x_label: str = "",
    y_label: str = "",
    y_max: float | None = None,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    x_range: tuple[float, float] | None = None,
) -> str:
    """An inline SVG line chart: ``series`` of (name, colour, xs, ys); None points are skipped.
    On a log x axis, values at or below the smallest positive one are drawn at the left edge."""
    pts = [(x, y) for _, _, xs, ys in series for x, y in zip(xs, ys, strict=False) if x is not None and y is not None]
    if not pts:
        return '<p class="muted">no data</p>'
    xs_all = [p[0] for p in pts]
    if x_log:
        positive = [x for x in xs_all if x > 0]
        lo = min(positive) if positive else 1.0
        hi = max(max(xs_all), lo * 10)
        fx = math.log10
    else:
        lo, hi = x_range if x_range else (min(xs_all), max(xs_all))

        def fx(v: float) -> float:
            return v

    if hi == lo:
        hi = lo + 1
    a, b = fx(lo), fx(hi)
    top = y_max if y_max is not None else max(p[1] for p in pts) * 1.08 or 1.0
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v: float) -> float:
        v = max(v, lo) if x_log else v
        return LEFT + (fx(v) - a) / (b - a) * pw

    def sy(v: float) -> float:
        return TOP + ph - v / top * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">']
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>')
    for v in _nice_ticks(0, top, 4):
        y = sy(v)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_e(_tick_label(v))}</text>')
    if x_ticks is None:
        if x_log:
            ticks = [(10.0**e, _tick_label(10.0**e)) for e in range(math.ceil(a), math.floor(b) + 1)]
            if len(ticks) < 2:
                ticks = [(lo, _tick_label(lo)), (hi, _tick_label(hi))]
        else:
            ticks = [(v, _tick_label(v)) for v in _nice_ticks(lo, hi)]
    else:
        ticks = list(x_ticks)
    for v, label in ticks:
        x = sx(v)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 14}" text-anchor="middle">{_e(label)}</text>')
    for name, colour, xs, ys in series:
        coords = " ".join(
            f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=False) if x is not None and y is not None
        )
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{coords}"><title>{_e(name)}</title>'
            "</polyline>"
        )
    out.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 4}" text-anchor="middle">{_e(x_label)}</text>')
    out.append(
        f'<text x="12" y="{TOP + ph / 2}" text-anchor="middle" transform="rotate(-90 12 {TOP + ph / 2})">'
        f"{_e(y_label)}</text>"
    )
    out.append("</svg>")
    return "".join(out)


def bar_chart(labels: Sequence[str], real: Sequence[float | None], synthetic: Sequence[float | None]) -> str:
    """Paired horizontal bars (real above synthetic) of shares, one row per label."""
    if not labels:
        return '<p class="muted">no data</p>'
    vals = [v or 0.0 for v in [*real, *synthetic]]
    top = max(vals) or 1.0
    label_w, row, bar = 170, 26, 10
    pw = WIDTH - label_w - 70
    h = row * len(labels) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" role="img">']
    for i, label in enumerate(labels):
        y = 4 + i * row
        text = label if len(label) <= 26 else label[:25] + "…"
        out.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{_e(text)}<title>{_e(label)}</title></text>'
        )
        for j, (values, colour) in enumerate(((real, REAL), (synthetic, SYNTHETIC))):
            v = values[i] or 0.0
            w = v / top * pw
            yy = y + 2 + j * (bar + 1)
            out.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar}" fill="{colour}"/>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{yy + 9}">{_e(f"{v:.1%}")}</text>')
    out.append("</svg>")
    return "".join(out)


def _cdf_chart(section: dict[str, Any], x_label: str, *, x_log: bool = True) -> str:
    cdf = section.get("cdf") or {}
    p = cdf.get("p") or []
    if x_log and any(v is not None and v <= 0 for v in [*(cdf.get("real") or []), *(cdf.get("synthetic") or [])]):
        x_label += " (values ≤ 0 at the left edge)"
    return line_chart(
        [("real", REAL, cdf.get("real") or [], p), ("synthetic", SYNTHETIC, cdf.get("synthetic") or [], p)],
        x_log=x_log,
        x_label=x_label,
        y_label="share ≤ x",
        y_max=1.0,
    )


def _heatmap(types: Sequence[str], matrix: Sequence[Sequence[float | None]], colour: tuple[int, int, int]) -> str:
    """A transition matrix as a table whose cells shade with the probability."""
    r, g, b = colour
    head = "".join(f'<th title="{_e(t)}">{_e(t)}</th>' for t in types)
    rows = []
    for t, values in zip(types, matrix, strict=False):
        cells = "".join(
            f'<td style="background:rgba({r},{g},{b},{(v or 0):.2f})">{(v or 0) * 100:.0f}</td>' for v in values
        )
        rows.append(f'<tr><th class="l" title="{_e(t)}">{_e(t)}</th>{cells}</tr>')
    return f'<table class="heat"><tr><th class="l">from \\ to</th>{head}</tr>{"".join(rows)}</table>'


# --------------------------------------------------------------------------------------------
# the page


def _distance_line(section: dict[str, Any]) -> str:
    return (
        f"<p>{_e(section.get('statistic', ''))}: <b>{_fmt(section.get('distance'), 4)}</b> "
        f"(score {_fmt(section.get('score'), 4)})</p>"
    )


def _quantile_table(section: dict[str, Any]) -> str:
    q = section.get("quantiles") or {}
    names = [n for n in QUANTILE_ORDER if n in (q.get("real") or {})]
    if not names:
        return ""
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = "".join(
        f'<tr><th class="l">{side}</th><td>{_fmt((section.get("mean") or {}).get(side))}</td>'
        + "".join(f"<td>{_fmt((q.get(side) or {}).get(n))}</td>" for n in names)
        + "</tr>"
        for side in ("real", "synthetic")
    )
    return f'<table><tr><th class="l"></th><th>mean</th>{head}</tr>{rows}</table>'


def _scores_table(report: dict[str, Any]) -> str:
    rows = []
    for name in SECTIONS:
        section = report.get(name)
        if isinstance(section, dict) and "distance" in section:
            rows.append(
                f'<tr><td class="l"><a href="#{_e(name)}">{_e(name)}</a></td>'
                f'<td class="l">{_e(section.get("statistic", ""))}</td>'
                f"<td>{_fmt(section.get('distance'), 4)}</td><td>{_fmt(section.get('score'), 4)}</td></tr>"
            )
    overall = report.get("overall") or {}
    rows.append(
        f'<tr><th class="l">overall</th><td class="l">{_e(overall.get("statistic", ""))}</td><td></td>'
        f"<th>{_fmt(overall.get('score'), 4)}</th></tr>"
    )
    sdm = report.get("sdmetrics") or {}
    if sdm.get("available"):
        rows.append(
            f'<tr><td class="l"><a href="#sdmetrics">sdmetrics</a></td><td class="l">{_e(sdm.get("statistic", ""))}'
            f"</td><td></td><td>{_fmt(sdm.get('score'), 4)}</td></tr>"
        )
    head = '<tr><th class="l">section</th><th class="l">statistic</th><th>distance</th><th>score</th></tr>'
    return f"<table>{head}{''.join(rows)}</table>"


def _summary_table(report: dict[str, Any]) -> str:
    overall = report.get("overall") or {}
    keys = ("events", "members", "first", "last", "span_days")
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    rows = "".join(
        f'<tr><th class="l">{side}</th>'
        + "".join(f"<td>{_fmt((overall.get(side) or {}).get(k))}</td>" for k in keys)
        + "</tr>"
        for side in ("real", "synthetic")
    )
    return f'<table><tr><th class="l"></th>{head}</tr>{rows}</table>'


def _hour_of_week(sec: dict[str, Any]) -> str:
    hours = list(range(168))
    ticks = [(d * 24, DAYS[d]) for d in range(7)]
    chart = line_chart(
        [("real", REAL, hours, sec.get("real") or []), ("synthetic", SYNTHETIC, hours, sec.get("synthetic") or [])],
        x_label=f"local hour of week ({sec.get('timezone', '')})",
        y_label="share of events",
        x_ticks=ticks,
        x_range=(0, 168),
    )
    dow = sec.get("day_of_week") or {}
    cells = "".join(f"<th>{d}</th>" for d in DAYS)
    rows = "".join(
        f'<tr><th class="l">{side}</th>' + "".join(f"<td>{_fmt(v)}</td>" for v in dow.get(side) or []) + "</tr>"
        for side in ("real", "synthetic")
    )
    return (
        _distance_line(sec)
        + _legend()
        + chart
        + f'<p class="muted">{_e(sec.get("note", ""))}</p>'
        + f'<table><tr><th class="l">day shares</th>{cells}</tr>{rows}</table>'
    )


def _ordered(keys: Any, order: Sequence[str]) -> list[str]:
    """``keys`` in the roles' order (then any others, sorted): JSON sorts them."""
    return [*(k for k in order if k in keys), *sorted(set(keys) - set(order))]


def _fields(sec: dict[str, Any], order: Sequence[str]) -> str:
    out = [_distance_line(sec)]
    fields = sec.get("fields") or {}
    for name in _ordered(fields, order):
        f = fields[name]
        out.append(f"<h3>{_e(name)} ({_e(f.get('kind', ''))})</h3>")
        out.append(_distance_line(f))
        if f.get("kind") == "categorical":
            out.append(_legend() + bar_chart(f.get("categories") or [], f.get("real") or [], f.get("synthetic") or []))
        else:
            values = [v for v in [*(f["cdf"].get("real") or []), *(f["cdf"].get("synthetic") or [])] if v is not None]
            # a log axis for positive values spread over more than two decades
            x_log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
            out.append(_legend() + _cdf_chart(f, "value", x_log=x_log) + _quantile_table(f))
    return "".join(out)


def _relationship(sec: dict[str, Any]) -> str:
    out = [_distance_line(sec), f'<p class="muted">{_e(sec.get("note", ""))}</p>']
    for key, label in (
        ("degree", "distinct targets per member"),
        ("popularity", "share of events per target"),
        ("repeat_contact", "events per (member, target) pair"),
    ):
        sub = sec.get(key) or {}
        out.append(f"<h3>{_e(label)}</h3>" + _distance_line(sub))
        if key == "degree":
            out.append(_legend() + _cdf_chart(sub, label))
        out.append(_quantile_table(sub))
    return "".join(out)


def _sdmetrics(sec: dict[str, Any], order: Sequence[str]) -> str:
    if not sec.get("available"):
        return f"<p>not computed: {_e(sec.get('reason', ''))}</p>"
    qr = sec.get("quality_report") or {}
    columns = sec.get("columns") or {}
    rows = "".join(
        f'<tr><td class="l">{_e(c)}</td><td class="l">{_e(v.get("metric") or "")}</td>'
        f"<td>{_fmt(v.get('score'), 4)}</td>"
        f'<td class="l muted">{_e(v.get("skipped", ""))}</td></tr>'
        for c, v in ((c, columns[c]) for c in _ordered(columns, order))
    )
    props = "".join(
        f'<tr><td class="l">{_e(p)}</td><td>{_fmt(s, 4)}</td></tr>'
        for p, s in sorted((qr.get("properties") or {}).items())
    )
    n = sec.get("sample_rows") or {}
    return (
        f"<p>sdmetrics {_e(sec.get('version', ''))}, on a sample of {_fmt(n.get('real'))} real and "
        f"{_fmt(n.get('synthetic'))} synthetic rows (seed {_e(sec.get('seed', ''))}). "
        f"{_e(qr.get('class', ''))} score: <b>{_fmt(qr.get('score'), 4)}</b></p>"
        f'<table><tr><th class="l">property</th><th>score</th></tr>{props}</table>'
        '<table><tr><th class="l">column</th><th class="l">metric</th><th>score</th><th class="l"></th></tr>'
        f"{rows}</table>"
        f'<p class="muted">{_e(sec.get("note", ""))}</p>'
    )


def _role_columns(report: dict[str, Any]) -> list[str]:
    roles = report.get("roles") or {}
    return [c for c in (roles.get("type"), roles.get("target"), *(roles.get("fields") or [])) if c]


def render_html(report: dict[str, Any]) -> str:
    """The report (as returned by ``fidelity_report`` or read back from its JSON) as a page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Circus fidelity report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Fidelity: real vs synthetic event log</h1>",
        '<p class="muted">0 = identical distributions, 1 = nothing in common; score = 1 - distance. Members are '
        "never matched across the logs: every section compares distributions.</p>",
        _scores_table(report),
        _summary_table(report),
    ]
    sec = report.get("hour_of_week")
    if sec:
        parts += ['<h2 id="hour_of_week">When: hour of week</h2>', _hour_of_week(sec)]
    sec = report.get("events_per_member")
    if sec:
        parts += [
            '<h2 id="events_per_member">How much: events per member per day</h2>',
            _distance_line(sec) + _legend() + _cdf_chart(sec, "events per member per day") + _quantile_table(sec),
        ]
    sec = report.get("inter_event_time")
    if sec:
        parts += [
            '<h2 id="inter_event_time">Gaps between a member\'s events</h2>',
            _distance_line(sec) + _legend() + _cdf_chart(sec, "seconds") + _quantile_table(sec),
        ]
    sec = report.get("event_types")
    if sec:
        parts += [
            '<h2 id="event_types">Event types</h2>',
            _distance_line(sec)
            + _legend()
            + bar_chart(sec.get("categories") or [], sec.get("real") or [], sec.get("synthetic") or []),
        ]
    sec = report.get("transitions")
    if sec:
        types = sec.get("types") or []
        parts += [
            '<h2 id="transitions">Transitions: type → next type of the same member (%)</h2>',
            _distance_line(sec),
            '<div class="heats"><div><h3>real</h3>'
            + _heatmap(types, sec.get("real") or [], (31, 119, 180))
            + "</div><div><h3>synthetic</h3>"
            + _heatmap(types, sec.get("synthetic") or [], (232, 113, 10))
            + "</div></div>",
        ]
    sec = report.get("fields")
    if sec:
        parts += ['<h2 id="fields">Fields</h2>', _fields(sec, (report.get("roles") or {}).get("fields") or [])]
    sec = report.get("relationship")
    if sec:
        parts += ['<h2 id="relationship">Relationship: members and their targets</h2>', _relationship(sec)]
    sec = report.get("sdmetrics")
    if sec:
        parts += ['<h2 id="sdmetrics">SDV\'s yardstick (sdmetrics)</h2>', _sdmetrics(sec, _role_columns(report))]
    parts.append("</body></html>\n")
    return "\n".join(parts)
