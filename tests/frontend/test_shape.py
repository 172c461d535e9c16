"""Flatten, Reshape (constant target and the Shape->Gather->Unsqueeze->Concat subgraph exporters write),
Squeeze and Unsqueeze (axes attribute at opset 11, axes input from 13)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, const, import_model, make_model, one_node, op_types


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize(("axis", "per_sample"), [(None, (60,)), (1, (60,)), (-3, (60,))])
def test_flatten(opset, axis, per_sample):
    attrs = {} if axis is None else {"axis": axis}
    graph, expected = check(one_node("Flatten", (2, 3, 4, 5), opset=opset, **attrs))
    assert expected.shape == (2, 60)
    assert op_types(graph) == ["Reshape"]
    assert graph.ops[0].shape == per_sample


@pytest.mark.parametrize("axis", [0, 2, -1])
def test_flatten_mixing_batch_is_rejected(axis):
    with pytest.raises(UnsupportedOpError, match=r"flatten_node.*batch dimension"):
        import_model(one_node("Flatten", (2, 3, 4, 5), axis=axis))


@pytest.mark.parametrize("opset", [11, 13, 14, 19, 21])
@pytest.mark.parametrize(
    "target",
    [[2, 60], [0, -1], [-1, 60], [0, 3, 20], [0, 0, -1], [0, 12, 5], [2, 5, 4, 3], [0, -1, 1, 1]],
    ids=str,
)
def test_reshape_constant_target(opset, target):
    check(one_node("Reshape", (2, 3, 4, 5), [("shape", np.array(target, np.int64))], opset=opset))


def test_reshape_allowzero_zero_copies_nothing_rejected():
    # allowzero=1 with a 0 entry means a real 0-sized dimension: not a per-sample reshape.
    model = one_node("Reshape", (2, 3, 4), [("shape", np.array([2, 0, 12], np.int64))], opset=14, allowzero=1)
    with pytest.raises(UnsupportedOpError, match=r"reshape_node"):
        import_model(model)


def _exporter_reshape_nodes(opset: int) -> list:
    """x.view(x.size(0), -1) as torch's legacy exporter writes it."""
    if opset >= 13:
        unsqueeze = helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"], name="unsq")
    else:
        unsqueeze = helper.make_node("Unsqueeze", ["n"], ["n1"], name="unsq", axes=[0])
    return [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Constant", [], ["idx"], value=helper.make_tensor("idx", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", ["s", "idx"], ["n"], name="gather", axis=0),
        unsqueeze,
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]


@pytest.mark.parametrize("opset", [11, 13, 17, 21])
@pytest.mark.parametrize("batch", [2, "N"], ids=["static-batch", "dynamic-batch"])
def test_reshape_from_shape_subgraph(opset, batch):
    inits = [const("minus_one", np.array([-1], np.int64))]
    if opset >= 13:
        inits.append(const("zero_axes", np.array([0], np.int64)))
    model = make_model(_exporter_reshape_nodes(opset), (batch, 3, 4, 5), initializers=inits, opset=opset)
    x = np.random.default_rng(1).standard_normal((3, 3, 4, 5)).astype(np.float32)
    graph, expected = check(model, x if batch == "N" else x[:2])
    assert op_types(graph) == ["Reshape"]
    assert graph.ops[0].shape == (60,)
    assert expected.shape[1:] == (60,)


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("axes", [None, [2], [-1], [2, 4], [-3, 4]], ids=str)
def test_squeeze(opset, axes):
    x_shape = (2, 3, 1, 4, 1)
    if axes is None:
        model = one_node("Squeeze", x_shape, opset=opset)
    elif opset < 13:
        model = one_node("Squeeze", x_shape, opset=opset, axes=axes)
    else:
        model = one_node("Squeeze", x_shape, [("axes", np.array(axes, np.int64))], opset=opset)
    graph, _ = check(model)
    assert op_types(graph) == ["Reshape"]


def test_squeeze_batch_axis_is_rejected():
    model = one_node("Squeeze", (1, 3, 4), [("axes", np.array([0], np.int64))], opset=13)
    with pytest.raises(UnsupportedOpError, match=r"squeeze_node.*batch axis"):
        import_model(model)


@pytest.mark.parametrize("opset", [11, 13, 21])
@pytest.mark.parametrize("axes", [[1], [2], [-1], [1, 4], [-1, 1], [3, 2]], ids=str)
def test_unsqueeze(opset, axes):
    if opset < 13:
        model = one_node("Unsqueeze", (2, 3, 4), opset=opset, axes=axes)
    else:
        model = one_node("Unsqueeze", (2, 3, 4), [("axes", np.array(axes, np.int64))], opset=opset)
    graph, _ = check(model)
    assert op_types(graph) == ["Reshape"]


def test_unsqueeze_before_batch_is_rejected():
    model = one_node("Unsqueeze", (2, 3), [("axes", np.array([0], np.int64))], opset=13)
    with pytest.raises(UnsupportedOpError, match=r"unsqueeze_node.*before the batch axis"):
        import_model(model)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze_roundtrip_after_global_pool(opset):
    """GlobalAveragePool -> Squeeze(2, 3) -> Unsqueeze(2): (N, C, 1, 1) -> (N, C) -> (N, C, 1)."""
    if opset < 13:
        nodes = [
            helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap"),
            helper.make_node("Squeeze", ["g"], ["s"], name="sq", axes=[2, 3]),
            helper.make_node("Unsqueeze", ["s"], ["y"], name="unsq", axes=[2]),
        ]
        inits = []
    else:
        nodes = [
            helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap"),
            helper.make_node("Squeeze", ["g", "sq_axes"], ["s"], name="sq"),
            helper.make_node("Unsqueeze", ["s", "unsq_axes"], ["y"], name="unsq"),
        ]
        inits = [const("sq_axes", np.array([2, 3], np.int64)), const("unsq_axes", np.array([2], np.int64))]
    graph, expected = check(make_model(nodes, (2, 4, 3, 3), initializers=inits, opset=opset))
    assert expected.shape == (2, 4, 1)
    assert op_types(graph) == ["GlobalAvgPool", "Reshape", "Reshape"]
