"""A converted graph as Speck layers: each Conv2d or Dense with the IF neurons after it is one core.

* AvgPool2d after IF neurons becomes the sum pooling of the core's destination (kernel = stride, 1, 2 or 4,
  two pools in a row multiply); the next layer's weights are divided by k*k, so sum pooling carries the mean.
* Dense over a (C, H, W) map (through a flatten Reshape) becomes a convolution with an H x W kernel and no
  padding, as sinabs' ``convert_linear_to_conv`` does; over a vector (C,) it is a 1x1 convolution on (C, 1, 1).
  Pooled by more than the chip pools (a global average pool over 8 x 8 before the readout), the chip's largest
  pooling that divides it stays sum pooling and the rest goes into the kernel (:func:`unpooled`).
* A grouped or depthwise Conv2d becomes the full convolution it equals, zeros between the groups
  (:func:`full_convolution`), where the core's kernel memory holds it.
* Per-channel thresholds are folded into the weights (channel c's weights, bias and initial value divided by
  theta_c), leaving one threshold per core as the chip has.
* The graph's output must be a Conv2d/Dense without neurons (the readout: it becomes a core of IF neurons whose
  spike counts, times the readout threshold, estimate the output) or IF neurons.
* The input arrives as events: each input event is worth ``input_scale`` (float units) in the first layers'
  weights.

Every layer a core cannot hold is reported in one error, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurodeploy.errors import ResourceError, UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF
from neurodeploy.ir.ops import AvgPool2d, Conv2d, Dense, Reshape
from neurodeploy_speck import chip

INPUT = -1
"""The source index of the network input (the DVS layer, or events sent by the host)."""


@dataclass
class Layer:
    """One core's worth of network in float units (before quantization)."""

    name: str
    """The Conv2d/Dense op's name."""
    neuron: str | None
    """The IF op's name (None for the readout, which gets neurons here)."""
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    weight: np.ndarray
    """(F, C, k, k) float, with pooling and input scales folded in."""
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    """(y, x)."""
    threshold: float
    initial: float
    """v(0) as a fraction of the threshold."""
    reset: str
    source: int
    """Index of the layer whose spikes feed this one, or INPUT."""
    source_pooling: int
    """Sum pooling between the source's neurons (or the input) and this layer."""
    readout: bool = False
    destinations: list[tuple[int, int]] = field(default_factory=list)
    """(layer index, pooling) of every consumer."""
    op_type: str = "Conv2d"
    groups: int = 1
    """The graph's groups (the weight is the full convolution; see :func:`full_convolution`)."""

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def memory(self) -> chip.Memory:
        f, c, k, _ = self.weight.shape
        return chip.Memory.of(c, f, k, self.out_shape[1:], bool(np.any(self.bias)))


@dataclass
class Lowered:
    layers: list[Layer]
    input_name: str
    input_shape: tuple[int, int, int]
    input_pooling: int
    """Sum pooling of the input (the DVS layer's pooling) before the first layers."""
    input_destinations: list[int]
    output: str
    output_shape: tuple[int, ...]
    readout_layer: int
    readout_threshold: float
    """Float value of one readout spike (the readout core's threshold in float units); 1 for a spiking output."""


@dataclass
class _Spikes:
    """A value that is a spike map: produced by ``source`` (INPUT or a layer), summed over ``pool`` x ``pool``
    windows (scale 1/pool^2 still to apply); ``shape`` is the map (C, H, W) before a flatten Reshape."""

    source: int
    pool: int
    map_shape: tuple[int, int, int]
    flat: bool = False


@dataclass
class _Pending:
    """A Conv2d/Dense output waiting for its IF neurons (or the readout)."""

    layer: Layer


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, problem: str | None) -> None:
        if problem:
            self.items.append(f"{where}: {problem}")


def lower(graph: Graph, *, input_scale: float = 1.0, readout_threshold: float = 1.0) -> Lowered:
    """The Speck layers of ``graph``; raises ResourceError / UnsupportedOpError listing every problem."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOpError(
            f"the Speck target takes one input and one output; graph '{graph.name}' has {len(graph.inputs)} "
            f"input(s) and {len(graph.outputs)} output(s)"
        )
    types = graph.types()
    input_name, in_type = next(iter(graph.inputs.items()))
    if in_type.rank != 3:
        raise UnsupportedOpError(
            f"the Speck target takes a (C, H, W) input; input '{input_name}' has shape {in_type.shape}"
        )
    problems = _Problems()
    values: dict[str, _Spikes | _Pending] = {input_name: _Spikes(INPUT, 1, tuple(in_type.shape))}
    layers: list[Layer] = []
    unsupported: list[str] = []
    for op in graph.ops:
        src = values.get(op.inputs[0]) if op.inputs else None
        where = f"layer '{op.name}' ({op.op_type})"
        if isinstance(op, (Conv2d, Dense)):
            if not isinstance(src, _Spikes) or len(op.inputs) != 1:
                problems.add(where, "its input is not a spike map (Speck needs IF neurons between weighted layers)")
                continue
            layer = _weighted(op, src, types[op.output].shape, problems, where, input_scale)
            if layer is not None:
                layers.append(layer)
                values[op.output] = _Pending(layer)
        elif isinstance(op, IF):
            if not isinstance(src, _Pending) or src.layer.neuron is not None:
                problems.add(where, "IF neurons must follow a Conv2d or Dense directly")
                continue
            _attach_neurons(src.layer, op)
            values[op.output] = _Spikes(layers.index(src.layer), 1, src.layer.out_shape)
        elif isinstance(op, AvgPool2d):
            if not isinstance(src, _Spikes) or src.flat:
                problems.add(where, "average pooling must follow IF neurons (or the input) to become sum pooling")
                continue
            pool = _pooling(op, problems, where)
            if pool:
                c, h, w = src.map_shape
                values[op.output] = _Spikes(src.source, src.pool * pool, (c, h // pool, w // pool))
        elif isinstance(op, Reshape):
            if not isinstance(src, _Spikes):
                problems.add(where, "only a spike map can be flattened")
                continue
            values[op.output] = _Spikes(src.source, src.pool, src.map_shape, flat=True)
        else:
            unsupported.append(f"'{op.name}' ({op.op_type})")
    if unsupported:
        raise UnsupportedOpError(
            f"the Speck target cannot run {len(unsupported)} op(s): {', '.join(unsupported)}; Speck cores run "
            "Conv2d/Dense with IF neurons, average pooling (as sum pooling) and flatten"
        )
    out = values.get(graph.outputs[0])
    readout_index = -1
    if isinstance(out, _Pending):
        out.layer.readout = True
        out.layer.neuron = None
        out.layer.threshold = float(readout_threshold)
        out.layer.initial = 0.0
        out.layer.reset = "subtract"
        readout_index = layers.index(out.layer)
    elif isinstance(out, _Spikes) and out.source != INPUT and out.pool == 1:
        readout_index = out.source
        readout_threshold = 1.0
    else:
        problems.add(
            f"output '{graph.outputs[0]}'",
            "the output must be a Conv2d/Dense (the readout) or IF neurons, not pooled or reshaped",
        )
    for i, layer in enumerate(layers):
        if layer.neuron is None and not (layer.readout and i == readout_index):
            problems.add(f"layer '{layer.name}'", "has no IF neurons after it and is not the output")
    input_destinations = [i for i, layer in enumerate(layers) if layer.source == INPUT]
    input_pools = {layers[i].source_pooling for i in input_destinations}
    if len(input_pools) > 1:
        problems.add("input", f"is pooled differently ({sorted(input_pools)}) for different layers")
    input_pooling = input_pools.pop() if len(input_pools) == 1 else 1
    for i, layer in enumerate(layers):
        if layer.source != INPUT:
            layers[layer.source].destinations.append((i, layer.source_pooling))
    problems.add("input", chip.rule_destinations(len(input_destinations)))
    problems.add("input", chip.rule_input_size(*in_type.shape[1:]))
    for layer in layers:
        problems.add(f"layer '{layer.name}'", chip.rule_destinations(len(layer.destinations)))
        memory = chip.rule_memory(layer.memory)
        if memory and layer.groups != 1:
            memory = f"a grouped (groups={layer.groups}) convolution, which Speck runs as a full one, {memory}"
        problems.add(f"layer '{layer.name}'", memory)
    if problems.items:
        raise ResourceError(
            f"{len(problems.items)} problem(s) keep graph '{graph.name}' off Speck:\n  " + "\n  ".join(problems.items)
        )
    if not layers:
        raise UnsupportedOpError(f"graph '{graph.name}' has no Conv2d or Dense layer to put on a core")
    return Lowered(
        layers=layers,
        input_name=input_name,
        input_shape=tuple(in_type.shape),
        input_pooling=input_pooling,
        input_destinations=input_destinations,
        output=graph.outputs[0],
        output_shape=tuple(types[graph.outputs[0]].shape),
        readout_layer=readout_index,
        readout_threshold=float(readout_threshold),
    )


def _weighted(
    op: Conv2d | Dense,
    src: _Spikes,
    out_shape: tuple[int, ...],
    problems: _Problems,
    where: str,
    input_scale: float,
) -> Layer | None:
    c, h, w = src.map_shape
    average = src.pool  # every pooled input carries 1 / pool^2 of a spike
    if isinstance(op, Conv2d):
        if src.flat:
            problems.add(where, "a convolution cannot follow a flatten")
            return None
        weight = op.weight
        kh, kw = weight.shape[2:]
        before = len(problems.items)
        problems.add(where, chip.rule_square_kernel(kh, kw))
        problems.add(where, chip.rule_kernel_size(max(kh, kw)))
        problems.add(where, chip.rule_stride(op.stride))
        problems.add(where, chip.rule_padding(op.padding))
        if op.groups != 1:  # a full convolution, zero between groups: the kernel memory check says if it fits
            weight = full_convolution(weight, op.groups)
        if op.dilation != (1, 1):
            problems.add(where, f"dilation {op.dilation}: Speck cores have no dilation")
        if len(problems.items) > before:
            return None
        stride, padding = tuple(op.stride), (op.padding[0], op.padding[1])
        out = tuple(out_shape)
    else:
        k_in = op.weight.shape[1]
        if k_in != c * h * w:
            problems.add(where, f"takes {k_in} inputs but its source map {src.map_shape} has {c * h * w}")
            return None
        problems.add(where, chip.rule_square_kernel(h, w))
        if h != w:
            return None
        weight = op.weight.reshape(op.weight.shape[0], c, h, w)  # sinabs convert_linear_to_conv
        stride, padding = (1, 1), (0, 0)
        out = (op.weight.shape[0], 1, 1)
        if src.pool not in chip.POOLINGS:  # e.g. a global average pool over 8 x 8 before the readout
            weight, src = unpooled(weight, src)
            c, h, w = src.map_shape
            problems.add(where, chip.rule_kernel_size(h))
    problems.add(where, chip.rule_channels(c, "input"))
    problems.add(where, chip.rule_channels(weight.shape[0], "output"))
    problems.add(where, chip.rule_pooling(src.pool))
    scale = (input_scale if src.source == INPUT else 1.0) / (average * average)
    bias = op.bias if op.bias is not None else np.zeros(weight.shape[0], np.float32)
    return Layer(
        name=op.name,
        neuron=None,
        in_shape=(c, h, w),
        out_shape=out,
        weight=np.asarray(weight, np.float64) * scale,
        bias=np.asarray(bias, np.float64),
        stride=stride,
        padding=padding,
        threshold=1.0,
        initial=0.0,
        reset="subtract",
        source=src.source,
        source_pooling=src.pool,
        op_type=op.op_type,
        groups=op.groups if isinstance(op, Conv2d) else 1,
    )


def full_convolution(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped (or depthwise) kernel (F, C / groups, k, k) as the full one (F, C, k, k) it equals: output
    channel f of group g reads its group's inputs through its own weights and every other input through 0."""
    f, per_group = weight.shape[:2]
    per_out = f // groups
    full = np.zeros((f, per_group * groups, *weight.shape[2:]), weight.dtype)
    for g in range(groups):
        full[g * per_out : (g + 1) * per_out, g * per_group : (g + 1) * per_group] = weight[
            g * per_out : (g + 1) * per_out
        ]
    return full


def unpooled(weight: np.ndarray, src: _Spikes) -> tuple[np.ndarray, _Spikes]:
    """A Dense over a map pooled ``src.pool`` times, a pooling the chip has no size for, as the same sums over a
    map pooled less: the largest size the chip has that divides the pooling stays sum pooling, the rest r goes
    into the kernel (each weight repeated over r x r positions). The 1/pool^2 of the average is applied with the
    layer's other scales (:func:`_weighted`), so the sums are the ones the graph computes: a global average pool
    over 8 x 8 before the readout becomes sum pooling 4x4 and a 2x2 kernel on a 2 x 2 map."""
    hardware = max(p for p in chip.POOLINGS if src.pool % p == 0)
    r = src.pool // hardware
    c, h, w = src.map_shape
    weight = np.repeat(np.repeat(weight, r, axis=2), r, axis=3)
    return weight, _Spikes(src.source, hardware, (c, h * r, w * r), flat=src.flat)


def _attach_neurons(layer: Layer, op: IF) -> None:
    theta = np.asarray(op.threshold, np.float64)
    if theta.ndim == 1:  # one threshold per core: fold theta_c into channel c's weights and bias
        layer.weight = layer.weight / theta.reshape(-1, 1, 1, 1)
        layer.bias = layer.bias / theta
        theta = np.float64(1.0)
    layer.neuron = op.name
    layer.threshold = float(theta)
    layer.initial = float(op.initial)
    layer.reset = op.reset


def _pooling(op: AvgPool2d, problems: _Problems, where: str) -> int | None:
    kh, kw = op.kernel
    if kh != kw or tuple(op.stride) != (kh, kw) or any(op.padding) or tuple(op.dilation) != (1, 1) or op.ceil_mode:
        problems.add(
            where,
            f"average pool kernel {op.kernel}, stride {op.stride}, padding {op.padding}: Speck sums square windows "
            "with stride = kernel, no padding, no ceil mode",
        )
        return None
    return kh  # (the pooling a layer reads, these multiplied, is checked there: a readout can take more)


def limit_spikes_per_event(lowered: Lowered, limit: float) -> list[dict]:
    """Rescale the layers so that no input event and no bias tick can lift a neuron by more than ``limit``
    thresholds. The chip emits at most one spike per event: a neuron that ought to fire k > 1 times for one
    event keeps the excess in v and sends it only with later events (the converted SNN, and sinabs' MultiSpike
    simulation, fire k times at once), which costs accuracy where events are sparse.

    For a hidden layer whose output channel c has a largest positive weight (or bias) of ``r_c`` thresholds,
    channel c's threshold is raised ``alpha_c = max(1, r_c / limit)`` times (its weights and bias divided by
    alpha_c: the core keeps one threshold) and each consumer's weights from channel c are multiplied by alpha_c,
    so a spike of channel c carries alpha_c times the value: the same function with alpha_c times fewer spikes.
    Layers are visited in order, so a consumer is checked after its inputs were scaled up. The output layer gets
    one alpha (an output spike keeps one value). ``limit = 1`` means no spike is ever held back, at the price of
    rate resolution; see the package README for measurements. Returns per layer its name and the largest and
    mean alpha."""
    if not limit >= 1:
        raise ValueError(f"the spikes-per-event limit must be at least 1, got {limit}")
    report = []
    for index, layer in enumerate(lowered.layers):
        weight_max = layer.weight.reshape(layer.weight.shape[0], -1).max(axis=1, initial=0.0)
        need = np.maximum(np.maximum(weight_max, layer.bias), 0.0) / (layer.threshold * limit)
        if index == lowered.readout_layer:  # one alpha: every output spike keeps one value
            alpha = max(1.0, float(need.max(initial=0.0)))
            layer.threshold *= alpha
            lowered.readout_threshold *= alpha
            report.append({"layer": layer.name, "alpha_max": alpha, "alpha_mean": alpha})
            continue
        alpha = np.maximum(need, 1.0)
        layer.weight = layer.weight / alpha.reshape(-1, 1, 1, 1)
        layer.bias = layer.bias / alpha
        for consumer, _ in layer.destinations:
            lowered.layers[consumer].weight = lowered.layers[consumer].weight * alpha.reshape(1, -1, 1, 1)
        report.append(
            {"layer": layer.name, "alpha_max": float(alpha.max(initial=1.0)), "alpha_mean": float(alpha.mean())}
        )
    return report
