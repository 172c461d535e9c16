"""A converted graph as Speck layers: each Conv2d or Dense with the IF neurons after it is one core.

* AvgPool2d after IF neurons becomes the sum pooling of the core's destination (kernel = stride, 1, 2 or 4,
  two pools in a row multiply); the next layer's weights are divided by k*k, so sum pooling carries the mean.
* Dense over a (C, H, W) map (through a flatten Reshape) becomes a convolution with an H x W kernel and no
  padding, as sinabs' ``convert_linear_to_conv`` does; over a vector (C,) it is a 1x1 convolution on (C, 1, 1).
  Pooled by more than the chip pools (a global average pool over 8 x 8 before the readout), the chip's largest
  pooling that divides it stays sum pooling and the rest goes into the kernel (:func:`unpooled`).
* A grouped or depthwise Conv2d becomes the full convolution it equals, zeros between the groups
  (:func:`full_convolution`), where the core's kernel memory holds it.
* Residual Add and channel Concat: a core can take events from several sources, each on its destination's
  ``feature_shift`` (the first input channel its channel 0 lands on). A Concat of spike maps puts the parts side
  by side; an Add of two spike maps puts both on the same channels (the chip's merge, sinabs' ``Merge``: they
  must carry the same value per spike); an Add of a convolution's output and a spike map s (the converted
  residual block, IF(conv(h) + a s)) gives that convolution's core s as more input channels, each reaching its
  own channel's neuron through the kernel's centre tap with weight a (a Scale op before the Add): the core then
  integrates exactly conv(h) + a s. The convolution must keep the map's size (stride 1, odd kernel, padding
  (k - 1) / 2); an Add of two convolutions (a projection shortcut) and a skip from the input itself are refused.
* Per-channel thresholds are folded into the weights (channel c's weights, bias and initial value divided by
  theta_c), leaving one threshold per core as the chip has.
* The graph's output must be a Conv2d/Dense without neurons (the readout: it becomes a core of IF neurons whose
  spike counts, times the readout threshold, estimate the output) or IF neurons.
* The input arrives as events: each input event is worth ``input_scale`` (float units) in the first layers'
  weights.

Every layer a core cannot hold is reported in one error, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from neurodeploy.errors import ResourceError, UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF, LIF, describe_leaky
from neurodeploy.ir.ops import Add, AvgPool2d, Concat, Conv2d, Delay, Dense, Reshape, Scale
from neurodeploy_speck import chip

INPUT = -1
DELAY = "Speck's synapses have no delays: every spike arrives in the step it is sent; remove the Delay"
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
    """Index of the layer whose spikes feed this one, or INPUT (the first of :attr:`sources`)."""
    source_pooling: int
    """Sum pooling between the source's neurons (or the input) and this layer."""
    readout: bool = False
    destinations: list[tuple[int, int, int]] = field(default_factory=list)
    """(layer index, pooling, feature shift) of every consumer."""
    source_shift: int = 0
    """The input channel the first source's channel 0 lands on."""
    more_sources: list[tuple[int, int, int]] = field(default_factory=list)
    """(layer index or INPUT, pooling, feature shift) of every further source: a merge (the same channels) or a
    concatenation (channels after the others), both summed into this core's input map by the chip."""
    op_type: str = "Conv2d"
    groups: int = 1
    """The graph's groups (the weight is the full convolution; see :func:`full_convolution`)."""

    @property
    def sources(self) -> list[tuple[int, int, int]]:
        return [(self.source, self.source_pooling, self.source_shift), *self.more_sources]

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
class _Part:
    """Channels ``shift``.. of a spike map: the spikes of ``source`` (INPUT or a layer), summed over ``pool`` x
    ``pool`` windows (1/pool^2 still to apply); one spike of channel j is worth ``value[j]`` (a Scale op on the
    way), folded into the consumer's weights."""

    source: int
    pool: int
    shift: int
    value: np.ndarray


@dataclass
class _Spikes:
    """A value that is a spike map made of one or more parts (a merge: parts on the same channels, summed; a
    concatenation: parts side by side); ``shape`` is the map (C, H, W) before a flatten Reshape."""

    parts: list[_Part]
    map_shape: tuple[int, int, int]
    flat: bool = False

    @classmethod
    def of(cls, source: int, shape: tuple[int, int, int]) -> _Spikes:
        return cls([_Part(source, 1, 0, np.ones(shape[0]))], tuple(shape))

    @property
    def single(self) -> _Part | None:
        return self.parts[0] if len(self.parts) == 1 else None


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
    values: dict[str, _Spikes | _Pending] = {input_name: _Spikes.of(INPUT, tuple(in_type.shape))}
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
            values[op.output] = _Spikes.of(layers.index(src.layer), src.layer.out_shape)
        elif isinstance(op, AvgPool2d):
            if not isinstance(src, _Spikes) or src.flat:
                problems.add(where, "average pooling must follow IF neurons (or the input) to become sum pooling")
                continue
            pool = _pooling(op, problems, where)
            if pool:
                c, h, w = src.map_shape
                parts = [replace(p, pool=p.pool * pool) for p in src.parts]
                values[op.output] = _Spikes(parts, (c, h // pool, w // pool))
        elif isinstance(op, Reshape):
            if not isinstance(src, _Spikes):
                problems.add(where, "only a spike map can be flattened")
                continue
            values[op.output] = replace(src, flat=True)
        elif isinstance(op, Scale):
            scaled = _scaled(op, src, types[op.inputs[0]].shape)
            if scaled is None:
                problems.add(where, "Speck folds a Scale into the next weights only on a spike map, per channel")
                continue
            values[op.output] = scaled
        elif isinstance(op, Concat):
            joined = _concatenated(op, [values.get(v) for v in op.inputs])
            if isinstance(joined, str):
                problems.add(where, joined)
                continue
            values[op.output] = joined
        elif isinstance(op, Add):
            added = _added([values.get(v) for v in op.inputs], input_scale)
            if isinstance(added, str):
                problems.add(where, added)
                continue
            values[op.output] = added
        else:
            why = describe_leaky(op) if isinstance(op, LIF) else DELAY if isinstance(op, Delay) else ""
            unsupported.append(f"'{op.name}' ({op.op_type}{': ' + why if why else ''})")
    if unsupported:
        raise UnsupportedOpError(
            f"the Speck target cannot run {len(unsupported)} op(s): {', '.join(unsupported)}; Speck cores run "
            "Conv2d/Dense with IF neurons, average pooling (as sum pooling), flatten, and residual Add and channel "
            "Concat of spike maps"
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
    elif isinstance(out, _Spikes) and out.single and out.single.source != INPUT and out.single.pool == 1:
        readout_index = out.single.source
        readout_threshold = 1.0
    else:
        problems.add(
            f"output '{graph.outputs[0]}'",
            "the output must be a Conv2d/Dense (the readout) or IF neurons, not pooled or reshaped",
        )
    for i, layer in enumerate(layers):
        if layer.neuron is None and not (layer.readout and i == readout_index):
            problems.add(f"layer '{layer.name}'", "has no IF neurons after it and is not the output")
    input_reads = [
        (i, pool, shift) for i, layer in enumerate(layers) for src, pool, shift in layer.sources if src == INPUT
    ]
    input_destinations = [i for i, _, _ in input_reads]
    input_pools = {pool for _, pool, _ in input_reads}
    if len(input_pools) > 1:
        problems.add("input", f"is pooled differently ({sorted(input_pools)}) for different layers")
    if any(shift for _, _, shift in input_reads):
        problems.add(
            "input",
            "reaches a core as channels after others (a concatenation or a skip): the DVS layer's "
            "events land on a core's first channels; put a layer between the input and the join",
        )
    input_pooling = input_pools.pop() if len(input_pools) == 1 else 1
    for i, layer in enumerate(layers):
        for src, pool, shift in layer.sources:
            if src != INPUT:
                layers[src].destinations.append((i, pool, shift))
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
        pools = {p.pool for p in src.parts}
        if len(pools) == 1 and pools.pop() not in chip.POOLINGS:  # e.g. a global average pool over 8 x 8
            weight, src = unpooled(weight, src)
            c, h, w = src.map_shape
            problems.add(where, chip.rule_kernel_size(h))
    problems.add(where, chip.rule_channels(c, "input"))
    problems.add(where, chip.rule_channels(weight.shape[0], "output"))
    for part in src.parts:
        problems.add(where, chip.rule_pooling(part.pool))
    scale = _input_values(src, input_scale)
    if isinstance(scale, str):
        problems.add(where, scale)
        return None
    bias = op.bias if op.bias is not None else np.zeros(weight.shape[0], np.float32)
    first, *more = src.parts
    return Layer(
        name=op.name,
        neuron=None,
        in_shape=(c, h, w),
        out_shape=out,
        weight=np.asarray(weight, np.float64) * scale.reshape(1, -1, 1, 1),
        bias=np.asarray(bias, np.float64),
        stride=stride,
        padding=padding,
        threshold=1.0,
        initial=0.0,
        reset="subtract",
        source=first.source,
        source_pooling=first.pool,
        source_shift=first.shift,
        more_sources=[(p.source, p.pool, p.shift) for p in more],
        op_type=op.op_type,
        groups=op.groups if isinstance(op, Conv2d) else 1,
    )


def _input_values(src: _Spikes, input_scale: float) -> np.ndarray | str:
    """Per input channel of the map, what one event on it is worth in float units: the part's spike value, the
    input event's worth for the input, 1/pool^2 of sum pooling. Parts merged onto the same channels must agree
    (the core has one kernel for them): otherwise the reason."""
    values = np.full(src.map_shape[0], np.nan)
    for part in src.parts:
        worth = part.value * (input_scale if part.source == INPUT else 1.0) / (part.pool * part.pool)
        span = slice(part.shift, part.shift + len(worth))
        here = values[span]
        clash = ~np.isnan(here) & ~np.isclose(here, worth, rtol=1e-6, atol=0.0)
        if np.any(clash):
            return (
                "adds spike maps whose spikes are worth different amounts (e.g. "
                f"{float(here[clash][0]):g} and {float(worth[clash][0]):g}; pooled or scaled differently), which one "
                "Speck core, one kernel for both, cannot weigh apart"
            )
        values[span] = worth
    return np.nan_to_num(values, nan=0.0)


def _scaled(op: Scale, src: _Spikes | _Pending | None, shape: tuple[int, ...]) -> _Spikes | None:
    """A Scale on a spike map as spike values per channel (the consumer's weights take them), or None."""
    if not isinstance(src, _Spikes) or src.flat:
        return None
    value = np.broadcast_to(np.asarray(op.value, np.float64), shape)
    per_channel = value.reshape(shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        return None
    per_channel = per_channel[:, 0]
    return _Spikes(
        [replace(p, value=p.value * per_channel[p.shift : p.shift + len(p.value)]) for p in src.parts], src.map_shape
    )


def _concatenated(op: Concat, sources: list) -> _Spikes | str:
    """A channel Concat of spike maps: their parts side by side (each destination's feature shift)."""
    if op.axis != 0:
        return f"concatenates along axis {op.axis}; Speck joins spike maps along channels only (axis 0)"
    if not all(isinstance(x, _Spikes) and not x.flat for x in sources):
        return "joins values that are not spike maps; Speck concatenates the spikes of IF neurons (or the input)"
    parts, offset = [], 0
    for x in sources:
        parts += [replace(p, shift=p.shift + offset) for p in x.parts]
        offset += x.map_shape[0]
    return _Spikes(parts, (offset, *sources[0].map_shape[1:]))


def _added(sources: list, input_scale: float) -> _Spikes | _Pending | str:
    """A residual Add: two spike maps (the chip merges both into the next core's input: parts on the same
    channels), or a convolution's output and a spike map of its shape (the spike map becomes more input channels
    of that convolution's core, through an identity kernel tap: :func:`_residual`)."""
    spikes = [x for x in sources if isinstance(x, _Spikes)]
    pending = [x for x in sources if isinstance(x, _Pending)]
    if len(spikes) + len(pending) != len(sources):
        return "adds a value Speck does not carry (only spike maps and convolution outputs)"
    if any(x.flat for x in spikes):
        return "adds flattened spike maps; add the maps before the flatten"
    if not pending:
        shapes = {x.map_shape for x in spikes}
        if len(shapes) != 1:
            return f"adds spike maps of shapes {sorted(shapes)}; they must match"
        return _Spikes([p for x in spikes for p in x.parts], spikes[0].map_shape)
    if len(pending) > 1:
        return (
            "adds the outputs of two convolutions (a projection shortcut): Speck sums inputs into one core, so one "
            "core would run both, which it can only where they share stride, padding and input size; give the "
            "shortcut IF neurons of its own (train with a spiking shortcut) or use an identity shortcut"
        )
    layer = pending[0].layer
    for skip in spikes:
        problem = _residual(layer, skip, input_scale)
        if problem:
            return problem
    return pending[0]


def _residual(layer: Layer, skip: _Spikes, input_scale: float) -> str | None:
    """Give ``layer`` (a convolution without neurons yet) the spike map ``skip`` as more input channels, each
    reaching the output neuron of its own channel and position through the kernel's centre tap, with the value
    of one of its spikes: then the core's neurons integrate conv(x) + skip, the residual block's sum. Needs an
    output the size of the input (stride 1, odd kernel, padding (k - 1) / 2) and a skip of the output's shape."""
    f, c, k, _ = layer.weight.shape
    if layer.op_type != "Conv2d" or layer.stride != (1, 1) or k % 2 == 0 or layer.padding != (k // 2, k // 2):
        return (
            f"adds a spike map to '{layer.name}' (stride {layer.stride}, kernel {k}, padding {layer.padding}): Speck "
            "adds a skip as an identity tap of the same core, so the convolution must keep the map's size (stride "
            "1, odd kernel, padding (k - 1) / 2)"
        )
    if tuple(skip.map_shape) != tuple(layer.out_shape):
        return (
            f"adds a spike map of shape {skip.map_shape} to '{layer.name}''s output {layer.out_shape}; they must match"
        )
    values = _input_values(skip, input_scale)
    if isinstance(values, str):
        return values
    grown = np.zeros((f, c + f, k, k))
    grown[:, :c] = layer.weight
    grown[np.arange(f), c + np.arange(f), k // 2, k // 2] = values
    layer.weight = grown
    layer.in_shape = (c + f, *layer.in_shape[1:])
    layer.more_sources += [(p.source, p.pool, c + p.shift) for p in skip.parts]
    return None


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
    pool = src.parts[0].pool
    hardware = max(p for p in chip.POOLINGS if pool % p == 0)
    r = pool // hardware
    c, h, w = src.map_shape
    weight = np.repeat(np.repeat(weight, r, axis=2), r, axis=3)
    parts = [replace(p, pool=hardware, value=p.value / (r * r)) for p in src.parts]
    return weight, _Spikes(parts, (c, h * r, w * r), flat=src.flat)


def _channels(lowered: Lowered, source: int) -> int:
    return lowered.input_shape[0] if source == INPUT else lowered.layers[source].out_shape[0]


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
    for layer in lowered.layers:  # merged sources share the consumer's kernel: one alpha each could not hold
        spans = [(shift, shift + _channels(lowered, src)) for src, _, shift in layer.sources]
        if any(a < d and c < b for i, (a, b) in enumerate(spans) for c, d in spans[i + 1 :]):
            raise ResourceError(
                f"layer '{layer.name}' reads two spike maps added onto the same channels (a merge), whose sources' "
                "thresholds spikes_per_event would raise apart under one kernel; compile without spikes_per_event"
            )
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
        for consumer, _, shift in layer.destinations:  # the channels this layer's spikes land on
            weight = lowered.layers[consumer].weight.copy()
            weight[:, shift : shift + len(alpha)] *= alpha.reshape(1, -1, 1, 1)
            lowered.layers[consumer].weight = weight
        report.append(
            {"layer": layer.name, "alpha_max": float(alpha.max(initial=1.0)), "alpha_mean": float(alpha.mean())}
        )
    return report
