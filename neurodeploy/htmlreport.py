"""``report.html``: an artifact's summary (and, from ``neurodeploy evaluate --report``, its evaluations) as one
self-contained page: tables, and charts as SVG images embedded in the page (:mod:`neurodeploy.charts`). The page
loads no script, style sheet, font or image from anywhere else, so it opens offline and from any folder.

What it shows is what :func:`neurodeploy.inspect.summary` gathers (nothing recomputed): the facts, one table per
layer joining its resources and its quantization, the placement per core and chip, the calibration data's
activations against the thresholds, the notes and the warnings (each says what to do). An evaluation adds
accuracy against T (the ANN and every target evaluated into the same folder), SynOps against the ANN's MACs,
firing rates and the ANN-SNN correlation per layer, and one sample's spike raster. :func:`evaluation_markdown`
writes the same evaluation numbers as Markdown.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from neurodeploy import charts
from neurodeploy.inspect import facts, layer_table

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: .9em; }
dt { font-weight: bold; } dd { margin: 0; }
li.warning { color: #8a4b00; } figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _image(svg: str, caption: str) -> str:
    data = base64.b64encode(svg.encode()).decode()
    return (
        f'<figure><img src="data:image/svg+xml;base64,{data}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    """An HTML table from a header row and rows of text (numbers right-aligned)."""
    if len(rows) < 2:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td{_numeric(c)}>{escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(cell: str) -> str:
    return ' class="n"' if cell.replace(",", "").replace(".", "", 1).lstrip("-").isdigit() else ""


def _items(items: list[str], css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return "<ul>" + "".join(f"<li{klass}>{escape(item)}</li>" for item in items) + "</ul>"


def artifact_section(info: dict[str, Any], level: int = 2) -> str:
    """The artifact's summary: facts, the layer table, placement, calibration ranges, notes and warnings."""
    h = f"h{level}"
    parts = ["<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts(info)) + "</dl>"]
    table = layer_table(info)
    if len(table) > 1:
        parts += [f"<{h}>Layers</{h}>", _table(table)]
    if info.get("quantization") is None:
        parts.append("<p>The target's backend is not installed here: its quantization rows are in report.json.</p>")
    placement = info.get("placement") or []
    if placement:
        title = f"Placement: {len(placement)} cores of {info['target'].get('name')}"
        parts += [f"<{h}>Placement</{h}>", _image(charts.placement_chart(placement, title), title)]
    ranges = info.get("calibration_ranges") or []
    if ranges:
        title = "Calibration activations against thresholds"
        rows = [(r["layer"], r["range"], r["threshold"]) for r in ranges]
        caption = title + (" (per-channel thresholds: their median)" if any(r["per_channel"] for r in ranges) else "")
        parts += [f"<{h}>Calibration</{h}>", _image(charts.range_chart(rows, title), caption)]
    for title, items, css in (
        ("Notes", info["resources"]["notes"], ""),
        ("Warnings", info["warnings"], "warning"),
    ):
        if items:
            parts += [f"<{h}>{title} ({len(items)})</{h}>", _items(items, css)]
    if info.get("files") is not None:
        files = [("file", "bytes"), *((name, f"{size:,}") for name, size in info["files"].items())]
        parts += [f"<{h}>Files</{h}>", _table(files)]
    return "\n".join(parts)


def _label(evaluation: dict[str, Any]) -> str:
    r = evaluation["evaluation"]
    mode = f" {r['mode']}" if r.get("mode") else ""
    return f"{r['target']}{mode}"


def accuracy_chart(evaluations: Sequence[dict[str, Any]]) -> str:
    """Accuracy against T: one line per evaluated target (and mode), the ANN's as a dashed line."""
    series = []
    for e in evaluations:
        r = e["evaluation"]
        series.append((f"SNN on {_label(e)}", r["steps"], [100 * r["snn_accuracy"][str(t)] for t in r["steps"]]))
    anns = {e["evaluation"]["ann_accuracy"] for e in evaluations if e["evaluation"]["ann_accuracy"] is not None}
    lines = [(f"ANN {100 * a:.2f}%", 100 * a) for a in sorted(anns)]
    first = evaluations[0]["evaluation"]
    title = f"Accuracy against T: {first['model']} on {first['data']['name']} ({first['samples']} samples)"
    return charts.line_chart(
        series, title, x_label="time steps T", y_label="accuracy (%)", y_range=(0, 100), lines=lines
    )


def _layer_values(r: dict[str, Any], key: str) -> list[tuple[str, float]]:
    values = []
    for layer in r.get("layers", []):
        value = layer.get(key)
        values.append((str(layer["name"]), float(value) if isinstance(value, (int, float)) else math.nan))
    return values


def evaluation_section(evaluation: dict[str, Any]) -> str:
    """One evaluation: its table of numbers per T, SynOps against MACs, firing rates, correlation, raster."""
    r = evaluation["evaluation"]
    label = _label(evaluation)
    rows = [("T", "accuracy (%)", "spikes/neuron", "SynOps", "SynOps/MAC")]
    for t in r["steps"]:
        k = str(t)
        synops, ratio = r["synops"].get(k), r["synops_per_mac"].get(k)
        rows.append(
            (
                k,
                f"{100 * r['snn_accuracy'][k]:.2f}",
                f"{r['spikes_per_neuron'][k]:.3g}",
                "-" if synops is None else f"{synops:,.0f}",
                "-" if ratio is None else f"{ratio:.3g}",
            )
        )
    parts = [f"<h2>Evaluation on {escape(label)}</h2>", _table(rows)]
    if r.get("ann_macs") and all(r["synops"].get(str(t)) is not None for t in r["steps"]):
        synops = [r["synops"][str(t)] for t in r["steps"]]
        title = f"SynOps per sample against the ANN's MACs ({label})"
        chart = charts.line_chart(
            [("SynOps", r["steps"], synops)],
            title,
            x_label="time steps T",
            y_label="operations per sample",
            log_y=True,
            lines=[(f"ANN MACs {r['ann_macs']:,}", r["ann_macs"])],
        )
        parts.append(_image(chart, title))
    t_max = r["steps"][-1]
    title = f"Firing rate per layer at T = {t_max} (spikes per neuron per step, {label})"
    parts.append(_image(charts.bar_chart(_layer_values(r, "firing_rate"), title, unit="spikes/step"), title))
    correlation = _layer_values(r, "correlation")
    if any(math.isfinite(v) for _, v in correlation):
        title = f"ANN-SNN correlation per layer at T = {t_max} ({label}; 1: the SNN reproduces the ANN)"
        parts.append(_image(charts.bar_chart(correlation, title, unit="", top=1.0), title))
    raster = evaluation.get("raster")
    if raster and raster.get("layers"):
        title = f"Spike raster: {raster['source']} ({raster['steps']} steps)"
        rows_ = [(layer["name"], layer["shown"], layer["spikes"]) for layer in raster["layers"]]
        shown = ", ".join(f"{layer['shown']} of {layer['active']} active" for layer in raster["layers"])
        parts.append(_image(charts.raster_chart(rows_, raster["steps"], title), f"{title}; neurons drawn: {shown}"))
    return "\n".join(parts)


def page(info: dict[str, Any] | None, evaluations: Sequence[dict[str, Any]] = ()) -> str:
    """The whole page: the artifact's summary (``info``) or, for an evaluation folder, the accuracy chart over
    every evaluation, then each evaluation with its artifact's summary."""
    if info is not None:
        title = f"{info['source'].get('file', 'model')} for {info['target'].get('name')}"
        body = [f"<h1>{escape(title)}</h1>", artifact_section(info)]
    else:
        first = evaluations[0]["evaluation"]
        title = f"{first['model']} evaluated on {first['data']['name']}"
        chart = accuracy_chart(evaluations)
        body = [f"<h1>{escape(title)}</h1>", _image(chart, "Accuracy against time steps, every target evaluated here")]
    for e in evaluations:
        body.append(evaluation_section(e))
        if info is None and e.get("artifact"):
            body += [f"<h2>Artifact for {escape(_label(e))}</h2>", artifact_section(e["artifact"], level=3)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def evaluation_markdown(evaluations: Sequence[dict[str, Any]]) -> str:
    """The evaluations' numbers as Markdown: accuracy per T and target, then per layer."""
    first = evaluations[0]["evaluation"]
    lines = [f"# {first['model']} evaluated on {first['data']['name']}", ""]
    steps = sorted({t for e in evaluations for t in e["evaluation"]["steps"]})
    lines += ["## Accuracy (%) against T", "", "| | " + " | ".join(str(t) for t in steps) + " |"]
    lines.append("|---" * (len(steps) + 1) + "|")
    for e in evaluations:
        r = e["evaluation"]
        cells = [f"{100 * r['snn_accuracy'][str(t)]:.2f}" if str(t) in r["snn_accuracy"] else "-" for t in steps]
        ann = "" if r["ann_accuracy"] is None else f" (ANN {100 * r['ann_accuracy']:.2f})"
        lines.append(f"| {_label(e)}{ann} | " + " | ".join(cells) + " |")
    for e in evaluations:
        r = e["evaluation"]
        lines += ["", f"## Layers on {_label(e)} at T = {r['steps'][-1]}", "", "| layer | firing rate | correlation |"]
        lines.append("|---|---|---|")
        for layer in r.get("layers", []):
            corr = layer.get("correlation")
            lines.append(
                f"| {layer['name']} | {layer['firing_rate']:.4g} | {'-' if corr is None else format(corr, '.3f')} |"
            )
    return "\n".join(lines) + "\n"
