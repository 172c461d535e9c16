"""The evaluation's result: the JSON document and the table ``neurodeploy evaluate`` prints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from neurodeploy.data.datasets import Dataset
from neurodeploy.encoding import Encoding
from neurodeploy.evaluation.statistics import Layer, Sums
from neurodeploy.readout import readout_skip


@dataclass
class Evaluation:
    """The result of :func:`evaluate`; ``to_dict`` is the JSON document, ``format_table`` the printed table.
    ``seconds`` is the wall time of compiling and simulating (not part of the document, which is reproducible)."""

    report: dict[str, Any]
    seconds: float = 0.0
    artifact: dict[str, Any] | None = None
    """The summary of the artifact the evaluation compiled (:func:`neurodeploy.inspect.summary`), when asked for."""
    raster: dict[str, Any] | None = None
    """One sample's spike raster (:func:`neurodeploy.evaluation.raster.spike_raster`), when asked for."""

    def to_dict(self) -> dict[str, Any]:
        return self.report

    def format_table(self) -> str:
        r = self.report
        if r["ann_accuracy"] is None:
            lines = [
                f"{r['samples']} samples; the model arrived spiking: no ANN to compare with; MACs of its layers per "
                f"step: {r['ann_macs']:,}"
            ]
        else:
            lines = [
                f"ANN accuracy (onnxruntime): {100 * r['ann_accuracy']:.2f}% on {r['samples']} samples; "
                f"ANN MACs per sample: {r['ann_macs']:,}"
            ]
        if r.get("quantized_ann_accuracy") is not None:
            lines.append(
                f"quantized ANN accuracy ({r['mode']} mode computes it): {100 * r['quantized_ann_accuracy']:.2f}%"
            )
        if r.get("fill_steps"):
            lines.append(
                f"read after a fill of {r['fill_steps']} steps (windowed neurons, one window per layer); spikes and "
                "SynOps count the fill too"
            )
        if r.get("readout_delay"):
            lines.append(
                f"the readout leaves out the first min({r['readout_delay']}, T // 2) steps of each run (the "
                "artifact's readout delay; compile with --target-option readout_delay=0 to read every step); "
                "spikes and SynOps count every step"
            )
        lines += _columns(_per_t_rows(r), str.rjust, "")
        lines.append(f"per layer at T={r['steps'][-1]}:")
        lines += _columns(_layer_rows(r), str.ljust, "  ")
        return "\n".join(lines) + "\n"


def _per_t_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("T", "accuracy", "spikes/neuron", "SynOps", "SynOps/MAC")]
    for t in r["steps"]:
        key = str(t)
        synops, ratio = r["synops"].get(key), r["synops_per_mac"].get(key)
        rows.append(
            (
                key,
                f"{100 * r['snn_accuracy'][key]:.2f}%",
                f"{r['spikes_per_neuron'][key]:.3f}",
                "-" if synops is None else f"{synops:,.0f}",
                "-" if ratio is None else f"{ratio:.3f}",
            )
        )
    return rows


def _layer_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("layer", "neurons", "rate/step", "r(ANN, SNN)")]
    for layer in r["layers"]:
        corr = layer["correlation"]
        rows.append(
            (
                layer["name"],
                str(layer["neurons"]),
                f"{layer['firing_rate']:.4f}",
                "-" if corr is None else f"{corr:.3f}",
            )
        )
    return rows


def _columns(rows: list[tuple[str, ...]], justify: Callable[[str, int], str], indent: str) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(justify(c, w) for c, w in zip(row, widths))).rstrip() for row in rows]


@dataclass(frozen=True)
class Run:
    """What one evaluation ran: the model, target and mode, the steps, the data and its encoding, the compiled
    artifact's manifest, the ANN's accuracy (onnxruntime), its MACs, and the spiking layers."""

    model: str
    target: str
    mode: str | None
    steps: list[int]
    dataset: Dataset
    source: str
    limit: int | None
    encoding: Encoding
    manifest: dict[str, Any]
    ann_accuracy: float | None
    """None for a model that arrived spiking (no ANN)."""
    layers: list[Layer]
    macs: int
    emulator: str = "numpy"
    """The emulator engine (``--emulator``)."""
    device: str | None = None
    """The torch device the engine ran on; None for numpy."""


def build_report(run: Run, totals: Sums, versions: dict[str, str]) -> dict[str, Any]:
    """The evaluation's JSON document (see :mod:`neurodeploy.evaluate` for the metrics)."""
    n, steps, measured = totals.samples, run.steps, totals.synops_measured
    neurons = sum(layer.neurons for layer in run.layers)
    warnings = list(run.manifest.get("warnings", []))
    if not measured:
        warnings.append(f"target {run.target!r} does not report SynOps; synops are null")

    def per_t(values: Mapping[int, float], divisor: float, measured: bool = True) -> dict[str, float | None]:
        return {str(t): (values[t] / divisor if measured and divisor else None) for t in steps}

    report = {
        "model": run.model,
        "target": run.target,
        "mode": run.mode,
        "pipeline": run.manifest["pipeline"],
        "data": run.dataset.describe() | {"source": run.source, "limit": run.limit},
        "samples": n,
        "limit": run.limit,
        "encoding": run.encoding.describe(),
        "seed": int(run.encoding.seed),
        "emulator": {"engine": run.emulator, "device": run.device},
        "calibration": run.manifest["options"]["calibration"],
        "steps": steps,
        "fill_steps": totals.fill,
        "readout_delay": totals.readout_delay,
        "readout_skip": {str(t): readout_skip(totals.readout_delay, t) for t in steps},
        "ann_accuracy": run.ann_accuracy,
        "ann_ir_accuracy": None if totals.ir_correct is None else totals.ir_correct / n,
        "quantized_ann_accuracy": None if totals.quantized_correct is None else totals.quantized_correct / n,
        "snn_accuracy": per_t(totals.correct, n),
        "spikes_per_neuron": per_t(totals.spikes, n * max(neurons, 1)),
        "synops": per_t(totals.synops, n, measured),
        "synops_input": per_t(totals.synops_input, n, measured),
        "ann_macs": run.macs,
        "synops_per_mac": per_t(totals.synops, n * run.macs, measured),
        "neurons": neurons,
        "layers": [_layer_entry(layer, totals, steps[-1] + totals.fill) for layer in run.layers],
        "warnings": warnings,
        "versions": versions,
    }
    report["firing_rates"] = {layer["name"]: layer["firing_rate"] for layer in report["layers"]}
    report["correlations"] = {layer["name"]: layer["correlation"] for layer in report["layers"]}
    return report


def _layer_entry(layer: Layer, totals: Sums, t_max: int) -> dict[str, Any]:
    n, spikes = totals.samples, totals.layer_spikes[layer.name]
    return {
        "name": layer.name,
        "neurons": layer.neurons,
        "firing_rate": spikes / (n * layer.neurons * t_max),
        "spikes_per_neuron": spikes / (n * layer.neurons),
        "synops": totals.layer_synops[layer.name] / n if totals.synops_measured else None,
        "correlation": totals.pearson[layer.name].r if layer.name in totals.pearson else None,
        "ann_value": layer.ann_value,
    }
