"""The report's charts, drawn as SVG text: no plotting library, no fonts or files outside the page, and the same
bytes for the same numbers on every machine (the report is part of the artifact).

Each function returns one ``<svg>`` document with its ``width`` and ``height`` set (a browser sizes an ``<img>`` of
it by them) and its numbers drawn to a fixed precision. Labels are escaped; values that are not finite are left
out, never drawn at an arbitrary place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
FONT = 'font-family="sans-serif" font-size="11"'


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
        f'<rect width="{width}" height="{height}" fill="white"/>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT}{extra}>{escape(text)}</text>'


def _short(label: str, size: int = 28) -> str:
    return label if len(label) <= size else "…" + label[-(size - 1) :]


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value`` (> 0)."""
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value * (1 - 1e-9))


def range_chart(layers: Sequence[tuple[str, dict[str, float], float]], title: str) -> str:
    """Calibration activations against thresholds: per layer (name, value range, threshold λ), a bar to the
    99th percentile of the positive activations, a lighter one to the 99.9th, a whisker to the largest value,
    all divided by λ, and the threshold itself at 1: what lies right of it saturates the neurons."""
    rows = [(name, r, lam) for name, r, lam in layers if _finite(lam, r.get("max")) and lam > 0]
    top = min(4.0, max([1.25, *(r["max"] / lam * 1.05 for _, r, lam in rows)]))
    left, width, row_h = 200, 440, 22
    height = 50 + row_h * len(rows)
    x = lambda v: left + width * min(v, top) / top  # noqa: E731
    body = [_text(10, 16, title, extra=' font-weight="bold"')]
    for k, (name, r, lam) in enumerate(rows):
        y = 28 + k * row_h
        body.append(_text(left - 6, y + 13, _short(name), "end"))
        for key, colour in (("p99.9", "#9ecae1"), ("p99", "#3182bd")):
            if _finite(r.get(key)):
                body.append(
                    f'<rect x="{left}" y="{y + 4}" width="{x(r[key] / lam) - left:.1f}" height="12" fill="{colour}"/>'
                )
        body.append(f'<line x1="{left}" x2="{x(r["max"] / lam):.1f}" y1="{y + 10}" y2="{y + 10}" stroke="#555"/>')
        body.append(f'<circle cx="{x(r["max"] / lam):.1f}" cy="{y + 10}" r="2.5" fill="#555"/>')
    axis_y = 30 + row_h * len(rows)
    body.append(f'<line x1="{x(1):.1f}" x2="{x(1):.1f}" y1="24" y2="{axis_y}" stroke="#d62728" stroke-width="2"/>')
    body.append(_text(x(1), axis_y + 14, "threshold", "middle", ' fill="#d62728"'))
    body.append(_text(left, axis_y + 14, "0", "middle"))
    body.append(_text(left + width, axis_y + 14, f"{top:.2f} x threshold", "end"))
    body.append(_text(left + width, 16, "bars: p99, p99.9 of positive activations; dot: max", "end"))
    return _svg(left + width + 20, height + 6, body, title)


def placement_chart(rows: Sequence[dict], title: str) -> str:
    """Cores in use, one bar each: its height the share of the core's tightest limit in use (full height where
    the target does not say), its colour the layer; chips are separated and labelled."""
    layers = list(dict.fromkeys(str(r["layer"]) for r in rows))
    colour = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(layers)}
    ordered = sorted(rows, key=lambda r: (r.get("chip") if r.get("chip") is not None else -1, r["core"]))
    chips = list(dict.fromkeys(r.get("chip") for r in ordered))
    plot_w, plot_h, left, top = 640, 140, 40, 30
    step = plot_w / max(1, len(ordered) + 2 * (len(chips) - 1))
    body = [_text(10, 16, title, extra=' font-weight="bold"')]
    slot, previous = 0.0, ordered[0].get("chip") if ordered else None
    for r in ordered:
        if r.get("chip") != previous:
            slot, previous = slot + 2, r.get("chip")
        fill = r.get("fill")
        share = min(1.0, float(fill)) if fill is not None and _finite(fill) else 1.0
        h = max(1.0, plot_h * share)
        body.append(
            f'<rect x="{left + slot * step:.2f}" y="{top + plot_h - h:.2f}" width="{max(step * 0.85, 0.5):.2f}" '
            f'height="{h:.2f}" fill="{colour[str(r["layer"])]}"><title>{escape(_core_label(r))}</title></rect>'
        )
        slot += 1
    body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>')
    body.append(_text(left - 4, top + 8, "100%", "end"))
    body.append(_text(left - 4, top + plot_h, "0", "end"))
    chip_text = ", ".join(f"chip {c}" for c in chips if c is not None) or "chips not assigned by the compiler"
    body.append(_text(left, top + plot_h + 16, f"{len(ordered)} cores ({chip_text}); height: share in use", "start"))
    legend_y = top + plot_h + 34
    for k, name in enumerate(layers[:24]):
        y = legend_y + 16 * k
        body.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{colour[name]}"/>')
        body.append(_text(left + 16, y, name))
    return _svg(left + plot_w + 20, legend_y + 16 * min(len(layers), 24) + 4, body, title)


def _core_label(r: dict) -> str:
    chip = "" if r.get("chip") is None else f"chip {r['chip']}, "
    fill = f", {100 * r['fill']:.0f}% full" if _finite(r.get("fill")) else ""
    return f"{chip}core {r['core']}: {r['layer']}, {r['neurons']:,} neurons{fill}"


def line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    title: str,
    *,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    log_y: bool = False,
    lines: Sequence[tuple[str, float]] = (),
) -> str:
    """Lines over a log2 x axis (time steps), with horizontal reference lines (label, y)."""
    xs = sorted({x for _, sx, sy in series for x, y in zip(sx, sy) if _finite(x, y) and x > 0})
    ys = [y for _, sx, sy in series for y in sy if _finite(y)] + [y for _, y in lines if _finite(y)]
    if log_y:
        ys = [y for y in ys if y > 0]
    if not xs or not ys:
        return _svg(400, 40, [_text(10, 24, f"{title}: nothing to draw")], title)
    low, high = y_range if y_range is not None else (min(ys), max(ys))
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    low, high = (f(low), f(high)) if high > low else (f(low) - 1, f(low) + 1)
    left, top, plot_w, plot_h = 60, 30, 480, 220
    lx = [math.log2(x) for x in xs]
    sx = lambda x: left + plot_w * ((math.log2(x) - lx[0]) / ((lx[-1] - lx[0]) or 1))  # noqa: E731
    sy = lambda y: top + plot_h * (1 - (f(y) - low) / (high - low))  # noqa: E731
    body = [_text(10, 16, title, extra=' font-weight="bold"')]
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for x in xs:
        body.append(_text(sx(x), top + plot_h + 14, f"{x:g}", "middle"))
    for frac in (0, 0.5, 1):
        value = low + frac * (high - low)
        shown = 10**value if log_y else value
        body.append(_text(left - 4, sy(shown) + 4, f"{shown:.3g}", "end"))
    for k, (label, y) in enumerate(ln for ln in lines if _finite(ln[1]) and (not log_y or ln[1] > 0)):
        body.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#777" '
            'stroke-dasharray="5,4"/>'
        )
        body.append(_text(left + plot_w - 4, sy(y) - 4 - 12 * k, label, "end", ' fill="#555"'))
    for k, (label, sxs, sys_) in enumerate(series):
        points = [(sx(x), sy(y)) for x, y in zip(sxs, sys_) if _finite(x, y) and x > 0 and (not log_y or y > 0)]
        colour = PALETTE[k % len(PALETTE)]
        body.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
            + " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            + '"/>'
        )
        body += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points]
        body.append(f'<rect x="{left + 8}" y="{top + 8 + 16 * k}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(left + 24, top + 17 + 16 * k, label))
    body.append(_text(left + plot_w / 2, top + plot_h + 30, x_label, "middle"))
    body.append(_text(14, top + plot_h / 2, y_label, "middle", f' transform="rotate(-90 14 {top + plot_h / 2})"'))
    return _svg(left + plot_w + 20, top + plot_h + 40, body, title)


def bar_chart(rows: Sequence[tuple[str, float]], title: str, *, unit: str, top: float | None = None) -> str:
    """Horizontal bars, one per (label, value), on an axis from 0 (to ``top`` or a round number above the largest
    value); a value that is not finite is drawn as "-"."""
    finite = [v for _, v in rows if _finite(v)]
    high = top if top is not None else _nice_top(max([*finite, 1e-12]))
    left, width, row_h = 200, 380, 20
    body = [_text(10, 16, title, extra=' font-weight="bold"')]
    for k, (label, value) in enumerate(rows):
        y = 26 + k * row_h
        body.append(_text(left - 6, y + 13, _short(label), "end"))
        if not _finite(value):
            body.append(_text(left + 4, y + 13, "-"))
            continue
        w = width * max(0.0, min(value, high)) / high
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="13" fill="{PALETTE[0]}"/>')
        body.append(_text(left + w + 4, y + 13, f"{value:.3g}"))
    axis_y = 28 + row_h * len(rows)
    body.append(_text(left, axis_y + 12, "0", "middle"))
    body.append(_text(left + width, axis_y + 12, f"{high:g} {unit}", "end"))
    return _svg(left + width + 60, axis_y + 20, body, title)


def raster_chart(layers: Sequence[tuple[str, int, Sequence[tuple[int, int]]]], steps: int, title: str) -> str:
    """Spikes of one sample: per layer (name, neurons shown, (step, neuron) pairs), one band each, time along x."""
    left, plot_w, band_h, gap, top = 200, 480, 70, 10, 28
    dx = plot_w / max(steps, 1)
    body = [_text(10, 16, title, extra=' font-weight="bold"')]
    for k, (name, shown, spikes) in enumerate(layers):
        y0 = top + k * (band_h + gap)
        dy = band_h / max(shown, 1)
        body.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{band_h}" fill="#f7f7f7" stroke="#ccc"/>')
        body.append(_text(left - 6, y0 + band_h / 2, _short(name), "end"))
        body.append(_text(left - 6, y0 + band_h / 2 + 13, f"{shown} neurons", "end", ' fill="#777"'))
        w, h = max(dx * 0.8, 0.6), max(dy, 0.6)
        path = "".join(f"M{left + t * dx:.1f} {y0 + n * dy:.1f}h{w:.1f}v{h:.1f}h-{w:.1f}z" for t, n in spikes)
        if path:
            body.append(f'<path d="{path}" fill="#222"/>')
    axis_y = top + len(layers) * (band_h + gap)
    body.append(_text(left, axis_y + 6, "step 0", "start"))
    body.append(_text(left + plot_w, axis_y + 6, f"step {steps}", "end"))
    return _svg(left + plot_w + 20, axis_y + 16, body, title)
