"""The intermediate representation: values, ops, graphs, and their text and file forms."""

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF, LIF, FewSpike, SignedIF, WindowIF
from neurodeploy.ir.op import OP_TYPES, Op, StatefulOp
from neurodeploy.ir.ops import (
    QCFS,
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Clip,
    Concat,
    Conv2d,
    Delay,
    Dense,
    Floor,
    GlobalAvgPool,
    MaxPool2d,
    Relu,
    Reshape,
    Scale,
    SiLU,
    Softmax,
    SpikeMaxPool2d,
    Threshold,
)
from neurodeploy.ir.printer import format_graph
from neurodeploy.ir.types import TensorType

__all__ = [
    "IF",
    "LIF",
    "OP_TYPES",
    "QCFS",
    "Add",
    "AvgPool2d",
    "BatchNorm",
    "Bias",
    "Clip",
    "Concat",
    "Conv2d",
    "Delay",
    "Dense",
    "FewSpike",
    "Floor",
    "GlobalAvgPool",
    "Graph",
    "MaxPool2d",
    "Op",
    "Relu",
    "Reshape",
    "Scale",
    "SiLU",
    "SignedIF",
    "Softmax",
    "SpikeMaxPool2d",
    "StatefulOp",
    "TensorType",
    "Threshold",
    "WindowIF",
    "format_graph",
]
