"""BatchNormalization in inference mode (folded into the neighbouring conv or dense by fold-batchnorm)."""

from __future__ import annotations

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import BatchNorm


@onnx_op("BatchNormalization", 9, 14, 15)
def batch_normalization(ctx: ImportContext, node: Node) -> None:
    if node.attr("training_mode", 0):
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': training_mode=1; export the model in eval mode")
    if len([o for o in node.outputs if o]) > 1:
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': running-statistics outputs are training-only")
    x = node.input(0)
    if not ctx.is_runtime(x):
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': input must be a runtime value")
    params = [node.input(i) for i in range(1, 5)]
    if not all(ctx.is_const(p) for p in params):
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': scale, bias, mean and var must be constants")
    scale, shift, mean, var = (ctx.const(p) for p in params)
    ctx.emit(
        node, BatchNorm, [x], scale=scale, shift=shift, mean=mean, var=var, epsilon=float(node.attr("epsilon", 1e-5))
    )
