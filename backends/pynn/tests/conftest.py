"""Fixtures shared by the plugin's tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from neurodeploy import compile_model, load_calibration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "mnist"


@pytest.fixture(scope="session")
def mnist_spinnaker(tmp_path_factory):
    """The bundled MNIST CNN compiled for ``spinnaker`` with its calibration data, once per session (tests that
    change an artifact change a copy)."""
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"), 64)
    return compile_model(
        EXAMPLE / "mnist_cnn.onnx", "spinnaker", tmp_path_factory.mktemp("spinnaker") / "a", calibration=calibration
    )


def _python() -> str:
    python = os.environ.get("NEURODEPLOY_PYNN_PYTHON", "")
    problem = None
    if not python:
        problem = "NEURODEPLOY_PYNN_PYTHON (a Python with NEST, PyNN and sPyNNaker: make .venv-pynn/.installed) unset"
    else:
        check = subprocess.run(
            [python, "-c", "import nest, pyNN.nest, pyNN.spiNNaker"], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            problem = f"{python} cannot import NEST, PyNN and sPyNNaker: {check.stderr[-500:]}"
    if problem is not None:
        if os.environ.get("NEURODEPLOY_REQUIRE_PYNN") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return python


@pytest.fixture(scope="session")
def pynn_python() -> str:
    """The Python that runs the artifacts' PyNN scripts (NEURODEPLOY_PYNN_PYTHON: NEST, PyNN and sPyNNaker);
    without it a test skips, or fails under NEURODEPLOY_REQUIRE_PYNN=1."""
    return _python()
