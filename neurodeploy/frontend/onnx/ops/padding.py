"""Attribute decoding shared by Conv and the pooling ops: kernel, strides, dilations and explicit pads."""

from __future__ import annotations

from typing import TypedDict

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant, display_name


class WindowAttrs(TypedDict):
    """The keyword arguments of a 2-D window op (``Conv2d``, ``AvgPool2d``, ``MaxPool2d``) that
    :func:`window_attrs` decodes."""

    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]


def window_attrs(node: Node, in_hw: tuple[int, int], kernel: tuple[int, int]) -> WindowAttrs:
    """Strides, dilations and (top, left, bottom, right) padding of a 2-D window op, with ``auto_pad`` resolved
    against the static input size."""
    strides = tuple(node.attr_ints("strides", [1, 1]))
    dilations = tuple(node.attr_ints("dilations", [1, 1]))
    if len(strides) != 2 or len(dilations) != 2:
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': strides {strides} / dilations {dilations} are not 2-D")
    if min(strides) < 1 or min(dilations) < 1:
        raise node.error(f"strides {strides} and dilations {dilations} must be at least 1")
    auto_pad = node.attr_str("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = tuple(node.attr_ints("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise UnsupportedVariant(f"{node.op_type} '{node.name}': pads {pads} are not 2-D")
        # ONNX orders pads as (x1_begin, x2_begin, x1_end, x2_end) = (top, left, bottom, right).
        padding = (pads[0], pads[1], pads[2], pads[3])
    elif auto_pad == "VALID":
        padding = (0, 0, 0, 0)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            # SAME_UPPER puts the odd cell at the end, SAME_LOWER at the beginning.
            begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
            begins.append(begin)
            ends.append(end)
        padding = (begins[0], begins[1], ends[0], ends[1])
    else:
        raise node.error(f"unknown auto_pad {display_name(auto_pad)!r}")
    return {"stride": strides, "dilation": dilations, "padding": padding}


def folded_pad(ctx: ImportContext, node: Node) -> tuple[str, tuple[int, int, int, int]]:
    """The value a 2-D window op reads and the zeros (top, left, bottom, right) a Pad before it adds: the Pad's
    input and pads where its input is a Pad that pads (``ImportContext.pending_pads``), else its input and
    none."""
    x = node.required_input(0)
    pending = ctx.pending_pads.get(x)
    return (x, (0, 0, 0, 0)) if pending is None else (pending[0], pending[1])


def with_pad(padding: tuple[int, int, int, int], extra: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    top, left, bottom, right = (a + b for a, b in zip(padding, extra))
    return top, left, bottom, right


def spatial_input(ctx: ImportContext, node: Node, what: str = "input") -> tuple[int, int, int]:
    """The (C, H, W) type of a 2-D op's runtime input (after a folded Pad's zeros), or an UnsupportedVariant
    naming the rank."""
    x, (top, left, bottom, right) = folded_pad(ctx, node)
    if not ctx.is_runtime(x):
        raise UnsupportedVariant(f"{node.op_type} '{node.name}': its {what} must come from the model input")
    shape = ctx.type_of(x).shape
    if len(shape) != 3:
        raise UnsupportedVariant(
            f"{node.op_type} '{node.name}' has {len(shape) - 1} spatial dimension(s); only 2-D "
            f"(N, C, H, W) is supported"
        )
    return shape[0], shape[1] + top + bottom, shape[2] + left + right
