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
    a, b, c = node.required_input(0), node.required_input(1), node.input(2)
    alpha, beta = node.attr_float("alpha", 1.0), node.attr_float("beta", 1.0)
    trans_a, trans_b = bool(node.attr_int("transA", 0)), bool(node.attr_int("transB", 0))
    if ctx.is_const(a) and ctx.is_const(b) and (c is None or ctx.is_const(c)):
        av, bv = ctx.const(a), ctx.const(b)
        if av.ndim != 2 or bv.ndim != 2:
            raise node.error(f"A {av.shape} and B {bv.shape} must both be 2-D")
        m, k = av.shape[::-1] if trans_a else av.shape
        k2, n = bv.shape[::-1] if trans_b else bv.shape
        if k != k2:
            raise node.error(f"A {av.shape} and B {bv.shape} do not multiply (transA={trans_a:d}, transB={trans_b:d})")
        if c is not None and np.broadcast_shapes((m, n), ctx.const(c).shape) != (m, n):
            raise node.error(f"C {ctx.const(c).shape} does not broadcast to the ({m}, {n}) product")
        ctx.check_const_size((m, n), np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are refused by set_const
            value = _gemm_value(av, bv, ctx.const(c) if c else None, alpha, beta, trans_a, trans_b)
        ctx.set_const(node.outputs[0], value.astype(av.dtype))
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
    with np.errstate(over="ignore"):  # a product beyond float32's range is refused by emit
        weight = alpha * weight
    bias = None
    if c is not None:
        c_value = ctx.const(c)
        out_features = weight.shape[0]
        if c_value.ndim == 2 and c_value.shape[0] != 1:
            raise UnsupportedVariant(f"Gemm '{node.name}': C of shape {c_value.shape} varies along the batch")
        with np.errstate(over="ignore"):
            bias = beta * np.broadcast_to(c_value.reshape(-1) if c_value.ndim else c_value, (out_features,))
    ctx.emit(node, Dense, [a], weight=weight, bias=bias)


def _matmul_shape(node: Node, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """numpy.matmul's output shape, computed without computing the product."""
    if not a or not b:
        raise node.error(f"cannot multiply shapes {a} and {b}: MatMul needs operands of rank 1 or more")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise node.error(f"shapes {a} and {b} do not multiply")
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    return (*batch, *a2[-2:-1][: len(a) - 1], *b2[-1:][: len(b) - 1])


@onnx_op("MatMul", 9, 13)
def matmul(ctx: ImportContext, node: Node) -> None:
    a, b = node.required_input(0), node.required_input(1)
    if ctx.is_const(a) and ctx.is_const(b):
        av, bv = ctx.const(a), ctx.const(b)
        ctx.check_const_size(_matmul_shape(node, av.shape, bv.shape), np.result_type(av, bv))
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are refused by set_const
            ctx.set_const(node.outputs[0], np.matmul(av, bv))
        return
    if not ctx.is_runtime(a) or not ctx.is_const(b):
        raise UnsupportedVariant(f"MatMul '{node.name}': the second operand must be a constant weight matrix")
    weight = ctx.const(b)
    if weight.ndim != 2:
        raise UnsupportedVariant(f"MatMul '{node.name}': the weight has shape {weight.shape}; only 2-D is supported")
    if ctx.type_of(a).rank < 1:
        raise UnsupportedVariant(f"MatMul '{node.name}': input {ctx.full_shape(a)} has no feature axis")
    ctx.emit(node, Dense, [a], weight=weight.T)
