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


def test_a_network_with_more_synapses_than_the_target_lists_is_refused_before_listing_them(monkeypatch) -> None:
    """The same plan with the cap at exactly its synapses and one below: the count (per axis, nothing listed) is the
    length of the lists the plan builds, and past the cap the refusal names the total, the most into one
    population, the bytes and the cap (VGG-19 on the 72 boards its neurons need lists 28.5 billion)."""
    from neurodeploy.lowering import lower, synapse_list

    weight = np.random.default_rng(1).normal(size=(4, 2, 3, 3)).astype(np.float32)
    weight[0, 0] = 0  # zero weights list nothing
    ops = [
        Conv2d(name="conv0", inputs=("x",), output="c0", weight=np.ones((2, 1, 1, 1), np.float32)),
        IF(name="in", inputs=("c0",), output="s0", threshold=np.float32(1), reset="zero"),  # (driven by the host)
        Conv2d(name="conv", inputs=("s0",), output="c", weight=weight, padding=(1,) * 4, stride=(2, 2)),
        IF(name="a", inputs=("c",), output="s", threshold=np.float32(1), reset="zero"),
    ]
    graph = Graph("g", {"x": TensorType((1, 9, 7))}, ["s"], ops)
    graph.verify()
    lowered = lower(graph, spinnaker.RULES)
    total = sum(
        synapse_list(i.synapse, p.shape).rows.size
        for k, p in enumerate(lowered.populations)
        for i in lowered.incoming(k)
    )
    assert total > 0
    monkeypatch.setattr(spinnaker, "MAX_LISTED", total)
    spinnaker.plan(graph)
    monkeypatch.setattr(spinnaker, "MAX_LISTED", total - 1)
    with pytest.raises(
        ResourceError,
        match=rf"the network has {total:,} synapses \(the most into 'a': {total:,}\); the spinnaker target lists each "
        rf"one \(PyNN's FromListConnector: .* GB in the artifact, .*\), at most {total - 1:,}: use a smaller input",
    ):
        spinnaker.plan(graph)
