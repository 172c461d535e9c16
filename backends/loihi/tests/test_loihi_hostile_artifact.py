"""A Loihi artifact is read only through its manifest (issue #10): ``host_graph`` names a plain file of the
artifact, the program's files must be listed, and edits that keep the manifest's checksums in step are still
refused when they point outside the folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.graded import GradedProgram
from neurodeploy_loihi.program import Program

from neurodeploy import emulate_artifact, load_artifact
from neurodeploy.errors import ArtifactError


@pytest.fixture
def art(tmp_path: Path) -> Path:
    root = tmp_path / "art"
    shutil.copytree(compiled("subtract").root, root)
    return root


def relist(root: Path, *names: str) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    for name in names:
        data = (root / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (root / "manifest.json").write_text(json.dumps(manifest))


def point_host_graph(root: Path, description: str, stem: str) -> None:
    doc = json.loads((root / description).read_text())
    doc["input"]["host_graph"] = stem
    (root / description).write_text(json.dumps(doc))
    relist(root, description)


def one_image() -> np.ndarray:
    return mnist_test_images()[0][:1]


@pytest.mark.parametrize("description", ["loihi.json", "graded.json"])
@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_host_graph_outside_the_artifact_is_refused(tmp_path: Path, art: Path, description: str, where: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("host.json", "host.npz"):
        shutil.copy(art / name, outside / name)  # a working graph: only its place is wrong
    stem = "../outside/host" if where == "parent" else str(outside / "host")
    point_host_graph(art, description, stem)
    mode = "graded" if description == "graded.json" else "binary"
    with pytest.raises(ArtifactError, match=rf"{description}: input.host_graph: expected the plain name"):
        emulate_artifact(load_artifact(art), one_image(), steps=2, mode=mode)


def test_host_graph_the_manifest_does_not_list_is_refused(art: Path) -> None:
    for name in ("host.json", "host.npz"):
        shutil.copy(art / name, art / name.replace("host", "host2"))
    point_host_graph(art, "loihi.json", "host2")
    with pytest.raises(ArtifactError, match=r"no file 'host2\.json'"):
        Program.load(load_artifact(art))


@pytest.mark.parametrize("name", ["host.npz", "loihi.npz", "graded.json"])
def test_program_files_must_be_listed(art: Path, name: str) -> None:
    manifest = json.loads((art / "manifest.json").read_text())
    del manifest["files"][name]
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=rf"no file '{name}'"):
        (GradedProgram if name.startswith("graded") else Program).load(art)  # a path: through its manifest
    mode = "graded" if name.startswith("graded") else "binary"
    with pytest.raises(ArtifactError, match=rf"no file '{name}'"):
        emulate_artifact(art, one_image(), steps=2, mode=mode)


def test_a_program_saved_outside_an_artifact_still_loads(tmp_path: Path) -> None:
    program = Program.load(compiled("subtract"))
    program.save(tmp_path)
    again = Program.load(tmp_path)  # a plain folder: the same checks on names and file types, no manifest
    x = one_image()
    np.testing.assert_array_equal(again.run(x, 2).outputs, program.run(x, 2).outputs)
    (tmp_path / "host.npz").unlink()
    (tmp_path / "host.npz").symlink_to(tmp_path / "loihi.npz")
    with pytest.raises(ArtifactError, match="symbolic link"):
        Program.load(tmp_path)


def _edit(root: Path, description: str, change) -> None:
    doc = json.loads((root / description).read_text())
    change(doc)
    (root / description).write_text(json.dumps(doc))
    relist(root, description)


HEADER_EDITS = {
    "input bias_exp beyond 3 bits": ("loihi.json", lambda d: d["input"].update(bias_exp=100), "input.bias_exp"),
    "negative input vth": ("loihi.json", lambda d: d["input"].update(vth=-5), "input.vth"),
    "input vth beyond 17 bits": ("loihi.json", lambda d: d["input"].update(vth=2**70), "input.vth"),
    "input vth not its population's": ("loihi.json", lambda d: d["input"].update(vth=7), "not its population's"),
    "empty current clip": ("loihi.json", lambda d: d["input"].update(current_clip=[5, -5]), "is empty"),
    "current clip beyond the bias": (
        "loihi.json",
        lambda d: d["input"].update(current_clip=[-(2**70), 2**70]),
        "input.current_clip",
    ),
    "negative layer scale": ("loihi.json", lambda d: d["layers"][0].update(scale=-1e300), r"layers\[0\].scale"),
    "zero graded input scale": ("graded.json", lambda d: d["input"].update(scale=0), "input.scale"),
    "huge graded layer scale": ("graded.json", lambda d: d["layers"][1].update(scale=1e300), r"layers\[1\].scale"),
}


@pytest.mark.parametrize("case", list(HEADER_EDITS))
def test_program_headers_outside_the_chips_ranges_are_refused_at_load(art: Path, case: str) -> None:
    """Values the compiler never writes, re-hashed into the manifest: refused when the program is read, naming
    the entry (they used to run, or to fail mid-emulation with an internal error)."""
    description, change, fragment = HEADER_EDITS[case]
    _edit(art, description, change)
    mode = "graded" if description == "graded.json" else "binary"
    with pytest.raises(ArtifactError, match=fragment):
        emulate_artifact(load_artifact(art), one_image(), steps=2, mode=mode)


@pytest.mark.parametrize(
    ("profile", "member"),
    [("subtract", "1/bias_mant"), ("subtract", "1/bias_exp"), ("zero", "1/v0"), ("subtract", "1/weights")],
)
def test_program_arrays_outside_the_chips_ranges_are_refused_at_load(tmp_path: Path, profile: str, member: str) -> None:
    """(Lava's LIF, reset to zero, compensates the pipeline delay in v0, one value per neuron: an array; the
    SubtractiveLIF delays its bias instead and has one v0.)"""
    art = tmp_path / "art"
    shutil.copytree(compiled(profile).root, art)
    arrays = dict(np.load(art / "loihi.npz"))
    arrays[member] = arrays[member].astype(np.int64)
    arrays[member].flat[0] = np.iinfo(np.int64).min
    np.savez(art / "loihi.npz", **arrays)
    relist(art, "loihi.npz")
    with pytest.raises(ArtifactError, match=r"must be integers in \[.*-9223372036854775808"):
        Program.load(load_artifact(art))
