"""The target-neutral lowering (neurodeploy.lowering): a target's Rules name it in errors and say whether a delayed
branch may stay a convolution. The Loihi plugin's tests cover the lowering itself with Loihi's rules."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.errors import ConversionError
from neurodeploy.ir import Add, Conv2d, Dense, Graph, MaxPool2d, Reshape, TensorType
from neurodeploy.ir.neurons import IF
from neurodeploy.lowering import ConvSpec, Rules, SparseSpec, lower

SPINNAKER = Rules(target="spinnaker", chip="SpiNNaker", delayed_conv=True)
LOIHI_LIKE = Rules(target="loihi", chip="Loihi", delayed_conv=False)


def _conv(name: str, x: str, y: str, c_in: int, c_out: int, k: int, seed: int) -> Conv2d:
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(c_out, c_in, k, k)).astype(np.float32) * 0.5
    return Conv2d(name=name, inputs=(x,), output=y, weight=weight, bias=None, padding=(k // 2,) * 4)


def skip_net() -> Graph:
    """x -> conv -> IF a -> conv -> IF b -> conv -> IF c -> conv + 1x1 conv skip from a -> IF d -> dense: the skip
    from a is two synapses shorter than the main path."""
    ops = [
        _conv("conv1", "x", "c1", 1, 2, 3, 0),
        IF(name="a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        _conv("conv2", "sa", "c2", 2, 2, 3, 1),
        IF(name="b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        _conv("conv3", "sb", "c3", 2, 2, 3, 2),
        IF(name="c", inputs=("c3",), output="sc", threshold=np.float32(1)),
        _conv("conv4", "sc", "c4", 2, 2, 3, 3),
        _conv("skip", "sa", "k", 2, 2, 1, 4),
        Add(name="join", inputs=("c4", "k"), output="j"),
        IF(name="d", inputs=("j",), output="sd", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("sd",), output="f", shape=(2 * 4 * 4,)),
        Dense(name="fc", inputs=("f",), output="y", weight=np.ones((3, 32), np.float32), bias=None),
    ]
    graph = Graph(name="skip", inputs={"x": TensorType((1, 4, 4))}, outputs=["y"], ops=ops)
    graph.verify()
    return graph


@pytest.mark.parametrize(("rules", "kind"), [(SPINNAKER, ConvSpec), (LOIHI_LIKE, SparseSpec)])
def test_a_delayed_branch_stays_a_convolution_only_where_the_target_delays_convolutions(rules, kind) -> None:
    lowered = lower(skip_net(), rules)
    d = next(p for p in lowered.populations if p.name == "d")
    (skip,) = d.skips
    assert (skip.source, skip.delay) == (0, 2)
    assert isinstance(skip.synapse, kind)
    assert isinstance(d.synapse, ConvSpec)  # the main path is not delayed
    assert lowered.delay == 4


@pytest.mark.parametrize(("k", "stride", "groups"), [(1, 2, 1), (3, 1, 1), (3, 2, 2)])
def test_a_delayed_convolution_as_a_list_of_taps_computes_the_convolution(k: int, stride: int, groups: int) -> None:
    """Where convolutions take no delay, a delayed one is the list of its taps: applied one synapse at a time, they
    give the convolution's output (the graph's Conv2d forward, an independent implementation)."""
    graph = skip_net()
    rng = np.random.default_rng(k + stride)
    weight = rng.normal(size=(2, 2 // groups, k, k)).astype(np.float32)
    conv = Conv2d(
        name="skip",
        inputs=("sa",),
        output="k",
        weight=weight,
        bias=None,
        padding=(k // 2,) * 4,
        stride=(stride, stride),
        groups=groups,
    )
    graph.ops[7] = conv
    if stride > 1:  # the main path must shrink alike: stride the last conv too
        graph.ops[6] = graph.ops[6].copy(stride=(stride, stride))
        graph.ops[-2] = Reshape(name="flat", inputs=("sd",), output="f", shape=(2 * 2 * 2,))
        graph.ops[-1] = Dense(name="fc", inputs=("f",), output="y", weight=np.ones((3, 8), np.float32), bias=None)
    graph.verify()
    (skip,) = next(p for p in lower(graph, LOIHI_LIKE).populations if p.name == "d").skips
    assert isinstance(skip.synapse, SparseSpec)
    spikes = (rng.random((3, 2, 4, 4)) < 0.5).astype(np.float32)
    want = conv.forward([spikes]).reshape(3, -1)
    got = np.zeros_like(want)
    for r, c, w in zip(skip.synapse.rows, skip.synapse.cols, skip.synapse.weight):
        got[:, r] += w * spikes.reshape(3, -1)[:, c]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_errors_name_the_target_of_the_rules() -> None:
    graph = skip_net()
    graph.ops[2] = MaxPool2d(name="pool", inputs=("sa",), output="c2", kernel=(1, 1), stride=(1, 1))
    with pytest.raises(ConversionError, match=r"MaxPool2d 'pool' has no SpiNNaker equivalent"):
        lower(graph, SPINNAKER)
    with pytest.raises(ConversionError, match=r"the spinnaker target takes one input and one output"):
        lower(Graph(name="two", inputs={"x": TensorType((1,)), "z": TensorType((1,))}, outputs=["x"]), SPINNAKER)


@pytest.mark.parametrize(
    ("pool_k", "pad", "include_pad", "conv_k", "stride"),
    [(3, 1, True, 1, 1), (3, 0, False, 3, 1), (2, 0, False, 1, 2), (3, 1, True, 3, 2)],
)
def test_a_stride_one_average_pool_folds_into_an_unpadded_convolution(pool_k, pad, include_pad, conv_k, stride):
    """An Inception branch's pool (3x3, stride 1, padding 1, the padding counted) before an unpadded convolution is
    one convolution: the lowered synapse, applied to spikes, equals the graph's own AvgPool2d then Conv2d."""
    from neurodeploy.ir import AvgPool2d, kernels

    rng = np.random.default_rng(pool_k + 10 * conv_k + stride)
    pool = AvgPool2d(
        name="pool",
        inputs=("sa",),
        output="p",
        kernel=(pool_k, pool_k),
        stride=(1, 1),
        padding=(pad,) * 4,
        count_include_pad=include_pad,
    )
    conv = Conv2d(
        name="conv2",
        inputs=("p",),
        output="c2",
        weight=rng.normal(size=(3, 2, conv_k, conv_k)).astype(np.float32),
        bias=None,
        stride=(stride, stride),
    )
    side = (8 + 2 * pad - pool_k + 1 - conv_k) // stride + 1
    ops = [
        _conv("conv1", "x", "c1", 1, 2, 3, 0),
        IF(name="a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        pool,
        conv,
        IF(name="b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("sb",), output="f", shape=(3 * side * side,)),
        Dense(name="fc", inputs=("f",), output="y", weight=np.ones((2, 3 * side * side), np.float32), bias=None),
    ]
    graph = Graph(name="box", inputs={"x": TensorType((1, 8, 8))}, outputs=["y"], ops=ops)
    graph.verify()
    b = next(p for p in lower(graph, SPINNAKER).populations if p.name == "b")
    spec = b.synapse
    assert isinstance(spec, ConvSpec)
    assert spec.pool == (1, 1)
    spikes = (rng.random((4, 2, 8, 8)) < 0.4).astype(np.float32)
    want = conv.forward([pool.forward([spikes])])
    pads = (spec.padding[0], spec.padding[1], spec.padding[0], spec.padding[1])
    got = kernels.conv2d(spikes, spec.weight, None, spec.stride, pads, (1, 1), 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


POOLED = [
    # pool: kernel, stride, padding (t, l, b, r), dilation, ceil, count pad; conv: kernel, stride, padding, dilation,
    # groups
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, False, 3, 1, (1, 1, 1, 1), 1, 1),  # stride 1, padded conv
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False, False, 3, 1, (1, 1, 1, 1), 1, 1),  # 9x9: the last row dropped
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, True, 1, 1, (0, 0, 0, 0), 1, 1),  # ResNet's stem pool
    ((3, 3), (2, 2), (0, 0, 0, 0), (1, 1), True, False, 3, 2, (1, 1, 1, 1), 1, 2),  # ceil mode, grouped
    ((2, 3), (1, 2), (0, 1, 1, 0), (2, 1), False, False, 2, 1, (1, 0, 0, 1), 2, 1),  # everything asymmetric
    # Inception v2's stem pool (padded at the end only) on an even map, before a 1x1 convolution: no symmetric
    # padding gives the composed convolution its output's size, a leading row and column of zeros do
    ((3, 3), (2, 2), (0, 0, 1, 1), (1, 1), False, False, 1, 1, (0, 0, 0, 0), 1, 1, 10),
]


SHARED = Rules(target="loihi", chip="Loihi", delayed_conv=False, shared_kernels=True)


def _applied(spec, spikes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A synapse applied to a batch of spike maps, in float64: a convolution by the graph's kernels, a list of
    synapses one at a time, a Dense as a matrix product."""
    from neurodeploy.ir import kernels
    from neurodeploy.lowering import DenseSpec

    if isinstance(spec, DenseSpec):
        flat = spikes.reshape(len(spikes), -1).astype(np.float64)
        return (flat @ spec.weight.T.astype(np.float64)).reshape(len(spikes), *shape)

    if isinstance(spec, ConvSpec):
        pads = (spec.padding[0], spec.padding[1], spec.padding[0], spec.padding[1])
        kernel = np.repeat(np.repeat(spec.weight, spec.pool[0], axis=2), spec.pool[1], axis=3)  # a block's pool
        got = kernels.conv2d(spikes, kernel, None, spec.stride, pads, spec.dilation, spec.groups)
        return got.astype(np.float64).reshape(len(spikes), *shape)
    assert len(np.unique(spec.rows * spikes[0].size + spec.cols)) == spec.weight.size  # each pair listed once
    flat = spikes.reshape(len(spikes), -1).astype(np.float64)
    got = np.zeros((len(spikes), int(np.prod(shape))), np.float64)
    np.add.at(got.T, spec.rows, (flat[:, spec.cols] * spec.weight).T)
    return got.reshape(len(spikes), *shape)


def _between_two_layers(name: str, middle: list, side: int, shape: tuple[int, ...], threshold: float) -> Graph:
    """conv1 (1 -> 4 channels, 3 x 3) and IF a on a side x side input, the ``middle`` ops from a's spikes ("sa")
    to "c2" of ``shape``, IF b (``threshold``), a flatten and a Dense readout."""
    ops = [
        _conv("conv1", "x", "c1", 1, 4, 3, 0),
        IF(name="a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        *middle,
        IF(name="b", inputs=("c2",), output="sb", threshold=np.float32(threshold)),
        Reshape(name="flat", inputs=("sb",), output="f", shape=(int(np.prod(shape)),)),
        Dense(name="fc", inputs=("f",), output="y", weight=np.ones((2, int(np.prod(shape))), np.float32), bias=None),
    ]
    graph = Graph(name=name, inputs={"x": TensorType((1, side, side))}, outputs=["y"], ops=ops)
    graph.verify()
    return graph


@pytest.mark.parametrize("geometry", POOLED, ids=[f"pool{i}" for i in range(len(POOLED))])
@pytest.mark.parametrize("rules", [SPINNAKER, LOIHI_LIKE, SHARED], ids=["listed", "listed-loihi", "shared"])
def test_a_pooling_that_is_no_convolution_becomes_the_exact_list_of_composed_synapses(geometry, rules):
    """A pooling whose windows overlap, are padded or do not tile the map, before a convolution: the composed
    synapses listed one by one (or, where kernels are shared, the composed convolution plus its border corrections
    as a second synapse from the same population) equal the graph's own AvgPool2d then Conv2d (independent
    kernels) on random spikes, including where the convolution pads the pooled map next to input cells the pooling
    dropped."""
    from neurodeploy.ir import AvgPool2d

    (pk, ps, pp, pd, ceil, count_pad, ck, cs, cp, cd, groups, *size) = geometry
    side = size[0] if size else 9  # the input map's height and width
    rng = np.random.default_rng(sum(pk) + 3 * ck + cs)
    pool = AvgPool2d(
        name="pool",
        inputs=("sa",),
        output="p",
        kernel=pk,
        stride=ps,
        padding=pp,
        dilation=pd,
        ceil_mode=ceil,
        count_include_pad=count_pad,
    )
    weight = rng.normal(size=(4, 4 // groups, ck, ck)).astype(np.float32)
    conv = Conv2d(
        name="conv2",
        inputs=("p",),
        output="c2",
        weight=weight,
        bias=np.arange(4, dtype=np.float32),
        stride=(cs, cs),
        padding=cp,
        dilation=(cd, cd),
        groups=groups,
    )
    spikes = (rng.random((5, 4, side, side)) < 0.4).astype(np.float32)
    want = conv.forward([pool.forward([spikes])])
    shape = want.shape[1:]
    graph = _between_two_layers("pooled", [pool, conv], side, shape, threshold=2)
    populations = lower(graph, rules).populations
    b = next(p for p in populations if p.name == "b")
    if rules.shared_kernels:
        assert isinstance(b.synapse, ConvSpec)
        got = _applied(b.synapse, spikes, shape)
        # the corrections along the borders, a further synapse; none where every window is the composed one's
        # (ResNet's stem pool counts its padding: the composed convolution's own padding is exact)
        assert len(b.skips) == (0 if count_pad else 1)
        for fix in b.skips:
            assert (fix.source, fix.delay) == (populations.index(b) - 1, 0)
            assert isinstance(fix.synapse, SparseSpec)
            assert fix.synapse.weight.size < _applied(b.synapse, spikes[:1], shape).size * 4 * 9  # the borders only
            got = got + _applied(fix.synapse, spikes, shape)
    else:
        assert isinstance(b.synapse, SparseSpec)
        assert not b.skips
        assert b.synapse.shape == shape
        assert b.synapse.input_shape == (4, side, side)
        got = _applied(b.synapse, spikes, shape)
    # threshold 2 folded into the synapse, the convolution's bias into the neurons' bias
    bias = np.broadcast_to(np.arange(4, dtype=np.float32).reshape(-1, 1, 1), shape)
    np.testing.assert_allclose(got * 2 + bias, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.bias * 2, bias, rtol=1e-6)


TWICE = [
    # first pool, second pool (kernel, stride, padding, count pad), conv (kernel, padding), map side
    (((3, 3), (2, 2), (0, 0, 1, 1), False), ((3, 3), (1, 1), (1, 1, 1, 1), False), (1, 0), 10),  # Inception v2
    (((2, 2), (2, 2), (0, 0, 0, 0), False), ((3, 3), (1, 1), (1, 1, 1, 1), True), (3, 1), 8),  # block, then padded
    (((3, 3), (2, 2), (1, 1, 1, 1), True), ((2, 2), (1, 1), (0, 0, 0, 0), False), (3, 1), 9),  # overlapping both
]


@pytest.mark.parametrize("geometry", TWICE, ids=[f"twice{i}" for i in range(len(TWICE))])
def test_two_pools_before_a_convolution_compose_into_one_shared_kernel_and_its_corrections(geometry):
    """An Inception block's pool branch read straight after a pooling (Inception v2's stem pool, then the branch's
    3 x 3 pool and 1 x 1 projection): where kernels are shared, one convolution over the input and its border
    corrections equal the graph's own two AvgPool2d and Conv2d on random spikes; a target that lists its synapses
    refuses the chain, naming what it maps."""
    from neurodeploy.ir import AvgPool2d

    (k1, s1, p1, c1), (k2, s2, p2, c2), (ck, cp), side = geometry
    rng = np.random.default_rng(side + ck)
    first = AvgPool2d(name="pool1", inputs=("sa",), output="p1", kernel=k1, stride=s1, padding=p1, count_include_pad=c1)
    second = AvgPool2d(
        name="pool2", inputs=("p1",), output="p2", kernel=k2, stride=s2, padding=p2, count_include_pad=c2
    )
    conv = Conv2d(
        name="conv2",
        inputs=("p2",),
        output="c2",
        weight=rng.normal(size=(3, 4, ck, ck)).astype(np.float32),
        bias=np.arange(3, dtype=np.float32),
        padding=(cp,) * 4,
    )
    spikes = (rng.random((5, 4, side, side)) < 0.4).astype(np.float32)
    want = conv.forward([second.forward([first.forward([spikes])])])
    shape = want.shape[1:]
    graph = _between_two_layers("twice", [first, second, conv], side, shape, threshold=1)
    b = next(p for p in lower(graph, SHARED).populations if p.name == "b")
    assert isinstance(b.synapse, ConvSpec)
    got = _applied(b.synapse, spikes, shape)
    for fix in b.skips:
        assert isinstance(fix.synapse, SparseSpec)
        got = got + _applied(fix.synapse, spikes, shape)
    bias = np.broadcast_to(np.arange(3, dtype=np.float32).reshape(-1, 1, 1), shape)
    np.testing.assert_allclose(got + bias, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(
        ConversionError, match=r"do not map to one synapse; the spinnaker target maps \[AvgPool2d\] Conv2d, or"
    ):
        lower(graph, SPINNAKER)


def test_a_pooled_convolution_too_large_to_list_names_the_limit():
    from neurodeploy.ir import AvgPool2d

    ops = [
        _conv("conv1", "x", "c1", 1, 4, 3, 0),
        IF(name="a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        AvgPool2d(name="pool", inputs=("sa",), output="p", kernel=(3, 3), stride=(2, 2), padding=(1,) * 4),
        _conv("conv2", "p", "c2", 4, 4, 3, 1),
        IF(name="b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("sb",), output="f", shape=(4 * 5 * 5,)),
        Dense(name="fc", inputs=("f",), output="y", weight=np.ones((2, 100), np.float32), bias=None),
    ]
    graph = Graph(name="box", inputs={"x": TensorType((1, 9, 9))}, outputs=["y"], ops=ops)
    graph.verify()
    small = Rules(target="spinnaker", chip="SpiNNaker", delayed_conv=True, max_dense_entries=1000)
    with pytest.raises(
        ConversionError, match=r"AvgPool2d 'pool' before Conv2d 'conv2'.*up to 19,600 .* above the 1,000"
    ):
        lower(graph, small)


def test_a_readout_through_a_concat_and_a_pool_is_read_from_the_dense_weights(monkeypatch):
    """Two neuron layers concatenated, a pool over the whole map, a flatten and a Dense (Inception's readout): each
    input's synapse is its channels' columns of the Dense, repeated over the pool (built from the weights, never by
    composing the identity through the Concat: 5 GB on Inception v2); together they equal the graph's own ops."""
    from neurodeploy.ir import AvgPool2d, Concat
    from neurodeploy.lowering import DenseSpec, _Embed

    side = 4
    rng = np.random.default_rng(7)
    weight = rng.normal(size=(3, 7)).astype(np.float32)
    tail = [
        Concat(name="cat", inputs=("sa", "sb"), output="j", axis=0),
        AvgPool2d(name="gap", inputs=("j",), output="p", kernel=(side, side), stride=(1, 1)),
        Reshape(name="flat", inputs=("p",), output="f", shape=(7,)),
        Dense(name="fc", inputs=("f",), output="y", weight=weight, bias=np.ones(3, np.float32)),
    ]
    ops = [
        _conv("conv1", "x", "c1", 1, 4, 3, 0),
        IF(name="a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        _conv("conv2", "sa", "c2", 4, 3, 3, 1),
        IF(name="b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        *tail,
    ]
    graph = Graph(name="cat", inputs={"x": TensorType((1, side, side))}, outputs=["y"], ops=ops)
    graph.verify()
    composing = _Embed.forward

    def one_at_a_time(self, xs):  # the identity through the Concat would be a batch of every input neuron
        assert len(xs[0]) == 1, "composed through the identity"
        return composing(self, xs)

    monkeypatch.setattr(_Embed, "forward", one_at_a_time)
    populations = lower(graph, LOIHI_LIKE).populations
    readout = populations[-1]
    specs = {populations[readout.source if readout.source is not None else -2].name: readout.synapse}
    specs |= {populations[skip.source].name: skip.synapse for skip in readout.skips}
    assert sorted(specs) == ["a", "b"]
    assert all(isinstance(s, DenseSpec) for s in specs.values())
    a, b = ((rng.random((5, c, side, side)) < 0.5).astype(np.float32) for c in (4, 3))
    want = _apply_ops(tail, np.concatenate([a, b], axis=1))
    got = _applied(specs["a"], a, (3,)) + _applied(specs["b"], b, (3,)) + readout.bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _apply_ops(ops: list, x: np.ndarray) -> np.ndarray:
    for op in ops[1:]:
        x = op.forward([x])
    return x


def test_a_branch_through_many_concats_multiplies_its_embeddings_before_the_kernel(monkeypatch):
    """A DenseNet block's branch: a convolution read through one Concat per later layer, then a BatchNorm. The
    embeddings are multiplied together first (a product as narrow as the branch) and the kernel once with their
    product; multiplied into the kernel one by one, it grew with every Concat (374 s of DenseNet-121's lowering).
    The one convolution equals the chain's own ops."""
    from neurodeploy.ir import Bias, Scale
    from neurodeploy.lowering import _Embed, _simplified

    rng = np.random.default_rng(3)
    conv = _conv("conv", "x", "c", 2, 3, 3, 1)
    ops, channels = [conv], 3
    for k in range(6):  # each layer's Concat puts the branch's channels after 2 new ones
        channels += 2
        ops.append(_Embed(f"cat{k}", 2, (channels, 5, 5)))
    ops += [
        Scale(name="s", inputs=("a",), output="b", value=rng.uniform(0.5, 1.5, (channels, 1, 1)).astype(np.float32)),
        Bias(name="t", inputs=("b",), output="y", value=rng.uniform(-1, 1, (channels, 1, 1)).astype(np.float32)),
    ]
    products = []
    tensordot = np.tensordot

    def counted(a, b, axes=2):
        products.append((np.shape(a), np.shape(b)))
        return tensordot(a, b, axes)

    monkeypatch.setattr(np, "tensordot", counted)
    (one,) = _simplified(ops, (2, 5, 5))
    monkeypatch.undo()
    assert isinstance(one, Conv2d)
    assert one.weight.shape == (channels, 2, 3, 3)
    assert len([p for p in products if len(p[1]) == 4]) == 1  # the kernel, multiplied once
    x = rng.random((4, 2, 5, 5)).astype(np.float32)
    want = x
    for op in ops:
        want = op.forward([want])
    np.testing.assert_allclose(one.forward([x]), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "stride", "padding", "dilation", "groups", "pool", "size"),
    [
        (3, 4, 3, (1, 1), (1, 1), (1, 1), 1, (1, 1), (7, 7)),
        (4, 6, 3, (2, 1), (0, 2), (1, 2), 2, (1, 1), (9, 8)),
        (2, 2, 1, (2, 2), (0, 0), (1, 1), 2, (2, 2), (8, 8)),
        (3, 5, 5, (1, 2), (2, 1), (1, 1), 1, (1, 1), (6, 10)),
    ],
)
def test_a_synapse_list_is_counted_without_listing_it(c_in, c_out, k, stride, padding, dilation, groups, pool, size):
    """:func:`listed_count` (per axis, no list) equals the length of :func:`synapse_list`'s list (every tap
    enumerated), with zero weights, strides, padding, dilation, groups and a pooled kernel; a Dense and a list too."""
    from neurodeploy.lowering import DenseSpec, listed_count, synapse_list

    rng = np.random.default_rng(c_in * 7 + k)
    weight = rng.normal(size=(c_out, c_in // groups, k, k)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.3] = 0  # zero weights list nothing
    spec = ConvSpec(weight, stride, padding, dilation, groups, pool, (c_in, *size))
    span = [dilation[a] * (k * pool[a] - 1) + 1 for a in (0, 1)]
    out = (c_out, *[(size[a] + 2 * padding[a] - span[a]) // stride[a] + 1 for a in (0, 1)])
    listed = synapse_list(spec, out)
    assert listed.rows.size > 0
    assert listed_count(spec, out) == listed.rows.size
    dense = DenseSpec(weight.reshape(c_out, -1), (c_in // groups * k * k,))
    assert listed_count(dense, (c_out,)) == synapse_list(dense, (c_out,)).rows.size == np.count_nonzero(weight)
    assert listed_count(listed, out) == listed.rows.size
