"""The reference backend: float32 ANN and IF-neuron SNN, no hardware limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy import readout
from neurodeploy.backends.base import (
    CONVERSION_FEATURES,
    Backend,
    Emitted,
    EmulationResult,
    LayerUsage,
    Plan,
    ResourceReport,
    TargetSpec,
)
from neurodeploy.emulation import Run
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError, IRVerificationError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.metrics import fan_out_maps
from neurodeploy.metrics import neuron_counts as neuron_counts_of
from neurodeploy.simulate import Simulation, simulate

log = logging.getLogger(__name__)


def layer_usage(graph: Graph) -> list[LayerUsage]:
    """Neurons and synapses of every weighted layer (fan-in per neuron; fan-out per input neuron, interior), as
    each op states them (:meth:`neurodeploy.ir.op.Op.fan_in`, :meth:`~neurodeploy.ir.op.Op.interior_fan_out`)."""
    types = graph.types()
    layers = []
    for op in graph.ops:
        fan_in, fan_out = op.fan_in(), op.interior_fan_out()
        if fan_in is None or fan_out is None:
            continue
        neurons = types[op.output].size
        layers.append(LayerUsage(op.name, op.op_type, neurons, neurons * fan_in, int(fan_in), int(fan_out)))
    return layers


class ReferenceBackend(Backend):
    """Emulates the ANN (mode ``ann``) and the converted SNN (mode ``snn``: IF neurons, reset by subtraction, or
    windowed QCFS neurons; direct, rate or events input encoding) in float32. The readout of the SNN is the mean
    of its output over the time steps (after the pipeline's fill, for windowed neurons; after the readout
    delay, :mod:`neurodeploy.readout`, for rate-coded ones). The ANN of an events
    input is run on the mean of its frames."""

    name = "reference"
    version = "0.1.0"
    fidelity = "float"
    modes = ("snn", "ann")
    engines = ("numpy", "torch")
    delayed_modes = ("snn",)
    target_options: ClassVar[dict[str, str]] = {"readout_delay": readout.OPTION_HELP}
    conversion_features = frozenset(CONVERSION_FEATURES)
    spec = TargetSpec(name="reference", description="float32 numpy model of the ANN and the converted SNN; no limits")

    def resources(self, plan: Plan) -> ResourceReport:
        return ResourceReport(self.target, layer_usage(plan.model.snn), notes=["reference target: no hardware limits"])

    def emit(self, plan: Plan, folder: Path) -> Emitted:
        return Emitted(files=[])  # the converted graph and the ANN, which the compiler writes, are all it runs

    def load(self, artifact: Any, mode: str) -> _Loaded:
        if mode == "ann" and not artifact.has_ann:
            raise DataError("this artifact holds no ANN (its model arrived already spiking): emulate mode snn")
        graph = artifact.read_graph(mode)  # listed, regular, checksummed, verified
        try:
            fan_out = fan_out_maps(graph) if mode == "snn" else {}
        except IRVerificationError as exc:  # a metric must not stop the emulation
            log.debug("SynOps not counted: %s", exc)
            fan_out = {}
        return _Loaded(graph, fan_out)

    def prepare(self, loaded: _Loaded, inputs: Any, *, steps: int, encoding: Encoding) -> dict[str, np.ndarray]:
        return encoding.check_inputs(loaded.graph, inputs)

    def emulate_batch(self, loaded: _Loaded, inputs: dict[str, np.ndarray], run: Run) -> EmulationResult:
        graph, encoding = loaded.graph, run.encoding
        out_name = graph.outputs[0]
        if run.mode == "ann":
            analog = encoding.analog(inputs[next(iter(graph.inputs))])
            return EmulationResult(outputs=interpret.run(graph, analog)[out_name], steps=0, mode=run.mode)
        sim = self._simulate(loaded, inputs, run)
        return EmulationResult(
            outputs=sim.outputs[out_name],
            steps=run.steps,
            mode=run.mode,
            spikes=sim.spikes,
            neurons=neuron_counts_of(graph),
            checkpoints={t: outs[out_name] for t, outs in sim.checkpoints.items()},
            synops=sim.synops,
            checkpoint_spikes=sim.checkpoint_spikes,
            checkpoint_synops=sim.checkpoint_synops,
            counts=sim.counts if run.neuron_counts else {},
            sent=sim.sent if run.neuron_counts else {},
            encoding=encoding.describe(),
            delay=sim.delay,
        )

    def _simulate(self, loaded: _Loaded, inputs: dict[str, np.ndarray], run: Run) -> Simulation:
        """The SNN's simulation on the run's engine: numpy, or torch on its device (one engine per device, kept
        with the loaded artifact so the weights move to the device once)."""
        args = (loaded.graph, inputs, run.steps, run.checkpoints, run.encoding, loaded.fan_out)
        if run.engine == "numpy":
            return simulate(*args, delayed_readout=run.readout_delay)
        from neurodeploy.simulate_torch import TorchArrays, simulate_torch

        arrays = loaded.engines.get(run.device)
        if arrays is None:
            arrays = loaded.engines[run.device] = TorchArrays(run.device)
        return simulate_torch(*args, delayed_readout=run.readout_delay, arrays=arrays)


@dataclass(frozen=True)
class _Loaded:
    """An artifact's graph for one mode, with its fan-out maps (SynOps) when the mode is ``snn``, and the torch
    engines that ran it, by device asked for."""

    graph: Graph
    fan_out: dict
    engines: dict[str | None, Any] = field(default_factory=dict)
