"""A Speck artifact's speck.json is read through the manifest and checked (issue #10): its schema, and cores
that agree with each other (the compiled event loop does not check its indices), before anything runs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurodeploy import compile_model, emulate_artifact, load_artifact, load_calibration
from neurodeploy.errors import ArtifactError

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("speck") / "art"
    compile_model(
        MNIST / "mnist_cnn.onnx", "speck2f", out, calibration=load_calibration(str(MNIST / "calibration.npz"), 64)
    )
    return out


@pytest.fixture
def art(tmp_path: Path, compiled: Path) -> Path:
    root = tmp_path / "art"
    shutil.copytree(compiled, root)
    return root


def edit_config(root: Path, change) -> None:
    doc = json.loads((root / "speck.json").read_text())
    change(doc)
    data = json.dumps(doc).encode()
    (root / "speck.json").write_bytes(data)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["speck.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (root / "manifest.json").write_text(json.dumps(manifest))


def first_core(doc: dict) -> dict:
    return next(layer for layer in doc["configuration"]["cnn_layers"] if layer is not None)


def one_image() -> np.ndarray:
    with np.load(MNIST / "test_images.npz") as data:
        return data["x"][:1]


def wider(doc: dict) -> None:  # one more output channel in the weights than the core has neurons for
    weights = first_core(doc)["weights"]
    weights.append(weights[0])


def deeper(doc: dict) -> None:  # weights for more input channels than reach the core
    for f in first_core(doc)["weights"]:
        f.append(f[0])


def unconfigured(doc: dict) -> None:  # a destination core that has no configuration
    idle = doc["configuration"]["cnn_layers"].index(None)
    first_core(doc)["destinations"][0].update(layer=idle, enable=True)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (wider, "weights of shape"),
        (deeper, "weights of shape"),
        (lambda d: first_core(d).update(biases=first_core(d)["biases"][:-1]), "biases of shape"),
        (lambda d: first_core(d)["dimensions"]["output_shape"]["size"].update(x=1), "valid network"),
        (lambda d: first_core(d).update(threshold_high=0), "threshold_high"),
        (unconfigured, "has no configuration"),
        (lambda d: d["host"]["output"].update(shape=[3]), "output's shape"),
        (lambda d: first_core(d).update(weights=[[[[1.5]]]]), "weights: expected a 4-dimensional array of integers"),
    ],
    ids=["wider", "deeper", "biases", "output-size", "threshold", "unconfigured", "output-shape", "float-weights"],
)
@pytest.mark.parametrize("mode", ["binned", "event"])
def test_cores_that_do_not_fit_together_are_refused(art: Path, change, fragment: str, mode: str) -> None:
    edit_config(art, change)
    with pytest.raises(ArtifactError, match=r"speck\.json.*" + fragment):
        emulate_artifact(load_artifact(art), one_image(), steps=2, mode=mode)


def test_speck_json_must_be_listed(art: Path) -> None:
    manifest = json.loads((art / "manifest.json").read_text())
    del manifest["files"]["speck.json"]
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"no file 'speck\.json'"):
        emulate_artifact(art, one_image(), steps=2)
