"""Mul, Div, Sub and Floor with a runtime operand: Scale, Bias and Floor ops, checked against onnxruntime (the
all-constant forms are covered by test_constant_folding)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, const, import_model, make_model, one_node, op_types, randn

X_SHAPE = (2, 3, 4, 5)
# Constants of every broadcastable per-sample shape, and one with the batch dimension (size 1).
CONSTANT_SHAPES = [(), (1,), (5,), (3, 1, 1), (3, 4, 5), (1, 3, 1, 1)]


def _constant(shape, seed: int = 3) -> np.ndarray:
    """Values away from 0 (a divisor) with both signs."""
    magnitude = np.abs(randn(shape, seed=seed)) + 0.5
    sign = np.where(randn(shape, seed=seed + 1) < 0, -1, 1)
    return (magnitude * sign).astype(np.float32)


def _const_first(op_type: str, value: np.ndarray, opset: int = 17):
    node = helper.make_node(op_type, ["c", "x"], ["y"], name=f"{op_type.lower()}_node")
    return make_model([node], X_SHAPE, initializers=[const("c", value)], opset=opset)


@pytest.mark.parametrize("opset", [11, 13, 14, 21])
@pytest.mark.parametrize("shape", CONSTANT_SHAPES, ids=str)
def test_mul_by_constant_is_a_scale(opset, shape):
    value = _constant(shape)
    graph, _ = check(one_node("Mul", X_SHAPE, [("c", value)], opset=opset), atol=0)
    assert op_types(graph) == ["Scale"]
    np.testing.assert_array_equal(np.broadcast_to(graph.ops[0].value, X_SHAPE[1:]), np.broadcast_to(value, X_SHAPE)[0])


@pytest.mark.parametrize("shape", [(), (3, 1, 1)], ids=str)
def test_constant_times_runtime_is_a_scale(shape):
    graph, _ = check(_const_first("Mul", _constant(shape)), atol=0)
    assert op_types(graph) == ["Scale"]


@pytest.mark.parametrize("opset", [11, 13, 14, 21])
@pytest.mark.parametrize("shape", CONSTANT_SHAPES, ids=str)
def test_div_by_constant_is_a_scale_by_the_reciprocal(opset, shape):
    value = _constant(shape)
    # x * (1/c) may differ from x / c in the last bit: a relative bound of a few float32 ulps.
    graph, _ = check(one_node("Div", X_SHAPE, [("c", value)], opset=opset), atol=0, rtol=3e-7)
    assert op_types(graph) == ["Scale"]
    np.testing.assert_allclose(graph.ops[0].value * np.broadcast_to(value, X_SHAPE)[0], 1.0, rtol=1e-7)


@pytest.mark.parametrize("opset", [11, 13, 14, 21])
@pytest.mark.parametrize("shape", CONSTANT_SHAPES, ids=str)
def test_sub_constant_is_a_bias(opset, shape):
    value = _constant(shape)
    graph, _ = check(one_node("Sub", X_SHAPE, [("c", value)], opset=opset), atol=0)
    assert op_types(graph) == ["Bias"]
    np.testing.assert_array_equal(np.broadcast_to(graph.ops[0].value, X_SHAPE[1:]), -np.broadcast_to(value, X_SHAPE)[0])


@pytest.mark.parametrize("shape", [(), (3, 1, 1), (3, 4, 5)], ids=str)
def test_constant_minus_runtime_is_negate_then_bias(shape):
    graph, _ = check(_const_first("Sub", _constant(shape)), atol=0)
    assert op_types(graph) == ["Scale", "Bias"]
    assert float(graph.ops[0].value) == -1.0


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_floor(opset):
    # Integers, halves, negative values and values just below an integer: floor is exact, so equality is exact.
    x = randn(X_SHAPE, seed=5, scale=3)
    x.reshape(-1)[:8] = [-2.0, -1.5, -0.0, 0.0, 0.5, 1.0, np.nextafter(np.float32(2), np.float32(0)), 3.0]
    graph, expected = check(one_node("Floor", X_SHAPE, opset=opset), x, atol=0)
    assert op_types(graph) == ["Floor"]
    assert expected.reshape(-1)[:8].tolist() == [-2.0, -2.0, 0.0, 0.0, 0.0, 1.0, 1.0, 3.0]


def test_floor_of_constant_folds():
    nodes = [
        helper.make_node("Floor", ["c"], ["f"], name="floor_c"),
        helper.make_node("Add", ["x", "f"], ["y"], name="add"),
    ]
    graph, _ = check(make_model(nodes, (2, 5), initializers=[const("c", randn((5,), seed=4, scale=3))]), atol=0)
    assert op_types(graph) == ["Bias"]
    assert np.all(graph.ops[0].value == np.floor(graph.ops[0].value))


def test_qcfs_arithmetic_chain_imports():
    """The ops a QCFS activation exports to (x / λ, * L, + 0.5, floor, / L, clip(0, 1), * λ), one per node."""
    nodes = [
        helper.make_node("Div", ["x", "lam"], ["a"], name="div_lam"),
        helper.make_node("Mul", ["a", "levels"], ["b"], name="mul_levels"),
        helper.make_node("Add", ["b", "half"], ["c"], name="add_half"),
        helper.make_node("Floor", ["c"], ["d"], name="floor"),
        helper.make_node("Div", ["d", "levels"], ["e"], name="div_levels"),
        helper.make_node("Clip", ["e", "zero", "one"], ["f"], name="clip"),
        helper.make_node("Mul", ["f", "lam"], ["y"], name="mul_lam"),
    ]
    inits = [
        const("lam", np.array([2.0], np.float32)),  # a power of two: x / λ and x * (1 / λ) are equal
        const("levels", np.float32(4.0)),
        const("half", np.float32(0.5)),
        const("zero", np.float32(0.0)),
        const("one", np.float32(1.0)),
    ]
    x = randn((64, 6), seed=7, scale=2)
    graph, expected = check(make_model(nodes, (64, 6), initializers=inits), x, atol=0)
    assert op_types(graph) == ["Scale", "Scale", "Bias", "Floor", "Scale", "Clip", "Scale"]
    assert set(np.unique(expected)) <= {0.0, 0.5, 1.0, 1.5, 2.0}
    assert len(np.unique(expected)) == 5


@pytest.mark.parametrize("op_type", ["Mul", "Sub", "Div"])
def test_two_runtime_operands_are_rejected(op_type):
    nodes = [helper.make_node(op_type, ["x", "x"], ["y"], name="binary")]
    with pytest.raises(UnsupportedOpError, match=rf"{op_type} 'binary': both operands are computed"):
        import_model(make_model(nodes, (2, 4)))


def test_constant_divided_by_runtime_is_rejected():
    with pytest.raises(UnsupportedOpError, match=r"Div 'div_node': a constant divided by a runtime value"):
        import_model(_const_first("Div", _constant(())))


def test_division_by_a_zero_constant_is_rejected():
    model = one_node("Div", (2, 3), [("c", np.array([1.0, 0.0, 2.0], np.float32))])
    with pytest.raises(UnsupportedOpError, match=r"Div 'div_node': divides by a constant that contains 0"):
        import_model(model)


def test_constant_varying_along_the_batch_is_rejected():
    model = one_node("Mul", (2, 3), [("c", np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32))])
    with pytest.raises(UnsupportedOpError, match=r"Mul 'mul_node': constant of shape \(2, 3\) varies along the batch"):
        import_model(model)
