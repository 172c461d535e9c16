"""fold-bias: merge a constant Add (``Bias``) into the Conv2d/Dense before it (MatMul + Add -> Dense)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Bias, Conv2d, Dense, Scale
from neurodeploy.passes.base import Pass, PassContext


def per_channel(op: Bias | Scale, producer: Conv2d | Dense, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """The constant of ``op`` as one value per output channel of ``producer``, or None if it varies along other
    axes."""
    full = np.broadcast_to(op.value, out_shape)
    if isinstance(producer, Conv2d):
        per_channel = full[:, :1, :1]
        return per_channel.reshape(-1) if np.array_equal(np.broadcast_to(per_channel, out_shape), full) else None
    lead = full.reshape(-1, out_shape[-1])
    return lead[0] if np.array_equal(np.broadcast_to(lead[:1], lead.shape), lead) else None


def fold_into_producer(
    graph: Graph, kind: type[Bias] | type[Scale], fold: Callable[[Conv2d | Dense, np.ndarray], None]
) -> None:
    """Every ``kind`` op whose input is a Conv2d/Dense used by it alone, with one constant per output channel:
    ``fold(producer, value)`` takes the constant into the producer, and the op is bypassed."""
    types = graph.types()
    with graph.edit() as edit:
        for op in graph:
            if not isinstance(op, (Bias, Scale)) or not isinstance(op, kind):
                continue
            producer = edit.producer(op.inputs[0])
            if not isinstance(producer, (Conv2d, Dense)):
                continue
            if edit.uses(producer.output) != 1:
                continue
            value = per_channel(op, producer, types[op.output].shape)
            if value is None:
                continue
            fold(producer, value)
            edit.bypass(op)


def add_bias(producer: Conv2d | Dense, value: np.ndarray) -> None:
    base = producer.bias if producer.bias is not None else np.zeros(producer.out_channels, np.float32)
    producer.bias = (base + value).astype(np.float32)


@dataclass(frozen=True)
class FoldBias(Pass):
    name = "fold-bias"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        fold_into_producer(graph, Bias, add_bias)
