"""fuse-activations: one activation op per activation.

Chains of Relu/Clip collapse into one op (clip(clip(x, l1, h1), l2, h2) = clip(x, max(l1, l2), min(h1, h2))
when the ranges overlap), and Clip(0, none) becomes Relu, so conversion sees each activation once and in a
canonical form: Relu, or Clip(0, a) for a clipped ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import Clip, Relu
from neurodeploy.passes.base import Pass, PassContext


def _bounds(op: Op) -> tuple[float | None, float | None] | None:
    if isinstance(op, Relu):
        return 0.0, None
    if isinstance(op, Clip):
        return op.low, op.high
    return None


def _merge(first: tuple[float | None, float | None], second: tuple[float | None, float | None]):
    lows = [v for v in (first[0], second[0]) if v is not None]
    highs = [v for v in (first[1], second[1]) if v is not None]
    low = max(lows) if lows else None
    high = min(highs) if highs else None
    if low is not None and high is not None and low > high:
        return None  # disjoint ranges: the chain is a constant, leave it alone
    return low, high


@dataclass(frozen=True)
class FuseActivations(Pass):
    name = "fuse-activations"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        with graph.edit() as edit:
            for op in graph:
                bounds = _bounds(op)
                if bounds is None:
                    continue
                producer = edit.producer(op.inputs[0])
                inner = _bounds(producer) if producer is not None else None
                if producer is not None and inner is not None and edit.uses(producer.output) == 1:
                    merged = _merge(inner, bounds)
                    if merged is not None:
                        edit.remove(producer)
                        edit.set_inputs(op, producer.inputs)
                        bounds = merged
                low, high = bounds
                meta = dict(op.meta)
                if low == 0.0 and high is None:
                    new: Op = Relu(name=op.name, inputs=op.inputs, output=op.output, meta=meta)
                else:
                    new = Clip(name=op.name, inputs=op.inputs, output=op.output, meta=meta, low=low, high=high)
                edit.replace(op, new)
