"""Artifact folders: the manifest, byte-identical recompiles, atomic replacement, and checks when read."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_support import (
    CALIBRATION,
    copy_bundled,
    folder_bytes,
    listing,
    load_test_images,
    minimal_manifest,
    run_cli,
    save_tiny,
)

import neurodeploy
from neurodeploy import compile_model, emulate_artifact, load_artifact, load_calibration
from neurodeploy.artifact import MANIFEST, is_artifact, write_artifact
from neurodeploy.backends.reference import ReferenceBackend
from neurodeploy.errors import ArtifactError


@pytest.fixture(scope="module")
def calibration():
    return load_calibration(str(CALIBRATION), 64)


def compile_bundled(tmp_path: Path, out: Path, calibration=None):
    model = copy_bundled(tmp_path / "models")
    return compile_model(model, "reference", out, calibration=calibration)


# --- the manifest ----------------------------------------------------------------------------------------------


def test_manifest_records_versions_target_pipeline_options_io_and_checksums(tmp_path, calibration):
    artifact = compile_bundled(tmp_path, tmp_path / "art", calibration)
    manifest = json.loads((tmp_path / "art" / MANIFEST).read_text())
    assert artifact.manifest == manifest
    assert artifact.root == tmp_path / "art"
    assert artifact.target == "reference"

    assert manifest["neurodeploy"] == {"version": neurodeploy.__version__, "artifact_format": 2}
    assert manifest["versions"] == {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
    }
    assert manifest["target"]["name"] == "reference"
    assert manifest["target"]["backend_version"] == ReferenceBackend.version
    assert manifest["target"]["modes"] == ["snn", "ann"]
    assert manifest["target"]["default_steps"] == ReferenceBackend.default_steps
    assert manifest["pipeline"].split(",")[0] == "fold-batchnorm"
    assert manifest["pipeline"].split(",")[-1].startswith("convert-to-snn")
    assert manifest["options"]["calibration"] == calibration.describe()
    assert manifest["options"]["input_shapes"] is None
    assert manifest["source"]["file"] == "model.onnx"
    assert manifest["source"]["sha256"] == hashlib.sha256((tmp_path / "models" / "model.onnx").read_bytes()).hexdigest()
    assert manifest["source"]["opset"] == 17
    assert manifest["inputs"] == [
        {"name": "input", "shape": [1, 28, 28], "dtype": "float32", "encoding": "direct", "range": [0.0, 1.0]}
    ]  # range: of the calibration inputs, which emulate checks inputs against
    assert len(manifest["outputs"]) == 1
    assert manifest["outputs"][0]["shape"] == [10]
    assert manifest["outputs"][0]["decision"] == "argmax"
    assert "readout" in manifest["outputs"][0]

    on_disk = set(listing(tmp_path / "art")) - {MANIFEST}
    assert set(manifest["files"]) == on_disk
    assert {"snn.json", "snn.npz", "ann.json", "ann.npz", "report.json"} <= on_disk
    for name, entry in manifest["files"].items():
        data = (tmp_path / "art" / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name


def test_manifest_depends_on_neither_time_nor_absolute_path(tmp_path):
    compile_bundled(tmp_path, tmp_path / "art")
    text = (tmp_path / "art" / MANIFEST).read_text()
    assert str(tmp_path) not in text
    assert "pytest" not in text


def test_report_holds_resources_conversion_and_warnings(tmp_path):
    artifact = compile_bundled(tmp_path, tmp_path / "art")
    report = json.loads((tmp_path / "art" / "report.json").read_text())
    assert report["resources"]["target"] == "reference"
    assert report["resources"]["neurons"] > 0
    assert report["resources"]["synapses"] > 0
    assert report["conversion"]
    assert report["warnings"] == artifact.manifest["warnings"]
    assert any("calibration" in w for w in report["warnings"])


# --- reproducibility -------------------------------------------------------------------------------------------


def test_compiling_twice_gives_byte_identical_folders(tmp_path, calibration):
    compile_bundled(tmp_path, tmp_path / "first", calibration)
    # another copy of the model, in another folder, into another output folder
    other = copy_bundled(tmp_path / "elsewhere" / "models")
    compile_model(other, "reference", tmp_path / "elsewhere" / "second", calibration=calibration)
    first = folder_bytes(tmp_path / "first")
    assert len(first) >= 6
    assert folder_bytes(tmp_path / "elsewhere" / "second") == first

    compile_bundled(tmp_path, tmp_path / "first", calibration)  # again, into the same folder
    assert folder_bytes(tmp_path / "first") == first


def test_cli_compiles_byte_identically_to_the_api(tmp_path, capsys):
    model = save_tiny(tmp_path / "models")
    compile_model(model, "reference", tmp_path / "api")
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "cli")
    assert result.code == 0, result.err
    assert folder_bytes(tmp_path / "cli") == folder_bytes(tmp_path / "api")


def test_different_options_give_different_manifests(tmp_path, calibration):
    compile_bundled(tmp_path, tmp_path / "plain")
    compile_bundled(tmp_path, tmp_path / "calibrated", calibration)
    assert (tmp_path / "plain" / MANIFEST).read_bytes() != (tmp_path / "calibrated" / MANIFEST).read_bytes()
    assert (tmp_path / "plain" / "snn.npz").read_bytes() != (tmp_path / "calibrated" / "snn.npz").read_bytes()


# --- atomic writes ---------------------------------------------------------------------------------------------


def test_recompiling_replaces_the_whole_folder(tmp_path):
    out = tmp_path / "art"
    compile_bundled(tmp_path, out)
    (out / "stray.txt").write_text("left over")
    (out / "subfolder").mkdir()
    compile_bundled(tmp_path, out)
    assert "stray.txt" not in listing(out)
    assert "subfolder" not in listing(out)
    assert set(listing(out)) == {MANIFEST, *load_artifact(out).manifest["files"]}
    assert listing(tmp_path) == ["art", "models"]  # no temporary or old folder next to it


def test_an_empty_existing_folder_is_used(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    compile_bundled(tmp_path, out)
    assert is_artifact(out)


def failing_emit(self, model, folder):
    (folder / "partial.bin").write_bytes(b"half written")
    raise OSError(28, "No space left on device")


def test_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    model = save_tiny(tmp_path / "models")
    monkeypatch.setattr(ReferenceBackend, "emit", failing_emit)
    with pytest.raises(ArtifactError, match="No space left on device"):
        compile_model(model, "reference", tmp_path / "art")
    with pytest.raises(ArtifactError):
        compile_model(model, "reference", tmp_path / "new" / "deeper" / "art")
    assert listing(tmp_path) == ["models"]


def test_failure_while_writing_keeps_the_previous_artifact(tmp_path, monkeypatch):
    model = save_tiny(tmp_path / "models")
    compile_model(model, "reference", tmp_path / "art")
    before = folder_bytes(tmp_path / "art")
    monkeypatch.setattr(ReferenceBackend, "emit", failing_emit)
    with pytest.raises(ArtifactError):
        compile_model(model, "reference", tmp_path / "art")
    assert folder_bytes(tmp_path / "art") == before
    assert listing(tmp_path) == ["art", "models"]
    load_artifact(tmp_path / "art")  # still verifies


def test_failure_in_the_cli_leaves_nothing_and_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    model = save_tiny(tmp_path / "models")
    monkeypatch.setattr(ReferenceBackend, "emit", failing_emit)
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "art")
    assert result.code == 1
    assert result.err.strip().splitlines()[-1].startswith("error: cannot write artifact")
    assert "Traceback" not in result.err
    assert listing(tmp_path) == ["models"]


def test_interrupt_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupted(self, model, folder):
        (folder / "partial.bin").write_bytes(b"half written")
        raise KeyboardInterrupt

    model = save_tiny(tmp_path / "models")
    monkeypatch.setattr(ReferenceBackend, "emit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compile_model(model, "reference", tmp_path / "art")
    assert listing(tmp_path) == ["models"]


def one_file(name: str, text: str):
    """A ``fill`` for write_artifact that writes one file."""

    def fill(folder: Path) -> dict:
        (folder / name).write_text(text)
        return minimal_manifest()

    return fill


def test_failure_when_moving_into_place_restores_the_previous_artifact(tmp_path, monkeypatch):
    out = tmp_path / "art"
    write_artifact(out, one_file("a.txt", "old"))
    assert load_artifact(out).manifest["files"].keys() == {"a.txt"}
    before = folder_bytes(out)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".art.tmp-"):
            raise OSError(18, "Invalid cross-device link")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(ArtifactError, match="cross-device"):
        write_artifact(out, one_file("b.txt", "new"))
    assert folder_bytes(out) == before
    assert listing(tmp_path) == ["art"]


def test_write_artifact_refuses_what_is_not_an_artifact(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not a neurodeploy artifact"):
        write_artifact(tmp_path / "folder", lambda folder: {"neurodeploy": {}})
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ArtifactError, match="not a folder"):
        write_artifact(tmp_path / "file", lambda folder: {"neurodeploy": {}})
    assert (tmp_path / "folder" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "file").read_text() == "mine"
    assert listing(tmp_path) == ["file", "folder"]


# --- reading ---------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_artifact(tmp_path) -> Path:
    out = tmp_path / "art"
    compile_model(save_tiny(tmp_path / "models"), "reference", out)
    return out


def test_load_artifact_detects_a_missing_file(tiny_artifact):
    (tiny_artifact / "ann.npz").unlink()
    with pytest.raises(ArtifactError, match=r"missing ann\.npz"):
        load_artifact(tiny_artifact)
    assert load_artifact(tiny_artifact, verify=False).target == "reference"


def test_load_artifact_detects_a_modified_file(tiny_artifact):
    (tiny_artifact / "report.json").write_text("{}\n")
    with pytest.raises(ArtifactError, match=r"report\.json .*checksum"):
        load_artifact(tiny_artifact)
    with pytest.raises(ArtifactError, match="checksum"):
        emulate_artifact(tiny_artifact, np.zeros((1, 1, 28, 28), np.float32))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no manifest.json"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a neurodeploy manifest"),
        ('{"files": {}}', "not a neurodeploy manifest"),
        ('{"neurodeploy": {"artifact_format": 99}, "files": {}}', "format 99"),
    ],
)
def test_load_artifact_rejects_bad_manifests(tiny_artifact, content, message):
    if content is None:
        (tiny_artifact / MANIFEST).unlink()
    else:
        (tiny_artifact / MANIFEST).write_text(content)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(tiny_artifact)


def test_load_artifact_of_a_missing_folder(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope")


def test_artifact_path_names_only_its_files(tiny_artifact):
    artifact = load_artifact(tiny_artifact)
    assert artifact.path("snn.npz") == tiny_artifact / "snn.npz"
    with pytest.raises(ArtifactError, match=r"no file 'weights\.bin'"):
        artifact.path("weights.bin")


def test_emulate_artifact_by_path_runs_what_was_written(tmp_path, calibration):
    compile_bundled(tmp_path, tmp_path / "art", calibration)
    x, y = load_test_images()
    result = emulate_artifact(tmp_path / "art", x[:32], mode="ann")
    assert result.outputs.shape == (32, 10)
    assert (result.predictions == y[:32]).mean() >= 0.96  # measured 1.0 (32/32); the floor allows one image fewer


def test_load_artifact_hashes_files_in_pieces_and_finds_one_changed_byte(tiny_artifact, monkeypatch):
    """The check reads each file a piece at a time (an artifact's weights can take gigabytes): with pieces of 7
    bytes every file still verifies, and one byte changed in the middle of a file (same size) is refused."""
    from neurodeploy import fileio

    monkeypatch.setattr(fileio, "HASH_PIECE", 7)
    load_artifact(tiny_artifact)
    path = tiny_artifact / "snn.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"snn\.npz does not match its checksum in the manifest"):
        load_artifact(tiny_artifact)
