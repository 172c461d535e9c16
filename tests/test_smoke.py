"""End-to-end: the bundled model compiles for the reference target and its SNN classifies test images."""

import json
from pathlib import Path

import numpy as np
import pytest

from neurodeploy import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import PipelineError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"


def test_bundled_model_compiles_and_emulates(tmp_path):
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"))
    artifact = compile_model(EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "out", calibration=calibration)
    data = np.load(EXAMPLE / "test_images.npz")
    x, y = data["x"][:64], data["y"][:64]
    ann = emulate_artifact(artifact, x, mode="ann")
    snn = emulate_artifact(artifact, x, steps=128)
    # Floors one image (1.6 points) below what this machine measures: ANN 64/64, SNN 64/64 at T = 128.
    assert (ann.predictions == y).mean() >= 0.98
    assert (snn.predictions == y).mean() >= 0.98


def test_qcfs_example_model_converts_without_calibration_and_is_close_at_T_equal_L(tmp_path):
    """examples/mnist_qcfs: three QCFS layers (L = 4) with their trained λ; no calibration data is needed."""
    folder = EXAMPLE.parent / "mnist_qcfs"
    log = json.loads((folder / "training_log.json").read_text())
    artifact = compile_model(folder / "mnist_qcfs.onnx", "reference", tmp_path / "out")
    record = json.loads((artifact.root / "report.json").read_text())["conversion"]["convert-to-snn"]
    assert sorted(record["lambda"].values()) == sorted(log["lambda_trained"].values())
    assert set(record["levels"].values()) == {log["levels"]}
    data = np.load(EXAMPLE / "test_images.npz")
    x, y = data["x"][:128], data["y"][:128]
    ann = emulate_artifact(artifact, x, mode="ann")
    snn = emulate_artifact(artifact, x, steps=log["levels"])
    # Measured: ANN 127/128 (0.992), SNN 128/128 at T = L; the floors allow one image fewer.
    assert (ann.predictions == y).mean() >= 0.98
    assert (snn.predictions == y).mean() >= 0.99
    assert (snn.predictions == y).mean() >= (ann.predictions == y).mean() - 0.02


def test_conversion_options_reach_the_pipeline_and_the_manifest(tmp_path):
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"), 64)
    default = compile_model(EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "a", calibration=calibration)
    assert default.manifest["pipeline"].endswith(",convert-to-snn")  # the defaults: 99.9th percentile, per layer
    assert default.manifest["options"]["conversion"] is None
    report = json.loads((default.root / "report.json").read_text())
    assert report["conversion"]["convert-to-snn"]["norm"] == "percentile"
    assert report["conversion"]["convert-to-snn"]["percentile"] == 99.9
    tuned = compile_model(
        EXAMPLE / "mnist_cnn.onnx",
        "reference",
        tmp_path / "b",
        calibration=calibration,
        conversion="granularity=channel, norm=max",
    )
    assert tuned.manifest["pipeline"].endswith(",convert-to-snn{norm=max,granularity=channel}")
    assert tuned.manifest["options"]["conversion"] == "norm=max,granularity=channel"
    with pytest.raises(PipelineError, match="unknown option 'speed'"):
        compile_model(EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "c", conversion="speed=3")
    with pytest.raises(PipelineError, match="not both"):
        compile_model(EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "c", conversion="norm=max", pipeline="")
    assert not (tmp_path / "c").exists()
