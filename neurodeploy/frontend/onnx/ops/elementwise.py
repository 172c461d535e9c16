"""Mul, Div, Sub and Floor: evaluated at import when every input is a constant (shape arithmetic), imported as
``Scale``, ``Bias`` and ``Floor`` ops when one operand is a runtime value and the other a constant (the
arithmetic of quantized activations such as QCFS, ``floor(x / λ * L + 0.5) / L``).

Runtime-with-constant forms: ``x * c`` and ``c * x`` -> Scale(c); ``x / c`` -> Scale(1 / c); ``x - c`` ->
Bias(-c); ``c - x`` -> Scale(-1) then Bias(c). Two runtime operands, and ``c / x``, are not supported, except
``x * Sigmoid(x)`` (either order): SiLU, one op.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import Bias, Floor, Scale, SiLU


def _fold(ctx: ImportContext, node: Node, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """Evaluate the node if both operands are constants; return whether it did."""
    a, b = node.required_input(0), node.required_input(1)
    if not (ctx.is_const(a) and ctx.is_const(b)):
        return False
    x, y = ctx.const(a), ctx.const(b)
    dtype = np.result_type(x, y)
    integer_division = node.op_type == "Div" and np.issubdtype(dtype, np.integer)
    # Integer Div computes in float64 first (see div): that intermediate is the largest array made.
    ctx.check_const_size(np.broadcast_shapes(x.shape, y.shape), np.float64 if integer_division else dtype)
    if integer_division and not np.all(y != 0):
        raise node.error("divides an integer constant by 0")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf and NaN are refused by set_const
        ctx.set_const(node.outputs[0], np.asarray(fn(x, y)).astype(dtype))
    return True


def _runtime_and_constant(ctx: ImportContext, node: Node) -> tuple[str, np.ndarray, bool]:
    """(the runtime operand, the constant as a per-sample float32 array, whether the constant comes first)."""
    a, b = node.required_input(0), node.required_input(1)
    if ctx.is_runtime(a) and ctx.is_runtime(b):
        raise UnsupportedVariant(
            f"{node.op_type} '{node.name}': both operands are computed from the model input; only a runtime "
            "value and a constant are supported"
        )
    const_first = ctx.is_const(a)
    x, c = (b, a) if const_first else (a, b)
    if not ctx.is_runtime(x):
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': input {x!r} is neither a constant nor a runtime value")
    value = ctx.const(c)
    rank = ctx.type_of(x).rank
    if value.ndim == rank + 1:
        # A constant with the batch dimension is per-sample only if every row agrees.
        if value.shape[0] != 1 and not (value == value[:1]).all():
            raise UnsupportedVariant(
                f"{node.op_type} '{node.name}': constant of shape {value.shape} varies along the batch"
            )
        value = value[0]
    elif value.ndim > rank + 1:
        raise UnsupportedVariant(
            f"{node.op_type} '{node.name}': constant of shape {value.shape} has a higher rank than the input"
        )
    return x, np.asarray(value, np.float64), const_first


def _silu(ctx: ImportContext, node: Node) -> bool:
    """Import ``x * Sigmoid(x)`` (or ``Sigmoid(x) * x``) as one SiLU op; return whether the Mul was one. A Mul that
    reads a Sigmoid and anything but that Sigmoid's input is refused."""
    a, b = node.required_input(0), node.required_input(1)
    for x, s in ((a, b), (b, a)):
        pending = ctx.pending_sigmoids.get(ctx.resolve(s))
        if pending is None:
            continue
        source, sigmoid = pending
        if not (ctx.is_runtime(x) and ctx.resolve(x) == source):
            raise UnsupportedVariant(
                f"Mul '{node.name}' multiplies Sigmoid '{sigmoid}' by {x!r}, not by the Sigmoid's own input: a "
                "Sigmoid is imported only inside SiLU, x * Sigmoid(x)"
            )
        op = ctx.emit(node, SiLU, [x])
        op.meta["onnx_fused"] = [{"onnx_node": sigmoid, "onnx_op": f"Sigmoid-{node.opset}"}]
        return True
    return False


@onnx_op("Mul", 7, 13, 14)
def mul(ctx: ImportContext, node: Node) -> None:
    if _silu(ctx, node) or _fold(ctx, node, np.multiply):
        return
    x, c, _ = _runtime_and_constant(ctx, node)
    ctx.emit(node, Scale, [x], value=c.astype(np.float32))


@onnx_op("Div", 7, 13, 14)
def div(ctx: ImportContext, node: Node) -> None:
    def divide(a, b):
        # Integer Div truncates toward zero in ONNX; numpy's // floors.
        if np.issubdtype(np.result_type(a, b), np.integer):
            return np.trunc(np.true_divide(a, b))
        return np.true_divide(a, b)

    if _fold(ctx, node, divide):
        return
    x, c, const_first = _runtime_and_constant(ctx, node)
    if const_first:
        raise UnsupportedVariant(f"Div '{node.name}': a constant divided by a runtime value is not supported")
    if not np.all(c != 0):
        raise UnsupportedVariant(f"Div '{node.name}': divides by a constant that contains 0")
    # x / c as x * (1 / c): the reciprocal is rounded once, to float32 (results may differ from a true
    # division in the last bit). A reciprocal beyond float32's range is refused by emit.
    with np.errstate(over="ignore"):
        ctx.emit(node, Scale, [x], value=(1.0 / c).astype(np.float32))


@onnx_op("Sub", 7, 13, 14)
def sub(ctx: ImportContext, node: Node) -> None:
    if _fold(ctx, node, np.subtract):
        return
    x, c, const_first = _runtime_and_constant(ctx, node)
    if not const_first:
        ctx.emit(node, Bias, [x], value=(-c).astype(np.float32))
        return
    # c - x = (-1 * x) + c: two ops, the first defining an intermediate value.
    negated = ctx.fresh_name(f"{node.outputs[0]}_negated")
    ctx.emit(node, Scale, [x], output=negated, value=np.float32(-1.0))
    ctx.emit(node, Bias, [negated], value=c.astype(np.float32))


@onnx_op("Floor", 6, 13)
def floor(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    if ctx.is_const(x):
        ctx.set_const(node.outputs[0], np.floor(ctx.const(x)))  # the same shape and dtype: nothing grows
        return
    ctx.emit(node, Floor, [x])
