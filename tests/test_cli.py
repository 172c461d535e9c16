"""The command line: compile, emulate and targets; exit codes 0 / 1 / 2; warnings and --debug tracebacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import plugin_support
import pytest
from cli_support import (
    BUNDLED_MODEL,
    CALIBRATION,
    TEST_IMAGES,
    TINY_CLASSES,
    assert_one_line_error,
    copy_bundled,
    load_test_images,
    run_cli,
    run_script,
    save_tiny,
)

from neurodeploy import __version__

CALIBRATION_WARNING = "pass --calibration for data-based normalization"


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def onnxruntime_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


# --- compile ---------------------------------------------------------------------------------------------------


def test_compile_then_emulate_npy_writes_outputs_of_shape_batch_by_classes(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", out)
    assert result.code == 0, result.err
    assert f"compiled tiny.onnx for reference -> {out}/" in result.out
    assert (out / "manifest.json").is_file()

    x = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    y_path = tmp_path / "y.npz"
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "x.npy", "--steps", "8", "--output", y_path)
    assert result.code == 0, result.err
    assert "emulated 5 sample(s) on reference (snn, 8 steps)" in result.out
    assert str(y_path) in result.out
    with np.load(y_path) as y:
        assert y["outputs"].shape == (5, TINY_CLASSES)
        assert y["outputs"].dtype == np.float32
        np.testing.assert_array_equal(y["predictions"], y["outputs"].argmax(axis=1))
        assert int(y["steps"]) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "models", "x.npy", "y.npz"]  # no temporary left


def test_compile_without_output_writes_stem_target_folder_in_cwd_and_warns_without_calibration(
    tmp_path, capsys, monkeypatch
):
    copy_bundled(tmp_path, "model.onnx")
    monkeypatch.chdir(tmp_path)
    result = run_cli(capsys, "compile", "model.onnx", "--target", "reference")
    assert result.code == 0, result.err
    assert (tmp_path / "model-reference" / "manifest.json").is_file()
    assert "model-reference/" in result.out
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.err
    assert CALIBRATION_WARNING in warnings[0]
    assert manifest_of(tmp_path / "model-reference")["options"]["calibration"] is None


def test_calibration_file_removes_the_warning_and_is_recorded(tmp_path, capsys):
    model = copy_bundled(tmp_path / "models")
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", model, "-t", "reference", "--calibration", CALIBRATION, "-o", out)
    assert result.code == 0, result.err
    assert "warning" not in result.err
    assert CALIBRATION_WARNING not in result.err
    calibration = manifest_of(out)["options"]["calibration"]
    assert calibration["source"] == "calibration.npz[:256]"
    assert calibration["samples"] == 256
    assert manifest_of(out)["warnings"] == []


def test_calibration_samples_limits_what_is_used(tmp_path, capsys):
    model = copy_bundled(tmp_path / "models")
    out = tmp_path / "art"
    args = ["compile", model, "-t", "reference", "--calibration", CALIBRATION, "--calibration-samples", "32"]
    result = run_cli(capsys, *args, "-o", out)
    assert result.code == 0, result.err
    assert manifest_of(out)["options"]["calibration"]["samples"] == 32


def test_quiet_hides_the_calibration_warning(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    result = run_cli(capsys, "compile", model, "-t", "reference", "-o", tmp_path / "art", "-q")
    assert result.code == 0
    assert result.err == ""


def test_dynamic_spatial_dimensions_need_input_shape(tmp_path, capsys):
    model = save_tiny(tmp_path / "models", height="H", width="W")
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", out)
    error = assert_one_line_error(result, "'input'", "--input-shape")
    assert "dynamic" in error
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


@pytest.mark.parametrize(
    ("shape", "recorded"),
    [
        ("1,1,28,28", [1, 1, 28, 28]),
        ("input:N,1,28,28", {"input": [None, 1, 28, 28]}),
        ("1,28,28", [1, 28, 28]),  # per sample: the batch stays as the model has it
    ],
)
def test_input_shape_fixes_dynamic_dimensions(tmp_path, capsys, shape, recorded):
    model = save_tiny(tmp_path / "models", height="H", width="W")
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", model, "--target", "reference", "--input-shape", shape, "-o", out)
    assert result.code == 0, result.err
    manifest = manifest_of(out)
    assert manifest["inputs"][0]["name"] == "input"
    assert manifest["inputs"][0]["shape"] == [1, 28, 28]
    assert manifest["options"]["input_shapes"] == recorded


def test_input_shape_chooses_the_spatial_size(tmp_path, capsys):
    model = save_tiny(tmp_path / "models", height="H", width="W")
    out = tmp_path / "art"
    assert run_cli(capsys, "compile", model, "-t", "reference", "--input-shape", "1,1,12,20", "-o", out).code == 0
    assert manifest_of(out)["inputs"][0]["shape"] == [1, 12, 20]
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 12, 20), np.float32))
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz")
    assert result.code == 0, result.err
    with np.load(tmp_path / "y.npz") as y:
        assert y["outputs"].shape == (2, TINY_CLASSES)


def test_several_input_shapes_must_be_named(tmp_path, capsys):
    model = save_tiny(tmp_path / "models", height="H", width="W")
    shape = ["--input-shape", "1,1,28,28"]
    result = run_cli(capsys, "compile", model, "-t", "reference", *shape, *shape, "-o", tmp_path / "art")
    assert_one_line_error(result, "NAME:DIMS")
    assert not (tmp_path / "art").exists()


def test_input_shape_naming_an_unknown_input_is_an_error(tmp_path, capsys):
    model = save_tiny(tmp_path / "models", height="H", width="W")
    result = run_cli(
        capsys, "compile", model, "-t", "reference", "--input-shape", "image:1,1,28,28", "-o", tmp_path / "art"
    )
    assert_one_line_error(result, "image", "input")
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize(
    ("batch", "reshape"),
    [("N", None), (None, None), (1, None), (1, [1, -1]), (1, [1, 4]), ("N", [-1, 4])],
    ids=["named", "unnamed", "fixed-1", "fixed-1-reshape-1,-1", "fixed-1-reshape-1,4", "named-reshape--1,4"],
)
def test_batch_dimension_dynamic_or_fixed_just_works(tmp_path, capsys, batch, reshape):
    model = save_tiny(tmp_path / "models", batch=batch, reshape=reshape)
    out = tmp_path / "art"
    assert run_cli(capsys, "compile", model, "--target", "reference", "-o", out).code == 0
    assert manifest_of(out)["inputs"][0]["shape"] == [1, 28, 28]  # per sample: no batch recorded
    x = np.random.default_rng(7).random((7, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for mode in ("snn", "ann"):
        y_path = tmp_path / f"{mode}.npz"
        result = run_cli(capsys, "emulate", out, "-i", tmp_path / "x.npy", "--mode", mode, "-T", "4", "-o", y_path)
        assert result.code == 0, result.err
        assert f"emulated 7 sample(s) on reference ({mode}" in result.out
        with np.load(y_path) as y:
            assert y["outputs"].shape == (7, TINY_CLASSES)
    # the ANN emulation matches onnxruntime, one sample at a time (a fixed-batch model takes only batches of 1)
    expected = np.concatenate([onnxruntime_outputs(model, x[i : i + 1]) for i in range(len(x))])
    with np.load(tmp_path / "ann.npz") as y:
        np.testing.assert_allclose(y["outputs"], expected, rtol=1e-4, atol=1e-5)


def test_bundled_model_with_a_fixed_batch_of_1_takes_a_batch_of_7(tmp_path, capsys):
    model = onnx.load(BUNDLED_MODEL)
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, tmp_path / "fixed.onnx")
    out = tmp_path / "art"
    result = run_cli(
        capsys, "compile", tmp_path / "fixed.onnx", "-t", "reference", "--calibration", CALIBRATION, "-o", out
    )
    assert result.code == 0, result.err
    x, y = load_test_images()
    np.savez(tmp_path / "seven.npz", x=x[:7], y=y[:7])
    result = run_cli(capsys, "emulate", out, "-i", tmp_path / "seven.npz", "--mode", "ann", "-o", tmp_path / "y.npz")
    assert result.code == 0, result.err
    assert "accuracy 100.00% (7/7)" in result.out
    with np.load(tmp_path / "y.npz") as outputs:
        assert outputs["outputs"].shape == (7, 10)


def test_dump_ir_prints_the_graph_after_import_and_every_pass(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    result = run_cli(capsys, "compile", model, "-t", "reference", "--dump-ir", "-o", tmp_path / "art")
    assert result.code == 0
    assert result.out.startswith("// after import\n")
    assert "// after convert-to-snn" in result.out


# --- emulate ---------------------------------------------------------------------------------------------------


@pytest.fixture
def bundled_artifact(tmp_path, capsys) -> Path:
    out = tmp_path / "bundled"
    result = run_cli(capsys, "compile", BUNDLED_MODEL, "-t", "reference", "--calibration", CALIBRATION, "-o", out)
    assert result.code == 0, result.err
    return out


def test_emulate_npz_with_labels_prints_accuracy(bundled_artifact, tmp_path, capsys):
    y_path = tmp_path / "y.npz"
    args = ["emulate", bundled_artifact, "--input", TEST_IMAGES, "--steps", "16", "--limit", "12", "-o", y_path]
    result = run_cli(capsys, *args)
    assert result.code == 0, result.err
    match = re.search(r"accuracy (\d+\.\d\d)% \((\d+)/12\)", result.out)
    assert match, result.out
    _, labels = load_test_images()
    with np.load(y_path) as y:
        assert y["outputs"].shape == (12, 10)
        correct = int((y["outputs"].argmax(axis=1) == labels[:12]).sum())
    assert int(match[2]) == correct
    assert float(match[1]) == pytest.approx(100 * correct / 12, abs=0.01)


def test_emulate_npy_with_labels_option(bundled_artifact, tmp_path, capsys):
    x, labels = load_test_images()
    np.save(tmp_path / "x.npy", x[:20])
    np.save(tmp_path / "labels.npy", labels[:20])
    args = ["emulate", bundled_artifact, "-i", tmp_path / "x.npy", "--labels", tmp_path / "labels.npy"]
    result = run_cli(capsys, *args, "--mode", "ann")
    assert result.code == 0, result.err
    assert re.search(r"accuracy \d+\.\d\d% \(\d+/20\)", result.out), result.out


def test_emulate_npy_without_labels_prints_no_accuracy(bundled_artifact, tmp_path, capsys):
    x, _ = load_test_images()
    np.save(tmp_path / "x.npy", x[:3])
    result = run_cli(capsys, "emulate", bundled_artifact, "--input", tmp_path / "x.npy", "--steps", "4")
    assert result.code == 0, result.err
    # the bundled artifact's readout delay (6, chosen on its calibration data) leaves out min(6, 4 // 2) steps
    assert "emulated 3 sample(s) on reference (snn, 4 steps, read over steps 3..4)" in result.out
    assert "accuracy" not in result.out


def test_emulate_mode_ann_on_reference_matches_onnxruntime(bundled_artifact, tmp_path, capsys):
    y_path = tmp_path / "ann.npz"
    result = run_cli(capsys, "emulate", bundled_artifact, "--input", TEST_IMAGES, "--mode", "ann", "-o", y_path)
    assert result.code == 0, result.err
    assert "on reference (ann): accuracy" in result.out
    accuracy = float(re.search(r"accuracy (\d+\.\d\d)%", result.out)[1])
    assert accuracy >= 99.0  # measured 99.61% (255/256)
    x, _ = load_test_images()
    with np.load(y_path) as y:
        assert y["outputs"].shape == (len(x), 10)
        assert int(y["steps"]) == 0
        np.testing.assert_allclose(y["outputs"], onnxruntime_outputs(BUNDLED_MODEL, x), rtol=1e-4, atol=1e-4)


def test_emulate_unknown_mode_is_an_error(bundled_artifact, tmp_path, capsys):
    x, _ = load_test_images()
    np.save(tmp_path / "x.npy", x[:2])
    result = run_cli(capsys, "emulate", bundled_artifact, "--input", tmp_path / "x.npy", "--mode", "analog")
    assert_one_line_error(result, "'analog'", "snn, ann")


def test_emulate_zero_steps_is_an_error(bundled_artifact, tmp_path, capsys):
    x, _ = load_test_images()
    np.save(tmp_path / "x.npy", x[:2])
    result = run_cli(capsys, "emulate", bundled_artifact, "--input", tmp_path / "x.npy", "--steps", "0")
    assert_one_line_error(result, "--steps")


def test_plugin_target_compiles_and_its_emulator_runs(tmp_path, capsys):
    from neurodeploy_dummy import DummyBackend

    model = save_tiny(tmp_path / "models")
    out = tmp_path / "art"
    assert run_cli(capsys, "compile", model, "--target", "dummy", "-o", out).code == 0
    assert manifest_of(out)["target"]["name"] == "dummy"
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 28, 28), np.float32))
    before = DummyBackend.calls
    result = run_cli(capsys, "emulate", out, "--input", tmp_path / "x.npy", "--steps", "2")
    assert result.code == 0, result.err
    assert "on dummy (snn, 2 steps)" in result.out
    assert DummyBackend.calls == before + 1


# --- targets, version ------------------------------------------------------------------------------------------


def test_targets_lists_reference_and_the_test_plugin(capsys):
    """The tests see the test plugin (tests/conftest.py provides it; it is installed nowhere)."""
    result = run_cli(capsys, "targets")
    assert result.code == 0
    names = {line.split()[0] for line in result.out.splitlines()[1:]}
    assert {"reference", "dummy"} <= names
    dummy = next(line for line in result.out.splitlines() if line.startswith("dummy "))
    assert "neurodeploy-dummy" in dummy
    assert "failed to load" not in result.out


def test_version(capsys):
    result = run_cli(capsys, "--version")
    assert result.code == 0
    assert result.out.strip() == f"neurodeploy {__version__}"


# --- exit codes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command
        ["compile", "model.onnx"],  # missing --target
        ["compile", "model.onnx", "--target", "reference", "--frobnicate"],  # unknown option
        ["compile", "model.onnx", "--target", "reference", "--input-shape", "1,x,28,28"],
        ["compile", "model.onnx", "--target", "reference", "--input-shape", "0,1,28,28"],
        ["compile", "model.onnx", "--target", "reference", "--input-shape", "input:"],
        ["compile", "model.onnx", "--target", "reference", "--calibration-samples", "many"],
        ["emulate", "art"],  # missing --input
        ["emulate", "art", "--input", "x.npy", "--steps", "ten"],
        ["launch"],  # unknown command
    ],
    ids=lambda argv: " ".join(argv) or "nothing",
)
def test_usage_errors_exit_2(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    result = run_cli(capsys, *argv)
    assert result.code == 2
    assert "usage: neurodeploy" in result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []


def test_compile_error_exits_1_with_one_paragraph_and_traceback_only_with_debug(tmp_path, capsys):
    missing = tmp_path / "missing.onnx"
    result = run_cli(capsys, "compile", missing, "--target", "reference", "-o", tmp_path / "out")
    assert_one_line_error(result, str(missing))
    result = run_cli(capsys, "compile", missing, "--target", "reference", "-o", tmp_path / "out", "--debug")
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.err
    assert "ModelLoadError" in result.err
    assert result.err.strip().splitlines()[-1].startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_internal_errors_say_so_without_traceback_unless_debug(tmp_path, capsys, monkeypatch):
    from neurodeploy.backends.reference import ReferenceBackend

    def broken(self, graph):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(ReferenceBackend, "resources", broken)
    model = save_tiny(tmp_path / "models")
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "art")
    assert result.code == 1
    assert "internal error: ZeroDivisionError: boom" in result.err
    assert "--debug" in result.err
    assert "Traceback" not in result.err
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "art", "--debug")
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.err
    assert not (tmp_path / "art").exists()


# --- the installed console script (subprocesses: slower, so only a few) ------------------------------------------


def test_console_script_compile_in_cwd_then_emulate_and_targets(tmp_path):
    copy_bundled(tmp_path, "model.onnx")
    result = run_script(["compile", "model.onnx", "--target", "reference"], cwd=tmp_path)
    assert result.code == 0, result.err
    assert CALIBRATION_WARNING in result.err
    assert (tmp_path / "model-reference" / "manifest.json").is_file()

    x, _ = load_test_images()
    np.save(tmp_path / "x.npy", x[:4])
    args = ["emulate", "model-reference", "--input", "x.npy", "--steps", "4", "--output", "y.npz"]
    result = run_script(args, cwd=tmp_path)
    assert result.code == 0, result.err
    with np.load(tmp_path / "y.npz") as y:
        assert y["outputs"].shape == (4, 10)

    result = run_script(["targets"])
    assert result.code == 0, result.err
    assert re.search(r"^reference\s", result.out, re.MULTILINE)
    assert re.search(r"^dummy\s", result.out, re.MULTILINE)  # the test plugin reaches the scripts the tests start


def test_the_environment_itself_lists_no_test_target():
    """`neurodeploy targets` where `make demo` runs (.venv, without what the tests add to it): the real targets
    only. The test plugin is installed in no environment; tests/conftest.py provides it to the tests."""
    result = run_script(["targets"], env=plugin_support.env_without())
    assert result.code == 0, result.err
    names = set(re.findall(r"^(\S+)\s", result.out, re.MULTILINE)[1:])
    assert "reference" in names
    assert plugin_support.TARGET not in names
    assert plugin_support.DISTRIBUTION not in result.out
    assert "test plugin" not in result.out


def test_console_script_exit_codes(tmp_path):
    usage = run_script(["compile", "model.onnx"], cwd=tmp_path)  # no --target
    assert usage.code == 2
    assert "--target" in usage.err

    failure = run_script(["compile", "missing.onnx", "--target", "reference"], cwd=tmp_path)
    assert_one_line_error(failure, "missing.onnx", "does not exist")

    debug = run_script(["compile", "missing.onnx", "--target", "reference", "--debug"], cwd=tmp_path)
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.err
    assert list(tmp_path.iterdir()) == []


def test_main_puts_the_callers_logging_back(tmp_path):
    """main logs to stderr while it runs (``--quiet``: errors only), then leaves the root logger as it found it,
    so a program or a test calling it twice sees its own logging configuration."""
    import logging

    from neurodeploy.cli import main

    root = logging.getLogger()
    mine = logging.NullHandler()
    saved = root.handlers[:], root.level
    root.handlers[:] = [mine]
    root.setLevel(logging.INFO)
    try:
        assert main(["compile", str(tmp_path / "missing.onnx"), "--target", "reference", "--quiet"]) == 1
        assert root.handlers == [mine]
        assert root.level == logging.INFO
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
