"""Hardware in the loop on Speck: the samna adapter against the fake samna, a clean board and every fault.

The fake stands where samna would (:mod:`neurodeploy_speck.fake_samna`): the adapter's own code runs, the chip
reads its configuration back from the samna configuration object it was given, takes the input events in the
order they were written and sends its output events with timestamps, which the adapter bins. A pass on the
clean fake board is therefore the configuration's round trip, the event order and the binning all agreeing
with the emulator; each fault must end as the harness promises: retried and passed where a retry cannot change
the result, otherwise a mismatch or an incomplete run, never a pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.config import to_samna
from neurodeploy_speck.device import SamnaDevice
from neurodeploy_speck.fake_samna import FAULTS, FakeSamna, configuration_from_samna
from speck_graphs import integer_document, random_network

from neurodeploy.cli import main
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import DataError
from neurodeploy.hil.device import Board, BoardRejected, BoardUnavailable, BoardVersionError, VirtualClock
from neurodeploy.hil.harness import run_on_board, write_report

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"
STEPS = 8
FAST = {"quiet_s": 0.01, "timeout_s": 0.1}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("speck-hil") / "mnist"
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MNIST / "mnist_cnn.onnx", "speck", out, calibration=calibration).root


@pytest.fixture(scope="module")
def images():
    return np.load(MNIST / "test_images.npz")["x"][:3]


def fake(faults=None, **settings):
    name = "fake-speck-" + "-".join(sorted(faults or {})) if faults else "fake-speck"
    return Board(name, "speck", "", settings={**FAST, **settings}, fake=True, faults=dict(faults or {}))


def run(artifact, images, faults=None, **settings):
    return run_on_board(artifact, fake(faults, **settings), images, steps=STEPS)


def test_clean_fake_board_equals_the_emulator_in_every_core(artifact, images):
    report = run(artifact, images)
    document = report.to_dict()
    assert document["verdict"] == "pass"
    assert [s["status"] for s in document["samples"]] == ["match"] * 3
    sample = document["samples"][0]
    assert len(sample["layers"]) == 4  # every core watched and compared, not only the readout
    assert all(layer["differing"] == 0 and layer["board_spikes"] > 0 for layer in sample["layers"].values())
    assert sample["prediction"]["board"] == sample["prediction"]["emulator"]
    assert sample["readout"] == {"differing": 0}
    assert document["board"]["info"]["device"] == "speck2fdevkit:0"
    assert document["board"]["adapter"] == "samna"


def test_watching_the_output_only_compares_the_readout(artifact, images):
    report = run(artifact, images[:1], watch="output")
    assert report.verdict == "pass"
    assert list(report.samples[0].layers) == ["/classifier/Gemm"]


@pytest.mark.parametrize(
    ("faults", "verdict", "statuses"),
    [
        ({"drop": 1}, "mismatch", ["mismatch"] * 3),
        ({"duplicate": 1}, "mismatch", ["mismatch"] * 3),
        ({"late_s": 0.5}, "mismatch", ["mismatch"] * 3),  # sinabs#165: the read ends before late events come
        ({"timeout_at": 1, "timeout_times": 4}, "incomplete", ["match", "not run", "not run"]),
        ({"disconnect_at": 1, "disconnect_for": 50}, "incomplete", ["match", "not run", "not run"]),
        ({"chatter_at": 0, "chatter_times": 2}, "incomplete", ["not run", "match", "match"]),
    ],
)
def test_faults_that_change_the_record_are_never_a_pass(artifact, images, faults, verdict, statuses):
    report = run(artifact, images, faults)
    assert report.verdict == verdict
    assert [s.status for s in report.samples] == statuses
    for sample in report.samples:
        if sample.status == "not run":
            assert sample.error  # says why


def test_a_dropped_event_is_found_in_the_layer_that_lost_it(artifact, images):
    report = run(artifact, images[:1], {"drop": 1})
    layers = report.samples[0].layers
    differing = {name: layer["differing"] for name, layer in layers.items() if layer["differing"]}
    assert len(differing) == 1
    (name,) = differing
    assert layers[name]["emulator_spikes"] - layers[name]["board_spikes"] == 1
    assert layers[name]["first_step_differing"] == 0


@pytest.mark.parametrize(
    ("faults", "retries", "reconnects"),
    [
        ({"timeout_at": 1}, 1, 0),  # a read times out once: the sample is run again from its initial state
        ({"disconnect_at": 1}, 1, 1),  # unplugged once: reconnected, reconfigured, the sample run again
        ({"disconnect_at": 1, "disconnect_for": 2}, 1, 3),  # away for two tries to find it
        ({"chatter_at": 2}, 1, 0),  # never quiet: the bounded wait gives up, the rerun completes
        ({"reorder": True}, 0, 0),  # events out of order: binned by timestamp, counted in the report
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


def test_late_events_show_up_as_stale_in_the_next_sample(artifact, images):
    report = run(artifact, images[:2], {"late_s": 0.5})
    assert report.samples[1].stale > 0


@pytest.mark.parametrize(
    ("faults", "error", "words"),
    [
        ({"missing": True}, BoardUnavailable, "no device of chip 'speck2f' is attached"),
        ({"busy": True}, BoardUnavailable, "open in another process"),
        ({"kind": "dynapcnn"}, BoardUnavailable, "dynapcnndevkit:0 (dynapcnn)"),
        ({"sdk_version": "0.30.1"}, BoardVersionError, "older than the 0.33"),
        ({"reject": "kernel memory exceeded on core 3"}, BoardRejected, "kernel memory exceeded on core 3"),
    ],
)
def test_boards_that_cannot_run_it_fail_before_a_sample_is_sent(artifact, images, faults, error, words):
    with pytest.raises(error, match=re.escape(words)):
        run(artifact, images, faults)


def test_a_board_of_the_wrong_kind_at_its_address_is_named(artifact, images):
    board = Board(
        "fake-speck-kind", "speck", "", "dynapcnndevkit:0", settings=FAST, fake=True, faults={"kind": "dynapcnn"}
    )
    with pytest.raises(BoardUnavailable, match="is a dynapcnn, the artifact is for a speck2f"):
        run_on_board(artifact, board, images, steps=STEPS)


def test_bad_inputs_and_settings_are_refused_before_the_board(artifact, images):
    with pytest.raises(DataError, match="expected"):
        run_on_board(artifact, fake(), images[:, :, :20], steps=STEPS)
    with pytest.raises(DataError, match="unknown setting"):
        run_on_board(artifact, fake(slow_clock=3), images, steps=STEPS)
    with pytest.raises(DataError, match="unknown fault"):
        run_on_board(artifact, fake({"melt": True}), images, steps=STEPS)


def test_an_artifact_of_another_target_is_refused(tmp_path, images):
    other = compile_model(MNIST / "mnist_cnn.onnx", "reference", tmp_path / "ref")
    with pytest.raises(BoardUnavailable, match="compiled for reference"):
        run_on_board(other.root, fake(), images, steps=STEPS)


def test_the_real_sdk_is_never_the_pypi_stub(monkeypatch, artifact, images):
    """samna on PyPI downloads the real SDK when imported: the adapter must refuse it, not import it."""
    monkeypatch.setattr(SamnaDevice, "sdk_status", classmethod(lambda cls: "the samna installed is PyPI's stub"))
    board = Board("speck-bench", "speck", "", settings=FAST)
    with pytest.raises(BoardUnavailable, match="stub"):
        run_on_board(artifact, board, images, steps=STEPS)


def test_the_chip_reads_back_what_to_samna_wrote(tmp_path):
    """The fake chip knows only the configuration object: on 20 random networks, what it reads back is the
    speck.json configuration the artifact holds, core order and input shape included."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        c, h = int(rng.integers(1, 3)), int(rng.choice([8, 12, 16]))
        pool = int(rng.choice([1, 2]))
        document = integer_document(random_network(rng, (c, h // pool, h // pool)), (c, h, h), input_pooling=pool)
        samna = FakeSamna({}, VirtualClock())
        back = configuration_from_samna(to_samna(document, samna))
        for mine, theirs in zip(back["configuration"]["cnn_layers"], document["configuration"]["cnn_layers"]):
            if theirs is None:
                assert mine is None
                continue
            for key, value in theirs.items():
                assert json.loads(json.dumps(mine[key])) == json.loads(json.dumps(value)), key
        assert [layer["core"] for layer in back["host"]["layers"]] == [
            layer["core"] for layer in document["host"]["layers"]
        ]
        assert back["host"]["input"]["shape"] == list(document["host"]["input"]["shape"])


def test_every_fault_is_documented_and_tested():
    tested = {
        "missing", "busy", "kind", "sdk_version", "reject", "drop", "duplicate", "reorder", "late_s",
        "timeout_at", "timeout_times", "chatter_at", "chatter_times", "disconnect_at", "disconnect_for",
    }  # fmt: skip
    assert set(FAULTS) == tested
    assert SamnaDevice.faults is FAULTS


def test_hil_run_command_writes_the_report_and_exits_by_verdict(artifact, tmp_path, capsys):
    inventory = tmp_path / "boards.toml"
    inventory.write_text(
        '[[board]]\nname = "fake-speck"\ntarget = "speck"\nfake = true\n[board.settings]\nquiet_s = 0.01\n'
        'timeout_s = 0.1\n\n[[board]]\nname = "fake-speck-lossy"\ntarget = "speck"\nfake = true\n'
        "[board.settings]\nquiet_s = 0.01\ntimeout_s = 0.1\n[board.faults]\ndrop = 1\n"
    )
    images = str(MNIST / "test_images.npz")
    common = ["--input", images, "--limit", "2", "-T", str(STEPS), "--inventory", str(inventory), "-q"]
    out = tmp_path / "report"
    assert main(["hil", "run", str(artifact), "--board", "fake-speck", "-o", str(out), *common]) == 0
    assert "pass: 2 sample(s) on fake-speck (fake board)" in capsys.readouterr().out
    document = json.loads((out / "report.json").read_text())
    assert document["verdict"] == "pass"
    assert document["board"]["fake"] is True
    assert "Fake board" in (out / "report.md").read_text()
    assert main(["hil", "run", str(artifact), "--board", "fake-speck-lossy", "-o", str(out), *common]) == 1
    assert json.loads((out / "report.json").read_text())["verdict"] == "mismatch"  # the earlier report replaced
    assert main(["hil", "run", str(artifact), "--board", "fake-speck", "-o", str(out), "--resume", *common]) == 1
    assert "another run" in capsys.readouterr().err  # the report there is the lossy board's
    assert main(["hil", "run", str(artifact), "--board", "fake-speck-lossy", "-o", str(out), "--resume", *common]) == 1
    assert json.loads((out / "report.json").read_text())["summary"]["resumed"] == 2  # nothing run again
    assert main(["hil", "run", str(artifact), "--board", "speck-lab", "-o", str(out), *common]) == 1
    assert "no board 'speck-lab' in the inventory" in capsys.readouterr().err


def test_example_inventory_fakes_behave_as_described(artifact, images, tmp_path):
    from neurodeploy.hil.inventory import load_inventory

    boards = load_inventory(ROOT / "hil" / "boards.toml")
    verdicts = {
        name: run_on_board(artifact, board, images, steps=STEPS).verdict
        for name, board in boards.items()
        if board.fake and board.target == "speck"
    }
    assert verdicts == {
        "fake-speck": "pass",
        "fake-speck-lossy": "mismatch",
        "fake-speck-flaky": "pass",
        "fake-speck-unplugged": "incomplete",
    }
    report = run_on_board(artifact, boards["fake-speck"], images[:1], steps=STEPS)
    write_report(report, tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.json", "report.md"]


@pytest.mark.parametrize("engine", ["auto", "numpy"])
def test_event_mode_run_on_from_its_state_equals_one_run(artifact, images, engine):
    """What the fake chip relies on: a run continued from its state (in pieces, one sample at a time) gives what
    one run of the whole batch gives, in both event-mode engines."""
    from neurodeploy_speck.backend import SpeckBackend

    from neurodeploy.artifact import load_artifact
    from neurodeploy.encoding import Encoding

    backend = SpeckBackend("speck")
    loaded = backend.load(load_artifact(artifact), "event")
    network = loaded.network
    network.engine = engine
    frames = backend.prepare(loaded, images, steps=STEPS, encoding=Encoding())
    cores = tuple(core.index for core in network.cores)
    whole = network.run_events(frames, record=cores)
    for i in range(len(frames)):
        state: dict = {}
        first = network.run_events(frames[i : i + 1, :3], record=cores, state=state)
        rest = network.run_events(frames[i : i + 1, 3:], record=cores, state=state)
        for core in cores:
            pieces = np.concatenate([first.counts[core][0], rest.counts[core][0]])
            assert np.array_equal(pieces, whole.counts[core][i]), (engine, i, core)


def test_a_run_cut_short_resumes_where_it_stopped(artifact, images, tmp_path):
    """The board went away for good after the first sample; once it is back, --resume runs only the rest."""
    name = "fake-speck-bench"
    away = Board(name, "speck", "", settings=FAST, fake=True, faults={"disconnect_at": 1, "disconnect_for": 50})
    first = run_on_board(artifact, away, images, steps=STEPS)
    assert [s.status for s in first.samples] == ["match", "not run", "not run"]
    back = Board(name, "speck", "", settings=FAST, fake=True)
    second = run_on_board(artifact, back, images, steps=STEPS, previous=first.to_dict())
    assert second.verdict == "pass"
    assert [s.resumed for s in second.samples] == [True, False, False]
    assert second.to_dict()["summary"]["resumed"] == 1
    with pytest.raises(DataError, match="another run"):
        run_on_board(artifact, back, images[:2], steps=STEPS, previous=first.to_dict())
    with pytest.raises(DataError, match="another run"):
        run_on_board(artifact, back, images, steps=STEPS + 1, previous=first.to_dict())
    with pytest.raises(DataError, match="not a list"):
        run_on_board(artifact, back, images, steps=STEPS, previous={**first.to_dict(), "samples": [1, 2, 3]})
