"""Relu, Clip (bounds as attributes before opset 11, as inputs since), Softmax (only as the last op), and Sigmoid
(only inside SiLU, x * Sigmoid(x): the Mul imports the pair)."""

from __future__ import annotations

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import Clip, Relu, Softmax


def _runtime_input(ctx: ImportContext, node: Node) -> str:
    x = node.required_input(0)
    if not ctx.is_runtime(x):
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': input must be a runtime value")
    return x


@onnx_op("Relu", 6, 13, 14)
def relu(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    if ctx.is_const(x):
        value = ctx.const(x)
        ctx.check_const_size(value.shape, np.result_type(value, 0))
        ctx.set_const(node.outputs[0], np.maximum(value, 0))
        return
    ctx.emit(node, Relu, [_runtime_input(ctx, node)])


@onnx_op("Sigmoid", 6, 13)
def sigmoid(ctx: ImportContext, node: Node) -> None:
    """Folded on a constant. On a runtime value it makes no op of its own: the Mul that multiplies its input by it,
    x * Sigmoid(x) (how torch exports ``nn.SiLU``), imports the pair as one SiLU op; any other reader of it is
    refused by name (a sigmoid alone has no spiking form here)."""
    x = node.required_input(0)
    if ctx.is_const(x):
        value = ctx.const(x)
        ctx.check_const_size(value.shape, value.dtype)
        with np.errstate(over="ignore"):  # e^-x overflows for very negative x: 1 / inf = 0, the limit
            ctx.set_const(node.outputs[0], (1 / (1 + np.exp(-value))).astype(value.dtype))
        return
    ctx.pending_sigmoids[node.outputs[0]] = (ctx.resolve(_runtime_input(ctx, node)), node.name)


def _bound(ctx: ImportContext, node: Node, index: int) -> float | None:
    name = node.input(index)
    if name is None:
        return None
    if not ctx.is_const(name):
        raise UnsupportedVariant(f"Clip '{node.name}': bound input {name!r} must be a constant")
    value = ctx.const(name)
    if value.size != 1:
        raise UnsupportedVariant(f"Clip '{node.name}': bound {name!r} must be a scalar, got shape {value.shape}")
    bound = float(value.reshape(()))
    if not np.isfinite(bound):
        raise node.error(f"bound {name!r} is {bound}; it must be a finite number")
    return bound


@onnx_op("Clip", 6)
def clip_attributes(ctx: ImportContext, node: Node) -> None:
    _clip(ctx, node, node.attr_float("min", None), node.attr_float("max", None))


@onnx_op("Clip", 11, 12, 13)
def clip_inputs(ctx: ImportContext, node: Node) -> None:
    _clip(ctx, node, _bound(ctx, node, 1), _bound(ctx, node, 2))


def _clip(ctx: ImportContext, node: Node, low: float | None, high: float | None) -> None:
    low = None if low is None else float(low)
    high = None if high is None else float(high)
    x = node.required_input(0)
    if ctx.is_const(x):
        value = ctx.const(x)
        ctx.check_const_size(value.shape, np.result_type(value, *(b for b in (low, high) if b is not None)))
        if low is not None:
            value = np.maximum(value, low)
        if high is not None:
            value = np.minimum(value, high)
        ctx.set_const(node.outputs[0], value)
        return
    ctx.emit(node, Clip, [_runtime_input(ctx, node)], low=low, high=high)


@onnx_op("Softmax", 11, 13)
def softmax(ctx: ImportContext, node: Node) -> None:
    x = _runtime_input(ctx, node)
    rank = ctx.type_of(x).rank + 1
    axis = node.attr_int("axis", 1 if node.opset < 13 else -1)
    axis = axis + rank if axis < 0 else axis
    if not 1 <= axis < rank:
        raise UnsupportedVariant(f"Softmax '{node.name}': axis {axis} would mix samples of the batch")
    ctx.emit(node, Softmax, [x], axis=axis - 1, coerce_2d=node.opset < 13)
