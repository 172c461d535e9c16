"""From a converted (spiking) graph to populations of neurons and the synapses between them, still in float.

The target-neutral lowering every chip with populations and projections needs (Loihi 2's processes, PyNN's
populations and projections, a NIR export); a target passes its :class:`Rules` (its name for messages, its
limits). A converted graph is a chain: the input, linear ops, IF neurons, linear ops, IF neurons, ..., linear ops,
the output. Each IF op becomes a population of neurons, and the linear ops between two populations become the
one synapse (a ``Dense`` or ``Conv`` connection) that joins them:

* **Input**: the ops from the (direct, analog) input to the first IF neurons run on the host, in float32, and
  their result is the first population's *bias current*, one value per neuron and sample. The first population
  has no synapse, so it adds no delay. Exact: the first layer's float computation is what the reference target
  does too. With ``spike_input`` (event frames sent to the chip as spikes, where a target takes them) the host
  graph passes the input on unchanged, and the first population reads it through its own synapse (depth 1).
* **Conv**: an AvgPool2d (kernel == stride, no padding, input divisible by the kernel) followed by a Conv2d is
  one ``Conv`` synapse whose kernel is the convolution's, each weight repeated over a pool block and divided by
  the block's size, with stride and padding multiplied by the pool (:class:`ConvSpec`). Exact: the pooled map
  is linear in the spikes. Padding must be symmetric. Any other pooling before a convolution (overlapping or
  padded windows, a map the windows do not tile) is exact too: where the target's convolutions share their
  kernel (``Rules.shared_kernels``), the composed convolution (every window full) plus a list of the corrections
  where the real windows differ, along the borders, as a second synapse from the same population (:class:`_Patched`);
  otherwise, or where no symmetric convolution has the output's shape, every composed synapse listed.
* **Channel mixes**: ops that mix the channels of each position alone (1x1 convolutions, the depthwise 1x1 a
  BatchNorm becomes, a Concat's embedding of one input, Scale/Bias per channel) are multiplied into one, moved
  before an average pool and folded into the convolution next to them (:func:`_simplified`), so a DenseNet
  transition (Conv 1x1, AvgPool) read by the next block's BatchNorm is AvgPool, Conv: one ``Conv`` synapse.
* **Dense**: a Dense read through a flatten, after at most an AvgPool over blocks (VGG's pool5, flatten, fc6), is
  the Dense's weights (each column repeated over its block), built directly (:func:`_direct_dense`): its cost is
  its synapses. Any other chain of linear ops ending in a Dense (AvgPool, GlobalAvgPool, Reshape/flatten, Scale)
  is composed into one weight matrix by applying the ops to the identity (:class:`DenseSpec`), up to
  ``Rules.max_dense_entries``; the flatten order is the graph's (C, H, W) (a target lays it out in its own
  order, e.g. Lava's (X, Y, C)).
* **Delayed convolutions**: a branch that arrives before the others at its population (a residual shortcut, a
  Concat's shallower input) is delayed to meet them. Where the target's convolutions take no delay
  (``Rules.delayed_conv`` false: Lava's Conv), a delayed convolution is its taps listed with the delay, or, where
  that list would pass ``Rules.max_dense_entries`` (ResNet-50's projection shortcuts, DenseNet's late Concat
  inputs), it reads a relay population (:func:`_relay`) that repeats its source's spikes late, one neuron and one
  synapse per source neuron, and stays one shared-kernel Conv. Exact: each relay neuron fires once per spike it
  gets, one step after the delay its synapse adds.
* **Delay** (a network's own delay, NIR's Delay): a Delay op on the ops between two populations commutes with
  them; its steps are added to that synapse's ``delay`` (and recorded as its ``lag``), while depths, which align
  the pipeline, do not count them, so the population receives that input later in the graph's time too. A target
  whose synapses take no delays (``Rules.delays``) refuses it, and so does every target before the first
  population (it starts at step 1) and before a spike readout.
* **Readout**: the linear ops after the last IF neurons that end in a Dense/Conv become a non-spiking readout
  population (``readout=membrane``), and so do average pools then a flatten or Scale (SqueezeNet's end: Conv,
  ReLU, GlobalAveragePool), whose synapses are listed (:func:`_pooling_list`: each neuron into its pooled cell);
  an output that is the last IF neurons' spikes times a constant (``Scale``, ``readout=spikes``) is read from
  their spike counts.

IF thresholds (scalar or per channel) are folded into the synapse that feeds the neurons (row o divided by
θ_o), so every population has threshold 1 in float units.

Leaky neurons of a spiking import (LIF ops) map where the target's neurons leak (``Rules.leaky``: Loihi 2): one
population each, with v's ``decay`` and the synaptic current's ``syn_decay`` per step; the op's input gain is
folded into the synapse with the threshold (θ / (gain·syn_gain)) and its constant drive into the bias. Each
needs one decay and gain per layer and thresholds per channel, no v_reset, at most one spike a step
(:func:`leaky_problem`); the first population, driven by the host's current, and one after a layer with a bias
take no synaptic stage (a chip's bias adds to v).

* **Residual Add**: an Add directly before IF neurons sums several *branches*, each a chain of linear ops from
  an earlier population (an identity or ``Scale`` skip becomes one-to-one synapses, :class:`SparseSpec`); every
  branch is one more
  synapse into the population, whose neurons sum them. Population k's *depth* is its longest path of synapses
  from the input population; a branch from population j gets ``delay`` = depth(k) - depth(j) - 1 extra steps,
  so all branches arrive together and population k computes the graph's step t at step t + depth(k). A delayed
  convolution branch is a :class:`SparseSpec` of its taps unless the target's convolutions take delays
  (``Rules.delayed_conv``; Lava's Conv does not); another delayed branch a Dense.
* **Concat**: a Concat along the channel axis of spike maps, read by the Conv2d or Dense of a synapse, splits
  that synapse into one per concatenated input: conv(concat(a, b)) = conv_a(a) + conv_b(b), where conv_a has
  the kernel's input channels of a (``weight[:, c0:c1]``), and a Dense after a flatten takes the columns of a's
  channels (composed through :class:`_Embed`, which places a's map in its channels of a zero map, so the columns
  are in a's own C order and are laid out as any Dense's). The synapses are joined as a residual Add's branches
  (delays, one scale per population); an Add before the neurons may sum such a Concat's synapses with other
  branches. The bias is the synapse's once: the neurons' input when no population spikes (:func:`_at_rest`). A
  Concat read by the readout's Conv2d or Dense (an Inception block's end) gives the readout population a synapse
  per input the same way (:func:`_joined_readout`). A Concat read by the neurons through elementwise ops only (a
  BatchNorm's Scale and Bias after a DenseNet block's Concat) reaches them one to one, each input into its own
  channels (:func:`_one_to_one`). A Concat read by anything else (the output, a pooling only),
  on another axis, or before the first neurons, an Add anywhere else are refused with an error naming the op.
* **Parallel branches** (Inception-style): a population that does not read the one before it (several
  populations reading one) takes its main synapse from its deepest source (``Population.source``).
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes the Loihi plugin's modules
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations of what they import.

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from neurodeploy.errors import ConversionError, ResourceError
from neurodeploy.ir.graph import Graph, GraphIndex
from neurodeploy.ir.kernels import kernel_taps
from neurodeploy.ir.neurons import IF, LIF, channel_threshold, leaky_refusal
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import (
    Add,
    AvgPool2d,
    Bias,
    Concat,
    Conv2d,
    Delay,
    Dense,
    GlobalAvgPool,
    MaxPool2d,
    Reshape,
    Scale,
)

LINEAR = (AvgPool2d, GlobalAvgPool, Reshape, Conv2d, Dense, Scale, Bias, Delay)
"""Ops a synapse may be made of (a Delay: its steps are the synapse's delay, :func:`_delayed`)."""
MAX_DENSE_ENTRIES = 1 << 26
"""The largest weight matrix a chain of linear ops is composed into by default (64 Mi entries)."""


@dataclass(frozen=True)
class Rules:
    """What a target's synapses can be: ``target`` names it in messages ("the loihi target ..."), ``chip`` in
    "has no <chip> equivalent"; ``delayed_conv``: whether a convolution synapse can carry a delay (otherwise a
    delayed branch is composed into a Dense); ``max_dense_entries``: the largest Dense composed."""

    target: str
    chip: str
    delayed_conv: bool = False
    max_dense_entries: int = MAX_DENSE_ENTRIES
    leaky: bool = False
    """Whether the target's neurons leak and have a synaptic current: leaky neurons of a spiking import (LIF ops
    with one decay per layer) map (:func:`leaky_problem`)."""
    delays: bool = True
    """Whether a synapse can carry a delay the network asks for (a Delay op between two neuron layers); a target
    whose projections all arrive in the same step refuses them."""
    shared_kernels: bool = False
    """Whether the target's convolution synapses store their kernel once (weight sharing): a pooling that is no
    convolution's block before a convolution is then the composed convolution plus a list of its corrections along
    the borders (:class:`_Patched`), not one list of every synapse."""
    max_neurons: int | None = None
    """The most neurons the target builds, where known (the loihi target: its largest system's, so that a runaway
    stops early; it names the chips a network needs after lowering): the relay populations a delayed convolution
    may read (:func:`_relay`) are refused once they and the graph's neurons pass it, before they are all built."""
    core: tuple[int, int] | None = None
    """A core's neurons and listed synapses, where known: a delayed convolution whose taps listed would take more
    cores than a relay population of its source's size reads a relay (:func:`_relay`); otherwise only taps past
    ``max_dense_entries`` do."""


@dataclass
class ConvSpec:
    """A convolution synapse in the graph's orientation: ``weight`` (O, C / groups, kH, kW) is the *base* kernel
    (cross-correlation, as ONNX), already divided by the pool area; the synapse applies it to every
    ``pool`` block of input neurons. ``stride``/``padding`` (H, W) are the synapse's: the graph's conv
    stride and (symmetric) padding times the pool."""

    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, ...]
    groups: int
    pool: tuple[int, ...]
    input_shape: tuple[int, ...]


@dataclass
class DenseSpec:
    """All-to-all synapses: ``weight`` (n_out, n_in), inputs and outputs in the graph's C order of their
    populations' shapes."""

    weight: np.ndarray
    input_shape: tuple[int, ...]


@dataclass
class SparseSpec:
    """Synapses listed one by one: ``weight[i]`` joins input neuron ``cols[i]`` to output neuron ``rows[i]`` (flat
    indices in the graph's C order of the two populations' shapes). What an identity or ``Scale`` residual skip is
    (one-to-one: a weight per neuron, not an n x n Dense), and a delayed convolution where the target's convolutions
    take no delay (its taps, not the composed matrix)."""

    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    input_shape: tuple[int, ...]
    shape: tuple[int, ...]


@dataclass
class Skip:
    """A further synapse into a population (a residual branch, or one input of a Concat): from population
    ``source`` (an index into the populations), delayed by ``delay`` steps beyond the one every synapse takes;
    ``ops`` the branch's op names."""

    source: int
    synapse: ConvSpec | DenseSpec | SparseSpec
    delay: int = 0
    ops: list[str] = field(default_factory=list)
    lag: int = 0
    """Of ``delay``, the steps the network itself asks for (its Delay ops); the rest aligns the branches."""


@dataclass
class Population:
    """One population of neurons in float units (threshold 1). ``bias`` is the constant current per neuron
    (the graph's shape); ``role`` is ``input`` (driven by the host-computed current, no synapse), ``hidden``
    (IF neurons) or ``readout`` (non-spiking, read from v). ``synapse`` reads the population before it (or
    population ``source`` where set: a parallel branch that reads an earlier one), ``delay`` steps late;
    ``skips`` are the further branches of a residual Add or a Concat (``adds``: the names of the Adds and Concats
    that join them); ``depth`` is the longest path of synapses from the input population."""

    name: str
    role: str
    shape: tuple[int, ...]
    synapse: ConvSpec | DenseSpec | SparseSpec | None
    bias: np.ndarray
    ops: list[str]
    reset: str = "subtract"
    initial: float = 0.5
    value: str = ""
    meta: dict = field(default_factory=dict)
    delay: int = 0
    skips: list[Skip] = field(default_factory=list)
    adds: list[str] = field(default_factory=list)
    depth: int = 0
    source: int | None = None
    decay: float = 1.0
    """v's factor per step (1: no leak); a leaky neuron of a spiking import."""
    lag: int = 0
    """Of the main synapse's ``delay``, the steps the network itself asks for (its Delay ops): they delay the input
    in the graph's time too, while the rest of ``delay`` (and ``depth``) only aligns the pipeline."""
    syn_decay: float | None = None
    """The synaptic current's factor per step, where the neurons have one (their input adds to it, it adds to v)."""
    strict: bool = False
    """The neurons fire on v > threshold (NIR's), not v >= threshold (a converted network's)."""

    @property
    def leaky(self) -> bool:
        return self.decay != 1.0 or self.syn_decay is not None


@dataclass
class Readout:
    """How the model output is read: ``membrane`` (the readout population's v, the integral of its input) or
    ``spikes`` (the last population's spike counts times ``scale``, in the output's shape)."""

    kind: str
    population: int
    output: str
    shape: tuple[int, ...]
    scale: np.ndarray | None = None


class Incoming(NamedTuple):
    """One synapse into a population (:meth:`Lowered.incoming`)."""

    source: int
    synapse: ConvSpec | DenseSpec | SparseSpec
    delay: int
    name: str


@dataclass
class Lowered:
    """The host graph (input -> the first population's current), the populations in chain order, the readout."""

    host: Graph
    populations: list[Population]
    readout: Readout

    @property
    def delay(self) -> int:
        """Steps from a change of the input to the readout: the synapses on the longest path (the input population
        has none)."""
        return self.populations[-1].depth

    def incoming(self, k: int) -> list[Incoming]:
        """Every synapse into population k: its main synapse (from the population before it, or from ``source``)
        first, then its skips, each with its source population, its extra delay and a name (the last op of the
        population's chain, or ``<population>/skip<i>``)."""
        pop = self.populations[k]
        out = []
        if pop.synapse is not None:
            source = k - 1 if pop.source is None else pop.source
            out.append(Incoming(source, pop.synapse, pop.delay, pop.ops[-1] if pop.ops else pop.name))
        for i, skip in enumerate(pop.skips):
            out.append(Incoming(skip.source, skip.synapse, skip.delay, f"{pop.name}/skip{i}"))
        return out


def spiking_layers(graph: Graph) -> list[tuple[str, int]]:
    """(name, neurons) of every op that emits spikes, in graph order: what a chip must hold at least, before any
    lowering (a target checks its neuron budget with it first, so a network far too large is refused at once,
    naming the limit)."""
    types = graph.types()
    return [
        (op.name, int(np.prod(types[op.output].shape)))
        for op in graph.ops
        if isinstance(op, (IF, LIF)) and op.emits_spikes
    ]


def machine_advice(option: str, need: int, most: int, largest: str) -> str:
    """What to do when a network needs ``need`` units of a machine (chips, boards) that the target option ``option``
    sets: ask for them, or, past the largest system (``most``, described by ``largest``), shrink the network."""
    if need <= most:
        return f"compile with --target-option {option}={need} or more ({largest})"
    return f"no system holds it ({largest}): use a smaller input or fewer channels"


def largest_layers(layers: list[tuple[str, int]], count: int = 3) -> str:
    """The ``count`` largest of (name, neurons), for a message."""
    return ", ".join(f"{name!r}: {n:,}" for name, n in sorted(layers, key=lambda layer: -layer[1])[:count])


def _where(op: Op) -> str:
    return f"{op.op_type} '{op.name}'"


def _segment(wiring: GraphIndex, value: str, stops: set[str], rules: Rules) -> tuple[str, list[Op]]:
    """The chain of ops that computes ``value`` from the nearest stop (a graph input or an IF output)."""
    ops: list[Op] = []
    while value not in stops:
        op = _check_linear(wiring.producer(value), rules)
        ops.append(op)
        value = op.inputs[0]
    return value, ops[::-1]


def _check_linear(op: Op | None, rules: Rules) -> Op:
    """``op``, or an error when it cannot be part of a chain of linear ops, naming it and what maps."""
    if op is None:  # pragma: no cover - graph inputs are stops
        raise ConversionError("a value has no producer")
    if isinstance(op, Concat):
        raise ConversionError(
            f"{_where(op)} joins {len(op.inputs)} branches; the {rules.target} target maps a Concat of neuron "
            "layers read by a Conv2d or Dense before IF neurons or the readout only (not before the input neurons: "
            "the host computes their input from the graph's input alone)"
        )
    if len(op.inputs) != 1:
        raise ConversionError(
            f"{_where(op)} joins {len(op.inputs)} branches; the {rules.target} target maps a residual Add "
            "directly before IF neurons only (an Add before the input neurons, the output or further linear ops is "
            "not supported)"
        )
    if not isinstance(op, LINEAR):
        instead = (
            ": a max of spike trains is not the max of their rates; train with AvgPool2d, or convert with "
            "--conversion maxpool=avg (an approximation that warns)"
            if isinstance(op, MaxPool2d)
            else ""
        )
        raise ConversionError(
            f"{_where(op)} has no {rules.chip} equivalent (supported: Conv, Dense, AvgPool, flatten){instead}"
        )
    return op


@dataclass
class _Embed:
    """One input of Concat ``name`` seen alone: its map placed in channels ``offset`` .. of a zero map of the
    Concat's ``shape`` (an op's ``forward``, so a branch through the Concat composes as any chain of linear ops)."""

    name: str
    offset: int
    shape: tuple[int, ...]
    op_type: str = "Concat"

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        (x,) = xs
        out = np.zeros((len(x), *self.shape), np.float32)
        out[:, self.offset : self.offset + x.shape[1]] = x
        return out


def _chains(
    wiring: GraphIndex, value: str, stops: set[str], types: dict, after: list, rules: Rules
) -> tuple[list[tuple[str, list]], list[str]]:
    """The chains of linear ops that compute ``value`` (then ``after``) from the nearest stops: one, or one per
    input of a Concat on the way (each through its :class:`_Embed`), and the Concats' names."""
    ops: list = []
    while value not in stops:
        op = wiring.producer(value)
        if isinstance(op, Concat):
            tail = ops[::-1] + after
            if op.axis != 0:
                raise ConversionError(
                    f"{_where(op)} concatenates along axis {op.axis}; the {rules.target} target maps a Concat along "
                    "the channel axis (0) only"
                )
            if not any(isinstance(o, (Conv2d, Dense)) for o in tail) and not _elementwise(tail):
                raise ConversionError(
                    f"{_where(op)} is read by {', '.join(_where(o) for o in tail)} without a Conv2d or Dense; the "
                    f"{rules.target} target maps a Concat of neuron layers read by a Conv2d or Dense (its weights "
                    "split by input) or by neurons, directly or through elementwise Scale/Bias, not a Concat feeding "
                    "pooling, an Add or another op directly"
                )
            branches: list[tuple[str, list]] = []
            joins, offset = [op.name], 0
            for name in op.inputs:
                embed = _Embed(op.name, offset, tuple(types[op.output].shape))
                more, names = _chains(wiring, name, stops, types, [embed, *tail], rules)
                branches += more
                joins += names
                offset += types[name].shape[0]
            return branches, joins
        linear = _check_linear(op, rules)
        ops.append(linear)
        value = linear.inputs[0]
    return [(value, ops[::-1] + after)], []


def _elementwise(ops: list) -> bool:
    """Whether a Concat's readers up to the neurons are elementwise ops only (a BatchNorm's Scale and Bias after a
    DenseNet block's Concat) or none (a ShuffleNet unit's join): each input then reaches the neurons one to one
    (:func:`_one_to_one`)."""
    return all(isinstance(o, (Scale, Bias)) for o in ops)


def _one_to_one(ops: list, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> SparseSpec:
    """One input of a Concat (its :class:`_Embed` first) through elementwise ops: a synapse from each input neuron
    to its own neuron in the input's channels of the Concat, weighted by the ops' gain there (their image of ones
    less their image of zeros; the constant they add is the population's bias)."""
    embed = ops[0]
    ones = _apply(ops, np.ones((1, *in_shape), np.float32))[0]
    zero = _apply(ops, np.zeros((1, *in_shape), np.float32))[0]
    n = int(np.prod(in_shape))
    cols = np.arange(n, dtype=np.int64)
    rows = cols + embed.offset * int(np.prod(in_shape[1:]))
    gain = (ones - zero).reshape(-1)[rows].astype(np.float32)
    keep = gain != 0
    return SparseSpec(rows[keep], cols[keep], gain[keep], tuple(in_shape), tuple(out_shape))


def _branches(
    wiring: GraphIndex, value: str, stops: set[str], types: dict, rules: Rules
) -> tuple[list[tuple[str, list]], list[str]]:
    """The branches the neurons' synapses read: (source, ops) per chain, and the names of the ops that join them. An
    Add directly before the neurons sums its inputs' branches; a Concat read by a Conv2d or Dense gives one branch
    per input (:func:`_chains`)."""
    op = wiring.producer(value) if value not in stops else None
    if not isinstance(op, Add):
        return _chains(wiring, value, stops, types, [], rules)
    out = types[op.output].shape
    for name in op.inputs:
        if tuple(types[name].shape) != tuple(out):
            raise ConversionError(
                f"{_where(op)} broadcasts {name!r} {tuple(types[name].shape)} to {tuple(out)}; the "
                f"{rules.target} target adds branches of equal shape only"
            )
    branches: list[tuple[str, list[Op]]] = []
    adds = [op.name]
    for name in op.inputs:
        more, names = _branches(wiring, name, stops, types, rules)
        branches += more
        adds += names
    return branches, adds


def _apply(ops: list[Op], x: np.ndarray) -> np.ndarray:
    for op in ops:
        x = op.forward([x])
    return x


def _dense(ops: list[Op], in_shape: tuple[int, ...], where: str, rules: Rules) -> tuple[DenseSpec, np.ndarray]:
    """Compose linear ops into one matrix (and the constant they add): a Dense read through a flatten (and a block
    pooling) directly from its weights (:func:`_direct_dense`), any other chain by applying it to the identity,
    refused past ``rules.max_dense_entries``."""
    zero = _apply(ops, np.zeros((1, *in_shape), np.float32))[0]
    direct = _direct_dense(ops, in_shape, zero)
    if direct is not None:
        return direct, zero.astype(np.float32)
    n_in = int(np.prod(in_shape))
    if n_in * zero.size > rules.max_dense_entries:
        raise ConversionError(
            f"{where}: the ops between the two layers ({', '.join(_where(o) for o in ops if isinstance(o, Op))}) "
            f"compose into {n_in:,} x {zero.size:,} synapses, above the {rules.max_dense_entries:,} the {rules.target} "
            "target composes into one Dense; end the chain in a Dense read through a flatten (and at most an "
            "AvgPool whose kernel == stride), or use a convolution (AvgPool then Conv folds into one Conv)"
        )
    basis = np.eye(n_in, dtype=np.float32).reshape(n_in, *in_shape)
    images = _apply(ops, basis).reshape(n_in, -1) - zero.reshape(1, -1)
    return DenseSpec(np.ascontiguousarray(images.T, np.float32), tuple(in_shape)), zero.astype(np.float32)


def _block_pool(op: Op, shape: tuple[int, ...]) -> bool:
    """An AvgPool2d over disjoint blocks that tile its (C, H, W) input: kernel == stride dividing the map, or one
    window over the whole map whatever its stride (ResNet-50's 7x7 stride-1 pool of a 7x7 map: a global one)."""
    if not (
        isinstance(op, AvgPool2d)
        and len(shape) == 3
        and not any(op.padding)
        and tuple(op.dilation) == (1, 1)
        and not op.ceil_mode
    ):
        return False
    whole = tuple(op.kernel) == tuple(shape[1:])
    return whole or (
        tuple(op.kernel) == tuple(op.stride) and shape[1] % op.kernel[0] == 0 and shape[2] % op.kernel[1] == 0
    )


def _direct_dense(ops: list, in_shape: tuple[int, ...], zero: np.ndarray) -> DenseSpec | None:
    """``[Concat input] [AvgPool2d over blocks] Reshape... Dense (Scale|Bias)...`` as its matrix, built from the
    Dense's weights (each column repeated over its pool block and divided by the block's area; the Scale's gain per
    row; one input of a Concat: its channels' columns) without composing the identity, so its cost is the synapses
    themselves (VGG's fc6: 25088 x 4096; Inception v2's readout, a Concat's input of 352 x 7 x 7 through the global
    pool, took 5 GB through the identity); None for any other chain. ``zero`` is the chain's image of zeros."""
    shape, rest, pool, embed = tuple(in_shape), list(ops), None, None
    if rest and isinstance(rest[0], _Embed) and tuple(rest[0].shape[1:]) == shape[1:]:
        embed = rest.pop(0)
        shape = tuple(embed.shape)  # the rest reads the whole Concat
    if rest and _block_pool(rest[0], shape):
        pool = rest.pop(0)
    while rest and isinstance(rest[0], Reshape):
        rest.pop(0)
    if not rest or not isinstance(rest[0], Dense) or not all(isinstance(o, (Scale, Bias)) for o in rest[1:]):
        return None
    dense, after = rest[0], rest[1:]
    pooled = shape if pool is None else (shape[0], shape[1] // pool.kernel[0], shape[2] // pool.kernel[1])
    if dense.weight.shape[1] != int(np.prod(pooled)) or zero.ndim != 1:
        return None
    weight = dense.weight
    if embed is not None:  # the columns of this input's channels (the flatten's order is (C, H, W); a pool keeps C)
        c0, c1 = embed.offset, embed.offset + in_shape[0]
        weight = weight.reshape(len(weight), pooled[0], -1)[:, c0:c1].reshape(len(weight), -1)
        pooled = (in_shape[0], *pooled[1:])
    if pool is not None:
        kh, kw = pool.kernel
        weight = weight.reshape(-1, *pooled)
        weight = np.repeat(np.repeat(weight, kh, axis=2), kw, axis=3).reshape(len(weight), -1)
        weight = weight / np.float32(kh * kw)
    if after:
        n_out = weight.shape[0]
        gain = _apply(after, np.ones((1, n_out), np.float32))[0] - _apply(after, np.zeros((1, n_out), np.float32))[0]
        weight = weight * gain.reshape(-1, 1).astype(np.float32)
    return DenseSpec(np.ascontiguousarray(weight, np.float32), tuple(in_shape))


def _channel_map(op, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """An op that mixes the channels of each position of a (C, H, W) map alone (a 1x1 convolution, a depthwise one
    a BatchNorm became, a Concat's :class:`_Embed`, a Scale or Bias per channel) as (matrix (O, C), bias (O,));
    None for any other op."""
    if len(shape) != 3:
        return None
    c = shape[0]
    if isinstance(op, Conv2d):
        if op.weight.shape[2:] != (1, 1) or tuple(op.stride) != (1, 1) or any(op.padding):
            return None
        o, per = op.weight.shape[0], op.weight.shape[1]
        matrix = np.zeros((o, c), np.float32)
        step = o // op.groups
        for g in range(op.groups):
            matrix[g * step : (g + 1) * step, g * per : (g + 1) * per] = op.weight[g * step : (g + 1) * step, :, 0, 0]
        bias = np.zeros(o, np.float32) if op.bias is None else np.asarray(op.bias, np.float32)
        return matrix, bias
    if isinstance(op, _Embed):
        matrix = np.zeros((op.shape[0], c), np.float32)
        matrix[op.offset + np.arange(c), np.arange(c)] = 1
        return matrix, np.zeros(op.shape[0], np.float32)
    if isinstance(op, (Scale, Bias)):
        value = np.asarray(op.value, np.float32)
        if value.ndim > 3:
            return None
        try:
            full = np.broadcast_to(value, shape)
        except ValueError:
            return None
        per_channel = full[:, 0, 0]
        if not np.array_equal(full, np.broadcast_to(per_channel.reshape(-1, 1, 1), shape)):
            return None
        if isinstance(op, Scale):
            return np.diag(per_channel).astype(np.float32), np.zeros(c, np.float32)
        return np.eye(c, dtype=np.float32), per_channel.astype(np.float32)
    return None


def _diagonal_map(matrix: np.ndarray) -> bool:
    """Whether a channel map is a gain per channel (square, zero off the diagonal)."""
    return matrix.shape[0] == matrix.shape[1] and not np.any(matrix - np.diag(np.diag(matrix)))


def _full_weight(conv: Conv2d) -> np.ndarray:
    """A convolution's kernel as an ungrouped one (O, C, kH, kW), zero between groups."""
    if conv.groups == 1:
        return conv.weight
    o, per = conv.weight.shape[:2]
    step = o // conv.groups
    out = np.zeros((o, per * conv.groups, *conv.weight.shape[2:]), np.float32)
    for g in range(conv.groups):
        out[g * step : (g + 1) * step, g * per : (g + 1) * per] = conv.weight[g * step : (g + 1) * step]
    return out


def _simplified(ops: list, in_shape: tuple[int, ...]) -> list:
    """A chain of linear ops rewritten, where exact, into fewer ops that map to a convolution: the ops that mix the
    channels of each position alone (:func:`_channel_map`: 1x1 convolutions, a BatchNorm's depthwise 1x1, a
    Concat's embedding, Scale/Bias per channel) are multiplied into one, moved before an average pool (both are
    linear and act on different axes; a bias passes an unpadded pool or one that averages the cells inside), and
    folded into the convolution before them (or after them, where they add no bias to a padded map). A DenseNet
    transition (Conv 1x1, AvgPool) read by the next block's BatchNorm through its Concat becomes AvgPool, Conv
    1x1 (one convolution over the pool's blocks), a branch into a Concat one convolution. The chain is returned
    unchanged where it does not become ``[AvgPool2d [AvgPool2d]] Conv2d``."""
    if len(in_shape) != 3 or not any(isinstance(o, (Conv2d, _Embed)) for o in ops):
        return ops
    items: list = []  # ops, and channel maps as ("map", matrix, bias, name)
    shape = tuple(in_shape)
    x = np.zeros((1, *shape), np.float32)
    for op in ops:
        found = _channel_map(op, shape)
        items.append(op if found is None else ("map", *found, op.name))
        x = op.forward([x])
        shape = tuple(x.shape[1:])
        if len(shape) != 3:  # a flatten: leave the rest as it is
            items += ops[len(items) :]
            break
    changed = True
    while changed:
        changed = False
        # Two maps become one first: a branch read through a Concat in each of a DenseNet block's layers is a chain
        # of one embedding per layer, multiplied as a narrow product (C_k x the branch's channels), not each into
        # the convolution's kernel, which grows with every embedding (minutes on DenseNet-121).
        pairs = [i for i in range(len(items) - 1) if isinstance(items[i], tuple) and isinstance(items[i + 1], tuple)]
        for i in pairs[:1] or range(len(items) - 1):
            a, b = items[i], items[i + 1]
            if isinstance(a, tuple) and isinstance(b, tuple):  # two maps: one
                items[i : i + 2] = [("map", b[1] @ a[1], b[1] @ a[2] + b[2], b[3])]
            elif (
                isinstance(a, tuple)
                and isinstance(b, AvgPool2d)
                and (not np.any(a[2]) or not (any(b.padding) or b.ceil_mode) or not b.count_include_pad)
            ):  # a map before a pool: after it
                items[i : i + 2] = [b, a]
            elif isinstance(a, Conv2d) and isinstance(b, tuple) and _diagonal_map(b[1]):  # a gain per channel
                bias = np.zeros(a.out_channels, np.float32) if a.bias is None else a.bias
                gain = np.diag(b[1]).astype(np.float32)
                weight = a.weight * gain.reshape(-1, 1, 1, 1)
                items[i : i + 2] = [
                    a.copy(weight=weight.astype(np.float32), bias=(gain * bias + b[2]).astype(np.float32))
                ]
            elif isinstance(a, Conv2d) and isinstance(b, tuple):  # a convolution, then a map: one convolution
                weight = np.tensordot(b[1], _full_weight(a), axes=1)  # (O, C) x (C, I, kH, kW)
                bias = b[1] @ (np.zeros(a.out_channels, np.float32) if a.bias is None else a.bias) + b[2]
                items[i : i + 2] = [a.copy(weight=weight.astype(np.float32), bias=bias.astype(np.float32), groups=1)]
            elif isinstance(a, tuple) and isinstance(b, Conv2d) and (not np.any(a[2]) or not any(b.padding)):
                weight = _full_weight(b)  # a map, then a convolution: one convolution
                bias = np.zeros(b.out_channels, np.float32) if b.bias is None else b.bias
                bias = bias + np.einsum("oikl,i->o", weight, a[2])
                weight = np.moveaxis(np.tensordot(weight, a[1], axes=([1], [0])), 3, 1)  # (O, I, kH, kW) x (I, C)
                items[i : i + 2] = [b.copy(weight=weight.astype(np.float32), bias=bias.astype(np.float32), groups=1)]
            else:
                continue
            changed = True
            break
    out = [
        Conv2d(name=item[3], inputs=("x",), output="y", weight=item[1][:, :, None, None], bias=item[2])
        if isinstance(item, tuple)
        else item
        for item in items
    ]
    one_conv = isinstance(out[-1], Conv2d) and all(isinstance(o, AvgPool2d) for o in out[:-1]) and len(out) <= 3
    return out if one_conv else ops  # only where the chain becomes one convolution synapse (or two pools' one)


def _pooling_list(ops: list, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> SparseSpec | None:
    """A chain of average pools (global or windowed) over a (C, H, W) map, then a flatten, Scale, Bias or a Concat's
    :class:`_Embed`, as its list of synapses: the pools' map of one channel (their image of that channel's
    identity), repeated per channel, placed at the Concat's channel offset, times the gain of the ops after them;
    None for any other chain. What a readout through a global average pool reads (SqueezeNet's end: Conv, ReLU,
    GlobalAveragePool), and a pooled shortcut joined by a Concat (a ShuffleNet unit's), which composed into one
    matrix would pass the cap."""
    if len(in_shape) != 3:
        return None
    pools = 0
    while pools < len(ops) and isinstance(ops[pools], (AvgPool2d, GlobalAvgPool)):
        pools += 1
    embeds = [o for o in ops[pools:] if isinstance(o, _Embed)]
    if not pools or len(embeds) > 1 or not all(isinstance(o, (Reshape, Scale, Bias, _Embed)) for o in ops[pools:]):
        return None
    c, h, w = in_shape
    basis = np.eye(h * w, dtype=np.float32).reshape(h * w, 1, h, w)
    per_channel = _apply(ops[:pools], basis).reshape(h * w, -1)  # (input cell, pooled cell)
    cells = per_channel.shape[1]
    rest = ops[pools:]
    pooled = (1, c, *_apply(ops[:pools], np.zeros((1, 1, h, w), np.float32)).shape[2:])
    gain = (_apply(rest, np.ones(pooled, np.float32)) - _apply(rest, np.zeros(pooled, np.float32))).reshape(-1)
    cell_in, cell_out = np.nonzero(per_channel)
    channel = np.repeat(np.arange(c, dtype=np.int64), cell_in.size)
    rows = (channel + (embeds[0].offset if embeds else 0)) * cells + np.tile(cell_out, c)
    cols = channel * (h * w) + np.tile(cell_in, c)
    weight = np.tile(per_channel[cell_in, cell_out], c) * gain[rows]
    order = np.lexsort((cols, rows))
    keep = order[weight[order] != 0]
    return SparseSpec(rows[keep], cols[keep], weight[keep].astype(np.float32), tuple(in_shape), tuple(out_shape))


def _diagonal(ops: list[Op], shape: tuple[int, ...]) -> SparseSpec:
    """Elementwise ops (Scale) as one weight per neuron: their image of ones minus their image of zeros."""
    ones = _apply(ops, np.ones((1, *shape), np.float32))[0]
    zero = _apply(ops, np.zeros((1, *shape), np.float32))[0]
    index = np.arange(int(np.prod(shape)), dtype=np.int64)
    return SparseSpec(index, index.copy(), np.ascontiguousarray((ones - zero).reshape(-1), np.float32), shape, shape)


def synapse_list(spec: ConvSpec | DenseSpec | SparseSpec, shape: tuple[int, ...]) -> SparseSpec:
    """Any synapse as its list of synapses (a target that takes connection lists, such as PyNN's
    ``FromListConnector``): a convolution's taps, a Dense's nonzero entries, a sparse synapse itself; ``shape`` is
    the output population's."""
    if isinstance(spec, SparseSpec):
        return spec
    if isinstance(spec, ConvSpec):
        return _taps(spec, shape)
    rows, cols = np.nonzero(spec.weight)
    return SparseSpec(
        rows.astype(np.int64),
        cols.astype(np.int64),
        spec.weight[rows, cols].astype(np.float32),
        spec.input_shape,
        shape,
    )


def listed_count(spec: ConvSpec | DenseSpec | SparseSpec, shape: tuple[int, ...]) -> int:
    """How many synapses :func:`synapse_list` lists for ``spec`` into a population of ``shape``, without listing
    them: a convolution's taps that land inside the input, per axis (each tap's live output channels times the
    output rows and columns it reads the input from), a Dense's nonzero entries, a list's length."""
    if isinstance(spec, SparseSpec):
        return int(spec.rows.size)
    if not isinstance(spec, ConvSpec):
        return int(np.count_nonzero(spec.weight))
    _, h, w = spec.input_shape
    _, oh, ow = shape
    live = np.repeat(np.repeat(spec.weight != 0, spec.pool[0], axis=2), spec.pool[1], axis=3).sum(axis=0)
    kh, kw = live.shape[1:]
    rows = kernel_taps(h, oh, kh, spec.stride[0], spec.padding[0], spec.dilation[0]).sum(axis=(0, 2))
    cols = kernel_taps(w, ow, kw, spec.stride[1], spec.padding[1], spec.dilation[1]).sum(axis=(0, 2))
    return int(np.einsum("cij,i,j->", live.astype(np.int64), rows, cols))


def _taps_count(spec: ConvSpec, shape: tuple[int, ...]) -> int:
    """At most how many synapses a convolution synapse lists (every output neuron times its kernel's taps)."""
    positions = int(np.prod(shape[1:]))
    return positions * int(np.count_nonzero(spec.weight)) * int(np.prod(spec.pool))


def _taps(spec: ConvSpec, shape: tuple[int, ...]) -> SparseSpec:
    """A convolution synapse as its list of synapses: every (output neuron, kernel tap) inside the input, the pool
    repeated into the kernel, zero weights left out."""
    c, h, w = spec.input_shape
    o, oh, ow = shape
    kernel = np.repeat(np.repeat(spec.weight, spec.pool[0], axis=2), spec.pool[1], axis=3)
    per_group, out_group = c // spec.groups, o // spec.groups
    rows, cols, values = [], [], []
    for ci in range(per_group):
        for i in range(kernel.shape[2]):
            for j in range(kernel.shape[3]):
                live = np.flatnonzero(kernel[:, ci, i, j])  # the output channels this tap reaches
                if not live.size:
                    continue
                oo, yy, xx = (a.reshape(-1) for a in np.meshgrid(live, np.arange(oh), np.arange(ow), indexing="ij"))
                y = yy * spec.stride[0] - spec.padding[0] + i * spec.dilation[0]
                x = xx * spec.stride[1] - spec.padding[1] + j * spec.dilation[1]
                weight = kernel[oo, ci, i, j]
                keep = (y >= 0) & (y < h) & (x >= 0) & (x < w) & (weight != 0)
                channel = (oo // out_group) * per_group + ci
                rows.append(((oo * oh + yy) * ow + xx)[keep])
                cols.append(((channel * h + y) * w + x)[keep])
                values.append(weight[keep])
    order = np.lexsort((np.concatenate(cols), np.concatenate(rows)))
    return SparseSpec(
        np.concatenate(rows)[order].astype(np.int64),
        np.concatenate(cols)[order].astype(np.int64),
        np.concatenate(values)[order].astype(np.float32),
        tuple(spec.input_shape),
        tuple(shape),
    )


@dataclass
class _Patched:
    """conv(avgpool(x)) for a pooling that is no convolution's block, on a target whose convolutions share their
    kernel (:attr:`Rules.shared_kernels`): the composed convolution over the input (``conv``: the pooling's
    windows all full) and the synapses where the pooling's real windows differ from it (``fix``: padded, clipped
    or dropped windows along the map's borders), listed; both read the same population, and their sum is exact.
    :func:`_hidden` makes ``fix`` a further synapse of the population (delay as the convolution's)."""

    conv: ConvSpec
    fix: SparseSpec

    def listed(self) -> SparseSpec:
        """The two as one list of synapses (each pair once, weights summed)."""
        return _summed([_taps(self.conv, self.fix.shape), self.fix])


def _summed(lists: list[SparseSpec]) -> SparseSpec:
    first = lists[0]
    n_in = int(np.prod(first.input_shape))
    rows = np.concatenate([s.rows for s in lists])
    cols = np.concatenate([s.cols for s in lists])
    keys, where = np.unique(rows * n_in + cols, return_inverse=True)  # sorted by (row, col)
    weight = np.bincount(where, np.concatenate([s.weight for s in lists]).astype(np.float64), minlength=keys.size)
    keep = weight != 0
    return SparseSpec(
        (keys // n_in)[keep], (keys % n_in)[keep], weight[keep].astype(np.float32), first.input_shape, first.shape
    )


class _PooledConv:
    """The geometry of conv(avgpool(x)) on a (C, H, W) input: per output neuron and kernel tap, the pooled cell it
    reads, and per pooled cell the input cells of its window with its 1 / divisor (taken from the pooling itself:
    its image of ones over the cells inside the window)."""

    def __init__(self, pool: AvgPool2d, conv: Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.pool, self.conv, self.in_shape, self.out_shape = pool, conv, tuple(in_shape), tuple(out_shape)
        _, h, w = in_shape
        self.area = int(pool.kernel[0] * pool.kernel[1])
        kh, kw = conv.weight.shape[2:]
        cells_h = np.arange(pool.kernel[0]) * pool.dilation[0]  # a window's cells from its first, per axis
        cells_w = np.arange(pool.kernel[1]) * pool.dilation[1]
        _, _, self.per_cell = _pool_windows(pool, h, w)
        self.pooled = self.per_cell.shape
        # input cell (first + u, first + v) of an output is reached through kernel tap i and window cell k where
        # u == i * conv dilation * pool stride + k * pool dilation: the taps per offset, per axis
        self.pairs = (
            _tap_pairs(kh, conv.dilation[0] * pool.stride[0], cells_h),
            _tap_pairs(kw, conv.dilation[1] * pool.stride[1], cells_w),
        )
        _, oh, ow = out_shape
        self.first_y = np.arange(oh) * conv.stride[0] - conv.padding[0]  # the pooled cell of tap 0, per output
        self.first_x = np.arange(ow) * conv.stride[1] - conv.padding[1]
        self.stride = (conv.stride[0] * pool.stride[0], conv.stride[1] * pool.stride[1])
        self.padding = (
            conv.padding[0] * pool.stride[0] + pool.padding[0],
            conv.padding[1] * pool.stride[1] + pool.padding[1],
        )

    def count(self) -> int:
        """At most how many synapses the composition lists."""
        per_group = self.in_shape[0] // self.conv.groups
        return int(np.prod(self.out_shape)) * per_group * len(self.pairs[0]) * len(self.pairs[1])

    def composed(self) -> ConvSpec | None:
        """The convolution over the input whose pooling windows are all full, where its output is the population's
        shape and its padding symmetric (a chip's Conv); None where not. Where the pooling pads one side more than
        the other (a pool padded at the end only, as a ceil-mode pool exports), the kernel gets leading rows or
        columns of zeros and the padding grows by as many on both sides: each output still reads its own window,
        and the far side's padding reaches as far as the pooling's."""
        _, h, w = self.in_shape
        span = (len(self.pairs[0]), len(self.pairs[1]))
        (top, left), conv = self.padding, self.conv
        lead = []
        for size, pad, stride, taps, out in zip((h, w), (top, left), self.stride, span, self.out_shape[1:]):
            fits = [e for e in range(2 * stride + 1) if (size + 2 * pad + e - taps) // stride + 1 == out]
            if not fits:
                return None
            lead.append(fits[0])
        weight = np.zeros((*conv.weight.shape[:2], span[0] + lead[0], span[1] + lead[1]), np.float64)
        for u, taps_h in enumerate(self.pairs[0]):
            for v, taps_w in enumerate(self.pairs[1]):
                for i in taps_h:
                    for j in taps_w:
                        weight[:, :, lead[0] + u, lead[1] + v] += conv.weight[:, :, i, j]
        return ConvSpec(
            weight=(weight / self.area).astype(np.float32),
            stride=self.stride,
            padding=(top + lead[0], left + lead[1]),
            dilation=(1, 1),
            groups=int(conv.groups),
            pool=(1, 1),
            input_shape=self.in_shape,
        )

    def listed(self, minus: float = 0.0) -> SparseSpec:
        """The synapses of conv(avgpool(x)), each (output, input) pair once (taps that reach an input cell through
        several windows summed), less ``minus`` (1 / area: what the composed convolution has) per window cell: with
        ``minus``, the synapses where the pooling's real windows differ from full ones (its corrections)."""
        c, h, w = self.in_shape
        o, oh, ow = self.out_shape
        ph, pw = self.pooled
        conv = self.conv
        per_group, out_group = c // conv.groups, o // conv.groups
        base_y = self.first_y * self.pool.stride[0] - self.pool.padding[0]  # the input row of offset 0
        base_x = self.first_x * self.pool.stride[1] - self.pool.padding[1]
        weight = conv.weight.astype(np.float64)
        out_index = np.arange(o * oh * ow, dtype=np.int64).reshape(o, oh, ow)
        rows, cols, values = [], [], []
        for ci in range(per_group):
            channel = (np.arange(o) // out_group) * per_group + ci  # the input channel output channel o reads
            for u, taps_h in enumerate(self.pairs[0]):
                y = base_y + u
                for v, taps_w in enumerate(self.pairs[1]):
                    x = base_x + v
                    value = np.zeros((o, oh, ow), np.float64)
                    for i in taps_h:
                        cell_y = self.first_y + i * conv.dilation[0]
                        for j in taps_w:
                            cell_x = self.first_x + j * conv.dilation[1]
                            keep = ((cell_y >= 0) & (cell_y < ph))[:, None] & ((cell_x >= 0) & (cell_x < pw))[None]
                            cell = self.per_cell[np.clip(cell_y, 0, ph - 1)][:, np.clip(cell_x, 0, pw - 1)]
                            factor = cell * keep - minus
                            if np.any(factor):
                                value += weight[:, ci, i, j][:, None, None] * factor[None]
                    value *= (((y >= 0) & (y < h))[:, None] & ((x >= 0) & (x < w))[None, :])[None]
                    oo, yy, xx = np.nonzero(value)
                    rows.append(out_index[oo, yy, xx])
                    cols.append((channel[oo] * h + y[yy]) * w + x[xx])
                    values.append(value[oo, yy, xx])
        order = np.lexsort((np.concatenate(cols), np.concatenate(rows)))
        return SparseSpec(
            np.concatenate(rows)[order].astype(np.int64),
            np.concatenate(cols)[order].astype(np.int64),
            np.concatenate(values)[order].astype(np.float32),
            self.in_shape,
            self.out_shape,
        )


def _pooled(
    pool: AvgPool2d, conv: Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...], rules: Rules
) -> ConvSpec | SparseSpec | _Patched:
    """conv(avgpool(x)) for a pooling that is no convolution's block (overlapping or padded windows, a map the
    windows do not tile; the convolution's padding pads the pooled map, never the input): where the target's
    convolutions share their kernel, the composed convolution and its corrections along the borders
    (:class:`_Patched`); otherwise (or where no convolution fits the shapes) every synapse listed. Exact for any
    pooling and convolution."""
    geometry = _PooledConv(pool, conv, in_shape, out_shape)
    composed = geometry.composed() if rules.shared_kernels else None
    if composed is not None:
        fix = geometry.listed(minus=1.0 / geometry.area)
        if not fix.weight.size:  # every window full (SqueezeNet's 3x3 pools, stride 2): the convolution alone
            return composed
        if fix.weight.size <= rules.max_dense_entries:
            return _Patched(composed, fix)
    count = geometry.count()
    if count > rules.max_dense_entries:
        _, h, w = in_shape
        raise ConversionError(
            f"{_where(pool)} before {_where(conv)}: this pooling (kernel {tuple(pool.kernel)}, stride "
            f"{tuple(pool.stride)}, padding {tuple(pool.padding)} on a {h}x{w} map) is no convolution's block, so "
            f"the {rules.target} target lists the composed synapses one by one: up to {count:,} of them, above the "
            f"{rules.max_dense_entries:,} it builds; pool with kernel == stride on a map the kernel divides, or pool "
            "after fewer channels"
        )
    return geometry.listed()


def _pool_windows(pool: AvgPool2d, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An average pool's windows on an h x w map: per output row and column the input rows (and columns) of its
    window (some outside the map), and per output cell each in-map cell's share of it (1 / the pool's divisor,
    taken from the pooling itself: its image of ones over the cells inside the window)."""
    ones = _apply([pool], np.ones((1, 1, h, w), np.float32))[0, 0].astype(np.float64)
    cells_h = np.arange(pool.kernel[0]) * pool.dilation[0]
    cells_w = np.arange(pool.kernel[1]) * pool.dilation[1]
    window_y = (np.arange(ones.shape[0]) * pool.stride[0] - pool.padding[0])[:, None] + cells_h
    window_x = (np.arange(ones.shape[1]) * pool.stride[1] - pool.padding[1])[:, None] + cells_w
    inside = ((window_y >= 0) & (window_y < h)).sum(1)[:, None] * ((window_x >= 0) & (window_x < w)).sum(1)
    per_cell = np.divide(ones, inside, out=np.zeros_like(ones), where=inside > 0)
    full = 1.0 / int(pool.kernel[0] * pool.kernel[1])
    return window_y, window_x, np.where(np.isclose(per_cell, full, rtol=1e-6, atol=0.0), full, per_cell)


def _through_pool(pool: AvgPool2d, fix: SparseSpec, in_shape: tuple[int, ...]) -> SparseSpec:
    """Synapses listed on an average pool's output, read through the pool instead: each becomes one synapse per
    in-map cell of its window, times the cell's share."""
    _, h, w = in_shape
    window_y, window_x, per_cell = _pool_windows(pool, h, w)
    ph, pw = per_cell.shape
    channel, cell = np.divmod(fix.cols, ph * pw)
    py, px = np.divmod(cell, pw)
    rows, cols, values = [], [], []
    for i in range(window_y.shape[1]):
        y = window_y[py, i]
        for j in range(window_x.shape[1]):
            x = window_x[px, j]
            keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            rows.append(fix.rows[keep])
            cols.append((channel[keep] * h + y[keep]) * w + x[keep])
            values.append(fix.weight[keep].astype(np.float64) * per_cell[py[keep], px[keep]])
    listed = SparseSpec(
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(values).astype(np.float32),
        tuple(in_shape),
        fix.shape,
    )
    return _summed([listed])


def _pooled_twice(
    first: AvgPool2d,
    second: AvgPool2d,
    conv: Conv2d,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    rules: Rules,
) -> tuple[ConvSpec | SparseSpec | _Patched, np.ndarray] | None:
    """conv(avgpool(avgpool(x))), an Inception block's pool branch read straight after a pooling (Inception v2's
    stem), where the target's convolutions share their kernel: the second pool and the convolution compose into
    one convolution over the first pool's map (and its border corrections), which composes with the first pool as
    :func:`_conv` composes any pool and convolution; the inner corrections, read through the first pool, join the
    outer ones. Exact; None where the inner composition is no convolution."""
    if not rules.shared_kernels:
        return None
    mid = tuple(_apply([first], np.zeros((1, *in_shape), np.float32)).shape[1:])
    inner, bias = _conv(second, conv, mid, out_shape, rules)
    fixes = []
    if isinstance(inner, _Patched):
        fixes.append(_through_pool(first, inner.fix, in_shape))
        inner = inner.conv
    if not isinstance(inner, ConvSpec):
        return None
    kernel = np.repeat(np.repeat(inner.weight, inner.pool[0], axis=2), inner.pool[1], axis=3)
    top, left = inner.padding
    composed = Conv2d(
        name=conv.name,
        inputs=conv.inputs,
        output=conv.output,
        weight=np.ascontiguousarray(kernel, np.float32),
        bias=None,
        stride=(int(inner.stride[0]), int(inner.stride[1])),
        padding=(top, left, top, left),
        dilation=(int(inner.dilation[0]), int(inner.dilation[1])),
        groups=int(inner.groups),
    )
    outer, _ = _conv(first, composed, in_shape, out_shape, rules)
    if isinstance(outer, _Patched):
        fixes.append(outer.fix)
        outer = outer.conv
    if isinstance(outer, SparseSpec):
        return _summed([outer, *fixes]), bias
    if not fixes:
        return outer, bias
    fix = _summed(fixes)
    if fix.weight.size > rules.max_dense_entries:
        return None
    return _Patched(outer, fix), bias


def _two_pools(
    before: list, conv: Op, in_shape: tuple[int, ...], out_shape: tuple[int, ...], rules: Rules
) -> tuple[ConvSpec | SparseSpec | _Patched, np.ndarray] | None:
    """:func:`_pooled_twice` where ``before`` is two average pools and ``conv`` a convolution; None otherwise, or
    where they do not compose."""
    if len(before) != 2 or not all(isinstance(o, AvgPool2d) for o in before) or not isinstance(conv, Conv2d):
        return None
    return _pooled_twice(before[0], before[1], conv, in_shape, out_shape, rules)


def _conv(
    pool: AvgPool2d | None, conv: Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...], rules: Rules
) -> tuple[ConvSpec | SparseSpec | _Patched, np.ndarray]:
    top, left, bottom, right = conv.padding
    bias = np.zeros(conv.out_channels, np.float32) if conv.bias is None else conv.bias
    weight, factor = conv.weight, (1, 1)
    if pool is not None and _box_folds(pool, conv):
        weight, (top, left) = _box_composed(pool, conv), pool.padding[:2]
    elif pool is not None and _block_folds(pool, conv, in_shape) and (top, left) == (bottom, right):
        weight, factor = conv.weight / np.float32(pool.kernel[0] * pool.kernel[1]), pool.kernel
    elif pool is not None:  # overlapping, padded or cropping windows: no convolution, but a list of synapses
        return _pooled(pool, conv, in_shape, out_shape, rules), bias
    elif (top, left) != (bottom, right):
        raise ConversionError(
            f"{_where(conv)}: padding {conv.padding} (top, left, bottom, right) is asymmetric; the {rules.target} "
            "target's Conv pads both sides equally. Pad symmetrically when training, or crop the input"
        )
    spec = ConvSpec(
        weight=np.ascontiguousarray(weight, np.float32),
        stride=(conv.stride[0] * factor[0], conv.stride[1] * factor[1]),
        padding=(top * factor[0], left * factor[1]),
        dilation=tuple(conv.dilation),
        groups=int(conv.groups),
        pool=tuple(factor),
        input_shape=tuple(in_shape),
    )
    return spec, bias


def _block_folds(pool: AvgPool2d, conv: Conv2d, in_shape: tuple[int, ...]) -> bool:
    """An average pool over disjoint blocks that tile the input (kernel == stride, no padding, no dilation, the
    input divisible by the kernel) before an undilated convolution is one convolution over the blocks."""
    k = tuple(pool.kernel)
    return (
        k == tuple(pool.stride)
        and not any(pool.padding)
        and tuple(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and tuple(conv.dilation) == (1, 1)
        and in_shape[1] % k[0] == 0
        and in_shape[2] % k[1] == 0
    )


def _tap_pairs(taps: int, tap_step: int, cells: np.ndarray) -> list[list[int]]:
    """Per offset u from an output's first input cell, the kernel taps i whose pooled cell's window holds it: u ==
    i * tap_step + cell for one of the window's cell offsets (at most one per tap)."""
    span = (taps - 1) * tap_step + int(cells[-1]) + 1
    pairs: list[list[int]] = [[] for _ in range(span)]
    for i in range(taps):
        for cell in cells:
            pairs[i * tap_step + int(cell)].append(i)
    return pairs


def _box_folds(pool: AvgPool2d, conv: Conv2d) -> bool:
    """A stride-1 average pool (an Inception branch's 3x3 pool, padding 1) before an unpadded convolution is one
    convolution: linear and shift-invariant, with the padded cells counted in the average (zeros, as the
    convolution's own padding of the input would be)."""
    top, left, bottom, right = pool.padding
    return (
        tuple(pool.stride) == (1, 1)
        and tuple(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and (top, left) == (bottom, right)
        and (bool(pool.count_include_pad) or not any(pool.padding))
        and not any(conv.padding)
        and tuple(conv.dilation) == (1, 1)
    )


def _box_composed(pool: AvgPool2d, conv: Conv2d) -> np.ndarray:
    """The kernel of conv(avgpool(x)) for :func:`_box_folds`: each tap of the convolution spread over the pool's
    k x k window, divided by its area; (kH + pH - 1, kW + pW - 1)."""
    kh, kw = conv.weight.shape[2:]
    ph, pw = pool.kernel
    out = np.zeros((*conv.weight.shape[:2], kh + ph - 1, kw + pw - 1), np.float64)
    for i in range(ph):
        for j in range(pw):
            out[:, :, i : i + kh, j : j + kw] += conv.weight
    return (out / (ph * pw)).astype(np.float32)


def _kernel_of(spec: ConvSpec | _Patched) -> ConvSpec:
    """A convolution synapse's one shared kernel (a :class:`_Patched` one's composed convolution)."""
    return spec.conv if isinstance(spec, _Patched) else spec


def _listed(spec: ConvSpec | _Patched, shape: tuple[int, ...], where: str, rules: Rules, why: str) -> SparseSpec:
    """A convolution (a :class:`_Patched` one: the composed convolution's taps and its corrections, summed) as its
    list of synapses, refused where the list would exceed what the target builds (``why`` says why it is listed)."""
    count = _taps_count(_kernel_of(spec), shape)
    if count > rules.max_dense_entries:
        raise ConversionError(
            f"{where}: {why}, so the {rules.target} target lists it tap by tap: up to {count:,} synapses, above the "
            f"{rules.max_dense_entries:,} it builds; use fewer channels there, or a shorter path to it"
        )
    return spec.listed() if isinstance(spec, _Patched) else _taps(spec, shape)


def _plain(
    spec: ConvSpec | DenseSpec | SparseSpec | _Patched, shape: tuple[int, ...], where: str, rules: Rules
) -> ConvSpec | DenseSpec | SparseSpec:
    """One synapse where a population takes no further one: a :class:`_Patched` convolution as its list."""
    if isinstance(spec, _Patched):
        return _listed(spec, shape, where, rules, "its pooling is no convolution's block and it takes one synapse")
    return spec


def _delayed_taps(
    spec: ConvSpec | DenseSpec | SparseSpec | _Patched, shape: tuple[int, ...], where: str, rules: Rules
) -> DenseSpec | SparseSpec:
    """A delayed convolution on a target whose convolutions take no delay: its taps."""
    if isinstance(spec, DenseSpec | SparseSpec):
        return spec
    return _listed(spec, shape, where, rules, "the target's convolutions take no delay and this branch is delayed")


def _synapse(ops: list[Op], in_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str, rules: Rules):
    """The synapse a chain of linear ops becomes, and its bias current in the output's shape. A chain from one input
    of a Concat (:class:`_Embed` first) into ``[AvgPool2d] Conv2d`` (ungrouped) is that input's channels of the
    kernel, ``weight[:, c0:c1]``; any other chain through a Concat is composed into a Dense. The chain is first
    :func:`_simplified` (channel mixes folded into its convolution, moved before its pooling)."""
    ops = _simplified(ops, in_shape)
    if any(isinstance(o, _Embed) for o in ops):
        embed, *before, last = ops
        if not (
            isinstance(embed, _Embed)
            and isinstance(last, Conv2d)
            and last.groups == 1
            and len(before) <= 2
            and all(isinstance(o, AvgPool2d) for o in before)
        ):
            return _dense(ops, in_shape, where, rules)
        c0 = embed.offset
        sliced = last.copy(weight=last.weight[:, c0 : c0 + in_shape[0]])
        ops = [*before, sliced]
        if len(before) == 2:  # an Inception block's pool branch after a pooling, one input of a Concat
            twice = _two_pools(before, sliced, in_shape, out_shape, rules)
            if twice is None:
                return _dense(ops, in_shape, where, rules)
            return twice[0], np.broadcast_to(twice[1].reshape(-1, 1, 1), out_shape).astype(np.float32)
    weighted = [op for op in ops if isinstance(op, (Conv2d, Dense))]
    convs = [op for op in ops if isinstance(op, Conv2d)]
    if convs:
        conv = convs[0]
        before = ops[: ops.index(conv)]
        twice = _two_pools(before, conv, in_shape, out_shape, rules) if len(convs) == 1 and ops[-1] is conv else None
        if twice is None and (
            len(convs) > 1
            or ops[-1] is not conv
            or len(before) > 1
            or any(not isinstance(o, AvgPool2d) for o in before)
        ):
            names = ", ".join(_where(o) for o in ops)
            twice_too = ", AvgPool2d AvgPool2d Conv2d" if rules.shared_kernels else ""
            raise ConversionError(
                f"{where}: the ops between two neuron layers ({names}) do not map to one synapse; the "
                f"{rules.target} target maps [AvgPool2d] Conv2d{twice_too}, or linear ops ending in a Dense"
            )
        if twice is None:
            pools = [o for o in before if isinstance(o, AvgPool2d)]  # all of them: checked above
            twice = _conv(pools[0] if pools else None, conv, in_shape, out_shape, rules)
        spec, bias = twice
        return spec, np.broadcast_to(bias.reshape(-1, 1, 1), out_shape).astype(np.float32)
    if not weighted:
        raise ConversionError(f"{where}: no Conv or Dense between two neuron layers; there is no synapse to map")
    return _dense(ops, in_shape, where, rules)


def _at_rest(wiring: GraphIndex, value: str, stops: set[str], types: dict) -> np.ndarray:
    """``value`` (batch of 1) when no population spikes (every stop zero): the constant current of all branches
    into the neurons together, each op's bias counted once however many synapses its weights are split into."""
    if value in stops:
        return np.zeros((1, *types[value].shape), np.float32)
    op = wiring.producer(value)
    if op is None:  # pragma: no cover - graph inputs are stops
        raise ConversionError(f"value {value!r} has no producer")
    return op.forward([_at_rest(wiring, name, stops, types) for name in op.inputs]).astype(np.float32)


def _fold_threshold(spec, bias: np.ndarray, threshold: np.ndarray, shape: tuple[int, ...]):
    """Divide each neuron's input by its threshold (scalar or per channel), so that every threshold is 1."""
    theta = np.asarray(threshold, np.float32)
    if np.all(theta == 1):
        return spec, bias
    per_neuron = np.broadcast_to(theta.reshape((-1,) + (1,) * (len(shape) - 1)) if theta.ndim else theta, shape)
    bias = (bias / per_neuron).astype(np.float32)
    if isinstance(spec, _Patched):
        _fold_threshold(spec.conv, bias, threshold, shape)
        _fold_threshold(spec.fix, bias, threshold, shape)
    elif isinstance(spec, ConvSpec):
        spec.weight = (spec.weight / per_neuron[:, 0, 0].reshape(-1, 1, 1, 1)).astype(np.float32)
    elif isinstance(spec, SparseSpec):
        spec.weight = (spec.weight / per_neuron.reshape(-1)[spec.rows]).astype(np.float32)
    elif spec is not None:
        spec.weight = (spec.weight / per_neuron.reshape(-1, 1)).astype(np.float32)
    return spec, bias


def _drive(op: IF | LIF, shape: tuple[int, ...]) -> np.ndarray:
    """The constant a LIF op adds to v every step (its v_leak term), in the op's units; 0 for IF."""
    if isinstance(op, IF):
        return np.zeros(shape, np.float32)
    return np.broadcast_to(np.asarray(op.drive, np.float32), shape).astype(np.float32)


def _hidden(
    wiring: GraphIndex,
    op: IF | LIF,
    stops: set[str],
    types: dict,
    populations: list,
    index: dict,
    common: dict,
    rules: Rules,
):
    """The population of IF op ``op``: one synapse per branch of its input (see the module), the one from the
    population before it first, each delayed so that all arrive at its depth."""
    shape = types[op.output].shape
    branches, adds = _branches(wiring, op.inputs[0], stops, types, rules)
    asked = []  # per branch, the steps its Delay ops ask for
    for i, (source, ops) in enumerate(branches):
        kept, steps = _delayed(ops, f"{_where(op)}'s input", rules)
        branches[i] = (source, kept)
        asked.append(steps)
    sources = []
    for source, _ops in branches:
        if source not in index:
            raise ConversionError(
                f"{_where(op)} reads the graph input {source!r} directly; only the first neurons read the input"
            )
        sources.append(index[source])
    previous = len(populations) - 1
    # the main synapse: from the population before it where it reads that one (a chain), else from its deepest
    # source (a parallel branch of an Inception-style block, which reads an earlier population)
    main = previous if previous in sources else max(sources, key=lambda j: (populations[j].depth, j))
    depth = max(populations[j].depth for j in sources) + 1  # the pipeline's alignment; a Delay adds to it below
    order = sorted(range(len(branches)), key=lambda i: (sources[i] != main, i))  # the main synapse first
    specs: list[tuple[int, ConvSpec | DenseSpec | SparseSpec, int, list[str], int]] = []
    relays: dict[tuple[int, int], int] = {}  # (source, delay) -> its relay population (:func:`_relay`)
    for i in order:
        source, ops = branches[i]
        where = _where(op) + (f" (branch from {source!r} through {', '.join(adds)})" if adds else "")
        delay = depth - populations[sources[i]].depth - 1 + asked[i]  # alignment, and the Delay ops' steps
        spec: ConvSpec | DenseSpec | SparseSpec | _Patched
        if adds and all(isinstance(o, Scale) for o in ops) and types[source].shape == shape:
            spec = _diagonal(ops, shape)  # an identity or Scale skip: one-to-one
        elif ops and isinstance(ops[0], _Embed) and _elementwise(ops[1:]):
            spec = _one_to_one(ops, types[source].shape, shape)  # a Concat's input into its channels, one to one
        elif (
            ops
            and isinstance(ops[0], (AvgPool2d, GlobalAvgPool))
            and (pooled := _pooling_list(ops, types[source].shape, shape))
        ):
            spec = pooled  # spikes through average pools only (a pooled shortcut): their synapses, listed
        elif delay > 0 and not rules.delayed_conv and any(isinstance(o, Conv2d) for o in ops):
            conv, _ = _synapse(ops, types[source].shape, shape, where, rules)
            taps = _taps_count(_kernel_of(conv), shape) if isinstance(conv, ConvSpec | _Patched) else 0
            key = (sources[i], delay)
            relayed = key in relays or _relay_is_smaller(taps, int(np.prod(populations[sources[i]].shape)), rules)
            if (taps > rules.max_dense_entries or (taps and relayed)) and not asked[i]:
                # its taps would pass the cap, or cost more than a relay: a relay population carries the spikes
                # late, the conv reads it
                if key not in relays:
                    populations.append(_relay(populations, sources[i], delay))
                    relays[key] = len(populations) - 1
                    _check_relays(populations, where, taps, rules)
                sources[i], delay, spec = relays[key], 0, conv
            else:
                spec = _delayed_taps(conv, shape, where, rules)  # a delayed conv: its taps
        elif (delay > 0 and not rules.delayed_conv) or (adds and not any(isinstance(o, (Conv2d, Dense)) for o in ops)):
            spec, _ = _dense(ops, types[source].shape, where, rules)  # a delayed Dense, or a reshaping skip
        else:
            spec, _ = _synapse(ops, types[source].shape, shape, where, rules)
        spec, _ = _fold_threshold(spec, np.zeros(shape, np.float32), _theta(op) / np.float32(_input_gain(op)), shape)
        names = [o.name for o in ops if not isinstance(o, _Embed)]
        if isinstance(spec, _Patched):  # the composed convolution, and its corrections as a further synapse
            specs.append((sources[i], spec.conv, delay, names, asked[i]))
            specs.append((sources[i], spec.fix, delay, names, asked[i]))
        else:
            specs.append((sources[i], spec, delay, names, asked[i]))
    bias = _neuron_bias(op, _at_rest(wiring, op.inputs[0], stops, types)[0], shape)
    (_, spec, delay, ops, lag), rest = specs[0], specs[1:]
    skips = [Skip(j, s, d, names, lag_) for j, s, d, names, lag_ in rest]
    return Population(
        op.name,
        "hidden",
        shape,
        spec,
        bias.astype(np.float32),
        list(dict.fromkeys(ops + [n for _, _, _, names, _ in rest for n in names] + adds)),
        **common,
        delay=delay,
        lag=lag,
        skips=skips,
        adds=adds,
        depth=depth,
        source=None if main == previous and not relays else main,  # relays come between it and ``previous``
    )


def _relay(populations: list[Population], source: int, delay: int) -> Population:
    """A population that repeats population ``source``'s spikes ``delay`` steps late: one IF neuron per neuron,
    reading it one to one with weight 1 (one threshold: each spike fires its relay, which keeps v = 0.5), its
    synapse delayed ``delay - 1`` steps and its own step the last. What a delayed convolution reads on a target
    whose convolutions take no delay, where listing the convolution's taps would take more cores than the relay or
    pass the cap: the relay costs a neuron and one synapse per source neuron, the convolution stays one
    shared-kernel synapse. Its ``value`` is the source's (the same activations), its ``ops`` none of the graph's."""
    src = populations[source]
    n = int(np.prod(src.shape))
    index = np.arange(n, dtype=np.int64)
    identity = SparseSpec(index, index.copy(), np.ones(n, np.float32), tuple(src.shape), tuple(src.shape))
    return Population(
        f"{src.name}_delay{delay}",
        "hidden",
        tuple(src.shape),
        identity,
        np.zeros(src.shape, np.float32),
        [],
        value=src.value,
        meta={"relay": {"source": src.name, "steps": delay}},
        delay=delay - 1,
        depth=src.depth + delay,
        source=source,
    )


def _relay_is_smaller(taps: int, neurons: int, rules: Rules) -> bool:
    """Whether ``taps`` listed synapses take more cores than a relay of ``neurons`` (``rules.core``)."""
    if rules.core is None:
        return False
    per_neurons, per_synapses = rules.core
    return -(-taps // per_synapses) > -(-neurons // per_neurons)


def _check_relays(populations: list[Population], where: str, taps: int, rules: Rules) -> None:
    """Refuse relays past ``rules.max_neurons``: the populations so far (the graph's neurons yet to come are not
    counted: the refusal comes early, not late) with their relays (:func:`_relay`)."""
    if rules.max_neurons is None:
        return
    relays = [p for p in populations if "relay" in p.meta]
    total = sum(int(np.prod(p.shape)) for p in populations if p.role != "readout")
    if total <= rules.max_neurons:
        return
    extra = sum(int(np.prod(p.shape)) for p in relays)
    why = (
        f"past the {rules.max_dense_entries:,} the {rules.target} target builds"
        if taps > rules.max_dense_entries
        else "more cores than a relay neuron per source neuron"
    )
    raise ResourceError(
        f"{where}: the target's convolutions take no delay and this branch is delayed; its taps listed would be "
        f"{taps:,} synapses, {why}, and the relay populations that repeat delayed spikes instead ({len(relays)} so "
        f"far, {extra:,} neurons, the latest {relays[-1].name!r}) take the network to {total:,} neurons, past the "
        f"{rules.max_neurons:,} the machine holds; give it more chips, or shorten the paths that make branches "
        "wait (a Concat of many layers of different depths needs a relay per input and delay)"
    )


def _joined_readout(
    wiring: GraphIndex,
    output: str,
    chains: list[tuple[str, list]],
    joins: list[str],
    stops: set[str],
    types: dict,
    populations: list,
    index: dict,
    rules: Rules,
) -> Population:
    """The readout population of an output computed from a Concat of several neuron layers (an Inception block's
    branches): one synapse per concatenated input, as a hidden population's Concat (its slice of the readout's
    weights), each delayed to arrive together; the bias once."""
    shape = tuple(types[output].shape)
    where = f"the output {output!r}"
    sources, specs = [], []
    for source, ops in chains:
        if source not in index:
            raise ConversionError(f"{where} reads the graph input {source!r} directly; only neurons feed the readout")
        kept, steps = _delayed(ops, where, rules)
        sources.append((index[source], kept, steps))
    depth = max(populations[j].depth for j, _, _ in sources) + 1
    previous = len(populations) - 1
    main = previous if any(j == previous for j, _, _ in sources) else max(j for j, _, _ in sources)
    sources.sort(key=lambda b: b[0] != main)  # the main synapse first
    for j, ops, steps in sources:
        branch = f"{where} (branch from {populations[j].name!r} through {', '.join(joins)})"
        delay = depth - populations[j].depth - 1 + steps
        spec: ConvSpec | DenseSpec | SparseSpec
        if ops and isinstance(ops[0], _Embed) and _elementwise(ops[1:]):
            spec = _one_to_one(ops, populations[j].shape, shape)  # read through a Scale: one to one
        else:
            spec, _ = _synapse(ops, populations[j].shape, shape, branch, rules)
            spec = _plain(spec, shape, branch, rules)
        if delay and not rules.delayed_conv:
            spec = _delayed_taps(spec, shape, branch, rules)
        names = [o.name for o in ops if not isinstance(o, _Embed)]
        specs.append((j, spec, delay, names, steps))
    bias = _at_rest(wiring, output, stops, types)[0]
    (_, spec, delay, names, lag), rest = specs[0], specs[1:]
    return Population(
        str(names[-1]) if names else output,
        "readout",
        shape,
        spec,
        np.asarray(bias, np.float32).reshape(shape),
        list(dict.fromkeys(names + [n for _, _, _, more, _ in rest for n in more] + joins)),
        value=output,
        depth=depth,
        delay=delay,
        lag=lag,
        skips=[Skip(j, s, d, more, lag_) for j, s, d, more, lag_ in rest],
        adds=joins,
        source=None if main == previous else main,
    )


def _neuron_bias(op: IF | LIF, rest: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The population's bias in thresholds per step: its synapses' input when no spike arrives (``rest``), through
    the op's gain, plus its drive; refused where that input would enter a synaptic current (a chip's bias adds to
    v)."""
    rest = np.asarray(rest, np.float32).reshape(shape)
    if isinstance(op, LIF) and op.syn_decay is not None and np.any(rest):
        raise ConversionError(
            f"LIF '{op.name}': the layer before it has a bias, a constant input to its synaptic current, which the "
            "chip cannot add there (its bias adds to v): retrain that layer without a bias, or without the synaptic "
            "stage"
        )
    return _fold_threshold(None, rest * np.float32(_input_gain(op)) + _drive(op, shape), _theta(op), shape)[1]


def _delayed(ops: list, where: str, rules: Rules) -> tuple[list, int]:
    """A chain of linear ops without its Delay ops, and the steps they delay it by (they commute with the linear
    ops: a synapse that arrives that many steps later)."""
    steps = sum(o.steps for o in ops if isinstance(o, Delay))
    if steps and not rules.delays:
        names = ", ".join(_where(o) for o in ops if isinstance(o, Delay))
        raise ConversionError(
            f"{names} on {where} delays it by {steps} step(s); the {rules.target} target's synapses all arrive in "
            "the step they are sent, so it cannot delay them: remove the Delay, or compile for a target with "
            "synaptic delays (loihi, spinnaker)"
        )
    return [o for o in ops if not isinstance(o, Delay)], steps


def _first_from_spikes(
    op: IF | LIF, ops: list[Op], in_shape: tuple[int, ...], shape: tuple[int, ...], common: dict, rules: Rules
) -> Population:
    """The first population when the input arrives as spikes: the linear ops from the input to ``op`` become its
    synapse, which reads the input's spikes (or event counts) on the chip, one step late (depth 1)."""
    where = f"{_where(op)} (reading the input's spikes)"
    if not ops:
        raise ConversionError(f"{where}: no Dense or Conv between the input and the neurons, so no synapse to send to")
    spec, rest = _synapse(ops, in_shape, shape, where, rules)
    spec = _plain(spec, shape, where, rules)
    bias = _neuron_bias(op, rest, shape)
    spec, _ = _fold_threshold(spec, np.zeros(shape, np.float32), _theta(op) / np.float32(_input_gain(op)), shape)
    return Population(op.name, "hidden", shape, spec, bias.astype(np.float32), [o.name for o in ops], **common, depth=1)


def leaky_problem(op: LIF) -> str | None:
    """Why the LIF op ``op`` does not map onto a population of neurons with one decay per layer (None when it
    does): a v_reset, several spikes a step, a reset one step late, no threshold (an integrator readout), or decays,
    gains or a threshold that vary along more than the channels."""

    def uniform(value: np.ndarray | None) -> bool:
        return value is None or bool(np.all(np.asarray(value) == np.asarray(value).reshape(-1)[0]))

    if op.threshold is None:
        return "a leaky integrator (no threshold): its v is the output, which the chip's readout does not read"
    if op.v_reset is not None:
        return "it resets to a v_reset other than 0"
    if op.multi or op.reset not in ("zero", "subtract"):
        return f"it {'sends several spikes a step' if op.multi else 'subtracts its threshold one step late'}"
    if not all(uniform(v) for v in (op.decay, op.syn_decay, op.gain, op.syn_gain)):
        return "its decays or gains differ between neurons (the chip has one per layer)"
    if channel_threshold(op.threshold) is None:
        return "its thresholds differ within a channel"
    return None


def _theta(op: IF | LIF) -> np.ndarray:
    """The op's threshold, a scalar or one per channel (leaky_problem refused any other)."""
    theta = None if op.threshold is None else channel_threshold(op.threshold)
    if theta is None:  # pragma: no cover - leaky_problem refused it
        raise ConversionError(f"{_where(op)}: its thresholds differ within a channel")
    return theta


def _scalar(value: np.ndarray | None, default: float) -> float:
    return default if value is None else float(np.asarray(value).reshape(-1)[0])


def _neuron_fields(op: IF | LIF) -> dict[str, Any]:
    """A population's fields from its neuron op (reset, initial potential, decays, comparison)."""
    if isinstance(op, IF):
        return {"reset": op.reset, "initial": op.initial}
    syn = None if op.syn_decay is None else _scalar(op.syn_decay, 1.0)
    return {"reset": op.reset, "initial": 0.0, "decay": _scalar(op.decay, 1.0), "syn_decay": syn, "strict": op.strict}


def _input_gain(op: IF | LIF) -> float:
    """What one unit of input current adds to v: the gains of a LIF op (through its synaptic stage), 1 for IF."""
    if isinstance(op, IF):
        return 1.0
    return _scalar(op.gain, 1.0) * _scalar(op.syn_gain, 1.0)


def lower(graph: Graph, rules: Rules, spike_input: bool = False) -> Lowered:
    """Map a converted graph onto populations and synapses; raise ConversionError naming the op that does not map
    on ``rules.target``. ``spike_input``: the input is spikes (event frames) sent to the chip, so the first
    neurons read it through a synapse on the chip (:func:`_first_from_spikes`) and the host graph passes the input
    through unchanged."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConversionError(
            f"the {rules.target} target takes one input and one output; the graph has {len(graph.inputs)} and "
            f"{len(graph.outputs)}"
        )
    types = graph.types()
    neurons: list[IF | LIF] = []
    for op in graph.ops:
        if isinstance(op, LIF) and rules.leaky:
            problem = leaky_problem(op)
            if problem is not None:
                raise ConversionError(f"LIF '{op.name}': {problem}; the {rules.target} target does not run it")
            neurons.append(op)
        elif isinstance(op, Delay):  # a synapse's delay (:func:`_delayed`)
            continue
        elif op.is_stateful and not isinstance(op, IF):
            refusal = leaky_refusal(op, rules.target) if isinstance(op, LIF) else None
            raise ConversionError(refusal or f"{_where(op)}: the {rules.target} target runs IF neurons only")
        elif isinstance(op, IF):
            neurons.append(op)
    if not neurons:
        raise ConversionError("the graph has no spiking neurons (no ReLU was converted); nothing runs on the chip")
    (input_name,) = graph.inputs
    stops = {input_name} | {op.output for op in neurons}
    wiring = graph.index()  # who defines each value, built once: the walks below ask for every op

    populations: list[Population] = []
    host: Graph | None = None  # set by the first neurons, which always exist
    previous = input_name
    index: dict[str, int] = {}  # IF output -> population
    for op in neurons:
        common: dict[str, Any] = {**_neuron_fields(op), "value": op.output, "meta": dict(op.meta)}
        if host is not None:
            populations.append(_hidden(wiring, op, stops, types, populations, index, common, rules))
            index[op.output] = len(populations) - 1
            previous = op.output
            continue
        source, ops = _segment(wiring, op.inputs[0], stops, rules)
        if source != previous:
            raise ConversionError(f"{_where(op)} reads {source!r}, not the layer before it; only chains map")
        if any(isinstance(o, Delay) for o in ops):
            names = ", ".join(_where(o) for o in ops if isinstance(o, Delay))
            raise ConversionError(
                f"{names} delays the input of the first neurons, {_where(op)}; the {rules.target} target starts "
                "the input at step 1: delay the input itself (shift its frames), or put the Delay after them"
            )
        shape = types[op.output].shape
        if spike_input:
            host = Graph(f"{graph.name}-host", dict(graph.inputs), [input_name], [])
            populations.append(_first_from_spikes(op, ops, types[input_name].shape, shape, common, rules))
            index[op.output] = 0
            previous = op.output
            continue
        # the input population: its current is computed on the host
        host = Graph(f"{graph.name}-host", dict(graph.inputs), [op.inputs[0]], [o.copy() for o in ops])
        if isinstance(op, LIF) and op.syn_decay is not None:
            raise ConversionError(
                f"LIF '{op.name}' reads the input through a synaptic current; the input population is driven by "
                "the host's current, which enters v directly: put the synaptic stage on a later layer"
            )
        theta = _theta(op) / np.float32(_input_gain(op))
        if not np.all(theta == 1):
            scale = 1 / (theta.reshape((-1,) + (1,) * (len(shape) - 1)) if theta.ndim else theta)
            current = graph.fresh_name(f"{op.inputs[0]}_per_threshold")
            host.ops.append(
                Scale(
                    name=f"{op.name}_threshold",
                    inputs=(op.inputs[0],),
                    output=current,
                    value=scale.astype(np.float32),
                )
            )
            host.outputs = [current]
        host.verify()
        bias = _fold_threshold(None, _drive(op, shape), _theta(op), shape)[1]
        populations.append(Population(op.name, "input", shape, None, bias, [o.name for o in ops], **common))
        index[op.output] = 0
        previous = op.output

    if host is None:  # pragma: no cover - there are neurons, and the first makes the host graph
        raise ConversionError("the graph has no spiking neurons")
    output = graph.outputs[0]
    chains, joins = _chains(wiring, output, stops, types, [], rules)
    if len(chains) > 1:  # a Concat of neuron layers read by the readout's Conv2d or Dense: a synapse per input
        populations.append(_joined_readout(wiring, output, chains, joins, stops, types, populations, index, rules))
        return Lowered(host, populations, Readout("membrane", len(populations) - 1, output, types[output].shape))
    source, ops = _segment(wiring, output, stops, rules)
    if source != previous:
        raise ConversionError(f"the output {output!r} is computed from {source!r}, not from the last neuron layer")
    out_shape = types[output].shape
    where = f"the output {output!r}"
    named = [o.name for o in ops]
    ops, steps = _delayed(ops, where, rules)
    synaptic = any(isinstance(o, (Conv2d, Dense)) for o in ops)
    pooled = None  # spikes through an average pool (SqueezeNet's end): a readout population of listed synapses
    if not synaptic and not steps and not all(isinstance(o, Scale) for o in ops):
        pooled = _pooling_list(ops, types[source].shape, out_shape)
    if synaptic or pooled is not None:
        if pooled is None:
            spec, bias = _synapse(ops, types[source].shape, out_shape, where, rules)
            spec = _plain(spec, out_shape, where, rules)
            if steps and not rules.delayed_conv:
                spec = _delayed_taps(spec, out_shape, where, rules)  # a delayed convolution: its taps
        else:
            spec, bias = pooled, _apply(ops, np.zeros((1, *types[source].shape), np.float32))[0]
        populations.append(
            Population(
                ops[-1].name,
                "readout",
                out_shape,
                spec,
                np.asarray(bias, np.float32).reshape(out_shape),
                named,
                value=output,
                depth=populations[-1].depth + 1,
                delay=steps,
                lag=steps,
            )
        )
        readout = Readout("membrane", len(populations) - 1, output, out_shape)
    else:
        if steps:
            raise ConversionError(
                f"{where} is read from the spikes of {source!r} through a Delay of {steps} step(s): a spike readout "
                "counts the neurons' own spikes; remove the Delay (it only shifts the count's window)"
            )
        if any(not isinstance(o, Scale) for o in ops):
            names = ", ".join(_where(o) for o in ops)
            raise ConversionError(
                f"{where} is read from spikes through {names}; the {rules.target} target reads the last neurons "
                "through a Conv or Dense (a readout population), through average pools then a flatten or Scale "
                "(a readout population of the pooled spikes), or through a Scale alone (their spike counts)"
            )
        ones = np.ones((1, *out_shape), np.float32)
        scale = _apply(ops, ones)[0]
        readout = Readout("spikes", len(populations) - 1, output, out_shape, scale.astype(np.float32))
    return Lowered(host, populations, readout)
