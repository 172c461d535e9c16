"""fold-batchnorm: fold inference BatchNorm into the Conv2d/Dense before it.

    W' = W * a,  b' = b * a + c   with  a = scale / sqrt(var + eps),  c = shift - mean * a   (per channel)

A BatchNorm with no foldable producer (its input is shared, or comes from a pooling op or the model input)
becomes an equivalent depthwise 1x1 Conv2d (or a diagonal Dense for feature vectors), so every later pass
and every backend sees only weighted layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import BatchNorm, Conv2d, Dense
from neurodeploy.passes.base import Pass, PassContext


def _fold_into(producer: Conv2d | Dense, a: np.ndarray, c: np.ndarray) -> bool:
    if isinstance(producer, Conv2d):
        weight = producer.weight * a[:, None, None, None]
    elif producer.weight.shape[0] == a.shape[0]:
        weight = producer.weight * a[:, None]
    else:
        return False
    bias = producer.bias if producer.bias is not None else np.zeros(a.shape, np.float32)
    producer.weight = weight.astype(np.float32)
    producer.bias = (bias * a + c).astype(np.float32)
    return True


@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    name = "fold-batchnorm"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        types = graph.types()
        with graph.edit() as edit:
            for bn in graph:
                if not isinstance(bn, BatchNorm):
                    continue
                a, c = bn.folded()
                producer = edit.producer(bn.inputs[0])
                rank = types[bn.inputs[0]].rank
                foldable = isinstance(producer, Conv2d) or (isinstance(producer, Dense) and rank == 1)
                if (
                    foldable
                    and isinstance(producer, (Conv2d, Dense))
                    and edit.uses(producer.output) == 1
                    and _fold_into(producer, a, c)
                ):
                    edit.bypass(bn)
                elif rank == 3:
                    channels = a.shape[0]
                    edit.replace(
                        bn,
                        Conv2d(
                            name=bn.name,
                            inputs=bn.inputs,
                            output=bn.output,
                            meta=dict(bn.meta),
                            weight=a.reshape(channels, 1, 1, 1),
                            bias=c,
                            groups=channels,
                        ),
                    )
                elif rank == 1:
                    edit.replace(
                        bn,
                        Dense(
                            name=bn.name,
                            inputs=bn.inputs,
                            output=bn.output,
                            meta=dict(bn.meta),
                            weight=np.diag(a),
                            bias=c,
                        ),
                    )
