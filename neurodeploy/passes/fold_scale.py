"""fold-scale: merge a per-channel constant Mul (``Scale``) into the Conv2d/Dense before it, then any constant Add
that now follows that Conv2d/Dense (a Caffe-style BatchNorm + Scale + Bias after a convolution, as the model
zoo's DenseNet-121 and Inception v2 have it, becomes the convolution):

    W' = W * s,  b' = b * s      (per output channel)

It runs after detect-qcfs: a QCFS activation exports as Scale ops after the convolution (``x / λ * L``), which
must stay for that pass to recognise. A constant that varies along other axes than the channels, or a producer
whose output is used elsewhere too, stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Bias, Conv2d, Dense, Scale
from neurodeploy.passes.base import Pass, PassContext
from neurodeploy.passes.fold_bias import add_bias, fold_into_producer


def _scale(producer: Conv2d | Dense, value: np.ndarray) -> None:
    shape = (-1, 1, 1, 1) if isinstance(producer, Conv2d) else (-1, 1)
    producer.weight = (producer.weight * value.reshape(shape)).astype(producer.weight.dtype)
    if producer.bias is not None:
        producer.bias = (producer.bias * value).astype(producer.bias.dtype)


@dataclass(frozen=True)
class FoldScale(Pass):
    name = "fold-scale"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        fold_into_producer(graph, Scale, _scale)
        fold_into_producer(graph, Bias, add_bias)  # the Bias that followed the Scale now follows the convolution
