"""Model loading by suffix (neurodeploy.frontend.load_model), and a model that arrives already spiking: it
compiles and emulates, its artifact holds no ANN, and the commands that need one say so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_support import run_cli

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.errors import DataError
from neurodeploy.frontend import ModelFormat, load_model, model_format, register_format, unregister_format
from neurodeploy.ir import Dense, Graph, TensorType
from neurodeploy.ir.neurons import IF

SPIKING = (".spk",)


def spiking_graph(path: Path, input_shapes=None) -> Graph:
    """A toy 'already spiking' format: 4 inputs, a Dense layer into 3 IF neurons, read from nothing."""
    rng = np.random.default_rng(0)
    graph = Graph(name=path.stem, inputs={"x": TensorType((4,))}, outputs=["s"])
    graph.ops = [
        Dense(name="fc", inputs=["x"], output="h", weight=rng.random((3, 4)).astype(np.float32), bias=None),
        IF(name="lif", inputs=["h"], output="s", threshold=np.float32(1.0)),
    ]
    return graph


@pytest.fixture
def spiking_format():
    register_format(SPIKING, ModelFormat("toy-spiking", spiking_graph))
    yield
    unregister_format(SPIKING)


def test_onnx_is_read_by_suffix_and_by_default() -> None:
    assert model_format("model.onnx").name == "onnx"
    assert model_format("MODEL.ONNX").name == "onnx"
    assert model_format("model.bin").name == "onnx"  # the ONNX loader names what is wrong with other files


def test_a_suffix_cannot_be_claimed_twice(spiking_format) -> None:
    with pytest.raises(ValueError, match=r"'\.spk' is already read as toy-spiking"):
        register_format((".spk",), ModelFormat("other", spiking_graph))


def test_unknown_content_under_onnx_suffix_is_a_load_error(tmp_path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(Exception, match="model"):
        load_model(bad)


def test_a_spiking_model_compiles_and_emulates_without_an_ann(spiking_format, tmp_path, capsys) -> None:
    model = tmp_path / "net.spk"
    model.write_bytes(b"toy")
    artifact = compile_model(model, "reference", tmp_path / "art", pipeline="")
    assert not artifact.has_ann
    assert "ann.json" not in artifact.files
    assert "snn.json" in artifact.files
    assert artifact.manifest["source"]["format"] == "toy-spiking"
    x = np.full((2, 4), 0.5, np.float32)
    result = emulate_artifact(artifact, x, steps=8)
    # v rises by sum(w) * 0.5 per step from v(0) = 0.5: the rate is that current, clipped to 1
    current = spiking_graph(model).ops[0].weight.sum(axis=1) * 0.5
    assert result.outputs.shape == (2, 3)
    np.testing.assert_allclose(result.outputs[0], np.minimum(np.floor(0.5 + 8 * current) / 8, 1.0), atol=1e-6)
    with pytest.raises(DataError, match="holds no ANN"):
        emulate_artifact(artifact, x, steps=8, mode="ann")
    np.save(tmp_path / "x.npy", x)
    out = run_cli(capsys, "emulate", tmp_path / "art", "--input", tmp_path / "x.npy", "--mode", "ann")
    assert out.code != 0
    assert "holds no ANN" in out.err


def test_evaluate_reports_a_spiking_model_without_an_ann(spiking_format, tmp_path) -> None:
    from neurodeploy.evaluate import evaluate

    model = tmp_path / "net.spk"
    model.write_bytes(b"toy")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.full((4, 4), 0.5, np.float32), y=np.array([0, 1, 2, 0]))
    report = evaluate(model, str(data), [4, 8], pipeline="", workers=1).to_dict()
    assert report["ann_accuracy"] is None
    assert report["ann_ir_accuracy"] is None
    # the rates of the toy network's three IF neurons (sum(w) * 0.5 per step, clipped to 1): as emulate computes
    current = spiking_graph(model).ops[0].weight.sum(axis=1) * 0.5
    predicted = int(np.argmax(np.minimum(np.floor(0.5 + 8 * current) / 8, 1.0)))
    assert report["snn_accuracy"]["8"] == np.mean(np.array([0, 1, 2, 0]) == predicted)
