"""Hardware in the loop on Loihi 2, what needs no Lava: the Lava adapter's checks before a board is touched, the
boards it refuses when it looks for one (missing, busy, of another kind, a Lava too old), what ``hil list`` says,
and the fake board's faults at the host sink. The runs themselves, on the fake board in Lava's CPU models, are in
``tests/lava/test_loihi_hil_against_lava.py`` (``.venv-lava``)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from neurodeploy_loihi import fake_loihi
from neurodeploy_loihi.device import LavaDevice, _find
from onnx import TensorProto, helper, numpy_helper

from neurodeploy.cli import main
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import Calibration
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.hil.device import Board, BoardUnavailable, BoardVersionError, Clock, VirtualClock
from neurodeploy.hil.harness import board_status, run_on_board

STEPS = 6
FAST = {"timeout_s": 1.0, "poll_s": 0.01}


def tiny_board_model(path: Path) -> Path:
    """x (1, 6, 6) -> Conv(1->2, 3x3, pad 1) -> Relu -> Conv(2->3, 3x3, pad 1) -> Relu -> Flatten -> Gemm(108->3):
    on Loihi, the first convolution is the host's (the input population's current), the second a Lava ``Conv``
    between two LIF populations, the Gemm a ``Dense`` into the readout."""
    rng = np.random.default_rng(1)
    weights = {
        "c1.w": rng.normal(0, 0.6, (2, 1, 3, 3)),
        "c1.b": np.full(2, 0.1),
        "c2.w": rng.normal(0.1, 0.5, (3, 2, 3, 3)),
        "c2.b": np.full(3, 0.1),
        "fc.w": rng.normal(0, 0.5, (3, 108)),
        "fc.b": np.zeros(3),
    }
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["a"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Conv", ["ra", "c2.w", "c2.b"], ["b"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["b"], ["rb"]),
        helper.make_node("Flatten", ["rb"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_board",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def compile_tiny(folder: Path, profile: str = "board", **options: str):
    """The tiny model compiled for loihi with ``profile`` (board: stock Lava processes only) and other target
    ``options``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    calibration = Calibration(rng.uniform(0, 1, (32, 1, 6, 6)).astype(np.float32), "uniform noise")
    model = tiny_board_model(folder / "tiny.onnx")
    return compile_model(
        model, "loihi", folder / profile, calibration=calibration, target_options={"profile": profile, **options}
    )


def tiny_inputs(samples: int = 3) -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 1, (samples, 1, 6, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return compile_tiny(tmp_path_factory.mktemp("loihi-hil")).root


def fake(faults=None, **settings):
    name = "fake-loihi-" + "-".join(sorted(faults or {})) if faults else "fake-loihi"
    return Board(name, "loihi", "", settings={**FAST, **settings}, fake=True, faults=dict(faults or {}))


def test_an_artifact_that_is_not_board_ready_is_refused_with_the_reason(tmp_path):
    exact = compile_tiny(tmp_path, profile="exact")  # reset by subtraction: SubtractiveLIF, Lava's CPU only
    with pytest.raises(BoardUnavailable, match=r"not board-ready.*SubtractiveLIF.*profile=board"):
        run_on_board(exact.root, fake(), tiny_inputs(), steps=STEPS)


def test_an_artifact_of_another_target_is_refused(tmp_path):
    other = compile_model(tiny_board_model(tmp_path / "t.onnx"), "reference", tmp_path / "ref")
    with pytest.raises(BoardUnavailable, match="compiled for reference"):
        run_on_board(other.root, fake(), tiny_inputs(), steps=STEPS)
    device = LavaDevice(fake(), VirtualClock())
    with pytest.raises(BoardUnavailable, match="runs Loihi artifacts"):
        device.check(other, tiny_inputs(), STEPS, None)


def test_bad_inputs_settings_and_faults_are_refused_before_the_board(artifact):
    with pytest.raises(DataError, match=re.escape("has shape (3, 1, 5, 6); the model takes (batch, 1, 6, 6)")):
        run_on_board(artifact, fake(), tiny_inputs()[:, :, :5], steps=STEPS)
    with pytest.raises(DataError, match="unknown setting"):
        run_on_board(artifact, fake(step_us=1000), tiny_inputs(), steps=STEPS)
    with pytest.raises(DataError, match="loihi_gen must be a Loihi 2 generation"):
        run_on_board(artifact, fake(loihi_gen="N2A2"), tiny_inputs(), steps=STEPS)
    with pytest.raises(DataError, match="sink_lag must be a whole number"):
        run_on_board(artifact, fake(sink_lag=0.5), tiny_inputs(), steps=STEPS)
    with pytest.raises(DataError, match="unknown fault"):
        run_on_board(artifact, fake({"melt": True}), tiny_inputs(), steps=STEPS)
    with pytest.raises(DataError, match="drop must be a whole number"):
        run_on_board(artifact, fake({"drop": -1}), tiny_inputs(), steps=STEPS)


@pytest.mark.parametrize(
    ("faults", "error", "words"),
    [
        ({"missing": True}, BoardUnavailable, "no Loihi system found: SLURM lists no board"),
        ({"busy": True}, BoardUnavailable, "allocated to another job (busy"),
        ({"kind": "nahuku32"}, BoardUnavailable, "is in partition nahuku32, a Loihi 1 system"),
        ({"sdk_version": "0.9.0"}, BoardVersionError, "lava-nc 0.9.0 is older than the 0.10"),
    ],
)
def test_boards_that_cannot_run_it_fail_before_anything_is_sent(artifact, faults, error, words):
    with pytest.raises(error, match=re.escape(words)):
        run_on_board(artifact, fake(faults), tiny_inputs(), steps=STEPS)


def test_a_board_is_looked_for_by_its_slurm_name_partition_and_state(artifact):
    named = Board("fake-loihi-named", "loihi", "", "ncl-other", settings=FAST, fake=True)
    with pytest.raises(BoardUnavailable, match=r"SLURM lists no Loihi board 'ncl-other'.*ncl-fake-01"):
        run_on_board(artifact, named, tiny_inputs(), steps=STEPS)
    with pytest.raises(BoardUnavailable, match="is in partition oheogulch, not kp_stack"):
        run_on_board(artifact, fake(partition="kp_stack"), tiny_inputs(), steps=STEPS)
    device = LavaDevice(fake(), Clock())
    down = SimpleNamespace(nodename="ncl-1", partition="oheogulch*", state="down*")
    idle = SimpleNamespace(nodename="ncl-2", partition="oheogulch", state="idle")
    with pytest.raises(BoardUnavailable, match="ncl-1 is down"):
        device._slurm_board([down])
    assert device._slurm_board([down, idle]) is idle  # the first usable one where the address names none


def test_without_lava_the_sdk_status_says_what_to_install(monkeypatch, artifact):
    from neurodeploy_loihi import device as module

    monkeypatch.setattr(module, "_find", lambda name: None)
    status = LavaDevice.sdk_status()
    assert status is not None
    assert "lava-nc is not installed" in status
    assert "lava-loihi" in status
    assert "INRC" in status
    assert "Python 3.10" in status
    assert LavaDevice.discover() == []
    real = Board("loihi-lab", "loihi", "", settings=FAST)
    with pytest.raises(BoardUnavailable, match="lava-nc is not installed"):
        run_on_board(artifact, real, tiny_inputs(), steps=STEPS)
    monkeypatch.setattr(module, "_find", lambda name: None if name == "lava.utils.loihi2_profiler" else object())
    assert "Loihi extension (lava-loihi) is not installed" in (LavaDevice.sdk_status() or "")


@pytest.mark.skipif(
    _find("lava.magma") is not None,
    reason="Lava is installed here: the fake runs (tests/lava/test_loihi_hil_against_lava.py)",
)
def test_a_fake_board_without_lava_fails_naming_the_lava_environment_never_passes(artifact):
    with pytest.raises(NeurodeployError, match="make test-lava"):
        run_on_board(artifact, fake(), tiny_inputs(), steps=STEPS)


@pytest.mark.skipif(_find("lava.magma") is not None, reason="Lava is installed here: its fake boards are ready")
def test_hil_list_says_a_fake_loihi_board_needs_lava_where_it_is_missing(tmp_path, capsys):
    """A fake Loihi board runs Lava's CPU models: `hil list` calls it ready only where Lava is (the Lava tests check
    that side)."""
    assert board_status(fake()).startswith("unavailable: a fake Loihi board runs the network in Lava's CPU models")
    inventory = tmp_path / "boards.toml"
    inventory.write_text(
        '[[board]]\nname = "fake-loihi"\ntarget = "loihi"\nfake = true\n[board.settings]\ntimeout_s = 5\n\n'
        '[[board]]\nname = "fake-loihi-bad"\ntarget = "loihi"\nfake = true\n[board.faults]\nmelt = true\n\n'
        '[[board]]\nname = "loihi-lab"\ntarget = "loihi"\naddress = "ncl-ext-og-01"\n'
    )
    assert main(["hil", "list", "--inventory", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert "fake-loihi (loihi, lava): unavailable: a fake Loihi board" in out
    assert "unknown fault(s) melt" in out
    assert re.search(r"loihi-lab \(loihi, lava, ncl-ext-og-01\): unavailable: .*lava-loihi", out)


def _ring(steps_first: np.ndarray, start: int) -> np.ndarray:
    """(steps, neurons) in time order -> a sink's ring buffer (neurons, buffer) whose run began at ``start``."""
    ring = np.zeros((steps_first.shape[1], len(steps_first)), np.int64)
    for i, row in enumerate(steps_first):
        ring[:, (start + i) % len(steps_first)] = row
    return ring


@pytest.mark.parametrize("start", [0, 3])
def test_the_fake_links_faults_strike_the_earliest_spikes_and_the_named_steps(start):
    """What the sink faults do to a run's spikes, wherever in the ring buffer the run began."""
    spikes = np.array([[0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]])
    ring = _ring(spikes, start)

    def through(faults):
        out = fake_loihi.FakeLava(faults, VirtualClock())._at_sink(ring, start)
        return np.array([out[:, (start + i) % len(spikes)] for i in range(len(spikes))])

    np.testing.assert_array_equal(through({}), spikes)
    dropped = through({"drop": 2})
    assert dropped.sum() == spikes.sum() - 2
    assert (dropped[0, 1], dropped[1, 0], dropped[1, 1]) == (0, 0, 1)  # the first two, in time order
    doubled = through({"duplicate": 1})
    assert doubled[0, 1] == 2
    assert doubled.sum() == spikes.sum() + 1
    swapped = through({"reorder": 1})
    np.testing.assert_array_equal(swapped[[1, 2]], spikes[[2, 1]])
    np.testing.assert_array_equal(swapped[[0, 3, 4]], spikes[[0, 3, 4]])


def test_every_fault_is_documented_and_tested():
    tested = {
        "missing", "busy", "kind", "sdk_version", "reject", "drop", "duplicate", "reorder",
        "timeout_at", "timeout_times", "disconnect_at", "disconnect_for",
    }  # fmt: skip
    assert set(fake_loihi.FAULTS) == tested  # reject and the run faults: tests/lava/test_loihi_hil_against_lava.py
    assert LavaDevice.faults is fake_loihi.FAULTS
