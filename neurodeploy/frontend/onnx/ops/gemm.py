"""Gemm and MatMul against constant weights: both become Dense (a MatMul's bias arrives as a following Add,
which the fold-bias pass merges)."""

from __future__ import annotations

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import Dense


def _gemm_value(a, b, c, alpha, beta, trans_a, trans_b):
    y = alpha * np.matmul(a.T if trans_a else a, b.T if trans_b else b)
    return y + beta * c if c is not None else y


@onnx_op("Gemm", 11, 13)
def gemm(ctx: ImportContext, node: Node) -> None:
    a, b, c = node.input(0), node.input(1), node.input(2)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    trans_a, trans_b = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))
    if ctx.is_const(a) and ctx.is_const(b) and (c is None or ctx.is_const(c)):
        value = _gemm_value(ctx.const(a), ctx.const(b), ctx.const(c) if c else None, alpha, beta, trans_a, trans_b)
        ctx.set_const(node.outputs[0], value.astype(ctx.const(a).dtype))
        return
    if not ctx.is_runtime(a) or not ctx.is_const(b) or (c is not None and not ctx.is_const(c)):
        raise UnsupportedVariant(f"Gemm '{node.name}': only A may be a runtime value; B and C must be constants")
    if trans_a:
        raise UnsupportedVariant(
            f"Gemm '{node.name}': transA=1 on the runtime input A would transpose the batch "
            "dimension; re-export with the input untransposed"
        )
    if ctx.type_of(a).rank != 1:
        raise UnsupportedVariant(f"Gemm '{node.name}': A must be 2-D (batch, features), got {ctx.full_shape(a)}")
    weight = ctx.const(b)
    weight = weight if trans_b else weight.T  # Dense keeps torch's (out, in) layout
    weight = alpha * weight
    bias = None
    if c is not None:
        c_value = ctx.const(c)
        out_features = weight.shape[0]
        if c_value.ndim == 2 and c_value.shape[0] != 1:
            raise UnsupportedVariant(f"Gemm '{node.name}': C of shape {c_value.shape} varies along the batch")
        bias = beta * np.broadcast_to(c_value.reshape(-1) if c_value.ndim else c_value, (out_features,))
    ctx.emit(node, Dense, [a], weight=weight, bias=bias)


@onnx_op("MatMul", 9, 13)
def matmul(ctx: ImportContext, node: Node) -> None:
    a, b = node.input(0), node.input(1)
    if ctx.is_const(a) and ctx.is_const(b):
        ctx.set_const(node.outputs[0], np.matmul(ctx.const(a), ctx.const(b)))
        return
    if not ctx.is_runtime(a) or not ctx.is_const(b):
        raise UnsupportedVariant(f"MatMul '{node.name}': the second operand must be a constant weight matrix")
    weight = ctx.const(b)
    if weight.ndim != 2:
        raise UnsupportedVariant(f"MatMul '{node.name}': the weight has shape {weight.shape}; only 2-D is supported")
    if ctx.type_of(a).rank < 1:
        raise UnsupportedVariant(f"MatMul '{node.name}': input {ctx.full_shape(a)} has no feature axis")
    ctx.emit(node, Dense, [a], weight=weight.T)
