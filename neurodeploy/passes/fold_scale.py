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
from neurodeploy.ir.ops import AvgPool2d, Bias, Conv2d, Delay, Dense, Reshape, Scale
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


_COMMUTES = (Reshape, AvgPool2d, Delay)
"""Ops a constant factor passes through unchanged: y(s·x) = s·y(x)."""


@dataclass(frozen=True)
class FoldScaleForward(Pass):
    """fold-scale-forward: merge a scalar ``Scale`` into the one Conv2d/Dense its value reaches, through ops that a
    constant factor passes through (Reshape, AvgPool2d): W' = W * s. A NIR SumPool2d arrives as an average pool
    and a Scale by the window's area; this makes it the convolution after the pool, which the targets map
    together. A Scale whose value is used more than once on the way, or reaches anything else, stays."""

    name = "fold-scale-forward"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        with graph.edit() as edit:
            for op in graph:
                if not isinstance(op, Scale) or op.value.size != 1:
                    continue
                value, consumer = op.output, None
                while edit.uses(value) == 1 and value not in graph.outputs:
                    (consumer,) = edit.consumers(value)
                    if not isinstance(consumer, _COMMUTES) or len(consumer.inputs) != 1:
                        break
                    value = consumer.output
                if not isinstance(consumer, (Conv2d, Dense)) or consumer.inputs[0] != value:
                    continue
                consumer.weight = (consumer.weight * op.value.reshape(())).astype(np.float32)
                edit.bypass(op)
