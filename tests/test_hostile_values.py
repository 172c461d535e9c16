"""Hostile values (issue #10): non-finite, complex, huge or unscaled integer inputs, labels outside the classes,
NaN calibration data and time-step counts past the cap. Each refusal is a one-line ``error: `` message, exit
status 1, and nothing written; each rescale says so in a warning (the input policy, neurodeploy.data.policy)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_support import (
    BUNDLED_MODEL,
    CALIBRATION,
    TINY_CLASSES,
    assert_one_line_error,
    listing,
    run_cli,
    save_tiny,
    tiny_model,
)
from onnx import numpy_helper

from neurodeploy.artifact import load_artifact
from neurodeploy.backends.reference import ReferenceBackend
from neurodeploy.compiler import compile_model, emulate_artifact, require_finite
from neurodeploy.data.calibration import Calibration
from neurodeploy.data.nmnist import frame_count
from neurodeploy.errors import ConversionError, DataError, LimitError

RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 1, 28, 28), dtype=np.float32)
"""Calibration and test images of the tiny model, in [0, 1]."""
PIXELS = np.rint(IMAGES[:3] * 255).astype(np.uint8)
"""The same images as 8-bit pixels."""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    save_tiny(folder)
    np.save(folder / "calibration.npy", IMAGES)
    return folder


@pytest.fixture(scope="module")
def calibrated(models, tmp_path_factory) -> Path:
    """The tiny model compiled for the reference target with calibration images in [0, 1]: range recorded."""
    out = tmp_path_factory.mktemp("calibrated") / "art"
    compile_model(
        models / "tiny.onnx", "reference", out, calibration=Calibration(IMAGES, "images")
    )  # through the API: no CLI logging setup needed
    return out


@pytest.fixture(scope="module")
def uncalibrated(models, tmp_path_factory) -> Path:
    """The tiny model compiled without calibration data: no input range recorded."""
    out = tmp_path_factory.mktemp("uncalibrated") / "art"
    compile_model(models / "tiny.onnx", "reference", out)
    return out


@pytest.fixture
def work(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def emulate(capsys, artifact: Path, x, tmp_path: Path, *extra: str, name: str = "x.npy"):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **x)
    else:
        np.save(path, x)
    return run_cli(capsys, "emulate", artifact, "--input", path, *extra)


def emulate_fails(capsys, artifact, x, tmp_path, work, *extra, fragments=(), name="x.npy") -> str:
    result = emulate(capsys, artifact, x, tmp_path, "--output", work / "y.npz", *extra, name=name)
    error = assert_one_line_error(result, *fragments)
    assert listing(work) == []
    return error


def with_value(value, sample: int = 1, dtype=np.float32) -> np.ndarray:
    x = IMAGES[:3].astype(dtype)
    x[sample, 0, 5, 7] = value
    return x


# --- values the policy refuses -----------------------------------------------------------------------------------


def test_the_range_of_the_calibration_inputs_is_recorded(calibrated, uncalibrated):
    manifest = json.loads((calibrated / "manifest.json").read_text())
    assert manifest["inputs"][0]["range"] == [float(IMAGES.min()), float(IMAGES.max())]
    assert "range" not in json.loads((uncalibrated / "manifest.json").read_text())["inputs"][0]


@pytest.mark.parametrize("which", ["calibrated", "uncalibrated"])
@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        (np.nan, ("x.npy", "1 non-finite value(s)", "sample 1")),
        (np.inf, ("x.npy", "non-finite", "sample 1")),
        (-np.inf, ("x.npy", "non-finite", "sample 1")),
    ],
    ids=["nan", "inf", "-inf"],
)
def test_non_finite_inputs_are_refused(request, tmp_path, work, capsys, which, value, fragments):
    emulate_fails(capsys, request.getfixturevalue(which), with_value(value), tmp_path, work, fragments=fragments)


def test_non_finite_inputs_are_refused_in_ann_mode_and_with_rate_encoding(calibrated, tmp_path, work, capsys):
    x = with_value(np.nan, sample=2)
    emulate_fails(capsys, calibrated, x, tmp_path, work, "--mode", "ann", fragments=("non-finite", "sample 2"))
    emulate_fails(capsys, calibrated, x, tmp_path, work, "--encoding", "rate", fragments=("non-finite", "sample 2"))


def test_huge_inputs_are_refused(calibrated, uncalibrated, tmp_path, work, capsys):
    x = with_value(1e30)
    emulate_fails(capsys, uncalibrated, x, tmp_path, work, fragments=("x.npy", "magnitude above 1e+06", "sample 1"))
    emulate_fails(capsys, calibrated, x, tmp_path, work, fragments=("x.npy", "far outside the input range", "1e+30"))


def test_inputs_far_outside_the_recorded_range_are_refused(calibrated, tmp_path, work, capsys):
    low, high = float(IMAGES.min()), float(IMAGES.max())
    error = emulate_fails(
        capsys, calibrated, with_value(300.0, dtype=np.float64), tmp_path, work, fragments=("sample 1", "300")
    )
    assert f"[{low:g}, {high:g}]" in error
    # within the tolerance (the range's width on either side): accepted as it is
    result = emulate(capsys, calibrated, with_value(1.5), tmp_path, "--steps", "2")
    assert result.code == 0, result.err
    assert "warning" not in result.err


@pytest.mark.parametrize(
    ("x", "fragments"),
    [
        (IMAGES[:2].astype(np.complex64), ("x.npy", "complex")),
        (IMAGES[:2] > 0.5, ("x.npy", "dtype bool")),
    ],
    ids=["complex", "bool"],
)
def test_complex_and_boolean_inputs_are_refused(calibrated, tmp_path, work, capsys, x, fragments):
    emulate_fails(capsys, calibrated, x, tmp_path, work, fragments=fragments)


def test_hostile_inputs_through_the_python_api(calibrated):
    """emulate_artifact and a backend called directly apply the same policy."""
    with pytest.raises(DataError, match="non-finite"):
        emulate_artifact(calibrated, with_value(np.nan), steps=2)
    with pytest.raises(DataError, match="complex"):
        emulate_artifact(calibrated, IMAGES[:1].astype(np.complex128), steps=2)
    with pytest.raises(DataError, match="non-finite"):
        ReferenceBackend().emulate(load_artifact(calibrated), with_value(np.inf), steps=2)
    with pytest.raises(DataError, match="magnitude above"):
        ReferenceBackend().emulate(load_artifact(calibrated), with_value(-1e30), steps=2)


# --- integer images ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_integer_images_in_0_255_are_divided_by_255_with_a_warning(calibrated, tmp_path, capsys, dtype):
    reference = emulate(capsys, calibrated, PIXELS.astype(np.float32) / 255, tmp_path, "-o", tmp_path / "f.npz")
    assert reference.code == 0, reference.err
    assert "warning" not in reference.err
    result = emulate(capsys, calibrated, PIXELS.astype(dtype), tmp_path, "-o", tmp_path / "i.npz", name="i.npy")
    assert result.code == 0, result.err
    warning = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1, result.err
    assert "i.npy" in warning[0]
    assert "dividing them by 255" in warning[0]
    assert "pass float inputs" in warning[0]
    np.testing.assert_array_equal(np.load(tmp_path / "i.npz")["outputs"], np.load(tmp_path / "f.npz")["outputs"])


def test_integer_images_and_the_python_api(calibrated, caplog):
    with caplog.at_level(logging.WARNING):
        scaled = emulate_artifact(calibrated, PIXELS, steps=3)
    assert "dividing them by 255" in caplog.text
    floats = emulate_artifact(calibrated, PIXELS.astype(np.float32) / 255, steps=3)
    np.testing.assert_array_equal(scaled.outputs, floats.outputs)


def test_integers_of_0_and_1_are_not_rescaled(calibrated, tmp_path, capsys):
    binary = (IMAGES[:2] > 0.5).astype(np.int64)
    result = emulate(capsys, calibrated, binary, tmp_path, "--steps", "2", "-o", tmp_path / "b.npz")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    floats = emulate_artifact(calibrated, binary.astype(np.float32), steps=2)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["outputs"], floats.outputs)


def test_integers_outside_the_recorded_range_are_refused(calibrated, tmp_path, work, capsys):
    x = PIXELS.astype(np.int64) * 4  # up to 1020: not 8-bit pixels
    emulate_fails(capsys, calibrated, x, tmp_path, work, fragments=("far outside the input range",))


def test_integers_without_a_recorded_range_are_used_with_a_warning(uncalibrated, tmp_path, capsys):
    result = emulate(capsys, uncalibrated, PIXELS, tmp_path, "--steps", "2")
    assert result.code == 0, result.err
    assert "records no input range" in result.err
    assert "used as they are" in result.err


def test_integer_event_counts_are_used_as_given_and_negative_counts_refused(models, tmp_path, work, capsys):
    out = tmp_path / "events"
    result = run_cli(
        capsys, "compile", models / "tiny.onnx", "-t", "reference", "-o", out, "--encoding", "events",
        "--calibration", models / "calibration.npy",
    )  # fmt: skip
    assert result.code == 0, result.err
    counts = RNG.integers(0, 5, (2, 4, 1, 28, 28)).astype(np.int64)
    result = emulate(capsys, out, counts, tmp_path, "--steps", "4", "-o", tmp_path / "c.npz")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    floats = emulate_artifact(out, counts.astype(np.float32), steps=4)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npz")["outputs"], floats.outputs)
    counts[1, 2, 0, 3, 3] = -1
    emulate_fails(capsys, out, counts, tmp_path, work, "--steps", "4", fragments=("negative event count", "sample 1"))


# --- labels ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        (np.array([0, 7, 1]), ("y.npy", "1 label(s) outside the model's 3 classes", "the first 7 at index 1")),
        (np.array([0, -1, 5]), ("y.npy", "2 label(s) outside", "the first -1 at index 1")),
        (np.array([0.0, 1.5, 2.0]), ("y.npy", "not class indices", "1.5", "index 1")),
        (np.array([0.0, np.nan, 2.0]), ("y.npy", "not class indices", "nan")),
        (np.zeros((3, 2), np.int64), ("y.npy", "shape (3, 2)")),
        (np.array(["a", "b", "c"]), ("y.npy", "dtype")),
    ],
    ids=["too-big", "negative", "fraction", "nan", "shape", "strings"],
)
def test_bad_label_files_are_refused(calibrated, tmp_path, work, capsys, labels, fragments):
    np.save(tmp_path / "y.npy", labels)
    emulate_fails(capsys, calibrated, IMAGES[:3], tmp_path, work, "--labels", tmp_path / "y.npy", fragments=fragments)


def test_labels_in_the_npz_are_checked_too(calibrated, tmp_path, work, capsys):
    data = {"x": IMAGES[:3], "y": np.array([0, 1, TINY_CLASSES])}
    emulate_fails(capsys, calibrated, data, tmp_path, work, name="x.npz", fragments=("x.npz", "outside", "index 2"))


def test_whole_float_labels_and_a_column_of_labels_are_accepted(calibrated, tmp_path, capsys):
    np.save(tmp_path / "y.npy", np.array([[0.0], [1.0], [2.0]]))
    result = emulate(capsys, calibrated, IMAGES[:3], tmp_path, "--labels", tmp_path / "y.npy", "--steps", "2")
    assert result.code == 0, result.err
    assert "accuracy" in result.out


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        (np.array([0, 1, 12]), ("x.npz", "outside the model's 10 classes", "the first 12 at index 2")),
        (np.array([0, 1.25, 2]), ("x.npz", "not class indices", "1.25")),
        (np.zeros((3, 2)), ("x.npz", "shape (3, 2)")),
    ],
    ids=["out-of-range", "fraction", "shape"],
)
def test_evaluate_checks_the_labels(tmp_path, capsys, labels, fragments):
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 1, 28, 28), np.float32), y=labels)
    args = ["--data", tmp_path / "x.npz", "--steps", "1", "--calibration", CALIBRATION, "--json", tmp_path / "r.json"]
    assert_one_line_error(run_cli(capsys, "evaluate", BUNDLED_MODEL, *args), *fragments)
    assert not (tmp_path / "r.json").exists()


def test_evaluate_refuses_non_finite_inputs_and_rescales_pixels(tmp_path, capsys):
    x = np.zeros((3, 1, 28, 28), np.float32)
    x[2, 0, 1, 1] = np.nan
    np.savez(tmp_path / "x.npz", x=x, y=np.zeros(3, np.int64))
    args = ["--steps", "1", "--calibration", CALIBRATION, "--workers", "1"]
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", tmp_path / "x.npz", *args)
    assert_one_line_error(result, "x.npz", "non-finite", "sample 2")
    with np.load(CALIBRATION) as data:
        images, labels = data["x"][:8], data["y"][:8]
    np.savez(tmp_path / "p.npz", x=np.rint(images * 255).astype(np.uint8), y=labels)
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", tmp_path / "p.npz", *args)
    assert result.code == 0, result.err
    assert "dividing them by 255" in result.err


# --- calibration data --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_calibration_data_is_refused(models, tmp_path, work, capsys, value):
    np.save(tmp_path / "calib.npy", with_value(value, sample=2))
    result = run_cli(
        capsys, "compile", models / "tiny.onnx", "-t", "reference", "-o", work / "art", "--calibration",
        tmp_path / "calib.npy",
    )  # fmt: skip
    assert_one_line_error(result, "calib.npy", "non-finite", "sample 2")
    assert listing(work) == []


def test_non_finite_calibration_data_through_the_python_api(models, tmp_path):
    with pytest.raises(DataError, match=r"calibration data \(mine\).*non-finite"):
        compile_model(
            models / "tiny.onnx", "reference", tmp_path / "art", calibration=Calibration(with_value(np.nan), "mine")
        )
    assert not (tmp_path / "art").exists()


def test_complex_calibration_data_is_refused(models, tmp_path, work, capsys):
    np.save(tmp_path / "calib.npy", IMAGES.astype(np.complex64))
    result = run_cli(
        capsys, "compile", models / "tiny.onnx", "-t", "reference", "-o", work / "art", "--calibration",
        tmp_path / "calib.npy",
    )  # fmt: skip
    assert_one_line_error(result, "calib.npy", "complex")


# --- time steps and other counts ---------------------------------------------------------------------------------


def test_a_billion_steps_are_refused_naming_the_variable(calibrated, tmp_path, work, capsys):
    error = emulate_fails(capsys, calibrated, IMAGES[:1], tmp_path, work, "--steps", str(10**9))
    assert "--steps" in error
    assert "NEURODEPLOY_MAX_STEPS=1000000000" in error
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", CALIBRATION, "--steps", f"1,{10**9}")
    assert_one_line_error(result, "NEURODEPLOY_MAX_STEPS")


def test_the_step_cap_is_raised_with_the_environment_variable(calibrated, tmp_path, work, capsys, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_MAX_STEPS", "10")
    emulate_fails(capsys, calibrated, IMAGES[:1], tmp_path, work, "--steps", "11", fragments=("NEURODEPLOY_MAX_STEPS",))
    result = emulate(capsys, calibrated, IMAGES[:1], tmp_path, "--steps", "10")
    assert result.code == 0, result.err
    monkeypatch.setenv("NEURODEPLOY_MAX_STEPS", "11")
    assert emulate(capsys, calibrated, IMAGES[:1], tmp_path, "--steps", "11").code == 0


def test_the_step_cap_holds_for_the_python_api(calibrated):
    with pytest.raises(LimitError, match="NEURODEPLOY_MAX_STEPS"):
        emulate_artifact(calibrated, IMAGES[:1], steps=10**9)
    with pytest.raises(LimitError, match="NEURODEPLOY_MAX_STEPS"):
        ReferenceBackend().emulate(load_artifact(calibrated), IMAGES[:1], steps=10**9)
    with pytest.raises(DataError, match="whole number"):
        emulate_artifact(calibrated, IMAGES[:1], steps=2.5)


@pytest.mark.parametrize(
    ("option", "fragment"),
    [("--workers", "--workers must be at least 1"), ("--batch-size", "--batch-size must be at least 1")],
)
def test_evaluate_counts_must_be_positive(capsys, option, fragment):
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", CALIBRATION, "--steps", "1", option, "0")
    assert_one_line_error(result, fragment)


def test_evaluate_refuses_thousands_of_workers(capsys):
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", CALIBRATION, "--steps", "1", "--workers", "100000")
    assert_one_line_error(result, "--workers 100,000 is more than 4 processes per CPU")


# --- non-finite numbers in what compile writes -------------------------------------------------------------------


def test_json_guard_names_the_key():
    with pytest.raises(ConversionError, match=r"report\.json: conversion\.lambda\[1\] is nan"):
        require_finite({"conversion": {"lambda": [1.0, float("nan")]}}, "report.json")
    assert require_finite({"a": [1.0, 2, "x", None]}, "m") == {"a": [1.0, 2, "x", None]}


def test_event_frames_count_as_time_steps():
    assert frame_count(1000, 300_000) == 300
    with pytest.raises(LimitError, match="NEURODEPLOY_MAX_STEPS"):
        frame_count(1, 10**9)  # a billion 1 us frames per sample: refused before any is allocated


def test_an_emulation_that_overflows_is_refused_not_written(tmp_path, work, capsys):
    """Finite but huge weights (1e38) overflow float32 inside the network: an error, never NaN outputs."""
    model = tiny_model()
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == "fc.w":
            huge = np.full(numpy_helper.to_array(tensor).shape, 1e38, np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(huge, "fc.w"))
    onnx.save(model, tmp_path / "huge.onnx")
    result = run_cli(capsys, "compile", tmp_path / "huge.onnx", "-t", "reference", "-o", tmp_path / "art", "-q")
    if result.code != 0:  # refused at import or conversion: as good, if it says so in one line
        assert_one_line_error(result)
        return
    emulate_fails(capsys, tmp_path / "art", IMAGES[:2], tmp_path, work, fragments=("NaN or Inf", "overflows float32"))
