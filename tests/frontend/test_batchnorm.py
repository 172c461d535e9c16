"""BatchNormalization (inference) at opsets 9, 14 and 15."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, const, import_model, make_model, one_node, op_types, randn, rng


def _params(c: int, seed: int = 1) -> list[tuple[str, np.ndarray]]:
    r = rng(seed)
    return [
        ("scale", r.uniform(0.5, 2.0, c).astype(np.float32)),
        ("bias", r.standard_normal(c).astype(np.float32)),
        ("mean", r.standard_normal(c).astype(np.float32)),
        ("var", r.uniform(0.01, 3.0, c).astype(np.float32)),
    ]


@pytest.mark.parametrize("opset", [9, 14, 15, 21])
@pytest.mark.parametrize("epsilon", [None, 1e-3, 0.1])
@pytest.mark.parametrize("x_shape", [(2, 4, 5, 6), (3, 4), (2, 4, 7)], ids=["NCHW", "NC", "NCL"])
def test_batchnorm(opset, epsilon, x_shape):
    attrs = {} if epsilon is None else {"epsilon": epsilon}
    graph, _ = check(one_node("BatchNormalization", x_shape, _params(x_shape[1]), opset=opset, **attrs))
    assert op_types(graph) == ["BatchNorm"]
    assert graph.ops[0].epsilon == pytest.approx(1e-5 if epsilon is None else epsilon)


def test_batchnorm_tiny_variance_uses_epsilon():
    params = _params(3)
    params[3] = ("var", np.zeros(3, np.float32))
    check(one_node("BatchNormalization", (2, 3, 4, 4), params, epsilon=1e-2), atol=1e-4)


@pytest.mark.parametrize("opset", [14, 15])
def test_batchnorm_training_mode_is_rejected(opset):
    node = helper.make_node(
        "BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y", "rm", "rv"], name="bn", training_mode=1
    )
    model = make_model([node], (2, 3, 4, 4), initializers=[const(n, v) for n, v in _params(3)], opset=opset)
    with pytest.raises(UnsupportedOpError, match=r"BatchNormalization 'bn': training_mode=1"):
        import_model(model)


def test_batchnorm_after_conv():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"], name="bn"),
    ]
    inits = [const("w", randn((4, 3, 3, 3), seed=3))] + [const(n, v) for n, v in _params(4)]
    graph, _ = check(make_model(nodes, (2, 3, 6, 6), initializers=inits, opset=15))
    assert op_types(graph) == ["Conv2d", "BatchNorm"]
