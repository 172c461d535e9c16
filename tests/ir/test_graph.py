"""Graph invariants and edits: verify() names the op and the problem."""

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for, residual_net

from neurodeploy.errors import IRVerificationError
from neurodeploy.ir import IF, Conv2d, Graph, Relu, Reshape, Scale, TensorType, interpret


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


# -- GraphIndex and GraphEditor: O(1) queries and edits that never answer for an older graph -----------------------
def _scan(graph: Graph) -> dict:
    """What Graph's own queries (which scan the ops, no cache) say about every value, op and name."""
    values = sorted(graph.value_names() | set(graph.outputs) | {v for op in graph.ops for v in op.inputs})
    return {
        "producer": {v: graph.producer(v) for v in values},
        "consumers": {v: set(graph.consumers(v)) for v in values},
        "uses": {v: graph.uses(v) for v in values},
        "outputs": {v: v in graph.outputs for v in values},
        "ops": set(graph.ops),
        "names": graph.value_names() | {op.name for op in graph.ops},
    }


def _answers(index, graph: Graph, values) -> dict:
    return {
        "producer": {v: index.producer(v) for v in values},
        "consumers": {v: set(index.consumers(v)) for v in values},
        "uses": {v: index.uses(v) for v in values},
        "outputs": {v: index.is_output(v) for v in values},
        "ops": {op for op in graph.ops if index.contains(op)},
        "names": {n for n in graph.value_names() | {op.name for op in graph.ops} if index.taken(n)},
    }


def _assert_current(edit, graph: Graph) -> None:
    edit.commit()
    graph.verify()
    want = _scan(graph)
    assert _answers(edit, graph, sorted(want["uses"])) == want
    assert _answers(graph.index(), graph, sorted(want["uses"])) == want


def test_editor_answers_match_a_fresh_scan_after_every_kind_of_edit():
    graph = residual_net()
    x = inputs_for(graph)
    with graph.edit() as edit:
        _assert_current(edit, graph)
        edit.bypass(graph.op("pool"))  # a reader rewired: "flat" reads "cat_o"
        edit.set_inputs(graph.op("flat"), ("cat_o",))
        graph.op("flat").shape = (5 * 6 * 6,)
        graph.op("fc").weight = np.zeros((8, 180), np.float32)
        _assert_current(edit, graph)
        relu = graph.op("add_relu")  # replaced by an equal op under the same names
        edit.replace(relu, Relu(name="add_relu", inputs=relu.inputs, output=relu.output))
        _assert_current(edit, graph)
        first = Relu(name=edit.fresh_name("stem_relu"), inputs=("sr",), output=edit.fresh_name("sr"))
        edit.insert_after(graph.op("stem_relu"), first)
        second = Relu(name=edit.fresh_name("stem_relu"), inputs=(first.output,), output=edit.fresh_name("sr"))
        edit.insert_before(graph.op("b1"), second)
        edit.replace_uses("sr", second.output)
        edit.set_inputs(first, ("sr",))  # replace_uses rewired it too; it reads the stem again
        _assert_current(edit, graph)
        assert [op.name for op in graph.ops[1:5]] == ["stem_relu", "stem_relu_1", "stem_relu_2", "b1"]
        edit.remove(graph.op("fc_relu"))
        edit.replace_uses("hr", "hb")
        _assert_current(edit, graph)
        head = graph.op("out")  # the output renamed and a Scale inserted after its producer under the old name
        edit.set_output(head, "raw")
        edit.insert_after(head, Scale(name="unit", inputs=("raw",), output="logits", value=np.float32(1)))
        _assert_current(edit, graph)
        edit.replace_uses("logits", "raw")  # graph outputs follow too; the Scale is dead now
        assert graph.outputs == ["raw"]
        _assert_current(edit, graph)
        edit.add_output("ar")
        edit.add_output("raw")
        assert graph.outputs == ["raw", "ar", "raw"]
        _assert_current(edit, graph)
        edit.replace_uses("raw", "hb")  # every op input and graph output naming it
        assert graph.outputs == ["hb", "ar", "hb"]
        _assert_current(edit, graph)
    assert graph.dead_code_elimination() == 2  # "out" (nobody reads "raw") and "unit" (nobody reads "logits")
    graph.verify()
    assert {"out", "unit"}.isdisjoint(op.name for op in graph.ops)
    assert interpret.run(graph, x)["hb"].shape == (len(x), 8)


def test_graph_queries_have_no_cache_and_an_index_is_a_snapshot():
    graph = conv_net()
    index = graph.index()
    relu = graph.op("relu2")
    relu.inputs = ("p1",)  # a direct field edit, seen by the next Graph query at once
    assert graph.consumers("c2") == []
    assert graph.uses("p1") == 2
    assert index.uses("p1") == 1  # the snapshot answers for the graph it was built from, by design
    assert graph.index().uses("p1") == 2
    graph.ops.remove(relu)
    assert graph.producer("r2") is None
    assert graph.index().producer("r2") is None


def test_editor_fresh_names_are_unique_even_before_they_are_used():
    graph = conv_net()
    with graph.edit() as edit:
        names = [edit.fresh_name("c1") for _ in range(3)] + [edit.fresh_name("new"), edit.fresh_name("new")]
    assert names == ["c1_1", "c1_2", "c1_3", "new", "new_1"]
    assert graph.fresh_name("c1") == "c1_1"  # nothing was added to the graph itself


def test_editor_refuses_ops_not_in_the_graph_and_ops_added_twice():
    graph = conv_net()
    stranger = Relu(name="stranger", inputs=("c1",), output="s")
    with graph.edit() as edit:
        with pytest.raises(ValueError, match="Relu 'stranger' is not in graph 'conv_net'"):
            edit.remove(stranger)
        with pytest.raises(ValueError, match="not in graph"):
            edit.insert_after(stranger, Relu(name="z", inputs=("c1",), output="z"))
        with pytest.raises(ValueError, match="Relu 'relu1' is already part of graph"):
            edit.insert_after(graph.op("conv1"), graph.op("relu1"))
        edit.remove(graph.op("relu2"))
        with pytest.raises(ValueError, match="not in graph"):
            edit.replace(graph.op("relu2"), Relu(name="r", inputs=("c2",), output="r2"))


def test_dead_code_elimination_removes_a_long_dead_chain_in_one_pass():
    graph = conv_net()
    value = "r1"
    for i in range(10_000):  # a chain nobody reads: each op is dead only once the one after it is gone
        graph.ops.append(Relu(name=f"dead{i}", inputs=(value,), output=f"d{i}"))
        value = f"d{i}"
    assert graph.dead_code_elimination() == 10_000
    assert [op.name for op in graph.ops] == [op.name for op in conv_net().ops]
    graph.verify()
