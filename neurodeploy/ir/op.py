"""The op base class and the one registry of op classes.

An op is a dataclass holding numpy arrays and plain scalars (no onnx, torch or vendor objects). It reads the
values named in ``inputs`` and defines the value named ``output``. Each op class owns its behaviour: shape
inference (:meth:`Op.infer`), validation (:meth:`Op.verify`) and float semantics on batches
(:meth:`Op.forward`). Serialization and printing are generic over :func:`dataclasses.fields`, so adding an op
means adding one class. Spiking ops subclass :class:`StatefulOp` and add ``init_state``/``step``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurodeploy.ir.types import TensorType

OP_TYPES: dict[str, type[Op]] = {}
"""Every op class by its ``op_type`` (the class name); filled as classes are defined."""


@dataclass(eq=False, kw_only=True)
class Op:
    """One node of the graph: reads ``inputs``, defines ``output``.

    ``meta`` holds provenance (the ONNX node it came from) and pass bookkeeping; it is serialized but never
    changes what the op computes.
    """

    name: str
    inputs: tuple[str, ...]
    output: str
    meta: dict[str, Any] = field(default_factory=dict)

    op_type: ClassVar[str] = "Op"
    num_inputs: ClassVar[int | None] = 1
    """How many inputs the op takes; None means one or more."""

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.op_type = cls.__name__
        if abstract:
            return
        if cls.__name__ in OP_TYPES:
            raise TypeError(f"Op class {cls.__name__} is defined twice")
        OP_TYPES[cls.__name__] = cls

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)

    # -- behaviour every op defines -------------------------------------------------------------------------
    def infer(self, in_types: list[TensorType]) -> TensorType:
        """The output type, given the input types; raise ValueError when they do not fit."""
        raise NotImplementedError(f"{self.op_type}.infer")

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        """Float semantics on batches: ``xs[i]`` has shape (batch, *input_type_i.shape)."""
        raise NotImplementedError(f"{self.op_type}.forward")

    def verify(self) -> None:
        """Check the op's own attributes; raise ValueError with the op's name on a problem."""
        if self.num_inputs is not None and len(self.inputs) != self.num_inputs:
            raise ValueError(f"{self.op_type} '{self.name}' takes {self.num_inputs} input(s), has {len(self.inputs)}")
        if self.num_inputs is None and not self.inputs:
            raise ValueError(f"{self.op_type} '{self.name}' has no inputs")

    # -- generic helpers -------------------------------------------------------------------------------------
    def attributes(self) -> dict[str, Any]:
        """The op's own fields (everything but name, inputs, output and meta), in declaration order."""
        skip = {"name", "inputs", "output", "meta"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}

    def copy(self, **changes: Any) -> Op:
        """A shallow copy with some fields replaced (arrays are shared, not copied)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["meta"] = dict(self.meta)
        values.update(changes)
        return type(self)(**values)

    @property
    def is_stateful(self) -> bool:
        return False


@dataclass(eq=False, kw_only=True)
class StatefulOp(Op, abstract=True):
    """An op with state carried across time steps (a spiking neuron).

    ``forward`` is the op's float ANN meaning (the activation it replaces); ``step`` is one time step.
    """

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.op_type}.init_state")

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        """Advance ``state`` in place by one time step; return this step's output."""
        raise NotImplementedError(f"{self.op_type}.step")

    @property
    def is_stateful(self) -> bool:
        return True


def as_f32(array: Any) -> np.ndarray:
    """A float32 C-contiguous array of the same rank (IR ops store all tensors this way)."""
    out = np.asarray(array, dtype=np.float32)
    return out if out.flags.c_contiguous else out.copy(order="C")
