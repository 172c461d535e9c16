"""The reference backend: float32 ANN and IF-neuron SNN, no hardware limits."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import limits
from neurodeploy.backends.base import Backend, CompiledModel, EmulationResult, LayerUsage, ResourceReport, TargetSpec
from neurodeploy.backends.reference.simulate import simulate
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError, IRVerificationError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Conv2d, Dense
from neurodeploy.ir.serialize import save_graph
from neurodeploy.metrics import fan_out_maps
from neurodeploy.metrics import neuron_counts as neuron_counts_of

log = logging.getLogger(__name__)


def layer_usage(graph: Graph) -> list[LayerUsage]:
    """Neurons and synapses of every weighted layer (fan-in per neuron; fan-out per input neuron, interior)."""
    types = graph.types()
    layers = []
    for op in graph.ops:
        if isinstance(op, Conv2d):
            out_ch, per_group, kh, kw = op.weight.shape
            fan_in = per_group * kh * kw
            fan_out = (out_ch // op.groups) * -(-kh // op.stride[0]) * -(-kw // op.stride[1])
        elif isinstance(op, Dense):
            fan_in, fan_out = op.weight.shape[1], op.weight.shape[0]
        else:
            continue
        neurons = types[op.output].size
        layers.append(LayerUsage(op.name, op.op_type, neurons, neurons * fan_in, int(fan_in), int(fan_out)))
    return layers


class ReferenceBackend(Backend):
    """Emulates the ANN (mode ``ann``) and the converted SNN (mode ``snn``: IF neurons, reset by subtraction,
    direct, rate or events input encoding) in float32. The readout of the SNN is the mean of its output over
    the time steps. The ANN of an events input is run on the mean of its frames."""

    name = "reference"
    version = "0.1.0"
    fidelity = "float"
    modes = ("snn", "ann")
    spec = TargetSpec(name="reference", description="float32 numpy model of the ANN and the converted SNN; no limits")

    def resources(self, graph: Graph) -> ResourceReport:
        return ResourceReport(self.target, layer_usage(graph), notes=["reference target: no hardware limits"])

    def emit(self, model: CompiledModel, folder: Path) -> list[str]:
        files = save_graph(model.snn, folder, "snn") + save_graph(model.ann, folder, "ann")
        return [p.name for p in files]

    def emulate(
        self,
        artifact: Any,
        inputs: np.ndarray,
        *,
        steps: int,
        mode: str | None = None,
        checkpoints: tuple[int, ...] = (),
        encoding: Encoding | None = None,
        neuron_counts: bool = False,
        batch_size: int = 256,
    ) -> EmulationResult:
        mode = self.resolve_mode(mode)
        if steps < 1:
            raise DataError(f"steps must be >= 1, got {steps}")
        limits.check_steps(steps, "the emulation")  # before anything is allocated
        encoding = encoding if encoding is not None else Encoding()
        graph = artifact.read_graph(mode)  # listed, regular, checksummed, verified
        out_name = graph.outputs[0]
        x = encoding.check_inputs(graph, inputs)
        input_name = next(iter(graph.inputs))
        n = len(x[input_name])
        if n == 0:
            raise DataError("no inputs to emulate (the input array has 0 samples)")
        if mode == "ann":
            analog = encoding.analog(x[input_name])
            return EmulationResult(outputs=interpret.run_batched(graph, analog, batch_size), steps=0, mode=mode)
        try:
            fan_out = fan_out_maps(graph)
        except IRVerificationError as exc:  # a metric must not stop the emulation
            log.debug("SynOps not counted: %s", exc)
            fan_out = {}
        chunks, spikes, synops, counts = [], {}, {}, {}
        marks: dict[int, list] = {}
        spike_marks: dict[int, dict[str, list]] = {}
        synop_marks: dict[int, dict[str, list]] = {}
        for start in range(0, n, batch_size):
            chunk_encoding = replace(encoding, offset=encoding.offset + start)
            chunk = {k: v[start : start + batch_size] for k, v in x.items()}
            sim = simulate(graph, chunk, steps, checkpoints, chunk_encoding, fan_out)
            chunks.append(sim.outputs[out_name])
            _extend(spikes, sim.spikes)
            _extend(synops, sim.synops)
            if neuron_counts:
                _extend(counts, sim.counts)
            for t, outs in sim.checkpoints.items():
                marks.setdefault(t, []).append(outs[out_name])
                _extend(spike_marks.setdefault(t, {}), sim.checkpoint_spikes[t])
                _extend(synop_marks.setdefault(t, {}), sim.checkpoint_synops[t])
        return EmulationResult(
            outputs=np.concatenate(chunks),
            steps=steps,
            mode=mode,
            spikes=_join(spikes),
            neurons=neuron_counts_of(graph),
            checkpoints={t: np.concatenate(v) for t, v in marks.items()},
            synops=_join(synops),
            checkpoint_spikes={t: _join(v) for t, v in spike_marks.items()},
            checkpoint_synops={t: _join(v) for t, v in synop_marks.items()},
            counts=_join(counts),
            encoding=encoding.describe(),
        )


def _extend(lists: dict[str, list], arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        lists.setdefault(name, []).append(array)


def _join(lists: dict[str, list]) -> dict[str, np.ndarray]:
    return {name: np.concatenate(parts) for name, parts in lists.items()}
