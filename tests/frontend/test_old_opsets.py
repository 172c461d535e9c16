"""Models at opsets 7-10 (as most published ONNX files of the classic CNN families are): upgraded with onnx's
version converter and imported, equal to onnxruntime on the original file; Sum; and the refusals (LRN, a model
the converter cannot upgrade) that name every node and what to do."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.frontend.onnx.importer import UPGRADE_TO

from .onnx_cases import check, const, import_model, make_model, op_types, randn

C = 4


def _classic(opset: int, *, lrn: bool = False) -> onnx.ModelProto:
    """A small network of the classic families' ops as their opset-7..10 exports write them: Conv, an inference
    BatchNormalization, Relu, MaxPool-8, two branches joined by Concat-4, a residual Sum-8, AveragePool-7,
    Dropout-7, Flatten-9 and Gemm; with ``lrn`` an LRN-1 after the first Relu."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["bn"], name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1n" if lrn else "r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="branch_a", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["p1", "w3"], ["c3"], name="branch_b", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu_a"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu_b"),
        helper.make_node("Concat", ["r2", "r3"], ["cat"], name="concat", axis=1),
        helper.make_node("Conv", ["cat", "w4"], ["c4"], name="conv4", kernel_shape=[1, 1]),
        helper.make_node("Sum", ["c4", "p1"], ["res"], name="residual"),
        helper.make_node("AveragePool", ["res"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Dropout", ["p2"], ["d"], name="dropout"),
        helper.make_node("Flatten", ["d"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    if lrn:
        nodes.insert(3, helper.make_node("LRN", ["r1"], ["r1n"], name="lrn", size=3))
    inits = [
        const("w1", randn((C, 1, 3, 3), seed=1, scale=0.5)),
        const("b1", randn((C,), seed=2)),
        const("s", np.abs(randn((C,), seed=3)) + 0.5),
        const("bb", randn((C,), seed=4)),
        const("m", randn((C,), seed=5)),
        const("v", np.abs(randn((C,), seed=6)) + 0.5),
        const("w2", randn((3, C, 1, 1), seed=7)),
        const("w3", randn((1, C, 1, 1), seed=8)),
        const("w4", randn((C, C, 1, 1), seed=9)),
        const("wf", randn((5, C * 4), seed=10)),
        const("bf", randn((5,), seed=11)),
    ]
    graph = helper.make_graph(
        nodes,
        "classic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=4)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("opset", [7, 8, 9, 10])
def test_a_classic_network_at_an_old_opset_imports_and_equals_onnxruntime(opset):
    model = _classic(opset)
    before = model.SerializeToString()
    graph, _ = check(model)
    assert model.SerializeToString() == before  # the caller's model is left as it was
    assert graph.meta["source"] == {"format": "onnx", "opset": opset, "upgraded_to": UPGRADE_TO}
    assert op_types(graph) == [
        "Conv2d",
        "BatchNorm",
        "Relu",
        "MaxPool2d",
        "Conv2d",
        "Conv2d",
        "Relu",
        "Relu",
        "Concat",
        "Conv2d",
        "Add",
        "AvgPool2d",
        "Reshape",
        "Dense",
    ]


def test_lrn_is_refused_with_what_to_retrain_with():
    with pytest.raises(UnsupportedOpError) as caught:
        import_model(_classic(9, lrn=True))
    message = str(caught.value)
    assert "(opset 9, upgraded to 13)" in message
    assert "LRN node 'lrn'" in message
    assert "retrain with BatchNormalization" in message


def test_a_model_the_converter_cannot_upgrade_lists_every_node_with_its_opset():
    model = _classic(9)
    model.graph.node.insert(3, helper.make_node("Swizzle", ["r1"], ["r1s"], name="swizzle"))
    model.graph.node[4].input[0] = "r1s"
    with pytest.raises(UnsupportedOpError) as caught:
        import_model(model)
    message = str(caught.value)
    assert "is at opset 9, below the supported 11-21" in message
    assert "could not upgrade it to opset 13" in message
    for node in model.graph.node:  # every node, its op and the op's version at opset 9
        assert f"{node.op_type} node '{node.name}'" in message
    assert "Swizzle node 'swizzle': no ONNX schema at opset 9" in message
    assert "MaxPool node 'pool1': MaxPool-8 at opset 9" in message
    assert "Re-export the model at an opset in 11-21" in message


@pytest.mark.parametrize("opset", [8, 13])
def test_sum_of_runtime_values_and_constants(opset):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h"], name="conv"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sum", ["h", "c1", "r", "c2"], ["y"], name="sum"),
    ]
    inits = [
        const("w", randn((C, C, 1, 1), seed=1)),
        const("c1", randn((C, 1, 1), seed=2)),
        const("c2", randn((1, 5, 5), seed=3)),
    ]
    graph, _ = check(make_model(nodes, [2, C, 5, 5], initializers=inits, opset=opset))
    assert op_types(graph) == ["Conv2d", "Relu", "Add", "Bias"]


def test_sum_of_one_input_is_the_input():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Sum", ["r"], ["y"], name="sum")]
    graph, _ = check(make_model(nodes, [2, C], opset=13))
    assert op_types(graph) == ["Relu"]


@pytest.mark.parametrize("opset", [9, 13])
def test_an_all_zero_pad_before_a_pool_is_the_identity(opset):
    """As torch exports DenseNet's transition pools at opset 9 (Pad-2 with pads all zero, upgraded)."""
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", pads=[0] * 8, mode="constant", value=0.0)
        inits = []
    else:
        pad = helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="constant")
        inits = [const("pads", np.zeros(8, np.int64))]
    pool = helper.make_node("AveragePool", ["p"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])
    graph, _ = check(make_model([pad, pool], [2, C, 6, 6], initializers=inits, opset=opset))
    assert op_types(graph) == ["AvgPool2d"]


def _pad(pads: list[int], opset: int = 13, **attrs) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """A Pad node ``pad`` of x into p: the pads as an attribute before opset 11, as an input from it on."""
    if opset < 11:
        return helper.make_node("Pad", ["x"], ["p"], name="the_pad", pads=pads, mode="constant", **attrs), []
    node = helper.make_node("Pad", ["x", "pads"], ["p"], name="the_pad", mode="constant", **attrs)
    return node, [const("pads", np.array(pads, np.int64))]


@pytest.mark.parametrize("opset", [9, 13])
def test_a_pad_before_a_conv_becomes_its_padding(opset):
    """As ZeroPad2d before a Conv exports: the zeros add to the Conv's own pads (asymmetric ones included), equal
    to onnxruntime on the original model."""
    pad, inits = _pad([0, 0, 1, 2, 0, 0, 0, 1], opset)
    conv = helper.make_node("Conv", ["p", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 0, 1, 1])
    inits = [*inits, const("w", randn((3, C, 3, 3), seed=2))]
    graph, _ = check(make_model([pad, conv], [2, C, 6, 7], initializers=inits, opset=opset))
    assert op_types(graph) == ["Conv2d"]
    assert graph.ops[0].padding == (2, 2, 1, 2)  # (top, left, bottom, right): the Pad's plus the Conv's
    assert graph.ops[0].inputs == ("x",)


def test_a_pad_before_an_average_pool_is_counted_as_the_pool_counts_its_padding():
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1])
    pool = helper.make_node("AveragePool", ["p"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2])
    graph, _ = check(make_model([pad, pool], [2, C, 7, 7], initializers=inits), reference="onnx")
    assert op_types(graph) == ["AvgPool2d"]
    assert graph.ops[0].padding == (1, 1, 1, 1)
    assert graph.ops[0].count_include_pad  # the Pad's zeros are inputs: the average counts them


@pytest.mark.parametrize(
    ("reader", "match"),
    [
        (helper.make_node("Relu", ["p"], ["y"], name="relu"), r"Pad 'the_pad' .* is read by Relu 'relu'"),
        (
            helper.make_node("MaxPool", ["p"], ["y"], name="pool", kernel_shape=[2, 2]),
            r"MaxPool 'pool' reads Pad 'the_pad', whose zeros are not the pool's own padding",
        ),
        (
            helper.make_node("AveragePool", ["p"], ["y"], name="pool", kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
            r"AveragePool 'pool' reads Pad 'the_pad'.*count_include_pad=1",
        ),
    ],
    ids=["relu", "max-pool", "average-pool-not-counting-its-padding"],
)
def test_a_pad_that_pads_is_refused_where_its_reader_cannot_take_its_zeros(reader, match):
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1])
    model = make_model([pad, reader], [2, C, 6, 6], initializers=inits, opset=13)
    with pytest.raises(UnsupportedOpError, match=match):
        import_model(model)


def test_a_pad_read_by_a_conv_and_another_op_is_refused_naming_the_other():
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1])
    conv = helper.make_node("Conv", ["p", "w"], ["c"], name="conv", kernel_shape=[3, 3])
    add = helper.make_node("Add", ["p", "p"], ["y"], name="double")
    inits = [*inits, const("w", randn((C, C, 3, 3), seed=2))]
    model = make_model([pad, conv, add], [2, C, 6, 6], initializers=inits, outputs=("y", "c"))
    with pytest.raises(UnsupportedOpError, match=r"is read by Add 'double'"):
        import_model(model)


@pytest.mark.parametrize(
    ("pads", "attrs", "value", "match"),
    [
        ([0, 1, 0, 0, 0, 0, 0, 0], {}, None, r"only zeros around the two spatial axes"),
        ([0, 0, 1, 1, 0, 0, 1, 1], {"mode": "reflect"}, None, r"mode 'reflect'"),
        ([0, 0, 1, 1, 0, 0, 1, 1], {}, 0.5, r"only zeros around the two spatial axes"),
        ([0, 0, -1, 0, 0, 0, 0, 0], {}, None, r"crop"),
    ],
    ids=["channel-pads", "reflect", "nonzero-value", "negative"],
)
def test_a_pad_that_is_not_zeros_around_h_and_w_is_refused_naming_it(pads, attrs, value, match):
    node = helper.make_node(
        "Pad", ["x", "pads", *(["value"] if value is not None else [])], ["p"], name="the_pad", **attrs
    )
    conv = helper.make_node("Conv", ["p", "w"], ["y"], name="conv", kernel_shape=[1, 1])
    inits = [const("pads", np.array(pads, np.int64)), const("w", randn((C, C + max(0, pads[1]), 1, 1)))]
    if value is not None:
        inits.append(const("value", np.array(value, np.float32)))
    model = make_model([node, conv], [2, C, 6, 6], initializers=inits, opset=13)
    with pytest.raises(UnsupportedOpError, match=rf"Pad 'the_pad': .*{match}"):
        import_model(model)


def test_a_pad_that_is_a_model_output_is_refused():
    pad, inits = _pad([0, 0, 1, 1, 0, 0, 1, 1])
    model = make_model([pad], [2, C, 6, 6], initializers=inits, outputs=("p",))
    with pytest.raises(UnsupportedOpError, match=r"Pad 'the_pad': .*not as a model output"):
        import_model(model)


def _softmax_end(opset: int, after: list) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Softmax", ["g"], ["s" if after else "y"], name="softmax", axis=1),
        *after,
    ]
    graph_proto = helper.make_graph(
        nodes,
        "softmax_end",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, C, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [const("w", randn((3, C, 1, 1), seed=1))],
    )
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", opset)], ir_version=4)
    return onnx.shape_inference.infer_shapes(model)


def test_a_final_softmax_on_a_4d_tensor_at_opset_9_imports_and_is_dropped_for_the_readout():
    """SqueezeNet's ending: Softmax-1 over (N, C, 1, 1), which the upgrade writes as Flatten, Softmax, Reshape."""
    from neurodeploy.passes.base import PassContext
    from neurodeploy.passes.drop_softmax import DropSoftmax

    graph, _ = check(_softmax_end(9, []))
    assert op_types(graph) == ["Conv2d", "GlobalAvgPool", "Reshape", "Softmax", "Reshape"]
    DropSoftmax().run(graph, PassContext())
    assert op_types(graph) == ["Conv2d", "GlobalAvgPool", "Reshape", "Reshape"]


def test_a_softmax_followed_by_more_than_reshapes_is_refused():
    after = [helper.make_node("Relu", ["s"], ["y"], name="relu")]
    with pytest.raises(UnsupportedOpError, match=r"Softmax node 'softmax': only supported as the last op"):
        import_model(_softmax_end(13, after))


def _shuffle_model(opset: int, perm: list[int]) -> onnx.ModelProto:
    groups, per_group = 3, 2
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
        helper.make_node("Reshape", ["c", "split_shape"], ["g"], name="split"),
        helper.make_node("Transpose", ["g"], ["t"], name="shuffle", perm=perm),
        helper.make_node("Reshape", ["t", "merge_shape"], ["m"], name="merge"),
        helper.make_node("Conv", ["m", "w2"], ["y"], name="conv2"),
    ]
    graph_proto = helper.make_graph(
        nodes,
        "shuffle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, C, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            const("w1", randn((groups * per_group, C, 1, 1), seed=1)),
            const("split_shape", np.array([2, groups, per_group, 5, 5], np.int64)),
            const("merge_shape", np.array([2, groups * per_group, 5, 5], np.int64)),
            const("w2", randn((2, groups * per_group, 1, 1), seed=2)),
        ],
    )
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", opset)], ir_version=4)
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize("opset", [9, 13])
def test_a_channel_shuffle_imports_as_a_permutation_and_equals_onnxruntime(opset):
    """ShuffleNet's Reshape (N, g, c, H, W), Transpose [0, 2, 1, 3, 4], Reshape back."""
    graph, _ = check(_shuffle_model(opset, [0, 2, 1, 3, 4]))
    assert op_types(graph) == ["Conv2d", "Reshape", "Reshape", "Conv2d", "Reshape", "Reshape", "Conv2d"]
    (permutation,) = [op for op in graph.ops if op.meta["onnx_node"] == "shuffle" and op.op_type == "Conv2d"]
    weight = permutation.weight[:, :, 0, 0]
    assert sorted(weight.reshape(-1).tolist()) == [0.0] * 30 + [1.0] * 6  # one input channel per output channel
    assert weight.argmax(axis=1).tolist() == [0, 2, 4, 1, 3, 5]


def test_another_transpose_of_a_computed_tensor_is_refused_naming_its_perm():
    with pytest.raises(UnsupportedOpError, match=r"Transpose 'shuffle': perm \[0, 1, 2, 4, 3\]"):
        import_model(_shuffle_model(13, [0, 1, 2, 4, 3]))


def _split_model(opset: int, shape: tuple[int, ...], *, axis: int = 1) -> onnx.ModelProto:
    """Relu, a Split into two parts, a Relu on one and an Add of both (parts of 2 and 4 channels at opsets 11 and
    13, where sizes are given; 3 and 3 at opset 18, from num_outputs)."""
    sizes = [2, 4] if opset < 18 else [3, 3]
    if opset >= 18:
        split = helper.make_node("Split", ["r"], ["a", "b"], name="split", axis=axis, num_outputs=2)
    elif opset >= 13:
        split = helper.make_node("Split", ["r", "sizes"], ["a", "b"], name="split", axis=axis)
    else:
        split = helper.make_node("Split", ["r"], ["a", "b"], name="split", axis=axis, split=sizes)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        split,
        helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
        helper.make_node("Concat", ["rb", "a"], ["y"], name="concat", axis=1),
    ]
    inits = [const("sizes", np.array(sizes, np.int64))] if 13 <= opset < 18 else []
    graph_proto = helper.make_graph(
        nodes,
        "split",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("shape", [(2, 6, 4, 4), (2, 6)])
def test_a_channel_split_imports_as_channel_selections_and_equals_onnxruntime(opset, shape):
    """ShuffleNet v2 splits its channels in two."""
    graph, _ = check(_split_model(opset, shape))
    picked = [op for op in graph.ops if op.meta["onnx_node"] == "split"]
    assert [op.op_type for op in picked] == ["Conv2d" if len(shape) == 4 else "Dense"] * 2


def test_a_split_along_another_axis_is_refused():
    with pytest.raises(UnsupportedOpError, match=r"Split 'split': axis 2 of a \(2, 6, 4, 4\) tensor"):
        import_model(_split_model(13, (2, 6, 4, 4), axis=2))
