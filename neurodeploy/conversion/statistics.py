"""Per-activation scales λ for threshold balancing.

``data_maxima`` runs the ANN on calibration inputs and takes the maximum of each activation's output
(Diehl et al. 2015, "data-based normalization"). ``weight_bounds`` needs no data: it propagates an interval
through the network (inputs assumed in [-1, 1]) and takes each activation's upper bound, the "model-based"
normalization of the same paper. It never under-estimates, so it never clips, but it is loose and the SNN
needs many more time steps.
"""

from __future__ import annotations

import numpy as np

from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import (
    Add,
    AvgPool2d,
    Bias,
    Clip,
    Concat,
    Conv2d,
    Dense,
    GlobalAvgPool,
    MaxPool2d,
    Relu,
    Reshape,
    Scale,
)

ASSUMED_INPUT_RANGE = (-1.0, 1.0)


def data_maxima(
    graph: Graph, activations: list[str], calibration: np.ndarray, batch_size: int = 256
) -> dict[str, float]:
    """The largest value each activation output takes over the calibration inputs."""
    maxima = {v: 0.0 for v in activations}

    def observe(value: str, array: np.ndarray) -> None:
        if value in maxima:
            maxima[value] = max(maxima[value], float(array.max()))

    for i in range(0, len(calibration), batch_size):
        interpret.run(graph, calibration[i : i + batch_size], observe=observe)
    return maxima


def _weighted_bounds(op: Conv2d | Dense, low: float, high: float) -> tuple[float, float]:
    w = op.weight.reshape(op.weight.shape[0], -1)
    pos, neg = np.maximum(w, 0).sum(axis=1), np.minimum(w, 0).sum(axis=1)
    bias = op.bias if op.bias is not None else 0.0
    # Each output is sum_i w_i x_i + b with x_i in [low, high]; zero padding stays inside that range.
    upper = pos * high + neg * low + bias
    lower = pos * low + neg * high + bias
    return float(lower.min()), float(upper.max())


def _bounds_of(op: Op, ins: list[tuple[float, float]]) -> tuple[float, float]:
    low, high = ins[0]
    if isinstance(op, (Conv2d, Dense)):
        return _weighted_bounds(op, low, high)
    if isinstance(op, Relu):
        return max(low, 0.0), max(high, 0.0)
    if isinstance(op, Clip):
        lo = low if op.low is None else min(max(low, op.low), op.high if op.high is not None else np.inf)
        hi = high if op.high is None else max(min(high, op.high), op.low if op.low is not None else -np.inf)
        return lo, hi
    if isinstance(op, (AvgPool2d, MaxPool2d, GlobalAvgPool, Reshape)):
        return low, high
    if isinstance(op, Add):
        return sum(i[0] for i in ins), sum(i[1] for i in ins)
    if isinstance(op, Concat):
        return min(i[0] for i in ins), max(i[1] for i in ins)
    if isinstance(op, Bias):
        return low + float(op.value.min()), high + float(op.value.max())
    if isinstance(op, Scale):
        candidates = [
            low * float(op.value.min()),
            low * float(op.value.max()),
            high * float(op.value.min()),
            high * float(op.value.max()),
        ]
        return min(candidates), max(candidates)
    raise ValueError(f"{op.op_type} '{op.name}': no bound propagation rule")


def weight_bounds(graph: Graph, activations: list[str]) -> dict[str, float]:
    """An upper bound on each activation output for any input in ``ASSUMED_INPUT_RANGE``."""
    bounds: dict[str, tuple[float, float]] = {v: ASSUMED_INPUT_RANGE for v in graph.inputs}
    for op in graph.ops:
        bounds[op.output] = _bounds_of(op, [bounds[v] for v in op.inputs])
    return {v: bounds[v][1] for v in activations}
