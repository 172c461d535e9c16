"""docs/zoo.md's matrix is what scripts/zoo_matrix.py computes now: every model compiled for every target."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from cli_support import load_script

from neurodeploy.backends.registry import available_backends

pytest.importorskip("torch")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_zoo_matrix_is_current():
    zoo = load_script("zoo_matrix")
    missing = set(zoo.TARGETS) - set(available_backends())
    if missing:
        pytest.skip(f"targets not installed here: {', '.join(sorted(missing))}")
    names, outcomes = zoo.matrix()
    assert len(outcomes) == len(names) * len(zoo.TARGETS)
    assert not any(o.text.startswith("crash") for o in outcomes.values()), [
        (pair, o.text) for pair, o in outcomes.items() if o.text.startswith("crash")
    ]
    assert all(outcomes[name, "reference"].compiled or "LRN" in outcomes[name, "reference"].text for name in names)
    now, documented = zoo.table(names, outcomes), zoo.documented()
    diff = "\n".join(difflib.unified_diff(documented.splitlines(), now.splitlines(), "docs/zoo.md", "now", lineterm=""))
    assert now == documented, f"docs/zoo.md is out of date: run scripts/zoo_matrix.py --write\n{diff}"


def test_squeezenet_compiles_for_loihi_on_the_chips_its_refusal_names(tmp_path):
    """The matrix's one-chip refusal of SqueezeNet says chips=3; on three chips it compiles (its first
    convolution's bias once took vth past the bias field: vth is now lowered for it, with a warning)."""
    import numpy as np
    import onnx

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import Calibration

    zoo = load_script("zoo_matrix")
    if "loihi" not in available_backends():
        pytest.skip("the loihi target is not installed here")
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    refused = zoo.compile_one(path, "loihi", tmp_path / "one")
    assert not refused.compiled
    assert "chips=3" in refused.text
    x = np.random.default_rng(0).random((zoo.CALIBRATION_SAMPLES, *zoo._input_shape(path))).astype(np.float32)
    artifact = compile_model(
        path, "loihi", tmp_path / "three", calibration=Calibration(x, "random"), target_options={"chips": "3"}
    )
    assert artifact.manifest["target"]["board_ready"] in (True, False)
    assert any("have a vth below what their weights allow" in w for w in artifact.manifest["warnings"])


def test_bigger_reads_the_machine_a_refusal_names():
    zoo = load_script("zoo_matrix")
    loihi = zoo.Outcome(False, "ResourceError: ... compile with --target-option chips=3 or more")
    spinnaker = zoo.Outcome(False, "ResourceError: ... compile with --target-option boards=13 or more")
    assert zoo.named_machine(loihi, 8) == {"chips": "3"}
    assert zoo.named_machine(loihi, 2) is None  # past the largest machine asked for
    assert zoo.named_machine(spinnaker, 16) == {"boards": "13"}
    assert zoo.named_machine(zoo.Outcome(True, "compiled with --target-option chips=3"), 8) is None
    assert zoo.named_machine(zoo.Outcome(False, "LRN has no spiking form"), 8) is None
