"""Input encodings: direct (constant, computed once), rate (seeded Bernoulli spikes) and events (frames)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_support import assert_one_line_error, run_cli, save_tiny

from neurodeploy import compile_model, emulate_artifact
from neurodeploy.backends.reference.backend import ReferenceBackend
from neurodeploy.compiler import artifact_encoding
from neurodeploy.encoding import RATE_BLOCK, Encoding
from neurodeploy.errors import DataError
from neurodeploy.ir import IF, Dense, Graph, TensorType
from neurodeploy.simulate import simulate


def one_if_layer(size: int = 3) -> Graph:
    """x -> identity Dense -> IF (threshold 1, v0 = 0): the IF sees exactly the step's input."""
    return Graph(
        "g",
        {"x": TensorType((size,))},
        ["s"],
        [
            Dense(name="fc", inputs=("x",), output="h", weight=np.eye(size, dtype=np.float32)),
            IF(name="n", inputs=("h",), output="s", threshold=np.float32(1.0), initial=0.0),
        ],
    )


def rate_steps(x: np.ndarray, steps: int, seed: int = 0, offset: int = 0) -> np.ndarray:
    stimulus = Encoding("rate", seed=seed, offset=offset).stimulus(x, steps)
    return np.stack([stimulus.at(t) for t in range(1, steps + 1)], axis=1)


# --- rate ------------------------------------------------------------------------------------------------------


def test_rate_mean_converges_to_the_input_and_spikes_have_amplitude_max_times_sign():
    x = np.random.default_rng(3).uniform(-1, 1, (4, 50)).astype(np.float32)
    x[0, :5] = 0.0
    spikes = rate_steps(x, 4000)
    peak = np.abs(x).max(axis=1)
    for i in range(len(x)):  # every value is 0 or +-max|x| of its own sample
        values = set(np.unique(np.abs(spikes[i])).tolist())
        assert values <= {0.0, float(peak[i])}
    assert not spikes[0, :, :5].any()  # zero inputs never spike
    # the estimate of x has standard deviation <= max|x| / (2 sqrt(T)) ~ 0.008
    np.testing.assert_allclose(spikes.mean(axis=1), x, atol=0.04)
    assert np.abs(spikes.mean(axis=1) - x).mean() < 0.01


def test_rate_spikes_are_reproducible_with_the_seed_and_differ_with_another():
    x = np.random.default_rng(0).random((3, 20), dtype=np.float32)
    first, again, other = rate_steps(x, 40, seed=7), rate_steps(x, 40, seed=7), rate_steps(x, 40, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # prefixes agree: a shorter run draws the same spikes for its steps
    np.testing.assert_array_equal(rate_steps(x, 5, seed=7), first[:, :5])


def test_rate_spikes_depend_on_the_sample_position_not_on_the_chunking():
    x = np.random.default_rng(1).random((5, 12), dtype=np.float32)
    whole = rate_steps(x, 2 * RATE_BLOCK + 3)
    tail = rate_steps(x[2:], 2 * RATE_BLOCK + 3, offset=2)
    np.testing.assert_array_equal(tail, whole[2:])
    # the same image at another position gets another stream
    same = np.repeat(x[:1], 2, axis=0)
    streams = rate_steps(same, 30)
    assert not np.array_equal(streams[0], streams[1])


def test_rate_encoding_through_the_simulator_reads_out_the_input_rate():
    x = np.array([[0.2, 0.5, 1.0]], np.float32)  # max 1: p = x, amplitude 1, the IF passes each spike on
    sim = simulate(one_if_layer(), {"x": x}, 2000, encoding=Encoding("rate", seed=1))
    np.testing.assert_allclose(sim.outputs["s"], x, atol=0.04)
    assert sim.outputs["s"][0, 2] == 1.0


# --- direct ----------------------------------------------------------------------------------------------------


def test_direct_input_computes_time_invariant_values_once(monkeypatch):
    calls = {"n": 0}
    original = Dense.forward

    def counting(self, xs):
        calls["n"] += 1
        return original(self, xs)

    monkeypatch.setattr(Dense, "forward", counting)
    x = np.array([[0.25, 0.5, 1.0]], np.float32)
    sim = simulate(one_if_layer(), {"x": x}, 16)
    assert calls["n"] == 1
    np.testing.assert_array_equal(sim.outputs["s"], [[4 / 16, 8 / 16, 16 / 16]])
    calls["n"] = 0
    simulate(one_if_layer(), {"x": x}, 16, encoding=Encoding("rate"))
    assert calls["n"] == 16  # spikes change every step: nothing is constant


# --- events ----------------------------------------------------------------------------------------------------


FRAMES = np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]], np.float32)  # (batch 1, 3 frames, 3)


def test_events_feed_frames_in_order():
    # v0 = 0, threshold 1: step 1 -> v = [1, 0, .5]: spike [1, 0, 0]; step 2 -> v = [0, 1, 1]: spike [0, 1, 1];
    # step 3 -> v = [0, 0, 1]: spike [0, 0, 1]. Running the frames backwards spikes differently.
    sim = simulate(one_if_layer(), {"x": FRAMES}, 3, checkpoints=(1, 2, 3), encoding=Encoding("events"))
    np.testing.assert_array_equal(sim.checkpoints[1]["s"], [[1, 0, 0]])
    np.testing.assert_array_equal(sim.checkpoints[2]["s"], [[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(sim.outputs["s"], [[1 / 3, 1 / 3, 2 / 3]])
    np.testing.assert_array_equal(sim.counts["n"], [[1, 1, 2]])
    backwards = simulate(
        one_if_layer(), {"x": FRAMES[:, ::-1].copy()}, 3, checkpoints=(1,), encoding=Encoding("events")
    )
    np.testing.assert_array_equal(backwards.checkpoints[1]["s"], [[0, 0, 1]])


def test_events_longer_than_the_frames_is_an_error_unless_padded():
    with pytest.raises(DataError, match="3 frame"):
        simulate(one_if_layer(), {"x": FRAMES}, 5, encoding=Encoding("events"))
    sim = simulate(one_if_layer(), {"x": FRAMES}, 5, encoding=Encoding("events", pad=True))
    np.testing.assert_array_equal(sim.counts["n"], [[1, 1, 2]])  # zero input after frame 3: no more spikes
    np.testing.assert_allclose(sim.outputs["s"], [[1 / 5, 1 / 5, 2 / 5]])


def test_events_inputs_must_have_a_frame_axis():
    with pytest.raises(DataError, match=r"\(batch, frames, 3\)"):
        Encoding("events").check_inputs(one_if_layer(), np.zeros((2, 3), np.float32))


# --- description and manifest ----------------------------------------------------------------------------------


def test_describe_and_manifest_values_round_trip():
    for encoding in (Encoding(), Encoding("rate", seed=5), Encoding("events", pad=True)):
        assert Encoding.from_manifest(encoding.manifest_value()) == encoding
        assert Encoding.from_manifest(encoding.describe()) == encoding
    assert Encoding().manifest_value() == "direct"
    assert Encoding("rate", seed=5).describe() == {"kind": "rate", "seed": 5}
    with pytest.raises(DataError, match="unknown input encoding"):
        Encoding("poisson")
    with pytest.raises(DataError, match="seed"):
        Encoding("rate", seed=-1)


def test_compile_records_the_encoding_and_emulate_uses_it(tmp_path):
    model = save_tiny(tmp_path / "models")
    artifact = compile_model(model, "reference", tmp_path / "art", encoding=Encoding("rate", seed=3))
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["inputs"][0]["encoding"] == {"kind": "rate", "seed": 3}
    assert artifact_encoding(artifact) == Encoding("rate", seed=3)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    recorded = emulate_artifact(artifact, x, steps=6)
    assert recorded.encoding == {"kind": "rate", "seed": 3}
    explicit = emulate_artifact(artifact, x, steps=6, encoding=Encoding("rate", seed=3))
    np.testing.assert_array_equal(recorded.outputs, explicit.outputs)
    assert emulate_artifact(artifact, x, steps=6, encoding=Encoding()).encoding == {"kind": "direct"}
    # chunking does not change the spikes
    chunked = ReferenceBackend().emulate(artifact, x, steps=6, encoding=Encoding("rate", seed=3), batch_size=2)
    np.testing.assert_array_equal(chunked.outputs, recorded.outputs)
    assert {k: v.tolist() for k, v in chunked.synops.items()} == {k: v.tolist() for k, v in recorded.synops.items()}


def test_cli_compile_and_emulate_with_events(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", model, "-t", "reference", "-o", out, "--encoding", "events", "-q")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0]["encoding"] == {"kind": "events", "pad": False}
    frames = np.random.default_rng(2).random((2, 4, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "frames.npy", frames)
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "frames.npy", "--steps", "4")
    assert result.code == 0, result.err
    assert "(snn, 4 steps, events input)" in result.out
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "frames.npy", "--steps", "6")
    assert_one_line_error(result, "4 frame(s)", "--pad-events")
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "frames.npy", "--steps", "6", "--pad-events")
    assert result.code == 0, result.err
    # the ANN sees the mean of the frames
    result = run_cli(
        capsys, "emulate", out, "--input", tmp_path / "frames.npy", "--mode", "ann", "-o", tmp_path / "y.npz"
    )
    assert result.code == 0, result.err
    direct = emulate_artifact(out, frames.mean(axis=1), mode="ann", encoding=Encoding())
    with np.load(tmp_path / "y.npz") as y:
        np.testing.assert_allclose(y["outputs"], direct.outputs, rtol=1e-6)
    # --encoding overrides the artifact's
    np.save(tmp_path / "x.npy", frames[:, 0])
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "x.npy", "--steps", "3", "--encoding", "rate")
    assert result.code == 0, result.err
    assert "rate input, seed 0" in result.out
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "x.npy", "--steps", "3", "--seed", "2")
    assert_one_line_error(result, "--seed applies to the rate encoding", "--encoding rate")


def test_cli_compile_records_rate_with_its_seed(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    args = ["compile", model, "-t", "reference", "-q", "--encoding", "rate", "--seed", "9"]
    assert run_cli(capsys, *args, "-o", tmp_path / "a").code == 0
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["inputs"][0]["encoding"] == {
        "kind": "rate",
        "seed": 9,
    }
    assert run_cli(capsys, *args, "-o", tmp_path / "b").code == 0
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    result = run_cli(capsys, "compile", model, "-t", "reference", "-q", "--pad-events", "-o", tmp_path / "c")
    assert_one_line_error(result, "--pad-events applies to the events encoding")
