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
    levels: int = 4,
    ranges: dict[str, dict[str, float]] | None = None,
) -> dict[str, np.ndarray]:
    """λ for each activation output over the calibration inputs: a scalar, or one value per channel.

    ``statistic`` is ``max`` or ``percentile`` (the p-th percentile, "robust normalization", Rueckauer et al.
    2017). With ``zeros="exclude"`` the percentile is taken over the positive values only, as SNN Toolbox does;
    ``include`` counts the zeros a ReLU outputs, which lowers λ. The maximum is the same either way.

    ``mse`` fits λ to a number of time steps: the λ whose rounding to ``levels`` steps of [0, λ],
    λ·clip(floor(a·L/λ + 1/2), 0, L)/L, is closest to the activations a in mean square (:func:`mse_lambda`):
    what T = L steps of a rate-coded neuron can hold best. Fewer steps want a smaller λ (coarse steps near the
    many small activations, the rare large ones clipped).

    ``ranges``, when given, is filled with each activation's :func:`value_range` over the same values (what the
    report draws against the thresholds).
    """
    if statistic not in ("max", "percentile", "mse"):
        raise ValueError(f"statistic must be max, percentile or mse, got {statistic!r}")
    sampled = statistic in ("percentile", "mse") or ranges is not None
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
        if sampled:
            if keep_fraction < 1.0:  # a fixed-seed column sample keeps memory bounded on large sets
                rows = rows[:, rng.random(rows.shape[1]) < keep_fraction]
            samples[value].append(rows)

    if sampled:
        types = graph.types()
        per_batch = max(types[v].size for v in activations) * min(batch_size, len(calibration))
        batches = -(-len(calibration) // batch_size)
        keep_fraction = min(1.0, MAX_VALUES / max(1, per_batch * batches))
    for i in range(0, len(calibration), batch_size):
        interpret.run(graph, calibration[i : i + batch_size], observe=observe)
    if ranges is not None:
        for v in activations:
            ranges[v] = value_range(np.concatenate(samples[v], axis=1), float(maxima[v].max()))
    if statistic == "max":
        return {v: _squeeze(maxima[v], per_channel) for v in activations}
    result = {}
    for v in activations:
        rows = np.concatenate(samples[v], axis=1)
        values = []
        for row in rows:
            pool = row[row > 0] if zeros == "exclude" or statistic == "mse" else row
            if not pool.size:
                values.append(0.0)
            elif statistic == "mse":
                values.append(mse_lambda(pool, levels))
            else:
                values.append(np.percentile(pool, percentile))
        result[v] = _squeeze(np.asarray(values, np.float32), per_channel)
    return result


RANGE_PERCENTILES = (50.0, 99.0, 99.9, 99.99)
"""The percentiles of the positive activations :func:`value_range` reports."""


def value_range(rows: np.ndarray, largest: float) -> dict[str, float]:
    """What an activation's calibration values look like, for a person: the share that is positive, the
    ``RANGE_PERCENTILES`` of the positive values (``p99.9`` and so on; over the fixed-seed sample where the
    values were sampled) and the largest value seen (``max``, over every value)."""
    pool = rows.reshape(-1)
    positive = pool[pool > 0]
    found: dict[str, float] = {"positive_fraction": float(positive.size / max(pool.size, 1))}
    with np.errstate(invalid="ignore"):  # infinite activations (refused by the conversion, naming the layer)
        for q in RANGE_PERCENTILES:
            found[f"p{q:g}"] = float(np.percentile(positive, q)) if positive.size else 0.0
    found["max"] = largest
    return found


MSE_CANDIDATES = 64
"""How many λ :func:`mse_lambda` tries, evenly spaced up to the largest activation."""


def mse_lambda(values: np.ndarray, levels: int) -> float:
    """The λ in (0, max] whose rounding of the positive ``values`` to ``levels`` steps of [0, λ] has the least
    mean squared error (zeros are exact for every λ and do not move the choice), from ``MSE_CANDIDATES`` evenly
    spaced candidates."""
    a = np.asarray(values, np.float64)
    best, best_error = float(a.max()), np.inf
    for lam in a.max() * np.arange(1, MSE_CANDIDATES + 1) / MSE_CANDIDATES:
        q = lam * np.clip(np.floor(a / lam * levels + 0.5), 0, levels) / levels
        error = float(np.mean((a - q) ** 2))
        if error < best_error:
            best, best_error = float(lam), error
    return best


def _squeeze(values: np.ndarray, per_channel: bool) -> np.ndarray:
    return np.asarray(values, np.float32) if per_channel else np.asarray(values[0], np.float32)


def value_bounds(graph: Graph, values: list[str]) -> dict[str, tuple[float, float]]:
    """Bounds (low, high) on each of ``values`` for any input in ``ASSUMED_INPUT_RANGE``, propagated op by op
    (:meth:`neurodeploy.ir.op.Op.bounds`)."""
    bounds: dict[str, tuple[float, float]] = {v: ASSUMED_INPUT_RANGE for v in graph.inputs}
    for op in graph.ops:
        bounds[op.output] = op.bounds([bounds[v] for v in op.inputs])
    return {v: bounds[v] for v in values}


def weight_bounds(graph: Graph, activations: list[str]) -> dict[str, float]:
    """An upper bound on each activation output for any input in ``ASSUMED_INPUT_RANGE`` (:func:`value_bounds`)."""
    return {v: high for v, (_, high) in value_bounds(graph, activations).items()}
