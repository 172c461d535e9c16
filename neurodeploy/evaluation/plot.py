"""Accuracy against time steps, drawn with matplotlib; a sweep's accuracy and spikes per neuron against T also as
SVG (:mod:`neurodeploy.charts`), without it."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from neurodeploy import charts
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.fileio import write_file_atomic


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the Agg backend, or an error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NeurodeployError(
            "--plot needs matplotlib, which is not installed; pip install neurodeploy[plot]"
        ) from None
    return plt


def plot_accuracy(report: dict[str, Any], path: str | Path) -> None:
    """Accuracy against T (log2 x axis), the ANN's accuracy as a horizontal line, drawn in memory in the format
    ``path``'s suffix names (PNG without one), then written whole (:func:`neurodeploy.fileio.write_file_atomic`:
    only a regular file is replaced); needs matplotlib."""
    plt = require_matplotlib()
    steps = report["steps"]
    accuracy = [100 * report["snn_accuracy"][str(t)] for t in steps]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.plot(steps, accuracy, marker="o", label=f"SNN ({report['encoding']['kind']} input)")
        if report["ann_accuracy"] is not None:  # (none for a model that arrived spiking)
            ax.axhline(100 * report["ann_accuracy"], color="gray", linestyle="--", label="ANN (onnxruntime)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps)
        ax.set_xticklabels([str(t) for t in steps])
        ax.set_xlabel("time steps T")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{report['model']} on {report['data']['name']} ({report['samples']} samples, {report['target']})")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        image = io.BytesIO()
        kind = Path(path).suffix.lstrip(".").lower() or "png"  # as savefig(path) would choose
        try:
            fig.savefig(image, dpi=120, format=kind)  # drawn in memory, then written whole
        except ValueError as exc:  # a format matplotlib does not know
            raise DataError(f"cannot write the plot {path}: {exc}") from None
    finally:
        plt.close(fig)
    write_file_atomic(path, image.getvalue())


SWEEP_COLUMNS = {
    "snn_accuracy": ("SNN accuracy (%)", 100.0),
    "spikes_per_neuron": ("spikes per neuron per sample", 1.0),
}
"""The columns of a sweep's rows that are drawn against T: their axis label and the factor from the row's value."""


def _sweep_lines(rows: list[dict[str, Any]], column: str) -> dict[int, tuple[str, list[tuple[int, float]]]]:
    """Per point (by number): its label (target and options) and its (T, value) pairs in T order; failed points
    and missing values left out."""
    scale = SWEEP_COLUMNS[column][1]
    lines: dict[int, tuple[str, list[tuple[int, float]]]] = {}
    for row in rows:
        if row.get("error") or row.get(column) is None:
            continue
        label = ", ".join(str(row[k]) for k in ("target", "conversion", "target_options", "import_options") if row[k])
        lines.setdefault(int(row["point"]), (f"{row['point']}: {label}", []))[1].append(
            (int(row["T"]), scale * float(row[column]))
        )
    return {point: (label, sorted(values)) for point, (label, values) in sorted(lines.items())}


def sweep_chart(rows: list[dict[str, Any]], column: str, title: str) -> str:
    """A sweep's ``column`` (snn_accuracy or spikes_per_neuron) against T (log2 x axis), one line per point, as an
    SVG document (:func:`neurodeploy.charts.line_chart`: no plotting library needed)."""
    axis = SWEEP_COLUMNS[column][0]
    lines = _sweep_lines(rows, column)
    series = [(label, [t for t, _ in values], [v for _, v in values]) for label, values in lines.values()]
    top = max([v for _, values in lines.values() for _, v in values if math.isfinite(v)], default=0.0)
    y_range = (0.0, 100.0) if column == "snn_accuracy" else (0.0, top if top > 0 else 1.0)
    return charts.line_chart(
        series, f"{axis} against T: {title}", x_label="time steps T", y_label=axis, y_range=y_range
    )


def plot_sweep(rows: list[dict[str, Any]], path: str | Path, title: str, column: str = "snn_accuracy") -> None:
    """A sweep's ``column`` (SNN accuracy by default, or spikes_per_neuron) against T (log2 x axis), one line per
    point (its target and options in the legend), written whole like :func:`plot_accuracy`; needs matplotlib."""
    plt = require_matplotlib()
    axis = SWEEP_COLUMNS[column][0]
    lines = _sweep_lines(rows, column)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for label, values in lines.values():
            ax.plot([t for t, _ in values], [v for _, v in values], marker="o", label=label)
        ax.set_xscale("log", base=2)
        steps = sorted({t for _, values in lines.values() for t, _ in values})
        ax.set_xticks(steps)
        ax.set_xticklabels([str(t) for t in steps])
        ax.set_xlabel("time steps T")
        ax.set_ylabel(axis)
        if column == "snn_accuracy":
            ax.set_ylim(0, 100)
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if lines:
            ax.legend(loc="lower right" if column == "snn_accuracy" else "upper left", fontsize="small")
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, dpi=120, format="png")
    finally:
        plt.close(fig)
    write_file_atomic(path, image.getvalue())
