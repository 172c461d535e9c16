"""Chains of linear ops that the lowering maps without composing them through the identity (issue #16's zoo gaps):
a large Dense read through a flatten (and a block pooling), as VGG's fc6 is; a DenseNet transition (1x1
convolution, average pool) read by the next block's BatchNorm through its Concat; and a readout through a global
average pool (SqueezeNet's end). Each synapse computes what the graph's ops compute, under a composition cap that
the identity composition would exceed."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.errors import ConversionError
from neurodeploy.ir import IF, AvgPool2d, Concat, Conv2d, Dense, Graph, Reshape, TensorType, kernels
from neurodeploy.ir.ops import Relu
from neurodeploy.lowering import ConvSpec, DenseSpec, Rules, SparseSpec, lower
from neurodeploy.simulate import simulate

F = np.float32
CAP = 1000  # far below what composing these chains through the identity takes
SMALL = {
    "listed": Rules(target="spinnaker", chip="SpiNNaker", delayed_conv=True, max_dense_entries=CAP),
    "loihi": Rules(target="loihi", chip="Loihi", shared_kernels=True, max_dense_entries=CAP),
}


def _conv(name, x, y, c_in, c_out, k, seed, groups=1, scale=0.5):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, scale, (c_out, c_in // groups, k, k)).astype(F)
    bias = rng.uniform(-0.05, 0.1, c_out).astype(F)
    return Conv2d(name=name, inputs=(x,), output=y, weight=weight, bias=bias, padding=(k // 2,) * 4, groups=groups)


def _if(name, x, y):
    return IF(name=name, inputs=(x,), output=y, threshold=F(1.0))


def _applied(spec, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A synapse applied to a batch of maps, in float64."""
    if isinstance(spec, ConvSpec):
        kernel = np.repeat(np.repeat(spec.weight, spec.pool[0], axis=2), spec.pool[1], axis=3)
        pads = (spec.padding[0], spec.padding[1], spec.padding[0], spec.padding[1])
        got = kernels.conv2d(x, kernel, None, spec.stride, pads, spec.dilation, spec.groups)
        return got.astype(np.float64).reshape(len(x), *shape)
    if isinstance(spec, DenseSpec):
        return (x.reshape(len(x), -1).astype(np.float64) @ spec.weight.T.astype(np.float64)).reshape(len(x), *shape)
    got = np.zeros((len(x), int(np.prod(shape))), np.float64)
    np.add.at(got.T, spec.rows, (x.reshape(len(x), -1)[:, spec.cols].astype(np.float64) * spec.weight).T)
    return got.reshape(len(x), *shape)


def _input_of(lowered, name: str, maps: dict[str, np.ndarray]) -> np.ndarray:
    """Population ``name``'s input current from the maps of its source populations (by name): every synapse, and
    the bias."""
    k = next(i for i, p in enumerate(lowered.populations) if p.name == name)
    pop = lowered.populations[k]
    total = np.zeros((len(next(iter(maps.values()))), *pop.shape))
    for incoming in lowered.incoming(k):
        total += _applied(incoming.synapse, maps[lowered.populations[incoming.source].name], pop.shape)
    return total + pop.bias


def vgg_head(pool: bool | str) -> Graph:
    """conv -> IF a (4, 8, 8) -> [AvgPool 2x2, or ``"whole"``: one 8x8 window at stride 1, ResNet-50's global
    pool] -> flatten -> Dense (6) -> IF b -> Dense (3): VGG's fc6 in small."""
    rng = np.random.default_rng(3)
    n = 4 if pool == "whole" else 4 * 4 * 4 if pool else 4 * 8 * 8
    window = (8, 8) if pool == "whole" else (2, 2)
    step = (1, 1) if pool == "whole" else (2, 2)
    ops = [_conv("c1", "x", "h1", 1, 4, 3, 0), _if("a", "h1", "sa")]
    ops += [AvgPool2d(name="pool", inputs=("sa",), output="p", kernel=window, stride=step)] if pool else []
    ops += [
        Reshape(name="flat", inputs=("p" if pool else "sa",), output="f", shape=(n,)),
        Dense(name="fc6", inputs=("f",), output="h2", weight=rng.normal(0, 0.3, (6, n)).astype(F),
              bias=rng.uniform(0, 0.1, 6).astype(F)),
        _if("b", "h2", "sb"),
        Dense(name="fc7", inputs=("sb",), output="y", weight=rng.normal(0, 0.3, (3, 6)).astype(F)),
    ]  # fmt: skip
    graph = Graph(name="vgg_head", inputs={"x": TensorType((1, 8, 8))}, outputs=["y"], ops=ops)
    graph.verify()
    return graph


@pytest.mark.parametrize("pool", [False, True, "whole"])
@pytest.mark.parametrize("rules", list(SMALL.values()), ids=list(SMALL))
def test_a_dense_after_a_flatten_is_its_own_weights_whatever_the_cap(pool: bool | str, rules: Rules) -> None:
    graph = vgg_head(pool)
    lowered = lower(graph, rules)
    b = next(p for p in lowered.populations if p.name == "b")
    assert isinstance(b.synapse, DenseSpec)
    assert b.synapse.weight.shape == (6, 256)
    assert b.synapse.weight.size > CAP
    spikes = (np.random.default_rng(1).random((5, 4, 8, 8)) < 0.4).astype(F)
    ops = {op.name: op for op in graph.ops}
    want = spikes
    for name in ("pool", "flat", "fc6") if pool else ("flat", "fc6"):
        want = ops[name].forward([want])
    np.testing.assert_allclose(_input_of(lowered, "b", {"a": spikes}), want, rtol=1e-5, atol=1e-5)


def test_a_chain_composed_through_the_identity_past_the_cap_names_its_ops_and_the_limit() -> None:
    ops = [
        _conv("c1", "x", "h1", 1, 4, 3, 0),
        _if("a", "h1", "sa"),
        AvgPool2d(name="pool", inputs=("sa",), output="p", kernel=(3, 3), stride=(1, 1), padding=(1,) * 4),
        Reshape(name="flat", inputs=("p",), output="f", shape=(256,)),
        Dense(name="fc", inputs=("f",), output="h2", weight=np.ones((6, 256), F)),
        _if("b", "h2", "sb"),
        Dense(name="out", inputs=("sb",), output="y", weight=np.ones((3, 6), F)),
    ]
    graph = Graph(name="g", inputs={"x": TensorType((1, 8, 8))}, outputs=["y"], ops=ops)
    graph.verify()
    with pytest.raises(ConversionError, match=r"AvgPool2d 'pool', Reshape 'flat', Dense 'fc'.*256 x 6.*1,000 the"):
        lower(graph, SMALL["listed"])


def densenet_transition() -> Graph:
    """A DenseNet block's end and the next block's start: IF t (4, 8, 8) -> the transition's Conv 1x1 (3) ->
    AvgPool 2x2 -> p (3, 4, 4); the next block: BatchNorm (depthwise 1x1) -> IF u -> Conv 3x3 (2) -> IF v; its
    second layer reads Concat(p, v) through a BatchNorm -> IF w -> flatten -> Dense."""
    rng = np.random.default_rng(5)
    ops = [
        _conv("c0", "x", "h0", 1, 4, 3, 0),
        _if("t", "h0", "st"),
        _conv("trans", "st", "ht", 4, 3, 1, 1),
        AvgPool2d(name="tpool", inputs=("ht",), output="p", kernel=(2, 2), stride=(2, 2)),
        _conv("bn1", "p", "b1", 3, 3, 1, 2, groups=3, scale=1.0),
        _if("u", "b1", "su"),
        _conv("c2", "su", "h2", 3, 2, 3, 3),
        _if("v", "h2", "sv"),
        Concat(name="cat", inputs=("p", "sv"), output="cat_out", axis=0),
        _conv("bn2", "cat_out", "b2", 5, 5, 1, 4, groups=5, scale=1.0),
        _if("w", "b2", "sw"),
        Reshape(name="flat", inputs=("sw",), output="f", shape=(80,)),
        Dense(name="fc", inputs=("f",), output="y", weight=rng.normal(0, 0.3, (3, 80)).astype(F)),
    ]
    graph = Graph(name="transition", inputs={"x": TensorType((1, 8, 8))}, outputs=["y"], ops=ops)
    graph.verify()
    return graph


@pytest.mark.parametrize("rules", list(SMALL.values()), ids=list(SMALL))
def test_a_densenet_transition_read_through_a_concat_and_a_batchnorm_maps_without_composing(rules: Rules) -> None:
    graph = densenet_transition()
    lowered = lower(graph, rules)
    u = next(p for p in lowered.populations if p.name == "u")
    assert isinstance(u.synapse, ConvSpec)
    assert u.synapse.pool == (2, 2)
    rng = np.random.default_rng(2)
    maps = {name: (rng.random((4, *shape)) < 0.5).astype(F) for name, shape in (("t", (4, 8, 8)), ("v", (2, 4, 4)))}
    ops = {op.name: op for op in graph.ops}
    p = ops["tpool"].forward([ops["trans"].forward([maps["t"]])])
    want = ops["bn2"].forward([np.concatenate([p, maps["v"]], axis=1)])
    np.testing.assert_allclose(_input_of(lowered, "w", maps), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_input_of(lowered, "u", maps), ops["bn1"].forward([p]), rtol=1e-5, atol=1e-5)


def squeezenet_like(spiking: bool) -> Graph:
    """conv -> a fire module (squeeze 1x1; expand 1x1 and 3x3, concatenated) -> conv 1x1 to 3 classes -> ReLU ->
    global average pool (an AvgPool over the whole map, as the importer makes it) -> flatten: no Dense after the
    pool. ``spiking``: IF neurons (threshold 1) where the ANN has ReLUs."""
    act = _if if spiking else (lambda name, x, y: Relu(name=name, inputs=(x,), output=y))
    ops = [
        _conv("c1", "x", "h1", 1, 4, 3, 0, scale=0.4), act("r1", "h1", "s1"),
        _conv("squeeze", "s1", "h2", 4, 2, 1, 1, scale=0.4), act("r2", "h2", "s2"),
        _conv("e1", "s2", "h3", 2, 3, 1, 2, scale=0.4), act("r3", "h3", "s3"),
        _conv("e3", "s2", "h4", 2, 3, 3, 3, scale=0.4), act("r4", "h4", "s4"),
        Concat(name="fire", inputs=("s3", "s4"), output="cat", axis=0),
        _conv("classes", "cat", "h5", 6, 3, 1, 4, scale=0.4), act("r5", "h5", "s5"),
        AvgPool2d(name="gap", inputs=("s5",), output="g", kernel=(6, 6), stride=(1, 1)),
        Reshape(name="flat", inputs=("g",), output="y", shape=(3,)),
    ]  # fmt: skip
    graph = Graph(name="squeeze", inputs={"x": TensorType((1, 6, 6))}, outputs=["y"], ops=ops)
    graph.verify()
    return graph


@pytest.mark.parametrize("rules", list(SMALL.values()), ids=list(SMALL))
def test_a_readout_through_a_global_average_pool_is_a_readout_population_of_the_pooled_spikes(rules: Rules) -> None:
    graph = squeezenet_like(spiking=True)
    lowered = lower(graph, rules)
    readout = lowered.populations[lowered.readout.population]
    assert (lowered.readout.kind, readout.role, readout.shape) == ("membrane", "readout", (3,))
    assert isinstance(readout.synapse, SparseSpec)
    assert readout.synapse.weight.size == 3 * 36
    x = (np.random.default_rng(0).random((4, 1, 6, 6)) * 0.5).astype(F)
    steps = 512
    run = simulate(graph, {"x": x}, steps)
    counts = run.counts["r5"].astype(np.float64)  # the reference's spikes of the last layer, per neuron
    pooled = _applied(readout.synapse, counts, (3,)) / steps + readout.bias
    np.testing.assert_allclose(pooled, run.outputs["y"], rtol=1e-5, atol=1e-6)
    ann = squeezenet_like(spiking=False)
    np.testing.assert_allclose(run.outputs["y"], _run(ann, x), atol=0.02)  # the SNN's readout is the ANN's, at large T


def _run(graph: Graph, x: np.ndarray) -> np.ndarray:
    values = {"x": x}
    for op in graph.ops:
        values[op.output] = op.forward([values[i] for i in op.inputs])
    return values["y"]


def test_a_readout_through_other_ops_still_names_them() -> None:
    ops = [
        _conv("c1", "x", "h1", 1, 4, 3, 0),
        _if("a", "h1", "sa"),
        Reshape(name="flat", inputs=("sa",), output="f", shape=(144,)),
        Reshape(name="back", inputs=("f",), output="y", shape=(4, 6, 6)),
    ]
    graph = Graph(name="g", inputs={"x": TensorType((1, 6, 6))}, outputs=["y"], ops=ops)
    graph.verify()
    with pytest.raises(ConversionError, match=r"read from spikes through Reshape 'flat', Reshape 'back'"):
        lower(graph, SMALL["listed"])


def test_neurons_reading_neurons_with_no_op_between_are_refused_naming_them() -> None:
    """IF b reads IF a's spikes directly: no synapse to map, a named refusal (not an index error of the branch
    checks that look at a chain's first op)."""
    ops = [
        _conv("c1", "x", "h1", 1, 2, 1, 0),
        _if("a", "h1", "sa"),
        _if("b", "sa", "sb"),
        Reshape(name="flat", inputs=("sb",), output="f", shape=(8,)),
        Dense(name="fc", inputs=("f",), output="y", weight=np.ones((2, 8), F)),
    ]
    graph = Graph(name="if_if", inputs={"x": TensorType((1, 2, 2))}, outputs=["y"], ops=ops)
    for rules in SMALL.values():
        with pytest.raises(ConversionError, match=r"IF 'b': no Conv or Dense between two neuron layers"):
            lower(graph, rules)


def test_an_inception_pool_branch_after_a_pooling_through_a_concat_maps_to_one_convolution() -> None:
    """Inception v2's shape: a Concat of two layers, its stride-2 pool (padded at the end only, as a max pool with
    ceil mode exports), then the next block's pool branch (3 x 3, stride 1, padded, no count of the padding) and
    its 1 x 1 projection: each Concat input's synapse is one convolution over that input and its border
    corrections, under a cap the identity composition exceeds, and the population's input is what the graph's ops
    compute."""
    rules = Rules(target="loihi", chip="Loihi", shared_kernels=True, max_dense_entries=20000)
    ops = [
        _conv("c0", "x", "h0", 1, 2, 3, 3), _if("z", "h0", "sz"),
        _conv("c1", "sz", "h1", 2, 4, 3, 0), _if("a", "h1", "sa"),
        _conv("c2", "sz", "h2", 2, 2, 3, 1), _if("b", "h2", "sb"),
        Concat(name="cat", inputs=("sa", "sb"), output="cat_out", axis=0),
        AvgPool2d(name="stem", inputs=("cat_out",), output="p1", kernel=(3, 3), stride=(2, 2), padding=(0, 0, 1, 1)),
        AvgPool2d(name="branch", inputs=("p1",), output="p2", kernel=(3, 3), stride=(1, 1), padding=(1,) * 4),
        _conv("proj", "p2", "h3", 6, 3, 1, 2), _if("w", "h3", "sw"),
        Reshape(name="flat", inputs=("sw",), output="f", shape=(75,)),
        Dense(name="fc", inputs=("f",), output="y", weight=np.ones((2, 75), F), bias=None),
    ]  # fmt: skip
    graph = Graph(name="inception", inputs={"x": TensorType((1, 10, 10))}, outputs=["y"], ops=ops)
    graph.verify()
    assert 600 * 75 > rules.max_dense_entries  # what composing each input through the identity would take
    lowered = lower(graph, rules)
    w = next(k for k, p in enumerate(lowered.populations) if p.name == "w")
    incoming = lowered.incoming(w)
    assert sum(isinstance(i.synapse, ConvSpec) for i in incoming) == 2  # one per Concat input, 8 x 8 kernels
    assert all(isinstance(i.synapse, (ConvSpec, SparseSpec)) for i in incoming)  # and their corrections
    rng = np.random.default_rng(4)
    maps = {name: (rng.random((4, c, 10, 10)) < 0.5).astype(F) for name, c in (("a", 4), ("b", 2))}
    by_name = {op.name: op for op in graph.ops}
    cat = np.concatenate([maps["a"], maps["b"]], axis=1)
    want = by_name["proj"].forward([by_name["branch"].forward([by_name["stem"].forward([cat])])])
    np.testing.assert_allclose(_input_of(lowered, "w", maps), want, rtol=1e-5, atol=1e-5)
