"""The bundled MNIST model compiled for the loihi target (binary mode), run by the Lava runner in Lava's
bit-accurate process models (``Loihi2SimCfg(select_tag="fixed_pt")``) and by the emulator: the same spikes, u and
v in every population at every Loihi step, and the same readout, for 20 test images, with reset by subtraction
(SubtractiveLIF) and with Lava's own LIF (reset to zero).

The artifact is read back from its folder (``Program.load``), so the Lava network is built from the files a
board would get: the host graph's current as the input population's per-sample bias, the two pooled
convolutions as Lava ``Conv``\\ s with their repeated kernels, the readout ``Dense`` with its weight exponent.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared MNIST helper of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.program import Program

require_lava()

SAMPLES = 20
STEPS = 12
"""Graph steps; the run takes STEPS + 3 Loihi steps (one per synapse), enough for spikes to reach the readout
and every layer to fire (checked below)."""


@pytest.mark.parametrize("profile", ["subtract", "zero"])
def test_compiled_mnist_equals_lava_fixed_pt_spike_for_spike_and_state_for_state(profile: str) -> None:
    program = Program.load(compiled(profile).root)
    kinds = {"subtract": "subtractive", "zero": "lif"}
    assert [layer.neuron.kind for layer in program.network.layers[:3]] == [kinds[profile]] * 3
    x, _ = mnist_test_images()
    x = x[:SAMPLES]
    assert_program_equals_lava(program, x, STEPS, profile)
