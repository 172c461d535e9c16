"""End-to-end: the bundled model compiles for the reference target and its SNN classifies test images."""

from pathlib import Path

import numpy as np

from neurodeploy import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"


def test_bundled_model_compiles_and_emulates(tmp_path):
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"))
    artifact = compile_model(EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "out", calibration=calibration)
    data = np.load(EXAMPLE / "test_images.npz")
    x, y = data["x"][:64], data["y"][:64]
    ann = emulate_artifact(artifact, x, mode="ann")
    snn = emulate_artifact(artifact, x, steps=128)
    assert (ann.predictions == y).mean() >= 0.98
    assert (snn.predictions == y).mean() >= 0.95
