"""Few-spike coding (``coding=fs``) on the loihi target, graded mode: the integer few-spike neuron
(:func:`neurodeploy_loihi.graded.fs_step`) against hand-derived traces, the bundled MNIST model compiled and
emulated against the 8-bit quantized ANN it computes exactly, and the refusals (binary mode, the board profile,
the rounded staircase, a code fitted to SiLU)."""

from pathlib import Path

import numpy as np
import pytest
from neurodeploy_loihi.graded import FewSpikeCode, GradedLayer, GradedNetwork, GradedNeuron, GradedProgram

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


def test_a_code_fitted_to_silu_is_refused_naming_the_layer_and_why(tmp_path):
    """A SiLU model's few-spike code is fitted (negative spike values and thresholds, no staircase digits): graded
    mode's integer few-spike populations send non-negative digits of a staircase only."""
    example = EXAMPLE.parent / "mnist_silu"
    calibration = load_calibration(str(example / "calibration.npz"), 64)
    refusal = (
        r"few-spike coding \(coding=fs\), layer '/features/features.2/Mul': its code is fitted to SiLU \(.*\), and "
        r"the loihi target's graded few-spike populations run only the integer digits .* no negative spike .*run it "
        r"on the reference target"
    )
    with pytest.raises(ConversionError, match=refusal):
        compile_model(
            example / "mnist_silu.onnx",
            "loihi",
            tmp_path / "a",
            calibration=calibration,
            conversion="coding=fs,fs-steps=8",
        )
