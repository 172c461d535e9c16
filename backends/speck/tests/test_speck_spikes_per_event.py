"""The spikes_per_event target option: thresholds raised (consumers compensated) so that one input event adds at
most K thresholds to any neuron."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.emulator import sum_pool
from neurodeploy_speck.lowering import limit_spikes_per_event, lower
from speck_graphs import conv_chain

from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import DataError
from neurodeploy.ir import kernels


def rate_limit(lowered, x: np.ndarray) -> np.ndarray:
    """The lowered float chain's rate limit: per layer rate = relu(conv(sum_pool(rates below)) + b) / theta; the
    output is the readout's rate times the readout threshold (what an output spike is worth)."""
    rates = {-1: x}
    for i, layer in enumerate(lowered.layers):
        source = sum_pool(rates[layer.source], layer.source_pooling)
        pads = (layer.padding[0], layer.padding[1], layer.padding[0], layer.padding[1])
        z = kernels.conv2d(
            source.astype(np.float32), layer.weight.astype(np.float32), None, layer.stride, pads, (1, 1), 1
        ).astype(np.float64) + layer.bias.reshape(1, -1, 1, 1)
        rates[i] = np.maximum(z, 0) / layer.threshold
    return rates[lowered.readout_layer] * lowered.readout_threshold


def per_event_ratio(layer) -> float:
    top = np.maximum(layer.weight.reshape(layer.weight.shape[0], -1).max(axis=1), layer.bias)
    return float(top.max() / layer.threshold)


@pytest.mark.parametrize("limit", [1.0, 2.5, 8.0])
@pytest.mark.parametrize("seed", range(4))
def test_scaling_keeps_the_function_and_bounds_every_event(seed, limit):
    graph = conv_chain(convs=[(4, 3, 1, 1), (6, 3, 1, 0)], pools=[2, 1], in_shape=(2, 12, 12), seed=seed, threshold=0.1)
    x = np.random.default_rng(seed).uniform(0, 1, size=(5, 2, 12, 12))
    before = lower(graph, readout_threshold=0.7)
    want = rate_limit(before, x)
    ratios = [per_event_ratio(layer) for layer in before.layers]
    assert max(ratios) > limit, "the case must need scaling"
    after = lower(graph, readout_threshold=0.7)
    report = limit_spikes_per_event(after, limit)
    np.testing.assert_allclose(rate_limit(after, x), want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))
    for layer, entry in zip(after.layers, report):
        assert per_event_ratio(layer) <= limit * (1 + 1e-9)
        assert entry["layer"] == layer.name
        assert entry["alpha_max"] >= 1.0  # a layer's ratio depends on the scaling of the layers before it
    assert report[0]["alpha_max"] == pytest.approx(max(1.0, ratios[0] / limit))  # the first has none before it


def test_a_layer_within_the_limit_is_left_alone():
    graph = conv_chain(convs=[(4, 3, 1, 1)], pools=[2], threshold=100.0)
    lowered = lower(graph)
    weights = [layer.weight.copy() for layer in lowered.layers]
    report = limit_spikes_per_event(lowered, 1.0)
    assert [r["alpha_max"] for r in report] == [1.0, 1.0]
    for layer, w in zip(lowered.layers, weights):
        np.testing.assert_array_equal(layer.weight, w)


def test_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        limit_spikes_per_event(lower(conv_chain()), 0.5)


MNIST = Path(__file__).resolve().parents[3] / "examples" / "mnist"


def test_compile_option_bounds_every_layer_and_is_recorded(tmp_path):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    artifact = compile_model(
        MNIST / "mnist_cnn.onnx",
        "speck",
        tmp_path / "a",
        calibration=calibration,
        target_options={"spikes_per_event": "1"},
    )
    assert artifact.manifest["options"]["target_options"] == {"spikes_per_event": 1.0}
    report = json.loads((artifact.root / "report.json").read_text())["target"]
    assert report["spikes_per_event"]["limit"] == 1.0
    assert [r["layer"] for r in report["spikes_per_event"]["threshold_scaling"]] == [
        q["layer"] for q in report["quantization"]
    ]
    assert all(q["spikes_per_event_max"] <= 1 and q["spikes_per_bias_tick_max"] <= 1 for q in report["quantization"])
    assert not any("at most one spike per event" in w for w in artifact.manifest["warnings"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spikes_per_event": "0.5"}, "must be a number >= 1"),
        ({"spikes_per_event": "many"}, "must be a number >= 1"),
        ({"spike_per_event": "2"}, "has no option 'spike_per_event'; it takes spikes_per_event"),
    ],
)
def test_bad_target_options_fail_before_anything_is_written(tmp_path, options, message):
    with pytest.raises(DataError, match=message):
        compile_model(MNIST / "mnist_cnn.onnx", "speck", tmp_path / "out", target_options=options)
    assert not (tmp_path / "out").exists()


def test_other_targets_refuse_speck_options_naming_theirs(tmp_path):
    with pytest.raises(DataError, match=r"no option 'spikes_per_event'; it takes readout_delay \(auto"):
        compile_model(MNIST / "mnist_cnn.onnx", "reference", tmp_path / "out", target_options={"spikes_per_event": "1"})


def test_cli_passes_target_options_and_lists_them(tmp_path):
    cli = [str(Path(sys.executable).parent / "neurodeploy")]
    listing = subprocess.run([*cli, "targets"], capture_output=True, text=True, check=True).stdout
    assert "--target-option spikes_per_event=..." in listing
    bad = subprocess.run(
        [*cli, "compile", str(MNIST / "mnist_cnn.onnx"), "-t", "speck", "-o", str(tmp_path / "o"), "-X", "nokey"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "takes KEY=VALUE" in bad.stderr
    assert not (tmp_path / "o").exists()
