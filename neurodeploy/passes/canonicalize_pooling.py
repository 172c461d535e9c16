"""canonicalize-pooling: GlobalAvgPool over (C, H, W) becomes an AvgPool2d over the whole map, and 1x1
pools with stride 1 and no padding (identities) disappear."""

from __future__ import annotations

from dataclasses import dataclass

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import AvgPool2d, GlobalAvgPool, MaxPool2d
from neurodeploy.passes.base import Pass, PassContext


@dataclass(frozen=True)
class CanonicalizePooling(Pass):
    name = "canonicalize-pooling"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        types = graph.types()
        with graph.edit() as edit:
            for op in graph:
                if isinstance(op, GlobalAvgPool) and types[op.inputs[0]].rank == 3:
                    _, h, w = types[op.inputs[0]].shape
                    edit.replace(
                        op,
                        AvgPool2d(
                            name=op.name,
                            inputs=op.inputs,
                            output=op.output,
                            meta=dict(op.meta),
                            kernel=(h, w),
                            stride=(h, w),
                        ),
                    )
                elif isinstance(op, (AvgPool2d, MaxPool2d)) and op.is_trivial:
                    edit.bypass(op)
