"""JSON + npz serialization of graphs, round-tripping every op through the one op registry.

``graph.json`` holds structure and scalar attributes; every numpy array lives in ``weights.npz`` under the key
``"<op index>/<field>"``. Both are written byte-for-byte deterministically (sorted JSON keys, fixed zip
timestamps, stored entries), so compiling twice gives identical files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from neurodeploy import limits
from neurodeploy.errors import ArtifactError, IRVerificationError, NeurodeployError
from neurodeploy.fileio import open_regular_file
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import OP_TYPES, Op
from neurodeploy.ir.types import TensorType
from neurodeploy.schema import Array, Bool, Dict, Int, List, Map, Number, Optional, Schema, Str, validate

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


_NAME = Str(meaning="a string")
_SHAPE = List(Int(1))
_META = Dict(optional={"lambda": Array("f")})
"""What is read of an op's ``meta`` (the rest is provenance, kept as it is): evaluate's spike scale."""
_GRAPH = Dict(
    {
        "format": Str(choices=(FORMAT,)),
        "version": Int(),
        "name": Str(),
        "inputs": Map(Dict({"shape": _SHAPE}, {"dtype": Str(choices=("float32",))}), max_len=1 << 16),
        "outputs": List(Str(), min_len=1),
        "ops": List(
            Dict(
                {
                    "op_type": Str(),
                    "name": _NAME,
                    "inputs": List(Str()),
                    "output": Str(),
                    "attributes": Map(),
                },
                {"meta": _META},
            )
        ),
    },
    {"meta": Map()},
)
"""The IR JSON document; each op's attributes are checked against its class (:func:`_attribute_schema`)."""

_ARRAY_REF = Dict({"array": Str()})


def _attribute_schema(annotation: str) -> Schema:
    """The JSON form of an op field declared as ``annotation`` (a dataclass field type, as a string); a numpy
    array is held as ``{"array": key}``."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if base == "np.ndarray":
        schema: Schema = _ARRAY_REF
    elif base == "int":
        schema = Int()
    elif base == "float":
        schema = Number()
    elif base == "bool":
        schema = Bool()
    elif base == "str":
        schema = Str()
    elif base == "tuple[int, ...]":
        schema = List(Int())
    elif base.startswith("tuple[") and set(base[6:-1].split(", ")) == {"int"}:
        schema = List(Int(), length=len(base[6:-1].split(", ")))
    else:
        raise TypeError(f"op field type {annotation!r} has no JSON form; add it to _attribute_schema")
    return Optional(schema) if optional else schema


def _op_from_dict(entry: dict[str, Any], arrays: dict[str, np.ndarray], index: int, file: str) -> Op:
    """One op of a validated document; errors name the file, the op and the attribute."""
    where = f"{file}: ops[{index}] ({entry['op_type']} {entry['name']!r})"
    cls = OP_TYPES.get(entry["op_type"])
    if cls is None:
        raise ArtifactError(f"{file}: ops[{index}]: unknown op type {entry['op_type']!r} in serialized graph")
    fields = {
        f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in ("name", "inputs", "output", "meta")
    }
    kwargs: dict[str, Any] = {}
    attributes = entry["attributes"]
    for key in attributes:
        if key not in fields:
            raise ArtifactError(f"{where}: {cls.op_type} has no attribute {key!r}")
    for key, f in fields.items():
        if key not in attributes:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ArtifactError(f"{where}: attribute {key!r} is missing")
            continue
        value = attributes[key]
        validate(_attribute_schema(str(f.type)), value, f"{where}: attribute {key!r}")
        if isinstance(value, dict):
            if value["array"] not in arrays:
                raise ArtifactError(f"{where}: array {value['array']!r} of op {entry['name']!r} missing from the npz")
            value = arrays[value["array"]]
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                bad = int(value.size - np.count_nonzero(np.isfinite(value)))
                raise ArtifactError(
                    f"{where}: attribute {key!r} (array {attributes[key]['array']!r}) holds {bad:,} NaN or "
                    "infinite values; compile never writes them"
                )
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(
            name=entry["name"],
            inputs=tuple(entry["inputs"]),
            output=entry["output"],
            meta=dict(entry.get("meta", {})),
            **kwargs,
        )
    except (TypeError, ValueError, ArithmeticError, IndexError, KeyError) as exc:
        raise ArtifactError(f"{where}: {exc}") from None


def graph_from_dict(doc: Any, arrays: dict[str, np.ndarray], file: str = "graph.json") -> Graph:
    """The graph an IR document describes (``arrays``: its npz), checked: the document against its schema, each
    op against its class, then :meth:`Graph.verify`. Every problem is an ArtifactError naming ``file``."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        got = (doc.get("format"), doc.get("version")) if isinstance(doc, dict) else (None, None)
        raise ArtifactError(
            f"{file} is not a {FORMAT} v{FORMAT_VERSION} document (format={got[0]!r}, version={got[1]!r})"
        )
    validate(_GRAPH, doc, file)
    try:
        inputs = {k: TensorType(tuple(v["shape"]), v.get("dtype", "float32")) for k, v in doc["inputs"].items()}
    except ValueError as exc:
        raise ArtifactError(f"{file}: inputs: {exc}") from None
    ops = [_op_from_dict(entry, arrays, i, file) for i, entry in enumerate(doc["ops"])]
    graph = Graph(doc["name"], inputs, list(doc["outputs"]), ops, dict(doc.get("meta", {})))
    try:
        graph.verify()
    except (IRVerificationError, TypeError, ValueError, ArithmeticError, IndexError, KeyError) as exc:
        raise ArtifactError(f"{file} does not describe a valid graph: {exc}") from None
    return graph


def dumps_json(doc: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def write_npz(path: Path | BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` numpy can read, with the same bytes every time for the same arrays (into a path, or a binary
    file opened for writing)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def read_npz(
    source: bytes | bytearray | str | os.PathLike,
    what: str | None = None,
    *,
    error: type[NeurodeployError] = ArtifactError,
    cap: str = "max_file_bytes",
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``: ``source`` is its bytes (``what`` names it in messages) or a path (a regular
    file, no symbolic link). Read safely, whoever wrote it: every member must be a ``KEY.npy`` stored
    uncompressed, as :func:`write_npz` writes them (so no member holds more bytes than the file: no zip bomb);
    declared sizes, and their total, are checked against the cap ``cap`` (:mod:`neurodeploy.limits`) before
    anything is read; reads stop at the declared size; each header is parsed (no object or pickled arrays) and
    the data must be exactly shape x itemsize bytes. Problems raise ``error`` naming the file, a too large
    member a LimitError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = what or "the npz"
        return _read_npz(io.BytesIO(source), name, error, cap)
    path = Path(source)
    name = what or str(path)
    try:
        f = open_regular_file(path, error=error)
    except FileNotFoundError:
        raise error(f"{name} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from None
    with f:
        return _read_npz(f, name, error, cap)


def _read_npz(f: BinaryIO, name: str, error: type[NeurodeployError], cap: str) -> dict[str, np.ndarray]:
    try:
        _check_directory_size(f, name, error)
        with zipfile.ZipFile(f) as zf:
            members = zf.infolist()
            seen: set[str] = set()
            for info in members:
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise error(f"{name}: member {info.filename!r} is not a .npy array")
                if info.filename in seen:
                    raise error(f"{name}: member {info.filename!r} appears twice")
                seen.add(info.filename)
                if info.compress_type != zipfile.ZIP_STORED:
                    raise error(
                        f"{name}: member {info.filename!r} is compressed; artifacts store their arrays "
                        "uncompressed (a compressed member can expand far beyond the file's recorded size)"
                    )
                limits.check(cap, info.file_size, f"{name}: member {info.filename!r}")
                if info.compress_size != info.file_size:
                    raise error(
                        f"{name}: member {info.filename!r} is stored uncompressed in {info.compress_size:,} bytes "
                        f"but declares {info.file_size:,}"
                    )
            limits.check(cap, sum(info.file_size for info in members), f"{name}: its members together")
            arrays = {}
            for info in members:
                with zf.open(info) as member:
                    data = member.read(info.file_size + 1)
                if len(data) != info.file_size:
                    raise error(
                        f"{name}: member {info.filename!r} holds {len(data):,} bytes, its entry says {info.file_size:,}"
                    )
                arrays[info.filename[: -len(".npy")]] = _parse_npy(data, f"{name}: member {info.filename!r}", error)
            return arrays
    except NeurodeployError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        struct.error,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise error(f"cannot read {name}: {exc}") from None
    except RuntimeError as exc:  # an encrypted member
        raise error(f"cannot read {name}: {exc}") from None


_MAX_DIRECTORY_BYTES = 4 << 20
"""The zip directory of an npz is read whole into Python objects (some 10x its size), so it is capped: 4 MiB
lists some 60000 arrays, far more than any model has."""


def _check_directory_size(f: BinaryIO, name: str, error: type[NeurodeployError]) -> None:
    end = getattr(zipfile, "_EndRecData", None)
    size_field = getattr(zipfile, "_ECD_SIZE", None)
    if end is None or size_field is None:  # not in this Python's zipfile: ZipFile's own checks only
        return
    record = end(f)
    f.seek(0)
    if record and record[size_field] > _MAX_DIRECTORY_BYTES:
        raise error(
            f"{name}: its zip directory has {record[size_field]:,} bytes, more than the "
            f"{_MAX_DIRECTORY_BYTES:,} an npz of arrays needs"
        )


def _parse_npy(data: bytes, where: str, error: type[NeurodeployError]) -> np.ndarray:
    """An array from the bytes of a ``.npy``: header checked, no objects, data exactly shape x itemsize."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, tokenize errors, ... on junk
        raise error(f"{where} has a bad .npy header: {exc}") from None
    if dtype.hasobject:
        raise error(f"{where} holds Python objects ({dtype}); only numeric arrays are read")
    if dtype.itemsize == 0:
        raise error(f"{where} has elements of 0 bytes ({dtype}); only numeric arrays are read")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise error(f"{where} has a bad shape {shape}")
    count = math.prod(shape)
    offset = f.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise error(
            f"{where}: shape {shape} of {dtype} needs {count * dtype.itemsize:,} bytes, the member holds "
            f"{len(data) - offset:,}"
        )
    if count == 0:
        return np.empty(shape, dtype=dtype)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C").copy(order="K")


def save_graph(graph: Graph, folder: Path, stem: str = "graph") -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.npz`` into ``folder``; return the two paths."""
    doc, arrays = graph_to_dict(graph)
    json_path, npz_path = folder / f"{stem}.json", folder / f"{stem}.npz"
    json_path.write_bytes(dumps_json(doc))
    write_npz(npz_path, arrays)
    return [json_path, npz_path]
