"""Few-spike coding (``coding=fs``) on the loihi target, graded mode: the integer few-spike neuron
(:func:`neurodeploy_loihi.graded.fs_step`) against hand-derived traces, the bundled MNIST model compiled and
emulated against the 8-bit quantized ANN it computes exactly, the refusals (binary mode, the board profile,
the rounded staircase), and codes fitted to SiLU (signed thresholds and payloads, gated windows) against
hand-derived traces, their integer reference and the reference target's float few-spike SNN."""

from pathlib import Path

import numpy as np
import pytest
from neurodeploy_loihi.graded import FewSpikeCode, GradedLayer, GradedNetwork, GradedNeuron, GradedProgram
from neurodeploy_loihi.quantize import to_lava

from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import ConversionError, DataError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mnist"
MODEL, CALIBRATION, TEST_IMAGES = (EXAMPLE / f for f in ("mnist_cnn.onnx", "calibration.npz", "test_images.npz"))


def _one_neuron(level: int, start: int = 0) -> np.ndarray:
    """Payloads of one input few-spike neuron holding ``level`` (L = 3 in K = 2 steps: digits 2, 1), 6 steps."""
    code = FewSpikeCode(thresholds=(4, 2), resets=(4, 2), payloads=(4, 2), start=start)  # K c_j, shift 0
    network = GradedNetwork([GradedLayer(None, GradedNeuron(message_bits=3, levels=3, fs=code), "n", (1,))])
    trace = network.run(np.array([[level]]), 6)
    return trace.spikes[0][0, :, 0]


@pytest.mark.parametrize(
    ("level", "start", "payloads"),
    [
        # window 1 (steps 1-2) sums v = level twice: rest 2 level; windows 2 and 3 send its digits K c_j
        (3, 0, [0, 0, 4, 2, 4, 2]),
        (2, 0, [0, 0, 4, 0, 4, 0]),
        (1, 0, [0, 0, 0, 2, 0, 2]),
        (0, 0, [0, 0, 0, 0, 0, 0]),
        # start 2: window 1 began before it and sends nothing; window 2's sum is sent in window 3
        (3, 2, [0, 0, 0, 0, 4, 2]),
    ],
)
def test_integer_few_spike_neuron_matches_a_hand_derived_trace(level, start, payloads):
    assert _one_neuron(level, start).tolist() == payloads


def test_few_spike_hidden_neuron_carries_the_offset_in_its_bias():
    """A hidden neuron: shift 2 (v in units of 4 per level), offset φ = 1/2 as bias 2, digits 2, 1 (thresholds
    K c_j 2**shift = 16, 8). Its input population sends level 3 as payloads 4, 2 in steps 3-4 (weight 2), which
    arrive one Loihi step later: v = 2 while nothing arrives, then 8 + 2, 4 + 2. The hidden population's local step
    is the Loihi step - 1: its window 3-4 (Loihi 4-5) sums 16 = K v: level floor(v / 4) = 2, whose one digit (2,
    payload K 2 = 4) it sends at the first step of its next window (Loihi 6), and again from the window after."""
    code_in = FewSpikeCode((4, 2), (4, 2), (4, 2), 0, 0)
    code = FewSpikeCode((16, 8), (16, 8), (4, 2), 2, 1)
    network = GradedNetwork(
        [
            GradedLayer(None, GradedNeuron(message_bits=3, levels=3, fs=code_in), "in", (1,)),
            GradedLayer(
                _dense(np.array([[2]])),
                GradedNeuron(shift=2, message_bits=3, levels=3, bias_mant=2, fs=code),
                "hidden",
            ),
        ]
    )
    trace = network.run(np.array([[3]]), 8)
    # Loihi step t is the hidden population's local step t - 1: its payloads arrive one step late
    assert trace.v[1][0, :, 0].tolist() == [2, 2, 2, 10, 6, 10, 6, 10]
    assert trace.spikes[1][0, :, 0].tolist() == [0, 0, 0, 0, 0, 4, 0, 4]


def _dense(weights: np.ndarray):
    from neurodeploy_loihi import fixed_point as fp
    from neurodeploy_loihi.emulator import DenseSynapse

    return DenseSynapse(weights, sign_mode=fp.SignMode.MIXED)


@pytest.fixture(scope="module")
def fs_artifact(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fs") / "mnist-fs"
    calibration = load_calibration(str(CALIBRATION), 256)
    return compile_model(MODEL, "loihi", folder, calibration=calibration, conversion="coding=fs,fs-steps=4")


def test_mnist_few_spike_graded_equals_the_quantized_ann_at_whole_windows(fs_artifact):
    program = GradedProgram.load(fs_artifact.root)
    assert program.fs == {"steps": 4, "fill": 12}  # three few-spike layers, one window each
    x = np.load(TEST_IMAGES)["x"][:16]
    run = program.run(x, 8, checkpoints=(4, 6))
    expected = program.reference(x)  # the integer staircase ANN, computed layer by layer
    np.testing.assert_allclose(run.outputs, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run.checkpoints[4], expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(run.checkpoints[6], expected)  # half a window is no whole one
    assert int(np.sum(run.v_saturations)) == 0
    # each neuron sends at most one spike a step
    for name, spikes in run.spikes.items():
        assert 0 < spikes.max() <= run.neurons[name] * (program.fs["fill"] + 8)
    board = fs_artifact.manifest["target"]
    assert board["board_ready"] is False
    assert "GradedFewSpike" in board["board_reason"]


def test_mnist_few_spike_emulates_through_the_backend_and_agrees_with_the_reference(fs_artifact, tmp_path):
    from neurodeploy.compiler import emulate_artifact as emulate

    x = np.load(TEST_IMAGES)["x"][:32]
    ours = emulate(fs_artifact, x, steps=8, mode="graded").outputs
    calibration = load_calibration(str(CALIBRATION), 256)
    reference = compile_model(
        MODEL, "reference", tmp_path / "ref", calibration=calibration, conversion="coding=fs,fs-steps=4"
    )
    theirs = emulate(reference, x, steps=8).outputs
    (ours,) = ours.values() if isinstance(ours, dict) else (ours,)
    (theirs,) = theirs.values() if isinstance(theirs, dict) else (theirs,)
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.9  # the 8-bit weights may move a few


def test_few_spike_binary_mode_is_refused_naming_the_method_layer_and_mode(fs_artifact):
    backend = get_backend("loihi")
    with pytest.raises(DataError, match=r"few-spike coding \(coding=fs\): layer '/features.*binary mode .* graded"):
        backend.load(fs_artifact, "binary")


@pytest.mark.parametrize(
    ("option", "match"),
    [("profile=board", "profile=board runs stock Lava processes"), ("graded_staircase=false", "graded_staircase")],
)
def test_few_spike_is_refused_where_graded_mode_cannot_run_it(tmp_path, option, match):
    with pytest.raises(ConversionError, match=rf"few-spike coding \(coding=fs\), layer '.*': .*{match}"):
        compile_model(
            MODEL, "loihi", tmp_path / "a", conversion="coding=fs,fs-steps=4", target_options=dict([option.split("=")])
        )


def _signed_neuron(level: int, start: int = 0) -> list[int]:
    """Payloads of one input neuron with a fitted-style code (K = 2: thresholds -2, 3; resets 2, 3; payloads -5, 4)
    holding v = ``level``, 6 steps."""
    code = FewSpikeCode(thresholds=(-2, 3), resets=(2, 3), payloads=(-5, 4), start=start)
    assert code.signed
    network = GradedNetwork([GradedLayer(None, GradedNeuron(message_bits=4, fs=code), "n", (1,))])
    return network.run(np.array([[level]]), 6).spikes[0][0, :, 0].tolist()


@pytest.mark.parametrize(
    ("level", "start", "payloads"),
    [
        # window 1 sums 2 v; window 2 on: rest 6 >= -2 sends -5 (rest 4), 4 >= 3 sends 4
        (3, 0, [0, 0, -5, 4, -5, 4]),
        # rest -2 >= -2 sends -5 (rest -4), -4 < 3
        (-1, 0, [0, 0, -5, 0, -5, 0]),
        # rest -4 < -2: nothing (far below 0, as SiLU's zero there)
        (-2, 0, [0, 0, 0, 0, 0, 0]),
        # rest 0 >= -2 fires, but only in live windows: window 1 (rest 0 before any sum) sends nothing
        (0, 0, [0, 0, -5, 0, -5, 0]),
        # start 2: window 2 sends window 1's sum, which began before the start: nothing until window 3
        (0, 2, [0, 0, 0, 0, -5, 0]),
    ],
)
def test_signed_few_spike_neuron_matches_a_hand_derived_trace_and_is_gated_before_its_start(level, start, payloads):
    assert _signed_neuron(level, start) == payloads


def test_a_signed_code_needs_a_sign_bit_in_its_payload_width():
    code = FewSpikeCode(thresholds=(-2, 3), resets=(2, 3), payloads=(-5, 4))
    GradedNeuron(message_bits=4, fs=code)  # -8..7
    with pytest.raises(ValueError, match="few-spike payloads"):
        GradedNeuron(message_bits=3, fs=code)  # -4..3


@pytest.fixture(scope="module")
def silu_artifact():
    from loihi_mnist import compiled_silu

    return compiled_silu(8)


def test_silu_few_spike_graded_equals_its_integer_reference_at_whole_windows(silu_artifact):
    """The SiLU example's fitted codes (negative thresholds and payloads) as integer few-spike populations: the
    run read over whole windows equals the window-by-window integer reference, v never saturates, negative
    payloads are sent, and the payloads fit signed 8-bit messages."""
    program = GradedProgram.load(silu_artifact.root)
    assert program.fs == {"steps": 8, "fill": 16}
    assert program.input_unit is not None
    assert program.message_bits == 8
    codes = [layer.neuron.fs for layer in program.network.layers[:-1]]
    assert all(code is not None and code.signed and min(code.thresholds) < 0 for code in codes)
    assert max(abs(p) for code in codes for p in code.payloads) <= 127
    x = np.load(TEST_IMAGES)["x"][:32]
    run = program.run(x, 16, checkpoints=(8, 12))
    expected = program.reference(x)
    np.testing.assert_allclose(run.outputs, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run.checkpoints[8], expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(run.checkpoints[12], expected)  # half a window is no whole one
    assert int(np.sum(run.v_saturations)) == 0
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    trace = program.network.run(q0, program.fs["fill"] + 8 + program.delay)
    negative = [int((spikes < 0).sum()) for spikes in trace.spikes[:-1]]
    assert all(n > 0 for n in negative)
    assert silu_artifact.manifest["target"]["board_ready"] is False


def test_silu_few_spike_graded_agrees_with_the_float_few_spike_snn(silu_artifact):
    """The same 256 bundled test images on the reference target's float few-spike SNN and in graded mode on
    Loihi, both read over the second window after the fill: 98% of the predictions alike, accuracy within 2
    points."""
    from loihi_mnist import compiled_silu

    from neurodeploy.compiler import emulate_artifact as emulate

    reference = compiled_silu(8, "reference")
    data = np.load(TEST_IMAGES)
    x, y = data["x"], data["y"]
    graded = emulate(silu_artifact, x, steps=16, mode="graded")
    assert graded.delay == 16  # the pipeline's fill, run before the counted steps and reported
    ours, theirs = graded.outputs, emulate(reference, x, steps=16).outputs
    (ours,) = ours.values() if isinstance(ours, dict) else (ours,)
    (theirs,) = theirs.values() if isinstance(theirs, dict) else (theirs,)
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.98
    assert abs(np.mean(ours.argmax(1) == y) - np.mean(theirs.argmax(1) == y)) <= 0.02
