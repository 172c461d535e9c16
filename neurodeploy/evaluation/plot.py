"""Accuracy against time steps, drawn with matplotlib."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

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


def plot_sweep(rows: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """A sweep's SNN accuracy against T (log2 x axis), one line per point (its target and options in the legend),
    written whole like :func:`plot_accuracy`; needs matplotlib."""
    plt = require_matplotlib()
    lines: dict[int, list[tuple[int, float, str]]] = {}
    for row in rows:
        if row.get("error") or row.get("snn_accuracy") is None:
            continue
        label = ", ".join(str(row[k]) for k in ("target", "conversion", "target_options", "import_options") if row[k])
        lines.setdefault(int(row["point"]), []).append((int(row["T"]), 100 * float(row["snn_accuracy"]), label))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for point, values in sorted(lines.items()):
            values.sort()
            ax.plot([t for t, _, _ in values], [a for _, a, _ in values], marker="o", label=f"{point}: {values[0][2]}")
        ax.set_xscale("log", base=2)
        steps = sorted({t for values in lines.values() for t, _, _ in values})
        ax.set_xticks(steps)
        ax.set_xticklabels([str(t) for t in steps])
        ax.set_xlabel("time steps T")
        ax.set_ylabel("SNN accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if lines:
            ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, dpi=120, format="png")
    finally:
        plt.close(fig)
    write_file_atomic(path, image.getvalue())
