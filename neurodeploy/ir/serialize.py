"""JSON + npz serialization of graphs, round-tripping every op through the one op registry.

``graph.json`` holds structure and scalar attributes; every numpy array lives in ``weights.npz`` under the key
``"<op index>/<field>"``. Both are written byte-for-byte deterministically (sorted JSON keys, fixed zip
timestamps, stored entries), so compiling twice gives identical files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import ArtifactError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import OP_TYPES, Op
from neurodeploy.ir.types import TensorType

FORMAT = "neurodeploy-ir"
FORMAT_VERSION = 1
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: {type(value).__name__} cannot be serialized")


def graph_to_dict(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The graph as a JSON-ready dict and the arrays it references."""
    arrays: dict[str, np.ndarray] = {}
    ops = []
    for i, op in enumerate(graph.ops):
        attrs: dict[str, Any] = {}
        for key, value in op.attributes().items():
            if isinstance(value, np.ndarray):
                ref = f"{i}/{key}"
                arrays[ref] = value
                attrs[key] = {"array": ref}
            else:
                attrs[key] = _jsonable(value, f"{op.op_type} '{op.name}'.{key}")
        ops.append(
            {
                "op_type": op.op_type,
                "name": op.name,
                "inputs": list(op.inputs),
                "output": op.output,
                "attributes": attrs,
                "meta": _jsonable(op.meta, f"{op.name}.meta"),
            }
        )
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": graph.name,
        "inputs": {k: {"shape": list(t.shape), "dtype": t.dtype} for k, t in graph.inputs.items()},
        "outputs": list(graph.outputs),
        "meta": _jsonable(graph.meta, "graph.meta"),
        "ops": ops,
    }
    return doc, arrays


def _op_from_dict(entry: dict[str, Any], arrays: dict[str, np.ndarray]) -> Op:
    cls = OP_TYPES.get(entry["op_type"])
    if cls is None:
        raise ArtifactError(f"unknown op type {entry['op_type']!r} in serialized graph")
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in entry["attributes"].items():
        if isinstance(value, dict) and set(value) == {"array"}:
            if value["array"] not in arrays:
                raise ArtifactError(f"array {value['array']!r} of op {entry['name']!r} missing from the npz")
            value = arrays[value["array"]]
        elif isinstance(value, list) and types.get(key, "").startswith("tuple"):
            value = tuple(value)
        kwargs[key] = value
    return cls(
        name=entry["name"], inputs=tuple(entry["inputs"]), output=entry["output"], meta=entry.get("meta", {}), **kwargs
    )


def graph_from_dict(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Graph:
    if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        raise ArtifactError(
            f"not a {FORMAT} v{FORMAT_VERSION} document (format={doc.get('format')!r}, version={doc.get('version')!r})"
        )
    inputs = {k: TensorType(tuple(v["shape"]), v.get("dtype", "float32")) for k, v in doc["inputs"].items()}
    ops = [_op_from_dict(entry, arrays) for entry in doc["ops"]]
    return Graph(doc["name"], inputs, list(doc["outputs"]), ops, dict(doc.get("meta", {})))


def dumps_json(doc: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` numpy can read, with the same bytes every time for the same arrays."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc


def save_graph(graph: Graph, folder: Path, stem: str = "graph") -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.npz`` into ``folder``; return the two paths."""
    doc, arrays = graph_to_dict(graph)
    json_path, npz_path = folder / f"{stem}.json", folder / f"{stem}.npz"
    json_path.write_bytes(dumps_json(doc))
    write_npz(npz_path, arrays)
    return [json_path, npz_path]


def load_graph(folder: Path, stem: str = "graph") -> Graph:
    json_path = folder / f"{stem}.json"
    try:
        doc = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {json_path}: {exc}") from exc
    return graph_from_dict(doc, read_npz(folder / f"{stem}.npz"))
