"""Add (of runtime values, or of a runtime value and a constant), Sum (a chain of Adds), Concat, and Split along
the channels (its inverse)."""

from __future__ import annotations

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import Add, Bias, Concat, Conv2d, Dense


@onnx_op("Add", 7, 13, 14)
def add(ctx: ImportContext, node: Node) -> None:
    _add(ctx, node, node.required_input(0), node.required_input(1), node.outputs[0])


@onnx_op("Sum", 8, 13)
def sum_(ctx: ImportContext, node: Node) -> None:
    """Sum of any number of inputs (the residual join of older exports): a chain of Adds, constants folded first
    into one (what a chain of Add nodes would import as)."""
    names = [n for n in node.inputs if n]
    if not names:
        raise node.error("has no inputs")
    runtime = [n for n in names if ctx.is_runtime(n)]
    consts = [n for n in names if not ctx.is_runtime(n)]
    terms = runtime + consts[:1]
    if len(consts) > 1:  # the constants folded into one, added last
        folded = ctx.fresh_name(f"{node.outputs[0]}/constants")
        values = [ctx.const(n) for n in consts]
        ctx.check_const_size(np.broadcast_shapes(*(v.shape for v in values)), np.result_type(*values))
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are refused by set_const
            ctx.set_const(folded, np.sum(np.broadcast_arrays(*values), axis=0))
        terms = [*runtime, folded]
    if len(terms) == 1:
        ctx.alias(node.outputs[0], terms[0])
        return
    total = terms[0]
    for k, term in enumerate(terms[1:], start=1):
        out = node.outputs[0] if k == len(terms) - 1 else ctx.fresh_name(f"{node.outputs[0]}/partial{k}")
        _add(ctx, node, total, term, out)
        total = out


def _add(ctx: ImportContext, node: Node, a: str, b: str, output: str) -> None:
    """``output`` = a + b: folded when both are constant, an Add of two runtime values, or a Bias."""
    if ctx.is_const(a) and ctx.is_const(b):
        av, bv = ctx.const(a), ctx.const(b)
        ctx.check_const_size(np.broadcast_shapes(av.shape, bv.shape), np.result_type(av, bv))
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are refused by set_const
            ctx.set_const(output, av + bv)
        return
    if ctx.is_runtime(a) and ctx.is_runtime(b):
        if ctx.type_of(a).rank != ctx.type_of(b).rank:
            raise UnsupportedVariant(
                f"Add '{node.name}': runtime inputs {ctx.full_shape(a)} and {ctx.full_shape(b)} differ in rank"
            )
        ctx.emit(node, Add, [a, b], output=output)
        return
    x, c = (a, b) if ctx.is_runtime(a) else (b, a)
    value = ctx.const(c)
    rank = ctx.type_of(x).rank
    if value.ndim == rank + 1:
        # A batch-sized constant (exporters fold e.g. ones_like(x) at a static batch) is fine if every row agrees.
        if value.shape[0] != 1 and not (value == value[:1]).all():
            raise UnsupportedVariant(f"Add '{node.name}': constant of shape {value.shape} varies along the batch")
        value = value[0]
    elif value.ndim > rank + 1:
        raise UnsupportedVariant(f"Add '{node.name}': constant of shape {value.shape} has a higher rank than the input")
    ctx.emit(node, Bias, [x], output=output, value=np.asarray(value, np.float32))


@onnx_op("Concat", 11, 13)
def concat(ctx: ImportContext, node: Node) -> None:
    names = [n for n in node.inputs if n]
    axis = node.attr_int("axis")
    if not names:
        raise node.error("has no inputs")
    if all(ctx.is_const(n) for n in names):
        values = [ctx.const(n) for n in names]
        rank = values[0].ndim
        if not -rank <= axis < rank:
            raise node.error(f"axis {axis} is out of range for rank-{rank} inputs")
        axis = axis + rank if axis < 0 else axis
        shapes = [v.shape for v in values]
        if any(len(s) != rank or s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :] for s in shapes):
            raise node.error(f"inputs of shapes {shapes} differ outside axis {axis}")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        ctx.check_const_size(out, np.result_type(*values))
        ctx.set_const(node.outputs[0], np.concatenate(values, axis=axis))
        return
    if not all(ctx.is_runtime(n) for n in names):
        raise UnsupportedVariant(f"Concat '{node.name}': mixes constant and runtime inputs")
    rank = ctx.type_of(names[0]).rank + 1
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise UnsupportedVariant(f"Concat '{node.name}': concatenates along the batch axis")
    ctx.emit(node, Concat, names, axis=axis - 1)


@onnx_op("Split", 11, 13, 18)
def split(ctx: ImportContext, node: Node) -> None:
    """A Split of a computed tensor along its channels (axis 1 of (N, C, H, W) or (N, C)): each part is a 1x1
    Conv2d (or a Dense) whose weights select its channels, exactly (every output channel is one input channel
    times 1). ShuffleNet v2 splits its channels this way. Other axes are refused."""
    x = node.required_input(0)
    if not ctx.is_runtime(x):
        raise UnsupportedVariant(f"Split '{node.name}': a Split of constants is not supported")
    shape = ctx.full_shape(x)
    axis = node.attr_int("axis", 0)
    axis = axis + len(shape) if axis < 0 else axis
    if axis != 1 or len(shape) not in (2, 4):
        raise UnsupportedVariant(
            f"Split '{node.name}': axis {axis} of a {shape} tensor; only a split of the channels (axis 1 of an (N, C) "
            "or (N, C, H, W) tensor) is imported"
        )
    channels = shape[1]
    outputs = node.outputs
    if node.input(1):
        sizes = ctx.const_ints(node.required_input(1), "split") if ctx.is_const(node.required_input(1)) else None
        if sizes is None:
            raise UnsupportedVariant(f"Split '{node.name}': split sizes computed from the model input")
    elif node.has_attr("split"):
        sizes = node.attr_ints("split")
    else:  # equal parts (the last one smaller at opset 18)
        part = -(-channels // len(outputs))
        sizes = [min(part, channels - k * part) for k in range(len(outputs))]
    if len(sizes) != len(outputs) or sum(sizes) != channels or min(sizes) < 1:
        raise node.error(f"split {sizes} does not divide the {channels} channels into {len(outputs)} parts")
    start = 0
    for size, out in zip(sizes, outputs):
        weight = np.zeros((size, channels), np.float32)
        weight[np.arange(size), start + np.arange(size)] = 1.0
        if len(shape) == 4:
            ctx.emit(node, Conv2d, [x], output=out, weight=weight[:, :, None, None], bias=None)
        else:
            ctx.emit(node, Dense, [x], output=out, weight=weight, bias=None)
        start += size
