"""examples/mnist_residual on Speck: two identity blocks, each join a core that takes its skip as shifted input
channels; seven cores; accuracy on the bundled MNIST test images against the float SNN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "examples" / "mnist_residual" / "mnist_residual.onnx"
MNIST = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MODEL, "speck", tmp_path_factory.mktemp("res") / "a", calibration=calibration)


def test_each_block_joins_its_skip_on_one_core(artifact):
    document = json.loads((artifact.root / "speck.json").read_text())
    layers = document["host"]["layers"]
    assert len(layers) == 7
    joins = {layer["name"]: layer["sources"] for layer in layers if "sources" in layer}
    assert sorted(joins) == [
        "/features/features.2/second/second.0/Conv",
        "/features/features.5/second/second.0/Conv",
    ]
    shifts = sorted(s["feature_shift"] for sources in joins.values() for s in sources)
    assert shifts == [0, 0, 16, 32]  # the skip after the block's own 16 (32) channels
    assert document["host"]["output"]["readout_delay"] == 16  # chosen on the calibration data (7 cores deep)
    assert document["host"]["input"]["event_value"] == 0.5


@pytest.mark.slow
def test_binned_accuracy_against_the_float_snn(artifact, tmp_path):
    # Measured on the 256 bundled test images: Speck 246 and 255 right at T = 32 and 64, the float SNN 249 and 254
    # (each with its default readout: both leave out 16 steps chosen on the calibration data); the floors leave
    # a few images of margin.
    data = np.load(MNIST / "test_images.npz")
    x, y = data["x"], data["y"]
    reference = compile_model(
        MODEL, "reference", tmp_path / "ref", calibration=load_calibration(str(MNIST / "calibration.npz"))
    )
    for steps, floor, agree in ((32, 242, 0.97), (64, 250, 0.98)):
        speck = emulate_artifact(artifact, x, steps=steps)
        ref = emulate_artifact(reference, x, steps=steps)
        assert int((speck.predictions == y).sum()) >= floor, steps
        assert int((ref.predictions == y).sum()) >= floor, steps
        assert float((speck.predictions == ref.predictions).mean()) >= agree, steps
