"""The reference backend's simulator and resource report."""

from pathlib import Path

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for

from neurodeploy import compile_model, emulate_artifact
from neurodeploy.backends.base import CompiledModel
from neurodeploy.backends.reference.backend import ReferenceBackend
from neurodeploy.errors import DataError
from neurodeploy.ir import IF, Dense, Graph, TensorType
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline
from neurodeploy.simulate import simulate


def one_layer(threshold=1.0):
    return Graph(
        "g",
        {"x": TensorType((3,))},
        ["s"],
        [
            Dense(name="fc", inputs=("x",), output="h", weight=np.eye(3, dtype=np.float32)),
            IF(name="n", inputs=("h",), output="s", threshold=np.float32(threshold), initial=0.0),
        ],
    )


def test_constant_input_gives_the_expected_spike_counts():
    # Direct encoding: 0.25, 0.5, 1.0 of threshold per step -> floor(T * x) spikes with v0 = 0 and ">=".
    sim = simulate(one_layer(), {"x": np.array([[0.25, 0.5, 1.0]], np.float32)}, 16)
    np.testing.assert_array_equal(sim.outputs["s"], [[4 / 16, 8 / 16, 16 / 16]])
    assert sim.spikes["n"].tolist() == [28.0]


def test_checkpoints_equal_shorter_runs():
    graph = conv_net()
    x = inputs_for(graph)
    PassManager(build_pipeline(f"{CANONICALIZE},convert-to-snn")).run(graph, PassContext(calibration=x))
    long = simulate(graph, {"x": x}, 20, checkpoints=(5, 12))
    for steps in (5, 12):
        np.testing.assert_array_equal(
            long.checkpoints[steps]["logits"], simulate(graph, {"x": x}, steps).outputs["logits"]
        )


def test_resources_count_neurons_and_synapses():
    graph = conv_net()
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    backend = ReferenceBackend()
    report = backend.resources(backend.plan(CompiledModel(snn=graph)))
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["conv1"].neurons == 4 * 8 * 8
    assert by_name["conv1"].fan_in == 2 * 9
    assert by_name["conv1"].synapses == 4 * 8 * 8 * 18
    assert by_name["fc"].neurons == 5
    assert by_name["fc"].fan_in == 6
    assert report.neurons == sum(layer.neurons for layer in report.layers)
    assert "total:" in report.format()


def test_emulate_refuses_an_empty_batch(tmp_path):
    model = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "mnist_cnn.onnx"
    artifact = compile_model(model, "reference", tmp_path / "out")
    for mode in ("snn", "ann"):
        with pytest.raises(DataError, match="0 samples"):
            emulate_artifact(artifact, np.zeros((0, 1, 28, 28), np.float32), mode=mode)
