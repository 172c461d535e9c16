"""The host's two count resolutions: a direct input sent as K events per unit (``input_events``, each worth 1/K)
and the readout's threshold over its rate (``readout_rate``), checked against the artifact's own fields and the
events path; bad values are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.backend import DEFAULT_INPUT_EVENTS, DEFAULT_READOUT_RATE, direct_events

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"


def _compile(out: Path, **options: str):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MNIST / "mnist_cnn.onnx", "speck", out, calibration=calibration, target_options=options)


def _document(artifact) -> dict:
    return json.loads((artifact.root / "speck.json").read_text())


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("resolution")
    return {
        "default": _compile(root / "default", readout_delay="0"),
        "coarse": _compile(root / "coarse", readout_delay="0", input_events="1", readout_rate="1"),
        "three": _compile(root / "three", readout_delay="0", input_events="3"),
    }


def test_the_defaults_are_recorded(artifacts):
    document = _document(artifacts["default"])
    assert document["host"]["input"]["event_value"] == 1 / DEFAULT_INPUT_EVENTS
    report = json.loads((artifacts["default"].root / "report.json").read_text())["target"]
    assert report["readout_threshold"]["source"].endswith(f"over {DEFAULT_READOUT_RATE:g} spikes per step")
    coarse = _document(artifacts["coarse"])
    assert coarse["host"]["input"]["event_value"] == 1.0
    # the readout's threshold in float units is the median winning output over the rate
    ratio = coarse["host"]["output"]["value_per_spike"] / document["host"]["output"]["value_per_spike"]
    assert ratio == pytest.approx(DEFAULT_READOUT_RATE, rel=1e-6)


def test_a_direct_input_is_sent_as_k_events_per_unit(artifacts):
    artifact = artifacts["three"]
    assert _document(artifact)["host"]["input"]["event_value"] == pytest.approx(1 / 3)
    x = np.load(MNIST / "test_images.npz")["x"][:3]
    direct = emulate_artifact(artifact, x, steps=8)
    frames = direct_events(3 * x.astype(np.float64), 8).astype(np.float32)  # about 3x events a step, by hand
    events = emulate_artifact(artifact, frames, steps=8, encoding=Encoding("events"))
    np.testing.assert_array_equal(direct.outputs, events.outputs)
    assert sum(int(v.sum()) for v in direct.synops.values()) == sum(int(v.sum()) for v in events.synops.values())
    coarse = emulate_artifact(artifacts["coarse"], x, steps=8)  # one event per unit sends fewer input events
    assert coarse.synops["input"].sum() < direct.synops["input"].sum()


@pytest.mark.parametrize(
    ("option", "value"),
    [("input_events", v) for v in ("0", "65", "1.5", "two", "", "\u00b2")]
    + [("readout_rate", v) for v in ("0", "-1", "nan", "inf", "fast")],
)
def test_bad_values_are_refused_by_name(tmp_path, option, value):
    with pytest.raises(DataError, match=f"target option {option} must be"):
        _compile(tmp_path / "a", **{option: value})
    assert not (tmp_path / "a").exists()


def test_input_events_on_an_events_input_is_refused(tmp_path):
    with pytest.raises(DataError, match="input_events applies to direct input; this model's input is events"):
        compile_model(
            MNIST / "mnist_cnn.onnx",
            "speck",
            tmp_path / "a",
            encoding=Encoding("events"),
            target_options={"input_events": "2"},
        )
    assert not (tmp_path / "a").exists()
