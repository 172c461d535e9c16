"""SynOps of the loihi target's emulator, both modes: each spike (binary) or nonzero graded payload times the
synapses leaving its neuron (the nonzero integer weights of every synapse reading its population), the direct input
dense (every element every step times its synapses through the host's ops). Checked against hand-derived numbers
on a dense network, against synapses counted one input neuron at a time for convolutions, and on the bundled
model against an independent fan-out in the graph's layout and the reference target's input count."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import dense_net, emit_graph
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Skip
from neurodeploy_loihi.graded import GradedProgram
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.quantize import to_graph

from neurodeploy.backends.registry import get_backend
from neurodeploy.ir import Conv2d
from neurodeploy.metrics import conv_fan_out

# -- fan-out of one synapse ---------------------------------------------------------------------------------------


def test_dense_fan_out_counts_the_nonzero_weights_lava_uses_per_input() -> None:
    """MIXED weights lose bit 0 in Lava (1 -> 0): that weight is no synapse."""
    synapse = DenseSynapse(np.array([[2, 0, 1], [-4, 0, 6]]), sign_mode=fp.SignMode.MIXED)
    np.testing.assert_array_equal(synapse.fan_out, [2, 0, 1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stride": (2, 1), "padding": (1, 0)},
        {"padding": (2, 1), "dilation": (2, 1)},
        {"groups": 2, "stride": (1, 2), "padding": (1, 1)},
        {"pool": (2, 2), "stride": (2, 2), "padding": (2, 0)},
    ],
)
def test_conv_fan_out_equals_the_synapses_counted_one_input_neuron_at_a_time(kwargs: dict) -> None:
    """With 0/1 weights (the nonzero mask), the synapse's output for one spiking input neuron sums the synapses
    leaving that neuron (a true convolution, pooled or not, reaches an output neuron through one tap at most)."""
    rng = np.random.default_rng(3)
    c_in, groups = 4, kwargs.get("groups", 1)
    weights = rng.integers(-3, 4, size=(6, 3, 2, c_in // groups)) * 2
    weights[rng.random(weights.shape) < 0.3] = 0
    shape = (7, 6, c_in)
    synapse = ConvSynapse(weights, shape, **kwargs)
    mask = ConvSynapse((weights != 0).astype(np.int64), shape, **kwargs)
    one_hot = np.eye(np.prod(shape), dtype=bool).reshape(-1, *shape)
    counted = mask.accumulate(one_hot).reshape(len(one_hot), -1).sum(axis=1).reshape(shape)
    assert counted.max() > 0
    np.testing.assert_array_equal(synapse.fan_out, counted)


def test_network_fan_out_adds_every_synapse_reading_a_layer_skips_included() -> None:
    """Input population (3) -> dense (2) -> dense (2), plus a delayed skip from the input population: the input
    population's fan-out is its column counts in both synapses; the last layer's is zero."""
    neuron = Neuron(du=4095, dv=0, vth=10)
    w1 = np.array([[2, 0, 4], [0, 0, 6]])
    w2 = np.array([[2, 2], [0, 4]])
    skip = np.array([[2, 2, 0], [2, 0, 0]])
    network = Network(
        [
            Layer(None, neuron, "in", (3,)),
            Layer(DenseSynapse(w1), neuron, "a"),
            Layer(DenseSynapse(w2), neuron, "b", skips=(Skip(0, DenseSynapse(skip), 1),)),
        ]
    )
    fan_out = network.fan_out()
    np.testing.assert_array_equal(fan_out[0], [1 + 2, 0 + 1, 2 + 0])
    np.testing.assert_array_equal(fan_out[1], [1, 2])
    np.testing.assert_array_equal(fan_out[2], [0, 0])


# -- hand-derived runs ----------------------------------------------------------------------------------------------

W1 = np.array([[1, 0], [0.5, 0.5], [0, 1]])
"""x (2) -> if1 (3): 4 nonzero weights, so the dense input costs 4 SynOps per step."""
W2 = np.array([[1, 0, 0.5], [0, 0, 1]])
"""if1 -> if2 (2): if1's neurons reach 1, 0 and 2 synapses; if2's reach one each (the identity readout)."""
X = np.array([[1, 0.5], [1, 0]], np.float32)
"""if1's currents (1, 0.75, 0.5) and (1, 0.5, 0) thresholds; if2's (1.25, 0.5) and (1, 0) (rates clip at 1)."""


@pytest.fixture(scope="module")
def dense_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dense")
    graph = dense_net(W1, W2)
    emit_graph(graph, folder, X)
    return folder


def test_binary_synops_are_spikes_times_nonzero_weights_hand_derived(dense_folder: Path) -> None:
    """T = 8: if1 fires (8, 6, 4) and (8, 4, 0) times, if2 (8, 4) and (8, 0). SynOps: if1 8*1 + 6*0 + 4*2 = 16
    and 8; if2 8 + 4 = 12 and 8; the input 8 * 4 = 32. At T = 4 half of each."""
    program = Program.load(dense_folder)
    # W1 runs on the host; the chip's synapses hold W2 and the readout's identity, zeros where the floats have them
    for k, weights in ((1, W2), (2, np.eye(2))):
        np.testing.assert_array_equal(program.network.layers[k].synapse.weights != 0, weights != 0)
    run = program.run(X, 8, checkpoints=(4, 8), counts=True)
    np.testing.assert_array_equal(run.counts["if1"], [[8, 6, 4], [8, 4, 0]])
    np.testing.assert_array_equal(run.counts["if2"], [[8, 4], [8, 0]])
    expected = {"x": [32, 32], "if1": [16, 8], "if2": [12, 8]}
    assert set(run.synops) == set(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(run.synops[name], want, err_msg=name)
        np.testing.assert_array_equal(run.checkpoint_synops[8][name], want, err_msg=name)
        np.testing.assert_array_equal(run.checkpoint_synops[4][name], np.array(want) // 2, err_msg=name)


def test_graded_synops_count_nonzero_payloads_times_fan_out_hand_derived(dense_folder: Path) -> None:
    """Graded: every step after the delay, if1 sends payloads from neurons (0, 1, 2) and (0, 1) (a zero payload
    costs nothing), if2 from (0, 1) and (0). Per step: if1 1 + 0 + 2 = 3 and 1; if2 2 and 1; the input 4."""
    program = GradedProgram.load(dense_folder)
    run = program.run(X, 3, checkpoints=(1, 3))
    np.testing.assert_array_equal(run.spikes["if1"], [9, 6])
    np.testing.assert_array_equal(run.spikes["if2"], [6, 3])
    per_step = {"x": [4, 4], "if1": [3, 1], "if2": [2, 1]}
    assert set(run.synops) == set(per_step)
    for name, want in per_step.items():
        np.testing.assert_array_equal(run.synops[name], 3 * np.array(want), err_msg=name)
        np.testing.assert_array_equal(run.checkpoint_synops[3][name], 3 * np.array(want), err_msg=name)
        np.testing.assert_array_equal(run.checkpoint_synops[1][name], want, err_msg=name)


# -- the bundled model through the backend --------------------------------------------------------------------------


def _graph_fan_out(program: Program, k: int) -> np.ndarray:
    """Population k's fan-out in the graph's layout, computed apart from the emulator: the next synapse's kernel
    turned back into an ONNX cross-correlation for :func:`neurodeploy.metrics.conv_fan_out`, or a dense synapse's
    nonzero artifact weights per column."""
    synapse, shape = program.network.layers[k + 1].synapse, program.shapes[k]
    if isinstance(synapse, DenseSynapse):
        per_input = np.count_nonzero(synapse.weights, axis=0)
        return to_graph(per_input.reshape(1, *program.network.layers[k].shape), shape)[0]
    weight = synapse.lava_weights.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]  # (O, C / g, kH, kW) correlation
    (px, py), (sx, sy), groups = synapse.padding, synapse.stride, synapse.groups
    op = Conv2d(
        name="c",
        inputs=("s",),
        output="o",
        weight=weight,
        stride=(sy, sx),
        padding=(py, px, py, px),
        groups=groups,
    )
    return conv_fan_out(op, shape)


def test_binary_emulate_reports_synops_that_evaluate_can_total() -> None:
    """The bundled model, 6 images: SynOps keyed as evaluate reads them (the spiking layers' names, the input's name),
    equal to per-neuron spike counts times an independent fan-out, at T and at a checkpoint; the dense input equals
    the reference target's count (the same first convolution, run on the host)."""
    artifact = compiled("subtract")
    program = Program.load(artifact.root)
    x = mnist_test_images()[0][:6]
    (source,) = program.host.inputs
    result = get_backend("loihi").emulate(artifact, x, steps=12, checkpoints=(5, 12), neuron_counts=True)
    assert set(result.synops) == set(result.spikes) | {source}
    for name, total in result.synops.items():
        np.testing.assert_array_equal(result.checkpoint_synops[12][name], total, err_msg=name)
        assert np.all(result.checkpoint_synops[5][name] <= total)
    for k, name in enumerate(program.names[:-1]):  # the last population is the membrane readout
        want = result.counts[name].reshape(len(x), -1).astype(np.int64) @ _graph_fan_out(program, k).reshape(-1)
        np.testing.assert_array_equal(result.synops[name], want, err_msg=name)
    assert result.synops[program.names[0]].min() > 0
    reference = get_backend("reference").emulate(compiled("subtract", "reference"), x[:1], steps=12)
    np.testing.assert_array_equal(result.synops[source], np.full(len(x), reference.synops[source][0]))


def test_graded_emulate_reports_synops_at_every_checkpoint() -> None:
    """Graded payloads are the same every step after the delay: SynOps grow linearly in T, and the final T's
    checkpoint equals the total."""
    artifact = compiled("subtract")
    x = mnist_test_images()[0][:4]
    result = get_backend("loihi").emulate(artifact, x, steps=4, mode="graded", checkpoints=(1, 2, 4))
    assert set(result.synops) == set(result.spikes) | set(Program.load(artifact.root).host.inputs)
    for name, total in result.synops.items():
        np.testing.assert_array_equal(result.checkpoint_synops[4][name], total, err_msg=name)
        np.testing.assert_array_equal(4 * result.checkpoint_synops[1][name], total, err_msg=name)
        np.testing.assert_array_equal(2 * result.checkpoint_synops[1][name], result.checkpoint_synops[2][name])
    assert all(total.min() > 0 for total in result.synops.values())


def test_evaluate_measures_loihi_synops() -> None:
    pytest.importorskip("onnxruntime")
    from loihi_mnist import CALIBRATION, MODEL, TEST_IMAGES

    from neurodeploy.evaluate import evaluate

    report = evaluate(
        MODEL, str(TEST_IMAGES), [2, 4], target="loihi", limit=4, calibration=str(CALIBRATION), workers=1
    ).to_dict()
    assert report["synops"]["2"] < report["synops"]["4"]
    assert 0 < report["synops_input"]["4"] < report["synops"]["4"]
    assert all(layer["synops"] > 0 for layer in report["layers"])
