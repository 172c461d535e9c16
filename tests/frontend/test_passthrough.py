"""Identity, inference-mode Dropout and Constant: no IR op of their own."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir.interpret import run

from .onnx_cases import check, const, import_model, make_model, op_types, randn, run_ort_all


@pytest.mark.parametrize("opset", [11, 13, 14, 16, 19, 21])
def test_identity_between_ops(opset):
    nodes = [
        helper.make_node("Identity", ["x"], ["i"], name="identity_in"),
        helper.make_node("Relu", ["i"], ["r"], name="relu"),
        helper.make_node("Identity", ["r"], ["y"], name="identity_out"),
    ]
    graph, _ = check(make_model(nodes, (2, 3, 4), opset=opset))
    assert op_types(graph) == ["Relu"]
    assert graph.outputs == ["y"]


def test_identity_of_input_only():
    graph, _expected = check(make_model([helper.make_node("Identity", ["x"], ["y"], name="id")], (2, 5)))
    assert graph.ops == []


def test_identity_of_initializer_feeding_add():
    nodes = [
        helper.make_node("Identity", ["c"], ["ci"], name="id"),
        helper.make_node("Add", ["x", "ci"], ["y"], name="add"),
    ]
    graph, _ = check(make_model(nodes, (2, 5), initializers=[const("c", randn((5,), seed=1))]))
    assert op_types(graph) == ["Bias"]


@pytest.mark.parametrize("ratio", [None, 0.0, 0.5])
def test_dropout_opset10_ratio_attribute(ratio):
    attrs = {} if ratio is None else {"ratio": ratio}
    nodes = [
        helper.make_node("Dropout", ["x"], ["d"], name="dropout", **attrs),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    graph, _ = check(make_model(nodes, (2, 6), opset=10))
    assert op_types(graph) == ["Relu"]


@pytest.mark.parametrize("opset", [12, 13, 21])
@pytest.mark.parametrize("inputs", ["x", "x,ratio", "x,ratio,training", "x,,training"])
def test_dropout_ratio_input_inference(opset, inputs):
    names = [n for n in inputs.split(",")]
    nodes = [
        helper.make_node("Dropout", names, ["d"], name="dropout"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    inits = [const("ratio", np.array(0.3, np.float32)), const("training", np.array(False))]
    inits = [t for t in inits if t.name in names]
    graph, _ = check(make_model(nodes, (2, 6), initializers=inits, opset=opset))
    assert op_types(graph) == ["Relu"]


def test_dropout_training_mode_true_is_rejected():
    nodes = [helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="dropout")]
    inits = [const("ratio", np.array(0.3, np.float32)), const("training", np.array(True))]
    with pytest.raises(UnsupportedOpError, match=r"Dropout 'dropout': training_mode"):
        import_model(make_model(nodes, (2, 6), initializers=inits, opset=13))


def test_a_dropout_mask_that_is_read_is_rejected():
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"], name="dropout"),
        helper.make_node("Cast", ["mask"], ["m"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["d", "m"], ["y"], name="add"),
    ]
    with pytest.raises(UnsupportedOpError, match=r"Dropout 'dropout': the mask output is read"):
        import_model(make_model(nodes, (2, 6), opset=13))


def test_a_dropout_mask_nothing_reads_is_left_out():
    """As the opset-9 exports of VGG-19 and SqueezeNet name it."""
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"], name="dropout"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    graph, _ = check(make_model(nodes, (2, 6), opset=13))
    assert op_types(graph) == ["Relu"]


def _constant_then_add(constant: object, opset: int, x_shape=(2, 3, 4), cast: bool = False):
    nodes = [constant]
    if cast:
        nodes.append(helper.make_node("Cast", ["c"], ["cf"], name="cast", to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Add", ["x", "cf" if cast else "c"], ["y"], name="add"))
    return make_model(nodes, x_shape, opset=opset)


CONSTANT_KINDS = ["value", "value-scalar", "value_float", "value_floats", "value_int", "value_ints"]


@pytest.mark.parametrize(
    ("opset", "kind"),
    # value_float(s) and value_int(s) arrive with Constant-12.
    [(11, k) for k in CONSTANT_KINDS[:2]] + [(o, k) for o in (12, 13, 19, 21) for k in CONSTANT_KINDS],
)
def test_constant_feeding_add(opset, kind):
    if kind == "value":
        values = randn((3, 1), seed=5)
        attrs = {"value": helper.make_tensor("v", TensorProto.FLOAT, values.shape, values.ravel())}
    elif kind == "value-scalar":
        attrs = {"value": helper.make_tensor("v", TensorProto.FLOAT, [], [1.5])}
    elif kind == "value_float":
        attrs = {"value_float": -0.75}
    elif kind == "value_floats":
        attrs = {"value_floats": [0.5, -1.0, 2.0, 0.25]}
    elif kind == "value_int":
        attrs = {"value_int": 3}
    else:
        attrs = {"value_ints": [1, -2, 3, 4]}
    node = helper.make_node("Constant", [], ["c"], name="constant", **attrs)
    graph, _ = check(_constant_then_add(node, opset, cast=kind.startswith("value_int")))
    assert op_types(graph) == ["Bias"]


def test_constant_value_ints_as_reshape_target():
    nodes = [
        helper.make_node("Constant", [], ["shape"], name="constant", value_ints=[0, -1]),
        helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape"),
    ]
    graph, expected = check(make_model(nodes, (2, 3, 4), opset=13))
    assert expected.shape == (2, 12)
    assert op_types(graph) == ["Reshape"]


@pytest.mark.parametrize(
    ("outputs", "nodes", "ir_outputs"),
    [
        (("r", "y"), [("Relu", "x", "r"), ("Identity", "r", "y")], ["r", "r"]),
        (("y", "r"), [("Relu", "x", "r"), ("Identity", "r", "y")], ["r", "r"]),
        (("y1", "y2"), [("Relu", "x", "r"), ("Identity", "r", "y1"), ("Identity", "r", "y2")], ["y1", "y1"]),
        (("y1", "y2"), [("Relu", "x", "r"), ("Identity", "r", "y1"), ("Dropout", "r", "y2")], ["y1", "y1"]),
        (("y", "x_copy"), [("Relu", "x", "y"), ("Identity", "x", "x_copy")], ["y", "x"]),
    ],
    ids=["output-and-its-identity", "identity-first", "two-identities", "identity-and-dropout", "input-passthrough"],
)
def test_outputs_that_alias_one_value(outputs, nodes, ir_outputs):
    """Several model outputs naming one value all keep that value (the IR lists the value once per output)."""
    protos = [helper.make_node(op, [src], [dst], name=f"{op}_{dst}") for op, src, dst in nodes]
    model = make_model(protos, (2, 6), outputs=outputs, opset=13)
    x = randn((2, 6), seed=3)
    session_outputs = run_ort_all(model, x)
    graph = import_model(model)
    assert graph.outputs == ir_outputs
    values = run(graph, x)
    for name, value, expected in zip(outputs, graph.outputs, session_outputs):
        np.testing.assert_allclose(values[value], expected, atol=1e-5, rtol=0, err_msg=name)
