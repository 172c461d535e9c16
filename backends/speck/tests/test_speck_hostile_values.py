"""Hostile values on the speck target (issue #10): non-finite inputs refused, 8-bit images rescaled with a
warning (the input policy, neurodeploy.data.policy), the step cap, and NaN or Inf reaching the quantizer from a
graph built through the Python API refused naming the layer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.lowering import lower
from neurodeploy_speck.quantize import quantize_layer
from speck_graphs import conv_chain

from neurodeploy.backends.registry import get_backend
from neurodeploy.cli import main
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import ConversionError, DataError, LimitError

MNIST = Path(__file__).resolve().parents[3] / "examples" / "mnist"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """The bundled MNIST CNN compiled for speck with the bundled calibration images (range [0, 1] recorded)."""
    out = tmp_path_factory.mktemp("speck-hostile") / "mnist"
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MNIST / "mnist_cnn.onnx", "speck", out, calibration=calibration)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    with np.load(MNIST / "test_images.npz") as data:
        return data["x"][:4].astype(np.float32)


def run(capsys: pytest.CaptureFixture[str], *argv) -> tuple[int, str]:
    """The command line in-process: (exit status, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e30])
def test_hostile_inputs_are_refused(artifact, images, tmp_path: Path, capsys, value: float) -> None:
    x = images.copy()
    x[1, 0, 10, 10] = value
    np.save(tmp_path / "x.npy", x)
    code, err = run(capsys, "emulate", artifact.root, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz")
    assert code == 1
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert "x.npy" in err
    assert "sample 1" in err
    assert not (tmp_path / "y.npz").exists()


def test_uint8_images_are_divided_by_255_with_a_warning(artifact, images, caplog) -> None:
    pixels = np.rint(images * 255).astype(np.uint8)
    with caplog.at_level(logging.WARNING):  # whatever level an earlier in-process CLI run left on the root logger
        scaled = emulate_artifact(artifact, pixels, steps=8)
    assert "dividing them by 255" in caplog.text
    floats = emulate_artifact(artifact, pixels.astype(np.float32) / 255, steps=8)
    np.testing.assert_array_equal(scaled.outputs, floats.outputs)


def test_the_backend_called_directly_refuses_too_many_steps(artifact, images) -> None:
    with pytest.raises(LimitError, match="NEURODEPLOY_MAX_STEPS"):
        get_backend("speck").emulate(artifact, images[:1], steps=10**9)
    with pytest.raises(DataError, match="complex"):
        emulate_artifact(artifact, images[:1].astype(np.complex64), steps=2)


@pytest.mark.parametrize("where", ["weight", "threshold"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_the_quantizer_refuses_non_finite_values_naming_the_layer(where: str, value: float) -> None:
    graph = conv_chain(convs=[(4, 3, 1, 1)], pools=[2], threshold=0.8)
    if where == "weight":
        weight = graph.op("conv0").weight.copy()
        weight[0, 0, 0, 0] = value
        graph.op("conv0").weight = weight
    else:
        graph.op("if0").threshold = np.float32(value)
    with pytest.raises(ConversionError, match=r"layer 'conv0'.*NaN or Inf"):
        quantize_layer(lower(graph).layers[0])
