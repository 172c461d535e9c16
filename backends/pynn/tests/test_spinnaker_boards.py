"""The machine a spinnaker artifact is planned for: SpiNN-5 boards (``--target-option boards=N``), whose cores for
neurons bound the network before any lowering, so a network far too large (an ImageNet CNN at 224 x 224) is
refused at once, naming the boards it needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import spinnaker

from neurodeploy import compile_model
from neurodeploy.errors import DataError, ResourceError
from neurodeploy.ir import IF, Conv2d, Graph, TensorType

ROOT = Path(__file__).resolve().parents[3]


def test_a_board_holds_807_cores_of_256_neurons() -> None:
    spinnaker.check_machine([("a", 807 * 256)], boards=1)
    with pytest.raises(ResourceError, match=r"808 cores of 256; 1 SpiNN-5 board\(s\) have 807 .* boards=2 or more"):
        spinnaker.check_machine([("a", 807 * 256), ("b", 1)], boards=1)
    spinnaker.check_machine([("a", 807 * 256), ("b", 1)], boards=2)
    with pytest.raises(ResourceError, match=r"no system holds it \(SpiNNaker1M has 1200 boards\)"):
        spinnaker.check_machine([("a", 1201 * 807 * 256)], boards=1200)


def test_a_network_too_large_for_the_boards_is_refused_before_lowering(tmp_path) -> None:
    """A 3x3 convolution into 16 x 128 x 128 IF neurons (262,144: 1024 cores) on one board, through the plan."""
    weight = np.full((16, 1, 3, 3), 0.1, np.float32)
    ops = [
        Conv2d(name="conv", inputs=("x",), output="c", weight=weight, padding=(1,) * 4),
        IF(name="big", inputs=("c",), output="s", threshold=np.float32(1), reset="zero"),
    ]
    graph = Graph("big", {"x": TensorType((1, 128, 128))}, ["s"], ops)
    graph.verify()
    from neurodeploy.backends.base import CompiledModel
    from neurodeploy.backends.registry import get_backend

    backend = get_backend("spinnaker")
    with pytest.raises(ResourceError, match=r"'big': 262,144.* 1,024 cores .* boards=2 or more"):
        backend.plan(CompiledModel(snn=graph))


def test_the_boards_option_is_checked_and_reported(tmp_path) -> None:
    model = ROOT / "examples" / "mnist" / "mnist_cnn.onnx"
    for bad in ("0", "1201", "two"):
        with pytest.raises(DataError, match=r"boards must be a whole number from 1 to 1200"):
            compile_model(model, "spinnaker", tmp_path / bad, target_options={"boards": bad})
    artifact = compile_model(model, "spinnaker", tmp_path / "a", target_options={"boards": "2"})
    report = json.loads((artifact.root / "report.json").read_text())
    assert any("machine: 2 SpiNN-5 board(s), 96 chips, 1614 cores" in note for note in report["resources"]["notes"])
