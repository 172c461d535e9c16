"""canonicalize-flatten: one Reshape where exporters wrote several (Flatten, Squeeze, Unsqueeze, Reshape all
import as Reshape), and none where the shape does not change. A Reshape to rank 1 is a flatten."""

from __future__ import annotations

from dataclasses import dataclass

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Reshape
from neurodeploy.passes.base import Pass, PassContext


@dataclass(frozen=True)
class CanonicalizeFlatten(Pass):
    name = "canonicalize-flatten"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        with graph.edit() as edit:
            for op in graph:
                if not isinstance(op, Reshape):
                    continue
                producer = edit.producer(op.inputs[0])
                if isinstance(producer, Reshape) and edit.uses(producer.output) == 1:
                    edit.remove(producer)
                    edit.set_inputs(op, producer.inputs)
            edit.commit()
            types = graph.types()
            for op in graph:
                if isinstance(op, Reshape) and types[op.inputs[0]].shape == op.shape:
                    edit.bypass(op)
