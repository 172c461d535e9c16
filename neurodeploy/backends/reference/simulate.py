"""Time-stepped float simulation of a spiking graph, batched in numpy.

Every step, ops run in graph order: stateful ops (IF neurons) advance their state with ``step``; all other
ops apply their float ``forward`` to this step's values. There is no synaptic delay: a spike reaches every
later layer in the step it is emitted. Values that cannot change over time (the direct-encoded input and
anything computed from it alone, e.g. the first convolution) are computed once. The readout is the mean of
each output over the steps run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurodeploy.ir.graph import Graph


@dataclass
class Simulation:
    """Readouts after ``steps`` (and at each checkpoint), and total spikes per sample of every stateful op."""

    outputs: dict[str, np.ndarray]
    spikes: dict[str, np.ndarray]
    checkpoints: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def simulate(graph: Graph, inputs: dict[str, np.ndarray], steps: int, checkpoints: tuple[int, ...] = ()) -> Simulation:
    """Run ``steps`` time steps with the inputs held constant (direct encoding)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    types = graph.types()
    batch = len(next(iter(inputs.values())))
    static: dict[str, np.ndarray] = dict(inputs)
    for op in graph.ops:
        if not op.is_stateful and all(v in static for v in op.inputs):
            static[op.output] = op.forward([static[v] for v in op.inputs])
    dynamic_ops = [op for op in graph.ops if op.output not in static]
    states = {op.name: op.init_state(batch, types[op.output].shape) for op in dynamic_ops if op.is_stateful}
    spikes = {op.name: np.zeros(batch, np.float64) for op in dynamic_ops if op.is_stateful}
    sums = {v: np.zeros((batch, *types[v].shape), np.float64) for v in graph.outputs}
    wanted = sorted({c for c in checkpoints if 1 <= c <= steps})
    recorded: dict[int, dict[str, np.ndarray]] = {}
    for t in range(1, steps + 1):
        values = dict(static)
        for op in dynamic_ops:
            xs = [values[v] for v in op.inputs]
            if op.is_stateful:
                out = op.step(states[op.name], xs)
                spikes[op.name] += out.reshape(batch, -1).sum(axis=1)
            else:
                out = op.forward(xs)
            values[op.output] = out
        for v in graph.outputs:
            sums[v] += values[v]
        if t in wanted:
            recorded[t] = {v: (sums[v] / t).astype(np.float32) for v in graph.outputs}
    outputs = {v: (sums[v] / steps).astype(np.float32) for v in graph.outputs}
    return Simulation(outputs, spikes, recorded)
