"""Residual Add on the loihi target (binary mode): a population fed by several synapses, a shorter skip delayed
to arrive with the main path, the emulator's DAG of layers, the artifact's files, placement, and the modes and
formats that refuse it (graded mode, netx) with an error naming the Add."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import delay_alignment, emit_graph, residual_block
from neurodeploy_loihi import Loihi2Backend
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Skip, SparseSynapse
from neurodeploy_loihi.lowering import lower
from neurodeploy_loihi.netx import NetxError, write_net
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.resources import fan_in_per_neuron, layer_fan_in

from neurodeploy.backends.base import CompiledModel, Emitted
from neurodeploy.simulate import simulate


def emit(graph, folder: Path, calibration: np.ndarray) -> tuple[Program, Emitted]:
    emitted = emit_graph(graph, folder, calibration)
    return Program.load(folder), emitted


def _x(n: int = 32, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 6, 6)).astype(np.float32)


@pytest.mark.parametrize(("skip", "deep"), [("identity", True), ("scale", True), ("conv", True), ("conv", False)])
def test_emulated_residual_network_matches_the_float_snn(tmp_path: Path, skip: str, deep: bool) -> None:
    """The integer network computes the float SNN's spikes, T counted after the delay (3 steps with the delayed
    skip, 2 without IF b): most neurons of the joined population fire exactly as often in 32 steps as in the
    float SNN (8-bit weights move some by a spike; the bias correction takes their mean error back) and the
    outputs agree to a few percent of their range (measured on these 32 inputs: 95.6-96.2% exact counts, at most
    1 spike apart, outputs within 1.9-3.1% of the range, the argmax the float SNN's on all 32, or 31 where two
    outputs are within that of each other; without the bias correction 88-93%, 2 spikes, 3.5-5.4%)."""
    graph = residual_block(seed=0, skip=skip, deep=deep)
    x = _x()
    program, _ = emit(graph, tmp_path, x)
    assert program.delay == (3 if deep else 2)
    steps = 32
    ours = program.run(x, steps, counts=True)
    reference = simulate(graph, {"x": x}, steps)
    np.testing.assert_allclose(ours.counts["if_a"], reference.counts["if_a"], atol=1)  # host current, rounded
    ref = reference.counts["if_c"]
    assert ref.mean() > 3  # the joined layer is active, so the comparison means something
    same = np.mean(ours.counts["if_c"] == ref)
    assert same >= 0.95, f"if_c: {same:.3f} of neurons fire as often as in the float SNN"
    assert np.abs(ours.counts["if_c"] - ref).max() <= 1
    want = reference.outputs["y"]
    assert np.abs(ours.outputs - want).max() <= 0.035 * np.abs(want).max()
    assert np.count_nonzero(ours.outputs.argmax(axis=1) != want.argmax(axis=1)) <= 1


def test_the_delayed_skip_agrees_with_the_float_snn_better_than_an_undelayed_one(tmp_path: Path) -> None:
    """The alignment matters: the same program with the skip's delay removed (its spikes one step early) has
    fewer neurons of the joined population firing as often as in the float SNN (measured 89.9% -> 85.3%)."""
    graph = residual_block(seed=0, skip="identity")
    x = _x(64)
    program, _ = emit(graph, tmp_path, x)
    aligned, early = delay_alignment(graph, program, x, "if_c")
    assert aligned > early + 0.02


def test_residual_program_files_round_trip_byte_for_byte(tmp_path: Path) -> None:
    graph = residual_block(seed=1, skip="conv")
    x = _x(8)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    program, _ = emit(graph, tmp_path / "a", x)
    layer = program.network.layers[2]
    (skip,) = layer.skips
    assert (skip.source, skip.delay, type(skip.synapse)) == (0, 1, SparseSynapse)  # a delayed conv's taps
    program.save(tmp_path / "b")
    for name in ("loihi.json", "loihi.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    again = Program.load(tmp_path / "b")
    a, b = program.run(x, 8), again.run(x, 8)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name])


@pytest.mark.parametrize(("skip", "deep"), [("identity", True), ("scale", True), ("conv", True), ("conv", False)])
def test_graded_mode_computes_the_quantized_residual_ann_exactly(tmp_path: Path, skip: str, deep: bool) -> None:
    """Graded mode (GradedReLU) maps a residual Add: the skip is one more graded synapse (a Sparse for an identity
    or Scale skip, a DelaySparse of taps for a shorter conv one) on the population's scale and shift. From the
    pipeline delay on, the readout equals the plain integer forward pass (graph layout, independent of the
    emulator), and that 8-bit ANN tracks the float one (measured on these 16 inputs: within 1.2-3.7% of the
    output range, correlation >= 0.9993, every argmax the float ANN's)."""
    from neurodeploy_loihi.graded import GradedProgram, _float_forward

    graph = residual_block(seed=0, skip=skip, deep=deep)
    x = _x(16)
    _, emitted = emit(graph, tmp_path, x)
    assert emitted.manifest["graded"]["available"] is True
    program = GradedProgram.load(tmp_path)
    joined = [layer for layer in program.network.layers if layer.skips]
    assert len(joined) == 1
    reference = program.reference(x)
    for steps in (1, 3):
        np.testing.assert_array_equal(program.run(x, steps).outputs, reference)
    exact = _float_forward(lower(graph), x)[-1].reshape(len(x), -1)
    ours = reference.reshape(len(x), -1)
    assert np.abs(ours - exact).max() <= 0.045 * np.abs(exact).max()
    assert np.corrcoef(ours.ravel(), exact.ravel())[0, 1] >= 0.999
    np.testing.assert_array_equal(ours.argmax(1), exact.argmax(1))
    again = tmp_path / "again"
    again.mkdir()
    program.save(again)
    np.testing.assert_array_equal(GradedProgram.load(again).run(x, 1).outputs, reference)


def test_netx_refuses_a_residual_network(tmp_path: Path) -> None:
    program, _ = emit(residual_block(seed=0, reset="zero"), tmp_path, _x(4))
    with pytest.raises(NetxError, match=r"layer 'if_c' has more than one synapse"):
        write_net(program, tmp_path / "network.net")


def test_placement_counts_the_skips_synapses(tmp_path: Path) -> None:
    program, _ = emit(residual_block(seed=0, skip="conv", deep=False), tmp_path, _x(4))
    layer = program.network.layers[1]
    (skip,) = layer.skips
    assert isinstance(layer.synapse, ConvSynapse)
    assert isinstance(skip.synapse, ConvSynapse)
    want = fan_in_per_neuron(layer.synapse) + fan_in_per_neuron(skip.synapse)
    np.testing.assert_array_equal(layer_fan_in(layer), want)
    assert want.max() == 3 * 3 * 4 + 4  # a 3x3 conv of 4 channels and a 1x1 one
    backend = Loihi2Backend()
    usage = backend.resources(backend.plan(CompiledModel(snn=residual_block(seed=0, skip="conv", deep=False))))
    assert [u.synapses for u in usage.layers][1] == int(want.sum())


def _neuron(vth: int = 10) -> Neuron:
    return Neuron(du=4095, dv=0, vth=vth, kind="subtractive")


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_a_skip_sends_delay_steps_later_and_its_message_adds_to_the_main_one(delay: int) -> None:
    """Input population (fires every step) -> layer 1 -> layer 2, plus a skip from the input population into
    layer 2 delayed ``delay`` steps: layer 2's u is the main message (weight 3, from step 3: two synapses) plus
    the skip's (weight 5, from step 2 + delay), each << 6."""
    ones = np.ones((1, 1), np.int64)
    layers = [
        Layer(None, _neuron(0), "in", (1,)),
        Layer(DenseSynapse(ones * 127), Neuron(du=4095, dv=0, vth=0, kind="subtractive"), "l1"),
        Layer(DenseSynapse(ones * 3), _neuron(1 << 16), "l2", skips=(Skip(0, DenseSynapse(ones * 5), delay),)),
    ]
    network = Network(layers)
    assert network.depths == [0, 1, max(2, 1 + delay)]
    bias = (np.full((1, 1), 2, np.int64), np.zeros((1, 1), np.int64))  # v0 0, bias 2 > vth 0 << 6: fires each step
    trace = network.run(steps=8, input_bias=bias)
    assert trace.spikes[0].all()
    main = np.array([0 if t < 3 else 3 for t in range(1, 9)])
    skip = np.array([0 if t < 2 + delay else 5 for t in range(1, 9)])
    np.testing.assert_array_equal(trace.u[2][0, :, 0], (main + skip) << 6)


def test_the_neurons_sum_of_messages_wraps_at_32_bits_as_lavas_inport() -> None:
    """Two Dense messages of 127 * 2**24 each: Lava's InPort adds the int32 arrays (int16 zeros + int32 +
    int32: int32), so the sum wraps to a negative int32 before the neuron's << 6 and 24-bit fold."""
    big = np.ones((1, 1), np.int64) * 127
    main = DenseSynapse(big, weight_exp=24)
    layers = [
        Layer(None, _neuron(0), "in", (1,)),
        Layer(main, _neuron(1 << 16), "l1", skips=(Skip(0, DenseSynapse(big, weight_exp=24)),)),
    ]
    bias = (np.full((1, 1), 2, np.int64), np.zeros((1, 1), np.int64))
    trace = Network(layers).run(steps=3, input_bias=bias, record_state=True)
    one = int(main.effective_weights[0, 0]) << 24  # 127 (EXCITATORY: all 8 bits), shifted: < 2**31
    total = ((2 * one + (1 << 31)) % (1 << 32)) - (1 << 31)  # the int32 sum: negative
    assert total < 0
    from neurodeploy_loihi import fixed_point as fp

    want = fp.fold_current(fp.current_sum(np.zeros(1, np.int64), np.array([total]), 4095))
    assert trace.u[1][0, 2, 0] == want[0]


def test_a_delayed_conv_a_later_source_and_a_too_long_delay_are_refused() -> None:
    conv = ConvSynapse(np.ones((1, 1, 1, 1), np.int64), (2, 2, 1))
    dense = DenseSynapse(np.ones((4, 4), np.int64))
    first = Layer(None, _neuron(), "in", (2, 2, 1))
    with pytest.raises(ValueError, match=r"only a dense or sparse synapse can be delayed"):
        Network([first, Layer(conv, _neuron(), "c", skips=(Skip(0, conv, 1),))])
    with pytest.raises(ValueError, match=r"a skip reads layer 1; it must be an earlier layer"):
        Network([first, Layer(conv, _neuron(), "c", skips=(Skip(1, conv),))])
    with pytest.raises(ValueError, match=r"delay must be an int in 0..63"):
        Network([first, Layer(conv, _neuron(), "c", skips=(Skip(0, dense, 64),))])


def test_sparse_synapse_arithmetic_derived_by_hand() -> None:
    """Lava's Sparse is its Dense on a csr matrix: weights on the MIXED grid (7 -> 6: bit 0 dropped), each output
    neuron's listed synapses summed, then the sum shifted by weight_exp (floor), through the int32 port."""
    synapse = SparseSynapse([0, 0, 1], [0, 1, 1], np.array([100, -50, 7]), (2, 2), weight_exp=-1, sign_mode=1)
    np.testing.assert_array_equal(synapse.effective_weights, [100, -50, 6])
    spikes = np.array([[1, 1], [0, 1]], bool)
    np.testing.assert_array_equal(synapse.accumulate(spikes), [[25, 3], [-25, 3]])  # (100 - 50) >> 1; -50 >> 1
    np.testing.assert_array_equal(synapse.accumulate(np.array([[3, 2]]), graded=True), [[100, 6]])
    np.testing.assert_array_equal(synapse.fan_out, [1, 2])
    with pytest.raises(ValueError, match=r"outside its \(2, 2\) shape"):
        SparseSynapse([2], [0], np.array([1]), (2, 2))
