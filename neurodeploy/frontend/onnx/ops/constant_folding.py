"""Ops imported only when every input is a constant: they are evaluated at import (shape arithmetic that
exporters emit around Reshape, mostly). ``Shape`` of a runtime value is also a constant, because every
per-sample dimension is static; its batch entry is the importer's assumed batch size. Mul, Sub and Div, which
also take a runtime operand, live in ``elementwise``; a Transpose of a runtime value is imported in one case, the
channel shuffle (``_channel_shuffle``)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.frontend.onnx.tensors import type_name
from neurodeploy.ir.ops import Conv2d, Reshape


def _consts(ctx: ImportContext, node: Node) -> list[np.ndarray | None]:
    values: list[np.ndarray | None] = []
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


def _required(node: Node, value: np.ndarray | None, index: int) -> np.ndarray:
    """The value of input ``index``, one the op's schema requires (``Node.validate`` refuses a node without it,
    so a handler never meets the error here)."""
    if value is None:
        raise node.error(f"the required input {index} is missing")
    return value


@onnx_op("Shape", 1, 13, 15, 19, 21, constant_only=True)
def shape(ctx: ImportContext, node: Node) -> None:
    full = np.array(ctx.full_shape(node.required_input(0)), np.int64)
    start, end = node.attr_int("start", 0), node.attr_int("end", None)
    ctx.set_const(node.outputs[0], full[start:end])


def _axis(node: Node, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in [-rank, rank), made non-negative; an error naming the node otherwise."""
    if not -rank <= axis < rank:
        raise node.error(f"{what} {axis} is out of range for a rank-{rank} input")
    return axis + rank if axis < 0 else axis


@onnx_op("Gather", 11, 13, constant_only=True)
def gather(ctx: ImportContext, node: Node) -> None:
    data_value, indices_value = _consts(ctx, node)[:2]
    data, indices = _required(node, data_value, 0), _required(node, indices_value, 1)
    axis = _axis(node, node.attr_int("axis", 0), data.ndim)
    if not np.issubdtype(indices.dtype, np.integer):
        raise node.error(f"indices have element type {indices.dtype}; expected integers")
    size = data.shape[axis]
    indices = indices.astype(np.int64)
    bad = indices[(indices < -size) | (indices >= size)]
    if bad.size:
        raise node.error(f"index {int(bad.reshape(-1)[0])} is out of range for axis {axis} of size {size}")
    out_shape = (*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :])
    ctx.check_const_size(out_shape, data.dtype)
    ctx.set_const(node.outputs[0], np.take(data, indices, axis=axis))


_CAST_TARGETS = {
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.INT8,
    TensorProto.INT16,
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.UINT8,
    TensorProto.UINT16,
    TensorProto.UINT32,
    TensorProto.UINT64,
    TensorProto.BOOL,
}


@onnx_op("Cast", 9, 13, 19, 21, constant_only=True)
def cast(ctx: ImportContext, node: Node) -> None:
    (value,) = _consts(ctx, node)[:1]
    data = _required(node, value, 0)
    to = node.attr_int("to")
    if to not in TensorProto.DataType.values():
        raise node.error(f"attribute 'to' is {to}, which is no ONNX element type")
    if to == TensorProto.BFLOAT16:  # the IR computes in float32; bfloat16 values are float32 values
        to = TensorProto.FLOAT
    if to not in _CAST_TARGETS:
        raise UnsupportedVariant(
            f"Cast '{node.name}': casting to {type_name(to)} is not supported (only bool, integer and float types)"
        )
    dtype = helper.tensor_dtype_to_np_dtype(to)
    ctx.check_const_size(data.shape, dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # ONNX leaves out-of-range float -> int casts undefined
        ctx.set_const(node.outputs[0], data.astype(dtype))


def _int_list(node: Node, value: np.ndarray | None, what: str) -> list[int] | None:
    if value is None:
        return None
    if not np.issubdtype(value.dtype, np.integer) or value.ndim != 1:
        raise node.error(f"{what} must be a 1-D integer tensor, got {value.dtype} of shape {value.shape}")
    return [int(v) for v in value]


@onnx_op("Slice", 11, 13, constant_only=True)
def slice_(ctx: ImportContext, node: Node) -> None:
    value, *rest = (_consts(ctx, node) + [None] * 5)[:5]
    data = _required(node, value, 0)
    starts, ends, axes, steps = (_int_list(node, v, w) for v, w in zip(rest, ("starts", "ends", "axes", "steps")))
    if starts is None or ends is None:
        raise node.error("starts and ends are required")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise node.error(
            f"starts, ends, axes and steps differ in length ({len(starts)}, {len(ends)}, {len(axes)}, {len(steps)})"
        )
    axes = [_axis(node, a, data.ndim, "axes entry") for a in axes]
    if len(set(axes)) != len(axes):
        raise node.error(f"axes {axes} repeat an axis")
    if 0 in steps:
        raise node.error("a step is 0")
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)
    ctx.set_const(node.outputs[0], data[tuple(index)])  # a view: no new memory


@onnx_op("Transpose", 1, 13, 21, constant_only=True)
def transpose(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    if ctx.is_runtime(x):
        _channel_shuffle(ctx, node, x)
        return
    (value,) = _consts(ctx, node)
    data = _required(node, value, 0)
    perm = node.attr_ints("perm", None)
    if perm is not None and sorted(perm) != list(range(data.ndim)):
        raise node.error(f"perm {perm} is not a permutation of the {data.ndim} axes of its input")
    ctx.set_const(node.outputs[0], np.transpose(data, None if perm is None else tuple(perm)))


def _channel_shuffle(ctx: ImportContext, node: Node, x: str) -> None:
    """A Transpose of a runtime value that swaps its two leading per-sample axes, (g, c, ...) -> (c, g, ...):
    the channel shuffle of ShuffleNet, exported as Reshape (N, g, c, H, W), this Transpose and a Reshape back to
    (N, g c, H, W). It is a permutation of the g c channels, which becomes a 1x1 Conv2d whose weights are that
    permutation (exact: every output channel is one input channel times 1), between two Reshapes. Any other
    Transpose of a runtime value is refused."""
    shape = ctx.full_shape(x)
    perm = node.attr_ints("perm", None)
    if len(shape) != 5 or perm != [0, 2, 1, 3, 4]:
        raise UnsupportedVariant(
            f"Transpose '{node.name}': perm {perm} of a computed {shape} tensor; only a channel shuffle is imported "
            "(perm [0, 2, 1, 3, 4] of an (N, g, c, H, W) tensor)"
        )
    groups, per_group, rest = shape[1], shape[2], tuple(shape[3:])
    channels = groups * per_group
    source = np.arange(channels).reshape(groups, per_group).T.reshape(-1)  # output channel o reads source[o]
    weight = np.zeros((channels, channels, 1, 1), np.float32)
    weight[np.arange(channels), source, 0, 0] = 1.0
    flat = ctx.fresh_name(f"{node.outputs[0]}/channels")
    mixed = ctx.fresh_name(f"{node.outputs[0]}/shuffled")
    ctx.emit(node, Reshape, [x], output=flat, shape=(channels, *rest))
    ctx.emit(node, Conv2d, [flat], output=mixed, weight=weight, bias=None)
    ctx.emit(node, Reshape, [mixed], shape=(per_group, groups, *rest))


@onnx_op("ConstantOfShape", 9, 20, 21, constant_only=True)
def constant_of_shape(ctx: ImportContext, node: Node) -> None:
    dims = ctx.const_ints(node.required_input(0), "the shape")
    if any(d < 0 for d in dims):
        raise node.error(f"the shape {dims} has negative dimensions")
    value = node.attr_tensor("value", None)
    if value is not None and value.size != 1:
        raise node.error(f"attribute 'value' must hold one value, holds {value.size}")
    fill = value.reshape(-1)[0] if value is not None else np.float32(0)
    dtype = np.asarray(fill).dtype
    ctx.check_const_size(dims, dtype)
    ctx.set_const(node.outputs[0], np.full(tuple(dims), fill, dtype=dtype))
