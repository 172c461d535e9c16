"""The Speck N-MNIST example (examples/nmnist_speck): the model fits Speck, and the live script streams events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "nmnist_speck"


@pytest.fixture(scope="module")
def nmnist_data():
    from neurodeploy.data import data_folder

    folder = data_folder("nmnist-small")
    if folder is None:
        pytest.skip("the shared data (or its nmnist-small/) is not here")
    return folder


def test_model_is_logged():
    model = EXAMPLE / "nmnist_cnn.onnx"
    log = json.loads((EXAMPLE / "training_log.json").read_text())
    assert log["onnx_bytes"] == model.stat().st_size
    assert log["widths"] == [16, 32, 64]
    assert log["epochs"] == 100  # the full recipe of examples/nmnist (see this example's README)
    assert log["torch_test_accuracy"] == log["onnxruntime_test_accuracy"]


def test_model_fits_speck(nmnist_data, tmp_path):
    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration
    from neurodeploy.encoding import Encoding

    artifact = compile_model(
        EXAMPLE / "nmnist_cnn.onnx",
        "speck",
        tmp_path / "a",
        calibration=load_calibration("nmnist", 32),
        encoding=Encoding("events"),
    )
    report = json.loads((artifact.root / "report.json").read_text())
    assert report["resources"]["cores_used"] == 4
    first = next(c for c in report["target"]["cores"] if c["layer"] == "/features/features.0/Conv")
    assert first["neuron_memory"] == [16 * 2**12, 64 * 1024]  # 16 channels x 34x34 rounded to 64x64: cores 0-2
    assert first["core"] in (0, 1, 2)


@pytest.mark.slow
def test_live_script_prints_a_decision_per_window(nmnist_data):
    cmd = [sys.executable, str(EXAMPLE / "live.py"), "--samples", "2", "--window-ms", "100"]
    result = subprocess.run([*cmd, "--calibration-samples", "32"], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith("recording")]
    assert len(rows) == 2
    assert all(line.count(" ms: ") == 3 for line in rows)  # windows ending at 100, 200 and 300 ms
    assert "2 recordings, binned mode:" in lines[-1]
