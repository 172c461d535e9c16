"""drop-softmax: remove a Softmax that produces a model output (directly, or through Reshapes only). Softmax is
monotonic, so the class decision (argmax) is unchanged; the readout becomes the argmax of the scores before it."""

from __future__ import annotations

from dataclasses import dataclass

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Softmax, softmax_readout
from neurodeploy.passes.base import Pass, PassContext


@dataclass(frozen=True)
class DropSoftmax(Pass):
    name = "drop-softmax"
    preserves_semantics = False

    def run(self, graph: Graph, ctx: PassContext) -> None:
        with graph.edit() as edit:
            for op in graph:
                if isinstance(op, Softmax) and softmax_readout(edit, op.output, graph.outputs) is not None:
                    edit.bypass(op)
                    graph.meta.setdefault("dropped_softmax", []).append(op.output)
