"""AveragePool, MaxPool, GlobalAveragePool, and ReduceMean over the spatial axes."""

from __future__ import annotations

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.ops.padding import folded_pad, spatial_input, window_attrs, with_pad
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import AvgPool2d, GlobalAvgPool, MaxPool2d, Reshape


def _kernel(node: Node) -> tuple[int, int]:
    kernel = tuple(node.attr_ints("kernel_shape"))
    if len(kernel) != 2:
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': kernel_shape {kernel} is not 2-D")
    return kernel


@onnx_op("AveragePool", 11, 19)
def average_pool(ctx: ImportContext, node: Node) -> None:
    _, h, w = spatial_input(ctx, node)
    kernel = _kernel(node)
    x, extra = folded_pad(ctx, node)
    attrs = window_attrs(node, (h, w), kernel)
    ceil_mode, counts_padding = bool(node.attr_int("ceil_mode", 0)), bool(node.attr_int("count_include_pad", 0))
    if any(extra):  # a Pad's zeros are inputs the average always counts
        if ceil_mode or (any(attrs["padding"]) and not counts_padding):
            raise UnsupportedVariant(
                f"AveragePool '{node.name}' reads Pad '{ctx.pending_pads[node.required_input(0)][2]}': its zeros "
                "fold into the pool's padding only without ceil_mode and where the pool counts its own padding "
                "(count_include_pad=1) or has none"
            )
        attrs["padding"], counts_padding = with_pad(attrs["padding"], extra), True
    ctx.emit(node, AvgPool2d, [x], kernel=kernel, ceil_mode=ceil_mode, count_include_pad=counts_padding, **attrs)


@onnx_op("MaxPool", 11, 12)
def max_pool(ctx: ImportContext, node: Node) -> None:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedVariant(f"MaxPool '{node.name}': the Indices output is not supported")
    if node.required_input(0) in ctx.pending_pads:  # MaxPool's own padding is -inf, not zeros
        raise UnsupportedVariant(
            f"MaxPool '{node.name}' reads Pad '{ctx.pending_pads[node.required_input(0)][2]}', whose zeros are not "
            "the pool's own padding (-inf): export the padding as the MaxPool's pads"
        )
    _, h, w = spatial_input(ctx, node)
    kernel = _kernel(node)
    ctx.emit(
        node,
        MaxPool2d,
        [node.required_input(0)],
        kernel=kernel,
        ceil_mode=bool(node.attr_int("ceil_mode", 0)),
        **window_attrs(node, (h, w), kernel),
    )


@onnx_op("GlobalAveragePool", 1)
def global_average_pool(ctx: ImportContext, node: Node) -> None:
    x = node.required_input(0)
    if not ctx.is_runtime(x) or ctx.type_of(x).rank < 2:
        raise UnsupportedVariant(f"GlobalAveragePool '{node.name}': needs a runtime (N, C, spatial...) input")
    ctx.emit(node, GlobalAvgPool, [x])


@onnx_op("ReduceMean", 11, 13, 18)
def reduce_mean(ctx: ImportContext, node: Node) -> None:
    """The mean over the spatial axes is a global average pool (the dynamo exporter writes
    ``adaptive_avg_pool2d(x, 1)`` this way); other reductions are not supported."""
    x = node.required_input(0)
    if node.opset >= 18:
        axes_name = node.input(1)
        if axes_name is not None and not ctx.is_const(axes_name):
            raise UnsupportedVariant(f"ReduceMean '{node.name}': axes must be constant")
        axes = None if axes_name is None else ctx.const_ints(axes_name, "axes")
        if not axes and node.attr_int("noop_with_empty_axes", 0):
            ctx.alias(node.outputs[0], x)
            return
    else:
        axes = node.attr_ints("axes", None)
    if axes is not None and not axes:
        axes = None  # an empty list reduces every axis, as an absent one does
    keepdims = bool(node.attr_int("keepdims", 1))
    rank = len(ctx.full_shape(x))
    if axes is not None:
        if any(not -rank <= a < rank for a in axes):
            raise node.error(f"axes {axes} are out of range for a rank-{rank} input")
        axes = sorted({a + rank if a < 0 else a for a in axes})
    if ctx.is_const(x):
        data = ctx.const(x)
        ctx.set_const(node.outputs[0], data.mean(axis=None if axes is None else tuple(axes), keepdims=keepdims))
        return
    axes = axes if axes is not None else list(range(rank))
    if rank < 3 or axes != list(range(2, rank)):
        raise UnsupportedVariant(
            f"ReduceMean '{node.name}': only the mean over every spatial axis (a global average pool) is supported, "
            f"not axes {axes} of a rank-{rank} input"
        )
    if keepdims:
        ctx.emit(node, GlobalAvgPool, [x])
        return
    pooled = f"{node.outputs[0]}__pooled"
    pool = ctx.emit(node, GlobalAvgPool, [x], output=pooled)
    ctx.emit(node, Reshape, [pool.output], shape=(ctx.type_of(x).shape[0],))
