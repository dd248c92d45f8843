"""One chart as inline SVG, drawn on the server: no script, no font file, nothing fetched by the browser.

The baseline period is shaded, the incident window left white; the anomalous entities are thick coloured
lines over their siblings in grey; the threshold or baseline the detector compared with is a dashed line,
the onset a vertical red line. Hovering a line shows the entity (an SVG <title>).
"""
from __future__ import annotations

import math
from html import escape

from ..core.timefmt import clock

from .charts import Chart, Line

WIDTH, HEIGHT = 640, 210
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 26
FAULTY_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
SIBLING_COLOUR = "#9aa5b1"


def label(entity: dict[str, str]) -> str:
    """A short name for a line: pod (and GPU), or the model."""
    if entity.get("gpu"):
        return f"{entity.get('pod') or entity.get('exported_pod') or '?'} gpu{entity['gpu']}"
    return entity.get("pod") or entity.get("model_name") or ", ".join(v for v in entity.values() if v) or "(all)"


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    span = hi - lo or 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _num(v: float) -> str:
    return f"{v:.3g}"


def _segments(points: list[tuple[float, float]], gap: float) -> list[list[tuple[float, float]]]:
    """Split where samples are missing, so a vanished series is not drawn as a straight line."""
    out: list[list[tuple[float, float]]] = []
    for t, v in points:
        if not math.isfinite(v):
            out.append([])
            continue
        if not out or not out[-1] or t - out[-1][-1][0] > gap:
            out.append([])
        out[-1].append((t, v))
    return [s for s in out if s]


def draw(chart: Chart) -> str:
    values = [v for line in chart.lines for _, v in line.points if math.isfinite(v)]
    if chart.reference is not None:
        values.append(chart.reference)
    lo, hi = (min(0.0, min(values)), max(values)) if values else (0.0, 1.0)
    hi = hi * 1.08 if hi > 0 else hi + 1
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    span = chart.at - chart.start or 1.0
    sx = lambda t: x0 + (t - chart.start) / span * (x1 - x0)  # noqa: E731
    sy = lambda v: y0 - (v - lo) / ((hi - lo) or 1.0) * (y0 - y1)  # noqa: E731
    step = min((b[0] - a[0] for line in chart.lines for a, b in zip(line.points, line.points[1:])), default=60.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" role="img" aria-label="{escape(chart.signal)} of {escape(chart.node)}">',
           f'<rect class="baseline-period" x="{x0}" y="{y1}" width="{sx(chart.window_start) - x0:.1f}" '
           f'height="{y0 - y1}" fill="#eef1f5"><title>baseline period</title></rect>']
    for v in _ticks(lo, hi):
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#e3e6ea"/>'
                   f'<text x="{x0 - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{_num(v)}</text>')
    tick = 900 if span <= 4 * 3600 else 3600 * max(1, round(span / 3600 / 6))
    t = math.ceil(chart.start / tick) * tick
    while t <= chart.at:
        out.append(f'<text x="{sx(t):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{clock(t)}</text>')
        t += tick
    lines = sorted(chart.lines, key=lambda line: line.faulty)  # siblings below
    faulty_index = 0
    for line in lines:
        colour = FAULTY_COLOURS[faulty_index % len(FAULTY_COLOURS)] if line.faulty else SIBLING_COLOUR
        faulty_index += line.faulty
        cls = "series faulty" if line.faulty else "series sibling"
        width = 2.5 if line.faulty else 1.2
        for seg in _segments(line.points, 2.5 * step):
            pts = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in seg)
            out.append(f'<polyline class="{cls}" points="{pts}" fill="none" stroke="{colour}" '
                       f'stroke-width="{width}"><title>{escape(label(line.entity))}</title></polyline>')
    if chart.reference is not None:
        y = sy(chart.reference)
        out.append(f'<line class="reference" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#1f77b4" '
                   f'stroke-dasharray="6 4" stroke-width="1.5"/><text x="{x0 + 6}" y="{y - 5:.1f}" '
                   f'fill="#1f77b4">{escape(chart.reference_label)} {_num(chart.reference)}</text>')
    out.append(f'<line x1="{sx(chart.window_start):.1f}" x2="{sx(chart.window_start):.1f}" y1="{y1}" y2="{y0}" '
               f'stroke="#7b8794" stroke-dasharray="2 3"/><text x="{sx(chart.window_start) + 4:.1f}" '
               f'y="{y0 - 6}" fill="#52606d">window</text>')
    if chart.onset is not None:
        x = sx(chart.onset)
        out.append(f'<line class="onset" x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" y2="{y0}" stroke="#d62728" '
                   f'stroke-width="1.5"/><text x="{x - 4:.1f}" y="{y1 + 12}" text-anchor="end" fill="#d62728">onset '
                   f'{clock(chart.onset)}</text>')
    out.append(f'<line x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}" stroke="#52606d"/></svg>')
    return "".join(out)


def legend(chart: Chart) -> list[tuple[str, str, Line]]:
    """(colour, name, line) of each faulty line, in the colours `draw` gives them."""
    faulty = [line for line in chart.lines if line.faulty]
    return [(FAULTY_COLOURS[i % len(FAULTY_COLOURS)], label(line.entity), line) for i, line in enumerate(faulty)]
