"""The QCFS CIFAR-10 models of ``examples/cifar10_qcfs`` against what their record says: the resources the loihi
target reports (cores and chips per profile), the ANN accuracy on the measured test images (onnxruntime), and
the board profile's graded mode refusing the ResNet's residual Add by name (binary mode runs it). The accuracy of
every mode at every T is measured by ``examples/cifar10_qcfs/measure.py``; its Lava equality is in
``tests/lava/test_cifar_against_lava.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data import load_dataset
from neurodeploy.errors import NeurodeployError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "cifar10_qcfs"
ARCHS = ("vgg", "resnet20")


def cifar10_images(limit: int):
    """The first ``limit`` CIFAR-10 test images; decoding them needs Pillow, which the compatibility environment
    (.venv-py310) goes without: there the test skips (.venv and .venv-lava have it)."""
    pytest.importorskip("PIL.Image", reason="reading CIFAR-10 needs Pillow")
    return load_dataset("cifar10", "test", limit=limit)


def record(arch: str) -> dict:
    return json.loads((EXAMPLES / f"{arch}_snn_accuracy.json").read_text())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("profile", ["exact", "board"])
def test_resources_are_those_recorded(tmp_path, arch, profile):
    artifact = compile_model(
        EXAMPLES / f"{arch}_qcfs.onnx", "loihi", tmp_path / "a", target_options={"profile": profile}
    )
    report = json.loads((artifact.root / "report.json").read_text())
    used, chips = report["resources"], report["target"]["chips"]["used"]
    recorded = record(arch)["runs"][f"loihi binary {profile}"]["resources"]
    assert (used["cores_used"], chips, used["neurons"], used["synapses"]) == (
        recorded["cores"],
        recorded["chips"],
        recorded["neurons"],
        recorded["synapses"],
    )
    assert chips == 1
    assert artifact.manifest["target"]["board_ready"] is recorded["board_ready"] is (profile == "board")


@pytest.mark.parametrize("arch", ARCHS)
def test_recorded_ann_accuracy_is_reproduced(arch):
    import onnxruntime as ort

    measured = record(arch)
    data = cifar10_images(measured["test_images"])
    session = ort.InferenceSession(str(EXAMPLES / f"{arch}_qcfs.onnx"), providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(None, {"input": data.x[i : i + 250]})[0] for i in range(0, len(data.x), 250)])
    accuracy = float((logits.argmax(axis=1) == data.y).mean())
    assert accuracy == pytest.approx(measured["runs"]["reference rate"]["ann_accuracy"], abs=1e-9)


def test_board_graded_mode_names_the_residual_add_it_cannot_map(tmp_path):
    artifact = compile_model(
        EXAMPLES / "resnet20_qcfs.onnx", "loihi", tmp_path / "a", target_options={"profile": "board"}
    )
    x = cifar10_images(1).x
    with pytest.raises(NeurodeployError, match=r"(?s)Add.*binary mode runs it"):
        emulate_artifact(artifact, x, steps=1, mode="graded")
