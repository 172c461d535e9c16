"""The lab suite: the bundled MNIST CNN (or --artifact) on a board, compared with its emulator sample by sample.

Run it on a lab PC with the board attached and its vendor SDK installed (hil/README.md); on a fake board of the
inventory it rehearses the same steps with no hardware.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import DataError
from neurodeploy.hil.harness import run_on_board, write_report

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
MODELS = {"brainscales2": ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx"}
"""Per target, the bundled model that fits its chip where the MNIST CNN does not (as ``make demo`` chooses)."""


@pytest.fixture(scope="session")
def artifact(pytestconfig, board, tmp_path_factory):
    given = pytestconfig.getoption("--artifact")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("hil") / f"mnist-{board.target}"
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    options = dict(get_backend(board.target).board_options)  # e.g. Loihi's stock processes only
    model = MODELS.get(board.target, MNIST / "mnist_cnn.onnx")
    return compile_model(model, board.target, out, calibration=calibration, target_options=options).root


@pytest.fixture(scope="session")
def images(pytestconfig):
    return np.load(MNIST / "test_images.npz")["x"][: pytestconfig.getoption("--samples")]


def test_board_equals_emulator_sample_by_sample(pytestconfig, board, artifact, images):
    steps = pytestconfig.getoption("--steps") or get_backend(board.target).default_steps
    report = run_on_board(artifact, board, images, steps=steps)
    out = write_report(report, Path(pytestconfig.getoption("--report-dir")) / board.name)
    summary = report.to_dict()["summary"]
    assert report.verdict == "pass", (
        f"{report.verdict} on {board.name}: {summary['match']} match, {summary['mismatch']} mismatch, "
        f"{summary['not_run']} not run ({summary['stopped'] or 'see the report'}); {out / 'report.md'}"
    )


def test_wrong_input_shape_is_refused_before_the_board(board, artifact, images):
    with pytest.raises(DataError):
        run_on_board(artifact, board, images[:, :, :-1], steps=4)
