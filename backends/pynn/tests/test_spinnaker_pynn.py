"""The ``spinnaker`` artifact's PyNN script (``run_pynn.py``) in the simulators themselves: NEST runs the bundled
MNIST CNN's netlist next to the emulator, and sPyNNaker's own mapper places it on a virtual board.

NEST (3.10, through PyNN 0.13) is floating point and the emulator is sPyNNaker's s16.15 arithmetic, so the two
agree to rounding, not bit for bit. The script gives NEST the chip's decay and gain per step (the chip rounds
exp(-ts / tau_m) to 15 bits; see ``run_pynn.chip_constants``), so what is left is the rounding of V, which moves
a spike by a tick where V lands within a few 2**-15 mV of the threshold. The bounds below are what that allows
(measured on these 8 images at T = 32: correlation >= 0.998 per population, totals within 0.1%, every top class
the same, outputs within 0.09 of logits up to 10). A real error breaks them by far: starting each sample a tick
late, as the script did before it allowed for PyNN's look-ahead under NEST, cut the first layer's total by 6%.

The script runs under the interpreter in NEURODEPLOY_PYNN_PYTHON (``make`` sets it to ``.venv-pynn``, which has
NEST, PyNN and sPyNNaker); without it the tests skip, unless NEURODEPLOY_REQUIRE_PYNN=1, where they fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import pynn_check, spinnaker

from neurodeploy.readout import recorded_delay

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "mnist"
STEPS = 32
SAMPLES = 8


@pytest.fixture(scope="module")
def artifact(mnist_spinnaker):
    return mnist_spinnaker


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    with np.load(EXAMPLE / "test_images.npz") as data:
        return data["x"][:SAMPLES]


def test_the_artifact_carries_the_script(artifact):
    assert (artifact.root / spinnaker.SCRIPT).read_bytes() == (
        Path(spinnaker.__file__).with_name(spinnaker.SCRIPT).read_bytes()
    )
    assert spinnaker.SCRIPT in artifact.manifest["files"]


def test_nest_runs_the_generated_script_as_the_emulator_does_on_the_bundled_cnn(artifact, images, pynn_python):
    """With the artifact's readout delay (the readout's V read at step D and at T, in both)."""
    netlist = spinnaker.load(artifact)
    delay = recorded_delay(artifact.manifest)
    assert delay > 0  # calibrated: the readout leaves out the start-up transient
    emulated = spinnaker.run(netlist, images, STEPS, counts=True, readout_delay=delay)
    emulated["counts"] = {k: v.reshape(SAMPLES, -1) for k, v in emulated["counts"].items()}
    simulated = pynn_check.simulate(artifact.root, images, STEPS, pynn_python, readout_delay=delay)
    result = pynn_check.compare(emulated, simulated)
    assert set(result["populations"]) == {p.name for p in netlist.populations if p.role != "readout"}
    for name, agreement in result["populations"].items():
        assert agreement["spikes_emulator"] > 1000 * SAMPLES, name  # every layer is active: the check means something
        assert agreement["correlation"] >= 0.99, (name, agreement)
        assert abs(agreement["spikes_simulator"] / agreement["spikes_emulator"] - 1) <= 0.01, (name, agreement)
    assert result["top_class_agreement"] == 1.0, result
    assert result["outputs_max_difference"] <= 0.02 * result["outputs_largest"], result


def test_sPyNNaker_maps_the_bundled_cnn_on_a_virtual_board_as_the_resource_report_says(artifact, pynn_python):
    placed = pynn_check.map_virtual_board(artifact.root, pynn_python)
    netlist = spinnaker.load(artifact)
    resources = json.loads((artifact.root / "report.json").read_text())["resources"]
    layers = {layer["name"]: layer for layer in resources["layers"]}
    assert set(placed["populations"]) == {p.name for p in netlist.populations}
    for p in netlist.populations:
        mapped = placed["populations"][p.name]
        # sPyNNaker's own ring-buffer shifts, from the netlist's max_expected_summed_weight
        assert tuple(mapped["ring_buffer_shift"]) == p.shifts, p.name
        # one core per slice of 256 neurons, in order, as the resource report counts them
        size = spinnaker.NEURONS_PER_CORE
        assert mapped["slices"] == [[lo, min(lo + size, p.size) - 1] for lo in range(0, p.size, size)], p.name
        first = layers[p.name]["core"]
        following = [layers[q.name]["core"] for q in netlist.populations if layers[q.name]["core"] > first]
        assert mapped["cores"] == min(following, default=resources["cores_used"]) - first
    assert sum(m["cores"] for m in placed["populations"].values()) == resources["cores_used"]
