"""The graph: named values, ops in topological order, typed inputs and named outputs.

Graph's own queries and edits scan ``ops`` on every call, so they are always current but O(n) each. A loop
over the ops that queries or edits per op uses :class:`GraphIndex` (read-only, ``graph.index()``) or
:class:`GraphEditor` (``with graph.edit() as edit:``) instead: built once in O(n), then O(1) per query or edit.
Neither watches the graph: an index is a snapshot of the graph when it was built, and an editor is current
only for the edits made through it.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

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

    # -- queries (each scans the ops: O(n); see index() for queries in a loop) ----------------------------------
    def __iter__(self) -> Iterator[Op]:
        return iter(list(self.ops))

    def index(self) -> GraphIndex:
        """Producers, readers, use counts and names of this graph as it is now, for O(1) queries (built in O(n)).
        A snapshot: it does not see later edits of the graph."""
        return GraphIndex(self)

    def edit(self) -> GraphEditor:
        """An editor for many edits in O(1) each; use as ``with graph.edit() as edit:`` (see GraphEditor)."""
        return GraphEditor(self)

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

    # -- edits (each O(n); see edit() for many edits) ---------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        """A value/op name not used yet, derived from ``base``."""
        return unique_name(base, self.value_names() | {op.name for op in self.ops})

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
        """Remove a one-input op, wiring its readers to its input (see GraphEditor.bypass)."""
        with self.edit() as edit:
            edit.bypass(op)

    def insert_after(self, anchor: Op, new: Op) -> None:
        self.ops.insert(self.ops.index(anchor) + 1, new)

    def replace(self, old: Op, new: Op) -> None:
        self.ops[self.ops.index(old)] = new

    def dead_code_elimination(self) -> int:
        """Remove ops whose output nobody reads, until none is left (O(n)); returns how many were removed."""
        with self.edit() as edit:
            unread = [op for op in self.ops if edit.uses(op.output) == 0]
            removed = 0
            while unread:
                op = unread.pop()
                edit.remove(op)
                removed += 1
                for value in set(op.inputs):
                    producer = edit.producer(value)
                    if producer is not None and edit.uses(value) == 0 and edit.contains(producer):
                        unread.append(producer)
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


N = TypeVar("N", bound=Hashable)


def topological_order(nodes: list[N], successors: Mapping[N, list[N]]) -> list[N]:
    """``nodes`` in an order where every edge (``successors[n]``, each a node) goes forward, ties kept in the given
    order; nodes on a cycle, or reached only through one, are left out (the caller compares lengths)."""
    indegree = dict.fromkeys(nodes, 0)
    for n in nodes:
        for d in successors.get(n, []):
            indegree[d] += 1
    ready = deque(n for n in nodes if indegree[n] == 0)
    order: list[N] = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for d in successors.get(n, []):
            indegree[d] -= 1
            if indegree[d] == 0:
                ready.append(d)
    return order


def unique_name(base: str, taken: set[str] | Counter[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, ...: the first not in ``taken``."""
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


class GraphIndex:
    """Who defines and who reads every value of a graph, and which names are taken: built in one pass over the
    ops (O(n)), then O(1) per query.

    The index is a snapshot of the graph when it was built: edits made to the graph afterwards (ops inserted or
    removed, ``op.inputs`` or ``op.output`` assigned, graph outputs changed) are not seen, and queries would
    answer for the old graph. Build a new one after editing, or edit through a :class:`GraphEditor`, which keeps
    its index current.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._definers: dict[str, dict[Op, None]] = {}  # one in a valid graph; more while an edit is half done
        self._readers: dict[str, dict[Op, None]] = {}  # each reader once, in the order it was wired
        self._reads: Counter[str] = Counter()  # op inputs reading the value (an op reading it twice counts 2)
        self._outputs: Counter[str] = Counter(graph.outputs)
        self._names: Counter[str] = Counter(list(graph.inputs))  # value and op names, one count per definition
        self._by_name: dict[str, Op] = {}
        self._ops: set[Op] = set()
        for op in graph.ops:
            self._add(op)

    # -- queries ----------------------------------------------------------------------------------------------
    def producer(self, value: str) -> Op | None:
        """The op defining ``value``, or None for a graph input."""
        definers = self._definers.get(value)
        return next(iter(definers)) if definers else None

    def consumers(self, value: str) -> list[Op]:
        """The ops reading ``value`` (an op reading it twice appears once): in graph order in a new index; an op
        wired to it by an editor comes after the ones that read it before."""
        return list(self._readers.get(value, ()))

    def uses(self, value: str) -> int:
        """How many op inputs and graph outputs read ``value``."""
        return self._reads[value] + self._outputs[value]

    def is_output(self, value: str) -> bool:
        """``value`` is a graph output."""
        return self._outputs[value] > 0

    def op(self, name: str) -> Op:
        if (op := self._by_name.get(name)) is None:
            raise KeyError(f"no op named {name!r} in graph {self.graph.name!r}")
        return op

    def contains(self, op: Op) -> bool:
        """``op`` (this very object) is one of the graph's ops."""
        return op in self._ops

    def taken(self, name: str) -> bool:
        """``name`` is a graph input, an op's output or an op's name."""
        return self._names[name] > 0

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _add(self, op: Op) -> None:
        self._ops.add(op)
        self._define(op, op.output)
        self._by_name.setdefault(op.name, op)
        self._names[op.name] += 1
        self._wire(op, op.inputs)

    def _drop(self, op: Op) -> None:
        self._ops.discard(op)
        self._undefine(op, op.output)
        if self._by_name.get(op.name) is op:
            del self._by_name[op.name]
        self._forget(op.name)
        self._unwire(op, op.inputs)

    def _define(self, op: Op, value: str) -> None:
        self._definers.setdefault(value, {})[op] = None
        self._names[value] += 1

    def _undefine(self, op: Op, value: str) -> None:
        definers = self._definers.get(value, {})
        definers.pop(op, None)
        if not definers:
            self._definers.pop(value, None)
        self._forget(value)

    def _wire(self, op: Op, inputs: tuple[str, ...]) -> None:
        for value in inputs:
            self._reads[value] += 1
            self._readers.setdefault(value, {})[op] = None

    def _unwire(self, op: Op, inputs: tuple[str, ...]) -> None:
        for value in inputs:
            self._reads[value] -= 1
            if not self._reads[value]:
                del self._reads[value]
            readers = self._readers.get(value, {})
            readers.pop(op, None)
            if not readers:
                self._readers.pop(value, None)

    def _forget(self, name: str) -> None:
        self._names[name] -= 1
        if self._names[name] <= 0:
            del self._names[name]


class GraphEditor(GraphIndex):
    """Edits a graph in O(1) each (amortized) and answers GraphIndex queries for the graph as edited so far.

    Used as ``with graph.edit() as edit:``. Edits of values and names (``set_inputs``, ``set_output``,
    ``replace_uses``, graph outputs) apply to the ops and the graph at once; edits of the op list (``remove``,
    ``replace``, ``insert_before``/``insert_after``) are collected and applied to ``graph.ops`` in one O(n)
    pass by :meth:`commit`, which leaving the ``with`` block calls. Until then ``graph.ops`` still lists the
    ops as they were: commit before reading it (``graph.types()``, ``for op in graph``).

    While an editor is open, edit the graph only through it: an op field assigned directly
    (``op.inputs = ...``, ``op.output = ...``) or an op list changed directly would make its answers stale.
    Attributes that do not wire values (weights, thresholds, ``meta``) may be assigned freely.
    """

    def __init__(self, graph: Graph) -> None:
        super().__init__(graph)
        graph.outputs = list(graph.outputs)  # edited in place below: never the list a copy of the graph holds
        self._output_slots: dict[str, list[int]] = {}
        for i, value in enumerate(graph.outputs):
            self._output_slots.setdefault(value, []).append(i)
        self._removed: set[Op] = set()
        self._replaced: dict[Op, Op] = {}
        self._before: dict[Op, list[Op]] = {}
        self._after: dict[Op, list[Op]] = {}
        self._known: set[Op] = set(self._ops)  # every op that has been part of the graph during this edit

    def __enter__(self) -> GraphEditor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.commit()

    # -- names ------------------------------------------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        """A value/op name not used yet, derived from ``base``; it stays reserved (two calls never return the
        same name, even before the first is used)."""
        name = unique_name(base, self._names)
        self._names[name] += 1
        return name

    # -- wiring -----------------------------------------------------------------------------------------------
    def set_inputs(self, op: Op, inputs: tuple[str, ...] | list[str]) -> None:
        """Make ``op`` read ``inputs``."""
        inputs = tuple(inputs)
        if self.contains(op):
            self._unwire(op, op.inputs)
            self._wire(op, inputs)
        op.inputs = inputs

    def set_output(self, op: Op, value: str) -> None:
        """Make ``op`` define ``value`` instead of its output (its readers keep reading the old name)."""
        if self.contains(op):
            self._undefine(op, op.output)
            self._define(op, value)
        op.output = value

    def replace_uses(self, old: str, new: str, *, outputs: bool = True) -> None:
        """Make every op reading ``old`` read ``new`` instead, and (``outputs``) every graph output naming it."""
        for op in self.consumers(old):
            self.set_inputs(op, tuple(new if v == old else v for v in op.inputs))
        if outputs and (slots := self._output_slots.pop(old, None)) is not None:
            for i in slots:
                self.graph.outputs[i] = new
            self._output_slots.setdefault(new, []).extend(slots)
            self._outputs[new] += self._outputs.pop(old)

    def add_output(self, value: str) -> None:
        """Make ``value`` a graph output too (after the others)."""
        self._output_slots.setdefault(value, []).append(len(self.graph.outputs))
        self.graph.outputs.append(value)
        self._outputs[value] += 1

    # -- the op list ------------------------------------------------------------------------------------------
    def remove(self, op: Op) -> None:
        """Drop ``op``; its readers must already read something else."""
        self._require(op)
        self._drop(op)
        self._removed.add(op)

    def replace(self, old: Op, new: Op) -> None:
        """Put ``new`` where ``old`` is."""
        self._require(old)
        self._admit(new)
        self._drop(old)
        self._replaced[old] = new
        self._add(new)

    def insert_before(self, anchor: Op, new: Op) -> None:
        """Put ``new`` right before ``anchor`` (after the ops inserted before it earlier)."""
        self._require(anchor)
        self._admit(new)
        self._before.setdefault(anchor, []).append(new)
        self._add(new)

    def insert_after(self, anchor: Op, new: Op) -> None:
        """Put ``new`` right after ``anchor`` (before the ops inserted after it earlier)."""
        self._require(anchor)
        self._admit(new)
        self._after.setdefault(anchor, []).append(new)
        self._add(new)

    def bypass(self, op: Op) -> None:
        """Remove a one-input op, wiring its readers to its input. If the op's output is a graph output, the
        name is kept by renaming the input's producer instead (so graph output names survive passes)."""
        src = op.inputs[0]
        if (
            self.is_output(op.output)
            and not self.is_output(src)
            and src not in self.graph.inputs
            and self.uses(src) == 1
            and (producer := self.producer(src)) is not None
        ):
            self.remove(op)
            self.set_output(producer, op.output)
            return
        self.replace_uses(op.output, src)
        self.remove(op)

    def commit(self) -> None:
        """Apply the collected list edits to ``graph.ops`` (a new list, in one pass). The editor stays usable."""
        if not (self._removed or self._replaced or self._before or self._after):
            return
        ops: list[Op] = []
        stack: list[tuple[Op, bool]] = [(op, False) for op in reversed(self.graph.ops)]
        while stack:  # (op, placed): expand an op into what goes in its place, or place it
            op, placed = stack.pop()
            if placed:
                ops.append(op)
                continue
            parts = [(b, False) for b in self._before.pop(op, ())]
            if (new := self._replaced.pop(op, None)) is not None:
                parts.append((new, False))
            elif op not in self._removed:
                parts.append((op, True))
            parts += [(a, False) for a in reversed(self._after.pop(op, ()))]
            stack.extend(reversed(parts))
        self.graph.ops = ops
        self._removed.clear()

    def _require(self, op: Op) -> None:
        if not self.contains(op):
            raise ValueError(f"{op.op_type} '{op.name}' is not in graph {self.graph.name!r}")

    def _admit(self, op: Op) -> None:
        if op in self._known:
            raise ValueError(f"{op.op_type} '{op.name}' is already part of graph {self.graph.name!r}; add a new op")
        self._known.add(op)
