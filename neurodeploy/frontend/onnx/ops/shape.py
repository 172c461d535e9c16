"""Flatten, Reshape, Squeeze and Unsqueeze with static shapes: all become one per-sample Reshape.

The batch dimension must pass through untouched; a reshape that would fold it into other axes is rejected.
On constants these ops are evaluated at import (constant folding).
"""

from __future__ import annotations

import math

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.frontend.onnx.tensors import MAX_RANK
from neurodeploy.ir.ops import Reshape


def _emit_reshape(ctx: ImportContext, node: Node, full_out: tuple[int, ...]) -> None:
    x = node.required_input(0)
    per_sample = tuple(int(d) for d in full_out[1:])
    if not full_out or full_out[0] != ctx.batch or math.prod(per_sample) != ctx.type_of(x).size:
        raise UnsupportedVariant(
            f"{node.op_type} '{node.name}': output shape {tuple(full_out)} from input "
            f"{ctx.full_shape(x)} does not keep the batch dimension first and separate"
        )
    if not per_sample:
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': reshapes each sample to a scalar")
    ctx.emit(node, Reshape, [x], shape=per_sample)


def _axes(ctx: ImportContext, node: Node, index: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or from input ``index`` (opset 13 on)."""
    if node.opset < 13:
        return node.attr_ints("axes", None)
    name = node.input(index)
    if name is None:
        return None
    if not ctx.is_const(name):
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': axes must be constant")
    return ctx.const_ints(name, "axes")


def _normalized(node: Node, axes: list[int], rank: int) -> list[int]:
    """``axes`` in [0, rank), each once; an error naming the node otherwise."""
    if any(not -rank <= a < rank for a in axes):
        raise node.error(f"axes {axes} are out of range for rank {rank}")
    out = [a + rank if a < 0 else a for a in axes]
    if len(set(out)) != len(out):
        raise node.error(f"axes {axes} repeat an axis")
    return out


@onnx_op("Flatten", 11, 13, 21)
def flatten(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    shape = ctx.full_shape(x)
    axis = node.attr_int("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        raise node.error(f"axis {axis} is out of range for a rank-{len(shape)} input")
    axis = axis + len(shape) if axis < 0 else axis
    out = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    if ctx.is_const(x):
        ctx.set_const(node.outputs[0], ctx.const(x).reshape(out))
        return
    _emit_reshape(ctx, node, out)


def reshape_target(in_shape: tuple[int, ...], target: list[int], allow_zero: bool, where: str) -> tuple[int, ...]:
    """ONNX Reshape's rules: 0 copies the input dimension (unless allowzero), -1 is inferred."""
    out = []
    for i, d in enumerate(target):
        if d == 0 and not allow_zero:
            if i >= len(in_shape):
                raise UnsupportedVariant(f"{where}: shape entry {i} is 0 but the input has rank {len(in_shape)}")
            d = in_shape[i]
        out.append(int(d))
    total = math.prod(in_shape)
    if out.count(-1) > 1:
        raise UnsupportedVariant(f"{where}: shape {target} has more than one -1")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known <= 0 or total % known:
            raise UnsupportedVariant(f"{where}: cannot reshape {in_shape} to {target}")
        out[out.index(-1)] = total // known
    if any(d <= 0 for d in out) or math.prod(out) != total:
        raise UnsupportedVariant(f"{where}: cannot reshape {in_shape} to {target}")
    return tuple(out)


@onnx_op("Reshape", 5, 13, 14, 19, 21)
def reshape(ctx: ImportContext, node: Node) -> None:
    x, shape_name = node.required_input(0), node.required_input(1)
    if not ctx.is_const(shape_name):
        raise UnsupportedVariant(
            f"Reshape '{node.name}': the target shape must be static (a constant or a foldable Shape subgraph)"
        )
    target = ctx.const_ints(shape_name, "the target shape")
    out = reshape_target(ctx.full_shape(x), target, bool(node.attr_int("allowzero", 0)), f"Reshape '{node.name}'")
    if ctx.is_const(x):
        ctx.set_const(node.outputs[0], ctx.const(x).reshape(out))
        return
    _emit_reshape(ctx, node, out)


@onnx_op("Squeeze", 11, 13, 21)
def squeeze(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    shape = ctx.full_shape(x)
    axes = _axes(ctx, node, 1)
    if axes is not None:
        axes = _normalized(node, axes, len(shape))
        if any(shape[a] != 1 for a in axes):
            raise node.error(f"axes {axes} of {shape} are not all of size 1")
    if ctx.is_const(x):
        ctx.set_const(node.outputs[0], np.squeeze(ctx.const(x), axis=None if axes is None else tuple(axes)))
        return
    if axes is None:  # every size-1 axis of the sample; the batch axis is never squeezed
        axes = [i for i, d in enumerate(shape) if d == 1 and i > 0]
    if 0 in axes:
        raise UnsupportedVariant(f"Squeeze '{node.name}': squeezes the batch axis")
    if any(shape[a] != 1 for a in axes):
        raise UnsupportedVariant(f"Squeeze '{node.name}': axes {axes} of {shape} are not all of size 1")
    _emit_reshape(ctx, node, tuple(d for i, d in enumerate(shape) if i not in axes))


@onnx_op("Unsqueeze", 11, 13, 21)
def unsqueeze(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    shape = ctx.full_shape(x)
    axes = _axes(ctx, node, 1)
    if axes is None:
        raise UnsupportedVariant(f"Unsqueeze '{node.name}': axes are missing")
    rank = len(shape) + len(axes)
    if rank > MAX_RANK:
        raise node.error(f"its output would have rank {rank:,} (at most {MAX_RANK})")
    axes = sorted(_normalized(node, axes, rank))
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    if ctx.is_const(x):
        ctx.set_const(node.outputs[0], ctx.const(x).reshape(out))
        return
    if 0 in axes:
        raise UnsupportedVariant(f"Unsqueeze '{node.name}': inserts an axis before the batch axis")
    _emit_reshape(ctx, node, tuple(out))
