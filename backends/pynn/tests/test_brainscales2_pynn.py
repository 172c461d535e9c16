"""The ``brainscales2`` artifact's PyNN script (``run_pynn.py``) in NEST, against the emulator, on the bundled
example (``examples/mnist_bss2``).

NEST's ``iaf_psc_exp`` solves the same CUBA equations as the emulator, with exact propagators at the same 0.1 µs
step, so the two agree up to floating-point rounding, once the script has allowed for NEST's one step per synapse
(which the emulator's sources do not take). Rounding matters only where V lands on the threshold within it: a
spike then fires one 0.1 µs step apart, and the leaky readout sees its charge a step earlier or later. Measured
here: at T = 64 on 256 images, every neuron's spike count equal and the outputs within 0.019 of values up to
12.8; at T = 32 on these 32 images, every spike count equal, 23 of the 32 samples' outputs within 0.01 and the
largest difference 0.166 of values up to 9.07. A step off in the script's timing changes spike counts in both
populations.

Runs the script under NEURODEPLOY_PYNN_PYTHON (see ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import brainscales2, pynn_check

from neurodeploy import compile_model, load_calibration

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx"
IMAGES = ROOT / "examples" / "mnist" / "test_images.npz"
STEPS = 32
SAMPLES = 32


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    calibration = load_calibration(str(ROOT / "examples" / "mnist" / "calibration.npz"), 64)
    return compile_model(MODEL, "brainscales2", tmp_path_factory.mktemp("bss2") / "a", calibration=calibration)


def test_the_artifact_carries_its_script(artifact):
    script = Path(brainscales2.__file__).with_name("run_pynn_brainscales2.py").read_bytes()
    assert (artifact.root / brainscales2.SCRIPT).read_bytes() == script
    assert brainscales2.SCRIPT in artifact.manifest["files"]


def test_nest_runs_the_generated_script_as_the_emulator_does_on_the_bundled_example(artifact, pynn_python):
    with np.load(IMAGES) as data:
        x = data["x"][:SAMPLES]
    netlist = brainscales2.load(artifact)
    emulated = brainscales2.run(netlist, x, STEPS, counts=True)
    emulated["counts"] = {k: v.reshape(SAMPLES, -1) for k, v in emulated["counts"].items()}
    simulated = pynn_check.simulate(artifact.root, x, STEPS, pynn_python)
    result = pynn_check.compare(emulated, simulated)
    hidden = [p.name for p in netlist.populations if p.role != "readout"]
    assert set(result["populations"]) == {netlist.sources[0].name, *hidden}
    for name in hidden:
        agreement = result["populations"][name]
        assert agreement["spikes_emulator"] > 100 * SAMPLES, name  # the layer is active
        assert agreement["differing"] <= 0.001, (name, agreement)
    assert result["top_class_agreement"] == 1.0, result
    # most samples' outputs agree to rounding; where a hidden spike lands a step apart, within 3% of the largest
    gap = np.abs(simulated["outputs"] - emulated["outputs"]).reshape(SAMPLES, -1).max(axis=1)
    assert (gap <= 1e-3 * result["outputs_largest"]).mean() >= 0.5, gap
    assert result["outputs_max_difference"] <= 0.03 * result["outputs_largest"], result


def test_the_check_never_runs_the_script_inside_an_artifact(artifact, tmp_path):
    """An artifact is data: ``pynn_check`` runs the package's copy of the script, so a tampered ``run_pynn.py``
    (here one that would write a marker file) runs nothing. The interpreter has no PyNN, so the package's script
    fails, which is reported."""
    import shutil
    import sys

    from neurodeploy.errors import DataError

    copy = tmp_path / "artifact"
    shutil.copytree(artifact.root, copy)
    marker = tmp_path / "ran"
    (copy / brainscales2.SCRIPT).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with np.load(IMAGES) as data:
        x = data["x"][:2]
    with pytest.raises(DataError, match=r"run_pynn_brainscales2.py on .* failed"):
        pynn_check.simulate(copy, x, 4, sys.executable)
    assert not marker.exists()
