"""The N-MNIST CNN of examples/nmnist on the loihi target: its second pooling (2x2 / 2 on a 17 x 17 map, the last
row and column dropped) is no block of the next convolution, so that layer is Lava's Conv with the composed kernel
plus a Sparse of the border corrections; the network fits one chip and keeps the ANN's accuracy on event input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "examples" / "nmnist" / "nmnist_cnn.onnx"


@pytest.fixture(scope="module")
def nmnist_data():
    from neurodeploy.data import data_folder

    if data_folder("nmnist-small") is None:
        pytest.skip("the shared data (or its nmnist-small/) is not here")


def test_the_cropping_pool_compiles_as_a_conv_and_its_corrections_on_one_chip(nmnist_data, tmp_path):
    from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse
    from neurodeploy_loihi.program import Program

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration
    from neurodeploy.encoding import Encoding

    artifact = compile_model(
        MODEL, "loihi", tmp_path / "a", calibration=load_calibration("nmnist", 64), encoding=Encoding("events")
    )
    report = json.loads((artifact.root / "report.json").read_text())
    assert report["resources"]["cores_used"] <= 20  # 17 measured; every listed synapse would take 132
    program = Program.load(artifact.root)
    k = program.names.index("/features/features.10/Relu")
    layer = program.network.layers[k]
    assert isinstance(layer.synapse, ConvSynapse)
    assert layer.synapse.lava_weights.shape[1:3] == (6, 6)
    ((fix,),) = [layer.skips]
    assert isinstance(fix.synapse, SparseSynapse)
    assert (fix.source, fix.delay) == (k - 1, 0)


@pytest.mark.slow
def test_the_example_keeps_the_ann_accuracy_on_loihi(nmnist_data, tmp_path):
    from neurodeploy.cli import main

    out = tmp_path / "eval.json"
    argv = ["evaluate", str(MODEL), "--target", "loihi", "--data", "nmnist", "--encoding", "events"]
    argv += ["--calibration", "nmnist", "--calibration-samples", "256", "--limit", "25", "--steps", "300"]
    assert main([*argv, "--json", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    assert report["snn_accuracy"]["300"] >= report["ann_accuracy"] - 0.08  # 96% of 100 measured (ANN 97%)
