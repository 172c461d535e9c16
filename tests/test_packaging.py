"""The core compile path needs numpy and onnx only: torch, onnxruntime and matplotlib stay unimported."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, tempfile, pathlib
import numpy as np
from neurodeploy import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.cli import main
example = pathlib.Path(sys.argv[1]) / "examples" / "mnist"
with tempfile.TemporaryDirectory() as tmp:
    artifact = compile_model(example / "mnist_cnn.onnx", "reference", pathlib.Path(tmp) / "out",
                             calibration=load_calibration(str(example / "calibration.npz")))
    emulate_artifact(artifact, np.zeros((1, 1, 28, 28), np.float32), steps=2)
    main(["targets"])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "onnxruntime", "matplotlib", "scipy"})
print("HEAVY:" + ",".join(heavy))
"""


def test_compile_and_emulate_import_only_numpy_and_onnx():
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, check=True)
    assert "HEAVY:\n" in result.stdout, result.stdout
