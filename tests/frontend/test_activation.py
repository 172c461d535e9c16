"""Relu, Clip (bounds as inputs since opset 11, as attributes at opset 6) and Softmax (only as the last op)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, const, import_model, make_model, one_node, op_types, randn


@pytest.mark.parametrize("opset", [11, 13, 14, 21])
@pytest.mark.parametrize("x_shape", [(3, 7), (2, 3, 4, 5)])
def test_relu(opset, x_shape):
    graph, expected = check(one_node("Relu", x_shape, opset=opset))
    assert op_types(graph) == ["Relu"]
    assert (expected == 0).any()
    assert (expected > 0).any()


@pytest.mark.parametrize("opset", [11, 12, 13, 21])
@pytest.mark.parametrize(("low", "high"), [(-0.5, 0.75), (0.0, None), (None, 0.25), (None, None), (0.0, 6.0)])
def test_clip_bounds_as_inputs(opset, low, high):
    consts = [None if low is None else ("min", np.array(low, np.float32))]
    consts.append(None if high is None else ("max", np.array(high, np.float32)))
    graph, _ = check(one_node("Clip", (3, 4, 5), consts, opset=opset))
    (op,) = graph.ops
    assert (op.low, op.high) == (low, high)


@pytest.mark.parametrize(("low", "high"), [(-0.5, 0.75), (0.0, None), (None, 0.25), (None, None)])
def test_clip_bounds_as_attributes_opset6(low, high):
    attrs = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    graph, _ = check(one_node("Clip", (3, 4, 5), opset=6, **attrs))
    (op,) = graph.ops
    assert (op.low, op.high) == (low, high)


def test_clip_bound_from_constant_node():
    nodes = [
        helper.make_node("Constant", [], ["lo"], value_float=-0.25),
        helper.make_node("Clip", ["x", "lo", ""], ["y"], name="clip"),
    ]
    check(make_model(nodes, (2, 6), opset=13))


def test_clip_min_above_max_is_rejected_by_name():
    """ONNX defines Clip with min > max as the constant max (independent of the input); the IR refuses it
    explicitly instead of computing something else."""
    model = one_node("Clip", (2, 4), [("min", np.array(1.0, np.float32)), ("max", np.array(-1.0, np.float32))])
    with pytest.raises(UnsupportedOpError, match=r"Clip 'clip_node': low 1.0 > high -1.0"):
        import_model(model)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(
    ("x_shape", "axis"),
    [
        ((3, 10), None),
        ((3, 10), 1),
        ((3, 10), -1),
        ((2, 3, 4, 5), None),
        ((2, 3, 4, 5), 1),
        ((2, 3, 4, 5), 2),
        ((2, 3, 4, 5), 3),
        ((2, 3, 4, 5), -1),
        ((2, 3, 4, 5), -3),
    ],
)
def test_softmax_last(opset, x_shape, axis):
    attrs = {} if axis is None else {"axis": axis}
    graph, expected = check(one_node("Softmax", x_shape, opset=opset, **attrs))
    assert op_types(graph) == ["Softmax"]
    assert np.all(expected > 0)


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_after_dense(opset):
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
        helper.make_node("Softmax", ["h"], ["y"], name="softmax"),
    ]
    check(make_model(nodes, (3, 6), initializers=[const("w", randn((4, 6), seed=1))], opset=opset))


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_over_batch_axis_is_rejected(opset):
    with pytest.raises(UnsupportedOpError, match=r"softmax_node.*batch"):
        import_model(one_node("Softmax", (3, 10), opset=opset, axis=0))


def test_softmax_not_last_is_rejected():
    nodes = [
        helper.make_node("Softmax", ["x"], ["s"], name="inner_softmax", axis=1),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    with pytest.raises(UnsupportedOpError, match=r"Softmax node 'inner_softmax': only supported as the last op"):
        import_model(make_model(nodes, (2, 5)))


def test_relu_on_constant_folds():
    nodes = [
        helper.make_node("Relu", ["c"], ["r"], name="relu_c"),
        helper.make_node("Add", ["x", "r"], ["y"], name="add"),
    ]
    graph, _ = check(make_model(nodes, (2, 5), initializers=[const("c", randn((5,), seed=4))]))
    assert op_types(graph) == ["Bias"]
