"""Hardware in the loop on Loihi 2, the fake board in Lava: the adapter (:mod:`neurodeploy_loihi.device`) builds a
board-ready program's stock Lava processes once, with a host sink on every population, and runs sample after sample
in one runtime, setting u, v, the synapses' messages in flight and the input bias back with ``Var.set``; the fake
(:mod:`neurodeploy_loihi.fake_loihi`) runs them in Lava's bit-accurate CPU models (``Loihi2SimCfg(select_tag=
"fixed_pt")``). A pass on the clean fake board is therefore Lava's spikes of every population at every step, and
the readout from Lava's v, equal to the emulator's, sample after sample; each fault must end as the harness
promises: retried and passed where a retry cannot change the result, otherwise a mismatch or an incomplete run,
never a pass."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers of backends/loihi/tests
from lava_checks import require_lava
from test_loihi_hil import compile_tiny, fake, tiny_inputs

from neurodeploy.artifact import load_artifact
from neurodeploy.cli import main
from neurodeploy.compiler import emulate_artifact
from neurodeploy.hil.device import BoardRejected, VirtualClock
from neurodeploy.hil.harness import board_status, run_on_board

require_lava()

STEPS = 6
SAMPLES = 3


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return compile_tiny(tmp_path_factory.mktemp("loihi-hil-lava")).root


@pytest.fixture(scope="module")
def images():
    return tiny_inputs(SAMPLES)


def run(artifact, images, faults=None, **settings):
    return run_on_board(artifact, fake(faults, **settings), images, steps=STEPS)


def test_clean_fake_board_equals_the_emulator_in_every_population_at_every_step(artifact, images):
    report = run(artifact, images)
    document = report.to_dict()
    assert document["verdict"] == "pass"
    assert [s["status"] for s in document["samples"]] == ["match"] * SAMPLES
    for sample in document["samples"]:
        layers = sample["layers"]
        assert len(layers) == 3  # the input population, the Conv's population, the readout
        assert all(layer["differing"] == 0 for layer in layers.values())
        spiking = [layer for name, layer in layers.items() if layer["emulator_spikes"]]
        assert len(spiking) == 2  # both spiking populations fire: the comparison is not an empty one
        assert sample["prediction"]["board"] == sample["prediction"]["emulator"]
        assert sample["readout"] == {"differing": 0}  # the readout from the v read back, judged exactly too
    assert document["board"]["info"]["board"] == "ncl-fake-01"
    assert document["board"]["adapter"] == "lava"


def test_the_readout_read_from_lavas_v_is_the_emulators_to_the_bit(tmp_path, images):
    """The device directly: the outputs computed from the v the host reads equal ``neurodeploy emulate``'s, with a
    readout delay (v read at three steps) and without."""
    from neurodeploy_loihi.device import LavaDevice

    from neurodeploy.encoding import Encoding

    for delay in ("0", "2"):
        folder = tmp_path / f"delay{delay}"
        artifact = compile_tiny(folder, readout_delay=delay)
        device = LavaDevice(fake(), VirtualClock())
        prepared = device.check(load_artifact(artifact.root), images, STEPS, Encoding())
        expected = device.reference(prepared, STEPS)
        device.open()
        try:
            device.load()
            got = [device.run_sample(prepared, i, STEPS) for i in range(len(prepared))]
        finally:
            device.close()
        emulated = emulate_artifact(artifact, images, steps=STEPS).outputs
        assert emulated.shape == (SAMPLES, 3)
        assert np.ptp(emulated) > 0
        for i in range(SAMPLES):
            np.testing.assert_array_equal(got[i].outputs, emulated[i])
            np.testing.assert_array_equal(expected[i].outputs, emulated[i])
            for name, layer in expected[i].layers.items():
                np.testing.assert_array_equal(got[i].layers[name], layer, err_msg=f"sample {i}, {name}")


def test_without_the_reset_between_samples_the_board_would_differ(monkeypatch, artifact, images):
    """What the comparison catches: a board whose state is not set back before each sample (only the input bias is)
    mismatches, from the first sample on (the step run at load has moved v already)."""
    from neurodeploy_loihi.device import LavaDevice

    def bias_only(self, mant, exp):
        source = self.chain.populations[0]
        source.bias_mant.set(np.asarray(mant).reshape(source.bias_mant.shape))
        source.bias_exp.set(np.asarray(exp).reshape(source.bias_exp.shape))

    monkeypatch.setattr(LavaDevice, "_reset", bias_only)
    report = run(artifact, images)
    assert [s.status for s in report.samples] == ["mismatch"] * SAMPLES


@pytest.mark.parametrize(
    ("faults", "settings", "verdict", "statuses"),
    [
        ({"drop": 1}, {}, "mismatch", ["mismatch"] * 3),
        ({"duplicate": 1}, {}, "mismatch", ["mismatch"] * 3),
        ({"reorder": 3}, {}, "mismatch", ["mismatch"] * 3),
        ({}, {"sink_lag": 1}, "mismatch", ["mismatch"] * 3),  # a lag the fake's sinks do not have shifts the record
        ({"timeout_at": 1, "timeout_times": 2}, {}, "incomplete", ["match", "not run", "match"]),
        ({"disconnect_at": 1, "disconnect_for": 50}, {}, "incomplete", ["match", "not run", "not run"]),
    ],
)
def test_faults_that_change_the_record_are_never_a_pass(artifact, images, faults, settings, verdict, statuses):
    report = run(artifact, images, faults, **settings)
    assert report.verdict == verdict
    assert [s.status for s in report.samples] == statuses
    for sample in report.samples:
        if sample.status == "not run":
            assert sample.error  # says why


def test_a_dropped_spike_is_found_in_every_population_at_its_first_spike(artifact, images):
    report = run(artifact, images[:1], {"drop": 1})
    layers = report.samples[0].layers
    for layer in layers.values():
        if layer["emulator_spikes"]:
            assert layer["emulator_spikes"] - layer["board_spikes"] == 1
            assert layer["differing"] == 1


@pytest.mark.parametrize(
    ("faults", "retries", "reconnects"),
    [
        ({"timeout_at": 1}, 1, 0),  # a run that does not end: stopped, built again, the sample run again
        ({"disconnect_at": 1}, 1, 1),  # the link lost once: reopened, reloaded, the sample run again
    ],
)
def test_faults_a_retry_cannot_change_pass_after_the_retry(artifact, images, faults, retries, reconnects):
    report = run(artifact, images, faults)
    document = report.to_dict()
    assert document["verdict"] == "pass"
    assert document["summary"]["retries"] == retries
    assert document["summary"]["reconnects"] == reconnects


def test_a_network_the_compiler_refuses_is_rejected_before_a_sample_runs(artifact, images):
    with pytest.raises(BoardRejected, match=r"does not compile for it.*too many axons on core 3"):
        run(artifact, images, {"reject": "too many axons on core 3"})


def test_the_timeout_bounds_the_wait(artifact, images):
    """A run that never ends costs the sample's timeout_s of board time (virtual here) per attempt, not more."""
    clock = VirtualClock()
    board = fake({"timeout_at": 0, "timeout_times": 5}, timeout_s=0.3)
    report = run_on_board(artifact, board, images[:1], steps=STEPS, clock=clock)
    assert report.verdict == "incomplete"
    assert report.samples[0].attempts == 2
    assert "did not end within 0.3 s" in (report.samples[0].error or "")
    assert 0.6 < clock.now < 0.7  # two attempts of 0.3 s, checked every poll_s = 0.01 s


def test_hil_run_command_exits_by_verdict_on_fake_loihi_boards(artifact, images, tmp_path, capsys):
    inventory = tmp_path / "boards.toml"
    inventory.write_text(
        '[[board]]\nname = "fake-loihi"\ntarget = "loihi"\nfake = true\n[board.settings]\npoll_s = 0.01\n\n'
        '[[board]]\nname = "fake-loihi-lossy"\ntarget = "loihi"\nfake = true\n[board.faults]\ndrop = 1\n'
    )
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=images)
    common = ["--input", str(inputs), "-T", str(STEPS), "--inventory", str(inventory), "-q"]
    out = tmp_path / "report"
    assert main(["hil", "run", str(artifact), "--board", "fake-loihi", "-o", str(out), *common]) == 0
    assert f"pass: {SAMPLES} sample(s) on fake-loihi (fake board)" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["board"]["adapter"] == "lava"
    assert main(["hil", "run", str(artifact), "--board", "fake-loihi-lossy", "-o", str(out), *common]) == 1
    assert json.loads((out / "report.json").read_text())["verdict"] == "mismatch"


def test_example_inventory_fakes_behave_as_described(artifact, images):
    from neurodeploy.hil.device import BoardUnavailable
    from neurodeploy.hil.inventory import load_inventory

    boards = load_inventory(Path(__file__).resolve().parents[4] / "hil" / "boards.toml")
    verdicts = {}
    for name, board in boards.items():
        if board.fake and board.target == "loihi":
            try:
                verdicts[name] = run_on_board(artifact, board, images, steps=STEPS).verdict
            except BoardUnavailable:
                verdicts[name] = "refused"
    assert {name: board_status(boards[name]) for name in verdicts} == dict.fromkeys(
        verdicts, "ready (fake board: a rehearsal against the emulator)"
    )  # where Lava is, `hil list` calls them ready
    assert verdicts == {
        "fake-loihi": "pass",
        "fake-loihi-lossy": "mismatch",
        "fake-loihi-flaky": "pass",
        "fake-loihi-unplugged": "incomplete",
        "fake-loihi-busy": "refused",
    }
