"""fold-bias: merge a constant Add (``Bias``) into the Conv2d/Dense before it (MatMul + Add -> Dense)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Bias, Conv2d, Dense
from neurodeploy.passes.base import Pass, PassContext


def _per_channel(bias: Bias, producer: Conv2d | Dense, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """The constant as one value per output channel, or None if it varies along other axes."""
    full = np.broadcast_to(bias.value, out_shape)
    if isinstance(producer, Conv2d):
        per_channel = full[:, :1, :1]
        return per_channel.reshape(-1) if np.array_equal(np.broadcast_to(per_channel, out_shape), full) else None
    lead = full.reshape(-1, out_shape[-1])
    return lead[0] if np.array_equal(np.broadcast_to(lead[:1], lead.shape), lead) else None


@dataclass(frozen=True)
class FoldBias(Pass):
    name = "fold-bias"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        types = graph.types()
        with graph.edit() as edit:
            for op in graph:
                producer = edit.producer(op.inputs[0]) if isinstance(op, Bias) else None
                if not isinstance(op, Bias) or not isinstance(producer, (Conv2d, Dense)):
                    continue
                if edit.uses(producer.output) != 1:
                    continue
                value = _per_channel(op, producer, types[op.output].shape)
                if value is None:
                    continue
                base = producer.bias if producer.bias is not None else np.zeros(producer.out_channels, np.float32)
                producer.bias = (base + value).astype(np.float32)
                edit.bypass(op)
