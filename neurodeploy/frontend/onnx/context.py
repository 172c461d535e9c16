"""State shared by the op handlers while one ONNX graph is imported.

A model is hostile input: handlers read attributes only through the typed accessors of :class:`Node`
(``attr_int``, ``attr_ints``, ``attr_float``, ``attr_floats``, ``attr_str``, ``attr_tensor``), which check the
attribute's declared type, and :meth:`Node.validate` first checks every attribute and input against the op's ONNX
schema. Folded constants and runtime values are bounded by ``neurodeploy.limits`` before they are made.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import numpy as np
import onnx
from onnx import defs

from neurodeploy import limits
from neurodeploy.errors import LimitError, ModelLoadError
from neurodeploy.frontend.onnx.tensors import MAX_RANK, check_finite, nbytes, shape_text, tensor_array
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import Op
from neurodeploy.ir.types import TensorType

_A = onnx.AttributeProto
REQUIRED: Any = object()
"""Default of the typed accessors: the attribute must be present."""

MAX_NAME_CHARS = 200
"""Node names longer than this are shortened in messages and op names."""


class UnsupportedVariant(Exception):
    """Raised by a handler for an op it knows but an attribute/input combination it cannot import."""


def attribute_type_name(value: int) -> str:
    try:
        return _A.AttributeType.Name(value)
    except ValueError:
        return f"type {value}"


class _EnumMember(Protocol):
    @property
    def value(self) -> int: ...


def _declared_type(attr: defs.OpSchema.Attribute) -> int:
    """The ``AttributeProto`` type code the schema declares for ``attr``. ``OpSchema.AttrType`` is an enum (a
    pybind11 enum in older onnx releases, an IntEnum in newer ones) whose ``value`` onnx's type stub leaves out."""
    return int(cast(_EnumMember, attr.type).value)


def display_name(name: str) -> str:
    """``name`` safe for a one-line message: non-printable characters escaped, very long names shortened."""
    if not name.isprintable():
        name = name.encode("unicode_escape").decode("ascii")
    return name if len(name) <= MAX_NAME_CHARS else f"{name[:MAX_NAME_CHARS]}..."


MAX_MESSAGE_CHARS = 600
"""Longer messages about one node are cut (a model can hold attribute lists of millions of entries)."""


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters in all)"


class Node:
    """An ONNX node with typed access to its attributes, and the opset it is read at."""

    def __init__(
        self, proto: onnx.NodeProto, opset: int, index: int, where: str = "", schema: defs.OpSchema | None = None
    ) -> None:
        self.proto = proto
        self.opset = opset
        self.index = index
        self.where = where
        self.schema = schema
        self._attrs: dict[str, onnx.AttributeProto] = {}
        for attr in proto.attribute:
            self._attrs.setdefault(attr.name, attr)
        self.name = display_name(proto.name or f"{proto.op_type}_{index}")

    # -- identity -------------------------------------------------------------------------------------------
    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def label(self) -> str:
        """``file: node 'name' (OpType)``, the start of every message about this node."""
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}node '{self.name}' ({display_name(self.op_type)})"

    def error(self, message: str) -> ModelLoadError:
        """A one-line ModelLoadError about this node (the model is malformed, not merely unsupported)."""
        return ModelLoadError(shorten(f"{self.label}: {message}"))

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    def input(self, i: int) -> str | None:
        """The i-th input name, or None when it is absent or empty (an omitted optional input)."""
        names = self.proto.input
        return names[i] if i < len(names) and names[i] else None

    def required_input(self, i: int) -> str:
        """The i-th input name, for an input the op's schema requires (:meth:`validate` refuses a node without
        it, so a handler never meets the error here)."""
        name = self.input(i)
        if name is None:
            raise self.error(f"the required input {i} is missing")
        return name

    # -- validation against the ONNX schema -----------------------------------------------------------------
    def validate(self) -> None:
        """Check what every handler relies on: a first output, attributes that are unique, known to the op's
        schema and of the declared type, float attributes finite (read or not), required attributes present, and
        the input count the schema allows."""
        if not self.proto.output or not self.proto.output[0]:
            raise self.error("has no output")
        seen: set[str] = set()
        for attr in self.proto.attribute:
            if attr.name in seen:
                raise self.error(f"attribute {display_name(attr.name)!r} appears twice")
            seen.add(attr.name)
            if attr.ref_attr_name:
                raise self.error(
                    f"attribute {display_name(attr.name)!r} refers to a function attribute outside a function"
                )
        if self.schema is None:
            return
        version = f"{self.op_type}-{self.schema.since_version}"
        for attr in self.proto.attribute:
            declared = self.schema.attributes.get(attr.name)
            if declared is None:
                raise self.error(f"{display_name(attr.name)!r} is not an attribute of {version}")
            if attr.type != _declared_type(declared):
                raise self.error(
                    f"attribute {attr.name!r} is declared {attribute_type_name(attr.type)}; {version} expects "
                    f"{attribute_type_name(_declared_type(declared))}"
                )
            if attr.type == _A.FLOAT and not np.isfinite(attr.f):
                raise self.error(f"attribute {attr.name!r} is {attr.f}; it must be a finite number")
            if attr.type == _A.FLOATS:
                check_finite(np.array(attr.floats, np.float32), f"{self.label}: attribute {attr.name!r}")
        for name, declared in self.schema.attributes.items():
            if declared.required and name not in seen:
                raise self.error(f"the required attribute {name!r} is missing")
        given = len(self.proto.input)
        if given < self.schema.min_input:
            raise self.error(f"has {given} inputs; {version} takes at least {self.schema.min_input}")
        if given > self.schema.max_input:
            raise self.error(f"has {given} inputs; {version} takes at most {self.schema.max_input}")
        single = defs.OpSchema.FormalParameterOption.Single
        for i, formal in enumerate(self.schema.inputs):
            if formal.option == single and self.input(i) is None:
                raise self.error(f"the required input {i} ({formal.name!r}) is missing")
        if len(self.proto.output) > self.schema.max_output:
            raise self.error(f"has {len(self.proto.output)} outputs; {version} has at most {self.schema.max_output}")

    # -- typed attribute access -----------------------------------------------------------------------------
    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def _attribute(self, name: str, expected: int, default: Any) -> onnx.AttributeProto | None:
        attr = self._attrs.get(name)
        if attr is None:
            if default is REQUIRED:
                raise self.error(f"the required attribute {name!r} is missing")
            return None
        if attr.type != expected:
            raise self.error(
                f"attribute {name!r} is declared {attribute_type_name(attr.type)}; expected "
                f"{attribute_type_name(expected)}"
            )
        return attr

    def attr_int(self, name: str, default: Any = REQUIRED) -> int:
        attr = self._attribute(name, _A.INT, default)
        return default if attr is None else int(attr.i)

    def attr_ints(self, name: str, default: Any = REQUIRED) -> list[int]:
        attr = self._attribute(name, _A.INTS, default)
        return default if attr is None else [int(v) for v in attr.ints]

    def attr_float(self, name: str, default: Any = REQUIRED) -> float:
        attr = self._attribute(name, _A.FLOAT, default)
        if attr is None:
            return default
        value = float(attr.f)
        if not np.isfinite(value):
            raise self.error(f"attribute {name!r} is {value}; it must be a finite number")
        return value

    def attr_floats(self, name: str, default: Any = REQUIRED) -> list[float]:
        attr = self._attribute(name, _A.FLOATS, default)
        if attr is None:
            return default
        values = [float(v) for v in attr.floats]
        check_finite(np.array(values, np.float64), f"{self.label}: attribute {name!r}")
        return values

    def attr_str(self, name: str, default: Any = REQUIRED) -> str:
        attr = self._attribute(name, _A.STRING, default)
        if attr is None:
            return default
        try:
            text = attr.s.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"attribute {name!r} is not valid UTF-8") from None
        if "\0" in text:
            raise self.error(f"attribute {name!r} contains a NUL character")
        return text

    def attr_tensor(self, name: str, default: Any = REQUIRED) -> np.ndarray:
        attr = self._attribute(name, _A.TENSOR, default)
        if attr is None:
            return default
        what = f"{self.label}: attribute {name!r}"
        value = tensor_array(attr.t, what)
        check_finite(value, what)
        return value


class ImportContext:
    """Values seen so far: constants (numpy arrays) and runtime values (IR values with per-sample types).

    ``batch`` is the size the importer assumes for the batch dimension when a constant subgraph asks for it
    (``Shape`` of a runtime value): the model's fixed batch size, or 1 when the batch is dynamic. ``node`` is the
    node being imported (set by the importer), named by the checks on what it makes. ``reserved`` holds every
    value name of the model, so names made up for intermediate values never meet one defined later.
    """

    def __init__(
        self, graph: Graph, batch: int, reserved: set[str] | None = None, read: set[str] | None = None
    ) -> None:
        self.graph = graph
        self.read = read
        """The values some node or a graph output reads (None: unknown, every value counts as read)."""
        self.batch = batch
        self.consts: dict[str, np.ndarray] = {}
        self.types: dict[str, TensorType] = dict(graph.inputs)
        self.aliases: dict[str, str] = {}
        self.pending_pads: dict[str, tuple[str, tuple[int, int, int, int], str]] = {}
        """Zero Pads that pad (output -> (input, (top, left, bottom, right), node name)): no value of their own; the
        Conv or AveragePool that reads one takes its zeros as padding of its own (``ops/padding.py``)."""
        self.pending_sigmoids: dict[str, tuple[str, str]] = {}
        """Sigmoids of runtime values (output -> (input, node name)): no value of their own; the Mul that multiplies
        a Sigmoid's input by it, x * Sigmoid(x), imports the pair as one SiLU op (``ops/elementwise.py``)."""
        self.node: Node | None = None
        self.limits = limits.current()  # read once per import; limits.check re-reads them to word a refusal
        self._op_names: set[str] = set()
        self._taken: set[str] = set(reserved or ()) | set(graph.inputs)

    # -- reading values -------------------------------------------------------------------------------------
    def is_read(self, name: str) -> bool:
        """Whether a node or a graph output of the model reads ``name`` (an output nothing reads may be left
        undefined)."""
        return self.read is None or name in self.read

    def resolve(self, name: str) -> str:
        return self.aliases.get(name, name)

    def is_const(self, name: str | None) -> bool:
        return name is not None and self.resolve(name) in self.consts

    def const(self, name: str) -> np.ndarray:
        return self.consts[self.resolve(name)]

    def is_runtime(self, name: str | None) -> bool:
        return name is not None and self.resolve(name) in self.types

    def type_of(self, name: str) -> TensorType:
        return self.types[self.resolve(name)]

    def full_shape(self, name: str) -> tuple[int, ...]:
        """The shape with the batch dimension, as ONNX sees it (batch = ``self.batch``)."""
        if self.is_const(name):
            return tuple(self.const(name).shape)
        return (self.batch, *self.type_of(name).shape)

    def defined(self, name: str) -> bool:
        return self.is_const(name) or self.is_runtime(name)

    def const_ints(self, name: str, what: str) -> list[int]:
        """A constant that must hold whole numbers (a shape, axes, indices), scalar or 1-D, as Python ints."""
        value = self.const(name)
        if not np.issubdtype(value.dtype, np.integer):
            raise ModelLoadError(
                f"{self._label()}: {what} {display_name(name)!r} has element type {value.dtype}; expected integers"
            )
        if value.size > MAX_RANK:
            raise ModelLoadError(
                f"{self._label()}: {what} {display_name(name)!r} holds {value.size:,} entries; a shape or a list of "
                f"axes has at most {MAX_RANK}"
            )
        if value.ndim > 1:
            raise ModelLoadError(
                f"{self._label()}: {what} {display_name(name)!r} has shape {value.shape}; expected 1-D"
            )
        return [int(v) for v in value.reshape(-1)]

    # -- limits ---------------------------------------------------------------------------------------------
    def _label(self) -> str:
        return self.node.label if self.node is not None else "the model"

    def check_const_size(
        self, shape: tuple[int, ...] | list[int], dtype: Any, what: str = "the folded constant"
    ) -> None:
        """Refuse, before it is made, a constant of ``shape`` and ``dtype`` larger than ``max_constant_bytes``."""
        shape = tuple(int(d) for d in shape)
        if len(shape) > MAX_RANK:
            raise ModelLoadError(f"{self._label()}: {what} would have {len(shape):,} dimensions (at most {MAX_RANK})")
        if any(d < 0 for d in shape):
            raise ModelLoadError(f"{self._label()}: {what} would have negative dimensions {shape_text(shape)}")
        asked = nbytes(shape, dtype)
        if asked > self.limits.max_constant_bytes:
            limits.check("max_constant_bytes", asked, f"{self._label()}: {what} of shape {shape_text(shape)}")

    def check_activation(self, shape: tuple[int, ...], what: str) -> None:
        """Refuse a runtime value whose per-sample float32 size exceeds ``max_activation_bytes``."""
        asked = nbytes(shape, np.float32)
        if asked > self.limits.max_activation_bytes:
            limits.check("max_activation_bytes", asked, f"{what} of shape {shape_text(shape)} per sample (float32)")

    # -- defining values ------------------------------------------------------------------------------------
    def set_const(self, name: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        if self.node is not None:  # a folded constant: the handler checked its size before making it
            self.check_const_size(value.shape, value.dtype, f"the folded constant {display_name(name)!r}")
            check_finite(value, f"{self.node.label}: the constant {display_name(name)!r}")
        self.consts[name] = value
        self._taken.add(name)

    def alias(self, name: str, target: str) -> None:
        """``name`` is the same value as ``target`` (Identity, inference-mode Dropout)."""
        target = self.resolve(target)
        if target in self.consts:
            self.consts[name] = self.consts[target]
        else:
            self.aliases[name] = target
        self._taken.add(name)

    def fresh_name(self, base: str) -> str:
        """A value name used nowhere in the model nor in the graph so far, derived from ``base``."""
        name, i = base, 0
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name

    def emit(self, node: Node, op_cls: type[Op], inputs: list[str], output: str | None = None, **attrs: Any) -> Op:
        """Append an IR op computing ``node``'s first output (or ``output``, for an intermediate value of a node
        imported as several ops) from runtime ``inputs``; infer its type now, and refuse an output larger than
        ``max_activation_bytes`` or weights that are not finite."""
        name = node.name
        if name in self._op_names:
            name, i = f"{node.name}_{node.index}", 0
            while name in self._op_names:
                i += 1
                name = f"{node.name}_{node.index}_{i}"
        meta = {"onnx_node": node.name, "onnx_op": f"{node.op_type}-{node.opset}"}
        with np.errstate(over="ignore"):  # a float64 weight beyond float32's range becomes inf: refused below
            op = op_cls(
                name=name,
                inputs=tuple(self.resolve(v) for v in inputs),
                output=output or node.outputs[0],
                meta=meta,
                **attrs,
            )
        largest = limits.current().max_weight
        for key, value in op.attributes().items():
            if isinstance(value, np.ndarray):
                check_finite(value, f"{node.label}: its {op.op_type} {key}")
                if value.size and np.issubdtype(value.dtype, np.floating):
                    peak = float(np.max(np.abs(value)))
                    if peak > largest:
                        raise LimitError(
                            f"{node.label}: its {op.op_type} {key} holds a value of magnitude {peak:.3g}, over the "
                            f"limit of {largest:.3g} for weights, biases and statistics; if this is intended, raise "
                            f"it with {limits.env_variable('max_weight')}={int(peak) + 1}"
                        )
            elif isinstance(value, float) and not np.isfinite(value):
                raise node.error(f"its {op.op_type} {key} is {value}; it must be a finite number")
        try:
            op.verify()
            out_type = op.infer([self.types[v] for v in op.inputs])
        except ValueError as exc:
            raise UnsupportedVariant(str(exc)) from None
        self.check_activation(out_type.shape, f"{node.label}: its output {display_name(op.output)!r}")
        self._op_names.add(name)
        self.graph.ops.append(op)
        self.types[op.output] = out_type
        self._taken.add(op.output)
        return op


__all__ = ["REQUIRED", "ImportContext", "Node", "UnsupportedVariant", "shorten"]
