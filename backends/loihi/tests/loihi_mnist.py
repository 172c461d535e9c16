"""The bundled MNIST model compiled for the loihi target, once per test session and conversion profile (a compile
takes seconds; several test modules, including the Lava cross-check, share them)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "mnist"
MODEL = EXAMPLE / "mnist_cnn.onnx"
CALIBRATION = EXAMPLE / "calibration.npz"
TEST_IMAGES = EXAMPLE / "test_images.npz"

PROFILES = {
    "subtract": None,  # the default conversion: reset by subtraction, v(0) = θ/2 -> SubtractiveLIF
    "zero": "reset=zero",  # Lava's LIF, v(0) = θ/2
    "netx": "reset=zero,initial=0",  # what a netx .net expresses: LIF and v(0) = 0
}


@cache
def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="neurodeploy-loihi-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@cache
def compiled(profile: str, target: str = "loihi") -> Artifact:
    """The bundled model compiled for ``target`` with the conversion ``profile`` (a key of PROFILES)."""
    out = _scratch() / f"{target}-{profile}"
    calibration = load_calibration(str(CALIBRATION))
    return compile_model(MODEL, target, out, calibration=calibration, conversion=PROFILES[profile])


@cache
def mnist_test_images() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(TEST_IMAGES)
    return data["x"].astype(np.float32), data["y"]


SILU = ROOT / "examples" / "mnist_silu"


@cache
def compiled_silu(steps: int, target: str = "loihi") -> Artifact:
    """The SiLU example (few-spike codes fitted to SiLU) compiled for ``target`` with ``coding=fs,fs-steps=steps``
    and 64 of its calibration images."""
    out = _scratch() / f"{target}-silu-{steps}"
    calibration = load_calibration(str(SILU / "calibration.npz"), 64)
    return compile_model(
        SILU / "mnist_silu.onnx", target, out, calibration=calibration, conversion=f"coding=fs,fs-steps={steps}"
    )
