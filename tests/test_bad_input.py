"""Bad input: each case is a one-line ``error: `` message, exit status 1, and nothing written."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_support import (
    BUNDLED_MODEL,
    CALIBRATION,
    Result,
    assert_one_line_error,
    copy_bundled,
    listing,
    run_cli,
    save_tiny,
    tiny_model,
)
from onnx import external_data_helper

import neurodeploy.data
from neurodeploy.data.datasets import read_idx
from neurodeploy.errors import DataError


@pytest.fixture
def work(tmp_path) -> Path:
    """An empty folder the output goes into; tests check it is still empty afterwards."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def compile_fails(capsys, model: Path | str, work: Path, *extra: str, fragments: tuple[str, ...] = ()) -> str:
    """Compile into ``work/art``, expect a one-line error, and check nothing was written; return the error."""
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", work / "art", *extra)
    error = assert_one_line_error(result, *fragments)
    assert listing(work) == []
    return error


# --- the model file --------------------------------------------------------------------------------------------


def test_missing_model_file(tmp_path, work, capsys):
    compile_fails(capsys, tmp_path / "nope.onnx", work, fragments=("nope.onnx", "does not exist"))


def test_model_path_is_a_folder(tmp_path, work, capsys):
    (tmp_path / "dir.onnx").mkdir()
    compile_fails(capsys, tmp_path / "dir.onnx", work, fragments=("dir.onnx", "not a file"))


def test_truncated_onnx(tmp_path, work, capsys):
    data = BUNDLED_MODEL.read_bytes()
    (tmp_path / "half.onnx").write_bytes(data[: len(data) // 2])
    compile_fails(capsys, tmp_path / "half.onnx", work, fragments=("half.onnx", "truncated or corrupt"))


def test_corrupt_onnx_random_bytes(tmp_path, work, capsys):
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    compile_fails(capsys, tmp_path / "random.onnx", work, fragments=("random.onnx",))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"this is a text file, not a model\n", "not a readable ONNX model"), (b"", "not an ONNX model")],
    ids=["text", "empty"],
)
def test_file_that_is_not_onnx(tmp_path, work, capsys, content, fragment):
    (tmp_path / "model.onnx").write_bytes(content)
    compile_fails(capsys, tmp_path / "model.onnx", work, fragments=("model.onnx", fragment))


def test_dynamic_non_batch_dimensions_without_input_shape(tmp_path, work, capsys):
    model = save_tiny(tmp_path / "models", height="height", width=None)
    error = compile_fails(capsys, model, work, fragments=("'input'", "--input-shape"))
    assert "height" in error


def test_unsupported_ops_are_listed_all_at_once(tmp_path, work, capsys):
    model = tiny_model()
    for node in model.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Sin"
        if node.op_type == "GlobalAveragePool":
            node.op_type = "GlobalLpPool"
    onnx.save(model, tmp_path / "unsupported.onnx")
    result = run_cli(capsys, "compile", tmp_path / "unsupported.onnx", "-t", "reference", "-o", work / "art")
    assert result.code == 1
    assert result.err.startswith("error: ")
    assert "Traceback" not in result.err
    assert "Sin node 'relu'" in result.err
    assert "GlobalLpPool node 'pool'" in result.err
    assert listing(work) == []


# --- external data ---------------------------------------------------------------------------------------------


def external_data_model(folder: Path, location: str | None = None) -> Path:
    """The tiny model with every initializer in ``weights.bin``; ``location`` rewrites where conv.w points."""
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_model()
    external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0
    )
    path = folder / "ext.onnx"
    onnx.save(model, path)
    if location is not None:
        model = onnx.load(path, load_external_data=False)
        tensor = next(t for t in model.graph.initializer if t.name == "conv.w")
        next(e for e in tensor.external_data if e.key == "location").value = location
        onnx.save(model, path)
    return path


def test_external_data_inside_the_folder_loads(tmp_path, capsys):
    model = external_data_model(tmp_path / "models")
    result = run_cli(capsys, "compile", model, "-t", "reference", "-o", tmp_path / "art")
    assert result.code == 0, result.err
    assert (tmp_path / "art" / "manifest.json").is_file()


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, work, capsys, where):
    secret = tmp_path / "secret.bin"
    models = tmp_path / "models"
    external_data_model(models)
    shutil.copyfile(models / "weights.bin", secret)  # the file exists and holds valid data: still refused
    location = "../secret.bin" if where == "parent" else str(secret)
    model = external_data_model(models, location)
    error = compile_fails(capsys, model, work, fragments=("'conv.w'", location, "outside"))
    assert "ext.onnx" in error


def test_external_data_through_a_symlink_leaving_the_folder_is_refused(tmp_path, work, capsys):
    models = tmp_path / "models"
    external_data_model(models)
    shutil.move(models / "weights.bin", tmp_path / "secret.bin")
    (models / "weights.bin").symlink_to(tmp_path / "secret.bin")
    compile_fails(capsys, models / "ext.onnx", work, fragments=("'conv.w'", "outside"))


def test_missing_external_data_file(tmp_path, work, capsys):
    models = tmp_path / "models"
    model = external_data_model(models)
    (models / "weights.bin").unlink()
    compile_fails(capsys, model, work, fragments=("'conv.w'", "weights.bin", "does not exist"))


# --- the output path -------------------------------------------------------------------------------------------


def test_output_folder_that_is_not_an_artifact(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("do not touch")
    before = (out / "thesis.tex").stat().st_mtime_ns
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", out)
    assert_one_line_error(result, str(out), "not a neurodeploy artifact")
    assert listing(out) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text() == "do not touch"
    assert (out / "thesis.tex").stat().st_mtime_ns == before
    assert listing(tmp_path) == ["mine", "models"]


def test_output_path_that_is_a_file(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    out = tmp_path / "out"
    out.write_text("a file")
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", out)
    assert_one_line_error(result, str(out), "not a folder")
    assert out.read_text() == "a file"
    assert listing(tmp_path) == ["models", "out"]


def test_output_below_a_file(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    (tmp_path / "file").write_text("a file")
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "file" / "art")
    assert_one_line_error(result, "art")
    assert (tmp_path / "file").read_text() == "a file"
    assert listing(tmp_path) == ["file", "models"]


def test_output_in_missing_folders_creates_nothing_on_failure(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    result = run_cli(capsys, "compile", tmp_path / "bad.onnx", "-t", "reference", "-o", tmp_path / "a" / "b" / "art")
    assert_one_line_error(result, "bad.onnx")
    assert listing(tmp_path) == ["bad.onnx"]


def test_unknown_target_lists_installed_targets(tmp_path, work, capsys):
    model = save_tiny(tmp_path / "models")
    result = run_cli(capsys, "compile", model, "--target", "truenorth", "-o", work / "art")
    assert_one_line_error(result, "'truenorth'", "reference", "dummy")
    assert listing(work) == []


@pytest.mark.parametrize(
    ("option", "fragments"),
    [
        ("norm=max", ("'norm'", "'reference'", "it takes readout_delay (auto (default)")),
        ("novalue", ("--target-option takes KEY=VALUE", "'novalue'")),
        ("=1", ("--target-option takes KEY=VALUE",)),
    ],
)
def test_target_options_the_target_does_not_take(tmp_path, work, capsys, option, fragments):
    model = save_tiny(tmp_path / "models")
    compile_fails(capsys, model, work, "--target-option", option, fragments=fragments)


def test_a_target_without_options_says_it_takes_none(tmp_path, work, capsys, monkeypatch):
    pytest.importorskip("neurodeploy_pynn")
    from neurodeploy_pynn.backend import SpiNNakerBackend

    monkeypatch.setattr(SpiNNakerBackend, "target_options", {})  # every installed target takes some now
    model = save_tiny(tmp_path / "models")
    compile_fails(capsys, model, work, "--target", "spinnaker", "-X", "x=1", fragments=("'spinnaker'", "takes none"))


@pytest.mark.parametrize(
    ("target", "encoding", "runs"),
    [
        ("loihi", "rate", "direct or events"),
        ("speck", "rate", "direct or events"),
        ("spinnaker", "rate", "direct input"),
        ("spinnaker", "events", "direct input"),
        ("brainscales2", "events", "direct input"),
    ],
)
def test_an_encoding_the_targets_emulator_does_not_run_is_refused_at_compile(
    tmp_path, work, capsys, target, encoding, runs
):
    """Before any work, not later when emulate would refuse the artifact."""
    pytest.importorskip({"loihi": "neurodeploy_loihi", "speck": "neurodeploy_speck"}.get(target, "neurodeploy_pynn"))
    model = save_tiny(tmp_path / "models")
    fragments = (f"the {target} target runs {runs}", f"not the '{encoding}' encoding")
    compile_fails(capsys, model, work, "--target", target, "--encoding", encoding, fragments=fragments)


# --- calibration -----------------------------------------------------------------------------------------------


def test_calibration_that_is_neither_a_data_set_nor_a_file(tmp_path, work, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = save_tiny(tmp_path / "models")
    compile_fails(capsys, model, work, "--calibration", "imagenet", fragments=("'imagenet'", "mnist"))


def test_calibration_file_missing(tmp_path, work, capsys):
    model = save_tiny(tmp_path / "models")
    compile_fails(capsys, model, work, "--calibration", str(tmp_path / "calib.npz"), fragments=("calib.npz",))


def test_calibration_that_does_not_fit_the_model(tmp_path, work, capsys):
    model = save_tiny(tmp_path / "models")
    np.save(tmp_path / "calib.npy", np.zeros((4, 3, 32, 32), np.float32))
    compile_fails(
        capsys, model, work, "--calibration", str(tmp_path / "calib.npy"), fragments=("calib.npy", "does not fit")
    )


def test_calibration_data_set_without_data_folder(tmp_path, work, capsys, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_DATA", str(tmp_path / "no-data"))
    compile_fails(capsys, BUNDLED_MODEL, work, "--calibration", "mnist", fragments=("NEURODEPLOY_DATA",))


# --- emulate ---------------------------------------------------------------------------------------------------


@pytest.fixture
def artifact(tmp_path, capsys) -> Path:
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", save_tiny(tmp_path / "models"), "-t", "reference", "-o", out, "-q")
    assert result.code == 0, result.err
    return out


def emulate_fails(capsys, artifact: Path, inputs: Path, work: Path, *extra, fragments=()) -> Result:
    result = run_cli(capsys, "emulate", artifact, "--input", inputs, "--output", work / "y.npz", *extra)
    assert_one_line_error(result, *fragments)
    assert listing(work) == []
    return result


@pytest.fixture
def good_input(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 1, 28, 28), np.float32))
    return path


def test_emulate_a_folder_that_is_not_an_artifact(tmp_path, work, good_input, capsys):
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    emulate_fails(capsys, folder, good_input, work, fragments=("stuff", "not a neurodeploy artifact"))
    emulate_fails(capsys, tmp_path / "nowhere", good_input, work, fragments=("nowhere", "does not exist"))


def test_emulate_a_folder_with_a_foreign_manifest(tmp_path, work, good_input, capsys):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "some other tool"}')
    emulate_fails(capsys, folder, good_input, work, fragments=("not a neurodeploy manifest",))


@pytest.mark.parametrize("shape", [(2, 1, 14, 14), (2, 28, 28), (2, 3, 28, 28), (5,)])
def test_emulate_inputs_of_the_wrong_shape(tmp_path, work, artifact, capsys, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape, np.float32))
    emulate_fails(capsys, artifact, tmp_path / "x.npy", work, fragments=(str(shape), "(batch, 1, 28, 28)"))


def test_emulate_non_numeric_inputs(tmp_path, work, artifact, capsys):
    np.save(tmp_path / "x.npy", np.full((2, 1, 28, 28), "a"))
    emulate_fails(capsys, artifact, tmp_path / "x.npy", work, fragments=("dtype",))


@pytest.mark.parametrize("name", ["snn.npz", "ann.json", "report.json"])
def test_emulate_an_artifact_modified_after_compile(tmp_path, work, artifact, good_input, capsys, name):
    data = bytearray((artifact / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (artifact / name).write_bytes(bytes(data))
    emulate_fails(capsys, artifact, good_input, work, fragments=(name, "checksum"))


def test_emulate_an_artifact_missing_a_file(work, artifact, good_input, capsys):
    (artifact / "snn.json").unlink()
    emulate_fails(capsys, artifact, good_input, work, fragments=("missing snn.json",))


def test_emulate_missing_input_file(tmp_path, work, artifact, capsys):
    emulate_fails(capsys, artifact, tmp_path / "x.npy", work, fragments=("x.npy", "does not exist"))


NPY_CASES = ["garbage", "bad-header", "unbalanced-header", "huge-shape", "truncated", "pickled"]


def npy_header(header: str) -> bytes:
    text = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


@pytest.mark.parametrize("case", [*NPY_CASES, "npz-without-x", "truncated-npz"])
def test_emulate_unreadable_npy_or_npz(tmp_path, work, artifact, capsys, case):
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    suffix = ".npz" if "npz" in case else ".npy"
    path = tmp_path / f"input{suffix}"
    if case == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(1000))
    elif case == "bad-header":
        path.write_bytes(b"\x93NUMPY\x01\x00garbage header")
    elif case == "unbalanced-header":
        path.write_bytes(npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1, 28, 28") + bytes(64))
    elif case == "huge-shape":
        path.write_bytes(
            npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }") + bytes(64)
        )
    elif case == "truncated":
        np.save(path, x)
        path.write_bytes(path.read_bytes()[:2000])
    elif case == "pickled":
        np.save(path, np.array([x, "a"], dtype=object), allow_pickle=True)
    elif case == "npz-without-x":
        np.savez(path, images=x)
    else:
        np.savez(path, x=x)
        path.write_bytes(path.read_bytes()[:3000])
    emulate_fails(capsys, artifact, path, work, fragments=(path.name,))


@pytest.mark.parametrize("case", ["bad-crc", "corrupt-deflate", "object-array"])
def test_emulate_npz_with_a_corrupt_member(tmp_path, work, artifact, capsys, case):
    """The zip directory is fine, so the file opens; the damage shows only when ``x`` is read."""
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    path = tmp_path / "input.npz"
    if case == "object-array":
        np.savez(path, x=np.array([1, "a", None], dtype=object))
    else:
        (np.savez if case == "bad-crc" else np.savez_compressed)(path, x=x)
        data = bytearray(path.read_bytes())
        for i in range(200, 600):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
    emulate_fails(capsys, artifact, path, work, fragments=("input.npz",))


@pytest.mark.parametrize(
    ("inputs", "extra", "fragment"),
    [
        (np.zeros((0, 1, 28, 28), np.float32), [], "no inputs"),
        (np.zeros((0, 1, 28, 28), np.float32), ["--mode", "ann"], "no inputs"),
        (np.zeros((3, 1, 28, 28), np.float32), ["--limit", "0"], "--limit"),
        (np.zeros((3, 1, 28, 28), np.float32), ["--limit", "-1"], "--limit"),
        (np.float32(3.0), [], "shape ()"),
    ],
    ids=["empty", "empty-ann", "limit-0", "limit-negative", "scalar"],
)
def test_emulate_no_samples(tmp_path, work, artifact, capsys, inputs, extra, fragment):
    np.save(tmp_path / "x.npy", inputs)
    emulate_fails(capsys, artifact, tmp_path / "x.npy", work, *extra, fragments=(fragment,))


def test_emulate_missing_labels_file(tmp_path, work, artifact, good_input, capsys):
    emulate_fails(capsys, artifact, good_input, work, "--labels", str(tmp_path / "y.npy"), fragments=("y.npy",))


def test_emulate_labels_that_do_not_match_the_inputs(tmp_path, work, artifact, good_input, capsys):
    np.save(tmp_path / "labels.npy", np.arange(5))
    emulate_fails(
        capsys, artifact, good_input, work, "--labels", str(tmp_path / "labels.npy"), fragments=("5 labels", "2 inputs")
    )


def test_emulate_output_that_cannot_be_written(tmp_path, artifact, good_input, capsys):
    out = tmp_path / "missing-folder" / "y.npz"
    result = run_cli(capsys, "emulate", artifact, "--input", good_input, "--output", out, "--steps", "2")
    assert_one_line_error(result, "y.npz")
    assert not (tmp_path / "missing-folder").exists()


def test_emulate_output_that_is_a_folder(tmp_path, work, artifact, good_input, capsys):
    (work / "y.npz").mkdir()
    (work / "y.npz" / "keep.txt").write_text("mine")
    result = run_cli(capsys, "emulate", artifact, "--input", good_input, "--output", work / "y.npz", "--steps", "2")
    assert_one_line_error(result, "y.npz")
    assert listing(work) == ["y.npz"]  # no temporary file left next to it
    assert (work / "y.npz" / "keep.txt").read_text() == "mine"


# --- data sets -------------------------------------------------------------------------------------------------


def test_load_dataset_mnist_test_split():
    try:
        neurodeploy.data.data_root()
    except DataError:
        pytest.skip("the shared data folder is absent")
    data = neurodeploy.data.load_dataset("mnist", "test", limit=10)
    assert data.x.dtype == np.float32
    assert data.x.shape == (10, 1, 28, 28)
    assert data.x.min() >= 0.0
    assert data.x.max() <= 1.0
    assert data.x.max() == 1.0  # scaled by 255, not left as bytes
    assert data.y.shape == (10,)
    assert np.issubdtype(data.y.dtype, np.integer)
    assert set(data.y.tolist()) <= set(range(10))
    assert len(set(data.y.tolist())) > 1


def test_data_root_from_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="NEURODEPLOY_DATA"):
        neurodeploy.data.data_root()
    with pytest.raises(DataError, match="NEURODEPLOY_DATA"):
        neurodeploy.data.load_dataset("mnist", "test", limit=1)


def test_data_folder_without_the_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_DATA", str(tmp_path))
    assert neurodeploy.data.data_root() == tmp_path
    with pytest.raises(DataError, match="t10k-images"):
        neurodeploy.data.load_dataset("mnist", "test")


def test_unknown_data_set_and_split():
    with pytest.raises(DataError, match="cifar100"):
        neurodeploy.data.load_dataset("cifar100")
    with pytest.raises(DataError, match="validation"):
        neurodeploy.data.load_dataset("mnist", "validation")


IDX_GOOD = b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))


def test_read_idx_reads_plain_and_gzipped(tmp_path):
    (tmp_path / "a.idx").write_bytes(IDX_GOOD)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(IDX_GOOD, mtime=0))
    for name in ("a.idx", "a.idx.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), np.arange(6, dtype=np.uint8).reshape(2, 3))


def _flip_middle(data: bytes) -> bytes:
    return data[:10] + bytes(b ^ 0xFF for b in data[10:-8]) + data[-8:]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("short.idx", b"\x00\x00"),
        ("magic.idx", b"\x01\x02\x08\x01" + bytes(8)),
        ("float.idx", b"\x00\x00\x0d\x01" + bytes(8)),
        ("count.idx", IDX_GOOD[:-1]),
        ("header.idx", b"\x00\x00\x08\x03\x00\x00\x00\x02\x00"),  # promises 3 dimensions, holds 1.25
        ("not-gzip.idx.gz", b"not gzipped at all"),
        ("truncated.idx.gz", gzip.compress(IDX_GOOD, mtime=0)[:-12]),
        ("corrupt.idx.gz", _flip_middle(gzip.compress(IDX_GOOD * 8, mtime=0))),
        ("missing.idx", None),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_read_idx_of_a_corrupt_file_is_a_data_error(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        read_idx(path)


def test_calibration_from_the_data_set(tmp_path, capsys):
    try:
        neurodeploy.data.data_root()
    except DataError:
        pytest.skip("the shared data folder is absent")
    model = copy_bundled(tmp_path / "models")
    out = tmp_path / "art"
    result = run_cli(capsys, "compile", model, "-t", "reference", "--calibration", "mnist", "-o", out)
    assert result.code == 0, result.err
    assert "warning" not in result.err
    assert os.path.isfile(out / "manifest.json")
    assert json.loads((out / "manifest.json").read_text())["options"]["calibration"]["source"] == "mnist:train[:1024]"
    result = run_cli(capsys, "emulate", out, "--input", CALIBRATION, "--mode", "ann", "--limit", "4")
    assert result.code == 0, result.err
    assert "accuracy" in result.out
