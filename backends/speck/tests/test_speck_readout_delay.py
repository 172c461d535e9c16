"""The host's delayed readout: the output core's events of the first min(delay, T // 2) steps are not counted.

The readout core fires spikes that later input cannot take back (a membrane readout can go down again): in the
first steps, while every core fills from its initial value at once, the readout fires for the transient, not the
input. Checked here against counts taken from the emulator's own per-step record, by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.backend import direct_events
from neurodeploy_speck.emulator import Network

from neurodeploy.artifact import load_artifact, load_graph
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import DataError
from neurodeploy.ir import interpret
from neurodeploy.readout import readout_skip

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


def _rewritten(artifact, copy: Path, document: dict):
    """A copy of ``artifact`` whose speck.json is ``document``, its manifest's checksum updated."""
    shutil.copytree(artifact.root, copy)
    data = json.dumps(document).encode()
    (copy / "speck.json").write_bytes(data)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["speck.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return load_artifact(copy)


def _frames(document: dict, x: np.ndarray, steps: int) -> np.ndarray:
    """A direct input's events as the artifact sends them: about x / event_value a step."""
    return direct_events(x / document["host"]["input"]["event_value"], steps)


def test_auto_delay_is_calibrated_on_the_binned_cores(artifacts):
    auto, none, _nodelay = artifacts
    report = json.loads((auto.root / "report.json").read_text())["target"]["readout_delay"]
    assert report["source"].startswith("auto: calibrated on 128 samples in the binned mode")
    table = {row["delay"]: row["percent"] for row in report["calibration"]["agreement_with_ann_percent"]}
    steps = report["calibration"]["steps"]
    usable = [i for i, _ in enumerate(steps) if max(row[i] for row in table.values()) >= 50]
    best = max(table, key=lambda d: (np.mean([table[d][i] for i in usable]), -d))
    assert report["steps"] == best == _document(auto)["host"]["output"]["readout_delay"]
    assert best > 0  # the bundled CNN fills for a few steps
    assert _document(none)["host"]["output"]["readout_delay"] == 0
    assert none.manifest["options"]["target_options"] == {"readout_delay": 0, "readout_floor": None}


def test_the_agreement_table_is_the_binned_readout_hand_counted(artifacts):
    auto, _none, nodelay = artifacts
    report = json.loads((auto.root / "report.json").read_text())["target"]["readout_delay"]
    x = load_calibration(str(MNIST / "calibration.npz")).x[:128]
    graph = load_graph(auto.root, "ann")  # the ANN the compiler calibrated against
    ann = interpret.run(graph, {next(iter(graph.inputs)): x})[graph.outputs[0]].reshape(len(x), -1).argmax(axis=1)
    document = _document(nodelay)  # the same cores, counted from step 0
    network = Network.from_config(document)
    counts = network.run_binned(_frames(document, x, 64)).counts[network.output_core].reshape(len(x), 64, -1)
    table = {row["delay"]: row["percent"] for row in report["calibration"]["agreement_with_ann_percent"]}
    for delay in (0, 4, 16):
        for i, steps in enumerate(report["calibration"]["steps"]):
            skip = min(delay, steps // 2)
            picked = counts[:, skip:steps].sum(axis=1).argmax(axis=1)  # value_per_spike > 0, no host bias here
            assert table[delay][i] == round(100.0 * float((picked == ann).mean()), 2)


def test_without_calibration_data_the_delay_is_the_cores_on_the_longest_path(tmp_path):
    artifact = compile_model(MNIST / "mnist_cnn.onnx", "speck", tmp_path / "a")
    assert _document(artifact)["host"]["output"]["readout_delay"] == 4  # conv, conv, conv, readout: one chain
    report = json.loads((artifact.root / "report.json").read_text())["target"]["readout_delay"]
    assert report["source"] == "cores on the longest path to the readout (no calibration data)"


def test_skip_is_the_delay_at_most_half_the_run():
    assert [readout_skip(4, t) for t in (1, 2, 7, 8, 9, 64)] == [0, 1, 3, 4, 4, 4]
    assert readout_skip(0, 64) == 0


@pytest.mark.parametrize("steps", [6, 20])
def test_outputs_are_the_counts_after_the_delay_hand_computed(artifacts, images, steps):
    auto, _none, nodelay = artifacts
    x = images[0][:8]
    document = _document(auto)
    network = Network.from_config(document)
    counts = network.run_binned(_frames(document, x, steps)).counts[network.output_core].reshape(len(x), steps, -1)
    value = document["host"]["output"]["value_per_spike"]
    delay = document["host"]["output"]["readout_delay"]
    skip = min(delay, steps // 2)
    expected = (counts[:, skip:].sum(axis=1) * value / (steps - skip)).astype(np.float32)
    result = emulate_artifact(auto, x, steps=steps, checkpoints=(steps // 2,))
    np.testing.assert_array_equal(result.outputs, expected)
    half = steps // 2
    skip = min(delay, half // 2)
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
    document = _document(auto)
    del document["host"]["output"]["readout_delay"]  # as artifacts written before the field
    old = _rewritten(auto, tmp_path / "old", document)
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


def _gap_model(path: Path, bias: float) -> Path:
    """conv 3x3 (1 -> 4) -> ReLU -> global average pool over 16 x 16 -> Gemm (3 classes, bias ``bias``): after
    the pool, each readout weight is 1/256 of the trained one next to an undivided bias."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.normal(size=(4, 1, 3, 3)) * 0.5).astype(np.float32), "w1"),
        numpy_helper.from_array(np.full(4, 0.05, np.float32), "b1"),
        numpy_helper.from_array((rng.normal(size=(3, 4)) * 0.5).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([bias, -bias, 0.5 * bias], np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "gap",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_readout_bias_that_would_zero_its_weights_goes_to_the_host(tmp_path):
    from neurodeploy.data.calibration import Calibration

    x = np.random.default_rng(1).random((8, 1, 16, 16)).astype(np.float32)
    model = _gap_model(tmp_path / "gap.onnx", bias=0.4)
    artifact = compile_model(model, "speck", tmp_path / "a", calibration=Calibration(x, "random"))
    document = _document(artifact)
    bias = document["host"]["output"]["bias"]
    np.testing.assert_allclose(bias, [0.4, -0.4, 0.2], rtol=1e-6)
    readout = document["configuration"]["cnn_layers"][document["host"]["output"]["core"]]
    assert not any(readout["biases"])
    assert not readout["leak_enable"]
    assert np.count_nonzero(readout["weights"]) > 0
    report = json.loads((artifact.root / "report.json").read_text())["target"]
    assert report["readout_bias"]["on"] == "host"
    # the output is the counted spikes' value plus the host's bias, by hand from the emulator's record
    steps = 12
    network = Network.from_config(document)
    counts = network.run_binned(_frames(document, x, steps)).counts[network.output_core].reshape(len(x), steps, -1)
    skip = min(document["host"]["output"]["readout_delay"], steps // 2)
    value = document["host"]["output"]["value_per_spike"]
    expected = (counts[:, skip:].sum(axis=1) * value / (steps - skip) + np.asarray(bias)).astype(np.float32)
    np.testing.assert_array_equal(emulate_artifact(artifact, x, steps=steps).outputs, expected)


@pytest.mark.parametrize(("rate", "on"), [("4", "chip"), ("64", "host")])
def test_a_readout_bias_past_one_threshold_a_tick_goes_to_the_host(tmp_path, rate, on):
    # bias 0.02 next to a readout threshold of about 0.57 / rate: 64 spikes a step leave 0.009 per spike, and one
    # tick of the bias would be 2.2 thresholds, of which the chip sends one spike
    from neurodeploy.data.calibration import Calibration

    x = np.random.default_rng(1).random((8, 1, 16, 16)).astype(np.float32)
    model = _gap_model(tmp_path / "gap.onnx", bias=0.02)
    target_options = {"readout_rate": rate}
    artifact = compile_model(
        model, "speck", tmp_path / "a", calibration=Calibration(x, "random"), target_options=target_options
    )
    document = _document(artifact)
    readout = document["configuration"]["cnn_layers"][document["host"]["output"]["core"]]
    report = json.loads((artifact.root / "report.json").read_text())["target"]
    if on == "chip":
        assert any(readout["biases"])
        assert "bias" not in document["host"]["output"]
        assert "readout_bias" not in report
        return
    assert not any(readout["biases"])
    np.testing.assert_allclose(document["host"]["output"]["bias"], [0.02, -0.02, 0.01], rtol=1e-6)
    assert re.fullmatch(
        r"one bias tick would add up to 2\.\d+ thresholds, and the chip sends one spike per tick",
        report["readout_bias"]["why"],
    )


def test_a_hidden_layer_whose_weights_all_round_to_zero_is_refused(tmp_path):
    from neurodeploy_speck.lowering import Layer
    from neurodeploy_speck.quantize import quantize_layer

    from neurodeploy.errors import ResourceError

    layer = Layer(
        name="conv",
        neuron="if",
        in_shape=(1, 4, 4),
        out_shape=(2, 4, 4),
        weight=np.full((2, 1, 3, 3), 1e-3),
        bias=np.array([1.0, -1.0]),
        stride=(1, 1),
        padding=(1, 1),
        threshold=1.0,
        initial=0.5,
        reset="subtract",
        source=-1,
        source_pooling=1,
    )
    with pytest.raises(ResourceError, match=r"layer 'conv': every weight rounds to 0"):
        quantize_layer(layer)


def test_a_host_bias_of_the_wrong_length_is_refused(artifacts, tmp_path):
    from neurodeploy.errors import ArtifactError

    auto = artifacts[0]
    document = _document(auto)
    document["host"]["output"]["bias"] = [0.0, 1.0]
    bad = _rewritten(auto, tmp_path / "bad", document)
    with pytest.raises(ArtifactError, match="host bias has 2 values"):
        emulate_artifact(bad, np.zeros((1, 1, 28, 28), np.float32), steps=4)
