"""Hardware in the loop on SpiNNaker: the sPyNNaker adapter against the fake sPyNNaker, a clean board and every
fault.

The fake stands where ``pyNN.spiNNaker`` would (:mod:`neurodeploy_pynn.fake_spynnaker`): the adapter's own code
runs, including the artifact's PyNN script (``run_pynn``'s ``setup``, ``build``, ``start_sample``,
``flush_sample``); the fake plays sPyNNaker's host (shifts from ``max_expected_summed_weight``, weights rounded to
words) and a chip that keeps its state across runs, spikes in flight included, and records spikes and V as
sPyNNaker stamps them. A pass on the clean fake board is therefore the netlist's round trip through the PyNN
calls, the per-sample protocol (currents, V, flush) and the binning of spike times into ticks all agreeing with
the emulator; each fault must end as the harness promises: retried and passed where a retry cannot change the
result, otherwise a mismatch or an incomplete run, never a pass.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from neurodeploy_pynn import run_pynn, spinnaker
from neurodeploy_pynn.fake_spynnaker import FAULTS, FakeSpynnaker
from neurodeploy_pynn.spinnaker_device import SpiNNakerDevice
from onnx import TensorProto, helper, numpy_helper

from neurodeploy.cli import main
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import Calibration
from neurodeploy.errors import DataError
from neurodeploy.hil.device import (
    Board,
    BoardRejected,
    BoardUnavailable,
    BoardVersionError,
    Clock,
    VirtualClock,
)
from neurodeploy.hil.harness import board_status, run_on_board

STEPS = 8


def tiny_model() -> onnx.ModelProto:
    """Conv(1->3, 3x3, stride 2) -> Relu -> Flatten -> Gemm(48->8) -> Relu -> Gemm(8->4) on 8x8 inputs: on the
    spinnaker target, an input population (the convolution runs on the host), a hidden one and a readout."""
    rng = np.random.default_rng(0)
    weights = {
        "c.w": rng.normal(0, 0.6, (3, 1, 3, 3)),
        "c.b": rng.normal(0.1, 0.1, (3,)),
        "f.w": rng.normal(0, 0.4, (8, 48)),
        "f.b": rng.normal(0.1, 0.1, (8,)),
        "g.w": rng.normal(0, 0.6, (4, 8)),
        "g.b": rng.normal(0, 0.1, (4,)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "c.w", "c.b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "f.w", "f.b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "g.w", "g.b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("spinnaker-hil-model") / "tiny.onnx"
    onnx.save(tiny_model(), path)
    return path


@pytest.fixture(scope="module")
def artifact(onnx_path, tmp_path_factory):
    calibration = Calibration(np.random.default_rng(5).uniform(0, 1, (32, 1, 8, 8)).astype(np.float32), "uniform")
    out = tmp_path_factory.mktemp("spinnaker-hil") / "tiny"
    return compile_model(onnx_path, "spinnaker", out, calibration=calibration).root


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (3, 1, 8, 8)).astype(np.float32)


def fake(faults=None, address="", **settings):
    name = "fake-spinnaker-" + "-".join(sorted(faults or {})) if faults else "fake-spinnaker"
    return Board(name, "spinnaker", "", address, settings=dict(settings), fake=True, faults=dict(faults or {}))


def run(artifact, images, faults=None, **settings):
    return run_on_board(artifact, fake(faults, **settings), images, steps=STEPS)


def test_clean_fake_board_equals_the_emulator_in_every_population(artifact, images):
    cwd, home = os.getcwd(), os.environ.get("HOME")
    report = run(artifact, images)
    document = report.to_dict()
    assert document["verdict"] == "pass"
    assert [s["status"] for s in document["samples"]] == ["match"] * 3
    netlist = spinnaker.load(artifact)
    spiking = {p.name for p in netlist.populations if p.role != "readout"}
    assert len(spiking) == 2  # the input and the hidden population, both watched and compared
    for sample in document["samples"]:
        assert set(sample["layers"]) == spiking
        assert all(layer["differing"] == 0 and layer["board_spikes"] > 0 for layer in sample["layers"].values())
        assert sample["events"] > 0
        assert (sample["out_of_order"], sample["stale"]) == (0, 0)
        assert sample["readout"] == {"differing": 0}  # the readout from the V read back, judged exactly too
    emulated = emulate_artifact(artifact, images, steps=STEPS)
    assert [s["prediction"]["board"] for s in document["samples"]] == list(emulated.outputs.argmax(axis=1))
    assert [s["prediction"]["emulator"] for s in document["samples"]] == list(emulated.outputs.argmax(axis=1))
    assert document["board"]["adapter"] == "spinnaker"
    assert document["board"]["info"]["sPyNNaker"] == "1!7.4.1"
    assert (os.getcwd(), os.environ.get("HOME")) == (cwd, home)  # the temporary home and working folder undone


def test_the_board_record_is_the_emulators_outputs_included(artifact, images):
    """The adapter's records, not only the harness's verdict: the board's readout (from the V sPyNNaker
    recorded) equals the emulator's, which is what ``spinnaker.run`` (``neurodeploy emulate``) computes."""
    from neurodeploy.artifact import load_artifact
    from neurodeploy.encoding import Encoding

    device = SpiNNakerDevice(fake(), VirtualClock())
    prepared = device.check(load_artifact(artifact), images, STEPS, Encoding())
    expected = device.reference(prepared, STEPS)
    assert np.array_equal(
        np.stack([e.outputs for e in expected]), spinnaker.run(device.netlist, images, STEPS)["outputs"]
    )
    device.open()
    try:
        device.load()
        for i, want in enumerate(expected):
            got = device.run_sample(prepared, i, STEPS)
            assert np.array_equal(got.outputs, want.outputs)
            for name, counts in want.layers.items():
                assert np.array_equal(got.layers[name], counts), name
    finally:
        device.close()


@pytest.mark.parametrize(
    ("faults", "verdict", "statuses"),
    [
        ({"drop": 1}, "mismatch", ["mismatch"] * 3),
        ({"duplicate": 1}, "mismatch", ["mismatch"] * 3),
        ({"off_grid": 1}, "mismatch", ["mismatch"] * 3),  # a time off the tick grid is not binned
        ({"timeout_at": 2, "timeout_times": 10}, "incomplete", ["match", "not run", "not run"]),
        ({"disconnect_at": 2, "disconnect_for": 50}, "incomplete", ["match", "not run", "not run"]),
    ],
)
def test_faults_that_change_the_record_are_never_a_pass(artifact, images, faults, verdict, statuses):
    report = run(artifact, images, faults)
    assert report.verdict == verdict
    assert [s.status for s in report.samples] == statuses
    for sample in report.samples:
        if sample.status == "not run":
            assert sample.error  # says why
    if "off_grid" in faults:
        assert all(s.out_of_order == 1 for s in report.samples)


def test_a_dropped_spike_is_found_in_the_population_that_lost_it(artifact, images):
    report = run(artifact, images[:1], {"drop": 1})
    layers = report.samples[0].layers
    differing = {name: layer for name, layer in layers.items() if layer["differing"]}
    assert len(differing) == 1
    (layer,) = differing.values()
    assert layer["emulator_spikes"] - layer["board_spikes"] == 1


@pytest.mark.parametrize(
    ("faults", "retries", "reconnects"),
    [
        ({"timeout_at": 2}, 1, 0),  # sPyNNaker shut down after the timeout: set up again, the sample run again
        ({"disconnect_at": 2}, 1, 1),  # the board went away mid-run: reconnected, reloaded, the sample run again
        ({"disconnect_at": 2, "disconnect_for": 2}, 1, 3),  # away for two tries to reach it
        ({"lost_at": 2}, 1, 0),  # the board's provenance says it lost packets: the sample is run again
        ({"reorder": True}, 0, 0),  # spikes back latest first: binned by time, counted in the report
    ],
)
def test_faults_a_retry_cannot_change_pass_after_the_retry(artifact, images, faults, retries, reconnects):
    report = run(artifact, images, faults)
    assert report.verdict == "pass"
    document = report.to_dict()
    assert document["summary"]["retries"] == retries
    assert document["summary"]["reconnects"] == reconnects
    if faults.get("reorder"):
        assert all(s["out_of_order"] > 0 for s in document["samples"])


@pytest.mark.parametrize(
    ("faults", "error", "words"),
    [
        ({"missing": True}, BoardUnavailable, "does not answer"),
        ({"busy": True}, BoardUnavailable, "was not granted (busy?)"),
        ({"kind": 3}, BoardUnavailable, "is not a 48-chip SpiNN-5"),
        ({"sdk_version": "1!6.0.0"}, BoardVersionError, "written against sPyNNaker 7"),
        ({"reject": "no placement for 300 cores"}, BoardRejected, "no placement for 300 cores"),
    ],
)
def test_boards_that_cannot_run_it_fail_before_a_sample_is_sent(artifact, images, faults, error, words):
    with pytest.raises(error, match=re.escape(words)):
        run(artifact, images, faults)


def test_a_spinn3_configured_as_such_runs(artifact, images):
    assert run(artifact, images[:1], {"kind": 3}, version=3).verdict == "pass"


def test_without_the_flush_the_next_sample_differs(artifact, images, monkeypatch):
    """The fake chip keeps spikes in flight across runs: a protocol that leaves them to land in the next sample is
    caught, not hidden."""
    monkeypatch.setattr(run_pynn, "flush_sample", lambda *args: None)
    report = run(artifact, images)
    assert report.samples[0].status == "match"
    assert report.verdict == "mismatch"


def test_the_fake_chip_run_in_pieces_equals_one_run(artifact, images, tmp_path, monkeypatch):
    """What the clean pass rests on: the chip's state (V, ring buffers, time) carries over from run to run, so
    runs cut anywhere give the spikes and V of one run."""
    doc, arrays = run_pynn.load(artifact)
    current = spinnaker.input_current(spinnaker.load(artifact), images[:1])[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spynnaker.cfg").write_text("[Machine]\nmachine_name = spinn-fake\nversion = 5\n")
    records = []
    for cuts in ([23], [1, 1, 2, 5, 3, 11], [7, 16]):
        sim = FakeSpynnaker({}, VirtualClock())
        run_pynn.setup(sim, doc, "spiNNaker")
        populations, _ = run_pynn.build(sim, doc, arrays, "spiNNaker")
        populations[doc["populations"][0]["name"]].set(i_offset=current / run_pynn.ONE)
        for ticks in cuts:
            sim.run(ticks * 1.0)
        records.append({n: (p.spinnaker_get_data("spikes"), p.v_rows) for n, p in populations.items()})
    for name in records[0]:
        assert len(records[0][name][0]) > 0 or name == doc["readout"]["population"]
        for other in records[1:]:
            assert np.array_equal(other[name][0], records[0][name][0]), name
            assert np.array_equal(np.array(other[name][1]), np.array(records[0][name][1])), name


def test_the_run_configuration_names_the_board_as_sPyNNaker_reads_it():
    for address, key in (
        ("192.168.240.1", "machine_name"),
        ("https://spinnaker.cs.man.ac.uk/spalloc/", "spalloc_server"),
        ("spalloc://lab@spalloc.example.org:22244", "spalloc_server"),
    ):
        board = Board("spinnaker-bench", "spinnaker", "", address, settings={"timeout_s": 2.5, "version": 3})
        config = SpiNNakerDevice(board, Clock())._config()
        assert f"{key} = {address}\n" in config
        assert "version = 3\n" in config
        assert "post_simulation_overrun_before_error = 3\n" in config
    with pytest.raises(BoardUnavailable, match="has no address"):
        SpiNNakerDevice(Board("spinnaker-bench", "spinnaker", ""), Clock())._config()


def test_bad_inputs_and_settings_are_refused_before_the_board(artifact, images):
    with pytest.raises(DataError, match=r"has shape \(3, 1, 5, 8\); the model takes"):
        run_on_board(artifact, fake(), images[:, :, :5], steps=STEPS)
    with pytest.raises(DataError, match="unknown setting"):
        run_on_board(artifact, fake(machine_time_step=3), images, steps=STEPS)
    with pytest.raises(DataError, match="unknown fault"):
        run_on_board(artifact, fake({"melt": True}), images, steps=STEPS)
    with pytest.raises(DataError, match="version must be 3 or 5"):
        run_on_board(artifact, fake(version=4), images, steps=STEPS)
    assert board_status(fake(version=4)).startswith("unavailable: board 'fake-spinnaker': setting version")


def test_an_artifact_of_another_target_is_refused(onnx_path, tmp_path, images):
    other = compile_model(onnx_path, "reference", tmp_path / "ref")
    with pytest.raises(BoardUnavailable, match="compiled for reference"):
        run_on_board(other.root, fake(), images, steps=STEPS)


def test_the_real_path_without_sPyNNaker_names_what_to_install(artifact, images):
    """The main environment has no sPyNNaker: a real board is refused, naming the packages, and nothing is
    imported."""
    status = SpiNNakerDevice.sdk_status()
    assert status is not None
    assert "sPyNNaker==1!7.4.1" in status
    board = Board("spinnaker-lab", "spinnaker", "", "192.168.240.1")
    with pytest.raises(BoardUnavailable, match=r"not installed: install sPyNNaker and PyNN .*pyNN==0.13.0"):
        run_on_board(artifact, board, images, steps=STEPS)
    assert SpiNNakerDevice.discover() == []
    assert board_status(board).startswith("unavailable: sPyNNaker is not installed")


def test_a_board_on_the_network_is_listed_ready_once_sPyNNaker_is_there(monkeypatch):
    """Nothing enumerates SpiNNaker boards: with the SDK installed, `hil list` does not call an inventory board
    "not attached" for want of discovery; whether it answers is found when a run opens it."""
    monkeypatch.setattr(SpiNNakerDevice, "sdk_status", classmethod(lambda cls: None))
    status = board_status(Board("spinnaker-lab", "spinnaker", "", "192.168.240.1"))
    assert status == "ready (SDK installed; the board at 192.168.240.1 is reached when a run opens it)"


def test_every_fault_is_documented_and_tested():
    tested = {
        "missing", "busy", "kind", "sdk_version", "reject", "drop", "duplicate", "reorder", "off_grid", "lost_at",
        "timeout_at", "timeout_times", "disconnect_at", "disconnect_for",
    }  # fmt: skip
    assert set(FAULTS) == tested
    assert SpiNNakerDevice.faults is FAULTS


def test_hil_run_command_writes_the_report_and_exits_by_verdict(artifact, images, tmp_path, capsys):
    inventory = tmp_path / "boards.toml"
    inventory.write_text(
        '[[board]]\nname = "fake-spinnaker"\ntarget = "spinnaker"\nfake = true\n\n'
        '[[board]]\nname = "fake-spinnaker-lossy"\ntarget = "spinnaker"\nfake = true\n[board.faults]\ndrop = 1\n'
    )
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=images)
    common = ["--input", str(inputs), "-T", str(STEPS), "--inventory", str(inventory), "-q"]
    out = tmp_path / "report"
    assert main(["hil", "run", str(artifact), "--board", "fake-spinnaker", "-o", str(out), *common]) == 0
    assert "pass: 3 sample(s) on fake-spinnaker (fake board)" in capsys.readouterr().out
    document = json.loads((out / "report.json").read_text())
    assert document["verdict"] == "pass"
    assert document["board"]["fake"] is True
    assert main(["hil", "run", str(artifact), "--board", "fake-spinnaker-lossy", "-o", str(out), *common]) == 1
    assert json.loads((out / "report.json").read_text())["verdict"] == "mismatch"
    assert main(["hil", "run", str(artifact), "--board", "spinnaker-lab", "-o", str(out), *common]) == 1
    assert "no board 'spinnaker-lab' in the inventory" in capsys.readouterr().err


def test_example_inventory_fakes_behave_as_described(artifact, images):
    from neurodeploy.hil.inventory import load_inventory

    boards = load_inventory(Path(__file__).resolve().parents[3] / "hil" / "boards.toml")
    verdicts = {}
    for name, board in boards.items():
        if board.fake and board.target == "spinnaker":
            try:
                verdicts[name] = run_on_board(artifact, board, images, steps=STEPS).verdict
            except BoardUnavailable:
                verdicts[name] = "refused"
    assert verdicts == {
        "fake-spinnaker": "pass",
        "fake-spinnaker-lossy": "mismatch",
        "fake-spinnaker-flaky": "pass",
        "fake-spinnaker-unplugged": "incomplete",
        "fake-spinnaker-busy": "refused",
    }
