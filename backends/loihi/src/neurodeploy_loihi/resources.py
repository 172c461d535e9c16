"""Loihi 2 resources: the chip's published limits as data, a placement of populations on cores, and the
error that names the layer and the limit when a network does not fit.

Published limits (each number is cited where it is declared). What we could not find published is ``None``
and is not checked: Loihi 2's per-core fan-in and fan-out (Loihi 1's were 4096 input and 4096 output axons
per core, Davies et al., IEEE Micro 38(1), 2018; Intel has not published Loihi 2's), and how much of a core's
memory a convolution's shared weights take (Loihi 2 can share them; we count every synapse once per neuron,
as a dense layer stores them, which over-counts convolutions and so errs on the safe side).

The placement is greedy and per layer: a layer's neurons, in Lava's flat order, fill one core after another,
each core taking as many as fit both its neuron count and its synaptic memory (fan-in x weight bytes per
neuron); layers never share a core. A layer's *fan-in per core* is the number of distinct presynaptic neurons
its core reads (the input axons it needs); its *fan-out per core* the number of cores of the next layer its
neurons reach.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

from dataclasses import asdict, dataclass

import numpy as np

from neurodeploy.backends.base import LayerUsage, ResourceReport, TargetSpec
from neurodeploy.errors import ResourceError
from neurodeploy.ir.kernels import kernel_taps
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network

CORES_PER_CHIP = 128
"""Neuromorphic cores per Loihi 2 chip (Intel, "Taking Neuromorphic Computing to the Next Level with Loihi 2",
technology brief, 2021)."""
NEURONS_PER_CORE = 8192
"""Neurons per core, the most Loihi 2 supports (Intel's Loihi 2 technology brief, 2021: up to 8,192 neurons per
core, 1,024 on Loihi; WikiChip, "Loihi 2": 128 cores x 8,192 = 1,048,576 neurons)."""
NEURONS_PER_CHIP = 1 << 20
"""Up to 1 million neurons per chip (Intel's Loihi 2 technology brief; 1,048,576 = 128 x 8,192)."""
SYNAPSES_PER_CHIP = 120_000_000
"""Up to 120 million synapses per chip (Intel's Loihi 2 technology brief, 2021)."""
SYNAPTIC_MEMORY_BYTES = 128 * 1024
"""Synaptic memory per core: 128 KiB. Loihi 1's cores had 128 KB of synaptic memory (Davies et al., 2018);
for Loihi 2, Intel describes each core's local SRAM as flexibly partitioned between synapses, neuron state and
routing, without a fixed synaptic share; reports of the 2021 announcement give 128 KB per core. We use 128 KiB
for the synapses alone, so a network that fits here may still need its neuron state placed elsewhere."""
WEIGHT_BYTES = 1
"""One byte per synapse: 8-bit weights, stored densely (no compression, no shared convolution weights)."""

SPEC = TargetSpec(
    name="loihi2",
    description=(
        "Intel Loihi 2, as Lava 0.10.0's bit-accurate (fixed_pt) process models compute it: 8-bit weights, "
        "24-bit u and v, 17-bit threshold mantissa; 128 cores of up to 8192 neurons and 128 KiB of synapses"
    ),
    weight_bits=8,
    state_bits=24,
    threshold_bits=17,
    cores=CORES_PER_CHIP,
    neurons_per_core=NEURONS_PER_CORE,
    synapses_per_core=SYNAPTIC_MEMORY_BYTES // WEIGHT_BYTES,
    fan_in=None,
    fan_out=None,
    ops=frozenset({"Conv2d", "Dense", "AvgPool2d", "GlobalAvgPool", "Reshape", "Scale", "Bias", "IF"}),
)


@dataclass(frozen=True)
class Core:
    """One core's share of a layer: neurons [start, stop) of the layer in Lava's flat order."""

    core: int
    layer: str
    start: int
    stop: int
    synapse_bytes: int
    fan_in: int
    fan_out: int = 0

    @property
    def neurons(self) -> int:
        return self.stop - self.start


def fan_in_per_neuron(synapse: DenseSynapse | ConvSynapse | None) -> np.ndarray:
    """Synapses into each neuron (Lava flat order); zero for an input population."""
    if synapse is None:
        return np.zeros(0, np.int64)
    if isinstance(synapse, DenseSynapse):
        n_out, n_in = synapse.weights.shape
        return np.full(n_out, n_in, np.int64)
    w = synapse.lava_weights
    x_out, y_out, c_out = synapse.output_shape
    x_in, y_in, c_in = synapse.input_shape
    # per output position along each axis, how many kernel taps fall inside the input (not on padding)
    tx = kernel_taps(x_in, x_out, w.shape[1], synapse.stride[0], synapse.padding[0], synapse.dilation[0]).sum((1, 2))
    ty = kernel_taps(y_in, y_out, w.shape[2], synapse.stride[1], synapse.padding[1], synapse.dilation[1]).sum((1, 2))
    per_position = tx[:, None] * ty[None, :] * (c_in // synapse.groups)
    return np.repeat(per_position.reshape(-1), c_out).astype(np.int64)


def layer_fan_in(layer: Layer) -> np.ndarray:
    """Synapses into each neuron of a layer: its main synapse's plus every residual branch's (Lava flat order)."""
    total = fan_in_per_neuron(layer.synapse)
    for skip in layer.skips:
        total = total + fan_in_per_neuron(skip.synapse)
    return total


def _reads(synapse: ConvSynapse, start: int, stop: int) -> np.ndarray:
    """The input neurons (Lava layout, boolean (X, Y, C)) that output neurons [start, stop) read."""
    x_out, y_out, c_out = synapse.output_shape
    x_in, y_in, c_in = synapse.input_shape
    w = synapse.lava_weights
    index = np.arange(start, stop)
    positions = np.zeros((x_out, y_out), bool)
    positions[(index // c_out) // y_out, (index // c_out) % y_out] = True
    reads = np.zeros((x_in, y_in), bool)
    xs, ys = np.nonzero(positions)
    for i in range(w.shape[1]):
        for j in range(w.shape[2]):
            px = xs * synapse.stride[0] - synapse.padding[0] + i * synapse.dilation[0]
            py = ys * synapse.stride[1] - synapse.padding[1] + j * synapse.dilation[1]
            ok = (px >= 0) & (px < x_in) & (py >= 0) & (py < y_in)
            reads[px[ok], py[ok]] = True
    groups = np.unique((index % c_out) // (c_out // synapse.groups))
    per_group = c_in // synapse.groups
    channels = np.zeros(c_in, bool)
    for g in groups:
        channels[g * per_group : (g + 1) * per_group] = True
    return reads[:, :, None] & channels[None, None, :]


def place(network: Network, names: list[str]) -> list[Core]:
    """Cores for every layer (see the module); raise ResourceError naming the layer and the limit."""
    cores: list[Core] = []
    for k, layer in enumerate(network.layers):
        n = int(np.prod(layer.shape))
        fan_in = layer_fan_in(layer)
        if fan_in.size == 0:
            fan_in = np.zeros(n, np.int64)
        memory = fan_in * WEIGHT_BYTES
        if memory.max(initial=0) > SYNAPTIC_MEMORY_BYTES:
            raise ResourceError(
                f"layer {names[k]!r}: a neuron with fan-in {int(fan_in.max())} needs {int(memory.max())} bytes of "
                f"synaptic memory, more than the {SYNAPTIC_MEMORY_BYTES} of a Loihi 2 core; split the layer's "
                "inputs (fewer input channels or features)"
            )
        cumulative = np.concatenate([[0], np.cumsum(memory)])
        start = 0
        while start < n:
            # as many neurons as fit both limits
            by_memory = int(np.searchsorted(cumulative, cumulative[start] + SYNAPTIC_MEMORY_BYTES, side="right")) - 1
            stop = min(n, start + NEURONS_PER_CORE, max(by_memory, start + 1))
            reads = 0
            for _, synapse, _ in layer.inbound(k):
                if isinstance(synapse, ConvSynapse):
                    reads += int(np.count_nonzero(_reads(synapse, start, stop)))
                else:
                    reads += int(synapse.weights.shape[1])
            used = int(cumulative[stop] - cumulative[start])
            cores.append(Core(len(cores), names[k], start, stop, used, reads))
            start = stop
    return _with_fan_out(network, names, cores)


def _with_fan_out(network: Network, names: list[str], cores: list[Core]) -> list[Core]:
    by_layer = {name: [c for c in cores if c.layer == name] for name in names}
    out = []
    readers = [(j, source, s) for j, layer in enumerate(network.layers) for source, s, _ in layer.inbound(j)]
    for k, name in enumerate(names):
        consumers = [(j, s) for j, source, s in readers if source == k]
        for core in by_layer[name]:
            reach = 0
            for j, synapse in consumers:
                if isinstance(synapse, ConvSynapse):
                    mine = np.zeros(int(np.prod(network.layers[k].shape)), bool)
                    mine[core.start : core.stop] = True
                    mine = mine.reshape(network.layers[k].shape)
                    reach += sum(bool((_reads(synapse, c.start, c.stop) & mine).any()) for c in by_layer[names[j]])
                else:
                    reach += len(by_layer[names[j]])
            out.append(Core(core.core, core.layer, core.start, core.stop, core.synapse_bytes, core.fan_in, reach))
    return out


def resource_report(
    target: str, network: Network, names: list[str], op_types: list[str]
) -> tuple[ResourceReport, list[Core]]:
    """Per-layer usage and the placement; raise ResourceError when the network does not fit one chip."""
    cores = place(network, names)
    layers = []
    for k, layer in enumerate(network.layers):
        fan_in = layer_fan_in(layer)
        mine = [c for c in cores if c.layer == names[k]]
        n = int(np.prod(layer.shape))
        layers.append(
            LayerUsage(
                name=names[k],
                op_type=op_types[k],
                neurons=n,
                synapses=int(fan_in.sum()),
                fan_in=int(fan_in.max(initial=0)),
                fan_out=max((c.fan_out for c in mine), default=0),
                core=mine[0].core,
            )
        )
    neurons = sum(u.neurons for u in layers)
    synapses = sum(u.synapses for u in layers)
    per_layer = {u.name: sum(1 for c in cores if c.layer == u.name) for u in layers}
    if len(cores) > CORES_PER_CHIP:
        worst = max(per_layer, key=per_layer.get)
        raise ResourceError(
            f"the network needs {len(cores)} Loihi 2 cores, more than the {CORES_PER_CHIP} of one chip; layer "
            f"{worst!r} alone needs {per_layer[worst]} (limits per core: {NEURONS_PER_CORE} neurons, "
            f"{SYNAPTIC_MEMORY_BYTES} bytes of synaptic memory). Shrink that layer or run on several chips"
        )
    if neurons > NEURONS_PER_CHIP:
        worst = max(layers, key=lambda u: u.neurons)
        raise ResourceError(
            f"the network has {neurons} neurons, more than the {NEURONS_PER_CHIP} of one Loihi 2 chip (layer "
            f"{worst.name!r} has {worst.neurons})"
        )
    if synapses > SYNAPSES_PER_CHIP:
        worst = max(layers, key=lambda u: u.synapses)
        raise ResourceError(
            f"the network has {synapses} synapses, more than the {SYNAPSES_PER_CHIP} of one Loihi 2 chip (layer "
            f"{worst.name!r} has {worst.synapses})"
        )
    notes = [
        f"placement: {len(cores)} of {CORES_PER_CHIP} cores; "
        + ", ".join(f"{name}: {count}" for name, count in per_layer.items()),
        "synaptic memory counts 1 byte per synapse and per neuron (no shared convolution weights, no compression)",
        "Loihi 2's per-core fan-in and fan-out limits are not published; they are reported, not checked",
    ]
    return ResourceReport(target, layers, cores_used=len(cores), notes=notes), cores


def cores_to_dicts(cores: list[Core]) -> list[dict]:
    return [asdict(c) | {"neurons": c.neurons} for c in cores]
