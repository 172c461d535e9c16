"""Board readiness: every artifact records, per mode, the Lava process of each population and synapse and whether
Lava's Loihi extension has a hardware model for it; ``--target-option profile=board`` emits stock processes only
(LIF with reset to zero, Dense, DelayDense, Conv; SigmaDelta and Sigma in graded mode); a hardware run
configuration is refused for the rest."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph, residual_block
from loihi_mnist import CALIBRATION, MODEL, compiled, mnist_test_images
from neurodeploy_loihi import Loihi2Backend, board
from neurodeploy_loihi.lava_runner import check_board_ready
from neurodeploy_loihi.program import Program

from neurodeploy.artifact import Artifact
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import ConversionError, DataError, NeurodeployError


@pytest.fixture(scope="module")
def board_artifact(tmp_path_factory) -> Artifact:
    out = tmp_path_factory.mktemp("board") / "out"
    calibration = load_calibration(str(CALIBRATION))
    return compile_model(MODEL, "loihi", out, calibration=calibration, target_options={"profile": "board"})


def test_default_profile_is_exact_and_says_why_it_is_not_board_ready() -> None:
    target = compiled("subtract").manifest["target"]
    assert target["profile"] == "exact"
    assert target["board_ready"] is False
    assert "SubtractiveLIF" in target["board_reason"]
    assert "GradedReLU" in target["board_reason"]
    assert "profile=board" in target["board_reason"]
    report = compiled("subtract").read_json("report.json")["target"]["board"]
    binary = report["modes"]["binary"]["processes"]
    assert [p["neuron"] for p in binary] == ["SubtractiveLIF"] * 3 + ["LIF"]  # the readout is a stock LIF
    assert [p["synapses"] for p in binary] == [[], ["Conv"], ["Conv"], ["Dense"]]
    assert {p["neuron"] for p in report["modes"]["graded"]["processes"]} == {"GradedReLU"}


def test_board_profile_is_board_ready_and_equals_the_reset_to_zero_program(board_artifact: Artifact) -> None:
    target = board_artifact.manifest["target"]
    assert target["profile"] == "board"
    assert target["board_ready"] is True, target["board_reason"]
    assert "convert-to-snn{reset=zero,qcfs=rate}" in board_artifact.manifest["pipeline"]
    modes = board_artifact.read_json("report.json")["target"]["board"]["modes"]
    assert set(modes) == {"binary", "graded"}  # graded: the SDNN program (test_sdnn.py)
    used = {p for entry in modes["binary"]["processes"] for p in [entry["neuron"], *entry["synapses"]]}
    assert used == {"LIF", "Conv", "Dense"}
    assert used <= set(board.ON_CHIP)
    graded = {p for entry in modes["graded"]["processes"] for p in [entry["neuron"], *entry["synapses"]]}
    assert graded == {"host", "SigmaDelta", "Sigma", "Conv", "Dense"}
    assert "runs_on" in modes["binary"]
    zero = compiled("zero")  # the exact profile with reset=zero: the same integer program
    for name in ("loihi.json", "loihi.npz", "host.json", "host.npz"):
        assert (board_artifact.root / name).read_bytes() == (zero.root / name).read_bytes(), name


def test_board_profile_emulates_in_binary_mode(board_artifact: Artifact) -> None:
    x, y = mnist_test_images()
    result = Loihi2Backend("loihi").emulate(board_artifact, x[:64], steps=64)
    assert float(np.mean(result.outputs.argmax(1) == y[:64])) >= 0.9


def test_board_profile_refuses_reset_by_subtraction_naming_the_profile(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"profile=board.*reset=subtract.*profile=exact"):
        compile_model(MODEL, "loihi", tmp_path / "a", conversion="reset=subtract", target_options={"profile": "board"})
    pipeline = "fold-batchnorm,fold-bias,fuse-activations,canonicalize-pooling,canonicalize-flatten,convert-to-snn"
    with pytest.raises(ConversionError, match=r"resets by subtract.*profile=exact"):
        compile_model(MODEL, "loihi", tmp_path / "b", pipeline=pipeline, target_options={"profile": "board"})
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_unknown_profile_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="profile must be one of exact, board"):
        compile_model(MODEL, "loihi", tmp_path / "a", target_options={"profile": "chip"})


@pytest.mark.parametrize(("skip", "process"), [("identity", "DelaySparse"), ("conv", "DelaySparse")])
def test_a_delayed_residual_skip_is_a_stock_delayed_synapse(skip: str, process: str, tmp_path: Path) -> None:
    emit_graph(residual_block(seed=1, skip=skip, reset="zero"), tmp_path, None)
    program = Program.load(tmp_path)
    processes = board.binary_processes(program)
    assert any(process in p["synapses"] for p in processes)
    assert board.readiness(processes)["board_ready"] is True


class Loihi2HwCfg:  # stands in for Lava's hardware run configuration (the extension is not public)
    pass


class Loihi2SimCfg:
    pass


def test_a_hardware_run_configuration_is_refused_for_a_program_that_is_not_board_ready(board_artifact) -> None:
    exact = Program.load(compiled("subtract").root)
    with pytest.raises(NeurodeployError, match=r"Loihi2HwCfg refused.*SubtractiveLIF"):
        check_board_ready(exact, Loihi2HwCfg())
    check_board_ready(exact, Loihi2SimCfg())  # simulation runs everything
    check_board_ready(exact, None)
    check_board_ready(Program.load(board_artifact.root), Loihi2HwCfg())  # board-ready: no error
