"""Cost metrics of ANNs and SNNs: synaptic fan-out maps (for SynOps) and multiply-accumulates (MACs).

SynOps follow SNN Toolbox: every spike (every event of the input layer) costs one operation per synapse
leaving the neuron that sent it, so ``SynOps = sum over time and neurons of spikes x fan-out``. A neuron's
fan-out counts the weights that connect it to the neurons of the next weighted layers, exactly, with stride,
padding, dilation and groups: it is computed once per weighted layer from the weight mask (zero weights are
no synapses) and carried back through the ops between a spiking layer and the weighted layers it feeds
(pooling windows, reshapes, concatenation, additions). A value read directly by neurons (e.g. a residual
Add into IF neurons) is one synapse per element; a model output has none (it is read out).

ANN MACs follow the usual convention: each weighted layer costs ``output size x fan-in`` per sample (every
kernel tap, padding included, and zero weights included).
"""

from __future__ import annotations

import numpy as np

from neurodeploy.errors import IRVerificationError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.kernels import pool_output_size
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import (
    Add,
    AvgPool2d,
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
)


def _taps(size: int, out: int, kernel: int, stride: int, pad_begin: int, dilation: int) -> np.ndarray:
    """(kernel, size) 0/1: whether kernel tap k of some output window lands on input position i (not padding)."""
    hit = np.zeros((kernel, size), np.int64)
    for k in range(kernel):
        positions = np.arange(out) * stride - pad_begin + k * dilation
        positions = positions[(positions >= 0) & (positions < size)]
        hit[k, positions] = 1
    return hit


def conv_fan_out(op: Conv2d, in_shape: tuple[int, ...]) -> np.ndarray:
    """Synapses leaving each input position (C, H, W) of a convolution: for every nonzero weight, the output
    windows whose tap lands on that position."""
    c, h, w = in_shape
    o, cg, kh, kw = op.weight.shape
    oh = pool_output_size(h, kh, op.stride[0], op.padding[0], op.padding[2], op.dilation[0], False)
    ow = pool_output_size(w, kw, op.stride[1], op.padding[1], op.padding[3], op.dilation[1], False)
    og = o // op.groups
    nonzero = (op.weight != 0).astype(np.int64)  # (O, C/groups, kH, kW)
    # per input channel: how many output channels of its group have a nonzero weight at each tap
    per_channel = nonzero.reshape(op.groups, og, cg, kh, kw).sum(axis=1).reshape(c, kh, kw)
    rows = _taps(h, oh, kh, op.stride[0], op.padding[0], op.dilation[0])
    cols = _taps(w, ow, kw, op.stride[1], op.padding[1], op.dilation[1])
    return np.einsum("cij,iy,jx->cyx", per_channel, rows, cols)


def dense_fan_out(op: Dense, in_shape: tuple[int, ...]) -> np.ndarray:
    """Synapses leaving each input element of a dense layer: the nonzero weights in its column."""
    per_feature = (op.weight != 0).sum(axis=0).astype(np.int64)
    return np.broadcast_to(per_feature, in_shape).copy()


def _pool_adjoint(op: AvgPool2d | MaxPool2d, in_shape: tuple[int, ...], down: np.ndarray) -> np.ndarray:
    """Carry fan-out back through pooling windows: an input cell reaches every window it lies in."""
    h, w = in_shape[1:]
    oh, ow = down.shape[1:]
    up = np.zeros(in_shape, np.int64)
    for ki in range(op.kernel[0]):
        ys = np.arange(oh) * op.stride[0] - op.padding[0] + ki * op.dilation[0]
        keep_y = (ys >= 0) & (ys < h)
        for kj in range(op.kernel[1]):
            xs = np.arange(ow) * op.stride[1] - op.padding[1] + kj * op.dilation[1]
            keep_x = (xs >= 0) & (xs < w)
            np.add.at(up, (slice(None), ys[keep_y][:, None], xs[keep_x][None, :]), down[:, keep_y][:, :, keep_x])
    return up


def _unbroadcast(down: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a map over the axes an (equal-rank) operand was broadcast along."""
    axes = tuple(i for i, (a, b) in enumerate(zip(shape, down.shape)) if a == 1 and b != 1)
    return down.sum(axis=axes, keepdims=True) if axes else down


def fan_out_maps(graph: Graph, sources: list[str] | None = None) -> dict[str, np.ndarray]:
    """Synapses leaving each element of each spike source, as an int64 map of the source value's shape.

    ``sources`` are value names; by default every graph input and every stateful op's output. Raises
    IRVerificationError for an op between a source and the weighted layers whose wiring is not known here.
    """
    types = graph.types()
    if sources is None:
        sources = list(graph.inputs) + [op.output for op in graph.ops if op.is_stateful]
    memo: dict[str, np.ndarray] = {}
    wiring = graph.index()

    def reach(value: str) -> np.ndarray:
        if value in memo:
            return memo[value]
        shape = types[value].shape
        total = np.zeros(shape, np.int64)
        for op in wiring.consumers(value):
            for slot, name in enumerate(op.inputs):
                if name == value:
                    total = total + contribution(op, slot, shape)
        memo[value] = total
        return total

    def contribution(op: Op, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        if isinstance(op, Conv2d):
            return conv_fan_out(op, shape)
        if isinstance(op, Dense):
            return dense_fan_out(op, shape)
        if op.is_stateful:
            return np.ones(shape, np.int64)  # neurons reading the value element by element
        down = reach(op.output)
        if isinstance(op, (AvgPool2d, MaxPool2d)):
            return _pool_adjoint(op, shape, down)
        if isinstance(op, GlobalAvgPool):
            return np.broadcast_to(down, shape).copy()
        if isinstance(op, Reshape):
            return down.reshape(shape)
        if isinstance(op, Concat):
            start = sum(types[v].shape[op.axis] for v in op.inputs[:slot])
            index = [slice(None)] * len(shape)
            index[op.axis] = slice(start, start + shape[op.axis])
            return down[tuple(index)]
        if isinstance(op, Add):
            return _unbroadcast(down, shape)
        if isinstance(op, (Bias, Scale, Relu, Clip)):
            return down
        raise IRVerificationError(
            f"cannot count the synapses through {op.op_type} '{op.name}': its wiring is unknown to "
            "neurodeploy.metrics.fan_out_maps"
        )

    return {v: reach(v) for v in sources}


def layer_macs(graph: Graph) -> dict[str, int]:
    """MACs per sample of every weighted layer: output size x fan-in."""
    types = graph.types()
    macs = {}
    for op in graph.ops:
        if isinstance(op, Conv2d):
            fan_in = int(np.prod(op.weight.shape[1:]))
        elif isinstance(op, Dense):
            fan_in = int(op.weight.shape[1])
        else:
            continue
        macs[op.name] = types[op.output].size * fan_in
    return macs


def neuron_counts(graph: Graph) -> dict[str, int]:
    """Neurons of every stateful (spiking) op."""
    types = graph.types()
    return {op.name: types[op.output].size for op in graph.ops if op.is_stateful}
