"""Loihi 2 resources: the chip's published limits as data, a placement of populations on cores and chips, the
traffic between chips, and the error that names the layer and the limit when a network does not fit.

Published limits (each number is cited where it is declared). What we could not find published is ``None``
and is not checked: Loihi 2's per-core fan-in and fan-out (Loihi 1's were 4096 input and 4096 output axons
per core, Davies et al., IEEE Micro 38(1), 2018; Intel has not published Loihi 2's).

**Convolution weights are shared per core.** Intel's Loihi 2 brief (2021) lists convolutional connectivity with
shared weights among the synaptic features Loihi 2 adds over Loihi, and Lava's ``Conv`` process keeps one kernel
(C_out, kX, kY, C_in / groups) whatever the input size; Intel publishes no per-core memory formula for it. We
assume: a core holding output channels [c0, c1) of a convolution stores those channels' kernels once (one byte
per weight), however many positions of them it holds; a dense synapse stores one row of n_in weights per neuron,
a ``Sparse`` synapse (an identity or Scale skip, a delayed convolution's taps) the weights listed into the neuron.
A convolutional population is therefore placed as tiles of *channels x positions*: as many channels per core as
their kernels fit in the synaptic memory, then as many positions as fit 8192 neurons (and the memory of any
dense branch into the same population). Other populations fill cores in Lava's flat order, as many neurons as
fit both the neuron count and the memory (fan-in x weight bytes per neuron). Populations never share a core.

**Chips.** Cores are numbered in placement order and fill chips of 128 (``chips``: how many the system has, 8 for
Kapoho Point); a population may straddle two chips. A core's *fan-in* is the number of distinct presynaptic
neurons its neurons read (the input axons it needs), its *fan-out* the number of cores its neurons reach. The
*inter-chip routes* between two chips are the (presynaptic neuron, destination core) pairs that cross them:
each spike of such a neuron is one message over the chip-to-chip link per destination core (Loihi routes a
spike once per core it reaches, the core fans it out to its synapses).
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from neurodeploy.backends.base import LayerUsage, ResourceReport, TargetSpec
from neurodeploy.errors import ResourceError
from neurodeploy.ir.kernels import kernel_taps
from neurodeploy.lowering import largest_layers, machine_advice
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, SparseSynapse

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
    """One core's share of a population: neurons [start, stop) in Lava's flat order, or for a convolutional
    population (``channels`` set) positions [start, stop) (x * Y + y) of output channels [c0, c1)."""

    core: int
    layer: str
    start: int
    stop: int
    synapse_bytes: int
    fan_in: int
    fan_out: int = 0
    channels: tuple[int, int] | None = None
    chip: int = 0

    @property
    def neurons(self) -> int:
        if self.channels is None:
            return self.stop - self.start
        return (self.stop - self.start) * (self.channels[1] - self.channels[0])

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Which neurons of the population (boolean, its Lava shape) this core holds."""
        if self.channels is None:
            flat = np.zeros(int(np.prod(shape)), bool)
            flat[self.start : self.stop] = True
            return flat.reshape(shape)
        x, y, c = shape
        positions = np.zeros(x * y, bool)
        positions[self.start : self.stop] = True
        channels = np.zeros(c, bool)
        channels[self.channels[0] : self.channels[1]] = True
        return positions.reshape(x, y)[:, :, None] & channels[None, None, :]

    def tile(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """The positions (x * Y + y, ascending) at which this core holds a neuron of a population of ``channels``
        channels, and which channels (boolean) it holds at some position: :meth:`mask` projected on each axis."""
        held = np.zeros(channels, bool)
        if self.channels is not None:
            held[self.channels[0] : self.channels[1]] = True
            return np.arange(self.start, self.stop), held
        if self.stop <= self.start:
            return np.zeros(0, np.int64), held
        held[np.arange(self.start, min(self.stop, self.start + channels)) % channels] = True
        return np.arange(self.start // channels, (self.stop - 1) // channels + 1), held


def check_neurons(
    layers: list[tuple[str, int]], chips: int, most: int, relays: list[tuple[str, int]] | None = None
) -> None:
    """Refuse a network whose spiking neurons (``layers``: name and size of each, before any lowering, then again
    with the ``relays`` lowering added, :func:`neurodeploy.lowering._relay`) exceed what ``chips`` chips hold,
    naming the largest layers and the chips it needs (at most ``most`` in a system)."""
    relays = relays or []
    relayed = sum(n for _, n in relays)
    total = sum(n for _, n in layers) + relayed
    if total <= chips * NEURONS_PER_CHIP:
        return
    need = -(-total // NEURONS_PER_CHIP)
    largest = largest_layers(layers)
    advice = machine_advice("chips", need, most, f"Kapoho Point has 8 chips, the largest system {most}")
    extra = ""
    if relays:
        extra = (
            f" and {relayed:,} more in {len(relays)} relay population(s), which repeat a delayed "
            "branch's spikes for a convolution (Loihi 2's convolution synapses take no delay)"
        )
    raise ResourceError(
        f"the network has {total:,} spiking neurons (largest layers {largest}{extra}); {chips} Loihi 2 chip(s) hold at "
        f"most {chips * NEURONS_PER_CHIP:,} ({CORES_PER_CHIP} cores of {NEURONS_PER_CORE:,} neurons each): {advice}"
        + ("; placement then counts the cores their synapses take, which may ask for more" if relays else "")
    )


def fan_in_per_neuron(synapse: DenseSynapse | ConvSynapse | None) -> np.ndarray:
    """Synapses into each neuron (Lava flat order); zero for an input population."""
    if synapse is None:
        return np.zeros(0, np.int64)
    if isinstance(synapse, DenseSynapse):
        n_out, n_in = synapse.weights.shape
        return np.full(n_out, n_in, np.int64)
    if isinstance(synapse, SparseSynapse):  # the synapses listed into each neuron
        return np.bincount(synapse.rows, minlength=synapse.shape[0]).astype(np.int64)
    kx, ky = synapse.kernel
    x_out, y_out, c_out = synapse.output_shape
    x_in, y_in, c_in = synapse.input_shape
    # per output position along each axis, how many kernel taps fall inside the input (not on padding)
    tx = kernel_taps(x_in, x_out, kx, synapse.stride[0], synapse.padding[0], synapse.dilation[0]).sum((1, 2))
    ty = kernel_taps(y_in, y_out, ky, synapse.stride[1], synapse.padding[1], synapse.dilation[1]).sum((1, 2))
    per_position = tx[:, None] * ty[None, :] * (c_in // synapse.groups)
    return np.repeat(per_position.reshape(-1), c_out).astype(np.int64)


def layer_fan_in(layer: Layer) -> np.ndarray:
    """Synapses into each neuron of a layer: its main synapse's plus every residual branch's (Lava flat order)."""
    total = fan_in_per_neuron(layer.synapse)
    for skip in layer.skips:
        total = total + fan_in_per_neuron(skip.synapse)
    return total


def _reads(synapse: ConvSynapse, core: "Core") -> np.ndarray:
    """The input neurons (Lava layout, boolean (X, Y, C)) that the output neurons a core holds read. A core's
    neurons are a tile (positions x channels), so positions and channels separate (:meth:`Core.tile`)."""
    x_in, y_in, c_in = synapse.input_shape
    _, y_out, c_out = synapse.output_shape
    reads = np.zeros((x_in, y_in), bool)
    positions, held = core.tile(c_out)
    xs, ys = np.divmod(positions, y_out)
    kx, ky = synapse.kernel
    for i in range(kx):
        for j in range(ky):
            px = xs * synapse.stride[0] - synapse.padding[0] + i * synapse.dilation[0]
            py = ys * synapse.stride[1] - synapse.padding[1] + j * synapse.dilation[1]
            ok = (px >= 0) & (px < x_in) & (py >= 0) & (py < y_in)
            reads[px[ok], py[ok]] = True
    groups = np.unique(np.nonzero(held)[0] // (c_out // synapse.groups))
    per_group = c_in // synapse.groups
    channels = np.zeros(c_in, bool)
    for g in groups:
        channels[g * per_group : (g + 1) * per_group] = True
    return reads[:, :, None] & channels[None, None, :]


class _Reads:
    """Which presynaptic neurons (boolean, flat, the source population's Lava order) the neurons of one core read
    through one synapse into the population of Lava shape ``out_shape``. A ``Sparse`` synapse's list is ordered by
    its target once, so each core walks only its own synapses (masking the whole list per core took minutes on a
    network of hundreds of cores and millions of listed synapses)."""

    def __init__(self, synapse: DenseSynapse | ConvSynapse | SparseSynapse, out_shape: tuple[int, ...]):
        self.synapse, self.out_shape = synapse, tuple(out_shape)
        if isinstance(synapse, SparseSynapse):
            order = np.argsort(synapse.rows, kind="stable")
            self.cols = synapse.cols[order]
            self.pointers = np.concatenate([[0], np.cumsum(np.bincount(synapse.rows, minlength=synapse.shape[0]))])

    def of(self, core: "Core") -> np.ndarray:
        synapse = self.synapse
        if isinstance(synapse, ConvSynapse):
            return _reads(synapse, core).reshape(-1)
        if not isinstance(synapse, SparseSynapse):
            return np.ones(int(synapse.weights.shape[1]), bool)  # a dense row reads every input
        reads = np.zeros(synapse.shape[1], bool)
        if core.channels is None:  # neurons [start, stop): one run of the ordered list
            reads[self.cols[self.pointers[core.start] : self.pointers[core.stop]]] = True
            return reads
        rows = _flat_neurons(core, self.out_shape)
        first, count = self.pointers[rows], np.diff(self.pointers)[rows]
        at = np.repeat(first - np.concatenate([[0], np.cumsum(count)[:-1]]), count) + np.arange(int(count.sum()))
        reads[self.cols[at]] = True
        return reads


def _flat_neurons(core: "Core", shape: tuple[int, ...]) -> np.ndarray:
    """The flat indices (Lava order, ascending) of the neurons a core holds."""
    if core.channels is None:
        return np.arange(core.start, core.stop)
    c0, c1 = core.channels
    return (np.arange(core.start, core.stop)[:, None] * shape[-1] + np.arange(c0, c1)[None, :]).reshape(-1)


def _per_core(values: np.ndarray, shape: tuple[int, ...], cores: list["Core"]) -> np.ndarray:
    """Per core of one population (Lava ``shape``), the sum of the integers ``values`` (flat, Lava order) over the
    neurons it holds: prefix sums, one lookup per core."""
    if not cores:
        return np.zeros(0, np.int64)
    if cores[0].channels is None:
        total = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
        return np.array([total[c.stop] - total[c.start] for c in cores], np.int64)
    table = np.zeros((int(np.prod(shape[:-1])) + 1, shape[-1] + 1), np.int64)
    table[1:, 1:] = values.reshape(-1, shape[-1]).astype(np.int64).cumsum(axis=0).cumsum(axis=1)
    return np.array(
        [
            table[c.stop, c.channels[1]] - table[c.start, c.channels[1]]
            - table[c.stop, c.channels[0]] + table[c.start, c.channels[0]]
            for c in cores
            if c.channels is not None
        ],
        np.int64,
    )  # fmt: skip


def _tiles(k: int, layer: Layer, name: str) -> list[tuple[int, int, tuple[int, int] | None, int]]:
    """(start, stop, channels, synapse bytes) of each core of population ``k`` (see the module)."""
    inbound = layer.inbound(k)
    convs = [s for _, s, _ in inbound if isinstance(s, ConvSynapse)]
    fan_in = layer_fan_in(layer)
    n = int(np.prod(layer.shape))
    if not convs:
        memory = fan_in * WEIGHT_BYTES if fan_in.size else np.zeros(n, np.int64)
        if memory.max(initial=0) > SYNAPTIC_MEMORY_BYTES:
            raise ResourceError(
                f"layer {name!r}: a neuron with fan-in {int(fan_in.max())} needs {int(memory.max())} bytes of "
                f"synaptic memory, more than the {SYNAPTIC_MEMORY_BYTES} of a Loihi 2 core; split the layer's "
                "inputs (fewer input channels or features)"
            )
        cumulative = np.concatenate([[0], np.cumsum(memory)])
        out, start = [], 0
        while start < n:  # as many neurons as fit both limits
            by_memory = int(np.searchsorted(cumulative, cumulative[start] + SYNAPTIC_MEMORY_BYTES, side="right")) - 1
            stop = min(n, start + NEURONS_PER_CORE, max(by_memory, start + 1))
            out.append((start, stop, None, int(cumulative[stop] - cumulative[start])))
            start = stop
        return out
    x, y, c = layer.shape
    per_channel = sum(int(np.prod(s.kernel)) * s.weights.shape[3] for s in convs) * WEIGHT_BYTES  # kX kY C_in/groups
    # dense rows and sparse lists into the same population (a residual branch, a pooling's border corrections):
    # the weights each neuron stores, (positions, channels) in Lava's flat order
    others = [s for _, s, _ in inbound if not isinstance(s, ConvSynapse)]
    stored = sum((fan_in_per_neuron(s) for s in others), np.zeros(n, np.int64)).reshape(x * y, c) * WEIGHT_BYTES
    per_neuron = int(stored.max(initial=0))
    if per_channel + per_neuron > SYNAPTIC_MEMORY_BYTES:
        raise ResourceError(
            f"layer {name!r}: one output channel's kernel takes {per_channel} bytes (plus {per_neuron} per neuron for "
            f"dense branches), more than the {SYNAPTIC_MEMORY_BYTES} of a Loihi 2 core's synaptic memory; use fewer "
            "input channels or a smaller kernel (or groups)"
        )
    widest = min(c, NEURONS_PER_CORE, SYNAPTIC_MEMORY_BYTES // (per_channel + per_neuron))
    if not per_neuron:
        return _conv_tiles(stored, widest, per_channel)
    # every tile stores its channels' kernels once more: with listed weights too, fewer channels per core may take
    # fewer cores; try each number of channel groups
    widths = sorted({-(-c // groups) for groups in range(1, c + 1)} & set(range(1, widest + 1)))
    return min((_conv_tiles(stored, width, per_channel) for width in widths), key=len)


def _conv_tiles(stored: np.ndarray, width: int, per_channel: int) -> list[tuple[int, int, tuple[int, int], int]]:
    """Tiles of ``width`` channels (the last may be narrower) x as many positions as fit a core's neurons and
    synaptic memory: its channels' kernels (``per_channel`` bytes each) and the listed weights ``stored`` (bytes
    per neuron, (positions, channels)) of its neurons."""
    positions, c = stored.shape
    out = []
    for c0 in range(0, c, width):
        c1 = min(c, c0 + width)
        room = SYNAPTIC_MEMORY_BYTES - (c1 - c0) * per_channel  # for the listed weights of the tile's neurons
        cumulative = np.concatenate([[0], np.cumsum(stored[:, c0:c1].sum(axis=1))])
        p0 = 0
        while p0 < positions:  # as many positions as fit the neurons and the memory (one always fits)
            by_memory = int(np.searchsorted(cumulative, cumulative[p0] + room, side="right")) - 1
            p1 = min(positions, p0 + max(1, NEURONS_PER_CORE // (c1 - c0)), max(by_memory, p0 + 1))
            out.append((p0, p1, (c0, c1), (c1 - c0) * per_channel + int(cumulative[p1] - cumulative[p0])))
            p0 = p1
    return out


def place(network: Network, names: list[str]) -> list[Core]:
    """Cores for every population (see the module), chips of 128 in order; raise ResourceError naming the layer
    and the limit."""
    cores: list[Core] = []
    for k, layer in enumerate(network.layers):
        readers = [_Reads(synapse, layer.shape) for _, synapse, _ in layer.inbound(k)]
        for start, stop, channels, used in _tiles(k, layer, names[k]):
            index = len(cores)
            core = Core(index, names[k], start, stop, used, 0, 0, channels, index // CORES_PER_CHIP)
            reads = sum(int(np.count_nonzero(reader.of(core))) for reader in readers)
            cores.append(replace(core, fan_in=reads))
    return _with_fan_out(network, names, cores)


def _links(network: Network, names: list[str], cores: list[Core]) -> Iterator[tuple[int, Core, Core, int, np.ndarray]]:
    """(source population, source core, destination core, how many of the source core's neurons the destination
    core reads, which neurons of the source population it reads: flat, Lava order) for every pair of cores a
    synapse joins where that count is not 0 (not the first layer's synapse, when it reads the network's input
    rather than an input population)."""
    by_layer: dict[str, list[Core]] = {name: [] for name in names}
    for c in cores:
        by_layer[c.layer].append(c)
    for j, layer in enumerate(network.layers):
        for source, synapse, _ in layer.inbound(j):
            if source < 0:
                continue
            reader, below, sources = _Reads(synapse, layer.shape), network.layers[source].shape, by_layer[names[source]]
            for dst in by_layer[names[j]]:
                reads = reader.of(dst)
                for src, count in zip(sources, _per_core(reads, below, sources)):
                    if count:
                        yield source, src, dst, int(count), reads


def _with_fan_out(network: Network, names: list[str], cores: list[Core]) -> list[Core]:
    reach = {c.core: 0 for c in cores}
    for _, src, _, _, _ in _links(network, names, cores):
        reach[src.core] += 1
    return [replace(c, fan_out=reach[c.core]) for c in cores]


def interchip_routes(
    network: Network, names: list[str], cores: list[Core], rates: list[np.ndarray] | None = None
) -> list[dict[str, Any]]:
    """Per ordered pair of chips with traffic: the (presynaptic neuron, destination core) routes between them and,
    where ``rates`` (per population, spikes per neuron per sample, its Lava shape) are given, the spike messages
    per sample they carry."""
    routes: dict[tuple[int, int], list[float]] = {}
    for source, src, dst, count, reads in _links(network, names, cores):
        if src.chip == dst.chip:
            continue
        entry = routes.setdefault((src.chip, dst.chip), [0, 0.0])
        entry[0] += count
        if rates is not None:
            held = _flat_neurons(src, network.layers[source].shape)
            entry[1] += float(np.asarray(rates[source], np.float64).reshape(-1)[held][reads[held]].sum())
    out = []
    for (a, b), (count, messages) in sorted(routes.items()):
        item: dict[str, Any] = {"from_chip": a, "to_chip": b, "routes": int(count)}
        if rates is not None:
            item["messages_per_sample"] = round(messages, 3)
        out.append(item)
    return out


def resource_report(
    target: str, network: Network, names: list[str], op_types: list[str], chips: int = 1
) -> tuple[ResourceReport, list[Core]]:
    """Per-layer usage and the placement on ``chips`` chips; raise ResourceError when the network does not fit."""
    cores = place(network, names)
    layers = []
    for k, layer in enumerate(network.layers):
        fan_in = layer_fan_in(layer)
        mine = [c for c in cores if c.layer == names[k]]
        layers.append(
            LayerUsage(
                name=names[k],
                op_type=op_types[k],
                neurons=int(np.prod(layer.shape)),
                synapses=int(fan_in.sum()),
                fan_in=int(fan_in.max(initial=0)),
                fan_out=max((c.fan_out for c in mine), default=0),
                core=mine[0].core,
            )
        )
    per_layer = {u.name: sum(1 for c in cores if c.layer == u.name) for u in layers}
    capacity = CORES_PER_CHIP * chips
    if len(cores) > capacity:
        worst = max(per_layer, key=lambda name: per_layer[name])
        needed = -(-len(cores) // CORES_PER_CHIP)
        raise ResourceError(
            f"the network needs {len(cores)} Loihi 2 cores, more than the {capacity} of {chips} chip(s) "
            f"({CORES_PER_CHIP} each); layer {worst!r} alone needs {per_layer[worst]} (limits per core: "
            f"{NEURONS_PER_CORE} neurons, {SYNAPTIC_MEMORY_BYTES} bytes of synaptic memory). Compile with "
            f"--target-option chips={needed} (Kapoho Point has 8), or shrink that layer"
        )
    used_chips = max(c.chip for c in cores) + 1
    for chip in range(used_chips):
        on_chip = [c for c in cores if c.chip == chip]
        neurons = sum(c.neurons for c in on_chip)
        stored = sum(c.synapse_bytes for c in on_chip) // WEIGHT_BYTES
        for what, value, limit in (("neurons", neurons, NEURONS_PER_CHIP), ("synapses", stored, SYNAPSES_PER_CHIP)):
            if value > limit:
                worst = max(on_chip, key=lambda c: c.neurons if what == "neurons" else c.synapse_bytes)
                raise ResourceError(
                    f"chip {chip} holds {value} {what}, more than the {limit} of one Loihi 2 chip (layer "
                    f"{worst.layer!r} is on it); compile with more chips (--target-option chips=N)"
                )
    stored = sum(c.synapse_bytes for c in cores) // WEIGHT_BYTES
    notes = [
        f"placement: {len(cores)} cores on {used_chips} of {chips} chip(s) ({CORES_PER_CHIP} cores each); "
        + ", ".join(f"{name}: {count}" for name, count in per_layer.items()),
        f"synaptic memory: {stored} weights stored (a convolution's kernel once per core that holds its output "
        f"channels, a dense row per neuron; 1 byte each) for {sum(u.synapses for u in layers)} connections",
        "Loihi 2's per-core fan-in and fan-out limits are not published; they are reported, not checked",
    ]
    return ResourceReport(target, layers, cores_used=len(cores), notes=notes), cores


def cores_to_dicts(cores: list[Core]) -> list[dict]:
    return [
        asdict(c) | {"neurons": c.neurons, "channels": None if c.channels is None else list(c.channels)} for c in cores
    ]
