"""The spinnaker target's readout delay (``-X readout_delay``, :mod:`neurodeploy.readout`): the host reads the
readout population's V at graph step s = min(D, T // 2) and at T, and the output is their difference over
θ (T - s), so the start-up transient of the rate-coded layers below is left out of the mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import spinnaker

from neurodeploy import emulate_artifact
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.readout import recorded_delay

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    with np.load(EXAMPLE / "test_images.npz") as data:
        return data["x"][:200], data["y"][:200]


def test_the_delayed_readout_is_the_difference_of_two_undelayed_ones(mnist_spinnaker, images):
    """Hand-derived from the undelayed readout: out_c = (V_c - V_0) / (θ c) at every checkpoint c, so
    (c out_c - s out_s) / (c - s) = (V_c - V_s) / (θ (c - s)), the delayed readout over steps s + 1 .. c."""
    netlist = spinnaker.load(mnist_spinnaker)
    x = images[0][:6]
    plain = spinnaker.run(netlist, x, 24, checkpoints=(3, 5, 10, 12, 24))["checkpoints"]
    delayed = spinnaker.run(netlist, x, 24, checkpoints=(10, 24), readout_delay=5)
    for c, s in ((10, 5), (24, 5)):
        expected = (c * plain[c].astype(np.float64) - s * plain[s].astype(np.float64)) / (c - s)
        np.testing.assert_allclose(delayed["checkpoints"][c], expected, rtol=1e-5, atol=1e-5)
    short = spinnaker.run(netlist, x, 6, readout_delay=5)["outputs"]  # at most half the run: s = 3
    whole = spinnaker.run(netlist, x, 6)["outputs"].astype(np.float64)
    np.testing.assert_allclose(short, (6 * whole - 3 * plain[3].astype(np.float64)) / 3, rtol=1e-5, atol=1e-5)
    # the spikes are those of every step: the delay changes what the host reads, not what the chip runs
    undelayed = spinnaker.run(netlist, x, 24)
    assert {k: v.tolist() for k, v in delayed["spikes"].items()} == {
        k: v.tolist() for k, v in undelayed["spikes"].items()
    }


def test_the_artifact_records_a_calibrated_delay_and_emulate_applies_it(mnist_spinnaker, images, tmp_path):
    """The bundled CNN at T = 16 on 200 test images: the delayed readout (the artifact's default) against the same
    artifact compiled with readout_delay=0. Measured: 99.0% against 33.5% (D = 6, 64 calibration samples)."""
    delay = recorded_delay(mnist_spinnaker.manifest)
    assert 1 <= delay <= 16
    x, y = images
    delayed = emulate_artifact(mnist_spinnaker, x, steps=16)
    assert delayed.readout_delay == delay
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"), 64)
    off = compile_model(
        EXAMPLE / "mnist_cnn.onnx",
        "spinnaker",
        tmp_path / "off",
        calibration=calibration,
        target_options={"readout_delay": "0"},
    )
    plain = emulate_artifact(off, x, steps=16)
    assert plain.readout_delay == 0
    better = (delayed.predictions == y).mean()
    worse = (plain.predictions == y).mean()
    assert better >= 0.9
    assert better >= worse + 0.3
