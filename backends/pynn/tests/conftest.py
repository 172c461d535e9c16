"""Fixtures shared by the plugin's tests."""

from __future__ import annotations

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
