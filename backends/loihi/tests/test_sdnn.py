"""Graded mode on stock neurons (the board profile's SDNN program): hand-derived integer traces of Lava's
SigmaDelta / Sigma arithmetic, the program against the fixed-point ANN it approximates, its files, and what it
refuses. The program against lava-dl's own netx, payload for payload, is tests/lava/test_netx_against_lava.py."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph, residual_block
from loihi_mnist import CALIBRATION, MODEL, mnist_test_images
from neurodeploy_loihi import Loihi2Backend
from neurodeploy_loihi.emulator import DenseSynapse
from neurodeploy_loihi.sdnn import SdnnLayer, SdnnProgram, quantize_sdnn, trace_layers

from neurodeploy.artifact import Artifact
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Artifact:
    out = tmp_path_factory.mktemp("sdnn") / "out"
    calibration = load_calibration(str(CALIBRATION))
    return compile_model(MODEL, "loihi", out, calibration=calibration, target_options={"profile": "board"})


@pytest.mark.parametrize(
    ("w1", "payloads1", "readout"),
    [
        # (weights even: Lava's MIXED Dense drops bit 0) a = 4 * 202 - 6 * 64 = 424 arrives at step 2: act = 424 +
        # (1 << 12) = 4520, the change 424 floors to 424 >> 6 = 6 (6.625); step 1 sent the bias alone, 4096 >> 6 =
        # 64. The readout (weight 2) sums 2 * 64 at step 2 and 2 * (64 + 6) = 140 from step 3 on.
        ([[4, -6]], [64, 6, 0, 0], [0, 128, 140, 140]),
        # a = -4 * 202 = -808: act = 4096 - 808 = 3288, the change -808 floors to -13 (-12.625): 2 * (64 - 13) = 102
        ([[-4, 0]], [64, -13, 0, 0], [0, 128, 102, 102]),
    ],
)
def test_sigma_delta_trace_derived_by_hand(w1, payloads1, readout) -> None:
    layers = [
        SdnnLayer(DenseSynapse(np.array(w1, np.int64)), bias=1, vth=0),  # bias: one unit = 1 << (6 + 6)
        SdnnLayer(DenseSynapse(np.array([[2]], np.int64)), sigma_output=True),
    ]
    m0 = np.array([[202, 64]], np.int64)
    trace = trace_layers(layers, m0, 4, spike_exp=6)
    assert trace.payloads[0][0, :, 0].tolist() == payloads1
    assert trace.payloads[1][0, :, 0].tolist() == readout
    assert trace.sigma[1][0, :, 0].tolist() == readout  # a Sigma sends its sigma


def test_sigma_delta_threshold_holds_small_changes_as_residue() -> None:
    # vth 1 unit = 4096 state units: the bias-only change (4095 < 4096) is held, then sent with the input's
    layers = [
        SdnnLayer(DenseSynapse(np.array([[64]], np.int64)), bias=0, vth=1),
        SdnnLayer(DenseSynapse(np.array([[2]], np.int64)), sigma_output=True),
    ]
    trace = trace_layers(layers, np.array([[63], [64]], np.int64), 3, spike_exp=6)
    # a = 64 * 63 = 4032 < 4096: nothing sent, residue 4032; a = 4096: sent, 4096 >> 6 = 64
    assert trace.payloads[0][:, :, 0].tolist() == [[0, 0, 0], [0, 64, 0]]


def test_board_graded_program_tracks_its_fixed_point_ann(board: Artifact) -> None:
    program = SdnnProgram.load(board.root)
    x, y = mnist_test_images()
    x, y = x[:128], y[:128]
    reference = program.reference(x)
    run = program.run(x, 1)
    assert float(np.mean(reference.argmax(1) == y)) >= 0.98
    assert float(np.mean(run.outputs.argmax(1) == reference.argmax(1))) >= 0.99
    spread = float(np.ptp(reference))
    assert float(np.abs(run.outputs - reference).max()) < 0.01 * spread  # the floors cost under 1% of the range
    np.testing.assert_array_equal(program.run(x[:8], 3).outputs, program.run(x[:8], 1).outputs)  # settled


def test_board_artifact_runs_graded_and_every_process_has_a_hardware_model(board: Artifact) -> None:
    target = board.manifest["target"]
    assert target["board_ready"] is True, target["board_reason"]
    assert target["graded"]["kind"] == "sdnn"
    assert "sdnn.net" in board.manifest["files"]
    modes = board.read_json("report.json")["target"]["board"]["modes"]
    assert [p["neuron"] for p in modes["graded"]["processes"]] == ["host", "SigmaDelta", "SigmaDelta", "Sigma"]
    x, y = mnist_test_images()
    result = Loihi2Backend("loihi").emulate(board, x[:64], steps=1, mode="graded")
    assert float(np.mean(result.outputs.argmax(1) == y[:64])) >= 0.98


def test_files_round_trip_to_the_same_program(board: Artifact, tmp_path: Path) -> None:
    program = SdnnProgram.load(board)
    program.save(tmp_path)
    again = SdnnProgram.load(tmp_path)
    x, _ = mnist_test_images()
    np.testing.assert_array_equal(again.run(x[:4], 2).outputs, program.run(x[:4], 2).outputs)


def test_a_residual_network_has_no_sdnn_program_and_the_error_says_why(tmp_path: Path) -> None:
    from neurodeploy_loihi.graded import GradedError
    from neurodeploy_loihi.lowering import lower

    graph = residual_block(seed=1, reset="zero")
    with pytest.raises(GradedError, match=r"maps chains only"):
        quantize_sdnn(lower(graph), None)
    emitted = emit_graph(graph, tmp_path, None)  # the exact profile's GradedReLU program maps it
    assert emitted.manifest["graded"]["available"] is True
