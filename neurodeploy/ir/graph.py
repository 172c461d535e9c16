"""The graph: named values, ops in topological order, typed inputs and named outputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from neurodeploy.errors import IRVerificationError
from neurodeploy.ir.op import Op
from neurodeploy.ir.types import TensorType


@dataclass(eq=False)
class Graph:
    """A dataflow graph over named values, as in ONNX.

    ``ops`` is kept in topological order (``verify`` checks it). Passes replace arrays rather than writing into
    them, so :meth:`copy` can share arrays between the copy and the original.
    """

    name: str
    inputs: dict[str, TensorType]
    outputs: list[str]
    ops: list[Op] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    # -- queries ---------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Op]:
        return iter(list(self.ops))

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(f"no op named {name!r} in graph {self.name!r}")

    def producer(self, value: str) -> Op | None:
        """The op defining ``value``, or None for a graph input."""
        for op in self.ops:
            if op.output == value:
                return op
        return None

    def consumers(self, value: str) -> list[Op]:
        """The ops reading ``value``, in graph order (an op reading it twice appears once)."""
        return [op for op in self.ops if value in op.inputs]

    def uses(self, value: str) -> int:
        """How many op inputs and graph outputs read ``value``."""
        return sum(op.inputs.count(value) for op in self.ops) + self.outputs.count(value)

    def types(self) -> dict[str, TensorType]:
        """The type of every value, inferred op by op from the input types."""
        types = dict(self.inputs)
        for op in self.ops:
            try:
                in_types = [types[v] for v in op.inputs]
            except KeyError as exc:
                raise IRVerificationError(
                    f"{op.op_type} '{op.name}' reads {exc.args[0]!r}, which is not defined before it"
                ) from None
            try:
                types[op.output] = op.infer(in_types)
            except ValueError as exc:
                raise IRVerificationError(str(exc)) from None
        return types

    def value_names(self) -> set[str]:
        return set(self.inputs) | {op.output for op in self.ops}

    # -- edits -----------------------------------------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        """A value/op name not used yet, derived from ``base``."""
        taken = self.value_names() | {op.name for op in self.ops}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def replace_uses(self, old: str, new: str) -> None:
        """Make every reader of ``old`` (ops and graph outputs) read ``new`` instead."""
        for op in self.ops:
            if old in op.inputs:
                op.inputs = tuple(new if v == old else v for v in op.inputs)
        self.outputs = [new if v == old else v for v in self.outputs]

    def remove(self, op: Op) -> None:
        """Drop ``op``; its readers must already read something else."""
        self.ops.remove(op)

    def bypass(self, op: Op) -> None:
        """Remove a one-input op, wiring its readers to its input. If the op's output is a graph output, the
        name is kept by renaming the input's producer instead (so graph output names survive passes)."""
        src = op.inputs[0]
        if op.output in self.outputs and src not in self.outputs and src not in self.inputs and self.uses(src) == 1:
            producer = self.producer(src)
            if producer is not None:
                self.remove(op)
                producer.output = op.output
                return
        self.replace_uses(op.output, src)
        self.remove(op)

    def insert_after(self, anchor: Op, new: Op) -> None:
        self.ops.insert(self.ops.index(anchor) + 1, new)

    def replace(self, old: Op, new: Op) -> None:
        self.ops[self.ops.index(old)] = new

    def dead_code_elimination(self) -> int:
        """Remove ops whose output nobody reads; returns how many were removed."""
        removed = 0
        changed = True
        while changed:
            changed = False
            for op in reversed(self.ops):
                if self.uses(op.output) == 0:
                    self.ops.remove(op)
                    removed += 1
                    changed = True
        return removed

    def copy(self) -> Graph:
        """A copy whose ops can be edited freely; numpy arrays are shared, not copied."""
        return Graph(self.name, dict(self.inputs), list(self.outputs), [op.copy() for op in self.ops], dict(self.meta))

    # -- invariants ------------------------------------------------------------------------------------------
    def verify(self) -> None:
        """Check every invariant; raise IRVerificationError naming the op and the problem."""
        if not self.inputs:
            raise IRVerificationError(f"graph {self.name!r} has no inputs")
        if not self.outputs:
            raise IRVerificationError(f"graph {self.name!r} has no outputs")
        seen_ops: set[str] = set()
        defined: set[str] = set(self.inputs)
        for op in self.ops:
            if op.name in seen_ops:
                raise IRVerificationError(f"two ops are named {op.name!r}")
            seen_ops.add(op.name)
            if op.output in defined:
                raise IRVerificationError(f"value {op.output!r} is defined twice (again by {op.op_type} '{op.name}')")
            try:
                op.verify()
            except ValueError as exc:
                raise IRVerificationError(str(exc)) from None
            defined.add(op.output)
        for value in self.outputs:
            if value not in defined:
                raise IRVerificationError(f"graph output {value!r} is not defined")
        self.types()
