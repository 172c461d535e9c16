"""Read an ONNX file safely: clear errors for missing, corrupt or non-ONNX files, and external data that must
stay inside the model's folder.

A model names its external data files itself, so every tensor a model can carry is checked before anything is
read: initializers, sparse initializers, node attributes of any declared type (``t``, ``tensors``,
``sparse_tensor``, ``sparse_tensors``; protobuf keeps these fields whatever the attribute's type says),
subgraphs (``g``, ``graphs``) at any depth, model-local functions and training graphs. neurodeploy reads the
bytes itself (onnx would resolve a path against any base folder it is given, the working directory included)
and then clears every external-data reference, so nothing later can read a file on the model's behalf.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import onnx

from neurodeploy.errors import ModelLoadError

MAX_LOCATION_CHARS = 1024
"""The longest external-data location accepted (file systems allow 4,096 bytes per path at most)."""


def _graph_tensors(graph: onnx.GraphProto, where: str) -> Iterator[tuple[str, onnx.TensorProto]]:
    for tensor in graph.initializer:
        yield f"{where}initializer {tensor.name!r}", tensor
    for sparse in graph.sparse_initializer:
        yield f"{where}sparse initializer {sparse.values.name!r} (values)", sparse.values
        yield f"{where}sparse initializer {sparse.values.name!r} (indices)", sparse.indices


def _node_tensors(
    node: onnx.NodeProto, where: str
) -> Iterator[tuple[str, onnx.TensorProto] | tuple[str, onnx.GraphProto]]:
    node_name = node.name or node.op_type
    for attr in node.attribute:
        label = f"{where}attribute {attr.name!r} of node {node_name!r}"
        # Every field is looked at, whatever attr.type declares: a FLOAT attribute can still carry a tensor.
        if attr.HasField("t"):
            yield label, attr.t
        for i, tensor in enumerate(attr.tensors):
            yield f"{label} (tensor {i})", tensor
        if attr.HasField("sparse_tensor"):
            yield f"{label} (values)", attr.sparse_tensor.values
            yield f"{label} (indices)", attr.sparse_tensor.indices
        for i, sparse in enumerate(attr.sparse_tensors):
            yield f"{label} (sparse tensor {i} values)", sparse.values
            yield f"{label} (sparse tensor {i} indices)", sparse.indices
        if attr.HasField("g"):
            yield f"{label} (subgraph)", attr.g
        for i, graph in enumerate(attr.graphs):
            yield f"{label} (subgraph {i})", graph


def all_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every TensorProto the model holds, anywhere, with a description of where (iteratively: subgraphs may nest
    deeper than Python's recursion limit)."""
    pending: list[tuple[str, onnx.GraphProto]] = [("", model.graph)]
    for info in model.training_info:
        pending.append(("training initialization: ", info.initialization))
        pending.append(("training algorithm: ", info.algorithm))
    nodes: list[tuple[str, onnx.NodeProto]] = []
    for function in model.functions:
        nodes.extend((f"function {function.name!r}: ", node) for node in function.node)
    while pending or nodes:
        if pending:
            where, graph = pending.pop()
            yield from _graph_tensors(graph, where)
            nodes.extend((where, node) for node in graph.node)
            continue
        where, node = nodes.pop()
        for label, item in _node_tensors(node, where):
            if isinstance(item, onnx.GraphProto):
                pending.append((f"{label}: ", item))
            else:
                yield label, item


def external_tensors(model: onnx.ModelProto) -> list[tuple[str, onnx.TensorProto]]:
    """The tensors that keep their data in an external file."""
    return [(label, t) for label, t in all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]


def _entries(path: Path, label: str, tensor: onnx.TensorProto) -> dict[str, str]:
    info: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in info:
            raise ModelLoadError(f"{path}: {label} names its external-data {entry.key!r} twice")
        info[entry.key] = entry.value
    return info


def _offset(path: Path, label: str, info: dict[str, str], key: str) -> int | None:
    text = info.get(key)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 20:
        raise ModelLoadError(f"{path}: {label} has external-data {key} {text[:40]!r}; expected a whole number >= 0")
    return int(text)


def _external_file(path: Path, base: Path, label: str, location: str) -> Path:
    """The file ``location`` names, checked: non-empty, no NUL, bounded, relative, inside ``base`` once
    symlinks are resolved, and a regular file."""
    shown = location if len(location) <= 200 else f"{location[:200]}..."
    if not location:
        raise ModelLoadError(f"{path}: {label} keeps its data in an external file with an empty location")
    if "\0" in location:
        raise ModelLoadError(f"{path}: {label} has an external-data location {shown!r} with a NUL character")
    if len(location) > MAX_LOCATION_CHARS:
        raise ModelLoadError(
            f"{path}: {label} has an external-data location of {len(location):,} characters "
            f"(at most {MAX_LOCATION_CHARS:,} are accepted)"
        )
    outside = ModelLoadError(
        f"{path}: {label} keeps its data at {shown!r}, outside the model's folder {base}; only files "
        f"inside that folder are read."
    )
    if Path(location).is_absolute() or location.startswith(("/", "\\")):
        raise outside
    try:
        target = (base / location).resolve()
        if not target.is_relative_to(base):
            raise outside
        exists = target.exists()
        regular = target.is_file()
    except OSError as exc:  # a component too long, a symlink loop, a permission problem
        raise ModelLoadError(f"{path}: {label}: cannot resolve external-data location {shown!r}: {exc}") from None
    if not exists:
        raise ModelLoadError(f"{path}: {label} keeps its data in {shown!r}, which does not exist next to the model.")
    if not regular:
        raise ModelLoadError(f"{path}: {label} keeps its data in {shown!r}, which is not a regular file.")
    return target


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    base = path.parent.resolve()
    for label, tensor in external_tensors(model):
        info = _entries(path, label, tensor)
        location = info.get("location", "")
        target = _external_file(path, base, label, location)
        offset = _offset(path, label, info, "offset") or 0
        length = _offset(path, label, info, "length")
        try:
            with open(target, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if offset > size or (length is not None and offset + length > size):
                    raise ModelLoadError(
                        f"{path}: {label} asks for bytes {offset:,} to "
                        f"{offset + (length or 0):,} of {location!r}, which holds {size:,} bytes"
                    )
                file.seek(offset)
                data = file.read(size - offset if length is None else length)
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read external data of {label} from {location!r}: {exc}") from exc
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    # Tensors that do not say EXTERNAL may still carry stale entries; drop them so nothing can act on them later.
    for _label, tensor in all_tensors(model):
        if len(tensor.external_data):
            del tensor.external_data[:]


def refuse_external_data(model: onnx.ModelProto, where: str) -> None:
    """Raise ModelLoadError if any tensor still keeps its data in an external file (a ModelProto loaded without
    its data: there is no model folder to read it from safely)."""
    pending = external_tensors(model)
    if pending:
        label = pending[0][0]
        raise ModelLoadError(
            f"{where}: {label} keeps its data in an external file that was not loaded; import the model from its "
            f"file (neurodeploy reads external data only from the model's folder)"
        )


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
    check_text(model, str(path))
    _load_external_data(model, path)
    refuse_external_data(model, str(path))
    return model


def _repeated(field: object) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 5.29; older ones have only ``label``
    if flag is not None:
        return bool(flag)
    return field.label == field.LABEL_REPEATED  # type: ignore[attr-defined]


def check_text(model: onnx.ModelProto, where: str) -> None:
    """Raise ModelLoadError if any text field of the model (a name, an op type, a domain, a string attribute
    ...) is not valid UTF-8: protobuf hands such fields over as bytes, which no later step expects. Walks every
    message iteratively (subgraphs may nest deeper than Python's recursion limit); arrays of numbers are not
    visited."""
    pending: list = [model]
    while pending:
        message = pending.pop()
        for field, value in message.ListFields():
            if field.type == field.TYPE_MESSAGE:
                if _repeated(field):
                    pending.extend(value)
                else:
                    pending.append(value)
            elif field.type == field.TYPE_STRING:
                for text in value if _repeated(field) else (value,):
                    if not isinstance(text, str):
                        raise ModelLoadError(
                            f"{where}: the field {field.full_name} holds text that is not valid UTF-8: "
                            f"{bytes(text[:60])!r}"
                        )
