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

import numpy as np
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


def test_delayed_readout_from_lava_v_equals_the_emulation_driver() -> None:
    """The readout delay (neurodeploy.readout) on a board: the host reads the readout's v in Lava at graph step
    skip and at T. That equals what ``emulate`` gives, value for value; and the delay is not 0 here, so the check is
    not vacuous."""
    from neurodeploy_loihi.lava_runner import run_program_in_lava

    from neurodeploy.compiler import emulate_artifact
    from neurodeploy.readout import readout_skip

    artifact = compiled("subtract")
    delay = artifact.manifest["outputs"][0]["readout_delay"]["steps"]
    skip = readout_skip(delay, STEPS)
    assert skip > 0
    x, _ = mnist_test_images()
    x = x[:SAMPLES]
    lava = run_program_in_lava(Program.load(artifact.root), x, STEPS, record_all=False, skip=skip)
    ours = emulate_artifact(artifact, x, steps=STEPS)
    assert ours.readout_delay == delay
    np.testing.assert_array_equal(lava.outputs, ours.outputs)
    plain = Program.load(artifact.root).run(x, STEPS).outputs
    assert not np.allclose(plain, ours.outputs)  # the delay changed the readout
