"""Ops imported only when every input is a constant: they are evaluated at import (shape arithmetic that
exporters emit around Reshape, mostly). ``Shape`` of a runtime value is also a constant, because every
per-sample dimension is static; its batch entry is the importer's assumed batch size. Mul, Sub and Div, which
also take a runtime operand, live in ``elementwise``."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op


def _consts(ctx: ImportContext, node: Node) -> list[np.ndarray | None]:
    values = []
    for i in range(len(node.inputs)):
        name = node.input(i)
        if name is None:
            values.append(None)
        elif ctx.is_const(name):
            values.append(ctx.const(name))
        else:
            raise UnsupportedVariant(
                f"{node.op_type} '{node.name}': only constant inputs are supported (input "
                f"{name!r} is computed from the model input)"
            )
    return values


@onnx_op("Shape", 1, 13, 15, 19, 21, constant_only=True)
def shape(ctx: ImportContext, node: Node) -> None:
    full = np.array(ctx.full_shape(node.input(0)), np.int64)
    start, end = node.attr("start", 0), node.attr("end")
    ctx.set_const(node.outputs[0], full[start:end])


@onnx_op("Gather", 11, 13, constant_only=True)
def gather(ctx: ImportContext, node: Node) -> None:
    data, indices = _consts(ctx, node)
    ctx.set_const(node.outputs[0], np.take(data, indices.astype(np.int64), axis=int(node.attr("axis", 0))))


@onnx_op("Cast", 9, 13, 19, 21, constant_only=True)
def cast(ctx: ImportContext, node: Node) -> None:
    (data,) = _consts(ctx, node)[:1]
    dtype = helper.tensor_dtype_to_np_dtype(int(node.attr("to")))
    ctx.set_const(node.outputs[0], data.astype(dtype))


@onnx_op("Slice", 11, 13, constant_only=True)
def slice_(ctx: ImportContext, node: Node) -> None:
    data, starts, ends, axes, steps = (_consts(ctx, node) + [None] * 5)[:5]
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    ctx.set_const(node.outputs[0], data[tuple(index)])


@onnx_op("Transpose", 1, 13, 21, constant_only=True)
def transpose(ctx: ImportContext, node: Node) -> None:
    (data,) = _consts(ctx, node)
    perm = node.attr("perm")
    ctx.set_const(node.outputs[0], np.transpose(data, None if perm is None else tuple(perm)))


@onnx_op("ConstantOfShape", 9, 20, 21, constant_only=True)
def constant_of_shape(ctx: ImportContext, node: Node) -> None:
    (dims,) = _consts(ctx, node)
    value = node.proto.attribute[0].t if node.proto.attribute else None
    fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
    ctx.set_const(node.outputs[0], np.full(tuple(int(d) for d in dims), fill, dtype=np.asarray(fill).dtype))
