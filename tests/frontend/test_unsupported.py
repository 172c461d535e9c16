"""An unsupported model gets ONE UnsupportedOpError that lists every offending node."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import const, import_model, make_model, randn


def _error(model) -> str:
    with pytest.raises(UnsupportedOpError) as info:
        import_model(model)
    return str(info.value)


def test_every_offending_node_is_listed_once():
    nodes = [
        helper.make_node("Sin", ["x"], ["s"], name="my_sin"),
        helper.make_node("Relu", ["s"], ["r"], name="relu_after_sin"),  # reads a poisoned value: not reported
        helper.make_node("Tanh", ["x"], ["t"], name="my_tanh"),
        helper.make_node("Gemm", ["t", "w"], ["g"], name="my_gemm", transA=1),
        helper.make_node("Gemm", ["x", "w2"], ["g2"], name="gemm_transposed", transA=1),
        helper.make_node("Add", ["r", "g2"], ["y"], name="add"),
    ]
    inits = [const("w", randn((6, 6), seed=1)), const("w2", randn((6, 6), seed=2))]
    message = _error(make_model(nodes, (6, 6), initializers=inits, opset=17))
    assert "3 op(s)" in message
    assert "Sin node 'my_sin': not supported (Sin-7 at opset 17)" in message
    assert "Tanh node 'my_tanh': not supported (Tanh-13 at opset 17)" in message
    assert "Gemm 'gemm_transposed'" in message
    assert "transA" in message
    assert "my_gemm" not in message  # its input is already unsupported
    assert "relu_after_sin" not in message
    assert "Supported: " in message
    assert "Conv" in message
    assert "Folded when all inputs are constant: " in message
    assert message.startswith("test (opset 17) uses")


def test_softmax_not_last_is_listed_with_the_other_problems():
    nodes = [
        helper.make_node("Softmax", ["x"], ["s"], name="early_softmax", axis=1),
        helper.make_node("Sin", ["s"], ["sin_out"], name="sin_node"),
        helper.make_node("Softmax", ["x"], ["s2"], name="second_softmax", axis=1),
        helper.make_node("Relu", ["s2"], ["y"], name="relu"),
    ]
    message = _error(make_model(nodes, (2, 5), opset=13, outputs=("y", "sin_out")))
    assert "Sin node 'sin_node'" in message
    assert "Softmax node 'second_softmax': only supported as the last op" in message
    assert "Softmax node 'early_softmax': only supported as the last op" in message  # feeds Sin: not last either
    assert message.count("\n  - ") == 3


def test_softmax_feeding_a_model_output_and_another_op_is_rejected():
    nodes = [
        helper.make_node("Softmax", ["x"], ["y"], name="shared_softmax"),
        helper.make_node("Relu", ["y"], ["z"], name="relu"),
    ]
    message = _error(make_model(nodes, (2, 5), opset=13, outputs=("y", "z")))
    assert "Softmax node 'shared_softmax'" in message


def test_unknown_op_without_schema():
    nodes = [helper.make_node("FancyOp", ["x"], ["y"], name="fancy", domain="com.example")]
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    message = _error(model)
    assert "FancyOp (domain 'com.example') node 'fancy': not supported (no ONNX schema at opset 17)" in message


def test_opset_above_the_range_gets_a_hint():
    nodes = [helper.make_node("Sin", ["x"], ["y"], name="sin")]
    message = _error(make_model(nodes, (2, 3), opset=22))
    assert "Opsets 11-21 are supported" in message


def test_opset_below_the_range_is_upgraded_first_and_the_message_says_so():
    nodes = [helper.make_node("Sin", ["x"], ["y"], name="sin")]
    message = _error(make_model(nodes, (2, 3), opset=9))
    assert "(opset 9, upgraded to 13)" in message
    assert "Sin node 'sin': not supported" in message


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_unsupported_variant_names_node_op_and_opset(opset):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="the_gemm", transA=1)]
    message = _error(make_model(nodes, (4, 4), initializers=[const("w", np.eye(4, dtype=np.float32))], opset=opset))
    assert f"(opset {opset})" in message
    assert "the_gemm" in message
    assert "transA" in message
