"""BatchNormalization in inference mode (folded into the neighbouring conv or dense by fold-batchnorm)."""

from __future__ import annotations

import numpy as np

from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.registry import onnx_op
from neurodeploy.ir.ops import BatchNorm


@onnx_op("BatchNormalization", 9, 14, 15)
def batch_normalization(ctx: ImportContext, node: Node) -> None:
    if node.attr_int("training_mode", 0):
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': training_mode=1; export the model in eval mode")
    if len([o for o in node.outputs if o]) > 1:
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': running-statistics outputs are training-only")
    x = node.required_input(0)
    if not ctx.is_runtime(x):
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': input must be a runtime value")
    params = [node.required_input(i) for i in range(1, 5)]
    if not all(ctx.is_const(p) for p in params):
        raise UnsupportedVariant(f"BatchNormalization '{node.name}': scale, bias, mean and var must be constants")
    scale, shift, mean, var = (ctx.const(p) for p in params)
    epsilon = node.attr_float("epsilon", 1e-5)
    _check_variance(node, params[3], var, epsilon)
    ctx.emit(node, BatchNorm, [x], scale=scale, shift=shift, mean=mean, var=var, epsilon=epsilon)


def _check_variance(node: Node, name: str, var: np.ndarray, epsilon: float) -> None:
    """Refuse variances that make 1 / sqrt(var + epsilon) meaningless: negative ones, and var + epsilon <= 0
    in float32, the precision the IR computes in."""
    var32 = np.asarray(var, np.float32)
    negative = int(np.count_nonzero(var32 < 0))
    if negative:
        raise node.error(f"{negative:,} of {var32.size:,} variances in {name!r} are negative")
    flat = int(np.count_nonzero(var32 + np.float32(epsilon) <= 0))
    if flat:
        raise node.error(
            f"variance + epsilon is <= 0 for {flat:,} of {var32.size:,} channels (epsilon = {epsilon}); "
            "1 / sqrt(variance + epsilon) is undefined there"
        )
