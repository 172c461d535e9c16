"""Graph invariants and edits: verify() names the op and the problem."""

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for

from neurodeploy.errors import IRVerificationError
from neurodeploy.ir import IF, Conv2d, Graph, Relu, Reshape, TensorType, interpret


def test_conv_net_verifies_and_types():
    graph = conv_net()
    graph.verify()
    types = graph.types()
    assert types["c1"].shape == (4, 8, 8)
    assert types["p1"].shape == (4, 4, 4)
    assert types["logits"].shape == (5,)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g.ops.append(Relu(name="relu1", inputs=("logits",), output="z")), "two ops are named 'relu1'"),
        (lambda g: g.ops.append(Relu(name="again", inputs=("logits",), output="c1")), "defined twice"),
        (lambda g: g.ops.insert(0, Relu(name="early", inputs=("r1",), output="z")), "not defined before it"),
        (lambda g: g.outputs.append("nowhere"), "graph output 'nowhere' is not defined"),
        (lambda g: setattr(g.op("conv2"), "groups", 4), "not divisible by groups=4"),
        (lambda g: setattr(g.op("flat"), "shape", (7,)), "cannot reshape"),
    ],
)
def test_verify_reports_broken_graphs(edit, message):
    graph = conv_net()
    edit(graph)
    with pytest.raises(IRVerificationError, match=message):
        graph.verify()


def test_conv_channel_mismatch_is_reported_with_the_op_name():
    graph = Graph(
        "g",
        {"x": TensorType((3, 5, 5))},
        ["y"],
        [Conv2d(name="c", inputs=("x",), output="y", weight=np.zeros((2, 2, 3, 3), np.float32))],
    )
    with pytest.raises(IRVerificationError, match="Conv2d 'c': input has 3 channels"):
        graph.verify()


def test_if_rejects_bad_reset_and_thresholds():
    graph = Graph(
        "g",
        {"x": TensorType((3,))},
        ["y"],
        [IF(name="n", inputs=("x",), output="y", threshold=np.float32(1), reset="leak")],
    )
    with pytest.raises(IRVerificationError, match="reset must be one of"):
        graph.verify()
    graph.ops[0] = IF(name="n", inputs=("x",), output="y", threshold=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(IRVerificationError, match="threshold must be positive"):
        graph.verify()


def test_bypass_keeps_the_output_name():
    graph = conv_net()
    graph.ops.append(Reshape(name="same", inputs=("logits",), output="final", shape=(5,)))
    graph.outputs = ["final"]
    x = inputs_for(graph)
    before = interpret.run(graph, x)["final"]
    graph.bypass(graph.op("same"))
    graph.verify()
    assert graph.outputs == ["final"]
    np.testing.assert_array_equal(interpret.run(graph, x)["final"], before)


def test_copy_is_independent_and_dead_code_is_removed():
    graph = conv_net()
    twin = graph.copy()
    twin.op("conv1").padding = (0, 0, 0, 0)
    assert graph.op("conv1").padding == (1, 1, 1, 1)
    graph.ops.append(Relu(name="unused", inputs=("r1",), output="dead"))
    assert graph.dead_code_elimination() == 1
    assert "dead" not in graph.value_names()
    assert graph.fresh_name("c1") == "c1_1"
    assert graph.fresh_name("new") == "new"
