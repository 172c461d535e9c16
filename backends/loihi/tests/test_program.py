"""The Loihi program an artifact holds: written and read back unchanged, byte-identical when compiled again, and
run by the emulator with T counted after the pipeline delay, so that it computes what the float SNN computes."""

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph, small_cnn
from loihi_mnist import CALIBRATION, MODEL, compiled, mnist_test_images
from neurodeploy_loihi.program import Program

from neurodeploy.errors import ArtifactError
from neurodeploy.simulate import simulate


def emit(graph, folder: Path, calibration: np.ndarray) -> Program:
    emit_graph(graph, folder, calibration)
    return Program.load(folder)


def test_program_files_round_trip_byte_for_byte(tmp_path: Path) -> None:
    artifact = compiled("subtract")
    program = Program.load(artifact.root)
    names = program.save(tmp_path)
    assert names == ["loihi.json", "loihi.npz", "host.json", "host.npz"]
    for name in names:
        assert (tmp_path / name).read_bytes() == (artifact.root / name).read_bytes(), name
    again = Program.load(tmp_path)
    x, _ = mnist_test_images()
    a, b = program.run(x[:4], 8), again.run(x[:4], 8)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name])


def test_compiling_twice_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    first = compiled("subtract")
    second = compile_model(MODEL, "loihi", tmp_path / "again", calibration=load_calibration(str(CALIBRATION)))
    files = sorted(p.name for p in first.root.iterdir())
    assert files == sorted(p.name for p in second.root.iterdir())
    assert "loihi.json" in files
    assert "loihi.npz" in files
    _match, mismatch, errors = filecmp.cmpfiles(first.root, second.root, files, shallow=False)
    assert (mismatch, errors) == ([], [])


def test_mnist_program_layout_and_pipeline_delay() -> None:
    artifact = compiled("subtract")
    program = Program.load(artifact.root)
    assert program.roles == ["input", "hidden", "hidden", "readout"]
    assert program.shapes == [(16, 28, 28), (32, 14, 14), (64, 7, 7), (10,)]
    assert [layer.shape for layer in program.network.layers] == [(28, 28, 16), (14, 14, 32), (7, 7, 64), (10,)]
    assert program.delay == 3  # three synapses: conv, conv, dense
    assert artifact.manifest["target"]["pipeline_delay"] == 3
    assert [layer.neuron.kind for layer in program.network.layers] == ["subtractive"] * 3 + ["lif"]
    report = json.loads((artifact.root / "report.json").read_text())["target"]
    assert report["pipeline_delay"] == 3
    assert report["netx"]["written"] is False
    for entry in report["quantization"]:
        measured = entry["measured"]
        assert measured["u_folds"] == 0, entry["name"]
        # the input population's v saturates where the host current is negative: those neurons never fire,
        # saturated or not (the current is constant); every other layer must stay within 24 bits
        assert measured["v_saturations"] == 0 or entry["role"] == "input", entry["name"]


@pytest.mark.parametrize(("reset", "agree", "apart"), [("subtract", 0.95, 1), ("zero", 0.95, 4)])
def test_emulated_program_matches_the_float_snn_counting_t_after_the_delay(
    tmp_path: Path, reset: str, agree: float, apart: int
) -> None:
    """The integer network computes the float SNN's spikes: most neurons fire exactly as often in T steps (8-bit
    weights move a few by a spike; after a reset to zero, a neuron needs one integer unit more than the float
    one, so those drift further) and the outputs agree to a few percent of their range. A program that counted
    T from its first Loihi step, not after each population's delay, would lose the last spikes of every layer
    and fail this."""
    graph = small_cnn(seed=4, reset=reset)
    x = np.random.default_rng(5).random((16, 1, 8, 8)).astype(np.float32)
    program = emit(graph, tmp_path, x)
    steps = 24
    ours = program.run(x, steps, counts=True)
    reference = simulate(graph, {"x": x}, steps)
    np.testing.assert_allclose(ours.counts["if1"], reference.counts["if1"], atol=1)  # host current, rounded
    ref = reference.counts["if2"]
    assert ref.mean() > 3  # the layer is active, so the comparison means something
    same = np.mean(ours.counts["if2"] == ref)
    assert same >= agree, f"if2: {same:.3f} of neurons fire as often as in the float SNN"
    assert np.abs(ours.counts["if2"] - ref).max() <= apart
    want = reference.outputs["logits"]
    assert np.abs(ours.outputs - want).max() <= 0.05 * np.abs(want).max()


def test_a_damaged_description_is_an_artifact_error_naming_the_file_layer_and_limit(tmp_path: Path) -> None:
    Program.load(compiled("subtract").root).save(tmp_path)
    doc = json.loads((tmp_path / "loihi.json").read_text())
    doc["version"] = 99
    (tmp_path / "loihi.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"loihi.json is not a neurodeploy-loihi v1 description"):
        Program.load(tmp_path)
    doc["version"] = 1
    del doc["layers"][1]["neuron"]["vth"]
    (tmp_path / "loihi.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"loihi.json: layers\[1\].neuron.vth: missing; expected an integer"):
        Program.load(tmp_path)
    doc["layers"][1]["neuron"]["vth"] = 1 << 17  # one past the 17-bit threshold mantissa
    (tmp_path / "loihi.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"Relu'\): neuron: vth must be integers in \[0, 131071\], got 131072"):
        Program.load(tmp_path)
