"""convert-to-snn: replace each ReLU / clipped ReLU with integrate-and-fire neurons, balancing thresholds.

Every value v gets a *scale* s(v): the spiking graph carries u = x / s(v), where x is the ANN's value. A
weighted layer absorbs the scale of its input and produces its output at the scale its activation wants:

    W' = W * s(in) / t,   b' = b / t        (t = λ of the activation the output feeds, per layer)

so an IF neuron after it has threshold λ / t = 1 and each of its spikes is worth λ. λ comes from calibration
data (the largest activation, ``norm=max``) or, without data, from weight bounds (``norm=weights``).
Pooling and reshapes pass scales through; branches meeting at an Add are brought to the Add's scale (a
``Scale`` op where a branch cannot absorb it); Concat keeps each branch's scale per channel. Outputs are
scaled back to the ANN's units, so the readout (the output's mean over time steps) estimates the ANN output.

MaxPool has no exact rate-coded equivalent: ``maxpool=avg`` replaces it with AvgPool2d (and warns),
``maxpool=error`` refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.conversion.statistics import ASSUMED_INPUT_RANGE, data_maxima, weight_bounds
from neurodeploy.errors import ConversionError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import (
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Clip,
    Concat,
    Conv2d,
    Dense,
    GlobalAvgPool,
    MaxPool2d,
    Relu,
    Reshape,
    Scale,
    Softmax,
)
from neurodeploy.passes.base import Pass, PassContext

_TRANSPARENT = (AvgPool2d, GlobalAvgPool, Reshape, Add, Concat)


def is_activation(op: Op) -> bool:
    """ReLU or a clipped ReLU Clip(0, a): the activations IF neurons replace."""
    return isinstance(op, Relu) or (isinstance(op, Clip) and op.low == 0.0)


def _compress(scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The smallest array equal to ``scale`` broadcast over ``shape``: a scalar, one per channel, or full."""
    full = np.broadcast_to(np.asarray(scale, np.float32), shape)
    if np.all(full == full.flat[0]):
        return np.asarray(full.flat[0], np.float32)
    if len(shape) == 3:
        per_channel = full[:, :1, :1]
        if np.array_equal(np.broadcast_to(per_channel, shape), full):
            return np.ascontiguousarray(per_channel)
    return np.ascontiguousarray(full)


def _channel_vector(scale: np.ndarray, shape: tuple[int, ...], axis: int, what: str) -> np.ndarray:
    """The scale as one value per index of ``axis``; an error if it varies along other axes."""
    full = np.broadcast_to(scale, shape)
    moved = np.moveaxis(full, axis, 0).reshape(shape[axis], -1)
    if not np.all(moved == moved[:, :1]):
        raise ConversionError(
            f"{what}: its input's scale varies within a channel; this cannot be folded into the weights"
        )
    return moved[:, 0].astype(np.float32)


@dataclass(frozen=True)
class ConvertToSNN(Pass):
    name = "convert-to-snn"
    preserves_semantics = False

    norm: str = "max"
    reset: str = "subtract"
    initial: float = 0.5
    maxpool: str = "avg"

    def __post_init__(self) -> None:
        for option, value, allowed in (
            ("norm", self.norm, ("max", "weights")),
            ("reset", self.reset, IF.RESETS),
            ("maxpool", self.maxpool, ("avg", "error")),
        ):
            if value not in allowed:
                raise ValueError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")

    # -- steps ------------------------------------------------------------------------------------------------
    def _check_ops(self, graph: Graph, ctx: PassContext) -> None:
        replaced = []
        for op in graph:
            if isinstance(op, Softmax):
                raise ConversionError(
                    f"Softmax '{op.name}' has no spiking equivalent; run drop-softmax first (the "
                    "default pipelines do) so the readout is an argmax"
                )
            if isinstance(op, BatchNorm):
                raise ConversionError(f"BatchNorm '{op.name}' is left over; run fold-batchnorm first")
            if isinstance(op, Clip) and not is_activation(op):
                raise ConversionError(
                    f"Clip '{op.name}' with low={op.low} has no spiking equivalent: IF neurons "
                    "only represent non-negative values (Clip(0, a) and ReLU convert)"
                )
            if isinstance(op, MaxPool2d):
                if self.maxpool == "error":
                    raise ConversionError(
                        f"MaxPool2d '{op.name}' cannot be rate-coded exactly; retrain with "
                        "average pooling or pass maxpool=avg"
                    )
                graph.replace(
                    op,
                    AvgPool2d(
                        name=op.name,
                        inputs=op.inputs,
                        output=op.output,
                        meta=dict(op.meta),
                        kernel=op.kernel,
                        stride=op.stride,
                        padding=op.padding,
                        dilation=op.dilation,
                        ceil_mode=op.ceil_mode,
                        count_include_pad=False,
                    ),
                )
                replaced.append(op.name)
        if replaced:
            ctx.warn(f"MaxPool replaced by AvgPool (an approximation; accuracy may drop): {', '.join(replaced)}")

    def _lambdas(self, graph: Graph, ctx: PassContext, activations: list[Op]) -> tuple[dict[str, float], str]:
        values = [a.output for a in activations]
        if self.norm == "max" and ctx.calibration is not None:
            stats, used = data_maxima(graph, values, ctx.calibration), "max"
        else:
            if self.norm == "max":
                ctx.warn(
                    "No calibration data: thresholds come from weight bounds (inputs assumed in "
                    f"{list(ASSUMED_INPUT_RANGE)}), which needs many more time steps; pass --calibration "
                    "for data-based normalization"
                )
            stats, used = weight_bounds(graph, values), "weights"
        lambdas = {}
        for act in activations:
            lam = stats[act.output]
            if isinstance(act, Clip) and act.high is not None:
                lam = act.high  # a clipped ReLU saturates exactly at its clip value
            if not lam > 0:
                lam = 1.0  # never active on the calibration data: any threshold works
            lambdas[act.name] = float(lam)
        return lambdas, used

    def _target(self, graph: Graph, value: str, lambdas: dict[str, float]) -> float | None:
        """The scale ``value`` should be produced at: λ of the activation it reaches through linear,
        scale-transparent ops; 1 (the ANN's units) for a model output; None when nothing constrains it."""
        while value not in graph.outputs and len(readers := graph.consumers(value)) == 1:
            reader = readers[0]
            if reader.name in lambdas:
                return lambdas[reader.name]
            if not isinstance(reader, _TRANSPARENT):
                return None
            value = reader.output
        return 1.0 if value in graph.outputs else None

    def run(self, graph: Graph, ctx: PassContext) -> None:
        self._check_ops(graph, ctx)
        activations = [op for op in graph.ops if is_activation(op)]
        if not activations:
            ctx.warn("The model has no ReLU activations: nothing spikes; the SNN is the ANN run every step")
        lambdas, used = self._lambdas(graph, ctx, activations)
        types = graph.types()
        scales: dict[str, np.ndarray] = {v: np.float32(1.0) for v in graph.inputs}
        for op in graph:
            shape_in = [types[v].shape for v in op.inputs]
            s_in = [scales[v] for v in op.inputs]
            out_shape = types[op.output].shape
            if isinstance(op, (Conv2d, Dense)):
                scales[op.output] = self._rescale_weighted(graph, op, s_in[0], shape_in[0], lambdas)
            elif op.name in lambdas:
                lam = lambdas[op.name]
                axis_shape = shape_in[0]
                theta = _compress(np.float32(lam) / np.broadcast_to(s_in[0], axis_shape), axis_shape)
                if theta.ndim > 0:
                    theta = _channel_vector(theta, axis_shape, 0, f"{op.op_type} '{op.name}'")
                graph.replace(
                    op,
                    IF(
                        name=op.name,
                        inputs=op.inputs,
                        output=op.output,
                        meta={**op.meta, "lambda": lam},
                        threshold=theta,
                        reset=self.reset,
                        initial=self.initial,
                    ),
                )
                scales[op.output] = np.float32(lam)
            elif isinstance(op, (AvgPool2d, GlobalAvgPool)):
                scales[op.output] = _compress(s_in[0], shape_in[0])
            elif isinstance(op, Reshape):
                scales[op.output] = _compress(np.broadcast_to(s_in[0], shape_in[0]).reshape(out_shape), out_shape)
            elif isinstance(op, Add):
                wanted = self._target(graph, op.output, lambdas)
                # Unconstrained: keep the first branch's scale, so at most the other branches need a Scale.
                target = np.float32(wanted) if wanted is not None else s_in[0]
                inputs = []
                for value, s in zip(op.inputs, s_in):
                    inputs.append(
                        value if np.allclose(s, target, rtol=1e-6) else self._insert_scale(graph, op, value, s / target)
                    )
                op.inputs = tuple(inputs)
                scales[op.output] = target
            elif isinstance(op, Concat):
                parts = [np.broadcast_to(s, shp) for s, shp in zip(s_in, shape_in)]
                scales[op.output] = _compress(np.concatenate(parts, axis=op.axis), out_shape)
            elif isinstance(op, Bias):
                op.value = np.asarray(op.value / s_in[0], np.float32)
                scales[op.output] = s_in[0]
            elif isinstance(op, Scale):
                scales[op.output] = s_in[0]
            else:
                raise ConversionError(f"{op.op_type} '{op.name}' has no conversion rule")
        for value in list(graph.outputs):
            if not np.all(scales[value] == 1.0):
                self._scale_output(graph, value, scales[value])
        graph.meta["snn"] = {
            "norm": used,
            "reset": self.reset,
            "initial": self.initial,
            "lambda": dict(sorted(lambdas.items())),
        }
        ctx.records[self.name] = graph.meta["snn"]

    # -- rewrites ---------------------------------------------------------------------------------------------
    def _rescale_weighted(
        self, graph: Graph, op: Conv2d | Dense, s_in: np.ndarray, shape_in: tuple[int, ...], lambdas: dict[str, float]
    ) -> np.ndarray:
        wanted = self._target(graph, op.output, lambdas)
        target = np.float32(1.0 if wanted is None else wanted)
        where = f"{op.op_type} '{op.name}'"
        if isinstance(op, Conv2d):
            vec = _channel_vector(s_in, shape_in, 0, where)
            out_ch, per_group = op.weight.shape[:2]
            group_of_output = np.arange(out_ch) // (out_ch // op.groups)
            s_w = vec.reshape(op.groups, per_group)[group_of_output]  # (O, C/groups): scale of each weight's input
            op.weight = (op.weight * s_w[:, :, None, None] / target).astype(np.float32)
        else:
            vec = _channel_vector(s_in, shape_in, len(shape_in) - 1, where)
            op.weight = (op.weight * vec[None, :] / target).astype(np.float32)
        if op.bias is not None:
            op.bias = (op.bias / target).astype(np.float32)  # the bias is a constant current, in output units
        return target

    @staticmethod
    def _insert_scale(graph: Graph, before: Op, value: str, factor: np.ndarray) -> str:
        out = graph.fresh_name(f"{value}_rescaled")
        scale = Scale(
            name=graph.fresh_name(f"{before.name}_rescale"),
            inputs=(value,),
            output=out,
            meta={"inserted_by": "convert-to-snn"},
            value=np.asarray(factor, np.float32),
        )
        graph.ops.insert(graph.ops.index(before), scale)
        return out

    @staticmethod
    def _scale_output(graph: Graph, value: str, factor: np.ndarray) -> None:
        producer = graph.producer(value)
        inner = graph.fresh_name(f"{value}_unscaled")
        graph.replace_uses(value, inner)
        if producer is None:
            raise ConversionError(f"model output {value!r} is a model input")
        producer.output = inner
        graph.outputs = [value if v == inner else v for v in graph.outputs]
        graph.insert_after(
            producer,
            Scale(
                name=graph.fresh_name(f"{value}_readout_scale"),
                inputs=(inner,),
                output=value,
                meta={"inserted_by": "convert-to-snn"},
                value=np.asarray(factor, np.float32),
            ),
        )
