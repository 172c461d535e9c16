"""The host's delayed readout: the output core's events of the first min(delay, T // 2) steps are not counted.

The readout core fires spikes that later input cannot take back (a membrane readout can go down again): in the
first steps, while every core fills from its initial value at once, the readout fires for the transient, not the
input. Checked here against counts taken from the emulator's own per-step record, by hand.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.backend import direct_events, readout_skip
from neurodeploy_speck.emulator import Network

from neurodeploy.artifact import load_artifact
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"


def _compile(out: Path, **options: str):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MNIST / "mnist_cnn.onnx", "speck", out, calibration=calibration, target_options=options)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("delay")
    return (
        _compile(root / "auto"),
        _compile(root / "none", readout_delay="0", readout_floor="none"),
        _compile(root / "nodelay", readout_delay="0"),
    )


@pytest.fixture(scope="module")
def images():
    data = np.load(MNIST / "test_images.npz")
    return data["x"], data["y"]


def _document(artifact) -> dict:
    return json.loads((load_artifact(artifact.root).root / "speck.json").read_text())


def test_auto_delay_is_the_cores_on_the_longest_path(artifacts):
    auto, none, _nodelay = artifacts
    assert _document(auto)["host"]["output"]["readout_delay"] == 4  # conv, conv, conv, readout: one chain
    assert _document(none)["host"]["output"]["readout_delay"] == 0
    report = json.loads((auto.root / "report.json").read_text())["target"]["readout_delay"]
    assert report["steps"] == 4
    assert "longest path" in report["source"]
    assert none.manifest["options"]["target_options"] == {"readout_delay": 0, "readout_floor": None}


def test_skip_is_the_delay_at_most_half_the_run():
    assert [readout_skip(4, t) for t in (1, 2, 7, 8, 9, 64)] == [0, 1, 3, 4, 4, 4]
    assert readout_skip(0, 64) == 0


@pytest.mark.parametrize("steps", [6, 20])
def test_outputs_are_the_counts_after_the_delay_hand_computed(artifacts, images, steps):
    auto, _none, nodelay = artifacts
    x = images[0][:8]
    document = _document(auto)
    network = Network.from_config(document)
    counts = network.run_binned(direct_events(x, steps)).counts[network.output_core].reshape(len(x), steps, -1)
    value = document["host"]["output"]["value_per_spike"]
    skip = min(4, steps // 2)
    expected = (counts[:, skip:].sum(axis=1) * value / (steps - skip)).astype(np.float32)
    result = emulate_artifact(auto, x, steps=steps, checkpoints=(steps // 2,))
    np.testing.assert_array_equal(result.outputs, expected)
    half = steps // 2
    skip = min(4, half // 2)
    np.testing.assert_array_equal(
        result.checkpoints[half], (counts[:, skip:half].sum(axis=1) * value / (half - skip)).astype(np.float32)
    )
    undelayed = emulate_artifact(nodelay, x, steps=steps)  # the same network, counted from step 0
    np.testing.assert_array_equal(undelayed.outputs, (counts.sum(axis=1) * value / steps).astype(np.float32))
    assert sum(int(v.sum()) for v in result.spikes.values()) == sum(int(v.sum()) for v in undelayed.spikes.values())


def test_readout_floor_is_one_threshold_below_zero_by_default(artifacts):
    auto, none, _nodelay = artifacts
    for artifact, floor in ((auto, 1), (none, None)):
        layers = _document(artifact)["configuration"]["cnn_layers"]
        out = _document(artifact)["host"]["output"]["core"]
        core = layers[out]
        assert core["threshold_low"] == (-(2**15) if floor is None else -core["threshold_high"])
        hidden = [c for i, c in enumerate(layers) if c is not None and i != out]
        assert all(c["threshold_low"] == -(2**15) for c in hidden)


def test_delay_and_floor_remove_the_start_transient_on_mnist(artifacts, images):
    # Measured on the 256 bundled test images at T = 16: 253 correct with both (the default), 123 with neither,
    # 200 with the delay alone, 130 with the floor alone;
    # the floors leave a few images of margin.
    auto, none, _nodelay = artifacts
    x, y = images
    default = float((emulate_artifact(auto, x, steps=16).predictions == y).mean())
    neither = float((emulate_artifact(none, x, steps=16).predictions == y).mean())
    assert default >= 0.96, default
    assert neither <= 0.6, neither


def test_an_artifact_without_the_field_counts_every_step(artifacts, images, tmp_path):
    auto, _none, nodelay = artifacts
    x = images[0][:4]
    copy = tmp_path / "old"
    shutil.copytree(auto.root, copy)
    document = _document(auto)
    del document["host"]["output"]["readout_delay"]  # as artifacts written before the field
    data = json.dumps(document).encode()
    (copy / "speck.json").write_bytes(data)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["speck.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    old = load_artifact(copy)
    np.testing.assert_array_equal(
        emulate_artifact(old, x, steps=12).outputs, emulate_artifact(nodelay, x, steps=12).outputs
    )


@pytest.mark.parametrize(
    ("option", "text"),
    [("readout_delay", t) for t in ("-1", "two", "1.5", "1001", "")]
    + [("readout_floor", t) for t in ("-1", "nan", "inf", "x", "40000")],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, option, text):
    with pytest.raises(DataError, match=option):
        _compile(tmp_path / "out", **{option: text})
    assert not (tmp_path / "out").exists()
