"""Identity, inference-mode Dropout, Pad and Constant: no IR op, only a name for an existing value (a Pad that
pads: a name its reader's padding resolves)."""

from __future__ import annotations

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op


@onnx_op("Identity", 1, 13, 14, 16, 19, 21)
def identity(ctx: ImportContext, node: Node) -> None:
    ctx.alias(node.outputs[0], node.required_input(0))


@onnx_op("Pad", 11, 13, 18, 19, 21)
def pad(ctx: ImportContext, node: Node) -> None:
    """A Pad whose pads are all zero (what older torch exports put before a pool) is the identity. One that adds
    zeros around the two spatial axes (mode constant, value 0, no pads on N or C, none negative) is folded into
    the Conv or AveragePool that reads it: its zeros become their padding (``ImportContext.pending_pads``); any
    other reader, and any other Pad, is refused by name."""
    pads_name = node.input(1)
    if pads_name and not ctx.is_const(pads_name):
        raise UnsupportedVariant(f"Pad '{node.name}': pads computed from the model input are not supported")
    pads = ctx.const_ints(pads_name, "pads") if pads_name else []
    if node.input(3):
        raise UnsupportedVariant(f"Pad '{node.name}': the axes input is not supported")
    x = node.required_input(0)
    if not any(pads):
        ctx.alias(node.outputs[0], x)
        return
    mode = node.attr_str("mode", "constant")
    value = node.input(2)
    zero = value is None or (ctx.is_const(value) and ctx.const(value).size == 1 and not ctx.const(value).any())
    rank = len(ctx.type_of(x).shape) + 1 if ctx.is_runtime(x) else 0
    if mode != "constant" or not zero or rank != 4 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise UnsupportedVariant(
            f"Pad '{node.name}': pads {pads} (mode {mode!r}); only zeros around the two spatial axes of an (N, C, "
            "H, W) activation are imported (folded into the Conv or AveragePool that reads them)"
        )
    if min(pads) < 0:
        raise UnsupportedVariant(f"Pad '{node.name}': pads {pads} crop (negative pads are not supported)")
    ctx.pending_pads[node.outputs[0]] = (ctx.resolve(x), (pads[2], pads[3], pads[6], pads[7]), node.name)


@onnx_op("Dropout", 10, 12, 13)
def dropout(ctx: ImportContext, node: Node) -> None:
    training = node.input(2)
    if training is not None and (
        not ctx.is_const(training) or ctx.const(training).size != 1 or bool(ctx.const(training).reshape(-1)[0])
    ):
        raise UnsupportedVariant(f"Dropout '{node.name}': training_mode must be a constant false")
    if len(node.outputs) > 1 and node.outputs[1] and ctx.is_read(node.outputs[1]):  # opset-9 exports name it
        raise UnsupportedVariant(f"Dropout '{node.name}': the mask output is read, which is not supported")
    ctx.alias(node.outputs[0], node.required_input(0))


_CONSTANT_KINDS = {
    "value": lambda node: node.attr_tensor("value"),
    "value_float": lambda node: np.array(node.attr_float("value_float"), np.float32),
    "value_floats": lambda node: np.array(node.attr_floats("value_floats"), np.float32),
    "value_int": lambda node: np.array(node.attr_int("value_int"), np.int64),
    "value_ints": lambda node: np.array(node.attr_ints("value_ints"), np.int64),
}


@onnx_op("Constant", 11, 12, 13, 19, 21)
def constant(ctx: ImportContext, node: Node) -> None:
    attrs = node.proto.attribute
    if len(attrs) != 1:
        raise node.error(f"has {len(attrs)} attributes; a Constant holds exactly one value attribute")
    key = attrs[0].name
    read = _CONSTANT_KINDS.get(key)
    if read is None:
        raise UnsupportedVariant(f"Constant '{node.name}': {key} constants are not supported")
    ctx.set_const(node.outputs[0], read(node))
