"""The QCFS CIFAR-10 models of ``examples/cifar10_qcfs`` (trained VGG and ResNet-20) compiled for the loihi target
(binary mode, default profile), run by Lava's bit-accurate process models (``Loihi2SimCfg(select_tag="fixed_pt")``)
and by the emulator on a CIFAR-10 test image: the same spikes, u and v in every population at every Loihi step,
and the same readout. The trained networks' spike rates are what the emulator's event loops see in use; the
random networks of ``test_against_lava.py`` cover the edge cases. In graded mode, the trained ResNet-20 (residual
Adds, QCFS populations sending their levels) equals Lava payload for payload and its quantized ANN."""

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lava_checks import assert_program_equals_lava, assert_same, require_lava
from neurodeploy_loihi.graded import GradedProgram
from neurodeploy_loihi.program import Program

from neurodeploy.compiler import compile_model
from neurodeploy.data import load_dataset

require_lava()

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "cifar10_qcfs"
STEPS = 4
"""Graph steps: L = 4, where a QCFS layer converts exactly; the run takes STEPS + the pipeline delay."""


@pytest.mark.parametrize("arch", ["resnet20", "vgg"])
def test_trained_cifar_model_equals_lava_fixed_pt_spike_for_spike(arch: str) -> None:
    x = load_dataset("cifar10", "test", limit=1).x
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(EXAMPLES / f"{arch}_qcfs.onnx", "loihi", Path(tmp) / "a")
        program = Program.load(artifact.root)
    assert_program_equals_lava(program, x, STEPS, arch)


def test_trained_resnet20_in_graded_mode_equals_lava_fixed_pt_and_its_quantized_ann() -> None:
    from neurodeploy_loihi.lava_graded import run_graded_in_lava
    from neurodeploy_loihi.quantize import to_lava

    x = load_dataset("cifar10", "test", limit=1).x
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(EXAMPLES / "resnet20_qcfs.onnx", "loihi", Path(tmp) / "a")
        program = GradedProgram.load(artifact.root)
    assert {layer.neuron.levels for layer in program.network.layers[:-1]} == {4}
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = program.delay + 2
    (lava,) = run_graded_in_lava([(program.network, q0)], steps)
    assert_same(program.network.run(q0, steps), lava, program.names)
    k = program.readout["population"]
    want = to_lava(program.integer_forward(x)[k], program.shapes[k])
    for t in range(program.delay, steps):
        assert (lava.v[k][:, t] == want).all(), f"readout at t={t}"
