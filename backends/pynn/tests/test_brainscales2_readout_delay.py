"""The brainscales2 target's readout delay (``-X readout_delay``, :mod:`neurodeploy.readout`): the output after c
steps leaves out the first s = min(D, c // 2). The membrane readout is a leaky integrator, so the host reads its
V after s and after c steps and takes away what the leak left of the first (e^(-(c - s) / tau_m) of it) before
normalizing over c - s steps (:func:`neurodeploy_pynn.brainscales2.membrane_readout`); a spike readout counts the
spikes of steps s + 1 .. c. The emulator, the hardware-in-the-loop adapter and the NEST check read it alike."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import brainscales2 as bss2
from neurodeploy_pynn import pynn_check

from neurodeploy import compile_model, emulate_artifact, load_calibration
from neurodeploy.ir import Dense, Graph, Scale, TensorType
from neurodeploy.ir.neurons import IF
from neurodeploy.readout import recorded_delay

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"
MODEL = ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx"
DELAY = 4


def _compile(folder: Path, delay: str, target: str = "brainscales2", **options):
    calibration = load_calibration(str(MNIST / "calibration.npz"), 128)
    return compile_model(
        MODEL, target, folder, calibration=calibration, target_options={"readout_delay": delay}, **options
    )


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("bss2-delay") / "a", str(DELAY))


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    with np.load(MNIST / "test_images.npz") as data:
        return data["x"], data["y"]


def test_the_delayed_membrane_readout_takes_away_what_the_leak_left_of_the_skipped_steps(delayed, images):
    """Hand-derived from the undelayed readout: out_c = (V_c - v_rest) / (Θ N_c), so the delayed one is
    (out_c N_c - e^(-(c - s) / tau_m) out_s N_s) / N_(c - s), at every checkpoint and with s capped at half the
    run; the spikes are those of every step (the delay changes what the host reads, not what the chip runs)."""
    netlist = bss2.load(delayed)
    assert netlist.readout["kind"] == "membrane"
    tau_m = netlist.populations[netlist.index(netlist.readout["population"])].parameters["tau_m"]
    x = images[0][:6]
    plain = bss2.run(netlist, x, 24, checkpoints=(4, 12))
    got = bss2.run(netlist, x, 24, checkpoints=(6, 12), readout_delay=DELAY)
    # a run of 6 steps: s = min(4, 3) = 3, its V read within that run (a longer run's readout has also had the
    # next step's bias spike when it reads step 6, as the chip would)
    plain_short = bss2.run(netlist, x, 6, checkpoints=(3,))
    short = bss2.run(netlist, x, 6, readout_delay=DELAY)["outputs"]
    cases = [
        (12, 4, got["checkpoints"][12], plain["checkpoints"][12], plain["checkpoints"][4]),
        (24, 4, got["outputs"], plain["outputs"], plain["checkpoints"][4]),
        (6, 3, short, plain_short["outputs"], plain_short["checkpoints"][3]),
    ]
    norm = bss2.readout_norm
    for c, s, value, end, early in cases:
        late = end.astype(np.float64) * norm(c) - math.exp(-(c - s) / tau_m) * early.astype(np.float64) * norm(s)
        np.testing.assert_allclose(value, late / norm(c - s), rtol=2e-4, atol=2e-5)
        assert not np.allclose(value, end, rtol=1e-3, atol=1e-3)
    assert {k: v.tolist() for k, v in got["spikes"].items()} == {k: v.tolist() for k, v in plain["spikes"].items()}


def test_a_spike_readout_counts_the_spikes_after_the_skipped_steps():
    """A netlist whose readout counts the last population's spikes (300 signed sources: no readout population
    fits): the delayed readout is (c out_c - s out_s) / (c - s) of the undelayed ones."""
    w = np.full((300, 20), 0.25, np.float32)
    w[1::2] = -0.25
    ops = [
        IF(name="in", inputs=("x",), output="s0", threshold=np.float32(1), reset="zero"),
        Dense(name="d1", inputs=("s0",), output="a1", weight=w),
        IF(name="h1", inputs=("a1",), output="s1", threshold=np.float32(1), reset="zero"),
        Scale(name="out", inputs=("s1",), output="y", value=np.float32(2.0)),
    ]
    graph = Graph("t", {"x": TensorType((20,))}, ["y"], ops)
    graph.verify()
    netlist = bss2.plan(graph)
    assert netlist.readout["kind"] == "spikes"
    x = np.random.default_rng(3).random((4, 20)).astype(np.float32)
    plain = bss2.run(netlist, x, 16, checkpoints=(4,))
    got = bss2.run(netlist, x, 16, readout_delay=DELAY)["outputs"].astype(np.float64)
    expected = (16 * plain["outputs"].astype(np.float64) - 4 * plain["checkpoints"][4].astype(np.float64)) / 12
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert plain["outputs"].any()


def test_the_artifact_records_its_delay_and_emulate_applies_it(delayed, images, tmp_path):
    """A fixed delay is recorded and applied; auto calibrates one on the calibration data (for this two-layer
    MLP, whose first steps carry information, it chooses no delay) and the report keeps the table."""
    assert recorded_delay(delayed.manifest) == DELAY
    x = images[0][:8]
    result = emulate_artifact(delayed, x, steps=16)
    assert result.readout_delay == DELAY
    expected = bss2.run(bss2.load(delayed), x, 16, readout_delay=DELAY)["outputs"]
    np.testing.assert_array_equal(np.asarray(result.outputs).reshape(expected.shape), expected)
    auto = _compile(tmp_path / "auto", "auto")
    entry = auto.manifest["outputs"][0]["readout_delay"]
    assert entry["source"].startswith("auto: calibrated on")
    assert entry["modes"] == ["snn"]
    assert recorded_delay(auto.manifest) == 0


def test_the_delayed_readout_follows_the_float_snn_with_the_same_delay(delayed, images, tmp_path):
    """The 256 bundled test images at T = 16 and 32 with D = 4 on the chip model and on the reference target's
    float SNN (reset to zero, as the chip): accuracy within 2 points, 90% of the predictions alike."""
    reference = _compile(tmp_path / "ref", str(DELAY), target="reference", conversion="reset=zero")
    x, y = images
    chip = emulate_artifact(delayed, x, steps=32, checkpoints=(16,))
    float_snn = emulate_artifact(reference, x, steps=32, checkpoints=(16,))
    assert chip.readout_delay == float_snn.readout_delay == DELAY
    for t in (16, 32):
        ours = np.asarray(chip.outputs if t == 32 else chip.checkpoints[t]).reshape(len(x), -1).argmax(axis=1)
        theirs = np.asarray(float_snn.outputs if t == 32 else float_snn.checkpoints[t]).reshape(len(x), -1)
        theirs = theirs.argmax(axis=1)
        assert abs((ours == y).mean() - (theirs == y).mean()) <= 0.02, t
        assert (ours == theirs).mean() >= 0.9, t


def test_the_hil_adapter_reads_the_delayed_readout_as_the_emulator(delayed, images):
    """The nominal fake chip (no mismatch, no noise) through the pynn-brainscales adapter: its readout, read from
    the CADC samples after s and T steps, equals the model's reference and the emulator's delayed readout."""
    from neurodeploy_pynn.brainscales2_device import BrainScaleS2Device

    from neurodeploy.encoding import Encoding
    from neurodeploy.hil.device import Board, VirtualClock

    board = Board("fake", "brainscales2", "", "", settings={}, fake=True, faults={"mismatch": 0, "noise": 0})
    device = BrainScaleS2Device(board, VirtualClock())
    x = images[0][:3]
    steps = 12
    prepared = device.check(delayed, x, steps, Encoding())
    assert device.readout_delay == DELAY
    expected = device.reference(prepared, steps)
    emulated = bss2.run(bss2.load(delayed), x, steps, readout_delay=DELAY)["outputs"]
    device.open()
    device.load()
    try:
        for i in range(len(x)):
            got = device.run_sample(prepared, i, steps)
            np.testing.assert_allclose(got.outputs, expected[i].outputs, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(got.outputs, emulated[i], rtol=1e-5, atol=1e-5)
    finally:
        device.close()


def test_nest_reads_the_delayed_readout_as_the_emulator(delayed, images, pynn_python):
    """The artifact's PyNN script in NEST (V after every step recorded): the delayed readout from V after s and
    T steps agrees with the emulator's, as the undelayed one does (``test_brainscales2_pynn.py``)."""
    x = images[0][:8]
    steps = 32
    emulated = bss2.run(bss2.load(delayed), x, steps, counts=True, readout_delay=DELAY)
    emulated["counts"] = {k: v.reshape(len(x), -1) for k, v in emulated["counts"].items()}
    simulated = pynn_check.simulate(delayed.root, x, steps, pynn_python, readout_delay=DELAY)
    result = pynn_check.compare(emulated, simulated)
    assert result["top_class_agreement"] == 1.0, result
    assert result["outputs_max_difference"] <= 0.03 * result["outputs_largest"], result
