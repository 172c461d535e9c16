"""Concat on the loihi target (binary mode): a Conv2d or Dense reading a channel Concat of spike maps becomes one
population with one synapse per concatenated input (its slice of the weights), the shallower inputs delayed to
arrive with the deepest; the emulated program against the float SNN, the files, and the graphs and modes that
refuse it with an error naming the Concat."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import concat_block, delay_alignment, emit_graph
from neurodeploy_loihi import Loihi2Backend
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, SparseSynapse
from neurodeploy_loihi.graded import GradedError
from neurodeploy_loihi.lowering import ConvSpec, DenseSpec, SparseSpec, lower
from neurodeploy_loihi.netx import NetxError, write_net
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.resources import fan_in_per_neuron, layer_fan_in

from neurodeploy.backends.base import CompiledModel, Emitted
from neurodeploy.errors import ConversionError
from neurodeploy.ir import AvgPool2d, Concat, Conv2d, Dense, Graph, Reshape, Scale, TensorType
from neurodeploy.ir.neurons import IF
from neurodeploy.simulate import simulate

HEADS = ("conv", "pool_conv", "dense")
ORDERS = (("sa", "sb"), ("sb", "sa"), ("sa", "sc", "sb"))
DEPTH = {"sa": 0, "sb": 1, "sc": 2}
INDEX = {"sa": 0, "sb": 1, "sc": 2}


def emit(graph: Graph, folder: Path, calibration: np.ndarray) -> tuple[Program, Emitted]:
    emitted = emit_graph(graph, folder, calibration)
    return Program.load(folder), emitted


def _x(n: int = 32, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 6, 6)).astype(np.float32)


def _op(graph: Graph, name: str):
    (op,) = [o for o in graph.ops if o.name == name]
    return op


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("order", ORDERS)
def test_lowering_splits_the_weights_by_concatenated_input(head: str, order: tuple[str, ...]) -> None:
    """IF d gets one synapse per input of the Concat: from the deepest input (the population before it) the main
    synapse, undelayed: a Conv with that input's kernel channels (``weight[:, c0:c1]``, pool folded) or the Dense
    columns of its channels in the flattened (C, H, W) concat; from each shallower input a DelayDense whose matrix
    is that input's slice composed, delayed by the depth difference minus one. All divided by IF d's threshold,
    the bias counted once."""
    graph = concat_block(seed=1, head=head, order=order)
    lowered = lower(graph)
    pop = lowered.populations[-2]
    assert pop.name == "if_d"
    deepest = max(order, key=DEPTH.get)
    assert pop.depth == DEPTH[deepest] + 1
    assert pop.adds == ["cat"]
    offsets = dict(zip(order, np.cumsum([0, *[graph.types()[s].shape[0] for s in order]]), strict=False))
    theta = np.float32(1.2)
    reader = _op(graph, "fc_d" if head == "dense" else "conv_d")
    sources = {INDEX[s]: s for s in order}

    def columns(name: str) -> slice:
        return slice(int(offsets[name]), int(offsets[name]) + graph.types()[name].shape[0])

    c = columns(deepest)
    if head == "dense":
        assert isinstance(pop.synapse, DenseSpec)
        np.testing.assert_allclose(pop.synapse.weight, reader.weight[:, c.start * 36 : c.stop * 36] / theta, atol=1e-6)
        np.testing.assert_allclose(pop.bias, reader.bias / theta, rtol=1e-6)
    else:
        assert isinstance(pop.synapse, ConvSpec)
        pool = 4.0 if head == "pool_conv" else 1.0
        np.testing.assert_allclose(pop.synapse.weight, reader.weight[:, c] / theta / pool, rtol=1e-6)
        assert pop.synapse.pool == ((2, 2) if head == "pool_conv" else (1, 1))
        np.testing.assert_allclose(pop.bias, np.broadcast_to(reader.bias.reshape(-1, 1, 1) / theta, pop.shape), 1e-6)
    assert pop.delay == 0
    assert sorted(s.source for s in pop.skips) == sorted(INDEX[s] for s in order if s != deepest)
    for skip in pop.skips:
        name = sources[skip.source]
        assert skip.delay == DEPTH[deepest] - DEPTH[name]
        # a delayed conv is the list of its taps (Lava's Conv takes no delay); a delayed Dense stays a Dense
        assert isinstance(skip.synapse, DenseSpec if head == "dense" else SparseSpec)
        # the skip's synapses applied to a map of that input equals the reader on the concat with zeros elsewhere
        spikes = (np.random.default_rng(2).random((4, *graph.types()[name].shape)) < 0.5).astype(np.float32)
        full = np.zeros((4, *graph.types()["cat_out"].shape), np.float32)
        full[:, columns(name)] = spikes
        x = full
        for op_name in ("cat_pool", "cat_flat"):
            if any(o.name == op_name for o in graph.ops):
                x = _op(graph, op_name).forward([x])
        want = reader.forward([x]) - reader.forward([np.zeros_like(x)])
        got = _apply(skip.synapse, spikes)
        np.testing.assert_allclose(got, want.reshape(4, -1) / theta, atol=1e-5)


def _value(graph: Graph, value: str, given: dict[str, np.ndarray]) -> np.ndarray:
    """``value`` computed from the given spike maps (IF outputs) through the graph's linear ops."""
    if value in given:
        return given[value]
    op = graph.producer(value)
    return op.forward([_value(graph, name, given) for name in op.inputs])


def _apply(spec, spikes: np.ndarray) -> np.ndarray:
    """A float synapse applied to spike maps (B, *shape), the output flat."""
    if isinstance(spec, DenseSpec):
        return spikes.reshape(len(spikes), -1) @ spec.weight.T
    if isinstance(spec, SparseSpec):  # the listed synapses as a matrix
        matrix = np.zeros((int(np.prod(spec.shape)), int(np.prod(spec.input_shape))), np.float32)
        np.add.at(matrix, (spec.rows, spec.cols), spec.weight)
        return spikes.reshape(len(spikes), -1) @ matrix.T
    conv = Conv2d(
        name="c",
        inputs=("s",),
        output="o",
        weight=spec.weight * np.float32(spec.pool[0] * spec.pool[1]),
        padding=(spec.padding[0] // spec.pool[0], spec.padding[1] // spec.pool[1]) * 2,
    )
    pool = AvgPool2d(name="p", inputs=("s",), output="q", kernel=spec.pool, stride=spec.pool)
    return conv.forward([pool.forward([spikes])]).reshape(len(spikes), -1)


def test_a_branch_with_ops_before_the_concat_folds_into_its_kernel_slice() -> None:
    """A Scale on an input before the Concat: that input's synapse is its kernel slice times the Scale (one
    convolution, not a composed Dense), and the synapses with the bias compute the graph's input to IF d / its
    threshold."""
    graph = concat_block(seed=2, head="conv", order=("sa", "sb"))
    graph.ops.insert(
        graph.ops.index(_op(graph, "cat")), Scale(name="half", inputs=("sb",), output="hb", value=np.float32(0.5))
    )
    _op(graph, "cat").inputs = ("sa", "hb")
    graph.verify()
    lowered = lower(graph)
    pop = lowered.populations[-2]
    assert isinstance(pop.synapse, ConvSpec)
    assert pop.ops == ["half", "conv_d", "cat"]
    rng = np.random.default_rng(4)
    spikes = {s: (rng.random((3, *graph.types()[s].shape)) < 0.5).astype(np.float32) for s in ("sa", "sb")}
    want = _value(graph, "cd", spikes).reshape(3, -1) / np.float32(1.2)
    got = _apply(pop.synapse, spikes["sb"]) + sum(_apply(s.synapse, spikes["sa"]) for s in pop.skips)
    np.testing.assert_allclose(got + pop.bias.reshape(1, -1), want, atol=1e-5)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("order", ORDERS)
def test_lowered_synapses_compute_the_graphs_input_to_the_neurons(head: str, order: tuple[str, ...]) -> None:
    """Random spike maps of the concatenated inputs: IF d's main synapse and skips applied to them, plus its bias,
    are the graph's input to IF d divided by its threshold (the weights split correctly, the bias counted once)."""
    graph = concat_block(seed=4, head=head, order=order)
    lowered = lower(graph)
    pop = lowered.populations[-2]
    names = {p.value: k for k, p in enumerate(lowered.populations)}
    rng = np.random.default_rng(4)
    spikes = {s: (rng.random((3, *graph.types()[s].shape)) < 0.5).astype(np.float32) for s in order}
    want = _value(graph, "cd", spikes).reshape(3, -1) / np.float32(1.2)
    source = {k: s for s, k in names.items()}
    got = _apply(pop.synapse, spikes[source[len(lowered.populations) - 3]])
    got = got + sum(_apply(s.synapse, spikes[source[s.source]]) for s in pop.skips)
    np.testing.assert_allclose(got + pop.bias.reshape(1, -1), want, atol=1e-5)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("order", ORDERS)
def test_emulated_concat_network_matches_the_float_snn(tmp_path: Path, head: str, order: tuple[str, ...]) -> None:
    """The integer network computes the float SNN's spikes, T counted after the delay: most neurons of the joined
    population fire exactly as often in 32 steps as in the float SNN (8-bit weights move some by a few spikes)
    and the outputs agree to a few percent of their range (measured on these 32 inputs: 83-93% exact counts, at
    most 3 spikes apart, outputs within 2.2-9.1% of the range, 30-32 of 32 argmaxes the float SNN's)."""
    graph = concat_block(seed=0, head=head, order=order)
    program, ours, want = _joined_fires_as_the_float_snn(graph, tmp_path, active=3, apart=3)
    assert program.delay == max(DEPTH[s] for s in order) + 2
    assert np.abs(ours.outputs - want).max() <= 0.12 * np.abs(want).max()


def _joined_fires_as_the_float_snn(graph: Graph, folder: Path, active: float, apart: int):
    """(program, its run, the float SNN's outputs) on 32 inputs over 32 steps, after checking that IF d (the
    joined population) is active (``active`` spikes per neuron in the float SNN), that 80% of its counts are the
    float SNN's and none more than ``apart`` away, and that 90% of the argmaxes agree."""
    x = _x()
    program, _ = emit(graph, folder, x)
    ours = program.run(x, 32, counts=True)
    reference = simulate(graph, {"x": x}, 32)
    ref = reference.counts["if_d"]
    assert ref.mean() > active  # the joined layer is active, so the comparison means something
    same = np.mean(ours.counts["if_d"] == ref)
    assert same >= 0.8, f"if_d: {same:.3f} of neurons fire as often as in the float SNN"
    assert np.abs(ours.counts["if_d"] - ref).max() <= apart
    want = reference.outputs["y"]
    assert np.mean(ours.outputs.argmax(axis=1) == want.argmax(axis=1)) >= 0.9
    return program, ours, want


def test_the_delays_align_the_concatenated_inputs(tmp_path: Path) -> None:
    """The same program with every delay of IF d's synapses removed (the shallower inputs one and two steps early)
    has fewer neurons of IF d firing as often as in the float SNN."""
    graph = concat_block(seed=0, head="conv", order=("sa", "sc", "sb"))
    x = _x(64)
    program, _ = emit(graph, tmp_path, x)
    aligned, early = delay_alignment(graph, program, x, "if_d")
    assert aligned > early + 0.02


def test_one_scale_for_all_of_a_populations_synapses(tmp_path: Path) -> None:
    """The Concat's synapses share IF d's vth: each integer weight is its float weight times vth (/ 2**weight_exp),
    to within the 8-bit grid's rounding."""
    graph = concat_block(seed=3, head="dense", order=("sa", "sc", "sb"))
    program, _ = emit(graph, tmp_path, _x(8))
    lowered = lower(graph)
    pop, layer = lowered.populations[-2], program.network.layers[-2]
    vth = layer.neuron.vth
    specs = [pop.synapse, *[s.synapse for s in pop.skips]]
    synapses = [layer.synapse, *[s.synapse for s in layer.skips]]
    for spec, synapse in zip(specs, synapses, strict=True):
        assert isinstance(synapse, DenseSynapse)
        ints = synapse.effective_weights * 2.0**synapse.weight_exp
        assert np.abs(ints).max() > 0
        assert np.abs(np.sort(ints.ravel()) - np.sort(spec.weight.ravel() * vth)).max() <= 2 * 2.0**synapse.weight_exp


def test_concat_program_files_round_trip_byte_for_byte(tmp_path: Path) -> None:
    graph = concat_block(seed=1, head="pool_conv", order=("sb", "sc", "sa"))
    x = _x(8)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    program, _ = emit(graph, tmp_path / "a", x)
    layer = program.network.layers[3]
    assert isinstance(layer.synapse, ConvSynapse)
    assert [(s.source, s.delay, type(s.synapse)) for s in layer.skips] == [(1, 1, SparseSynapse), (0, 2, SparseSynapse)]
    program.save(tmp_path / "b")
    for name in ("loihi.json", "loihi.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    again = Program.load(tmp_path / "b")
    a, b = program.run(x, 8), again.run(x, 8)
    np.testing.assert_array_equal(a.outputs, b.outputs)


def test_placement_counts_every_concatenated_inputs_synapses(tmp_path: Path) -> None:
    program, _ = emit(concat_block(seed=0, head="conv", order=("sa", "sb")), tmp_path, _x(4))
    layer = program.network.layers[2]
    (skip,) = layer.skips
    want = fan_in_per_neuron(layer.synapse) + fan_in_per_neuron(skip.synapse)
    np.testing.assert_array_equal(layer_fan_in(layer), want)
    backend = Loihi2Backend()
    usage = backend.resources(backend.plan(CompiledModel(snn=concat_block(seed=0, head="conv", order=("sa", "sb")))))
    assert [u.synapses for u in usage.layers][2] == int(want.sum())


def test_graded_mode_maps_a_concat_exactly_and_netx_refuses_it_naming_it(tmp_path: Path) -> None:
    """Graded mode (GradedReLU): one graded synapse per concatenated input, the shallower delayed, all on the
    population's scale; from the pipeline delay on the readout is the quantized ANN's plain integer forward pass.
    The board profile's SDNN program refuses it, naming the Concat; netx has no form for it."""
    from neurodeploy_loihi.graded import GradedProgram
    from neurodeploy_loihi.sdnn import quantize_sdnn

    graph = concat_block(seed=0, reset="zero")
    with pytest.raises(GradedError, match=r"'cat' \(a residual Add or a Concat\) joins branches into 'if_d'"):
        quantize_sdnn(lower(graph), None)
    x = _x(8)
    program, emitted = emit(graph, tmp_path, x)
    assert emitted.manifest["graded"]["available"] is True
    graded = GradedProgram.load(tmp_path)
    np.testing.assert_array_equal(graded.run(x, 1).outputs, graded.reference(x))
    with pytest.raises(NetxError, match=r"layer 'if_d' has more than one synapse"):
        write_net(program, tmp_path / "network.net")


def _two_maps(axis: int, head: list, out: str, out_shape: tuple[int, ...], readout: bool = True) -> Graph:
    """x (1, 4, 4) -> conv -> IF a -> conv -> IF b -> Concat(a, b, ``axis``) -> ``head`` ops (ending in ``out``)
    [-> IF d -> flatten -> dense (2)]."""
    rng = np.random.default_rng(0)
    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=rng.normal(size=(2, 1, 1, 1)).astype(np.float32)),
        IF(name="if_a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        Conv2d(name="conv2", inputs=("sa",), output="c2", weight=rng.normal(size=(2, 2, 1, 1)).astype(np.float32)),
        IF(name="if_b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        Concat(name="cat", inputs=("sa", "sb"), output="cat_out", axis=axis),
        *head,
    ]
    n = int(np.prod(out_shape))
    if readout:
        ops += [
            IF(name="if_d", inputs=(out,), output="sd", threshold=np.float32(1)),
            Reshape(name="flat", inputs=("sd",), output="f", shape=(n,)),
            Dense(name="fc", inputs=("f",), output="y", weight=rng.normal(size=(2, n)).astype(np.float32)),
        ]
    graph = Graph("two_maps", {"x": TensorType((1, 4, 4))}, ["y" if readout else out], ops)
    graph.verify()
    return graph


def test_a_concat_read_without_a_weighted_layer_is_refused_naming_it() -> None:
    pool = AvgPool2d(name="pool", inputs=("cat_out",), output="p", kernel=(2, 2), stride=(2, 2))
    graph = _two_maps(0, [pool], "p", (4, 2, 2))
    with pytest.raises(ConversionError, match=r"Concat 'cat' is read by AvgPool2d 'pool' without a Conv2d or Dense"):
        lower(graph)


def test_a_concat_on_another_axis_is_refused_naming_it() -> None:
    weight = np.ones((2, 2, 1, 1), np.float32)
    graph = _two_maps(1, [Conv2d(name="conv_d", inputs=("cat_out",), output="d", weight=weight)], "d", (2, 8, 4))
    with pytest.raises(ConversionError, match=r"Concat 'cat' concatenates along axis 1; .* channel axis \(0\) only"):
        lower(graph)


@pytest.mark.parametrize("head", ["dense", "conv"])
def test_a_concat_before_the_readout_is_a_readout_with_a_synapse_per_input(tmp_path: Path, head: str) -> None:
    """An Inception block's end: the readout reads a Concat of two neuron layers through a Dense (after a flatten)
    or a Conv. The readout population gets one synapse per concatenated input (its slice of the weights; the
    shallower input delayed a step), the lowered synapses compute the graph's readout input, and the integer
    program's outputs follow the float SNN's."""
    rng = np.random.default_rng(4)
    if head == "dense":
        tail = [
            Reshape(name="cat_flat", inputs=("cat_out",), output="cf", shape=(64,)),
            Dense(name="out", inputs=("cf",), output="y", weight=rng.normal(size=(3, 64)).astype(np.float32)),
        ]
        out_shape: tuple[int, ...] = (3,)
    else:
        weight = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
        tail = [Conv2d(name="out", inputs=("cat_out",), output="y", weight=weight, padding=(1, 1, 1, 1))]
        out_shape = (2, 4, 4)
    graph = _two_maps(0, tail, "y", out_shape, readout=False)
    lowered = lower(graph)
    pop = lowered.populations[-1]
    assert (pop.role, pop.adds, pop.depth) == ("readout", ["cat"], 2)
    (skip,) = pop.skips
    assert (skip.source, skip.delay, pop.delay) == (0, 1, 0)  # the main synapse reads if_b, the skip if_a
    spikes = {k: (np.random.default_rng(k).random((5, 2, 4, 4)) < 0.5).astype(np.float32) for k in range(2)}
    want = _value(graph, "y", {"sa": spikes[0], "sb": spikes[1]}).reshape(5, -1)
    got = _apply(pop.synapse, spikes[1]) + _apply(skip.synapse, spikes[0]) + pop.bias.reshape(1, -1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    x = np.random.default_rng(6).random((16, 1, 4, 4)).astype(np.float32)
    program, _ = emit(graph, tmp_path, x)
    assert len(program.network.layers[-1].skips) == 1
    ours = program.run(x, 32).outputs
    reference = simulate(graph, {"x": x}, 32).outputs["y"].reshape(16, -1)
    assert np.abs(ours.reshape(16, -1) - reference).max() <= 0.05 * np.abs(reference).max()


def _concat_into_neurons(deep: bool = False) -> Graph:
    """x (1, 6, 6) -> conv -> IF a [-> conv -> IF b]; Concat(AvgPool 3x3 stride 1 of a, conv of the last IF) -> IF
    d -> flatten -> dense (2): a ShuffleNet unit's join, the neurons reading the Concat with nothing between (one
    input a pooled shortcut of spikes, delayed a step when ``deep``, the other a convolution's current)."""
    rng = np.random.default_rng(3)

    def conv(name: str, source: str, out: str, c_in: int, c_out: int, scale: float) -> Conv2d:
        weight = rng.normal(size=(c_out, c_in, 3, 3)).astype(np.float32) * scale
        bias = np.full(c_out, 0.2, np.float32)
        return Conv2d(name=name, inputs=(source,), output=out, weight=weight, bias=bias, padding=(1, 1, 1, 1))

    ops = [conv("conv1", "x", "c1", 1, 2, 1.5), IF(name="if_a", inputs=("c1",), output="sa", threshold=np.float32(1))]
    last = "sa"
    if deep:
        ops += [
            conv("conv_b", "sa", "cb", 2, 2, 0.8),
            IF(name="if_b", inputs=("cb",), output="sb", threshold=np.float32(1)),
        ]
        last = "sb"
    ops += [
        AvgPool2d(name="pool", inputs=("sa",), output="p", kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1)),
        conv("conv2", last, "c2", 2, 3, 1.0),
        Concat(name="cat", inputs=("p", "c2"), output="cat_out", axis=0),
        IF(name="if_d", inputs=("cat_out",), output="sd", threshold=np.float32(0.8)),
        Reshape(name="flat", inputs=("sd",), output="f", shape=(5 * 36,)),
        Dense(name="fc", inputs=("f",), output="y", weight=rng.normal(size=(2, 5 * 36)).astype(np.float32)),
    ]
    graph = Graph("concat_into_neurons", {"x": TensorType((1, 6, 6))}, ["y"], ops)
    graph.verify()
    return graph


@pytest.mark.parametrize("deep", [False, True])
def test_neurons_reading_a_concat_directly_run_as_the_float_snn(tmp_path: Path, deep: bool) -> None:
    """A Concat read by the neurons with no op between (ShuffleNet's join) lowers to one population with a synapse
    per input, the pooled shortcut as its listed synapses (3x3 windows clipped at the 6x6 map's edges: 16 x 16
    per channel; never a composed matrix, which ShuffleNet's 301056 x 106624 would be), delayed a step where the
    other input is a layer deeper; the integer network fires as the float SNN does (measured on these 32 inputs
    over 32 steps, shallow / deep: 14.8 / 9.5 spikes per neuron of IF d, 96% / 95% of its counts exact, at most
    1 / 3 apart, 32 of 32 argmaxes the float SNN's)."""
    graph = _concat_into_neurons(deep)
    lowered = lower(graph)
    joined = next(p for p in lowered.populations if p.name == "if_d")
    synapses = [joined.synapse, *(skip.synapse for skip in joined.skips)]
    (listed,) = [s for s in synapses if isinstance(s, SparseSpec)]
    assert listed.rows.size == 2 * 16 * 16
    assert listed.rows.min() == 0  # the shortcut is the Concat's first input: channels 0 and 1
    if deep:
        assert [skip.delay for skip in joined.skips] == [1]
    _joined_fires_as_the_float_snn(graph, tmp_path, active=5, apart=3 if deep else 1)
