"""Identity, inference-mode Dropout and Constant: no IR op, only a name for an existing value."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op


@onnx_op("Identity", 1, 13, 14, 16, 19, 21)
def identity(ctx: ImportContext, node: Node) -> None:
    ctx.alias(node.outputs[0], node.input(0))


@onnx_op("Dropout", 10, 12, 13)
def dropout(ctx: ImportContext, node: Node) -> None:
    training = node.input(2)
    if training is not None and (not ctx.is_const(training) or bool(ctx.const(training))):
        raise UnsupportedVariant(f"Dropout '{node.name}': training_mode must be a constant false")
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedVariant(f"Dropout '{node.name}': the mask output is not supported")
    ctx.alias(node.outputs[0], node.input(0))


@onnx_op("Constant", 11, 12, 13, 19, 21)
def constant(ctx: ImportContext, node: Node) -> None:
    attrs = node.proto.attribute
    if len(attrs) != 1:
        raise UnsupportedVariant(f"Constant '{node.name}': expected exactly one value attribute")
    key = attrs[0].name
    if key == "value":
        value = numpy_helper.to_array(attrs[0].t)
    elif key == "value_float":
        value = np.array(node.attr(key), np.float32)
    elif key == "value_floats":
        value = np.array(node.attr(key), np.float32)
    elif key == "value_int":
        value = np.array(node.attr(key), np.int64)
    elif key == "value_ints":
        value = np.array(node.attr(key), np.int64)
    else:
        raise UnsupportedVariant(f"Constant '{node.name}': {key} constants are not supported")
    ctx.set_const(node.outputs[0], value)
