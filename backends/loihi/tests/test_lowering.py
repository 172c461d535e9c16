"""Lowering a converted graph to Loihi populations and synapses (float): every synapse computes what the graph's
ops between two neuron layers compute, the flatten order is the graph's, and what does not map is refused with
an error naming the op."""

import numpy as np
import pytest
from loihi_graphs import concat_block, residual, residual_block, small_cnn, with_maxpool
from neurodeploy_loihi.lowering import ConvSpec, DenseSpec, SparseSpec, lower

from neurodeploy.errors import ConversionError
from neurodeploy.ir import Add, Concat, Conv2d, Dense, Graph, Reshape, Scale, TensorType, interpret
from neurodeploy.ir.neurons import IF


def _ops(graph: Graph, *names: str) -> list:
    by_name = {op.name: op for op in graph.ops}
    return [by_name[n] for n in names]


def _apply(ops, x):
    for op in ops:
        x = op.forward([x])
    return x


def _lava_conv_in_float(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    """The Lava Conv a ConvSpec describes, in float: the base kernel repeated over each pool block, at the spec's
    stride and padding (the graph's IR Conv2d computes it, an independent path from the pooled-sum emulator)."""
    kernel = np.repeat(np.repeat(spec.weight, spec.pool[0], axis=2), spec.pool[1], axis=3)
    top, left = spec.padding
    conv = Conv2d(
        name="lava",
        inputs=("x",),
        output="y",
        weight=kernel,
        stride=spec.stride,
        padding=(top, left, top, left),
        dilation=spec.dilation,
        groups=spec.groups,
    )
    return conv.forward([x])


@pytest.mark.parametrize("thresholds", ["scalar", "channel"])
def test_avgpool_then_conv_folds_into_one_conv_equal_to_the_float_graph(thresholds: str) -> None:
    graph = small_cnn(thresholds=thresholds)
    lowered = lower(graph)
    pop = lowered.populations[1]
    assert (pop.name, pop.role) == ("if2", "hidden")
    spec = pop.synapse
    assert isinstance(spec, ConvSpec)
    assert spec.pool == (2, 2)
    assert spec.stride == (2, 2)
    assert spec.padding == (2, 2)
    x = np.random.default_rng(1).random((3, 4, 8, 8)).astype(np.float32)  # any input, spikes or not: it is linear
    (theta,) = (op.threshold for op in _ops(graph, "if2"))
    want = _apply(_ops(graph, "pool1", "conv2"), x) / np.reshape(theta, (-1, 1, 1) if theta.ndim else ())
    got = _lava_conv_in_float(spec, x) + pop.bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pool_flatten_dense_compose_into_one_dense_in_the_graphs_flatten_order() -> None:
    graph = small_cnn()
    lowered = lower(graph)
    readout = lowered.populations[-1]
    assert (readout.name, readout.role, readout.shape) == ("fc", "readout", (5,))
    spec = readout.synapse
    assert isinstance(spec, DenseSpec)
    assert spec.weight.shape == (5, 6 * 4 * 4)
    assert spec.input_shape == (6, 4, 4)
    s = (np.random.default_rng(2).random((4, 6, 4, 4)) < 0.5).astype(np.float32)
    want = _apply(_ops(graph, "pool2", "flat", "fc"), s)
    got = s.reshape(4, -1) @ spec.weight.T + readout.bias  # inputs flattened in C order of (C, H, W)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # a single neuron of channel 1 at (h, w) = (0, 3) feeds column 1 * 16 + 0 * 4 + 3 (C order), through the
    # 2x2 pool (1/4) and the flatten into feature 1 * 4 + 0 * 2 + 1 of the dense layer
    fc = _ops(graph, "fc")[0]
    np.testing.assert_allclose(spec.weight[:, 1 * 16 + 3], fc.weight[:, 1 * 4 + 1] / 4, rtol=1e-6)


def test_host_graph_computes_the_first_populations_current_in_thresholds() -> None:
    graph = small_cnn()
    lowered = lower(graph)
    x = np.random.default_rng(3).random((2, 1, 8, 8)).astype(np.float32)
    current = interpret.run(lowered.host, x)[lowered.host.outputs[0]]
    conv1 = _ops(graph, "conv1")[0]
    np.testing.assert_allclose(current, conv1.forward([x]) / np.float32(0.8), rtol=1e-6)
    pop = lowered.populations[0]
    assert (pop.role, pop.synapse, pop.shape) == ("input", None, (4, 8, 8))
    assert lowered.delay == 2  # two synapses: if1 -> if2 -> fc


def test_reset_and_initial_are_carried_per_population() -> None:
    lowered = lower(small_cnn(reset="zero", initial=0.0))
    assert [(p.reset, p.initial) for p in lowered.populations[:2]] == [("zero", 0.0), ("zero", 0.0)]


def _sparse_in_float(spec: SparseSpec, s: np.ndarray) -> np.ndarray:
    """A listed synapse applied in float, one synapse at a time (graph C order)."""
    flat = s.reshape(len(s), -1)
    out = np.zeros((len(s), int(np.prod(spec.shape))), np.float64)
    for r, c, w in zip(spec.rows, spec.cols, spec.weight):
        out[:, r] += w * flat[:, c]
    return out.reshape(len(s), *spec.shape).astype(np.float32)


def test_residual_add_becomes_a_second_synapse_and_the_sum_is_the_graphs() -> None:
    """conv2(s1) + s1 -> if2: the conv is the main synapse, the identity skip one-to-one synapses (a weight per
    neuron, not an n x n Dense) from the same population, no delay (both paths are one synapse long); together they
    compute the Add."""
    graph = residual()
    lowered = lower(graph)
    pop = lowered.populations[1]
    assert (pop.name, pop.delay, pop.depth, pop.adds) == ("if2", 0, 1, ["skip_add"])
    assert isinstance(pop.synapse, ConvSpec)
    (skip,) = pop.skips
    assert (skip.source, skip.delay) == (0, 0)
    assert isinstance(skip.synapse, SparseSpec)
    np.testing.assert_array_equal(skip.synapse.rows, np.arange(32))
    np.testing.assert_array_equal(skip.synapse.cols, np.arange(32))
    np.testing.assert_array_equal(skip.synapse.weight, np.ones(32, np.float32))
    s = (np.random.default_rng(2).random((3, 2, 4, 4)) < 0.5).astype(np.float32)
    want = _apply(_ops(graph, "conv2"), s) + s
    got = _lava_conv_in_float(pop.synapse, s) + _sparse_in_float(skip.synapse, s) + pop.bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert lowered.delay == 2


@pytest.mark.parametrize("skip", ["identity", "scale", "conv"])
def test_a_shorter_skip_is_delayed_to_arrive_with_the_main_path(skip: str) -> None:
    """if_a -> conv2 -> if_b -> conv3 -> Add(skip from if_a) -> if_c: the skip is one synapse shorter, so it is
    delayed one step: listed synapses (Lava's DelaySparse), one-to-one for an identity or Scale skip, the taps of
    a 1x1 conv (not its composed matrix); if_c's depth is 2."""
    graph = residual_block(skip=skip)
    lowered = lower(graph)
    assert [p.depth for p in lowered.populations] == [0, 1, 2, 3]
    pop = lowered.populations[2]
    assert (pop.name, pop.delay) == ("if_c", 0)
    (branch,) = pop.skips
    assert (branch.source, branch.delay) == (0, 1)
    assert isinstance(branch.synapse, SparseSpec)
    s = (np.random.default_rng(4).random((2, 4, 6, 6)) < 0.5).astype(np.float32)
    ops = [] if skip == "identity" else _ops(graph, f"skip_{skip}")
    want = _apply(ops, s) / np.float32(1.2)  # if_c's threshold, folded into every synapse
    got = _sparse_in_float(branch.synapse, s)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_add_that_is_not_directly_before_neurons_is_refused_naming_it() -> None:
    graph = residual_block(deep=False)
    graph.ops.remove(_ops(graph, "skip_add")[0])
    graph.ops.insert(len(graph.ops) - 3, Add(name="late_add", inputs=("c3", "sa"), output="r0"))
    graph.ops.insert(len(graph.ops) - 3, Scale(name="after", inputs=("r0",), output="r", value=np.float32(2)))
    graph.verify()
    with pytest.raises(ConversionError, match=r"Add 'late_add' joins 2 branches; the loihi target maps a residual Add"):
        lower(graph)


def test_maxpool_is_refused_naming_the_op() -> None:
    with pytest.raises(ConversionError, match=r"MaxPool2d 'maxpool1' has no Loihi equivalent.*maxpool=avg"):
        lower(with_maxpool())


def test_concat_before_the_input_neurons_is_refused_naming_the_op() -> None:
    rng = np.random.default_rng(0)
    ops = [
        Concat(name="cat", inputs=("x", "x"), output="c", axis=0),
        Dense(name="fc1", inputs=("c",), output="a", weight=rng.normal(size=(3, 8)).astype(np.float32)),
        IF(name="if1", inputs=("a",), output="s", threshold=np.float32(1)),
        Dense(name="fc2", inputs=("s",), output="y", weight=rng.normal(size=(2, 3)).astype(np.float32)),
    ]
    with pytest.raises(ConversionError, match=r"Concat 'cat' joins 2 branches.*not before the input neurons"):
        lower(Graph("cat", {"x": TensorType((4,))}, ["y"], ops))


def test_a_layer_concatenated_with_itself_before_the_readout_is_two_synapses_from_it() -> None:
    rng = np.random.default_rng(0)
    ops = [
        Dense(name="fc1", inputs=("x",), output="a", weight=rng.normal(size=(3, 4)).astype(np.float32)),
        IF(name="if1", inputs=("a",), output="s", threshold=np.float32(1)),
        Concat(name="cat", inputs=("s", "s"), output="c", axis=0),
        Dense(name="fc2", inputs=("c",), output="y", weight=rng.normal(size=(2, 6)).astype(np.float32)),
    ]
    readout = lower(Graph("cat", {"x": TensorType((4,))}, ["y"], ops)).populations[-1]
    (skip,) = readout.skips
    assert (readout.role, skip.source, skip.delay, readout.delay) == ("readout", 0, 0, 0)
    weight = ops[-1].weight
    np.testing.assert_allclose(readout.synapse.weight + skip.synapse.weight, weight[:, :3] + weight[:, 3:], rtol=1e-6)


def test_asymmetric_conv_padding_is_refused_naming_the_op_and_padding() -> None:
    graph = small_cnn()
    graph.ops.remove(_ops(graph, "pool1")[0])
    conv2 = _ops(graph, "conv2")[0]
    conv2.inputs, conv2.stride, conv2.padding = ("s1",), (2, 2), (1, 1, 0, 0)
    conv2.weight = conv2.weight[:, :, :2, :2].copy()  # keep the output 4x4
    graph.verify()
    with pytest.raises(ConversionError, match=r"Conv2d 'conv2': padding \(1, 1, 0, 0\).*asymmetric"):
        lower(graph)


@pytest.mark.parametrize("case", ["overlapping", "asymmetric"])
def test_a_pooling_that_is_no_block_is_a_convolution_plus_its_border_corrections(case: str) -> None:
    """Overlapping windows (kernel 2, stride 1): the main synapse is the composed convolution (Lava's Conv, its
    kernel shared), a second synapse from the same population lists where the real windows differ from it (the
    border), and the two sum to the graph's pool then conv (the graph's own kernels) on random spikes. A block
    pooling before an asymmetrically padded convolution has no composed Conv of the output's shape (Lava pads
    symmetrically): its synapses are listed, and equal the graph's too."""
    graph = small_cnn()
    conv2 = _ops(graph, "conv2")[0]
    if case == "overlapping":
        _ops(graph, "pool1")[0].stride = (1, 1)  # 8x8 -> 7x7, conv2 (padding 1) 7x7, pool2 3x3
        graph.ops[graph.ops.index(_ops(graph, "flat")[0])] = Reshape(
            name="flat", inputs=("p2",), output="f", shape=(54,)
        )
        fc = _ops(graph, "fc")[0]
        fc.weight = np.ones((5, 54), np.float32)
    else:
        conv2.padding = (1, 1, 0, 0)
        conv2.weight = conv2.weight[:, :, :2, :2].copy()  # keep the output 4x4
    graph.verify()
    pop = lower(graph).populations[1]
    s = (np.random.default_rng(3).random((3, 4, 8, 8)) < 0.5).astype(np.float32)
    (theta,) = (op.threshold for op in _ops(graph, "if2"))
    want = _apply(_ops(graph, "pool1", "conv2"), s) / theta
    if case == "asymmetric":
        assert isinstance(pop.synapse, SparseSpec)
        assert not pop.skips
        got = _sparse_in_float(pop.synapse, s) + pop.bias
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        return
    assert isinstance(pop.synapse, ConvSpec)
    assert pop.synapse.pool == (1, 1)
    (fix,) = pop.skips
    assert (fix.source, fix.delay) == (0, 0)
    assert isinstance(fix.synapse, SparseSpec)
    assert 0 < fix.synapse.weight.size < int(np.prod(pop.shape)) * pop.synapse.weight[0].size
    got = _lava_conv_in_float(pop.synapse, s) + _sparse_in_float(fix.synapse, s) + pop.bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_graph_without_neurons_is_refused() -> None:
    ops = [Dense(name="fc", inputs=("x",), output="y", weight=np.ones((2, 3), np.float32))]
    with pytest.raises(ConversionError, match="no spiking neurons"):
        lower(Graph("ann", {"x": TensorType((3,))}, ["y"], ops))


@pytest.mark.parametrize("make", [small_cnn, residual, lambda: residual_block(), lambda: concat_block()])
def test_lowering_walks_the_graph_through_one_index(monkeypatch, make) -> None:
    """Every walk between neuron layers asks one GraphIndex, never Graph.producer (a scan of all ops per call)."""
    graph = make()
    want = lower(graph.copy())

    def scan(*args, **kwargs):
        raise AssertionError("Graph.producer scans every op; lowering uses graph.index()")

    monkeypatch.setattr(Graph, "producer", scan)
    got = lower(graph)
    assert [(p.name, p.role, p.depth, p.ops) for p in got.populations] == [
        (p.name, p.role, p.depth, p.ops) for p in want.populations
    ]
