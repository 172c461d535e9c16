"""Read an ONNX file safely: clear errors for missing, corrupt or non-ONNX files, and external data that must
stay inside the model's folder."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import external_data_helper

from neurodeploy.errors import ModelLoadError


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                tensors.append(attr.t)
    return [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    base = path.parent.resolve()
    for tensor in _external_tensors(model):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(base):
            raise ModelLoadError(
                f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the model's "
                f"folder {base}; only files inside that folder are read."
            )
        if not target.is_file():
            raise ModelLoadError(
                f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, which does not "
                f"exist next to the model."
            )
        try:
            external_data_helper.load_external_data_for_tensor(tensor, str(base))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{path}: cannot read external data of tensor {tensor.name!r} from {location!r}: {exc}"
            ) from exc
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def load_model(path: str | Path) -> onnx.ModelProto:
    """Parse an ONNX file (and its external data) into a ModelProto, or raise ModelLoadError."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"Model file {path} does not exist.")
    if not path.is_file():
        raise ModelLoadError(f"Model path {path} is not a file.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-like errors, or OSError
        raise ModelLoadError(
            f"{path} is not a readable ONNX model (truncated or corrupt?): {type(exc).__name__}: {exc}".rstrip(": ")
        ) from exc
    if model.ir_version == 0 or not model.HasField("graph") or not model.graph.node:
        raise ModelLoadError(f"{path} is not an ONNX model: it parses, but has no IR version or no graph nodes.")
    _load_external_data(model, path)
    return model
