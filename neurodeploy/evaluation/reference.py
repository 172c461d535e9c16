"""The ANN reference: the model's outputs with onnxruntime, independent of neurodeploy's own interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import DataError, NeurodeployError


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise NeurodeployError(
            "evaluate measures the ANN with onnxruntime, which is not installed; pip install neurodeploy[ort]"
        ) from None
    return onnxruntime


def onnxruntime_outputs(model: Path, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's first output on ``x`` with onnxruntime (CPU), in batches (the model's own if fixed)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise DataError(f"{model.name} has {len(inputs)} inputs; evaluate handles one-input models")
    fixed = inputs[0].shape[0] if inputs[0].shape and isinstance(inputs[0].shape[0], int) else None
    step = fixed or batch_size
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if fixed is not None and len(chunk) < fixed:  # a fixed batch size: pad the last chunk, drop the padding
            chunk = np.concatenate([chunk, np.zeros((fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        try:
            out = session.run(None, {inputs[0].name: np.ascontiguousarray(chunk, np.float32)})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DataError(f"onnxruntime cannot run {model.name} on inputs of shape {chunk.shape}: {exc}") from exc
        outputs.append(np.asarray(out)[: min(step, len(x) - start)])
    return np.concatenate(outputs)
