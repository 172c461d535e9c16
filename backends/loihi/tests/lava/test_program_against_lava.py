"""The bundled MNIST model compiled for the loihi target (binary mode), run by the Lava runner in Lava's
bit-accurate process models (``Loihi2SimCfg(select_tag="fixed_pt")``) and by the emulator: the same spikes, u and
v in every population at every Loihi step, and the same readout, for 20 test images, with reset by subtraction
(SubtractiveLIF) and with Lava's own LIF (reset to zero).

The artifact is read back from its folder (``Program.load``), so the Lava network is built from the files a
board would get: the host graph's current as the input population's per-sample bias, the two pooled
convolutions as Lava ``Conv``\\ s with their repeated kernels, the readout ``Dense`` with its weight exponent.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("NEURODEPLOY_REQUIRE_LAVA") == "1":
    try:
        import lava  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"NEURODEPLOY_REQUIRE_LAVA=1 but lava-nc cannot be imported ({exc}): the Lava cross-checks must run; "
            "`make test-lava` creates .venv-lava (Python 3.10, lava-nc==0.10.0) and runs them there"
        ) from exc
else:
    pytest.importorskip(
        "lava", reason="lava-nc is not installed; the Lava cross-checks run in .venv-lava (make test-lava)"
    )

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared MNIST helper of backends/loihi/tests
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.program import Program

SAMPLES = 20
STEPS = 12
"""Graph steps; the run takes STEPS + 3 Loihi steps (one per synapse), enough for spikes to reach the readout
and every layer to fire (checked below)."""


@pytest.mark.parametrize("profile", ["subtract", "zero"])
def test_compiled_mnist_equals_lava_fixed_pt_spike_for_spike_and_state_for_state(profile: str) -> None:
    from neurodeploy_loihi.lava_runner import run_program_in_lava

    program = Program.load(compiled(profile).root)
    kinds = {"subtract": "subtractive", "zero": "lif"}
    assert [layer.neuron.kind for layer in program.network.layers[:3]] == [kinds[profile]] * 3
    x, _ = mnist_test_images()
    x = x[:SAMPLES]
    lava = run_program_in_lava(program, x, STEPS)
    ours = program.network.run(steps=STEPS + program.delay, input_bias=program.input_bias(x))
    for k, name in enumerate(program.names):
        assert ours.spikes[k].any() or program.roles[k] == "readout", f"{name} never fires: a weak comparison"
        for field in ("spikes", "u", "v"):
            a, b = getattr(ours, field)[k], getattr(lava.trace, field)[k]
            assert a.shape == b.shape == (SAMPLES, STEPS + program.delay, *program.network.layers[k].shape)
            if not np.array_equal(a, b):
                where = tuple(int(i) for i in np.argwhere(a != b)[0])
                raise AssertionError(
                    f"{profile}: {name} {field} differs from Lava first at (sample, step, *neuron) {where}: "
                    f"emulator {a[where]}, Lava {b[where]}"
                )
    run = program.run(x, STEPS)
    np.testing.assert_array_equal(lava.outputs, run.outputs)  # the readout, read from Lava's v
    assert np.ptp(run.outputs) > 0
