"""The ``spinnaker`` target end to end: the bundled MNIST CNN planned for sPyNNaker (thresholds, shifts, words),
written as a netlist and read back, the weights sPyNNaker's host would round to the same words, bad artifacts
refused, and the emulated accuracy next to the float SNN."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import s1615, spinnaker

from neurodeploy import compile_model, emulate_artifact, load_artifact, load_calibration
from neurodeploy.errors import ArtifactError, DataError
from neurodeploy.readout import recorded_delay

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def artifact(mnist_spinnaker):
    return mnist_spinnaker


@pytest.fixture(scope="module")
def netlist(artifact):
    return spinnaker.load(artifact)


def test_the_netlist_holds_the_network_sPyNNaker_would_build(artifact, netlist):
    doc = json.loads((artifact.root / spinnaker.DESCRIPTION).read_text())
    assert [p["role"] for p in doc["populations"]] == ["input", "hidden", "hidden", "readout"]
    assert all(p["cell"] == "IF_curr_delta" and p["parameters"]["tau_refrac"] == 0 for p in doc["populations"])
    assert doc["delay"] == netlist.delay == 3
    for p in netlist.populations:
        # the shift is what sPyNNaker computes from max_expected_summed_weight
        assert p.shifts == tuple(s1615.ring_buffer_shift(a) for a in p.max_summed)
        assert p.threshold == 2.0 ** round(np.log2(p.threshold))
        assert p.threshold <= 1
    for q in netlist.projections:
        assert q.delay == 1
        assert len(q.words)
        assert q.words.min() > 0
        post = netlist.populations[q.post]
        # no slot can saturate: one receptor's words into one neuron sum below 2**16 even if every input spikes
        summed = np.bincount(q.post_index, q.words.astype(np.float64), minlength=post.size)
        assert summed.max() < 1 << 16


def test_written_weights_round_back_to_the_same_words_on_the_host(artifact, netlist):
    """The netlist's weight of a synapse is word * 2**(shift - 15) nA; sPyNNaker's host rounding of that weight
    (rint(|w| * 2**(15 - shift))) gives the word again, so the board holds what the emulator runs."""
    for q in netlist.projections:
        shift = netlist.populations[q.post].shifts[spinnaker.RECEPTORS.index(q.receptor)]
        weights = q.words.astype(np.float64) * 2.0 ** (shift - 15)
        again = s1615.weight_words(weights, shift)
        np.testing.assert_array_equal(again.words, q.words)
        assert again.n_zeroed == again.n_wrapped == 0


def test_conversion_with_another_reset_is_refused():
    with pytest.raises(DataError, match="reset=zero"):
        compile_model(EXAMPLE / "mnist_cnn.onnx", "spinnaker", conversion="reset=subtract")


def _tampered(artifact, tmp_path, edit):
    """A copy of the artifact whose netlist ``edit`` changed, listed again in the manifest (so that the netlist's
    own checks, not the checksum, meet the change)."""
    root = tmp_path / "t"
    shutil.copytree(artifact.root, root)
    doc = json.loads((root / spinnaker.DESCRIPTION).read_text())
    edit(doc)
    data = json.dumps(doc).encode()
    (root / spinnaker.DESCRIPTION).write_bytes(data)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][spinnaker.DESCRIPTION] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["projections"][0].update(post="nowhere"), "names no population"),
        (lambda d: d["projections"][0].update(shift=9), "shift"),
        (lambda d: d["populations"][1].update(size=3), "size"),
        (lambda d: d["populations"][0]["parameters"].update(tau_m="x"), "tau_m"),
        (lambda d: d["readout"].update(population="nowhere"), "readout"),
        (lambda d: d["projections"][0].update(delay_ticks=0), "delay_ticks"),
    ],
    ids=["post", "shift", "size", "parameter", "readout", "delay"],
)
def test_a_tampered_netlist_is_refused_naming_the_field(artifact, tmp_path, edit, message):
    root = _tampered(artifact, tmp_path, edit)
    with pytest.raises(ArtifactError, match=message):
        spinnaker.load(load_artifact(root))


def test_indices_out_of_range_are_refused(netlist, tmp_path):
    netlist.projections[0].pre_index = netlist.projections[0].pre_index.copy()
    netlist.projections[0].pre_index[0] = netlist.populations[0].size
    folder = tmp_path / "n"
    folder.mkdir()
    spinnaker.save(netlist, folder)
    with pytest.raises(ArtifactError, match="pre_index"):
        spinnaker.load(folder)


def test_emulation_follows_the_float_snn_it_was_converted_to(artifact, tmp_path):
    """The bundled test images through the spinnaker emulator and through the reference target's float SNN with
    the same conversion (reset to zero): the leak (0.1% per tick), the 16-bit words and the s16.15 state change
    few predictions and barely move the spike counts. Both read with the artifact's readout delay. Measured on
    1000 MNIST test images, read from step 0: 36.4 / 71.3 / 94.3 / 97.0% at T = 16 / 32 / 64 / 128 against the
    float SNN's 36.7 / 70.9 / 93.9 / 96.9%; with the delay (D = 6) the spinnaker target gives 98.2 / 98.3 / 98.2 /
    97.8%."""
    x = np.load(EXAMPLE / "test_images.npz")["x"][:48].astype(np.float32)
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"), 64)
    reference = compile_model(  # read as the spinnaker artifact reads: the same readout delay
        EXAMPLE / "mnist_cnn.onnx",
        "reference",
        tmp_path / "ref",
        calibration=calibration,
        conversion="reset=zero",
        target_options={"readout_delay": str(recorded_delay(artifact.manifest))},
    )
    chip = emulate_artifact(artifact, x, steps=48, checkpoints=(24,))
    floats = emulate_artifact(reference, x, steps=48, checkpoints=(24,))
    assert np.mean(chip.predictions == floats.predictions) >= 0.9
    for c in (24,):
        same = np.mean(chip.checkpoints[c].argmax(axis=1) == floats.checkpoints[c].argmax(axis=1))
        assert same >= 0.8
    for name, spikes in floats.spikes.items():
        assert abs(chip.spikes[name].sum() / spikes.sum() - 1) < 0.02, name
    # SynOps: the same input count; a population's within 3% (its spikes, and weights the rounding made 0)
    assert set(chip.synops) == set(floats.synops)
    for name, ops in floats.synops.items():
        if name in floats.spikes:
            assert abs(chip.synops[name].sum() / ops.sum() - 1) < 0.03, name
        else:
            np.testing.assert_array_equal(chip.synops[name], ops)
    assert set(chip.checkpoint_synops) == {24}
    assert chip.outputs.shape == floats.outputs.shape == (48, 10)
