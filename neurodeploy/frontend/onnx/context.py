"""State shared by the op handlers while one ONNX graph is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import Op
from neurodeploy.ir.types import TensorType


class UnsupportedVariant(Exception):
    """Raised by a handler for an op it knows but an attribute/input combination it cannot import."""


@dataclass
class Node:
    """An ONNX node with its attributes decoded and the opset it is read at."""

    proto: onnx.NodeProto
    opset: int
    index: int
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attrs = {a.name: helper.get_attribute_value(a) for a in self.proto.attribute}
        for key, value in self.attrs.items():
            if isinstance(value, bytes):
                self.attrs[key] = value.decode()

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def name(self) -> str:
        return self.proto.name or f"{self.proto.op_type}_{self.index}"

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

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


class ImportContext:
    """Values seen so far: constants (numpy arrays) and runtime values (IR values with per-sample types).

    ``batch`` is the size the importer assumes for the batch dimension when a constant subgraph asks for it
    (``Shape`` of a runtime value): the model's fixed batch size, or 1 when the batch is dynamic.
    """

    def __init__(self, graph: Graph, batch: int) -> None:
        self.graph = graph
        self.batch = batch
        self.consts: dict[str, np.ndarray] = {}
        self.types: dict[str, TensorType] = dict(graph.inputs)
        self.aliases: dict[str, str] = {}
        self._op_names: set[str] = set()

    # -- reading values -------------------------------------------------------------------------------------
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

    # -- defining values ------------------------------------------------------------------------------------
    def set_const(self, name: str, value: np.ndarray) -> None:
        self.consts[name] = np.asarray(value)

    def alias(self, name: str, target: str) -> None:
        """``name`` is the same value as ``target`` (Identity, inference-mode Dropout)."""
        target = self.resolve(target)
        if target in self.consts:
            self.consts[name] = self.consts[target]
        else:
            self.aliases[name] = target

    def emit(self, node: Node, op_cls: type[Op], inputs: list[str], output: str | None = None, **attrs: Any) -> Op:
        """Append an IR op computing ``node``'s first output (or ``output``, for an intermediate value of a node
        imported as several ops) from runtime ``inputs``; infer its type now."""
        name = node.name
        if name in self._op_names:
            name = f"{name}_{node.index}"
        self._op_names.add(name)
        meta = {"onnx_node": node.name, "onnx_op": f"{node.op_type}-{node.opset}"}
        op = op_cls(
            name=name,
            inputs=tuple(self.resolve(v) for v in inputs),
            output=output or node.outputs[0],
            meta=meta,
            **attrs,
        )
        try:
            op.verify()
            out_type = op.infer([self.types[v] for v in op.inputs])
        except ValueError as exc:
            raise UnsupportedVariant(str(exc)) from None
        self.graph.ops.append(op)
        self.types[op.output] = out_type
        return op
