"""Per-activation scales λ for threshold balancing.

``activation_statistics`` runs the ANN on calibration inputs and takes the maximum (Diehl et al. 2015,
"data-based normalization") or a percentile (Rueckauer et al. 2017, "robust normalization") of each
activation's output, per layer or per channel. ``weight_bounds`` needs no data: it propagates an interval
through the network (inputs assumed in [-1, 1]) and takes each activation's upper bound, the "model-based"
normalization of the same paper. It never under-estimates, so it never clips, but it is loose and the SNN
needs many more time steps.
"""

from __future__ import annotations

import numpy as np

from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph

ASSUMED_INPUT_RANGE = (-1.0, 1.0)


MAX_VALUES = 1 << 22
"""Percentiles are taken over at most this many values per activation (a fixed-seed sample beyond it)."""


def _channel_rows(array: np.ndarray, per_channel: bool) -> np.ndarray:
    """A batch of activations as rows: one row per channel (axis 1), or a single row."""
    if per_channel:
        return np.moveaxis(array, 1, 0).reshape(array.shape[1], -1)
    return array.reshape(1, -1)


def activation_statistics(
    graph: Graph,
    activations: list[str],
    calibration: np.ndarray,
    *,
    statistic: str = "max",
    percentile: float = 99.9,
    per_channel: bool = False,
    zeros: str = "exclude",
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """λ for each activation output over the calibration inputs: a scalar, or one value per channel.

    ``statistic`` is ``max`` or ``percentile`` (the p-th percentile, "robust normalization", Rueckauer et al.
    2017). With ``zeros="exclude"`` the percentile is taken over the positive values only, as SNN Toolbox does;
    ``include`` counts the zeros a ReLU outputs, which lowers λ. The maximum is the same either way.
    """
    if statistic not in ("max", "percentile"):
        raise ValueError(f"statistic must be max or percentile, got {statistic!r}")
    maxima: dict[str, np.ndarray] = {}
    samples: dict[str, list[np.ndarray]] = {v: [] for v in activations}
    rng = np.random.default_rng(0)
    keep_fraction = 1.0

    def observe(value: str, array: np.ndarray) -> None:
        if value not in samples:
            return
        rows = _channel_rows(array, per_channel)
        top = rows.max(axis=1)
        maxima[value] = top if value not in maxima else np.maximum(maxima[value], top)
        if statistic == "percentile":
            if keep_fraction < 1.0:  # a fixed-seed column sample keeps memory bounded on large sets
                rows = rows[:, rng.random(rows.shape[1]) < keep_fraction]
            samples[value].append(rows)

    if statistic == "percentile":
        types = graph.types()
        per_batch = max(types[v].size for v in activations) * min(batch_size, len(calibration))
        batches = -(-len(calibration) // batch_size)
        keep_fraction = min(1.0, MAX_VALUES / max(1, per_batch * batches))
    for i in range(0, len(calibration), batch_size):
        interpret.run(graph, calibration[i : i + batch_size], observe=observe)
    if statistic == "max":
        return {v: _squeeze(maxima[v], per_channel) for v in activations}
    result = {}
    for v in activations:
        rows = np.concatenate(samples[v], axis=1)
        values = []
        for row in rows:
            pool = row[row > 0] if zeros == "exclude" else row
            values.append(np.percentile(pool, percentile) if pool.size else 0.0)
        result[v] = _squeeze(np.asarray(values, np.float32), per_channel)
    return result


def _squeeze(values: np.ndarray, per_channel: bool) -> np.ndarray:
    return np.asarray(values, np.float32) if per_channel else np.asarray(values[0], np.float32)


def weight_bounds(graph: Graph, activations: list[str]) -> dict[str, float]:
    """An upper bound on each activation output for any input in ``ASSUMED_INPUT_RANGE``, propagated op by op
    (:meth:`neurodeploy.ir.op.Op.bounds`)."""
    bounds: dict[str, tuple[float, float]] = {v: ASSUMED_INPUT_RANGE for v in graph.inputs}
    for op in graph.ops:
        bounds[op.output] = op.bounds([bounds[v] for v in op.inputs])
    return {v: bounds[v][1] for v in activations}
