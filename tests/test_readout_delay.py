"""The readout delay (neurodeploy.readout): chosen at compile time, recorded in the manifest and report, applied by
the emulation driver in the modes a target names, checked against a per-step average taken by hand."""

import json
from pathlib import Path

import numpy as np
import pytest

from neurodeploy import compile_model, emulate_artifact, readout_calibration
from neurodeploy.artifact import load_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import ArtifactError, DataError
from neurodeploy.readout import readout_skip
from neurodeploy.readout_calibration import CALIBRATION_STEPS, CANDIDATES
from neurodeploy.simulate import simulate

ROOT = Path(__file__).resolve().parents[1] / "examples"
MODEL = ROOT / "mnist" / "mnist_cnn.onnx"


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(ROOT / "mnist" / "test_images.npz")
    return data["x"][:48].astype(np.float32), data["y"][:48]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    calibration = load_calibration(str(ROOT / "mnist" / "calibration.npz"))
    return compile_model(MODEL, "reference", tmp_path_factory.mktemp("d") / "a", calibration=calibration)


def test_skip_is_the_delay_at_most_half_the_run() -> None:
    assert [readout_skip(6, t) for t in (1, 2, 3, 4, 8, 12, 13, 64)] == [0, 1, 1, 2, 4, 6, 6, 6]
    assert readout_skip(0, 64) == 0


def test_auto_delay_is_calibrated_recorded_and_the_best_agreement(artifact) -> None:
    entry = artifact.manifest["outputs"][0]["readout_delay"]
    assert entry["source"].startswith("auto: calibrated on 128 samples")
    assert entry["modes"] == ["snn"]
    assert entry["steps"] > 0  # the bundled CNN fills slowly: the delay is measured, not assumed
    assert f"min({entry['steps']}, T // 2)" in artifact.manifest["outputs"][0]["readout"]
    report = json.loads((artifact.root / "report.json").read_text())["readout_delay"]
    table = report["calibration"]
    assert table["steps"] == list(CALIBRATION_STEPS)
    means = {row["delay"]: np.mean(row["percent"]) for row in table["agreement_with_ann_percent"]}
    assert sorted(means) == sorted(CANDIDATES)
    best = max(means.values())
    assert means[entry["steps"]] == best
    assert all(d >= entry["steps"] for d, m in means.items() if m == best)  # ties go to the smaller delay


@pytest.mark.parametrize("steps", [5, 8, 16])
def test_delayed_readout_equals_the_mean_of_the_output_over_the_late_steps_by_hand(artifact, images, steps) -> None:
    """The independent reference: the float SNN's output recorded at every step (``observe``), averaged over steps
    skip+1..T by hand."""
    x, _ = images
    delay = artifact.manifest["outputs"][0]["readout_delay"]["steps"]
    skip = readout_skip(delay, steps)
    assert skip > 0
    graph = artifact.read_graph("snn")
    out = graph.outputs[0]
    per_step: list[np.ndarray] = []
    simulate(graph, {next(iter(graph.inputs)): x}, steps, observe=lambda v, a: per_step.append(a) if v == out else 0)
    assert len(per_step) == steps
    by_hand = np.mean(np.stack(per_step[skip:]).astype(np.float64), axis=0)
    result = emulate_artifact(artifact, x, steps=steps)
    assert result.readout_delay == delay
    np.testing.assert_allclose(result.outputs, by_hand, rtol=1e-6, atol=1e-6)
    plain = np.mean(np.stack(per_step).astype(np.float64), axis=0)
    assert not np.allclose(result.outputs, plain, atol=1e-3)


def test_checkpoints_read_like_separate_runs_and_extra_marks_stay_hidden(artifact, images) -> None:
    x, _ = images
    result = emulate_artifact(artifact, x, steps=16, checkpoints=(8, 12))
    assert sorted(result.checkpoints) == sorted(result.checkpoint_spikes) == [8, 12]
    for t in (8, 12):
        np.testing.assert_allclose(result.checkpoints[t], emulate_artifact(artifact, x, steps=t).outputs, atol=1e-5)
    # spikes still count every step run
    plain = emulate_artifact(artifact, x, steps=8)
    for name, spikes in plain.spikes.items():
        np.testing.assert_array_equal(result.checkpoint_spikes[8][name], spikes)


def test_option_zero_reads_every_step_and_a_fixed_delay_is_taken(tmp_path, images) -> None:
    x, _ = images
    calibration = load_calibration(str(ROOT / "mnist" / "calibration.npz"), 64)
    off = compile_model(
        MODEL, "reference", tmp_path / "off", calibration=calibration, target_options={"readout_delay": "0"}
    )
    assert off.manifest["outputs"][0]["readout_delay"]["steps"] == 0
    assert off.manifest["outputs"][0]["readout"] == "mean over time steps"
    graph = off.read_graph("snn")
    sim = simulate(graph, {next(iter(graph.inputs)): x}, 8)
    result = emulate_artifact(off, x, steps=8)
    np.testing.assert_array_equal(result.outputs, sim.outputs[graph.outputs[0]])
    assert result.readout_delay == 0
    fixed = compile_model(
        MODEL, "reference", tmp_path / "f", calibration=calibration, target_options={"readout_delay": "3"}
    )
    assert fixed.manifest["outputs"][0]["readout_delay"] == {
        "steps": 3,
        "source": "target option readout_delay",
        "skip": "min(steps, T // 2)",
        "modes": ["snn"],
    }


@pytest.mark.parametrize("value", ["-1", "1001", "soon", "2.5"])
def test_a_bad_option_is_refused_naming_it(tmp_path, value) -> None:
    with pytest.raises(DataError, match=r"readout_delay must be auto or a whole number of steps 0\.\.1000"):
        compile_model(MODEL, "reference", tmp_path / "x", target_options={"readout_delay": value})
    assert not (tmp_path / "x").exists()


def test_no_calibration_and_windowed_neurons_keep_delay_zero(tmp_path) -> None:
    plain = compile_model(MODEL, "reference", tmp_path / "a")
    assert plain.manifest["outputs"][0]["readout_delay"]["source"] == "auto: no calibration data"
    qcfs = compile_model(ROOT / "mnist_qcfs" / "mnist_qcfs.onnx", "reference", tmp_path / "q")
    entry = qcfs.manifest["outputs"][0]["readout_delay"]
    assert entry["steps"] == 0
    assert entry["source"].startswith("auto: the readout already waits a pipeline fill")


def test_too_few_samples_or_too_large_a_network_keep_delay_zero(tmp_path, monkeypatch) -> None:
    few = load_calibration(str(ROOT / "mnist" / "calibration.npz"), 8)
    artifact = compile_model(MODEL, "reference", tmp_path / "few", calibration=few)
    entry = artifact.manifest["outputs"][0]["readout_delay"]
    assert entry["steps"] == 0
    assert entry["source"] == (
        "auto: not calibrated (8 calibration samples; it needs 32); set the target option readout_delay=N"
    )
    monkeypatch.setattr(readout_calibration, "BUDGET", 10**9)
    enough = load_calibration(str(ROOT / "mnist" / "calibration.npz"), 64)
    artifact = compile_model(MODEL, "reference", tmp_path / "big", calibration=enough)
    assert (
        "MACs per step (budget 1e+09 for 32 samples of 64 steps)"
        in (artifact.manifest["outputs"][0]["readout_delay"]["source"])
    )
    monkeypatch.setattr(readout_calibration, "BUDGET", 64 * 40 * 1_924_992)  # the bundled CNN's MACs: 40 samples fit
    artifact = compile_model(MODEL, "reference", tmp_path / "fit", calibration=enough)
    assert "calibrated on 40 samples" in artifact.manifest["outputs"][0]["readout_delay"]["source"]


def test_the_ann_mode_takes_no_delay(artifact, images) -> None:
    x, _ = images
    assert emulate_artifact(artifact, x, mode="ann").readout_delay == 0


@pytest.mark.parametrize("bad", [-1, 1001, "4", True, 2.0])
def test_a_manifest_with_a_bad_delay_is_refused_at_load(artifact, tmp_path, bad) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact.root, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["outputs"][0]["readout_delay"]["steps"] = bad
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="readout_delay"):
        load_artifact(copy)
