"""Quantization (one shared scale per layer), speck.json, and to_samna() against a fake samna."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from neurodeploy_speck import chip
from neurodeploy_speck.config import SamnaMissingError, to_samna
from neurodeploy_speck.emulator import Network
from neurodeploy_speck.lowering import lower
from neurodeploy_speck.quantize import discretization_scale, quantize_layer
from speck_graphs import conv_chain, integer_document


def test_discretization_scale_is_sinabs_rule():
    # max side: 127 / 0.5; min side when |min| > |max| * 128/127: 128 / 2
    assert discretization_scale(np.array([-0.1, 0.5]), 8) == pytest.approx(254.0)
    assert discretization_scale(np.array([-2.0, 0.5]), 8) == pytest.approx(64.0)
    assert discretization_scale(np.array([1.0]), 16) == pytest.approx(32767.0)
    assert discretization_scale(np.zeros(3), 8) == float("inf")


def test_one_scale_keeps_weight_threshold_ratio():
    graph = conv_chain(convs=[(4, 3, 1, 1)], pools=[2], threshold=0.8)
    layer = lower(graph).layers[0]
    q = quantize_layer(layer)
    assert q.weight.dtype == np.int64
    assert chip.WEIGHT_MIN <= q.weight.min()
    assert q.weight.max() <= chip.WEIGHT_MAX
    assert chip.WEIGHT_MIN <= q.bias.min()
    assert q.bias.max() <= chip.WEIGHT_MAX
    assert max(abs(int(q.weight.min())), int(q.weight.max())) in (127, 128)  # weights limit the scale here
    # one scale: the quantized ratio w / theta matches the float one to rounding
    np.testing.assert_allclose(q.weight / q.threshold_high, layer.weight / 0.8, atol=0.5 / q.threshold_high + 1e-3)
    assert q.threshold_high == round(0.8 * q.scale)
    assert q.initial == round(0.5 * 0.8 * q.scale)  # v0 = theta / 2 (the conversion's initial = 0.5)
    assert q.threshold_low == -(2**15)


def test_threshold_limits_the_scale_when_weights_are_tiny():
    graph = conv_chain(convs=[(2, 1, 1, 0)], pools=[1], threshold=1000.0)
    layer = lower(graph).layers[0]
    q = quantize_layer(layer)
    assert q.threshold_high == 32767
    assert q.report["limited_by"] == "threshold"
    assert np.abs(q.weight).max() < 127  # the 8-bit range is not used up
    np.testing.assert_array_equal(q.weight, np.rint(layer.weight * 32767 / 1000.0))


def test_per_channel_thresholds_fold_into_weights():
    graph = conv_chain(convs=[(3, 3, 1, 1)], pools=[1])
    graph.op("if0").threshold = np.array([0.5, 1.0, 2.0], np.float32)
    layer = lower(graph).layers[0]
    assert layer.threshold == 1.0
    np.testing.assert_allclose(layer.weight[2], graph.op("conv0").weight[2] / 2.0, rtol=1e-6)


def test_samna_weight_order_is_f_c_x_y():
    weight = np.arange(2 * 1 * 3 * 3).reshape(2, 1, 3, 3) - 8
    doc = integer_document([{"weight": weight, "threshold": 10}], (1, 5, 5))
    layer = doc["configuration"]["cnn_layers"][0]
    for f, c, y, x in np.ndindex(weight.shape):
        assert layer["weights"][f][c][x][y] == weight[f, c, y, x]
    assert np.asarray(layer["neurons_initial_value"]).shape == (2, 3, 3)  # [f][x][y]
    np.testing.assert_array_equal(Network.from_config(doc).cores[0].weight, weight)  # read back in (f, c, y, x)


def test_document_fields_and_destinations():
    doc = integer_document(
        [
            {"weight": np.ones((2, 1, 3, 3)), "threshold": 5, "bias": [1, 0], "stride": 2, "padding": 1, "pool": 2},
            {"weight": np.ones((3, 2, 2, 2)), "threshold": 7, "reset": "zero"},
        ],
        (1, 8, 8),
    )
    first, second = doc["configuration"]["cnn_layers"][:2]
    assert first["dimensions"] == {
        "input_shape": {"size": {"x": 8, "y": 8}, "feature_count": 1},
        "output_shape": {"size": {"x": 4, "y": 4}, "feature_count": 2},
        "padding": {"x": 1, "y": 1},
        "stride": {"x": 2, "y": 2},
        "kernel_size": 3,
    }
    assert first["leak_enable"] is True
    assert second["leak_enable"] is False
    assert first["return_to_zero"] is False
    assert second["return_to_zero"] is True
    assert first["destinations"] == [
        {"layer": 1, "enable": True, "pooling": 2},
        {"layer": 0, "enable": False, "pooling": 1},
    ]
    assert second["monitor_enable"] is True
    assert first["monitor_enable"] is False
    assert doc["configuration"]["dvs_layer"]["destinations"][0] == {"layer": 0, "enable": True, "pooling": 1}
    assert doc["configuration"]["readout"]["enable"] is False
    assert doc["configuration"]["cnn_layers"][2:] == [None] * 7
    assert (
        "readout"
        not in integer_document([{"weight": np.ones((1, 1, 1, 1)), "threshold": 1}], (1, 2, 2), "dynapcnn")[
            "configuration"
        ]
    )


class Recorder:
    """Stands in for any samna object: attributes spring into being; every assignment is logged by path."""

    def __init__(self, log, path):
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_children", {})

    def __getattr__(self, name):
        children = object.__getattribute__(self, "_children")
        if name not in children:
            path = object.__getattribute__(self, "_path")
            log = object.__getattribute__(self, "_log")
            if name in ("cnn_layers", "destinations"):
                children[name] = [Recorder(log, f"{path}.{name}[{i}]") for i in range(9 if name == "cnn_layers" else 2)]
            else:
                children[name] = Recorder(log, f"{path}.{name}")
        return children[name]

    def __setattr__(self, name, value):
        self._log[f"{self._path}.{name}"] = value


@pytest.fixture
def fake_samna(monkeypatch):
    log: dict[str, object] = {}
    validated = []
    samna = types.ModuleType("samna")
    speck2f = types.ModuleType("samna.speck2f")
    speck2f.configuration = types.SimpleNamespace(SpeckConfiguration=lambda: Recorder(log, "config"))

    def validate(config):
        validated.append(config)
        return (log.get("config.cnn_layers[0].threshold_high", 0) < 2**15, "threshold too high")

    speck2f.validate_configuration = validate
    samna.speck2f = speck2f
    monkeypatch.setitem(sys.modules, "samna", samna)
    monkeypatch.setitem(sys.modules, "samna.speck2f", speck2f)
    return log, validated


def test_to_samna_sets_every_field_of_the_mirror(fake_samna):
    log, validated = fake_samna
    weight = np.arange(8).reshape(2, 1, 2, 2)
    doc = integer_document(
        [
            {"weight": weight, "threshold": 9, "bias": [3, -1], "initial": 4, "pool": 2},
            {"weight": np.ones((2, 2, 2, 2)), "threshold": 7, "low": -100},
        ],
        (1, 5, 5),
    )
    to_samna(doc)
    assert len(validated) == 1
    assert log["config.cnn_layers[0].weights"] == weight.transpose(0, 1, 3, 2).tolist()
    assert log["config.cnn_layers[0].biases"] == [3, -1]
    assert log["config.cnn_layers[0].threshold_high"] == 9
    assert log["config.cnn_layers[1].threshold_low"] == -100
    assert log["config.cnn_layers[0].neurons_initial_value"] == np.full((2, 4, 4), 4).tolist()
    assert log["config.cnn_layers[0].leak_enable"] is True
    assert log["config.cnn_layers[0].dimensions.input_shape.size.x"] == 5
    assert log["config.cnn_layers[0].dimensions.output_shape.feature_count"] == 2
    assert log["config.cnn_layers[0].dimensions.kernel_size"] == 2
    assert log["config.cnn_layers[0].destinations[0].layer"] == 1
    assert log["config.cnn_layers[0].destinations[0].pooling"] == 2
    assert log["config.cnn_layers[0].destinations[1].enable"] is False
    assert log["config.cnn_layers[1].monitor_enable"] is True
    assert log["config.dvs_layer.pass_sensor_events"] is False
    assert log["config.dvs_layer.destinations[0].layer"] == 0
    assert not any(key.startswith("config.cnn_layers[2]") for key in log)


def test_to_samna_reports_invalid_configurations(fake_samna):
    doc = integer_document([{"weight": np.ones((1, 1, 1, 1)), "threshold": 2**15}], (1, 2, 2))
    with pytest.raises(ValueError, match="validate_configuration rejected the configuration: threshold too high"):
        to_samna(doc)


def test_to_samna_without_samna_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "samna", None)  # import samna raises ImportError
    doc = integer_document([{"weight": np.ones((1, 1, 1, 1)), "threshold": 2}], (1, 2, 2))
    with pytest.raises(SamnaMissingError, match="install it from SynSense's package index"):
        to_samna(doc)


def test_one_spike_per_event_is_reported_and_warned():
    from dataclasses import replace

    from neurodeploy_speck.backend import one_spike_per_event_warnings

    graph = conv_chain(convs=[(4, 3, 1, 1)], pools=[2], threshold=0.8)
    layer = lower(graph).layers[0]
    peak = float(layer.weight.max())  # the largest excitatory weight
    # threshold 0.3 x the largest excitatory weight: one event adds up to ceil(1 / 0.3) = 4 thresholds (to rounding)
    low = quantize_layer(replace(layer, threshold=0.3 * peak, bias=np.zeros_like(layer.bias)))
    top = int(low.weight.max())
    assert low.report["spikes_per_event_max"] == -(-top // low.threshold_high) >= 3
    assert low.report["spikes_per_bias_tick_max"] == 0
    (warning,) = one_spike_per_event_warnings([low])
    assert f"layer '{layer.name}'" in warning
    assert "at most one spike per event" in warning
    # a threshold above every weight and bias: one spike per event is all the layer can ask for, no warning
    high = quantize_layer(replace(layer, threshold=2.0 * peak, bias=np.zeros_like(layer.bias)))
    assert high.report["spikes_per_event_max"] <= 1
    assert one_spike_per_event_warnings([high]) == []
