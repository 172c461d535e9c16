"""Run a graph's float semantics (``Op.forward``) on a batch: the ANN reference and the calibration engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from neurodeploy.data.policy import check_values
from neurodeploy.errors import DataError
from neurodeploy.ir.graph import Graph


def check_inputs(graph: Graph, inputs: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Match user arrays to the graph inputs: float32, with a leading batch dimension.

    A single array is accepted for a one-input graph; a sample without a batch dimension gets one. The values
    must pass the input policy (:func:`neurodeploy.data.policy.check_values`): real, finite, bounded.
    """
    if not isinstance(inputs, dict):
        if len(graph.inputs) != 1:
            raise DataError(f"graph has inputs {list(graph.inputs)}; pass a dict of arrays")
        inputs = {next(iter(graph.inputs)): inputs}
    out = {}
    for name, t in graph.inputs.items():
        if name not in inputs:
            raise DataError(f"no array given for graph input {name!r}")
        x = np.asarray(inputs[name])
        if x.shape == t.shape:
            x = x[None]
        if x.shape[1:] != t.shape:
            raise DataError(
                f"input {name!r} has shape {x.shape}; the model takes (batch, {', '.join(map(str, t.shape))})"
            )
        out[name] = check_values(x, where=f"input {name!r}")  # the input policy: real, finite, bounded
    return out


def run(
    graph: Graph,
    inputs: np.ndarray | dict[str, np.ndarray],
    *,
    keep: Iterable[str] = (),
    observe: Callable[[str, np.ndarray], None] | None = None,
    checked: bool = False,
) -> dict[str, np.ndarray]:
    """Evaluate the graph on one batch and return the graph outputs (plus the values named in ``keep``).

    ``observe(value, array)`` is called for every value as it is computed (calibration statistics use it).
    Values are freed as soon as their last reader has run. ``checked``: ``inputs`` is what :func:`check_inputs`
    returned (a dict of checked, batched float32 arrays), not checked again.
    """
    values = dict(inputs) if checked and isinstance(inputs, dict) else check_inputs(graph, inputs)
    wanted = set(graph.outputs) | set(keep)
    last_use: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for v in op.inputs:
            last_use[v] = i
    if observe is not None:
        for name, x in values.items():
            observe(name, x)
    for i, op in enumerate(graph.ops):
        y = op.forward([values[v] for v in op.inputs])
        values[op.output] = y
        if observe is not None:
            observe(op.output, y)
        for v in set(op.inputs):
            if last_use.get(v) == i and v not in wanted:
                del values[v]
    return {v: values[v] for v in list(graph.outputs) + [k for k in keep if k not in graph.outputs]}


def run_batched(
    graph: Graph, x: np.ndarray, batch_size: int = 256, observe: Callable[[str, np.ndarray], None] | None = None
) -> np.ndarray:
    """The single output of a one-input graph over many samples, computed ``batch_size`` at a time."""
    if len(graph.outputs) != 1:
        raise DataError(f"graph has {len(graph.outputs)} outputs; run_batched needs one")
    chunks = [
        run(graph, x[i : i + batch_size], observe=observe)[graph.outputs[0]] for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(chunks, axis=0)
