"""Add (runtime + runtime, runtime + constant) and Concat."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, const, import_model, make_model, op_types, randn

C = 4


def _branch(name: str, src: str, out: str) -> list:
    """A 1x1 conv branch so that both Add/Concat inputs are computed values."""
    return [helper.make_node("Conv", [src, f"{name}_w"], [out], name=name)]


@pytest.mark.parametrize("opset", [11, 13, 14, 21])
def test_add_runtime_runtime(opset):
    nodes = [
        *_branch("conv", "x", "h"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Add", ["h", "r"], ["y"], name="add"),
    ]
    inits = [const("conv_w", randn((C, C, 1, 1), seed=1))]
    graph, _ = check(make_model(nodes, (2, C, 5, 5), initializers=inits, opset=opset))
    assert op_types(graph) == ["Conv2d", "Relu", "Add"]


def test_add_input_to_itself():
    nodes = [helper.make_node("Add", ["x", "x"], ["y"], name="double")]
    graph, _ = check(make_model(nodes, (2, C, 3)))
    assert op_types(graph) == ["Add"]


def test_add_runtime_broadcast_same_rank():
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap"),
        helper.make_node("Add", ["x", "g"], ["y"], name="add"),
    ]
    check(make_model(nodes, (2, C, 5, 6)))


@pytest.mark.parametrize(
    "shape",
    [(C, 1, 1), (1, C, 1, 1), (), (1,), (6,), (5, 6), (C, 5, 6), (1, C, 5, 6), (1, 1, 1, 6)],
    ids=str,
)
@pytest.mark.parametrize("constant_first", [False, True])
def test_add_runtime_constant(shape, constant_first):
    inputs = ["c", "x"] if constant_first else ["x", "c"]
    nodes = [helper.make_node("Add", inputs, ["y"], name="add")]
    model = make_model(nodes, (2, C, 5, 6), initializers=[const("c", randn(shape, seed=3))])
    graph, _ = check(model)
    assert op_types(graph) == ["Bias"]


def test_add_constant_varying_along_batch_is_rejected():
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    model = make_model(nodes, (2, C), initializers=[const("c", randn((2, C), seed=3))])
    with pytest.raises(UnsupportedOpError, match=r"Add 'add': constant of shape \(2, 4\) varies along the batch"):
        import_model(model)


def test_add_batch_sized_constant_with_equal_rows():
    """A constant with the (static) batch dimension whose rows agree is one per-sample Bias."""
    row = randn((1, C, 3), seed=4)
    nodes = [helper.make_node("Add", ["c", "x"], ["y"], name="add")]
    model = make_model(nodes, (3, C, 3), initializers=[const("c", np.repeat(row, 3, axis=0))])
    graph, _ = check(model)
    np.testing.assert_array_equal(graph.ops[0].value, row[0])


def test_add_constants_folds():
    nodes = [
        helper.make_node("Add", ["a", "b"], ["ab"], name="fold"),
        helper.make_node("Add", ["x", "ab"], ["y"], name="add"),
    ]
    inits = [const("a", randn((C, 1, 1), seed=1)), const("b", randn((1, 1), seed=2))]
    graph, _ = check(make_model(nodes, (2, C, 3, 3), initializers=inits))
    assert op_types(graph) == ["Bias"]


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("axis", [1, -3, 2, -1])
def test_concat_4d(opset, axis):
    nodes = [
        *_branch("conv_a", "x", "a"),
        helper.make_node("Relu", ["x"], ["b"], name="relu"),
        helper.make_node("Concat", ["a", "b", "x"], ["y"], name="concat", axis=axis),
    ]
    inits = [const("conv_a_w", randn((C, C, 1, 1), seed=1))]
    graph, expected = check(make_model(nodes, (2, C, 3, 5), initializers=inits, opset=opset))
    assert op_types(graph) == ["Conv2d", "Relu", "Concat"]
    assert expected.shape[axis] == 3 * (2, C, 3, 5)[axis]


@pytest.mark.parametrize("axis", [1, -1])
def test_concat_2d(axis):
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
        helper.make_node("Concat", ["x", "h"], ["y"], name="concat", axis=axis),
    ]
    _graph, expected = check(make_model(nodes, (3, 5), initializers=[const("w", randn((7, 5), seed=1))]))
    assert expected.shape == (3, 12)


def test_concat_batch_axis_is_rejected():
    nodes = [helper.make_node("Concat", ["x", "x"], ["y"], name="concat", axis=0)]
    with pytest.raises(UnsupportedOpError, match=r"concat.*batch axis"):
        import_model(make_model(nodes, (2, 5)))


def test_concat_runtime_and_constant_is_rejected():
    nodes = [helper.make_node("Concat", ["x", "c"], ["y"], name="concat", axis=1)]
    model = make_model(nodes, (1, 5), initializers=[const("c", np.ones((1, 2), np.float32))])
    with pytest.raises(UnsupportedOpError, match=r"concat.*mixes constant and runtime"):
        import_model(model)
