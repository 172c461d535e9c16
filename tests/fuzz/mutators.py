"""Seeded, reproducible mutators: each turns ``(seed, sandbox root)`` into a :class:`~.sandbox.Case`.

Families (a case's mutator name starts with its family):

* ``control``: no mutation (must succeed; checks the harness and the seeds).
* ``proto``: protobuf-level edits of real and small models (attributes, inputs/outputs, op types, opsets,
  initializers, non-finite weights, BatchNorm, external data pointing anywhere, huge shapes, long chains, cycles,
  duplicate outputs), then compile (and emulate what compiled).
* ``bytes``: bit flips, truncation, inserted/deleted/overwritten byte runs, splices of two models; then compile.
* ``artifact``: edits of compiled artifacts (JSON fields, path-like names, npz members, zip bombs, symlinks,
  FIFOs, unlisted and deleted files, the manifest's ``files``), re-signed so the checksums still match; then
  emulate.
* ``input``: hostile inputs, labels, steps and options for emulate (and evaluate).
* ``output``: output paths that already exist as FIFOs, symlinks, files or foreign folders.

A mutator sees only its ``random.Random`` (seeded from the mutator name and the case seed), the seed corpus and
the base artifacts, so the same ``(mutator, seed)`` gives the same case; only absolute paths into the sandbox
depend on ``root``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import posixpath
import random
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from .sandbox import CANARY, CANARY_A, CANARY_B, Case, Dir, Fifo, FileSpec, Link
from .seeds import BASES, CALIBRATION, Base, Seed, corpus, inputs_for

MODEL = "model/model.onnx"
NAN, INF = float("nan"), float("inf")
INT_SPECIALS = [-1, 0, 1, 2, 3, 7, -(2**31), 2**31 - 1, 2**32, 2**40, 2**62, 2**63 - 1, -(2**63)]
FLOAT_SPECIALS = [NAN, INF, -INF, 1e38, -1e38, 3.4e38, 0.0, -0.0, 1e-45, -1.0, 1e30]
STRING_SPECIALS = [b"", b"\x00", b"x" * 5000, b"NOTSET", b"SAME_UPPER", b"VALID", b"\xff\xfe\xfd", b"../secret.txt"]
SUPPORTED_OPS = [
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Floor",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Softmax",
    "Squeeze",
    "Sub",
    "Unsqueeze",
    "Cast",
    "ConstantOfShape",
    "Gather",
    "Shape",
    "Slice",
    "Transpose",
]
OTHER_OPS = ["Pad", "LeakyRelu", "Sigmoid", "Loop", "If", "Scan", "Expand", "NotAnOp", "", "Conv\x00", "conv"]


class Ctx:
    """What a mutator builds a case with: its random generators, the files, the commands and the expectation."""

    def __init__(self, mutator: str, seed: int, root: Path, bases: Path | None) -> None:
        self.mutator, self.seed, self.root, self.bases = mutator, seed, Path(root), bases
        self.rng = random.Random(f"{mutator}/{seed}")
        self.np = np.random.default_rng(self.rng.getrandbits(64))
        self.files: dict[str, FileSpec] = {}
        self.commands: list[list[str]] = []
        self.outputs: dict[str, str] = {}
        self.notes: list[str] = []
        self.expect: str | None = None
        self.why = ""
        self.same_outputs: tuple[str, str] | None = None
        self.unlisted: list[str] = []

    # small helpers
    def pick(self, seq):
        seq = list(seq)
        return seq[self.rng.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def note(self, text: str) -> None:
        self.notes.append(text)

    def reject(self, why: str, kind: str = "reject") -> None:
        """Exit status 0 would be a finding: the command accepted ``why``."""
        if self.expect is None:
            self.expect, self.why = kind, why
        self.note(f"[expects rejection: {why}]")

    def canary_abs(self, which: str = "A") -> str:
        return str(self.root / (CANARY if which == "A" else f"cwd/{CANARY}"))

    def npz(self, rel: str, **arrays) -> str:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self.files[rel] = buf.getvalue()
        return "../" + rel

    def case(self) -> Case:
        return Case(
            mutator=self.mutator,
            seed=self.seed,
            files=self.files,
            commands=self.commands,
            outputs=self.outputs,
            note="; ".join(self.notes),
            expect=self.expect,
            why=self.why,
            same_outputs=self.same_outputs,
            unlisted=sorted(self.unlisted),
        )

    # seeds, models and commands
    def pick_seed(self, needs: str | None = None, real: float = 0.25, compiles: bool = False) -> Seed:
        seeds = list(corpus().values())
        if needs is not None:
            seeds = [s for s in seeds if any(n.op_type == needs for n in s.model().graph.node)] or seeds
        if compiles:
            seeds = [s for s in seeds if s.targets]
        reals, small = [s for s in seeds if s.real], [s for s in seeds if not s.real]
        pool = reals if reals and (not small or self.chance(real)) else small
        return self.pick(pool)

    def pick_target(self, seed: Seed) -> str:
        if not seed.targets or self.chance(0.55):
            return "reference"
        return self.pick(seed.targets)

    def compile_cmd(self, seed: Seed, target: str, model_arg: str = "../" + MODEL, emulate: bool = True) -> None:
        argv = ["compile", model_arg, "--target", target, "-o", "out", "-q"]
        if seed.input_shape == (1, 28, 28) and seed.real:
            self.files["data/cal.npz"] = CALIBRATION.read_bytes()
            argv += ["--calibration", "../data/cal.npz", "--calibration-samples", "32"]
        self.commands.append(argv)
        self.outputs["cwd/out"] = "artifact"
        if emulate:
            x = self.npz("data/x.npz", x=inputs_for(seed, 2, self.np))
            self.commands.append(["emulate", "out", "--input", x, "--output", "y.npz", "-q"])
            self.outputs["cwd/y.npz"] = "file"


@dataclass(frozen=True)
class Mutator:
    name: str
    fn: Callable[[Ctx], None]
    weight: float = 1.0
    needs_bases: bool = False

    @property
    def family(self) -> str:
        return self.name.partition(".")[0]


MUTATORS: dict[str, Mutator] = {}


def mutator(name: str, weight: float = 1.0, needs_bases: bool = False):
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        MUTATORS[name] = Mutator(name, fn, weight, needs_bases)
        return fn

    return register


def make_case(name: str, seed: int, root: Path, bases: Path | None) -> Case:
    """The case ``(name, seed)`` for a sandbox at ``root`` (base artifacts in ``bases``)."""
    ctx = Ctx(name, seed, root, bases)
    MUTATORS[name].fn(ctx)
    return ctx.case()


# --- tensors and attributes ------------------------------------------------------------------------------------


def _set_array(tensor: TensorProto, array: np.ndarray) -> None:
    tensor.CopyFrom(numpy_helper.from_array(np.asarray(array), tensor.name))


def _to_array(tensor: TensorProto) -> np.ndarray | None:
    try:
        return numpy_helper.to_array(tensor)
    except Exception:
        return None


def _float_tensors(model: onnx.ModelProto) -> list[TensorProto]:
    """Float weights: initializers and Constant tensors (not shape arithmetic)."""
    found = [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                found.append(attr.t)
    return found


def _consumers(model: onnx.ModelProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if name in n.input]


_ATTR_FIELDS = ("f", "i", "s", "t", "g", "sparse_tensor", "tp", "floats", "ints", "strings", "tensors", "graphs")


def _clear_attr(attr: AttributeProto) -> None:
    for name in _ATTR_FIELDS:
        attr.ClearField(name)


def _numbers(attr: AttributeProto) -> list[float]:
    if attr.type == AttributeProto.INT:
        return [attr.i]
    if attr.type == AttributeProto.FLOAT:
        return [attr.f]
    if attr.type in (AttributeProto.INTS, AttributeProto.FLOATS):
        return list(attr.ints or attr.floats) or [1]
    if attr.type == AttributeProto.TENSOR:
        array = _to_array(attr.t)
        if array is not None and array.dtype.kind in "biuf" and array.size:
            return [float(v) for v in array.ravel()[:16]]
    return [1]


def _int(v: float) -> int:
    return int(max(-(2**63), min(2**63 - 1, v))) if math.isfinite(v) else 0


def _hostile_tensor(ctx: Ctx, name: str) -> TensorProto:
    """A tensor that is wrong in one way."""
    kind = ctx.pick(["empty", "nan", "huge_dims", "string", "int", "undefined", "raw_short", "rank7"])
    ctx.note(f"tensor -> {kind}")
    if kind == "empty":
        return numpy_helper.from_array(np.zeros((0,), np.float32), name)
    if kind == "nan":
        return numpy_helper.from_array(np.float32([NAN]), name)
    if kind == "huge_dims":
        t = TensorProto(name=name, data_type=TensorProto.FLOAT)
        t.dims.extend([2**31, 2**20])
        return t
    if kind == "string":
        return helper.make_tensor(name, TensorProto.STRING, [2], [b"a", b"b"])
    if kind == "int":
        return numpy_helper.from_array(np.int64([2**62, -1]), name)
    if kind == "undefined":
        return TensorProto(name=name, data_type=0, dims=[1], raw_data=b"\0" * 4)
    if kind == "raw_short":
        return TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[4, 4], raw_data=b"\0" * 7)
    return numpy_helper.from_array(np.ones([1] * 7, np.float32), name)


def _set_attr_value(ctx: Ctx, attr: AttributeProto, new_type: int) -> None:
    numbers = _numbers(attr)
    _clear_attr(attr)
    attr.type = new_type
    if new_type == AttributeProto.FLOAT:
        attr.f = float(numbers[0])
    elif new_type == AttributeProto.INT:
        attr.i = _int(numbers[0])
    elif new_type == AttributeProto.STRING:
        attr.s = str(numbers[0]).encode()
    elif new_type == AttributeProto.TENSOR:
        dtype = ctx.pick([np.float32, np.int64])
        attr.t.CopyFrom(numpy_helper.from_array(np.array([v if math.isfinite(v) else 0 for v in numbers], dtype)))
    elif new_type == AttributeProto.FLOATS:
        attr.floats.extend(float(v) for v in numbers)
    elif new_type == AttributeProto.INTS:
        attr.ints.extend(_int(v) for v in numbers)
    elif new_type == AttributeProto.STRINGS:
        attr.strings.extend(str(v).encode() for v in numbers)
    elif new_type == AttributeProto.GRAPH:
        attr.g.CopyFrom(helper.make_graph([], "sub", [], []))
    elif new_type == AttributeProto.TENSORS:
        attr.tensors.append(numpy_helper.from_array(np.float32(numbers)))


ATTR_TYPES = [
    AttributeProto.UNDEFINED,
    AttributeProto.FLOAT,
    AttributeProto.INT,
    AttributeProto.STRING,
    AttributeProto.TENSOR,
    AttributeProto.GRAPH,
    AttributeProto.FLOATS,
    AttributeProto.INTS,
    AttributeProto.STRINGS,
    AttributeProto.TENSORS,
]


def _pick_attr(ctx: Ctx, model: onnx.ModelProto) -> tuple[onnx.NodeProto, AttributeProto] | None:
    nodes = [n for n in model.graph.node if n.attribute]
    if not nodes:
        return None
    node = ctx.pick(nodes)
    return node, ctx.pick(node.attribute)


# --- protobuf-level mutations (each edits the model in place and notes what it did) ----------------------------


def m_attr_type(ctx: Ctx, model: onnx.ModelProto) -> None:
    picked = _pick_attr(ctx, model)
    if picked is None:
        return m_op_swap(ctx, model)
    node, attr = picked
    new_type = ctx.pick([t for t in ATTR_TYPES if t != attr.type])
    name = AttributeProto.AttributeType.Name(new_type)
    if ctx.chance(0.25):
        attr.type = new_type  # the declared type no longer matches the field that holds the value
        ctx.note(f"{node.op_type} '{node.name}'.{attr.name}: declared {name}, value left in the old field")
    else:
        _set_attr_value(ctx, attr, new_type)
        ctx.note(f"{node.op_type} '{node.name}'.{attr.name}: converted to {name}")


def m_attr_value(ctx: Ctx, model: onnx.ModelProto) -> None:
    picked = _pick_attr(ctx, model)
    if picked is None:
        return m_op_swap(ctx, model)
    node, attr = picked
    where = f"{node.op_type} '{node.name}'.{attr.name}"
    if attr.type == AttributeProto.INT:
        attr.i = ctx.pick(INT_SPECIALS)
        ctx.note(f"{where} = {attr.i}")
    elif attr.type == AttributeProto.FLOAT:
        attr.f = ctx.pick(FLOAT_SPECIALS)
        ctx.note(f"{where} = {attr.f}")
        if not math.isfinite(attr.f):
            ctx.reject(f"{where} = {attr.f}")
    elif attr.type in (AttributeProto.INTS, AttributeProto.FLOATS):
        field_ = attr.ints if attr.type == AttributeProto.INTS else attr.floats
        specials = INT_SPECIALS if attr.type == AttributeProto.INTS else FLOAT_SPECIALS
        old = list(field_)
        how = ctx.pick(["empty", "one", "all", "append", "drop", "long"])
        value = ctx.pick(specials)
        new = {
            "empty": [],
            "one": [value if i == 0 else v for i, v in enumerate(old)] if old else [value],
            "all": [value] * max(len(old), 1),
            "append": [*old, value],
            "drop": old[:-1],
            "long": [value] * 1000,
        }[how]
        del field_[:]
        field_.extend(new)
        ctx.note(f"{where}: {how} ({value}) -> {new[:8]}{'...' if len(new) > 8 else ''}")
    elif attr.type == AttributeProto.STRING:
        attr.s = ctx.pick(STRING_SPECIALS)
        ctx.note(f"{where} = {attr.s[:20]!r}")
    elif attr.type == AttributeProto.TENSOR:
        attr.t.CopyFrom(_hostile_tensor(ctx, attr.t.name))
        ctx.note(f"{where}: hostile tensor")
    else:
        attr.strings.append(b"")
        ctx.note(f"{where}: extra string")


def m_attr_drop(ctx: Ctx, model: onnx.ModelProto) -> None:
    picked = _pick_attr(ctx, model)
    if picked is None:
        return m_op_swap(ctx, model)
    node, attr = picked
    if ctx.chance(0.3):
        ctx.note(f"{node.op_type} '{node.name}': every attribute removed")
        del node.attribute[:]
    else:
        ctx.note(f"{node.op_type} '{node.name}': attribute {attr.name} removed")
        node.attribute.remove(attr)


def m_attr_add(ctx: Ctx, model: onnx.ModelProto) -> None:
    node = ctx.pick(model.graph.node)
    kind = ctx.pick(["duplicate", "unknown", "empty_name"])
    if kind == "duplicate" and node.attribute:
        extra = AttributeProto()
        extra.CopyFrom(ctx.pick(node.attribute))
        _set_attr_value(ctx, extra, ctx.pick(ATTR_TYPES[1:]))
    else:
        extra = helper.make_attribute("bogus" if kind != "empty_name" else "x", ctx.pick([1, 2.5, "s", [1, 2]]))
        if kind == "empty_name":
            extra.name = ""
    node.attribute.append(extra)
    ctx.note(f"{node.op_type} '{node.name}': {kind} attribute {extra.name!r} added")


def m_node_io(ctx: Ctx, model: onnx.ModelProto) -> None:
    nodes = list(model.graph.node)
    node = ctx.pick(nodes)
    later = [n for n in nodes[nodes.index(node) + 1 :] if n.output]
    kind = ctx.pick(
        [
            "drop_input",
            "dup_input",
            "empty_input",
            "ghost_input",
            "extra_input",
            "self_input",
            "no_outputs",
            "extra_output",
            "empty_output",
            "rename_output",
            "forward_ref",
        ]
    )
    where = f"{node.op_type} '{node.name}'"
    if kind == "drop_input" and node.input:
        del node.input[ctx.rng.randrange(len(node.input))]
    elif kind == "dup_input" and node.input:
        node.input.append(ctx.pick(node.input))
    elif kind == "empty_input" and node.input:
        node.input[ctx.rng.randrange(len(node.input))] = ""
    elif kind == "ghost_input" and node.input:
        node.input[0] = "ghost"
    elif kind == "extra_input":
        node.input.extend(["input"] * ctx.pick([1, 3]))
    elif kind == "self_input" and node.output:
        node.input.append(node.output[0])
    elif kind == "no_outputs":
        del node.output[:]
    elif kind == "extra_output":
        node.output.append(f"{node.name}_extra")
    elif kind == "empty_output" and node.output:
        node.output[0] = ""
    elif kind == "rename_output" and node.output:
        node.output[0] = node.output[0] + "_renamed"
    elif kind == "forward_ref" and later and node.input:
        node.input[0] = ctx.pick(later).output[0]  # reads a value computed after it: a cycle
    else:
        kind = "no_outputs"
        del node.output[:]
    ctx.note(f"{where}: {kind}")


def m_graph_io(ctx: Ctx, model: onnx.ModelProto) -> None:
    graph = model.graph
    kind = ctx.pick(
        [
            "no_outputs",
            "ghost_output",
            "dup_output",
            "const_output",
            "input_output",
            "no_inputs",
            "dup_input",
            "extra_input",
            "init_as_input",
            "elem_type",
            "rank",
            "neg_dim",
            "zero_dim",
            "no_type",
            "dim_param",
        ]
    )
    inp = graph.input[0] if graph.input else None
    dims = inp.type.tensor_type.shape.dim if inp is not None else None
    if kind == "no_outputs":
        del graph.output[:]
    elif kind == "ghost_output":
        graph.output[0].name = "ghost"
    elif kind == "dup_output":
        graph.output.append(graph.output[0])
    elif kind == "const_output" and graph.initializer:
        graph.output.append(helper.make_tensor_value_info(graph.initializer[0].name, TensorProto.FLOAT, None))
    elif kind == "input_output" and inp is not None:
        graph.output.append(inp)
    elif kind == "no_inputs" and inp is not None:
        graph.input.remove(inp)
    elif kind == "dup_input" and inp is not None:
        graph.input.append(inp)
    elif kind == "extra_input":
        graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 3]))
    elif kind == "init_as_input" and graph.initializer:
        init = ctx.pick(graph.initializer)
        graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    elif kind == "elem_type" and inp is not None:
        inp.type.tensor_type.elem_type = ctx.pick(
            [
                0,
                TensorProto.INT64,
                TensorProto.STRING,
                TensorProto.DOUBLE,
                TensorProto.FLOAT16,
                TensorProto.BOOL,
                TensorProto.COMPLEX64,
                99,
            ]
        )
    elif kind == "rank" and dims is not None:
        if ctx.chance(0.5) and len(dims) > 1:
            del dims[-1]
        else:
            dims.add().dim_value = 1
    elif kind in ("neg_dim", "zero_dim") and dims is not None and len(dims) > 1:
        dims[ctx.rng.randrange(1, len(dims))].dim_value = -5 if kind == "neg_dim" else 0
    elif kind == "no_type" and inp is not None:
        inp.ClearField("type")
    elif kind == "dim_param" and dims is not None and len(dims) > 1:
        dims[ctx.rng.randrange(1, len(dims))].dim_param = ctx.pick(["H", "", "\x00", "x" * 5000])
    else:
        kind = "no_outputs"
        del graph.output[:]
    ctx.note(f"graph: {kind}")


def m_op_swap(ctx: Ctx, model: onnx.ModelProto) -> None:
    node = ctx.pick(model.graph.node)
    old = node.op_type
    if ctx.chance(0.2):
        node.domain = ctx.pick(["com.microsoft", "ai.onnx.ml", "x", "ai.onnx"])
        ctx.note(f"{old} '{node.name}': domain {node.domain!r}")
    else:
        node.op_type = ctx.pick(SUPPORTED_OPS + OTHER_OPS)
        ctx.note(f"{old} '{node.name}' -> {node.op_type!r}")


def m_opset(ctx: Ctx, model: onnx.ModelProto) -> None:
    kind = ctx.pick(["version", "version", "none", "duplicate", "ir_version"])
    if kind == "version":
        version = ctx.pick([0, 1, 6, 9, 10, 11, 12, 13, 14, 18, 19, 21, 22, 23, 99, 2**62, -1])
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = version
        ctx.note(f"opset {version}")
    elif kind == "none":
        del model.opset_import[:]
        ctx.note("no opset_import")
    elif kind == "duplicate":
        model.opset_import.append(helper.make_opsetid("", ctx.pick([9, 13, 21])))
        ctx.note("two default-domain opsets")
    else:
        model.ir_version = ctx.pick([0, 1, 3, 4, 11, 99, -1, 2**62])
        ctx.note(f"ir_version {model.ir_version}")


def m_initializer(ctx: Ctx, model: onnx.ModelProto) -> None:
    inits = list(model.graph.initializer)
    if not inits:
        return m_attr_value(ctx, model)
    t = ctx.pick(inits)
    kind = ctx.pick(
        ["dims", "dims", "data_type", "raw_short", "raw_long", "raw_empty", "float_data", "dup_name", "shadow_input"]
    )
    if kind == "dims":
        dims = list(t.dims)
        how = ctx.pick(["append", "drop", "double", "zero", "negative", "huge"])
        if how == "append" or not dims:
            dims.append(ctx.pick([1, 3]))
        elif how == "drop":
            dims.pop()
        else:
            i = ctx.rng.randrange(len(dims))
            dims[i] = {"double": dims[i] * 2, "zero": 0, "negative": -1, "huge": 2**40}[how]
        del t.dims[:]
        t.dims.extend(dims)
        ctx.note(f"initializer {t.name!r}: dims {how} -> {dims}")
    elif kind == "data_type":
        t.data_type = ctx.pick(
            [
                0,
                TensorProto.INT64,
                TensorProto.DOUBLE,
                TensorProto.FLOAT16,
                TensorProto.STRING,
                TensorProto.BOOL,
                TensorProto.INT8,
                TensorProto.COMPLEX64,
                999,
            ]
        )
        ctx.note(f"initializer {t.name!r}: data_type {t.data_type}")
    elif kind.startswith("raw"):
        array = _to_array(t)
        raw = array.tobytes() if array is not None else t.raw_data
        raw = {"raw_short": raw[: max(len(raw) - ctx.pick([1, 3, 4, 100]), 0)], "raw_long": raw + b"\0" * 5}.get(
            kind, b""
        )
        t.ClearField("float_data")
        t.ClearField("int64_data")
        t.raw_data = raw
        ctx.note(f"initializer {t.name!r}: raw_data {len(raw)} bytes ({kind})")
    elif kind == "float_data":
        array = _to_array(t)
        t.ClearField("raw_data")
        if array is not None and array.dtype == np.float32:
            t.float_data.extend(array.ravel()[: max(array.size - 1, 0)].tolist())
        ctx.note(f"initializer {t.name!r}: float_data one short")
    elif kind == "dup_name":
        copy = TensorProto()
        copy.CopyFrom(t)
        copy.dims.append(2)
        model.graph.initializer.append(copy)
        ctx.note(f"initializer {t.name!r} twice")
    else:
        t.name = model.graph.input[0].name if model.graph.input else t.name
        ctx.note(f"initializer {t.name!r} shadows the graph input")


def m_nonfinite(ctx: Ctx, model: onnx.ModelProto) -> None:
    tensors = [t for t in _float_tensors(model) if _to_array(t) is not None and _to_array(t).size]
    if not tensors:
        return m_initializer(ctx, model)
    t = ctx.pick(tensors)
    array = _to_array(t).astype(np.float32).copy()
    value = ctx.pick([NAN, INF, -INF, 1e38, -3e38])
    flat = array.reshape(-1)
    if ctx.chance(0.3):
        flat[:] = value
    else:
        flat[ctx.rng.randrange(flat.size)] = value
    _set_array(t, array)
    ctx.note(f"tensor {t.name!r}: {value}")
    if not math.isfinite(value):
        ctx.reject(f"weight {t.name!r} holds {value}")


def m_batchnorm(ctx: Ctx, model: onnx.ModelProto) -> None:
    nodes = [n for n in model.graph.node if n.op_type == "BatchNormalization" and len(n.input) == 5]
    if not nodes:
        return m_nonfinite(ctx, model)
    node = ctx.pick(nodes)
    inits = {t.name: t for t in model.graph.initializer}
    var = inits.get(node.input[4])
    kind = ctx.pick(["negative_var", "zero_var_eps0", "nan_eps", "negative_eps", "nan_mean", "huge_scale"])
    if kind in ("negative_var", "zero_var_eps0") and var is not None:
        array = _to_array(var).copy()
        array[ctx.rng.randrange(array.size)] = -1.0 if kind == "negative_var" else 0.0
        _set_array(var, array)
        if kind == "zero_var_eps0":
            others = [a for a in node.attribute if a.name != "epsilon"]
            del node.attribute[:]
            node.attribute.extend([*others, helper.make_attribute("epsilon", 0.0)])
        ctx.reject(f"BatchNormalization '{node.name}': {kind}")
    elif kind in ("nan_eps", "negative_eps"):
        eps = NAN if kind == "nan_eps" else -10.0
        others = [a for a in node.attribute if a.name != "epsilon"]
        del node.attribute[:]
        node.attribute.extend([*others, helper.make_attribute("epsilon", eps)])
        ctx.reject(f"BatchNormalization '{node.name}': epsilon {eps}")
    else:
        t = inits.get(node.input[3] if kind == "nan_mean" else node.input[1])
        if t is not None:
            array = _to_array(t).copy()
            array[0] = NAN if kind == "nan_mean" else 1e38
            _set_array(t, array)
            if kind == "nan_mean":
                ctx.reject(f"BatchNormalization '{node.name}': NaN mean")
    ctx.note(f"BatchNormalization '{node.name}': {kind}")


def m_op_params(ctx: Ctx, model: onnx.ModelProto) -> None:
    """Semantically bad parameters of the ops that take them."""
    tweaks: dict[str, list[tuple[str, Any, bool]]] = {
        "Gemm": [
            ("alpha", NAN, True),
            ("alpha", INF, True),
            ("beta", NAN, True),
            ("alpha", 0.0, False),
            ("transA", 1, False),
            ("transB", 7, False),
        ],
        "Conv": [
            ("strides", [0, 0], False),
            ("strides", [-1, -1], False),
            ("dilations", [0, 0], False),
            ("group", 0, False),
            ("group", -1, False),
            ("group", 2**40, False),
            ("pads", [-3] * 4, False),
            ("pads", [1, 1], False),
            ("kernel_shape", [99, 99], False),
            ("auto_pad", "SAME_UPPER", False),
        ],
        "MaxPool": [
            ("kernel_shape", [0, 0], False),
            ("strides", [0, 0], False),
            ("pads", [5] * 4, False),
            ("ceil_mode", 1, False),
            ("storage_order", 1, False),
            ("dilations", [2, 2], False),
        ],
        "AveragePool": [
            ("kernel_shape", [0, 0], False),
            ("count_include_pad", 1, False),
            ("pads", [9] * 4, False),
            ("kernel_shape", [1000, 1000], False),
        ],
        "Concat": [("axis", 5, False), ("axis", -9, False), (None, None, False)],
        "Flatten": [("axis", 9, False), ("axis", -9, False), ("axis", 0, False)],
        "Transpose": [("perm", [0, 0], False), ("perm", [5, 1], False), ("perm", [], False)],
        "Gather": [("axis", 7, False)],
        "Cast": [("to", TensorProto.STRING, False), ("to", 999, False), ("to", TensorProto.INT8, False)],
        "Softmax": [("axis", 5, False)],
        "BatchNormalization": [("epsilon", NAN, True), ("epsilon", -1.0, True), ("training_mode", 1, False)],
        "Clip": [],
        "ConstantOfShape": [],
        "Reshape": [("allowzero", 1, False)],
    }
    candidates = [n for n in model.graph.node if n.op_type in tweaks]
    if not candidates:
        return m_attr_value(ctx, model)
    node = ctx.pick(candidates)
    where = f"{node.op_type} '{node.name}'"
    if node.op_type == "Clip":
        inits = {t.name: t for t in model.graph.initializer}
        bounds = [inits[i] for i in node.input[1:] if i in inits]
        if bounds:
            value = ctx.pick([NAN, -INF, 100.0, -100.0])
            _set_array(ctx.pick(bounds), np.float32(value))
            ctx.note(f"{where}: a bound = {value}")
            if math.isnan(value):
                ctx.reject(f"{where}: NaN bound")
        return
    if node.op_type == "ConstantOfShape":
        return m_huge(ctx, model)
    if node.op_type == "Gather" or node.op_type == "Slice":
        inits = {t.name: t for t in model.graph.initializer}
        index = [inits[i] for i in node.input[1:] if i in inits]
        if index and ctx.chance(0.6):
            victim = ctx.pick(index)
            _set_array(victim, np.full(_to_array(victim).shape, ctx.pick([99, -99, 2**62]), np.int64))
            ctx.note(f"{where}: index out of range")
            return
    name, value, reject = ctx.pick(tweaks[node.op_type] or [("axis", 3, False)])
    if name is None:
        del node.attribute[:]
        ctx.note(f"{where}: no attributes (e.g. Concat without axis)")
        return
    others = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    attr_type = AttributeProto.INTS if value == [] else None
    node.attribute.extend([*others, helper.make_attribute(name, value, attr_type=attr_type)])
    ctx.note(f"{where}: {name} = {value}")
    if reject:
        ctx.reject(f"{where}: {name} = {value}")


def _constant_node(ctx: Ctx, model: onnx.ModelProto, t: TensorProto, declared: int) -> AttributeProto:
    """Replace initializer ``t`` by a Constant node whose ``value`` attribute holds it, declared as ``declared``."""
    model.graph.initializer.remove(t)
    node = helper.make_node("Constant", [], [t.name], name=f"const_{t.name}")
    attr = AttributeProto(name="value", type=declared)
    attr.t.CopyFrom(t)
    node.attribute.append(attr)
    model.graph.node.insert(0, node)  # inserts a copy: return the attribute of the node in the model
    return model.graph.node[0].attribute[0]


def m_external_data(ctx: Ctx, model: onnx.ModelProto) -> None:
    """Put a tensor's data "elsewhere": the canaries, system files, odd names, real files with odd offsets."""
    tensors = [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT and _to_array(t) is not None]
    if not tensors:
        return m_initializer(ctx, model)
    t = ctx.pick(tensors)
    array = _to_array(t)
    holder = ctx.pick(["initializer", "initializer", "constant_tensor", "constant_declared_float"])
    if holder != "initializer":
        declared = (
            AttributeProto.TENSOR
            if holder == "constant_tensor"
            else ctx.pick([AttributeProto.FLOAT, AttributeProto.INT, AttributeProto.FLOATS, AttributeProto.STRING])
        )
        t = _constant_node(ctx, model, t, declared).t
    ctx.files["model/weights.bin"] = b"\0" * 64 + array.astype("<f4").tobytes()
    location = ctx.pick(
        [
            "secret.txt",
            "secret.txt",
            "../secret.txt",
            "../secret.txt",
            "abs_canary_a",
            "abs_canary_b",
            "/etc/passwd",
            "/proc/self/environ",
            "/proc/self/fd/0",
            "/dev/zero",
            "",
            ".",
            "..",
            "model.onnx",
            "a\x00b",
            "x" * 5000,
            "sub/../../secret.txt",
            "link.bin",
            "weights.bin",
            "weights.bin",
            "weights.bin",
        ]
    )
    if location == "link.bin":
        ctx.files["model/link.bin"] = Link("../secret.txt")
    location = {"abs_canary_a": ctx.canary_abs("A"), "abs_canary_b": ctx.canary_abs("B")}.get(location, location)
    info = {"location": location}
    if location == "weights.bin":
        offset = ctx.pick([64, 64, 2**62, -1, "abc", 10**12, 63])
        length = ctx.pick([array.size * 4, array.size * 4 + 4, 10**12, -4, 0, None])
        info["offset"] = str(offset)
        if length is not None:
            info["length"] = str(length)
        size, available = array.size * 4, len(ctx.files["model/weights.bin"])
        readable = isinstance(offset, int) and 0 <= offset and offset + size <= available
        if readable and (length == size or (length is None and offset + size == available)):
            ctx.expect = None  # a readable external tensor (at 63 with its length: shifted a byte, still valid)
        else:
            ctx.reject(f"external data at offset {offset}, length {length}")
    else:
        ctx.reject(f"external data at {location[:40]!r}")
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for key, value in info.items():
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    if ctx.chance(0.1):
        entry = t.external_data.add()
        entry.key, entry.value = "checksum", "\x00" * 3
    ctx.note(f"{holder} {t.name!r}: external data {json.dumps(info)[:120]}")


def m_huge(ctx: Ctx, model: onnx.ModelProto) -> None:
    """Declared sizes that would need tens of GB: input dims, ConstantOfShape, pads, kernels, Reshape targets."""
    graph = model.graph
    kind = ctx.pick(["input_dims", "constant_of_shape", "conv_pads", "reshape", "kernel", "pool_pads"])
    out = graph.output[0].name if graph.output else "logits"
    producer = next((n for n in graph.node if out in n.output), None)
    if kind == "input_dims" and graph.input:
        dims = graph.input[0].type.tensor_type.shape.dim
        values = ctx.pick([[100000, 100000], [2**31, 1], [2**20, 2**20], [1] * 12])
        for d, v in zip(list(dims)[2:], values):
            d.dim_value = v
        for v in values[len(dims) - 2 :]:
            dims.add().dim_value = v
        ctx.note(f"input dims {[d.dim_value for d in dims]}")
    elif kind == "constant_of_shape" and producer is not None:
        shape = ctx.pick([[10**5, 10**5], [2**31], [2**20, 2**20, 3], [-1], [0, 3], [10**6, 10**6]])
        shape_name, cos = "huge_shape", "huge_cos"
        graph.initializer.append(numpy_helper.from_array(np.int64(shape), shape_name))
        graph.node.append(
            helper.make_node(
                "ConstantOfShape",
                [shape_name],
                [cos],
                name="huge_cos",
                value=numpy_helper.from_array(np.float32([0.0]), "v"),
            )
        )
        producer.output[0] = "pre_out"
        graph.node.append(helper.make_node("Add", ["pre_out", cos], [out], name="huge_add"))
        ctx.note(f"ConstantOfShape {shape} added to the output")
    elif kind in ("conv_pads", "kernel", "pool_pads"):
        ops = {
            "conv_pads": ("Conv",),
            "kernel": ("Conv", "MaxPool", "AveragePool"),
            "pool_pads": ("MaxPool", "AveragePool"),
        }
        nodes = [n for n in graph.node if n.op_type in ops[kind]] or [n for n in graph.node if n.op_type == "Conv"]
        if not nodes:
            return m_attr_value(ctx, model)
        node = ctx.pick(nodes)
        name = "kernel_shape" if kind == "kernel" else "pads"
        value = [ctx.pick([10**5, 2**31 - 1, 10**9])] * (2 if kind == "kernel" else 4)
        others = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend([*others, helper.make_attribute(name, value)])
        ctx.note(f"{node.op_type} '{node.name}': {name} {value}")
    else:
        nodes = [n for n in graph.node if n.op_type in ("Reshape", "Flatten")]
        if not nodes:
            return m_attr_value(ctx, model)
        node = ctx.pick(nodes)
        shape = ctx.pick([[10**9, 10**9], [-1, -1], [0, 0, 0], [2**62, 2]])
        graph.initializer.append(numpy_helper.from_array(np.int64(shape), "huge_reshape"))
        node.op_type = "Reshape"
        del node.attribute[:]
        del node.input[1:]
        node.input.append("huge_reshape")
        ctx.note(f"{node.name}: Reshape to {shape}")


def m_cycle(ctx: Ctx, model: onnx.ModelProto) -> None:
    nodes = [n for n in model.graph.node if n.input and n.output]
    if len(nodes) < 2:
        return m_node_io(ctx, model)
    i, j = sorted(ctx.rng.sample(range(len(nodes)), 2))
    kind = ctx.pick(["back_edge", "self_loop", "island"])
    if kind == "back_edge":
        nodes[i].input[0] = nodes[j].output[0]
    elif kind == "self_loop":
        nodes[i].input[0] = nodes[i].output[0]
    else:
        model.graph.node.extend(
            [
                helper.make_node("Identity", ["cyc_b"], ["cyc_a"], name="cyc1"),
                helper.make_node("Relu", ["cyc_a"], ["cyc_b"], name="cyc2"),
            ]
        )
    ctx.note(f"cycle: {kind} ({nodes[i].name} <- {nodes[j].name})")


def m_dup_outputs(ctx: Ctx, model: onnx.ModelProto) -> None:
    nodes = [n for n in model.graph.node if n.output]
    node = ctx.pick(nodes)
    kind = ctx.pick(["other_node", "graph_input", "initializer", "twice"])
    if kind == "other_node" and len(nodes) > 1:
        node.output[0] = ctx.pick([n for n in nodes if n is not node]).output[0]
    elif kind == "graph_input" and model.graph.input:
        node.output[0] = model.graph.input[0].name
    elif kind == "initializer" and model.graph.initializer:
        node.output[0] = ctx.pick(model.graph.initializer).name
    else:
        node.output.append(node.output[0])
    ctx.note(f"{node.op_type} '{node.name}': output duplicates a {kind}")


PROTO_EDITS: dict[str, Callable[[Ctx, onnx.ModelProto], None]] = {
    "attr_type": m_attr_type,
    "attr_value": m_attr_value,
    "attr_drop": m_attr_drop,
    "attr_add": m_attr_add,
    "node_io": m_node_io,
    "graph_io": m_graph_io,
    "op_swap": m_op_swap,
    "opset": m_opset,
    "initializer": m_initializer,
    "nonfinite": m_nonfinite,
    "batchnorm": m_batchnorm,
    "op_params": m_op_params,
    "external_data": m_external_data,
    "huge": m_huge,
    "cycle": m_cycle,
    "dup_outputs": m_dup_outputs,
}
_NEEDS = {"batchnorm": "BatchNormalization"}
_WEIGHTS = {"attr_type": 2.0, "attr_value": 2.0, "external_data": 2.0, "nonfinite": 1.5, "huge": 1.5, "op_params": 1.5}


def _proto_case(ctx: Ctx, edits: list[str]) -> None:
    seed = ctx.pick_seed(needs=_NEEDS.get(edits[0]))
    model = seed.model()
    for edit in edits:
        PROTO_EDITS[edit](ctx, model)
    ctx.files[MODEL] = model.SerializeToString()
    ctx.note(f"seed {seed.name}")
    ctx.compile_cmd(seed, ctx.pick_target(seed), emulate=edits != ["huge"] or ctx.chance(0.5))


for _edit in PROTO_EDITS:

    def _one(ctx: Ctx, edit: str = _edit) -> None:
        _proto_case(ctx, [edit])

    mutator(f"proto.{_edit}", _WEIGHTS.get(_edit, 1.0))(_one)


@mutator("proto.stack", 2.0)
def proto_stack(ctx: Ctx) -> None:
    edits = [ctx.pick([e for e in PROTO_EDITS if e not in ("external_data",)]) for _ in range(ctx.rng.randint(2, 4))]
    _proto_case(ctx, edits)
    if ctx.expect == "reject" and len(edits) > 1:
        ctx.expect = None  # a later edit may have removed what the first one made bad


@mutator("proto.chain", 0.5)
def proto_chain(ctx: Ctx) -> None:
    """Thousands of nodes in one chain, written in order, reversed or shuffled (a quadratic import shows)."""
    seed = corpus()["conv_gemm"]
    model = seed.model()
    n = ctx.pick([1000, 3000, 10000])
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    source, sink = relu.output[0], "chain_end"
    for node in model.graph.node:
        if source in node.input and node is not relu:
            node.input[list(node.input).index(source)] = sink
    chain, prev = [], source
    for i in range(n):
        op = ctx.pick(["Identity"] * 7 + ["Relu"] * 2 + ["Dropout"])
        out = sink if i == n - 1 else f"chain{i}"
        chain.append(helper.make_node(op, [prev], [out], name=f"chain_{i}"))
        prev = out
    order = ctx.pick(["forward", "reversed", "shuffled"])
    if order == "reversed":
        chain.reverse()
    elif order == "shuffled":
        ctx.rng.shuffle(chain)
    model.graph.node.extend(chain)
    ctx.files[MODEL] = model.SerializeToString()
    ctx.note(f"{n}-node chain, {order}")
    ctx.compile_cmd(seed, "reference", emulate=False)


# --- byte-level mutations ----------------------------------------------------------------------------------------


def _bytes_case(ctx: Ctx, mutate: Callable[[Ctx, bytes], bytes]) -> None:
    seed = ctx.pick_seed()
    data = mutate(ctx, seed.data)
    ctx.files[MODEL] = data
    ctx.note(f"seed {seed.name}, {len(seed.data)} -> {len(data)} bytes")
    ctx.compile_cmd(seed, ctx.pick_target(seed))


@mutator("bytes.bitflip", 1.5)
def bytes_bitflip(ctx: Ctx) -> None:
    def flip(ctx: Ctx, data: bytes) -> bytes:
        out = bytearray(data)
        n = ctx.pick([1, 1, 2, 4, 16, 64])
        for _ in range(n):
            out[ctx.rng.randrange(len(out))] ^= 1 << ctx.rng.randrange(8)
        ctx.note(f"{n} bit(s) flipped")
        return bytes(out)

    _bytes_case(ctx, flip)


@mutator("bytes.truncate")
def bytes_truncate(ctx: Ctx) -> None:
    def cut(ctx: Ctx, data: bytes) -> bytes:
        end = ctx.pick([0, 1, 16, ctx.rng.randrange(len(data)), len(data) - 1, len(data) // 2])
        ctx.note(f"truncated at {end}")
        return data[:end]

    _bytes_case(ctx, cut)


@mutator("bytes.runs", 1.5)
def bytes_runs(ctx: Ctx) -> None:
    def runs(ctx: Ctx, data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(ctx.rng.randint(1, 4)):
            at = ctx.rng.randrange(len(out) + 1)
            n = ctx.pick([1, 2, 8, 64, 1000])
            how = ctx.pick(["insert", "delete", "overwrite"])
            run = bytes(ctx.pick([[0xFF] * n, [0] * n, [0x80] * n, list(ctx.np.integers(0, 256, n))]))
            if how == "insert":
                out[at:at] = run
            elif how == "delete":
                del out[at : at + n]
            else:
                out[at : at + n] = run[: len(out) - at]
            ctx.note(f"{how} {n} at {at}")
        return bytes(out)

    _bytes_case(ctx, runs)


@mutator("bytes.splice")
def bytes_splice(ctx: Ctx) -> None:
    def splice(ctx: Ctx, data: bytes) -> bytes:
        other = ctx.pick(list(corpus().values())).data
        a, b = ctx.rng.randrange(len(data)), ctx.rng.randrange(len(other))
        ctx.note(f"first {a} bytes + the other model from {b}")
        return data[:a] + other[b:]

    _bytes_case(ctx, splice)


# --- controls ----------------------------------------------------------------------------------------------------


@mutator("control.model", 0.5)
def control_model(ctx: Ctx) -> None:
    seed = ctx.pick_seed(compiles=True)
    ctx.files[MODEL] = seed.data
    ctx.expect = "ok"
    ctx.note(f"seed {seed.name} unchanged")
    ctx.compile_cmd(seed, ctx.pick_target(seed))


@mutator("control.external_data", 0.3)
def control_external_data(ctx: Ctx) -> None:
    """A model whose largest weights are stored properly next to it (external data inside its folder)."""
    seed = ctx.pick_seed(compiles=True, real=0.0)
    model = seed.model()
    t = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    ctx.files["model/weights.bin"] = t.raw_data
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in {
        "location": "weights.bin",
        "offset": "0",
        "length": str(len(ctx.files["model/weights.bin"])),
    }.items():
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    ctx.files[MODEL] = model.SerializeToString()
    ctx.expect = "ok"
    ctx.note(f"seed {seed.name}, {t.name!r} in weights.bin")
    ctx.compile_cmd(seed, ctx.pick_target(seed))


# --- artifacts ---------------------------------------------------------------------------------------------------


@dataclass
class Art:
    """A base artifact being mutated: its files (manifest.json apart, parsed) and its base."""

    base: Base
    files: dict[str, FileSpec]
    manifest: Any
    manifest_text: bytes | None = None  # set to write these bytes instead of ``manifest`` (after re-signing)
    resign: bool = True
    extra: dict[str, FileSpec] = field(default_factory=dict)  # files outside the artifact (relative to root)


def available_bases(bases: Path | None) -> list[Base]:
    if bases is None:
        return []
    return [b for b in BASES if (bases / b.name / "manifest.json").is_file()]


def _load_art(ctx: Ctx) -> Art:
    found = available_bases(ctx.bases)
    if not found:
        raise LookupError("no base artifacts were prepared")
    small = [b for b in found if not b.calibration]
    base = ctx.pick(small if small and ctx.chance(0.7) else found)
    folder = ctx.bases / base.name
    files: dict[str, FileSpec] = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    manifest = json.loads(files.pop("manifest.json"))
    ctx.note(f"base {base.name}")
    return Art(base, files, manifest)


def _virtual(files: dict[str, FileSpec], root: Path, rel: str, depth: int = 0) -> bytes | None:
    """The bytes a path would read in the sandbox being built (following planned symlinks), if known."""
    if depth > 8:
        return None
    if rel.startswith("/"):
        if rel == str(root / CANARY):
            return CANARY_A
        if rel == str(root / "cwd" / CANARY):
            return CANARY_B
        try:
            return Path(rel).read_bytes() if rel.startswith("/etc/") else None
        except OSError:
            return None
    rel = posixpath.normpath(rel)
    if rel == CANARY:
        return CANARY_A
    if rel == f"cwd/{CANARY}":
        return CANARY_B
    spec = files.get(rel)
    if isinstance(spec, bytes):
        return spec
    if isinstance(spec, Link):
        target = spec.target if spec.target.startswith("/") else posixpath.join(posixpath.dirname(rel), spec.target)
        return _virtual(files, root, target, depth + 1)
    return None


def resign(files: dict[str, FileSpec], manifest: Any, root: Path) -> None:
    """Recompute every well-formed ``files`` entry of ``manifest`` from what the sandbox will hold: a sha256
    string (``{name: sha256}``) or ``{"sha256": ..., "bytes": N}``, whichever format each entry has."""
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(entries, dict):
        return
    for name, entry in entries.items():
        if not isinstance(name, str):
            continue
        content = _virtual(files, root, name if name.startswith("/") else f"art/{name}")
        if content is None:
            continue
        digest = hashlib.sha256(content).hexdigest()
        if isinstance(entry, str):
            entries[name] = digest
        elif isinstance(entry, dict):
            if "sha256" in entry:
                entry["sha256"] = digest
            if "bytes" in entry:
                entry["bytes"] = len(content)


def _listed(manifest: Any) -> set[str]:
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    return {k for k in entries if isinstance(k, str)} if isinstance(entries, dict) else set()


def _emulate_args(ctx: Ctx, art: Art) -> list[str]:
    argv = []
    target = art.manifest.get("target") if isinstance(art.manifest, dict) else None
    modes = target.get("modes") if isinstance(target, dict) else None
    if isinstance(modes, list) and modes and ctx.chance(0.35):
        argv += ["--mode", str(ctx.pick(modes))]
    if ctx.chance(0.3):
        argv += ["--steps", str(ctx.pick([1, 3, 8]))]
    return argv


def _artifact_case(ctx: Ctx, mutate: Callable[[Ctx, Art], None], emulate_extra: list[str] | None = None) -> None:
    art = _load_art(ctx)
    mutate(ctx, art)
    everything = {f"art/{k}": v for k, v in art.files.items()} | art.extra
    if art.resign:
        resign(everything, art.manifest, ctx.root)
    manifest = art.manifest_text
    if manifest is None:
        manifest = json.dumps(art.manifest, indent=2, sort_keys=True).encode()
    ctx.files.update(everything)
    ctx.files["art/manifest.json"] = manifest
    listed = _listed(art.manifest) if art.manifest_text is None else set()
    ctx.unlisted = [f"art/{k}" for k in art.files if k not in listed]
    seed = corpus()[art.base.seed]
    x = ctx.npz("data/x.npz", x=inputs_for(seed, 2, ctx.np), y=np.arange(2) % seed.classes)
    extra = emulate_extra if emulate_extra is not None else _emulate_args(ctx, art)
    ctx.commands.append(["emulate", "../art", "--input", x, "--output", "y.npz", "-q", *extra])
    ctx.outputs["cwd/y.npz"] = "file"


def _json_files(art: Art) -> list[str]:
    return ["manifest.json", *sorted(k for k, v in art.files.items() if k.endswith(".json") and isinstance(v, bytes))]


def _random_path(ctx: Ctx, doc: Any) -> list:
    """A path into ``doc``: descend into a random child until a leaf, or stop early now and then."""
    path, node = [], doc
    while isinstance(node, (dict, list)) and node and not (path and ctx.chance(0.25)):
        key = ctx.pick(node.keys()) if isinstance(node, dict) else ctx.rng.randrange(len(node))
        path.append(key)
        node = node[key]
    return path


def _hostile_paths(ctx: Ctx) -> list[str]:
    return [
        "../secret.txt",
        "../secret",
        "/etc/passwd",
        "/proc/self/fd/0",
        "/proc/self/environ",
        "../../../../etc/passwd",
        ctx.canary_abs("A"),
        ctx.canary_abs("B")[: -len(".txt")],
        "..",
        ".",
        "",
        "x" * 5000,
        "a\x00b",
        "snn",
        "ann",
        "host",
        "../cwd/secret",
    ]


def _json_value(ctx: Ctx, old: Any) -> Any:
    if ctx.chance(0.4):
        if isinstance(old, bool) or old is None:
            return not old
        if isinstance(old, int):
            return ctx.pick([-old, 0, -1, old * 1000, 2**31, 2**63, -(2**63), 10**30, old + 1])
        if isinstance(old, float):
            return ctx.pick([NAN, INF, -INF, -old, 0.0, 1e308, old * 1e6])
        if isinstance(old, str):
            return ctx.pick(_hostile_paths(ctx))
        if isinstance(old, list):
            return ctx.pick([[], old[:-1], old + old, old[::-1], [old]])
        if isinstance(old, dict):
            return ctx.pick([{}, {"array": "../x"}, {k: None for k in old}])
    return ctx.pick(
        [
            None,
            True,
            0,
            -1,
            2**63,
            1.5,
            NAN,
            INF,
            "",
            "x" * 5000,
            [],
            {},
            [None],
            {"array": "0/weight"},
            "../secret.txt",
            "/proc/self/fd/0",
        ]
    )


def _mutate_json(ctx: Ctx, doc: Any, name: str) -> Any:
    path = _random_path(ctx, doc)
    if not path:
        return _json_value(ctx, doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    how = ctx.pick(["value", "value", "value", "delete", "add"])
    if how == "delete":
        del parent[key]
    elif how == "add" and isinstance(parent, dict):
        parent[ctx.pick(["extra", "", "__proto__", key + "_"])] = _json_value(ctx, None)
    elif how == "add":
        parent.insert(key, _json_value(ctx, parent[key]))
    else:
        parent[key] = _json_value(ctx, parent[key])
    shown = str(parent.get(key) if isinstance(parent, dict) else "")[:60]
    ctx.note(f"{name}: {'/'.join(map(str, path))[:120]} {how} -> {shown}")
    return doc


@mutator("artifact.json", 3.0, needs_bases=True)
def artifact_json(ctx: Ctx) -> None:
    """One field of one JSON file (manifest, graphs, programs, report, speck config): type, value, deletion."""

    def mutate(ctx: Ctx, art: Art) -> None:
        name = ctx.pick(_json_files(art))
        doc = art.manifest if name == "manifest.json" else json.loads(art.files[name])
        for _ in range(ctx.pick([1, 1, 1, 2, 5])):
            doc = _mutate_json(ctx, doc, name)
        if name == "manifest.json":
            art.manifest = doc
        else:
            art.files[name] = json.dumps(doc, indent=1).encode()

    _artifact_case(ctx, mutate)


@mutator("artifact.json_text", 1.0, needs_bases=True)
def artifact_json_text(ctx: Ctx) -> None:
    """JSON files that do not parse, nest 100,000 deep, or hold a huge document."""

    def mutate(ctx: Ctx, art: Art) -> None:
        name = ctx.pick(_json_files(art))
        text = json.dumps(art.manifest).encode() if name == "manifest.json" else art.files[name]
        kind = ctx.pick(["truncated", "deep", "nul", "huge", "not_object", "bom", "utf16"])
        new = {
            "truncated": text[: len(text) // 2],
            "deep": b"[" * 100000 + b"]" * 100000,
            "nul": text.replace(b'"', b'"\x00', 1),
            "huge": b'{"pad": "' + b"x" * (80 << 20) + b'"}',
            "not_object": b"[1, 2, 3]",
            "bom": b"\xef\xbb\xbf" + text,
            "utf16": text.decode("utf-8", "replace").encode("utf-16"),
        }[kind]
        ctx.note(f"{name}: {kind}")
        if name == "manifest.json":
            art.resign = False
            art.manifest_text = new
        else:
            art.files[name] = new

    _artifact_case(ctx, mutate)


@mutator("artifact.paths", 2.0, needs_bases=True)
def artifact_paths(ctx: Ctx) -> None:
    """Path-like names: manifest entries, program files' host_graph, array references."""

    def mutate(ctx: Ctx, art: Art) -> None:
        entries = art.manifest.get("files")
        kind = ctx.pick(["rename_entry", "add_entry", "host_graph", "host_graph", "array_ref", "stem"])
        hostile = ctx.pick(_hostile_paths(ctx))
        if kind in ("rename_entry", "add_entry") and isinstance(entries, dict) and entries:
            name = ctx.pick(sorted(entries))
            value = entries[name] if kind == "add_entry" else entries.pop(name)
            target = ctx.pick(
                [
                    "../secret.txt",
                    "/etc/passwd",
                    "/proc/self/fd/0",
                    ctx.canary_abs("A"),
                    "../cwd/secret.txt",
                    "sub/../" + name,
                    "./" + name,
                    name + "/",
                    "",
                ]
            )
            entries[target] = value
            ctx.note(f"manifest files: {name!r} {'renamed to' if kind == 'rename_entry' else 'plus'} {target!r}")
            return
        programs = [
            k for k, v in art.files.items() if k.endswith(".json") and isinstance(v, bytes) and b"host_graph" in v
        ]
        if kind == "host_graph" and programs:
            name = ctx.pick(programs)
            doc = json.loads(art.files[name])
            target = ctx.pick(["../evil", "../../evil", hostile, str(ctx.root / "evil")])
            if target in ("../evil", "../../evil") or target == str(ctx.root / "evil"):
                # a complete, valid graph outside the artifact: only following the name can find it
                host_json, host_npz = art.files.get("host.json"), art.files.get("host.npz")
                prefix = "" if target == "../evil" or target.startswith("/") else "../"
                if isinstance(host_json, bytes) and isinstance(host_npz, bytes):
                    art.extra[prefix + "evil.json"] = host_json
                    art.extra[prefix + "evil.npz"] = host_npz
            doc["input"]["host_graph"] = target
            art.files[name] = json.dumps(doc).encode()
            ctx.note(f"{name}: input.host_graph = {target[:60]!r}")
            return
        name = ctx.pick([k for k in art.files if k.endswith(".json") and isinstance(art.files[k], bytes)])
        text = art.files[name].decode()
        if kind == "array_ref" and '"array": "' in text:
            text = text.replace('"array": "', '"array": "../', 1)
        else:
            text = text.replace('"snn"', json.dumps(hostile), 1).replace('"ann"', json.dumps(hostile), 1)
        art.files[name] = text.encode()
        ctx.note(f"{name}: {kind} -> {hostile[:40]!r}")

    _artifact_case(ctx, mutate)


@mutator("artifact.unlisted", 1.0, needs_bases=True)
def artifact_unlisted(ctx: Ctx) -> None:
    """A file the manifest does not list (dropped from it, or added next to it): reading it is a finding."""

    def mutate(ctx: Ctx, art: Art) -> None:
        entries = art.manifest.get("files")
        if ctx.chance(0.6) and isinstance(entries, dict) and entries:
            name = ctx.pick(sorted(entries))
            del entries[name]
            ctx.note(f"{name} dropped from the manifest")
        else:
            name = ctx.pick(["graded.json", "host.json", "speck.json", "loihi.json", "snn.npz", "ann.json"])
            if name not in art.files:
                art.files[name] = b'{"format": "planted"}' if name.endswith(".json") else b"PK\x05\x06" + b"\0" * 18
                ctx.note(f"{name} planted, unlisted")
            else:
                del entries[name]
                ctx.note(f"{name} dropped from the manifest")

    _artifact_case(ctx, mutate)


@mutator("artifact.delete", 0.7, needs_bases=True)
def artifact_delete(ctx: Ctx) -> None:
    def mutate(ctx: Ctx, art: Art) -> None:
        name = ctx.pick(sorted(art.files))
        del art.files[name]
        if ctx.chance(0.5) and isinstance(art.manifest.get("files"), dict):
            art.manifest["files"].pop(name, None)
            ctx.note(f"{name} deleted and unlisted")
        else:
            ctx.note(f"{name} deleted")

    _artifact_case(ctx, mutate)


@mutator("artifact.symlink", 1.5, needs_bases=True)
def artifact_symlink(ctx: Ctx) -> None:
    """A listed file replaced by a symlink (re-signed with its target's hash, so following it passes the check)."""

    def mutate(ctx: Ctx, art: Art) -> None:
        name = ctx.pick(sorted(art.files))
        others = [k for k in art.files if k != name and k.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]] or [name]
        target = ctx.pick(
            [
                "../secret.txt",
                ctx.canary_abs("A"),
                ctx.canary_abs("B"),
                "/etc/passwd",
                "/dev/zero",
                "/proc/self/fd/0",
                ctx.pick(others),
                name,
                "nowhere",
                "../art/" + name,
            ]
        )
        if target == "../art/" + name:
            art.files["real_" + name] = art.files[name]
            target = "real_" + name
        art.files[name] = Link(target)
        if ctx.chance(0.3):  # the whole folder is reached through a link too
            art.extra["art_link"] = Link("art")
        ctx.note(f"{name} -> symlink to {target}")

    _artifact_case(ctx, mutate)


@mutator("artifact.fifo", 0.5, needs_bases=True)
def artifact_fifo(ctx: Ctx) -> None:
    """A FIFO in place of a file: opening it blocks forever (a hang unless the reader checks first)."""

    def mutate(ctx: Ctx, art: Art) -> None:
        name = ctx.pick(sorted(art.files))
        art.files[name] = Fifo()
        art.resign = ctx.chance(0.5)
        if ctx.chance(0.4) and isinstance(art.manifest.get("files"), dict):
            art.manifest["files"].pop(name, None)
        ctx.note(f"{name} -> FIFO")

    _artifact_case(ctx, mutate)


@mutator("artifact.unsigned", 0.7, needs_bases=True)
def artifact_unsigned(ctx: Ctx) -> None:
    """A file edited without re-signing: the checksum check must refuse it."""

    def mutate(ctx: Ctx, art: Art) -> None:
        art.resign = False
        name = ctx.pick(sorted(k for k, v in art.files.items() if isinstance(v, bytes)))
        data = bytearray(art.files[name])
        data[ctx.rng.randrange(len(data))] ^= 0x01
        art.files[name] = bytes(data)
        if name in _listed(art.manifest):
            ctx.reject(f"{name} edited without re-signing")
        ctx.note(f"{name}: one bit flipped, not re-signed")

    _artifact_case(ctx, mutate)


@mutator("artifact.manifest_files", 1.0, needs_bases=True)
def artifact_manifest_files(ctx: Ctx) -> None:
    """The manifest's ``files``: the other format, wrong sizes, bad digests, other types."""

    def mutate(ctx: Ctx, art: Art) -> None:
        entries = art.manifest.get("files")
        if not isinstance(entries, dict):
            return
        names = sorted(entries)
        kind = ctx.pick(
            [
                "new_format",
                "old_format",
                "wrong_bytes",
                "bad_digest",
                "entry_type",
                "list",
                "empty",
                "null",
                "string",
                "upper",
            ]
        )
        sizes = {n: len(v) for n, v in art.files.items() if isinstance(v, bytes)}
        if kind == "new_format":
            art.manifest["files"] = {n: {"sha256": "", "bytes": sizes.get(n, 0)} for n in names}
        elif kind == "old_format":
            art.manifest["files"] = {n: "" for n in names}
        elif kind == "wrong_bytes":
            art.manifest["files"] = {n: {"sha256": "", "bytes": 0} for n in names}
            art.resign = False
            for n in names:
                art.manifest["files"][n]["sha256"] = hashlib.sha256(art.files[n]).hexdigest()  # type: ignore[arg-type]
            victim = ctx.pick(names)
            art.manifest["files"][victim]["bytes"] = ctx.pick([sizes.get(victim, 0) + 1, -1, 2**63, "12", None, 1.5])
            for n in names:
                if n != victim:
                    art.manifest["files"][n]["bytes"] = sizes.get(n, 0)
            ctx.reject(f"wrong size of {victim}")
        elif kind == "bad_digest":
            art.resign = False
            victim = ctx.pick(names)
            entries[victim] = ctx.pick(["", "0" * 64, "zz" * 32, None, 7, ["x"], {"sha256": None}])
            ctx.reject(f"bad digest of {victim}")
        elif kind == "entry_type":
            victim = ctx.pick(names)
            entries[victim] = ctx.pick([None, 7, [], {"bytes": 3}, {"sha256": 5}, True])
            ctx.reject(f"{victim}: entry of the wrong type")
        elif kind == "upper":
            art.resign = False
            for n in names:
                entries[n] = hashlib.sha256(art.files[n]).hexdigest().upper() if isinstance(art.files[n], bytes) else ""  # type: ignore[arg-type]
        else:
            art.manifest["files"] = {"list": names, "empty": {}, "null": None, "string": "snn.json"}[kind]
        ctx.note(f"manifest files: {kind}")

    _artifact_case(ctx, mutate)


# npz members


def npy_header(descr: str, shape: tuple[int, ...], fortran: bool = False) -> bytes:
    """A version 1.0 .npy header declaring ``descr`` and ``shape`` (whatever data follows)."""
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def read_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


@contextlib.contextmanager
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_zip(members: list[tuple[str, bytes]], deflate: bool = False) -> bytes:
    buf = io.BytesIO()
    with (
        _quiet_warnings(),  # duplicate names are on purpose
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf,
    ):
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


@functools.cache
def zip_bomb_member(total: int = 1 << 28) -> tuple[bytes, int, int]:
    """Raw deflate data of an .npy of ``total`` bytes (float32 zeros), with its CRC and size: about 256 kB for
    256 MiB. Built from one flushed block of zeros repeated, so it costs a fraction of a second."""
    header = npy_header("<f4", ((total - 128) // 4,))
    size = len(header) + (total - 128) // 4 * 4
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    chunk = 1 << 22
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    body_len = size - len(header)
    repeats, rest = divmod(body_len, chunk)
    tail = compressor.compress(bytes(rest)) + compressor.flush()
    crc = zlib.crc32(header)
    zeros = bytes(chunk)
    for _ in range(repeats):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return head + block * repeats + tail, crc, size


def zip_with_bomb(members: list[tuple[str, bytes]], bomb_name: str) -> bytes:
    """A zip (no zip64: under 4 GiB) whose member ``bomb_name`` is the deflated zeros, the others stored."""
    raw, crc, size = zip_bomb_member()
    out, central = io.BytesIO(), io.BytesIO()
    entries = [(n, d, zlib.crc32(d), len(d), len(d), 0) for n, d in members if n != bomb_name]
    entries.append((bomb_name, raw, crc, len(raw), size, 8))
    for name, data, c, csize, usize, method in entries:
        offset = out.tell()
        encoded = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, c, csize, usize, len(encoded), 0))
        out.write(encoded + data)
        central.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                c,
                csize,
                usize,
                len(encoded),
                0,
                0,
                0,
                0,
                0o644 << 16,
                offset,
            )
            + encoded
        )
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central.getvalue()), start, 0))
    return out.getvalue()


@mutator("artifact.npz", 3.0, needs_bases=True)
def artifact_npz(ctx: Ctx) -> None:
    """One member of one .npz: dtype, shape, values, declared sizes, zip bombs, truncation, names."""

    def mutate(ctx: Ctx, art: Art) -> None:
        npzs = sorted(k for k, v in art.files.items() if k.endswith(".npz") and isinstance(v, bytes))
        if not npzs:
            return
        name = ctx.pick(npzs)
        members = read_members(art.files[name])
        if not members:
            return
        index = ctx.rng.randrange(len(members))
        member, data = members[index]
        array = np.load(io.BytesIO(data), allow_pickle=False)
        kind = ctx.pick(
            [
                "object",
                "declared_huge",
                "declared_huge",
                "bomb",
                "truncated",
                "bad_crc",
                "dtype",
                "dtype",
                "shape",
                "nonfinite",
                "nonfinite",
                "extreme",
                "remove",
                "extra",
                "traversal",
                "duplicate",
                "fortran",
                "scalar",
                "not_zip",
                "many",
            ]
        )
        deflate, bomb = False, None
        if kind == "object":
            members[index] = (member, npy(np.array([{"a": 1}, None], dtype=object)))
        elif kind == "declared_huge":
            shape = ctx.pick([(2**31,), (10**6, 10**6), (2**40,), (2**62, 4), (-1,), ()])
            members[index] = (member, npy_header(array.dtype.str, shape) + data[128:])
        elif kind == "bomb":
            bomb = member
        elif kind == "truncated":
            members[index] = (member, data[: ctx.rng.randrange(len(data))])
        elif kind == "dtype":
            dtype = ctx.pick(["<f8", "<i1", "<i8", "<c8", "|b1", "<U3", ">f4", "<f2", "|V8", "<M8[s]", "<u2"])
            try:
                new = array.astype(dtype)
            except (TypeError, ValueError):
                new = np.zeros(array.shape, dtype)
            members[index] = (member, npy(new))
        elif kind == "shape":
            flat = array.reshape(-1)
            new = ctx.pick([flat, array[..., None], array.T, flat[:0], np.zeros((3, 3), array.dtype)])
            members[index] = (member, npy(np.ascontiguousarray(new)))
        elif kind in ("nonfinite", "extreme"):
            new = array.copy()
            if new.size:
                if new.dtype.kind == "f" and kind == "nonfinite":
                    new.reshape(-1)[ctx.rng.randrange(new.size)] = ctx.pick([NAN, INF, -INF])
                elif new.dtype.kind in "iu":
                    info = np.iinfo(new.dtype)
                    new.reshape(-1)[:] = ctx.pick([info.max, info.min])
                elif new.dtype.kind == "f":
                    new.reshape(-1)[:] = ctx.pick([3e38, -3e38, 1e-45])
            members[index] = (member, npy(new))
        elif kind == "remove":
            del members[index]
        elif kind == "extra":
            members.append(("extra.npy", npy(np.zeros(3))))
        elif kind == "traversal":
            members[index] = (ctx.pick(["../" + member, "/tmp/" + member, member.replace(".npy", "")]), data)
        elif kind == "duplicate":
            members.append((member, npy(np.zeros(2, np.float32))))
        elif kind == "fortran":
            members[index] = (member, npy_header(array.dtype.str, array.shape, True) + data[128:])
        elif kind == "scalar":
            members[index] = (member, npy(np.float32(1.0)))
        elif kind == "many":
            members += [(f"m{i}.npy", npy(np.zeros(1, np.int8))) for i in range(20000)]
            deflate = True
        ctx.note(f"{name}: member {member!r} {kind}")
        if kind == "not_zip":
            art.files[name] = ctx.pick(
                [b"", b"PK", b"not a zip", npy(array), art.files[name][: len(art.files[name]) // 2]]
            )
        elif kind == "bad_crc":
            raw = bytearray(art.files[name])
            raw[-200] ^= 0xFF  # inside the last member's data (stored): the CRC no longer matches
            art.files[name] = bytes(raw)
        elif bomb is not None:
            art.files[name] = zip_with_bomb(members, bomb)
        else:
            art.files[name] = write_zip(members, deflate)

    _artifact_case(ctx, mutate)


# --- inputs ------------------------------------------------------------------------------------------------------


def _input_case(ctx: Ctx, make: Callable[[Ctx, Seed, np.ndarray], list[str]]) -> None:
    """Emulate an unchanged base artifact on inputs/options that ``make`` writes (it returns the argv tail)."""
    art = _load_art(ctx)
    seed = corpus()[art.base.seed]
    ctx.files.update({f"art/{k}": v for k, v in art.files.items()})
    ctx.files["art/manifest.json"] = json.dumps(art.manifest, indent=2, sort_keys=True).encode()
    x = inputs_for(seed, 3, ctx.np)
    tail = make(ctx, seed, x)
    if "--input" not in tail:
        tail = ["--input", "../data/x.npz", *tail]
    ctx.commands.append(["emulate", "../art", "--output", "y.npz", *tail])
    ctx.outputs["cwd/y.npz"] = "file"
    if ctx.same_outputs is not None:
        ctx.commands.append(["emulate", "../art", "--output", "y_scaled.npz", "--input", "../data/x_scaled.npz", "-q"])
        ctx.outputs["cwd/y_scaled.npz"] = "file"


@mutator("input.values", 1.5, needs_bases=True)
def input_values(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        value = ctx.pick([NAN, INF, -INF, 1e30, -1e30, 3.4e38])
        how = ctx.pick(["one", "all", "sample"])
        if how == "one":
            x.reshape(-1)[ctx.rng.randrange(x.size)] = value
        elif how == "all":
            x[:] = value
        else:
            x[0] = value
        ctx.npz("data/x.npz", x=x)
        ctx.note(f"x: {how} = {value}")
        ctx.reject(f"input value {value}")
        return ["-q"]

    _input_case(ctx, make)


@mutator("input.dtype", 1.5, needs_bases=True)
def input_dtype(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        kind = ctx.pick(
            [
                "complex64",
                "complex128",
                "uint8_255",
                "int64_255",
                "int64_01",
                "bool",
                "float16",
                "float64",
                "object",
                "unicode",
                "structured",
                "datetime",
                "uint64_huge",
            ]
        )
        allow_pickle = False
        if kind.startswith("complex"):
            arr = (x + 1j * x).astype(kind)
            ctx.reject("complex inputs")
        elif kind in ("uint8_255", "int64_255"):
            arr = (x * 255).round().astype(np.uint8 if kind == "uint8_255" else np.int64)
            ctx.reject("integer 0-255 inputs, unscaled", "reject_or_warn")
            # the same images as floats in [0, 1]: if emulate scales integer inputs, the outputs agree
            ctx.npz("data/x_scaled.npz", x=arr.astype(np.float32) / 255)
            ctx.same_outputs = ("cwd/y.npz", "cwd/y_scaled.npz")
        elif kind == "int64_01":
            arr = (x > 0.5).astype(np.int64)
        elif kind == "bool":
            arr = x > 0.5
        elif kind in ("float16", "float64"):
            arr = x.astype(kind)
        elif kind == "object":
            arr, allow_pickle = np.array([x[0], None, "s"], dtype=object), True
        elif kind == "unicode":
            arr = x.astype(str)
            ctx.reject("string inputs")
        elif kind == "structured":
            arr = np.zeros(x.shape, dtype=[("a", "<f4"), ("b", "<i4")])
            ctx.reject("structured inputs")
        elif kind == "datetime":
            arr = np.zeros(x.shape, dtype="<M8[s]")
            ctx.reject("datetime inputs")
        else:
            arr = np.full(x.shape, 2**64 - 1, np.uint64)
            ctx.reject("uint64 inputs of 2**64-1")
        buf = io.BytesIO()
        np.savez(buf, x=arr) if not allow_pickle else np.savez(buf, x=arr, allow_pickle=True)
        ctx.files["data/x.npz"] = buf.getvalue()
        ctx.note(f"x as {kind}")
        return [] if ctx.expect == "reject_or_warn" else ["-q"]

    _input_case(ctx, make)


@mutator("input.shape", 1.0, needs_bases=True)
def input_shape(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        kind = ctx.pick(
            [
                "flat",
                "transposed",
                "extra_dim",
                "no_channel",
                "scalar",
                "empty",
                "one_d",
                "mnist",
                "declared_huge",
                "npy_file",
                "no_x",
                "huge_batch",
            ]
        )
        if kind == "declared_huge":
            ctx.files["data/x.npz"] = write_zip([("x.npy", npy_header("<f4", (2**20, 2**20)) + x.tobytes())])
        elif kind == "npy_file":
            ctx.files["data/x.npy"] = npy(x)
            ctx.note("x as .npy")
            return ["--input", "../data/x.npy", "-q"]
        elif kind == "no_x":
            ctx.npz("data/x.npz", inputs=x)
        else:
            arr = {
                "flat": x.reshape(len(x), -1),
                "transposed": np.ascontiguousarray(np.swapaxes(x, -1, -3)),
                "extra_dim": x[:, None],
                "no_channel": x[:, 0],
                "scalar": np.float32(0.5),
                "empty": x[:0],
                "one_d": x.reshape(-1),
                "mnist": np.zeros((2, 1, 28, 28), np.float32)
                if seed.input_shape != (1, 28, 28)
                else np.zeros((2, 1, 8, 8), np.float32),
                "huge_batch": np.zeros((100000, *seed.input_shape[:1], 1, 1), np.float32),
            }[kind]
            ctx.npz("data/x.npz", x=arr)
        ctx.note(f"x: {kind}")
        return ["-q"]

    _input_case(ctx, make)


@mutator("input.labels", 1.0, needs_bases=True)
def input_labels(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        kind = ctx.pick(
            ["negative", "too_big", "huge", "nan", "float_frac", "strings", "two_d", "short", "bool", "labels_file"]
        )
        n = len(x)
        y = {
            "negative": np.array([-1] * n),
            "too_big": np.array([seed.classes] * n),
            "huge": np.array([2**40] * n),
            "nan": np.array([NAN] * n),
            "float_frac": np.array([0.5] * n),
            "strings": np.array(["a"] * n),
            "two_d": np.zeros((n, seed.classes)),
            "short": np.array([0] * (n - 1)),
            "bool": np.ones(n, bool),
            "labels_file": np.array([seed.classes + 5] * n),
        }[kind]
        if kind in ("negative", "too_big", "huge", "nan", "float_frac", "strings", "labels_file"):
            ctx.reject(f"labels {kind}")
        ctx.note(f"y: {kind}")
        if kind == "labels_file":
            ctx.npz("data/x.npz", x=x)
            ctx.files["data/y.npy"] = npy(y)
            return ["--labels", "../data/y.npy", "-q"]
        ctx.npz("data/x.npz", x=x, y=y)
        return ["-q"]

    _input_case(ctx, make)


@mutator("input.steps", 0.8, needs_bases=True)
def input_steps(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        ctx.npz("data/x.npz", x=x)
        steps = ctx.pick([0, -1, -(2**63), 10**9, 2**40, 10**18, 2**63, 100001, 1])
        extra = ["--steps", str(steps)]
        if ctx.chance(0.3):
            limit = ctx.pick([0, -1, 10**12, 1])
            extra += ["--limit", str(limit)]
            ctx.note(f"--limit {limit}")
        if steps > 100000:
            ctx.reject(f"--steps {steps}")
        ctx.note(f"--steps {steps}")
        return [*extra, "-q"]

    _input_case(ctx, make)


@mutator("input.options", 0.8, needs_bases=True)
def input_options(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        ctx.npz("data/x.npz", x=x)
        extra = ctx.pick(
            [
                ["--mode", "../../secret"],
                ["--mode", "bogus"],
                ["--mode", "ann"],
                ["--mode", "graded"],
                ["--mode", "event"],
                ["--mode", ""],
                ["--encoding", "rate"],
                ["--encoding", "rate", "--seed", "-1"],
                ["--encoding", "events"],
                ["--encoding", "events", "--pad-events"],
                ["--seed", "3"],
                ["--pad-events"],
                ["--encoding", "direct"],
            ]
        )
        ctx.note(" ".join(extra))
        return [*extra, "-q"]

    _input_case(ctx, make)


@mutator("input.file", 0.8, needs_bases=True)
def input_file(ctx: Ctx) -> None:
    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        kind = ctx.pick(["fifo", "folder", "missing", "empty", "truncated", "pickled_npy", "text", "bomb"])
        good = io.BytesIO()
        np.savez(good, x=x)
        spec: FileSpec = {
            "fifo": Fifo(),
            "folder": Dir(),
            "empty": b"",
            "truncated": good.getvalue()[: len(good.getvalue()) // 2],
            "pickled_npy": npy(np.array([x, None], dtype=object)),
            "text": b"0.5, 0.5\n",
        }.get(kind, b"")
        if kind == "bomb":
            spec = zip_with_bomb([], "x.npy")
        if kind != "missing":
            ctx.files["data/x.npz"] = spec
        ctx.note(f"--input {kind}")
        return ["-q"]

    _input_case(ctx, make)


@mutator("input.evaluate", 0.5)
def input_evaluate(ctx: Ctx) -> None:
    """evaluate on hostile data (one worker process, two step counts)."""
    seed = ctx.pick_seed(compiles=True, real=0.0)
    ctx.files[MODEL] = seed.data
    x = inputs_for(seed, 3, ctx.np)
    y = np.arange(3) % seed.classes
    kind = ctx.pick(["ok", "nan", "uint8", "labels_out", "labels_neg", "steps_huge", "steps_zero"])
    steps = "1,4"
    if kind == "nan":
        x[0, 0, 0, 0] = NAN
        ctx.reject("NaN input")
    elif kind == "uint8":
        x = (x * 255).astype(np.uint8)
        ctx.reject("uint8 0-255 input", "reject_or_warn")
    elif kind == "labels_out":
        y = y + seed.classes
        ctx.reject("labels outside the classes")
    elif kind == "labels_neg":
        y = y - 5
        ctx.reject("negative labels")
    elif kind == "steps_huge":
        steps = "1,1000000000"
        ctx.reject("10**9 steps")
    elif kind == "steps_zero":
        steps = "0,1"
    ctx.npz("data/d.npz", x=x, y=y)
    ctx.note(f"evaluate {seed.name}: {kind}")
    quiet = [] if ctx.expect == "reject_or_warn" else ["-q"]
    ctx.commands.append(
        [
            "evaluate",
            "../" + MODEL,
            "--data",
            "../data/d.npz",
            "-T",
            steps,
            "--workers",
            "1",
            "--json",
            "r.json",
            *quiet,
        ]
    )
    ctx.outputs["cwd/r.json"] = "file"


# --- output paths ------------------------------------------------------------------------------------------------


@mutator("output.emulate", 0.8, needs_bases=True)
def output_emulate(ctx: Ctx) -> None:
    """emulate --output onto something that is not a regular file: it must be refused and left alone."""

    def make(ctx: Ctx, seed: Seed, x: np.ndarray) -> list[str]:
        ctx.npz("data/x.npz", x=x)
        kind = ctx.pick(
            [
                "fifo",
                "link_canary_a",
                "link_canary_b",
                "dangling",
                "folder",
                "full_folder",
                "regular",
                "missing_dir",
                "link_to_folder",
            ]
        )
        spec = {
            "fifo": Fifo(),
            "link_canary_a": Link("../secret.txt"),
            "link_canary_b": Link(CANARY),
            "dangling": Link("nowhere.npz"),
            "folder": Dir(),
            "full_folder": Dir(),
            "regular": b"old results",
            "link_to_folder": Link("../data"),
        }.get(kind)
        if spec is not None:
            ctx.files["cwd/y.npz"] = spec
        if kind == "full_folder":
            ctx.files["cwd/y.npz/keep.txt"] = b"keep me"
        ctx.note(f"--output is a {kind}")
        if kind == "missing_dir":
            ctx.outputs = {"cwd/sub": "file"}
            return ["-q", "--output", "sub/dir/y.npz"]
        return ["-q"]

    _input_case(ctx, make)


@mutator("output.compile", 0.8)
def output_compile(ctx: Ctx) -> None:
    """compile -o onto something that is not an artifact folder: refused, and left alone."""
    seed = corpus()["conv_gemm"]
    ctx.files[MODEL] = seed.data
    kind = ctx.pick(
        [
            "fifo",
            "regular",
            "link_dir",
            "link_canary",
            "foreign_dir",
            "artifact",
            "nested",
            "dot",
            "dotdot",
            "model_dir",
        ]
    )
    out = "out"
    if kind == "fifo":
        ctx.files["cwd/out"] = Fifo()
    elif kind == "regular":
        ctx.files["cwd/out"] = b"my notes"
    elif kind == "link_dir":
        ctx.files["cwd/out"] = Link("../data")
        ctx.files["data/keep.txt"] = b"keep me"
    elif kind == "link_canary":
        ctx.files["cwd/out"] = Link("../secret.txt")
    elif kind == "foreign_dir":
        ctx.files["cwd/out/keep.txt"] = b"keep me"
    elif kind == "artifact":
        ctx.files["cwd/out/manifest.json"] = b'{"neurodeploy": {"artifact_format": 1}, "files": {}}'
    elif kind == "nested":
        out = "a/b/out"
    elif kind == "dot":
        out = "."
    elif kind == "dotdot":
        out = ".."
    else:
        out = "../model"
    ctx.note(f"-o is {kind} ({out})")
    ctx.commands.append(["compile", "../" + MODEL, "--target", "reference", "-o", out, "-q"])
    # "." for "..": the whole sandbox; a/b/out: compile may create the folders above it
    ctx.outputs[posixpath.normpath(posixpath.join("cwd", out if kind != "nested" else "a"))] = "artifact"


# --- the schedule ------------------------------------------------------------------------------------------------


def schedule(seed: int, count: int, names: list[str] | None = None) -> list[tuple[str, int]]:
    """``count`` (mutator, case seed) pairs: every mutator in proportion to its weight, in a seeded order, so a
    short run covers all of them."""
    rng = random.Random(f"schedule/{seed}")
    pool = [MUTATORS[n] for n in (names or list(MUTATORS))]
    total = sum(m.weight for m in pool)
    deck: list[str] = []
    for m in pool:
        deck += [m.name] * max(1, round(m.weight * 10 / total * len(pool)))
    out = []
    while len(out) < count:
        rng.shuffle(deck)
        out += [(name, rng.getrandbits(48)) for name in deck]
    return out[:count]
