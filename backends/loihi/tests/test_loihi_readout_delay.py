"""The readout delay on the loihi target: binary mode reads the readout's v at graph steps skip and T (what a host
does on a board), graded mode (the quantized ANN, settled once its pipeline has filled) reads every step."""

from __future__ import annotations

import numpy as np
import pytest
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.lava_runner import _outputs
from neurodeploy_loihi.program import Program

from neurodeploy.compiler import emulate_artifact
from neurodeploy.readout import readout_skip

STEPS = (6, 16)


@pytest.mark.parametrize("steps", STEPS)
def test_binary_readout_equals_v_at_skip_and_T_from_the_integer_trace(steps: int) -> None:
    """Reference: the readout population's integer v in the emulator's full trace, read at graph steps skip and
    T (Loihi steps skip + depth and T + depth), divided by (scale (T - skip)); the same reading Lava's v gets
    in ``lava/test_program_against_lava.py``."""
    artifact = compiled("subtract")
    entry = artifact.manifest["outputs"][0]["readout_delay"]
    assert entry["modes"] == ["binary"]
    skip = readout_skip(entry["steps"], steps)
    assert skip > 0
    program = Program.load(artifact.root)
    x, _ = mnist_test_images()
    x = x[:24]
    trace = program.network.run(steps=steps + program.delay, input_bias=program.input_bias(x))
    by_hand = _outputs(program, trace, steps, skip)
    result = emulate_artifact(artifact, x, steps=steps)
    assert result.readout_delay == entry["steps"]
    np.testing.assert_array_equal(result.outputs, by_hand)
    assert not np.allclose(program.run(x, steps).outputs, result.outputs)


def test_graded_mode_reads_every_step() -> None:
    artifact = compiled("subtract")
    x, _ = mnist_test_images()
    result = emulate_artifact(artifact, x[:8], steps=8, mode="graded")
    assert result.readout_delay == 0


def test_the_option_is_listed_and_zero_turns_it_off(tmp_path) -> None:
    from loihi_mnist import CALIBRATION, MODEL
    from neurodeploy_loihi.backend import Loihi2Backend

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    assert "readout_delay" in Loihi2Backend.target_options
    artifact = compile_model(
        MODEL,
        "loihi",
        tmp_path / "a",
        calibration=load_calibration(str(CALIBRATION), 64),
        target_options={"readout_delay": "0"},
    )
    x, _ = mnist_test_images()
    result = emulate_artifact(artifact, x[:8], steps=8)
    np.testing.assert_array_equal(result.outputs, Program.load(artifact.root).run(x[:8], 8).outputs)
