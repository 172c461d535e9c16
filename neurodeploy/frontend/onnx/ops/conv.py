"""Conv: 2-D convolution with groups (depthwise included), strides, dilations, explicit pads and auto_pad (and the
zeros of a Pad before it)."""

from __future__ import annotations

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.ops.padding import folded_pad, spatial_input, window_attrs, with_pad
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import Conv2d


@onnx_op("Conv", 1, 11)
def conv(ctx: ImportContext, node: Node) -> None:
    _, h, w = spatial_input(ctx, node)
    weight_name, bias_name = node.required_input(1), node.input(2)
    if not ctx.is_const(weight_name) or (bias_name is not None and not ctx.is_const(bias_name)):
        raise UnsupportedVariant(f"Conv '{node.name}': weights and bias must be constants (initializers)")
    weight = ctx.const(weight_name)
    if weight.ndim != 4:
        raise UnsupportedVariant(f"Conv '{node.name}': weight has rank {weight.ndim}; expected 4")
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    declared = node.attr_ints("kernel_shape", None)
    if declared is not None and tuple(declared) != kernel:
        raise UnsupportedVariant(f"Conv '{node.name}': kernel_shape {tuple(declared)} disagrees with weight {kernel}")
    attrs = window_attrs(node, (h, w), kernel)
    x, extra = folded_pad(ctx, node)  # a Pad's zeros before it: more of its own zero padding
    attrs["padding"] = with_pad(attrs["padding"], extra)
    bias = ctx.const(bias_name) if bias_name is not None else None
    ctx.emit(node, Conv2d, [x], weight=weight, bias=bias, groups=node.attr_int("group", 1), **attrs)
