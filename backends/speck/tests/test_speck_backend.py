"""The speck / speck2f / dynapcnn targets end to end: compile the bundled MNIST CNN, emulate the artifact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck import SpeckBackend
from neurodeploy_speck.backend import direct_events
from speck_graphs import conv_chain

from neurodeploy.artifact import load_artifact
from neurodeploy.backends.base import CompiledModel
from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import Calibration, load_calibration
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError, ResourceError

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def mnist_speck(tmp_path_factory):
    out = tmp_path_factory.mktemp("speck") / "mnist"
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MNIST / "mnist_cnn.onnx", "speck", out, calibration=calibration)


@pytest.fixture(scope="module")
def test_images():
    data = np.load(MNIST / "test_images.npz")
    return data["x"], data["y"]


@pytest.mark.parametrize("target", ["speck", "speck2f", "dynapcnn"])
def test_targets_are_registered(target):
    backend = get_backend(target)
    assert isinstance(backend, SpeckBackend)
    assert backend.target == target
    assert backend.fidelity == "bit-exact"


def test_mnist_artifact_uses_four_cores(mnist_speck):
    doc = json.loads((load_artifact(mnist_speck.root).root / "report.json").read_text())
    assert doc["resources"]["cores_used"] == 4
    cores = doc["target"]["cores"]
    assert [c["core"] for c in cores] == sorted(c["core"] for c in cores)
    big = next(c for c in cores if c["layer"] == "/features/features.8/Conv")
    assert big["kernel_memory"] == [32 * 1024, 32 * 1024]
    assert big["core"] in (3, 4, 5, 6)
    assert all(0 < q["threshold_high"] < 2**15 for q in doc["target"]["quantization"])
    assert mnist_speck.manifest["target"]["chip"] == "speck2f"
    assert "speck.json" in mnist_speck.manifest["files"]


@pytest.mark.slow
def test_mnist_binned_accuracy_close_to_reference(mnist_speck, test_images, tmp_path):
    x, y = test_images[0][:64], test_images[1][:64]
    speck = emulate_artifact(mnist_speck, x, steps=64)
    reference = compile_model(
        MNIST / "mnist_cnn.onnx",
        "reference",
        tmp_path / "ref",
        calibration=load_calibration(str(MNIST / "calibration.npz")),
    )
    ref = emulate_artifact(reference, x, steps=64)
    speck_acc = float((speck.predictions == y).mean())
    assert speck.mode == "binned"
    # Measured: 63/64 correct, 63/64 the reference SNN's prediction; the floors allow one image fewer.
    assert speck_acc >= 0.965, speck_acc
    assert float((speck.predictions == ref.predictions).mean()) >= 0.965
    assert set(speck.spikes) == set(speck.neurons)
    assert all(v.shape == (64,) for v in speck.spikes.values())


def test_event_mode_runs_the_artifact(mnist_speck, test_images):
    x = test_images[0][:2]
    result = emulate_artifact(mnist_speck, x, steps=8, mode="event", checkpoints=(4,))
    assert result.mode == "event"
    assert result.outputs.shape == (2, 10)
    assert set(result.checkpoints) == {4}
    assert sum(int(v.sum()) for v in result.spikes.values()) > 0


def test_checkpoints_agree_with_shorter_runs(mnist_speck, test_images):
    x = test_images[0][:4]
    long = emulate_artifact(mnist_speck, x, steps=12, checkpoints=(6,))
    short = emulate_artifact(mnist_speck, x, steps=6)
    np.testing.assert_array_equal(long.checkpoints[6], short.outputs)
    assert set(long.checkpoint_spikes[6]) == set(short.spikes)
    for name, total in short.spikes.items():
        np.testing.assert_array_equal(long.checkpoint_spikes[6][name], total)
    assert "input" in short.synops
    assert short.synops["/features/features.2/Relu"].min() > 0
    for name, total in short.synops.items():
        np.testing.assert_array_equal(long.checkpoint_synops[6][name], total)


def test_compiling_twice_gives_identical_files(mnist_speck, tmp_path):
    again = compile_model(
        MNIST / "mnist_cnn.onnx",
        "speck",
        tmp_path / "again",
        calibration=load_calibration(str(MNIST / "calibration.npz")),
    )
    assert again.manifest["files"] == mnist_speck.manifest["files"]


def test_events_input_takes_integer_counts(mnist_speck, test_images):
    x = test_images[0][:2]
    value = json.loads((mnist_speck.root / "speck.json").read_text())["host"]["input"]["event_value"]
    assert value == 0.5  # two events per unit of a direct input (the input_events option's default)
    frames = direct_events(x / value, 6).astype(np.float32)
    by_events = emulate_artifact(mnist_speck, frames, steps=6, encoding=Encoding("events"))
    direct = emulate_artifact(mnist_speck, x, steps=6)
    np.testing.assert_array_equal(by_events.outputs, direct.outputs)
    with pytest.raises(DataError, match="non-negative integer event counts"):
        emulate_artifact(mnist_speck, frames * 0.5, steps=6, encoding=Encoding("events"))
    with pytest.raises(DataError, match="6 frame"):
        emulate_artifact(mnist_speck, frames, steps=7, encoding=Encoding("events"))


def test_bad_inputs_are_refused(mnist_speck, test_images):
    x = test_images[0][:2]
    with pytest.raises(DataError, match="must be finite and >= 0"):
        emulate_artifact(mnist_speck, x - 0.5, steps=4)
    with pytest.raises(DataError, match="rate encoding"):
        emulate_artifact(mnist_speck, x, steps=4, encoding=Encoding("rate"))
    with pytest.raises(DataError, match="emulation modes binned, event"):
        emulate_artifact(mnist_speck, x, steps=4, mode="snn")
    with pytest.raises(DataError, match="expected"):
        emulate_artifact(mnist_speck, x[:, :, :20], steps=4)


def test_a_model_too_large_for_speck_fails_before_writing(tmp_path):
    # the bundled N-MNIST CNN: its first layer (32 x 34 x 34 neurons = 128Ki entries) fits no core
    out = tmp_path / "nmnist"
    rng = np.random.default_rng(0)
    calibration = Calibration(rng.random((4, 2, 34, 34)).astype(np.float32), "random")
    with pytest.raises(ResourceError, match=r"neuron 128Ki"):
        compile_model(ROOT / "examples" / "nmnist" / "nmnist_cnn.onnx", "speck", out, calibration=calibration)
    assert not out.exists()


def test_resources_of_a_graph_that_fits(tmp_path):
    backend = SpeckBackend("dynapcnn")
    report = backend.resources(backend.plan(CompiledModel(snn=conv_chain())))
    assert report.target == "dynapcnn"
    assert report.cores_used == 2


def test_importing_the_plugin_does_not_import_samna():
    code = "import sys, neurodeploy_speck; sys.exit('samna' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
