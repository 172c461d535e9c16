"""Hardware in the loop on BrainScaleS-2: the pynn-brainscales adapter against the fake pynn_brainscales, a healthy
chip, the nominal model, every fault and a badly calibrated chip, judged by the statistic.

The fake stands where ``pynn_brainscales.brainscales2`` would (:mod:`neurodeploy_pynn.fake_pynn_brainscales`): the
adapter builds the netlist through the PyNN API (``run_pynn_brainscales2.build_brainscales2``), the chip reads back
the cell parameters, connection lists and spike times it was given, runs them as one chip instance (its own
mismatch and trial noise by default) and returns spike trains in ms and CADC membrane samples, which the adapter
bins. The artifact is the bundled ``examples/mnist_bss2`` (compiled in a few hundredths of a second, a run of
a few samples in a fraction of one), so the statistic is exercised where its tolerance was measured.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import brainscales2_device as device_module
from neurodeploy_pynn.brainscales2_device import TOLERANCE, BrainScaleS2Device, _sdk
from neurodeploy_pynn.fake_pynn_brainscales import FAULTS

from neurodeploy import compile_model, load_calibration
from neurodeploy.cli import main
from neurodeploy.errors import DataError
from neurodeploy.hil.device import (
    Board,
    BoardDisconnected,
    BoardRejected,
    BoardTimeout,
    BoardUnavailable,
    BoardVersionError,
    VirtualClock,
)
from neurodeploy.hil.harness import board_status, run_on_board

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"
MODEL = ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx"
STEPS = 16


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    out = tmp_path_factory.mktemp("bss2-hil") / "mnist_bss2"
    return compile_model(MODEL, "brainscales2", out, calibration=calibration).root


@pytest.fixture(scope="module")
def images():
    return np.load(MNIST / "test_images.npz")["x"][:3]


def fake(faults=None, name="fake-brainscales2", address="", **settings):
    return Board(name, "brainscales2", "", address, settings=settings, fake=True, faults=dict(faults or {}))


def run(artifact, images, faults=None, **settings):
    return run_on_board(artifact, fake(faults, **settings), images, steps=STEPS)


def distances(report):
    return [layer["distance"] for sample in report.samples for layer in sample.layers.values()]


def test_a_healthy_chip_passes_by_the_statistic_and_the_report_states_it(artifact, images):
    report = run(artifact, images)
    document = report.to_dict()
    assert document["verdict"] == "pass"
    assert document["compare"] == "statistic"
    assert "spike-count distance" in document["compare_rule"]
    assert f"at most {TOLERANCE:g}" in document["compare_rule"]
    assert document["board"]["adapter"] == "brainscales2"
    assert document["board"]["info"]["setup"] == "hxcube0fpga0chip0_fake"
    for sample in document["samples"]:
        assert sample["status"] == "match"
        (layer,) = sample["layers"].values()  # the hidden LIF population; the readout is not a spike layer
        assert 0 < layer["distance"] <= TOLERANCE  # the chip differs from the model, within its variation
        assert layer["board_spikes"] > 0
        assert layer["emulator_spikes"] > 0
        assert layer["tolerance"] == TOLERANCE
        assert sample["prediction"]["board"] is not None  # the readout's membrane was read by the CADC


def test_the_nominal_chip_gives_distance_zero_and_the_model_step_by_step(artifact, images):
    """No mismatch, no noise: the fake is the model itself, so the board's record equals the reference in every
    step of every neuron, and the readout too: the netlist's round trip through the PyNN API and the adapter's
    binning are exact."""
    report = run(artifact, images, {"mismatch": 0, "noise": 0})
    assert report.verdict == "pass"
    assert distances(report) == [0.0] * len(images)
    board = fake({"mismatch": 0, "noise": 0})
    from neurodeploy.artifact import load_artifact
    from neurodeploy.encoding import Encoding

    device = BrainScaleS2Device(board, VirtualClock())
    prepared = device.check(load_artifact(artifact), images, STEPS, Encoding())
    expected = device.reference(prepared, STEPS)
    device.open()
    device.load()
    try:
        for i in range(len(images)):
            got = device.run_sample(prepared, i, STEPS)
            assert got.layers.keys() == expected[i].layers.keys()
            for name in got.layers:
                np.testing.assert_array_equal(got.layers[name], expected[i].layers[name])
            np.testing.assert_allclose(got.outputs, expected[i].outputs, rtol=1e-12, atol=1e-12)
            assert got.stale == 0
            assert got.out_of_order == 0
            assert got.events > 0
    finally:
        device.close()
    device.close()  # safe twice


def test_the_reference_is_the_noise_free_model_whatever_the_artifact_planned(artifact, images, tmp_path):
    """An artifact compiled with planned noise (one chip instance) is compared against the nominal model: the
    same reference as the noise-free artifact's."""
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    noisy = compile_model(
        MODEL,
        "brainscales2",
        tmp_path / "noisy",
        calibration=calibration,
        target_options={"mismatch": "0.1", "mismatch_seed": "3", "noise": "0.2"},
    ).root
    from neurodeploy.artifact import load_artifact
    from neurodeploy.encoding import Encoding

    refs = []
    for folder in (artifact, noisy):
        device = BrainScaleS2Device(fake(), VirtualClock())
        prepared = device.check(load_artifact(folder), images, STEPS, Encoding())
        refs.append(device.reference(prepared, STEPS))
    for a, b in zip(*refs):
        for name in a.layers:
            np.testing.assert_array_equal(a.layers[name], b.layers[name])
        np.testing.assert_array_equal(a.outputs, b.outputs)


@pytest.mark.parametrize(
    "faults",
    [
        {"mismatch": 0.3},  # a badly calibrated chip
        {"gain": 0.6},  # synaptic input calibrated 40% weak
        {"drop": 0.5},
        {"duplicate": 0.5},
    ],
)
def test_broken_chips_and_lossy_links_fail_the_statistic(artifact, images, faults):
    report = run(artifact, images, faults)
    assert report.verdict == "mismatch"
    assert all(d > TOLERANCE for d in distances(report))
    assert all(s.status == "mismatch" for s in report.samples)


def test_the_tolerance_is_a_board_setting(artifact, images):
    strict = run(artifact, images, tolerance=0.01)
    assert strict.verdict == "mismatch"  # a healthy chip is not the model spike for spike
    assert strict.samples[0].layers[next(iter(strict.samples[0].layers))]["tolerance"] == 0.01
    lenient = run(artifact, images, {"mismatch": 0.3}, tolerance=5)
    assert lenient.verdict == "pass"


@pytest.mark.parametrize(
    ("faults", "verdict", "statuses", "retries", "reconnects"),
    [
        ({"timeout_at": 1}, "pass", ["match"] * 3, 1, 0),  # run again from the configured state
        ({"timeout_at": 1, "timeout_times": 4}, "incomplete", ["match", "not run", "not run"], 2, 0),
        ({"disconnect_at": 1}, "pass", ["match"] * 3, 1, 1),  # reconnected, rebuilt, run again
        ({"disconnect_at": 1, "disconnect_for": 2}, "pass", ["match"] * 3, 1, 3),
        ({"disconnect_at": 1, "disconnect_for": 50}, "incomplete", ["match", "not run", "not run"], 0, 3),
        ({"reorder": True}, "pass", ["match"] * 3, 0, 0),  # binned by time; counted as out of order
    ],
)
def test_faults_of_the_link_end_as_promised(artifact, images, faults, verdict, statuses, retries, reconnects):
    report = run(artifact, images, faults)
    document = report.to_dict()
    assert report.verdict == verdict
    assert [s.status for s in report.samples] == statuses
    assert document["summary"]["retries"] == retries
    assert document["summary"]["reconnects"] == reconnects
    for sample in report.samples:
        if sample.status == "not run":
            assert sample.error
    if faults.get("reorder"):
        assert all(s.out_of_order > 0 for s in report.samples)
    for sample in report.samples:
        if sample.status == "not run":
            assert ("BoardTimeout" if "timeout_at" in faults else "BoardDisconnected") in sample.error


@pytest.mark.parametrize(
    ("faults", "address", "error", "words"),
    [
        ({"missing": True}, "", BoardUnavailable, "no hardware resource allocated"),
        ({"busy": True}, "", BoardUnavailable, "busy"),
        ({"kind": "hxcube9fpga3chip61_3"}, "hxcube6fpga0chip48_1", BoardUnavailable, "the job was given setup hxcube9"),
        ({"sdk_version": "2022-06"}, "", BoardVersionError, "no cells.CalibHXNeuronCuba (2023-02)"),
        ({"sdk_version": "2023-10"}, "", BoardVersionError, "no RunCommand (2024-03)"),
        (
            {"reject": "too many synapse rows on hemisphere 1"},
            "",
            BoardRejected,
            "too many synapse rows on hemisphere 1",
        ),
    ],
)
def test_setups_that_cannot_run_it_fail_before_a_sample_runs(artifact, images, faults, address, error, words):
    with pytest.raises(error, match=re.escape(words)):
        run_on_board(artifact, fake(faults, address=address), images, steps=STEPS)


def test_a_container_before_cadc_recording_runs_without_the_readout(artifact, images):
    report = run(artifact, images[:1], {"sdk_version": "2025-06"})
    assert report.verdict == "pass"  # the spike layers are compared; the readout's V could not be read
    assert report.samples[0].prediction["board"] is None


def test_the_setup_named_by_the_address_is_accepted(artifact, images):
    board = fake({"kind": "hxcube6fpga0chip48_1"}, address="hxcube6fpga0chip48_1")
    assert run_on_board(artifact, board, images[:1], steps=STEPS).verdict == "pass"


def test_bad_inputs_settings_and_artifacts_are_refused_before_the_board(artifact, images, tmp_path):
    with pytest.raises(DataError, match="the model takes"):
        run_on_board(artifact, fake(), images[:, :, :20], steps=STEPS)
    with pytest.raises(DataError, match="unknown setting"):
        run_on_board(artifact, fake(clock_hz=3), images, steps=STEPS)
    with pytest.raises(DataError, match="unknown fault"):
        run_on_board(artifact, fake({"melt": True}), images, steps=STEPS)
    with pytest.raises(DataError, match="no file"):
        run_on_board(artifact, fake(calibration=str(tmp_path / "absent.pbin")), images, steps=STEPS)
    other = compile_model(MODEL, "reference", tmp_path / "ref")
    with pytest.raises(BoardUnavailable, match="compiled for reference"):
        run_on_board(other.root, fake(), images, steps=STEPS)


@pytest.mark.skipif(importlib.util.find_spec("pynn_brainscales") is not None, reason="pynn-brainscales is here")
def test_a_real_board_without_the_sdk_names_the_container(artifact, images):
    board = Board("bss2-lab", "brainscales2", "", settings={"timeout_s": 5})
    with pytest.raises(BoardUnavailable, match="only inside the BrainScaleS-2 software container"):
        run_on_board(artifact, board, images, steps=STEPS)
    assert "BrainScaleS-2 software container" in board_status(board)
    assert board_status(fake()).startswith("ready (fake board")
    assert BrainScaleS2Device.discover() == []


def test_sdk_errors_become_board_errors_by_their_names():
    def failing(cls):
        def fn():
            raise cls("boom")

        return fn

    quiggeldy_timeout = type("QuiggeldyTimeoutError", (RuntimeError,), {})
    lost = type("HxcommDisconnected", (RuntimeError,), {})
    assert isinstance(_catch(failing(quiggeldy_timeout), "run"), BoardTimeout)
    assert isinstance(_catch(failing(ConnectionResetError), "run"), BoardDisconnected)
    assert isinstance(_catch(failing(lost), "load"), BoardDisconnected)
    assert isinstance(_catch(failing(RuntimeError), "open"), BoardUnavailable)
    assert isinstance(_catch(failing(ValueError), "load"), BoardRejected)
    assert isinstance(_catch(failing(KeyError), "run"), BoardRejected)


def _catch(fn, stage):
    with pytest.raises(Exception) as info:
        _sdk(fn, stage, "b")
    return info.value


def test_a_run_on_a_chip_that_never_returns_is_bounded():
    """On a chip the run is joined after timeout_s; one that does not come back gives up the connection."""
    device = BrainScaleS2Device(Board("bss2-lab", "brainscales2", "", settings={"timeout_s": 0.05}), VirtualClock())
    release = threading.Event()
    try:
        with pytest.raises(BoardDisconnected, match=re.escape("sample 0's run did not come back within 0.05 s")):
            device._bounded(lambda: release.wait(5), "run", 0.05, "sample 0's run")
    finally:
        release.set()
    with pytest.raises(BoardTimeout):
        device._bounded(lambda: (_ for _ in ()).throw(TimeoutError("slow")), "run", 1, "a run")
    device._bounded(lambda: None, "load", 1, "a run")  # a run that returns is fine


def test_every_fault_is_documented_and_tested():
    tested = {
        "missing", "busy", "kind", "sdk_version", "reject", "drop", "duplicate", "reorder", "timeout_at",
        "timeout_times", "disconnect_at", "disconnect_for", "mismatch", "mismatch_seed", "noise", "noise_seed", "gain",
    }  # fmt: skip
    assert set(FAULTS) == tested
    assert BrainScaleS2Device.faults is FAULTS
    assert device_module.BrainScaleS2Device.compare == "statistic"


def test_other_chip_instances_pass_too(artifact, images):
    for seed in (2, 3):
        report = run(artifact, images, {"mismatch_seed": seed, "noise_seed": seed})
        assert report.verdict == "pass", distances(report)


def test_hil_run_command_writes_the_report_and_exits_by_verdict(artifact, tmp_path, capsys):
    inventory = tmp_path / "boards.toml"
    inventory.write_text(
        '[[board]]\nname = "fake-brainscales2"\ntarget = "brainscales2"\nfake = true\n\n'
        '[[board]]\nname = "fake-brainscales2-miscalibrated"\ntarget = "brainscales2"\nfake = true\n'
        "[board.faults]\nmismatch = 0.3\n\n"
        '[[board]]\nname = "fake-brainscales2-unplugged"\ntarget = "brainscales2"\nfake = true\n'
        "[board.faults]\ndisconnect_at = 1\ndisconnect_for = 50\n"
    )
    images = str(MNIST / "test_images.npz")
    common = ["--input", images, "--limit", "2", "-T", str(STEPS), "--inventory", str(inventory), "-q"]
    out = tmp_path / "report"
    assert main(["hil", "run", str(artifact), "--board", "fake-brainscales2", "-o", str(out), *common]) == 0
    assert "pass: 2 sample(s) on fake-brainscales2 (fake board)" in capsys.readouterr().out
    document = json.loads((out / "report.json").read_text())
    assert document["verdict"] == "pass"
    assert document["compare"] == "statistic"
    assert "spike-count distance" in document["compare_rule"]
    assert "distance" in json.dumps(document["samples"][0]["layers"])
    bad = ["hil", "run", str(artifact), "--board", "fake-brainscales2-miscalibrated", "-o", str(out), *common]
    assert main(bad) == 1
    assert json.loads((out / "report.json").read_text())["verdict"] == "mismatch"
    gone = ["hil", "run", str(artifact), "--board", "fake-brainscales2-unplugged", "-o", str(out), *common]
    assert main(gone) == 1
    assert json.loads((out / "report.json").read_text())["verdict"] == "incomplete"
    assert main(["hil", "run", str(artifact), "--board", "bss2-lab", "-o", str(out), *common]) == 1
    assert "no board 'bss2-lab' in the inventory" in capsys.readouterr().err


def test_the_artifacts_own_script_runs_on_the_fake_sdk(artifact, images, monkeypatch):
    """``run_pynn.py --simulator brainscales2`` (the pieces the adapter reuses) against the nominal fake chip: its
    spike counts are the model's, neuron by neuron."""
    import sys
    import types

    from neurodeploy_pynn import run_pynn_brainscales2
    from neurodeploy_pynn.fake_pynn_brainscales import FakePyNN

    from neurodeploy.artifact import load_artifact
    from neurodeploy.encoding import Encoding

    device = BrainScaleS2Device(fake(), VirtualClock())
    spikes = device.check(load_artifact(artifact), images, STEPS, Encoding())
    expected = device.reference(spikes, STEPS)
    assert device.netlist is not None
    gains = {p.name: p.gain for p in device.netlist.populations}
    sdk = FakePyNN({"mismatch": 0, "noise": 0}, VirtualClock(), gains)
    monkeypatch.setitem(sys.modules, "pynn_brainscales", types.ModuleType("pynn_brainscales"))
    monkeypatch.setitem(sys.modules, "pynn_brainscales.brainscales2", sdk)
    out = run_pynn_brainscales2.run_brainscales2(artifact, spikes)
    for name in expected[0].layers:
        want = np.stack([e.layers[name].sum(axis=0) for e in expected])
        np.testing.assert_array_equal(out[f"counts/{name}"], want)
        assert want.sum() > 0


def test_example_inventory_fakes_behave_as_described(artifact, images):
    from neurodeploy.hil.inventory import load_inventory

    boards = load_inventory(ROOT / "hil" / "boards.toml")
    verdicts = {
        name: run_on_board(artifact, board, images, steps=STEPS).verdict
        for name, board in boards.items()
        if board.fake and board.target == "brainscales2"
    }
    assert verdicts == {
        "fake-brainscales2": "pass",
        "fake-brainscales2-nominal": "pass",
        "fake-brainscales2-miscalibrated": "mismatch",
        "fake-brainscales2-weak-synapses": "mismatch",
        "fake-brainscales2-lossy": "mismatch",
        "fake-brainscales2-flaky": "pass",
        "fake-brainscales2-unplugged": "incomplete",
    }


def test_a_run_that_would_compare_nothing_is_refused_before_the_board(artifact, images, monkeypatch):
    """Where the host could watch no population (the compiler refuses a network without one, so the watch list is
    emptied here) and the analog readout is not judged, a run would compare nothing: it is refused, never a
    vacuous pass."""
    monkeypatch.setattr(BrainScaleS2Device, "_watched", lambda self: [])
    with pytest.raises(DataError, match="would compare nothing"):
        run_on_board(artifact, fake(), images, steps=STEPS)
