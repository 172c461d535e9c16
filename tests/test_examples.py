"""The shipped N-MNIST example model: it imports, and its ANN agrees with onnxruntime on real samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir import interpret

NMNIST = Path(__file__).resolve().parents[1] / "examples" / "nmnist"


@pytest.fixture(scope="module")
def nmnist_test():
    """The first 8 N-MNIST test samples, as the ANN sees them (mean of the 1 ms frames)."""
    from neurodeploy.data import data_folder, load_dataset

    folder = data_folder("nmnist-small")
    if folder is None:
        pytest.skip("the shared data (or its nmnist-small/) is not here")
    return load_dataset("nmnist", "test", limit=8, analog=True)


def test_nmnist_model_is_small_and_logged():
    model = NMNIST / "nmnist_cnn.onnx"
    assert model.stat().st_size < 2**20
    log = json.loads((NMNIST / "training_log.json").read_text())
    assert log["onnx_bytes"] == model.stat().st_size
    assert log["data"]["bin_us"] == 1000
    assert log["data"]["window_us"] == 300_000
    assert log["torch_test_accuracy"] == log["onnxruntime_test_accuracy"]


def test_nmnist_model_imports_and_matches_onnxruntime(nmnist_test):
    ort = pytest.importorskip("onnxruntime")
    model = NMNIST / "nmnist_cnn.onnx"
    graph = import_onnx(model)
    assert list(graph.inputs) == ["input"]
    assert graph.inputs["input"].shape == (2, 34, 34)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = session.run(["logits"], {"input": nmnist_test.x})[0]
    ours = interpret.run(graph, nmnist_test.x)[graph.outputs[0]]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
    assert np.array_equal(ours.argmax(1), expected.argmax(1))
