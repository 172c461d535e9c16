"""Few-spike neurons in graded mode (``coding=fs``) against Lava's fixed-point process models
(``Loihi2SimCfg(select_tag="fixed_pt")``): our ``GradedFewSpike`` process (its ``fixed_pt`` model) fed by Lava's
``Dense`` / ``Conv`` with graded messages, payload for payload and u and v for u and v at every step, on a
hand-made two-layer network (gated windows, hidden neurons with a shift and their offset in the bias) and on the
bundled MNIST model compiled with ``coding=fs,fs-steps=4``, whose readout also equals the 8-bit quantized ANN at
whole windows; and codes of either sign (a hand-made signed network, the SiLU example's fitted codes), whose
negative payloads pass through Lava's ``Dense`` and ``Conv`` and whose windows before their start send nothing."""

import sys
from pathlib import Path

import numpy as np
from lava_checks import assert_same, require_lava

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers of backends/loihi/tests
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import DenseSynapse
from neurodeploy_loihi.graded import FewSpikeCode, GradedLayer, GradedNetwork, GradedNeuron, GradedProgram

require_lava()

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "mnist"
MODEL, CALIBRATION, TEST_IMAGES = (EXAMPLE / f for f in ("mnist_cnn.onnx", "calibration.npz", "test_images.npz"))


def _two_layers() -> tuple[GradedNetwork, np.ndarray]:
    """Three input few-spike neurons (L = 3 in K = 2 steps: digits 2, 1) into two hidden ones (shift 2, offset 1/2
    as bias 2, windows before local step 2 gated off) through a dense synapse with negative and positive weights."""
    code_in = FewSpikeCode(thresholds=(4, 2), resets=(4, 2), payloads=(4, 2))
    code = FewSpikeCode(thresholds=(16, 8), resets=(16, 8), payloads=(4, 2), start=2, depth=1)
    weights = np.array([[2, 1, -1], [1, 3, 2]], np.int64)
    network = GradedNetwork(
        [
            GradedLayer(None, GradedNeuron(message_bits=3, levels=3, fs=code_in), "in", (3,)),
            GradedLayer(
                DenseSynapse(weights, num_weight_bits=8, sign_mode=fp.SignMode.MIXED),
                GradedNeuron(shift=2, message_bits=3, levels=3, bias_mant=2, fs=code),
                "hidden",
                (2,),
            ),
        ]
    )
    return network, np.array([[3, 2, 1], [1, 3, 3]], np.int64)


def test_a_two_layer_few_spike_network_equals_lava_fixed_pt() -> None:
    from neurodeploy_loihi.lava_graded import run_graded_in_lava

    network, q0 = _two_layers()
    steps = 10
    (lava,) = run_graded_in_lava([(network, q0)], steps)
    ours = network.run(q0, steps)
    assert_same(ours, lava, ["in", "hidden"])
    assert np.any(ours.spikes[1] != 0)  # the hidden neurons send


def test_bundled_mnist_few_spike_equals_lava_fixed_pt_and_the_quantized_ann(tmp_path: Path) -> None:
    from neurodeploy_loihi.lava_graded import run_graded_in_lava
    from neurodeploy_loihi.quantize import to_lava

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    calibration = load_calibration(str(CALIBRATION), 256)
    artifact = compile_model(
        MODEL, "loihi", tmp_path / "fs", calibration=calibration, conversion="coding=fs,fs-steps=4"
    )
    program = GradedProgram.load(artifact.root)
    x = np.load(TEST_IMAGES)["x"][:6]
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = program.fs["fill"] + 8
    (lava,) = run_graded_in_lava([(program.network, q0)], steps)
    assert_same(program.network.run(q0, steps), lava, program.names)
    assert any(np.any(s != 0) for s in lava.spikes[:-1])
    expected = program.integer_forward(x)
    np.testing.assert_array_equal(program.run(x, 8).outputs.argmax(axis=1), expected[-1].argmax(axis=1))


def test_a_signed_few_spike_network_equals_lava_fixed_pt() -> None:
    """Codes with thresholds at or below 0 and negative payloads (as a fitted SiLU code has), inputs of either
    sign and 0: the windows before each population's start would fire at rest 0 and must send nothing."""
    from neurodeploy_loihi.lava_graded import run_graded_in_lava

    code_in = FewSpikeCode(thresholds=(-2, 3), resets=(2, 3), payloads=(-5, 4))
    code = FewSpikeCode(thresholds=(-6, 10, 4), resets=(4, 10, -3), payloads=(-3, 7, 2), start=3, depth=1)
    weights = np.array([[2, -4, 6], [-8, 2, 4]], np.int64)
    network = GradedNetwork(
        [
            GradedLayer(None, GradedNeuron(message_bits=4, fs=code_in), "in", (3,)),
            GradedLayer(
                DenseSynapse(weights, num_weight_bits=8, sign_mode=fp.SignMode.MIXED),
                GradedNeuron(message_bits=4, bias_mant=-1, fs=code),
                "hidden",
                (2,),
            ),
        ]
    )
    q0 = np.array([[3, 0, -1], [-2, 2, 0], [0, 0, 0]], np.int64)
    steps = 14
    (lava,) = run_graded_in_lava([(network, q0)], steps)
    ours = network.run(q0, steps)
    assert_same(ours, lava, ["in", "hidden"])
    assert np.any(ours.spikes[1] < 0)
    assert np.any(ours.spikes[1] > 0)


def test_silu_few_spike_equals_lava_fixed_pt_and_its_integer_reference() -> None:
    from loihi_mnist import compiled_silu
    from neurodeploy_loihi.lava_graded import run_graded_in_lava
    from neurodeploy_loihi.quantize import to_lava

    program = GradedProgram.load(compiled_silu(4).root)
    x = np.load(TEST_IMAGES)["x"][:4]
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = program.fs["fill"] + 8
    (lava,) = run_graded_in_lava([(program.network, q0)], steps)
    assert_same(program.network.run(q0, steps), lava, program.names)
    assert np.any(lava.spikes[0] < 0)  # negative graded spikes (at K = 4 the second layer's code has none)
    np.testing.assert_allclose(program.run(x, 8).outputs, program.reference(x), rtol=1e-6, atol=1e-6)
