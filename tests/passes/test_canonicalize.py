"""The canonicalization passes: each keeps the graph's function (checked by running it before and after on
random inputs) and makes the structural change it promises. The IR is verified after every pass."""

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for, residual_net

from neurodeploy.ir import (
    AvgPool2d,
    BatchNorm,
    Bias,
    Clip,
    Conv2d,
    Dense,
    GlobalAvgPool,
    Graph,
    MaxPool2d,
    Relu,
    Reshape,
    Scale,
    TensorType,
    interpret,
)
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline


def apply(graph: Graph, pipeline: str) -> Graph:
    before = graph.copy()
    x = inputs_for(graph, seed=3) * 4 - 2
    PassManager(build_pipeline(pipeline), verify_each=True).run(graph, PassContext())
    if "drop-softmax" not in pipeline:
        np.testing.assert_allclose(
            interpret.run(graph, x)[graph.outputs[0]], interpret.run(before, x)[before.outputs[0]], rtol=1e-5, atol=1e-5
        )
    return graph


def kinds(graph):
    return [type(op) for op in graph.ops]


def test_fold_batchnorm_into_the_conv_before_it():
    graph = apply(conv_net(), "fold-batchnorm")
    assert BatchNorm not in kinds(graph)
    assert graph.producer("r1").inputs == ("c1",)
    assert isinstance(graph.producer("c1"), Conv2d)


def test_standalone_batchnorm_becomes_a_depthwise_conv():
    graph = conv_net()
    shared = graph.op("bn1")
    graph.ops.insert(graph.ops.index(shared) + 1, Relu(name="tap", inputs=("c1",), output="tapped"))
    graph.outputs.append("tapped")  # c1 now has two readers: the BatchNorm cannot fold into conv1
    graph = apply(graph, "fold-batchnorm")
    bn = graph.op("bn1")
    assert isinstance(bn, Conv2d)
    assert bn.groups == 4
    assert bn.weight.shape == (4, 1, 1, 1)


def test_fold_bias_into_dense_and_conv():
    graph = apply(residual_net(), "fold-bias")
    assert Bias not in kinds(graph)
    assert graph.op("fc").bias is not None
    conv = Graph(
        "g",
        {"x": TensorType((2, 4, 4))},
        ["y"],
        [
            Conv2d(name="c", inputs=("x",), output="c", weight=np.ones((3, 2, 1, 1), np.float32)),
            Bias(name="b", inputs=("c",), output="y", value=np.arange(3, dtype=np.float32).reshape(3, 1, 1)),
        ],
    )
    assert kinds(apply(conv, "fold-bias")) == [Conv2d]
    assert conv.outputs == ["y"]


def test_a_caffe_style_batchnorm_scale_bias_after_a_convolution_folds_into_it():
    """Conv -> BatchNorm -> Scale -> Bias (as Caffe-converted models such as the zoo's DenseNet-121 have it): one
    Conv2d computing the same function; a Scale that varies over space, or of a Dense with a shared output, is
    left in place."""
    rng = np.random.default_rng(0)
    ops = [
        Conv2d(name="c", inputs=("x",), output="c", weight=rng.normal(size=(3, 2, 3, 3)).astype(np.float32)),
        BatchNorm(
            name="n",
            inputs=("c",),
            output="n",
            scale=rng.uniform(0.5, 2, 3),
            shift=rng.normal(size=3),
            mean=rng.normal(size=3),
            var=rng.uniform(0.5, 2, 3),
        ),
        Scale(name="s", inputs=("n",), output="s", value=rng.uniform(-2, 2, (3, 1, 1)).astype(np.float32)),
        Bias(name="b", inputs=("s",), output="y", value=rng.normal(size=(3, 1, 1)).astype(np.float32)),
    ]
    graph = Graph("g", {"x": TensorType((2, 5, 5))}, ["y"], ops)
    x = rng.normal(size=(4, 2, 5, 5)).astype(np.float32)
    before = interpret.run(graph, x)["y"]
    folded = apply(apply(graph, "fold-batchnorm"), "fold-scale")
    assert kinds(folded) == [Conv2d]
    np.testing.assert_allclose(interpret.run(folded, x)["y"], before, rtol=1e-5, atol=1e-5)
    spatial = Graph(
        "g",
        {"x": TensorType((2, 2, 2))},
        ["y"],
        [
            Conv2d(name="c", inputs=("x",), output="c", weight=np.ones((1, 2, 1, 1), np.float32)),
            Scale(name="s", inputs=("c",), output="y", value=np.arange(4, dtype=np.float32).reshape(1, 2, 2)),
        ],
    )
    assert kinds(apply(spatial, "fold-scale")) == [Conv2d, Scale]


def test_bias_varying_over_space_is_not_folded():
    graph = Graph(
        "g",
        {"x": TensorType((2, 2, 2))},
        ["y"],
        [
            Conv2d(name="c", inputs=("x",), output="c", weight=np.ones((1, 2, 1, 1), np.float32)),
            Bias(name="b", inputs=("c",), output="y", value=np.arange(4, dtype=np.float32).reshape(1, 2, 2)),
        ],
    )
    assert kinds(apply(graph, "fold-bias")) == [Conv2d, Bias]


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ([Clip(name="a", inputs=("x",), output="a", low=0.0)], Relu(name="", inputs=(), output="")),
        (
            [Relu(name="a", inputs=("x",), output="a"), Relu(name="b", inputs=("a",), output="b")],
            Relu(name="", inputs=(), output=""),
        ),
        (
            [Relu(name="a", inputs=("x",), output="a"), Clip(name="b", inputs=("a",), output="b", low=-1.0, high=6.0)],
            Clip(name="", inputs=(), output="", low=0.0, high=6.0),
        ),
        (
            [Clip(name="a", inputs=("x",), output="a", low=-1.0, high=1.0), Relu(name="b", inputs=("a",), output="b")],
            Clip(name="", inputs=(), output="", low=0.0, high=1.0),
        ),
    ],
)
def test_fuse_activations_collapses_chains(chain, expected):
    graph = Graph("g", {"x": TensorType((6,))}, [chain[-1].output], chain)
    graph = apply(graph, "fuse-activations")
    (op,) = graph.ops
    assert type(op) is type(expected)
    assert op.inputs == ("x",)
    assert op.output == chain[-1].output
    if isinstance(op, Clip):
        assert (op.low, op.high) == (expected.low, expected.high)


def test_canonicalize_pooling():
    graph = conv_net()
    graph.ops.insert(3, MaxPool2d(name="noop", inputs=("r1",), output="r1b", kernel=(1, 1)))
    graph.op("pool1").inputs = ("r1b",)
    graph = apply(graph, "canonicalize-pooling")
    assert GlobalAvgPool not in kinds(graph)
    assert MaxPool2d not in kinds(graph)
    assert graph.op("gap").kernel == (4, 4)
    assert isinstance(graph.op("gap"), AvgPool2d)


def test_canonicalize_flatten_merges_and_drops_reshapes():
    graph = conv_net()
    graph.op("flat").shape = (3, 2)
    graph.ops.insert(
        graph.ops.index(graph.op("flat")) + 1, Reshape(name="flat2", inputs=("f",), output="f2", shape=(6,))
    )
    graph.ops.insert(
        graph.ops.index(graph.op("flat2")) + 1, Reshape(name="same", inputs=("f2",), output="f3", shape=(6,))
    )
    graph.op("fc").inputs = ("f3",)
    graph = apply(graph, "canonicalize-flatten")
    reshapes = [op for op in graph.ops if isinstance(op, Reshape)]
    assert len(reshapes) == 1
    assert reshapes[0].shape == (6,)
    assert reshapes[0].inputs == ("g",)


def test_drop_softmax_keeps_the_decision():
    graph = conv_net(softmax=True)
    x = inputs_for(graph)
    probs = interpret.run(graph, x)["probs"]
    graph = apply(graph, "drop-softmax")
    assert graph.outputs == ["probs"]
    assert isinstance(graph.producer("probs"), Dense)
    np.testing.assert_array_equal(interpret.run(graph, x)["probs"].argmax(1), probs.argmax(1))
    assert graph.meta["dropped_softmax"] == ["probs"]


@pytest.mark.parametrize("make", [conv_net, residual_net])
def test_whole_canonicalization_keeps_function(make):
    graph = apply(make(), CANONICALIZE.replace(",drop-softmax", ""))
    assert not {BatchNorm, Bias, GlobalAvgPool} & set(kinds(graph))


def test_a_scalar_scale_folds_forward_through_pool_and_reshape_into_the_next_weights():
    """A NIR SumPool2d (an average pool and a Scale by the window's area) before a Dense becomes the Dense's weights;
    a Scale whose value is read twice, or reaches no weights, stays."""
    rng = np.random.default_rng(0)

    def net(second_reader: bool) -> Graph:
        ops = [
            AvgPool2d(name="p", inputs=("x",), output="p", kernel=(2, 2), stride=(2, 2)),
            Scale(name="s", inputs=("p",), output="s", value=np.array(4.0, np.float32)),
            Reshape(name="f", inputs=("s",), output="f", shape=(8,)),
            Dense(name="d", inputs=("f",), output="y", weight=rng.normal(size=(3, 8)).astype(np.float32)),
        ]
        if second_reader:
            ops.append(Relu(name="r", inputs=("s",), output="r"))
        return Graph("g", {"x": TensorType((2, 4, 4))}, ["y", "r"] if second_reader else ["y"], ops)

    assert kinds(apply(net(False), "fold-scale-forward")) == [AvgPool2d, Reshape, Dense]
    assert kinds(apply(net(True), "fold-scale-forward")) == [AvgPool2d, Scale, Reshape, Dense, Relu]
    last = Graph(
        "g",
        {"x": TensorType((2, 4, 4))},
        ["y"],
        [
            Scale(name="s", inputs=("x",), output="s", value=np.array(2.0, np.float32)),
            Relu(name="r", inputs=("s",), output="y"),
        ],
    )
    assert kinds(apply(last, "fold-scale-forward")) == [Scale, Relu]
