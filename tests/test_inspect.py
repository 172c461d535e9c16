"""`neurodeploy inspect` and `neurodeploy report`: an artifact's summary, read from what the compile recorded
(manifest.json, report.json), for a terminal and as Markdown; bad folders are the artifact reader's one-line
errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import run_cli

from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import ArtifactError
from neurodeploy.inspect import markdown, summary, text

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    out = tmp_path_factory.mktemp("inspect")
    return {
        "spinnaker": compile_model(MNIST / "mnist_cnn.onnx", "spinnaker", out / "s", calibration=calibration),
        "loihi": compile_model(
            MNIST / "mnist_cnn.onnx", "loihi", out / "l", calibration=calibration, target_options={"profile": "board"}
        ),
        "reference": compile_model(MNIST / "mnist_cnn.onnx", "reference", out / "r"),
        "speck": compile_model(MNIST / "mnist_cnn.onnx", "speck", out / "k", calibration=calibration),
        "brainscales2": compile_model(
            ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx", "brainscales2", out / "b", calibration=calibration
        ),
    }


def test_the_summary_is_what_the_compile_recorded(artifacts):
    artifact = artifacts["spinnaker"]
    info = summary(artifact.root)
    report = json.loads((artifact.root / "report.json").read_text())
    assert info["target"]["name"] == "spinnaker"
    assert info["source"]["file"] == "mnist_cnn.onnx"
    assert info["resources"]["layers"] == report["resources"]["layers"]
    assert info["resources"]["neurons"] == sum(layer["neurons"] for layer in report["resources"]["layers"])
    assert info["warnings"] == artifact.manifest["warnings"]
    assert info["calibration"]["samples"] == artifact.manifest["options"]["calibration"]["samples"]
    assert set(info["files"]) == set(artifact.files)
    shown = text(info)
    for layer in report["resources"]["layers"]:  # every layer in the table, with its neuron count
        line = next(row for row in shown.splitlines() if row.startswith(layer["name"] + " "))
        assert f"{layer['neurons']:,}" in line
    assert f"{info['resources']['synapses']:,} synapses" in shown
    assert all(warning in shown for warning in info["warnings"])


def test_board_readiness_and_options_are_shown_where_the_target_records_them(artifacts):
    info = summary(artifacts["loihi"].root)
    assert info["board"] == {"ready": True, "reason": artifacts["loihi"].manifest["target"]["board_reason"]}
    shown = text(info)
    assert "board        board-ready: binary: stock processes" in shown
    assert "options      profile=board" in shown
    assert summary(artifacts["reference"].root)["board"] is None
    assert "calibration  none" in text(summary(artifacts["reference"].root))


def test_markdown_has_the_facts_the_layer_table_and_the_warnings(artifacts):
    info = summary(artifacts["spinnaker"].root)
    document = markdown(info)
    assert document.startswith("# mnist_cnn.onnx for spinnaker\n")
    assert "| layer | op | neurons | synapses | fan-in | fan-out | core |" in document
    layers = document.split("## Layers")[1].split("\n## ")[0]
    assert layers.count("\n| /") == len(info["resources"]["layers"])
    assert "## Warnings" in document
    assert info["warnings"][0] in document
    assert "`manifest.json`" not in document  # the files the manifest lists, not the manifest itself
    assert "`spinnaker.json`" in document


def test_commands_print_and_write_the_summary(artifacts, tmp_path, capsys):
    folder = artifacts["spinnaker"].root
    out = run_cli(capsys, "inspect", folder)
    assert out.code == 0
    assert "target       spinnaker" in out.out
    out = run_cli(capsys, "inspect", folder, "--json")
    assert out.code == 0
    assert json.loads(out.out)["target"]["name"] == "spinnaker"
    out = run_cli(capsys, "report", folder, "-o", tmp_path / "r.md")
    assert out.code == 0
    assert (tmp_path / "r.md").read_text() == markdown(summary(folder))
    (tmp_path / "dir.md").mkdir()
    out = run_cli(capsys, "report", folder, "-o", tmp_path / "dir.md")  # a folder is not replaced
    assert out.code != 0
    assert (tmp_path / "dir.md").is_dir()
    assert "dir.md" in out.err


def test_a_folder_that_is_not_an_artifact_is_a_one_line_error(artifacts, tmp_path, capsys):
    out = run_cli(capsys, "inspect", tmp_path)
    assert out.code != 0
    assert out.err.strip().count("\n") == 0
    assert "not a neurodeploy artifact" in out.err
    newer = tmp_path / "newer"
    newer.mkdir()
    manifest = dict(artifacts["reference"].manifest)
    manifest["neurodeploy"] = {**manifest["neurodeploy"], "artifact_format": 99}
    (newer / "manifest.json").write_text(json.dumps(manifest))
    out = run_cli(capsys, "report", newer)
    assert out.code != 0
    assert out.err.strip().count("\n") == 0
    assert "artifact format 99" in out.err
    tampered = artifacts["reference"].root
    original = (tampered / "report.json").read_bytes()
    (tampered / "report.json").write_bytes(original.replace(b"{", b"{ ", 1))
    try:
        with pytest.raises(ArtifactError, match="edited or corrupted"):
            summary(tampered)
    finally:
        (tampered / "report.json").write_bytes(original)


def test_numbers_are_grouped_and_missing_ones_are_dashes():
    info = {
        "artifact": "a",
        "neurodeploy": {"version": "0"},
        "target": {"name": "x"},
        "source": {},
        "inputs": [],
        "outputs": [],
        "pipeline": "",
        "calibration": None,
        "target_options": {},
        "has_ann": False,
        "board": None,
        "resources": {"neurons": 1234567, "synapses": None, "cores_used": None, "layers": [], "notes": []},
        "warnings": [],
        "files": {},
    }
    shown = text(info)
    assert "1,234,567 neurons, - synapses, - cores" in shown
    assert "the model arrived spiking" in shown
    assert np.all([line == line.rstrip() for line in shown.splitlines()])


def test_every_artifact_carries_its_summary_as_report_md(artifacts, tmp_path):
    """The compile writes report.md (listed in the manifest, so checked like every file): the summary without the
    folder's path or the file list, so compiling the same model anywhere gives the same bytes."""
    for artifact in artifacts.values():
        assert "report.md" in artifact.files
        written = artifact.read_bytes("report.md").decode()
        assert written == markdown(summary(artifact.root, embedded=True))
        assert str(artifact.root) not in written
        assert "## Files" not in written
    again = compile_model(MNIST / "mnist_cnn.onnx", "reference", tmp_path / "elsewhere")
    assert again.read_bytes("report.md") == artifacts["reference"].read_bytes("report.md")


@pytest.mark.parametrize(
    ("target", "columns"),
    [
        ("loihi", ["layer", "role", "weights", "scale", "threshold", "zeroed", "clipped", "headroom"]),
        ("speck", ["layer", "weights", "scale", "threshold", "zeroed", "max error", "spikes/event"]),
        ("spinnaker", ["layer", "weights", "resolution", "threshold", "zeroed", "wrapped", "max error"]),
        ("brainscales2", ["layer", "weights", "threshold", "zeroed", "clipped", "max error"]),
    ],
)
def test_each_target_says_what_quantization_did_per_layer(artifacts, target, columns):
    artifact = artifacts[target]
    info = summary(artifact.root)
    rows = info["quantization"]
    assert rows
    assert all(list(row) == columns for row in rows)
    report = json.loads((artifact.root / "report.json").read_text())["target"]["quantization"]
    if target in ("spinnaker", "brainscales2"):  # one row per population with inputs; zeroed summed over them
        assert len(rows) == len({entry["post"] for entry in report})
        zeroed = sum(int(row["zeroed"].split(" of ")[0]) for row in rows)
        assert zeroed == sum(entry["zeroed"] for entry in report)
        assert f"{zeroed} of " in info["warnings"][0]  # the same count as the compile's warning
    else:
        assert [row["layer"] for row in rows] == [entry.get("name", entry.get("layer")) for entry in report]
    shown = text(info)
    assert "quantization:" in shown
    assert all(row["layer"] in shown for row in rows)
    assert "## Quantization" in markdown(info)
    assert "## Quantization" in artifact.read_bytes("report.md").decode()  # the compile's report.md has it too


def test_without_the_targets_backend_the_summary_says_so(artifacts, monkeypatch):
    import neurodeploy.inspect as module
    from neurodeploy.errors import UnknownTargetError

    def missing(name):
        raise UnknownTargetError(f"unknown target {name!r}")

    monkeypatch.setattr(module, "get_backend", missing)
    info = summary(artifacts["spinnaker"].root)
    assert info["quantization"] is None
    assert "quantization: the target's backend is not installed here" in text(info)
    assert summary(artifacts["reference"].root)["quantization"] == []  # nothing quantized: nothing to say
