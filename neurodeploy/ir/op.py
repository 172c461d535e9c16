"""The op base class and the one registry of op classes.

An op is a dataclass holding numpy arrays and plain scalars (no onnx, torch or vendor objects). It reads the
values named in ``inputs`` and defines the value named ``output``. Each op class owns its behaviour: shape
inference (:meth:`Op.infer`), validation (:meth:`Op.verify`) and float semantics on batches
(:meth:`Op.forward`). Serialization and printing are generic over :func:`dataclasses.fields`, so adding an op
means adding one class. Spiking ops subclass :class:`StatefulOp` and add ``init_state``/``step``.

What the analyses need to know about an op is the op's too, with defaults here for an op that has no weights,
no known wiring and no conversion rule: synapses per neuron (:meth:`Op.fan_in`, :meth:`Op.interior_fan_out`:
MACs and layer usage), fan-out maps for SynOps (:meth:`Op.fan_out_map`), interval bounds (:meth:`Op.bounds`)
and how convert-to-snn carries value scales through it (:meth:`Op.carry_scales`,
:attr:`Op.passes_target_scale`). :mod:`neurodeploy.metrics`, :mod:`neurodeploy.conversion.statistics`, the
backends' layer usage and convert-to-snn loop over the graph and ask each op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurodeploy.ir.scales import ScaleValue
from neurodeploy.ir.types import TensorType

Shape = tuple[int, ...]
Shapes = list[Shape]
Bounds = tuple[float, float]
Downstream = Callable[[], np.ndarray]
""":meth:`Op.fan_out_map`'s ``downstream``: the fan-out map of the op's output, computed when called."""
Wanted = Callable[[], ScaleValue | None]
""":meth:`Op.carry_scales`'s ``wanted``: the scale the op's output should have (None: unconstrained)."""
Carried = tuple[ScaleValue, list[ScaleValue | None]]
"""What :meth:`Op.carry_scales` returns: the output's scale and, per input, None or a rescaling factor."""

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
    passes_target_scale: ClassVar[bool] = False
    """convert-to-snn: the scale wanted for the op's output is wanted for its inputs too (a linear op that
    neither mixes scales nor absorbs them, e.g. average pooling, reshape, Add, Concat), so the λ of the
    activation after it is looked for through it."""

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

    # -- what the analyses ask (defaults: no weights, wiring unknown, no rule) ---------------------------------
    def fan_in(self) -> int | None:
        """Synapses into each output neuron of a weighted layer (every kernel tap, padding and zero weights
        included): what MACs and layer usage count. None: the op has no weights."""
        return None

    def interior_fan_out(self) -> int | None:
        """Synapses leaving an input neuron of a weighted layer away from the borders (zero weights included),
        for layer usage. None: the op has no weights."""
        return None

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray | None:
        """Synapses reached through this op from each element of input ``slot``: an int64 map of
        ``in_shapes[slot]``. A weighted layer counts its nonzero weights; neurons read one element each; any
        other op carries ``downstream()`` (the same map of its output, computed on demand) back to its input.
        None: the op's wiring is unknown (SynOps are not counted through it)."""
        return None

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        """Interval propagation: (low, high) of the output for inputs within ``in_bounds`` (one (low, high)
        per input). Raise ValueError when the op has no rule."""
        raise ValueError(f"{self.op_type} '{self.name}': no bound propagation rule")

    def carry_scales(
        self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted
    ) -> Carried | None:
        """convert-to-snn: given the scales s of the inputs (the spiking graph carries x / s), make the op compute
        on scaled values (rescaling its own constants in place) and return the scale of its output (compressed,
        :func:`neurodeploy.ir.scales.compress`) and, per input, None, or the factor a ``Scale`` op inserted
        before the op multiplies that input by. ``wanted()`` is the scale the output should have (the λ of the
        activation it feeds; None when nothing constrains it); a weighted layer produces its output there.
        None: the op has no conversion rule."""
        return None

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

    def ready(self, start: int) -> int:
        """The step after which the output has settled, when the inputs have settled after step ``start`` (for a
        time-invariant input, 0). Rate-coded neurons approach their value from the start: ``start``. Neurons
        that compute in windows take longer (:class:`~neurodeploy.ir.neurons.WindowIF`); the readout waits for
        the slowest path (:func:`neurodeploy.simulate.readout_delay`)."""
        return start

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        """Neurons read the value element by element: one synapse each."""
        return np.ones(in_shapes[slot], np.int64)

    @property
    def is_stateful(self) -> bool:
        return True

    @property
    def emits_spikes(self) -> bool:
        """Whether ``step`` returns spikes (counted as activity), not a potential (a leaky integrator's readout)."""
        return True

    def events(self, out: Any) -> Any:
        """The spike events in ``out``, one step's output, per neuron: what spike counts and SynOps count. The
        output itself for neurons that send 0/1 spikes (or several in a step); neurons whose spikes are signed or
        graded say otherwise. ``out`` is a numpy array or a torch tensor: only operators both have."""
        return out

    @property
    def graded(self) -> bool:
        """Whether its spikes are graded or signed: its spike events (:meth:`events`) are not what it sends."""
        return self.emits_spikes and type(self).events is not StatefulOp.events


def as_f32(array: Any) -> np.ndarray:
    """A float32 C-contiguous array of the same rank (IR ops store all tensors this way)."""
    out = np.asarray(array, dtype=np.float32)
    return out if out.flags.c_contiguous else out.copy(order="C")
