"""AveragePool, MaxPool and GlobalAveragePool."""

from __future__ import annotations

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.ops.padding import spatial_input, window_attrs
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import AvgPool2d, GlobalAvgPool, MaxPool2d


def _kernel(node: Node) -> tuple[int, int]:
    kernel = tuple(int(k) for k in node.attr("kernel_shape", []))
    if len(kernel) != 2:
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': kernel_shape {kernel} is not 2-D")
    return kernel


@onnx_op("AveragePool", 11, 19)
def average_pool(ctx: ImportContext, node: Node) -> None:
    _, h, w = spatial_input(ctx, node)
    kernel = _kernel(node)
    ctx.emit(
        node,
        AvgPool2d,
        [node.input(0)],
        kernel=kernel,
        ceil_mode=bool(node.attr("ceil_mode", 0)),
        count_include_pad=bool(node.attr("count_include_pad", 0)),
        **window_attrs(node, (h, w), kernel),
    )


@onnx_op("MaxPool", 11, 12)
def max_pool(ctx: ImportContext, node: Node) -> None:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedVariant(f"MaxPool '{node.name}': the Indices output is not supported")
    _, h, w = spatial_input(ctx, node)
    kernel = _kernel(node)
    ctx.emit(
        node,
        MaxPool2d,
        [node.input(0)],
        kernel=kernel,
        ceil_mode=bool(node.attr("ceil_mode", 0)),
        **window_attrs(node, (h, w), kernel),
    )


@onnx_op("GlobalAveragePool", 1)
def global_average_pool(ctx: ImportContext, node: Node) -> None:
    x = node.input(0)
    if not ctx.is_runtime(x) or ctx.type_of(x).rank < 2:
        raise UnsupportedVariant(f"GlobalAveragePool '{node.name}': needs a runtime (N, C, spatial...) input")
    ctx.emit(node, GlobalAvgPool, [x])
