"""Hostile values on the loihi target (issue #10): non-finite inputs refused, 8-bit images rescaled with a
warning (the input policy, neurodeploy.data.policy), the step cap, and NaN or Inf reaching the quantizer from a
graph built through the Python API refused naming the layer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import small_cnn
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.lowering import lower
from neurodeploy_loihi.quantize import Options, quantize

from neurodeploy.backends.registry import get_backend
from neurodeploy.cli import main
from neurodeploy.compiler import emulate_artifact
from neurodeploy.errors import ConversionError, DataError, LimitError


def run(capsys: pytest.CaptureFixture[str], *argv) -> tuple[int, str]:
    """The command line in-process: (exit status, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("mode", ["binary", "graded"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_inputs_are_refused(tmp_path: Path, capsys, mode: str, value: float) -> None:
    x, _ = mnist_test_images()
    x = x[:3].copy()
    x[2, 0, 10, 10] = value
    np.save(tmp_path / "x.npy", x)
    code, err = run(capsys, "emulate", compiled("subtract").root, "--input", tmp_path / "x.npy", "--mode", mode,
                    "--output", tmp_path / "y.npz")  # fmt: skip
    assert code == 1
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert "x.npy" in err
    assert "non-finite" in err
    assert "sample 2" in err
    assert not (tmp_path / "y.npz").exists()


def test_uint8_images_are_divided_by_255_with_a_warning(caplog) -> None:
    x, _ = mnist_test_images()
    pixels = np.rint(x[:4] * 255).astype(np.uint8)
    with caplog.at_level(logging.WARNING):  # whatever level an earlier in-process CLI run left on the root logger
        scaled = emulate_artifact(compiled("subtract"), pixels, steps=4)
    assert "dividing them by 255" in caplog.text
    floats = emulate_artifact(compiled("subtract"), pixels.astype(np.float32) / 255, steps=4)
    np.testing.assert_array_equal(scaled.outputs, floats.outputs)


def test_the_backend_called_directly_refuses_nan_and_too_many_steps() -> None:
    x, _ = mnist_test_images()
    bad = x[:2].copy()
    bad[0, 0, 0, 0] = np.nan
    loihi = get_backend("loihi")
    with pytest.raises(DataError, match="non-finite"):
        loihi.emulate(compiled("subtract"), bad, steps=2)
    with pytest.raises(LimitError, match="NEURODEPLOY_MAX_STEPS"):
        loihi.emulate(compiled("subtract"), x[:1], steps=10**9)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_the_quantizer_refuses_non_finite_weights_naming_the_layer(value: float) -> None:
    graph = small_cnn()
    weight = graph.op("conv2").weight.copy()
    weight[0, 0, 0, 0] = value
    graph.op("conv2").weight = weight
    with pytest.raises(ConversionError, match=r"'if2'.*NaN or Inf"):
        quantize(lower(graph), 2.0, Options())


def test_the_quantizer_refuses_a_nan_threshold_and_readout_range() -> None:
    graph = small_cnn()
    graph.op("if1").threshold = np.float32(np.nan)  # the first IF: its current is computed on the host
    with pytest.raises(ConversionError, match="NaN or Inf"):
        quantize(lower(graph), 2.0, Options())
    with pytest.raises(ConversionError, match="readout range"):
        quantize(lower(small_cnn()), float("nan"), Options())
