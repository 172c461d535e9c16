"""neurodeploy: compile trained ANNs (ONNX) into spiking networks for neuromorphic chips, and emulate them.

    >>> from neurodeploy import compile_model, emulate_artifact
    >>> artifact = compile_model("model.onnx", "reference", "out/", calibration=load_calibration("mnist"))
    >>> result = emulate_artifact(artifact, x, steps=32)

The core imports with numpy and onnx alone.
"""

from neurodeploy._version import __version__
from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends.registry import available_backends, get_backend
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.frontend.onnx import import_onnx

__all__ = [
    "Artifact",
    "__version__",
    "available_backends",
    "compile_model",
    "emulate_artifact",
    "get_backend",
    "import_onnx",
    "load_artifact",
    "load_calibration",
]
