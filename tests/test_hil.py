"""Hardware in the loop, the core's part: the inventory, the verdict, the report folder, `neurodeploy hil`, and
the lab suite in hil/ run against a fake board (the Speck adapter's faults are tested in
backends/speck/tests/test_speck_hil.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.errors import DataError
from neurodeploy.hil.device import Board, BoardUnavailable, Clock, Device, Observed
from neurodeploy.hil.harness import HilReport, SampleResult, _compare, board_status, markdown, write_report
from neurodeploy.hil.inventory import ENVIRONMENT, load_inventory, locate, parse_inventory

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "hil" / "boards.toml"


def test_example_inventory_has_a_real_and_fake_boards():
    boards = load_inventory(EXAMPLE)
    assert not boards["speck-bench-1"].fake
    assert boards["speck-bench-1"].address == "speck2fdevkit:0"
    fakes = [b for b in boards.values() if b.fake]
    assert fakes
    assert all("fake" in b.name and b.target in b.name for b in fakes)
    assert boards["fake-speck-lossy"].faults == {"drop": 2}


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"boards": []}, "unknown top-level key"),
        ({"board": {"name": "x"}}, "array of tables"),
        ({"board": [{"name": "a b", "target": "speck"}]}, "'name' must be"),
        ({"board": [{"name": "ok", "target": 3}]}, "'target' must name"),
        ({"board": [{"name": "ok", "target": "speck", "colour": "red"}]}, "unknown key"),
        ({"board": [{"name": "ok", "target": "speck", "fake": "yes"}]}, "'fake' must be true or false"),
        ({"board": [{"name": "speck-sim", "target": "speck", "fake": True}]}, "must contain 'fake'"),
        ({"board": [{"name": "fake-loihi", "target": "speck", "fake": True}]}, "target's name"),
        ({"board": [{"name": "my-fake-one", "target": "speck"}]}, "only a fake board"),
        ({"board": [{"name": "b", "target": "speck", "faults": {"drop": 1}}]}, "only a fake board takes 'faults'"),
        ({"board": [{"name": "b", "target": "speck", "settings": {"x": [1]}}]}, "table of strings"),
        ({"board": [{"name": "b", "target": "speck"}, {"name": "b", "target": "speck"}]}, "two boards"),
        ({"board": [{"name": "b", "target": "spinnaker", "address": "10.0.0.1\nversion = 3"}]}, "'address' must"),
    ],
)
def test_bad_inventories_name_the_board_and_the_key(document, words):
    with pytest.raises(DataError, match=words):
        parse_inventory(document, "boards.toml")


def test_inventory_files_that_cannot_be_read(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        load_inventory(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[board]\nname=")
    with pytest.raises(DataError, match="not valid TOML"):
        load_inventory(bad)
    link = tmp_path / "link.toml"
    link.symlink_to(EXAMPLE)
    with pytest.raises(DataError, match="symbolic link"):
        load_inventory(link)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    with pytest.raises(DataError, match="no board inventory"):
        locate()
    monkeypatch.setenv(ENVIRONMENT, str(EXAMPLE))
    assert locate() == EXAMPLE


def _report(statuses):
    return HilReport(
        artifact={"path": "a", "target": "speck", "manifest_sha256": "0" * 64},
        board={"name": "fake-speck", "target": "speck", "adapter": "samna", "address": "", "fake": True, "faults": {}},
        steps=4,
        compare="exact",
        samples=[SampleResult(i, s, attempts=1, error=None if s != "not run" else "x") for i, s in enumerate(statuses)],
    )


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        (["match", "match"], "pass"),
        (["match", "mismatch"], "mismatch"),
        (["match", "not run"], "incomplete"),
        (["mismatch", "not run"], "mismatch"),
        ([], "incomplete"),
    ],
)
def test_verdict_is_pass_only_when_every_sample_ran_and_matched(statuses, verdict):
    assert _report(statuses).verdict == verdict


def test_comparison_counts_every_differing_count_and_the_first_step():
    want = Observed(layers={"a": np.array([[1, 0], [0, 1], [2, 2]]), "b": np.zeros((3, 1), np.int64)})
    got = Observed(layers={"a": np.array([[1, 0], [0, 2], [2, 1]])})
    result = SampleResult(0, "not run")
    _compare(result, got, want)
    assert result.status == "mismatch"
    assert result.layers["a"] == {"emulator_spikes": 6, "board_spikes": 6, "differing": 2, "first_step_differing": 1}
    assert result.layers["b"]["problem"] == "not reported by the board"  # a silent layer must still be reported
    same = SampleResult(0, "not run")
    _compare(same, Observed(layers={"a": want.layers["a"].copy()}), Observed(layers={"a": want.layers["a"]}))
    assert same.status == "match"


def test_comparison_uses_the_devices_rule_and_the_report_states_it(tmp_path):
    class Loose(Device):  # an analog target's rule: total spikes within one of the emulator's
        compare = "statistic"

        def check(self, *args):
            raise NotImplementedError

        reference = open = load = run_sample = close = check

        def compare_rule(self):
            return "total spikes within 1"

        def compare_layer(self, got, expected):
            distance = abs(int(got.sum()) - int(expected.sum()))
            return {"board_spikes": int(got.sum()), "distance": distance, "tolerance": 1, "match": distance <= 1}

    device = Loose(Board("fake-x", "speck", "samna", fake=True), Clock())
    want = Observed(layers={"a": np.array([[1, 0], [0, 1]])})
    close, far = SampleResult(0, "not run"), SampleResult(1, "not run")
    _compare(close, Observed(layers={"a": np.array([[0, 0], [0, 1]])}), want, device)
    _compare(far, Observed(layers={"a": np.zeros((2, 2), np.int64)}), want, device)
    assert (close.status, far.status) == ("match", "mismatch")
    assert close.layers["a"] == {"board_spikes": 1, "distance": 1, "tolerance": 1}  # the rule's entry, less "match"
    report = _report(["match"])
    report.samples[0].layers = close.layers
    report.compare, report.compare_rule = device.compare, device.compare_rule()
    document = report.to_dict()
    assert (document["compare"], document["compare_rule"]) == ("statistic", "total spikes within 1")
    assert "comparison: statistic (total spikes within 1)" in markdown(document)
    assert "(distance 1.000, tolerance 1)" in markdown(document)


def test_an_exact_device_judges_the_readout_too():
    """Equal spikes with a readout that differs (a membrane read back wrong) is a mismatch, and one the board did
    not give where the emulator has one as well."""

    class Exact(Device):
        def check(self, *args):
            raise NotImplementedError

        reference = open = load = run_sample = close = check

    device = Exact(Board("fake-x", "speck", "samna", fake=True), Clock())
    spikes = {"a": np.array([[1, 0], [0, 1]])}
    want = Observed(layers=spikes, outputs=np.array([0.5, 0.25], np.float32))
    cases = {
        "same": np.array([0.5, 0.25], np.float32),
        "off": np.array([0.5, 0.26], np.float32),
        "missing": None,
    }
    results = {}
    for name, outputs in cases.items():
        results[name] = SampleResult(0, "not run")
        _compare(results[name], Observed(layers={"a": spikes["a"].copy()}, outputs=outputs), want, device)
    assert {k: r.status for k, r in results.items()} == {"same": "match", "off": "mismatch", "missing": "mismatch"}
    assert results["off"].readout == {"differing": 1}
    assert results["missing"].readout["problem"] == "not reported by the board"
    report = _report(["mismatch"])
    report.samples[0] = results["off"]
    assert "| (readout) | | | 1 | |" in markdown(report.to_dict())


def test_report_folder_is_written_whole_and_replaces_only_a_report(tmp_path):
    out = write_report(_report(["match", "mismatch"]), tmp_path / "r")
    document = json.loads((out / "report.json").read_text())
    assert document["verdict"] == "mismatch"
    assert document["summary"]["mismatch"] == 1
    assert "Fake board" in (out / "report.md").read_text()
    write_report(_report(["match"]), out)  # an earlier report is replaced
    assert json.loads((out / "report.json").read_text())["verdict"] == "pass"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary folder left
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="other files"):
        write_report(_report(["match"]), other)
    assert (other / "keep.txt").read_text() == "mine"
    link = tmp_path / "link"
    link.symlink_to(other)
    with pytest.raises(DataError, match="not a folder"):
        write_report(_report(["match"]), link)


def test_markdown_says_why_samples_did_not_run():
    text = markdown(_report(["match", "not run"]).to_dict())
    assert text.startswith("# Hardware-in-the-loop run: INCOMPLETE")
    assert "| 1 | not run | 1 | x |" in text


def test_targets_without_a_board_adapter_say_so():
    assert "has no board adapter" in board_status(Board("lab-loihi", "reference", ""))
    assert "unknown target" in board_status(Board("lab-x", "no-such-chip", ""))
    from neurodeploy.backends.registry import get_backend

    with pytest.raises(BoardUnavailable, match="emulator only"):
        get_backend("reference").device(Board("r", "reference", ""))


def test_hil_list_shows_each_board_and_why_it_cannot_be_used(tmp_path, capsys):
    assert main(["hil", "list", "--inventory", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "fake-speck (speck, samna): ready (fake board" in out
    assert "speck-bench-1 (speck, samna, speck2fdevkit:0): unavailable:" in out  # no SynSense samna here
    bad = tmp_path / "b.toml"
    bad.write_text('[[board]]\nname = "fake-speck"\ntarget = "speck"\nfake = true\n[board.faults]\nmelt = true\n')
    assert main(["hil", "list", "--inventory", str(bad)]) == 0
    assert "unknown fault(s) melt" in capsys.readouterr().out


def test_lab_suite_runs_on_a_fake_board(tmp_path):
    """hil/ is not collected by a plain pytest; with --board it compiles the bundled model, runs it on the board
    and writes the report, and a lossy board fails it."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "hil"), "--samples", "2"]
    command += ["--steps", "8", "--inventory", str(EXAMPLE), "--report-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": ""}
    good = subprocess.run([*command, "--board", "fake-speck"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads((tmp_path / "fake-speck" / "report.json").read_text())["verdict"] == "pass"
    bad = subprocess.run([*command, "--board", "fake-speck-lossy"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "mismatch on fake-speck-lossy" in bad.stdout


def test_hil_list_checks_each_boards_settings(tmp_path, capsys):
    inventory = tmp_path / "b.toml"
    inventory.write_text(
        '[[board]]\nname = "fake-speck"\ntarget = "speck"\nfake = true\n[board.settings]\nstep_us = 2.5\n\n'
        '[[board]]\nname = "fake-speck-2"\ntarget = "speck"\nfake = true\n[board.settings]\nretries = -1\n'
    )
    assert main(["hil", "list", "--inventory", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert "step_us must be a whole number" in out
    assert "retries must be a number >= 0" in out
