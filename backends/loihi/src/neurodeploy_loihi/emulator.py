"""A batched emulator of a chain of Loihi 2 layers, bit-exact to Lava's ``fixed_pt`` process models.

A :class:`Network` is a sequence of :class:`Layer`\\ s; a layer is a synapse (:class:`DenseSynapse` or
:class:`ConvSynapse`, integer weights) followed by a population of neurons (:class:`Neuron`: Lava's LIF, which
resets v to zero, or the subtractive-reset neuron of :mod:`neurodeploy_loihi.lava_processes`). The input is
binary spikes per step. Shapes follow Lava: a dense layer is (n,), a convolutional one (X, Y, C) = (W, H, C);
a dense layer after a convolutional one reads its spikes flattened in C order of (X, Y, C).

Each step t = 1, 2, ... runs the layers in order, as Lava's processes do within one time step:

1. the layer's synapse sends what it accumulated at step t - 1 (zero at t = 1);
2. the synapse accumulates the spikes its input emits at step t (the network input's frame t, or the layer
   below's spikes of step t), to be sent at t + 1;
3. the neurons update u and v with the message of (1), spike, and reset.

So every layer adds one step of delay: an input spike at step t reaches layer k's neurons at step t + k.
The arithmetic is :mod:`neurodeploy_loihi.fixed_point`.

A layer may have further synapses (:class:`Skip`: a residual branch from any earlier layer), and any synapse a
``delay`` of extra steps (Lava's ``DelayDense``, dense only). The neurons then receive the sum of what all their
synapses send, wrapped to int32 as Lava's ``PyInPortVectorDense.recv`` adds the int32 messages of its channels
(onto an int16 zero array, which gives int32), before the neuron's own arithmetic. Layer k's *depth* is its
longest path of synapses (and delays) from layer 0 (:attr:`Network.depths`).

With numba installed, sparse input walks its events instead of multiplying every weight (a convolution whose
input is sparse enough for its width, :func:`~neurodeploy_loihi._compiled.sparse_enough`; a sparse synapse list
always), and each
population's step is one fused pass (:mod:`neurodeploy_loihi._compiled`); the integers are the same either way.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product
from math import prod
from typing import Any

import numpy as np

from neurodeploy.ir.kernels import kernel_taps
from neurodeploy_loihi import _compiled
from neurodeploy_loihi import fixed_point as fp

NEURON_KINDS = ("lif", "subtractive")
"""``lif``: Lava's LIF (``PyLifModelBitAcc``), v = 0 after a spike. ``subtractive``: our SubtractiveLIF,
v -= vth << 6 after a spike; the rest of the arithmetic is the LIF's."""


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True, eq=False)
class DenseSynapse:
    """All-to-all synapses: ``weights`` (n_out, n_in), integers, as given to Lava's ``Dense(weights=...)``.

    Lava clips them to 8 bits and drops the low bits per ``sign_mode`` and ``num_weight_bits``
    (:func:`~neurodeploy_loihi.fixed_point.dense_weights`; ``sign_mode=None``: determined from the weights),
    and scales the accumulated sum by 2**weight_exp (an arithmetic shift)."""

    weights: np.ndarray
    weight_exp: int = 0
    num_weight_bits: int = fp.WEIGHT_BITS
    sign_mode: fp.SignMode | None = None
    effective_weights: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_weights(self, 2, "dense")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (int(self.weights.shape[1]),)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (int(self.weights.shape[0]),)

    @property
    def fan_out(self) -> np.ndarray:
        """(n_in,) int64: the synapses leaving each input neuron, the nonzero effective weights in its column (a
        weight Lava's clipping and truncation make zero is no synapse; a compiled artifact's weights are already
        on Lava's grid)."""
        return np.count_nonzero(self.effective_weights, axis=0).astype(np.int64)

    def accumulate(self, spikes: np.ndarray, graded: bool = False) -> np.ndarray:
        """(B, *any shape of n_in elements) spikes (binary, or integer payloads when ``graded``) -> (B, n_out)
        int64 (inputs flattened in C order)."""
        flat = spikes.reshape(len(spikes), -1)
        return fp.dense_accumulate(flat, self.effective_weights, int(self.weight_exp), graded=graded)


@dataclass(frozen=True, eq=False)
class SparseSynapse:
    """Synapses listed one by one, Lava's ``Sparse`` (``DelaySparse`` when delayed): ``weights[i]`` joins input
    neuron ``cols[i]`` to output neuron ``rows[i]`` (Lava flat order) of an (n_out, n_in) ``shape``. An identity or
    ``Scale`` residual skip (one-to-one: a weight per neuron, not an n x n Dense) and a delayed convolution (its
    taps). Clipping, truncation, sign mode and the shift by 2**weight_exp are a Dense's (lava
    ``proc/sparse/models.py: AbstractPySparseModelBitAcc`` mirrors the Dense model on a csr matrix)."""

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    shape: tuple[int, int]
    weight_exp: int = 0
    num_weight_bits: int = fp.WEIGHT_BITS
    sign_mode: fp.SignMode | None = None
    effective_weights: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_weights(self, 1, "sparse")
        rows, cols = (np.asarray(a, np.int64) for a in (self.rows, self.cols))
        n_out, n_in = (int(n) for n in self.shape)
        if rows.shape != self.weights.shape or cols.shape != self.weights.shape:
            raise ValueError("sparse synapse: rows, cols and weights must be 1-D arrays of one length")
        if rows.size and (rows.min() < 0 or rows.max() >= n_out or cols.min() < 0 or cols.max() >= n_in):
            raise ValueError(f"sparse synapse: an index lies outside its ({n_out}, {n_in}) shape")
        # stored narrow (a large network lists hundreds of millions of synapses: 12 bytes each instead of 32);
        # arithmetic on them widens first
        index = np.int32 if max(n_out, n_in) < 1 << 31 else np.int64
        object.__setattr__(self, "rows", rows.astype(index))
        object.__setattr__(self, "cols", cols.astype(index))
        object.__setattr__(self, "shape", (n_out, n_in))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.shape[1],)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.shape[0],)

    @property
    def fan_out(self) -> np.ndarray:
        """(n_in,) int64: the synapses leaving each input neuron (nonzero effective weights)."""
        live = (self.effective_weights != 0).astype(np.int64)
        return np.bincount(self.cols, weights=live, minlength=self.shape[1]).astype(np.int64)

    @cached_property
    def _by_column(self) -> tuple[np.ndarray, ...]:
        return _compiled.by_column(self.rows, self.cols, self.effective_weights, self.shape[1])

    @cached_property
    def _one_to_one(self) -> bool:
        """Whether no output neuron has two synapses (an identity or Scale skip): a gather, not a sum."""
        return len(np.unique(self.rows)) == len(self.rows)

    def accumulate(self, spikes: np.ndarray, graded: bool = False) -> np.ndarray:
        """(B, *any shape of n_in elements) -> (B, n_out) int64: each synapse's input times its weight, summed per
        output neuron, shifted, through the int32 port."""
        flat = spikes.reshape(len(spikes), -1)
        s = np.asarray(flat, np.int64) if graded else np.asarray(flat, bool)
        n = self.shape[0]
        if _compiled.kernels() is not None:  # walk the spikes (the sum below visits every synapse)
            out = _compiled.sparse(s, self._by_column, n)
        elif self._one_to_one:
            out = np.zeros((len(s), n), np.int64)
            out[:, self.rows] = s[:, self.cols] * self.effective_weights
        else:
            terms = s[:, self.cols] * self.effective_weights
            index = (self.rows[None, :] + n * np.arange(len(s))[:, None]).reshape(-1)
            # bincount sums in float64: exact, as every partial sum of 8-bit weights times 24-bit payloads is < 2**53
            out = np.rint(np.bincount(index, weights=terms.reshape(-1), minlength=len(s) * n)).astype(np.int64)
            out = out.reshape(len(s), n)
        return fp.wrap(fp.shift(out, int(self.weight_exp)), fp.PORT_BITS)


def narrow_type(*arrays: np.ndarray) -> type:
    """int16 where every integer of ``arrays`` fits it (Loihi's weights are 8-bit; 9 bits with a MIXED sign), else
    int64."""
    fits = all(
        not np.size(a) or (int(np.min(a)) >= -(1 << 15) and int(np.max(a)) < 1 << 15) for a in arrays
    )  # fmt: skip
    return np.int16 if fits else np.int64


def _check_weights(synapse: DenseSynapse | SparseSynapse, ndim: int, kind: str) -> None:
    """A Dense's or Sparse's weights, exponent and sign mode checked; Lava's effective weights set."""
    w = np.asarray(synapse.weights)
    if w.ndim != ndim or w.dtype.kind not in "iu":
        raise ValueError(f"{kind} weights must be a {ndim}-D integer array, got {w.dtype} {w.shape}")
    fp.check_range("num_weight_bits", synapse.num_weight_bits, 1, fp.WEIGHT_BITS, f"{kind} synapse: ")
    if not isinstance(synapse.weight_exp, int | np.integer):
        raise ValueError(f"{kind} synapse: weight_exp must be an int, got {synapse.weight_exp!r}")
    if synapse.sign_mode is not None:
        object.__setattr__(synapse, "sign_mode", fp.SignMode(synapse.sign_mode))
    # stored narrow (int16 where the given weights fit; the effective ones always do), computed a piece at a time:
    # VGG-19's fc6 read through its last pool is 411 million weights
    stored = w.astype(narrow_type(w))
    mode = fp.determine_sign_mode(stored) if synapse.sign_mode is None and stored.size else synapse.sign_mode
    effective = np.empty(stored.shape, np.int16)
    given, out = stored.reshape(-1), effective.reshape(-1)
    for lo in range(0, given.size, WEIGHT_PIECE):
        out[lo : lo + WEIGHT_PIECE] = fp.dense_weights(
            given[lo : lo + WEIGHT_PIECE], mode, int(synapse.num_weight_bits)
        )
    object.__setattr__(synapse, "weights", stored)
    object.__setattr__(synapse, "effective_weights", effective)


WEIGHT_PIECE = 1 << 22
"""Weights made effective at a time by :func:`_check_weights` (its int64 steps hold a few copies of a piece)."""


@dataclass(frozen=True, eq=False)
class ConvSynapse:
    """A 2-D convolution in Lava's layout: ``weights`` (C_out, kX, kY, C_in // groups), input (X, Y, C_in).

    Lava's ``Conv`` computes a true convolution (see :func:`~neurodeploy_loihi.fixed_point.conv_accumulate`;
    :func:`~neurodeploy_loihi.fixed_point.conv_weight_from_oihw` converts an ONNX kernel). Its ``fixed_pt``
    model ignores ``weight_exp`` and ``num_weight_bits`` and uses the weights as given, so this synapse has
    neither; weights are limited to the 9-bit signed range [-256, 255] of a MIXED Dense weight.

    ``pool`` (px, py) != (1, 1) makes it an average pooling folded into the convolution: the Lava Conv's kernel
    is :attr:`lava_weights`, ``weights`` repeated px times along X and py times along Y (each weight covers a
    px x py block of input neurons); stride and padding are the Lava Conv's and must be multiples of the pool,
    dilation 1. The emulator computes it as the sum-pooled spike counts (integers 0..px*py) convolved with
    ``weights`` at stride / pool, which gives the same integer sums (and so the same 24-bit wrap)."""

    weights: np.ndarray
    input_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pool: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.ndim != 4 or w.dtype.kind not in "iu":
            raise ValueError(f"conv weights must be a 4-D integer array (C_out, kX, kY, C_in/groups), got {w.shape}")
        fp.check_range("conv weights", w, -(1 << fp.WEIGHT_BITS), (1 << fp.WEIGHT_BITS) - 1)
        shape = tuple(int(v) for v in self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"conv input_shape must be (X, Y, C), got {self.input_shape!r}")
        stride, padding, dilation, pool = (
            _pair(getattr(self, n), n) for n in ("stride", "padding", "dilation", "pool")
        )
        if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(pool) < 1:
            raise ValueError(
                f"conv stride, dilation and pool must be >= 1, padding >= 0; got {stride}, {dilation}, {pool}, "
                f"{padding}"
            )
        if pool != (1, 1) and (dilation != (1, 1) or any(s % p or q % p for s, q, p in zip(stride, padding, pool))):
            raise ValueError(
                f"a pooled conv (pool {pool}) needs dilation 1 and stride and padding that are multiples of the "
                f"pool; got stride {stride}, padding {padding}, dilation {dilation}"
            )
        groups = int(self.groups)
        if groups < 1 or shape[2] % groups or w.shape[0] % groups or w.shape[3] != shape[2] // groups:
            raise ValueError(
                f"conv with {shape[2]} input and {w.shape[0]} output channels in {groups} group(s) needs weights "
                f"(C_out, kX, kY, {shape[2] // max(groups, 1)}) and channels divisible by groups; got {w.shape}"
            )
        kernel = (w.shape[1] * pool[0], w.shape[2] * pool[1])
        fp.conv_output_shape(shape, w.shape[0], kernel, stride, padding, dilation)  # raises if empty
        normalized = {"weights": w.astype(np.int64), "input_shape": shape, "stride": stride, "padding": padding}
        for name, value in {**normalized, "dilation": dilation, "groups": groups, "pool": pool}.items():
            object.__setattr__(self, name, value)  # frozen: store the normalized values

    @property
    def lava_weights(self) -> np.ndarray:
        """The kernel Lava's Conv gets: ``weights`` repeated over each pool block (the weights themselves when
        there is no pool)."""
        return np.repeat(np.repeat(self.weights, self.pool[0], axis=1), self.pool[1], axis=2)

    @property
    def kernel(self) -> tuple[int, int]:
        """(kX, kY) of :attr:`lava_weights`, without building it."""
        return self.weights.shape[1] * self.pool[0], self.weights.shape[2] * self.pool[1]

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return fp.conv_output_shape(
            self.input_shape, self.weights.shape[0], self.kernel, self.stride, self.padding, self.dilation
        )

    @property
    def fan_out(self) -> np.ndarray:
        """(X, Y, C_in) int64: the synapses leaving each input neuron. Per nonzero weight of :attr:`lava_weights`
        (tap (i, j), output channel o, input channel c), one synapse from every input neuron of channel c that some
        output window puts under that tap; a true convolution puts tap i of output x' on input x' * stride -
        padding + (kX - 1 - i) * dilation (padding is no neuron). So fan-out = sum over taps of (output channels
        of c's group with a nonzero weight there) x (whether the tap lands on the neuron's x) x (its y)."""
        w = self.lava_weights
        c_out, kx, ky, per_group = w.shape
        x_out, y_out, _ = self.output_shape
        nonzero = (w != 0).reshape(self.groups, c_out // self.groups, kx, ky, per_group).sum(axis=1)
        per_channel = nonzero.transpose(1, 2, 0, 3).reshape(kx, ky, self.groups * per_group)  # channel g * C/g + c
        # (kernel, size) 0/1: whether tap i lands on the input position for some output (tap i of a true
        # convolution is tap kernel - 1 - i of a cross-correlation)
        rows = kernel_taps(self.input_shape[0], x_out, kx, self.stride[0], self.padding[0], self.dilation[0])
        cols = kernel_taps(self.input_shape[1], y_out, ky, self.stride[1], self.padding[1], self.dilation[1])
        rows, cols = rows.sum(axis=0)[::-1], cols.sum(axis=0)[::-1]
        return np.einsum("ijc,ix,jy->xyc", per_channel.astype(np.int64), rows, cols)

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray, int]:
        table = _compiled.conv_table(self.weights, self.groups)
        return table, _compiled.channel_rows(table), _compiled.reach(table)

    def accumulate(self, spikes: np.ndarray, graded: bool = False) -> np.ndarray:
        """(B, X, Y, C_in) spikes (binary, or integer payloads when ``graded``) -> (B, X', Y', C_out) int64
        wrapped to 24 bits. Sparse input walks its events (:mod:`neurodeploy_loihi._compiled`, with numba), dense
        input is one matrix product: the same integer sums."""
        s = np.asarray(spikes, np.int64) if graded else np.asarray(spikes, bool)
        if _compiled.sparse_enough(s, self.weights.shape[0] // self.groups * self.pool[0] * self.pool[1]):
            table, rows, bound = self._table
            return _compiled.conv(
                s,
                table,
                rows,
                bound,
                self.output_shape,
                self.stride,
                self.padding,
                self.dilation,
                self.groups,
                self.pool,
            )
        stride, padding = self.stride, self.padding
        if self.pool != (1, 1):
            px, py = self.pool
            # sum pooling: the integer each repeated weight multiplies (spike counts fit int16)
            padded = fp.zero_pad(s, self.padding, np.int64 if graded else np.int16)  # zeros, as Lava
            nx, ny = padded.shape[1] // px * px, padded.shape[2] // py * py  # whole blocks (the rest is never read)
            s = padded[:, :nx:px, :ny:py].copy()
            for i, j in product(range(px), range(py)):
                if i or j:
                    s += padded[:, i:nx:px, j:ny:py]
            stride, padding, graded = (self.stride[0] // px, self.stride[1] // py), (0, 0), True
        return fp.conv_accumulate(s, self.weights, stride, padding, self.dilation, self.groups, graded=graded)


@dataclass(frozen=True, eq=False)
class Neuron:
    """A population's parameters, as Lava's LIF takes them.

    ``du``, ``dv``: 12-bit decays (u decays by (du + 1) / 4096, v by dv / 4096 per step); ``vth``: 17-bit
    threshold mantissa (spike when v > vth << 6); ``bias_mant`` (13-bit signed) and ``bias_exp`` (0..7): the
    bias bias_mant << bias_exp added to v every step, a scalar or one per neuron; ``v0``: the initial v
    (Lava's ``v=``), a scalar or one per neuron, within the 24-bit saturation range. u starts at 0."""

    du: int
    dv: int
    vth: int
    kind: str = "lif"
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    v0: int | np.ndarray = 0
    bias_start: int = 0
    """The bias is added from step bias_start + 1 on (SubtractiveLIF only; Lava's LIF adds it from step 1)."""

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise ValueError(f"neuron kind must be one of {NEURON_KINDS}, got {self.kind!r}")
        fp.check_range("bias_start", self.bias_start, 0, BIAS_START_MAX, "neuron: ")
        if self.bias_start and self.kind == "lif":
            raise ValueError("neuron: Lava's LIF has no bias_start (only the subtractive neuron delays its bias)")
        decay_max = (1 << fp.DECAY_BITS) - 1
        fp.check_range("du", self.du, 0, decay_max, "neuron: ")
        fp.check_range("dv", self.dv, 0, decay_max, "neuron: ")
        fp.check_range("vth", self.vth, 0, (1 << fp.VTH_BITS) - 1, "neuron: ")
        mant = 1 << (fp.BIAS_MANT_BITS - 1)
        fp.check_range("bias_mant", self.bias_mant, -mant, mant - 1, "neuron: ")
        fp.check_range("bias_exp", self.bias_exp, 0, (1 << fp.BIAS_EXP_BITS) - 1, "neuron: ")
        fp.check_range("v0", self.v0, -fp.STATE_LIMIT + 1, fp.STATE_LIMIT - 1, "neuron: ")

    @property
    def threshold(self) -> int:
        return fp.effective_threshold(self.vth)

    def check_shape(self, shape: tuple[int, ...], where: str) -> None:
        for name in ("bias_mant", "bias_exp", "v0"):
            value = np.asarray(getattr(self, name))
            if value.ndim and value.shape != shape:
                raise ValueError(f"{where}: {name} has shape {value.shape}; expected a scalar or {shape}")


BIAS_START_MAX = (1 << 16) - 1
"""SubtractiveLIF's ``bias_start`` is a 16-bit step count."""

MAX_DELAY = 63
"""Lava's ``PyDelayDenseModelBitAcc``: Loihi 2 has 6 bits of synaptic delay."""


@dataclass(frozen=True, eq=False)
class Skip:
    """A further synapse into a layer, reading the spikes of layer ``source`` (an earlier layer), ``delay`` extra
    steps late (a delayed synapse is a ``DenseSynapse``: Lava's ``DelayDense``; Lava's Conv has no delay)."""

    source: int
    synapse: DenseSynapse | ConvSynapse
    delay: int = 0
    lag: int = 0
    """Of ``delay``, the steps the network itself asks for (a Delay between two layers of the graph), which do not
    count in the layers' depths; the rest aligns the branches."""


def _check_delay(delay: int, synapse: object, where: str) -> None:
    if not isinstance(delay, int | np.integer) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"{where}: delay must be an int in 0..{MAX_DELAY}, got {delay!r}")
    if delay and not isinstance(synapse, DenseSynapse | SparseSynapse):
        raise ValueError(
            f"{where}: only a dense or sparse synapse can be delayed (Lava's DelayDense, DelaySparse; Conv has no "
            "delay)"
        )


@dataclass(frozen=True, eq=False)
class Layer:
    """A synapse and the neurons it feeds (one per element of the synapse's output).

    The first layer of a network may have no synapse (``synapse=None``): an *input population*, driven only by
    its bias (netx's ``Input`` block works this way), whose per-sample bias :meth:`Network.run` takes as
    ``input_bias``; ``shape`` then gives its shape."""

    synapse: DenseSynapse | ConvSynapse | None
    neuron: Neuron
    name: str = ""
    population_shape: tuple[int, ...] | None = None
    delay: int = 0
    skips: tuple[Skip, ...] = ()
    source: int | None = None
    """The layer the main synapse reads: the one before (None), or an earlier one (a parallel branch)."""
    lag: int = 0
    """Of the main synapse's ``delay``, the steps the network itself asks for (see :attr:`Skip.lag`)."""

    def inbound(self, k: int) -> list[tuple[int, DenseSynapse | ConvSynapse, int]]:
        """(source layer, synapse, delay) of every synapse into this layer (layer ``k``): the main one first."""
        return inbound(self, k)

    @property
    def shape(self) -> tuple[int, ...]:
        return layer_shape(self)


def inbound(layer: Any, k: int) -> list[tuple[int, Any, int]]:
    """(source layer, synapse, delay) of every synapse into ``layer``, layer ``k`` of its network, binary or graded:
    the main synapse first (from layer k - 1, or ``source``), then the ``skips``."""
    source = k - 1 if layer.source is None else int(layer.source)
    main = [] if layer.synapse is None else [(source, layer.synapse, int(layer.delay))]
    return main + [(int(s.source), s.synapse, int(s.delay)) for s in layer.skips]


def layer_shape(layer: Any) -> tuple[int, ...]:
    """A layer's (Lava) shape, binary or graded: its synapse's output, or for the input population (no synapse)
    its ``population_shape``; a flat synapse (a Dense or synapse list, e.g. a delayed convolution's taps) into a
    population of ``population_shape`` (X, Y, C) of as many neurons feeds it in Lava's flat order."""
    if layer.synapse is None:
        if layer.population_shape is None:
            raise ValueError(f"layer {layer.name!r} has no synapse, so it needs population_shape")
        return tuple(int(d) for d in layer.population_shape)
    out = tuple(layer.synapse.output_shape)
    wanted = layer.population_shape
    if wanted is not None and len(out) == 1 and len(wanted) > 1 and prod(wanted) == out[0]:
        return tuple(int(d) for d in wanted)
    return out


@dataclass
class Trace:
    """What :meth:`Network.run` records, one entry per layer: ``spikes`` (B, steps, *shape) bool; when asked,
    ``u`` and ``v`` (B, steps, *shape) int32 after step t's update and reset; and, per sample (B,), how many
    neuron-steps folded u (``u_folds``: the sum left the 24-bit range) and saturated v (``v_saturations``), and
    the largest |u| and |v| after any computed step (``u_max``, ``v_max``): the quantization report's overflow
    statistics. (Traces read back from Lava have no fold counts.)"""

    spikes: list[np.ndarray]
    u: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    u_folds: list[np.ndarray] = field(default_factory=list)
    v_saturations: list[np.ndarray] = field(default_factory=list)
    u_max: list[np.ndarray] = field(default_factory=list)
    v_max: list[np.ndarray] = field(default_factory=list)


def _subthreshold(
    neuron: Neuron, u: np.ndarray, v: np.ndarray, message: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of u and v (Lava's ``subthr_dynamics``): the new u, the new (saturated) v, and where u folded
    and v saturated. An integrate-and-fire neuron (du = 4095, dv = 0) whose message is below 2**17 takes a
    shortcut with the same result: u = message << 6 (the decayed u is 0, and nothing wraps or folds), and
    v + u + bias cannot leave int32 (|v|, |u| < 2**23, |bias| < 2**20), so only the saturation remains."""
    if neuron.du == IF_DU and neuron.dv == 0 and np.abs(message).max(initial=0) < SHORTCUT_LIMIT:
        u_new = message << fp.ACT_SHIFT  # < 2**23: no int32 wrap, no 24-bit fold
        voltage = v + u_new + bias
        v_new = fp.saturate_voltage(voltage)
        return u_new, v_new, np.zeros(u_new.shape, bool), v_new != voltage
    current = fp.current_sum(u, message, neuron.du)
    u_new = fp.fold_current(current)
    voltage = fp.voltage_sum(v, u_new, bias, neuron.dv)
    v_new = fp.saturate_voltage(voltage)
    return u_new, v_new, u_new != current, v_new != voltage


ZERO = np.int64(0)
IF_DU = (1 << fp.DECAY_BITS) - 1
"""du of an integrate-and-fire neuron: u keeps nothing from the previous step."""
SHORTCUT_LIMIT = 1 << (fp.STATE_BITS - 1 - fp.ACT_SHIFT)
"""2**17: a message below it, shifted by 6, stays below 2**23."""


@dataclass
class StepState:
    """One layer after one step, as :meth:`Network.run` shows it to an ``observe`` callback: the step t (from
    1), the layer index k, its spikes (B, *shape) bool, u and v (B, *shape) int64, and which neurons folded u
    and saturated v in this step. The arrays are the emulator's own: copy what you keep."""

    t: int
    k: int
    spikes: np.ndarray
    u: np.ndarray
    v: np.ndarray
    u_folded: np.ndarray
    v_saturated: np.ndarray


class Network:
    """A chain of layers; layer k reads the spikes of layer k - 1 (the network input for k = 0, unless the first
    layer is an input population without synapse) and, through its ``skips``, of any earlier layer."""

    def __init__(self, layers: list[Layer], input_bits: int = 0) -> None:
        if not layers:
            raise ValueError("a network needs at least one layer")
        self.layers = list(layers)
        if not 0 <= int(input_bits) <= fp.MAX_MESSAGE_BITS or (input_bits and layers[0].synapse is None):
            raise ValueError(
                f"input_bits must be 0 (binary input spikes) or 1..{fp.MAX_MESSAGE_BITS} (graded ones) for a first "
                f"layer with a synapse, got {input_bits}"
            )
        self.input_bits = int(input_bits)
        """0: the input spikes are binary; above 0: graded, integer payloads 0 .. 2**input_bits - 1 (event counts),
        which the first synapse multiplies by its weights (Lava's ``num_message_bits``)."""
        self.depths: list[int] = []
        """Per layer, the Loihi step (after the first) at which its first input arrives, and at which it computes
        the graph's step 1: the longest path of synapses and delays from the input (a chain: k, or k + 1 when the
        first layer reads input spikes through its synapse, which delivers them one step late), not counting the
        delays the network itself asks for (``lag``), which delay its input in the graph's time too."""
        for k, layer in enumerate(self.layers):
            where = f"layer {k}" + (f" ({layer.name})" if layer.name else "")
            if layer.synapse is None and k > 0:
                raise ValueError(f"{where}: only the first layer may be an input population without synapse")
            layer.neuron.check_shape(layer.shape, where)
            if k == 0:
                if layer.skips or layer.delay:
                    raise ValueError(f"{where}: the first layer reads the input only (no skips, no delay)")
                self.depths.append(0 if layer.synapse is None else 1)
                continue
            depth = 0
            lags = [int(layer.lag)] * (layer.synapse is not None) + [int(s.lag) for s in layer.skips]
            for (source, synapse, delay), lag in zip(layer.inbound(k), lags):
                if not isinstance(source, int | np.integer) or not 0 <= source < k:
                    raise ValueError(f"{where}: a skip reads layer {source}; it must be an earlier layer (0..{k - 1})")
                _check_delay(delay, synapse, where)
                below = self.layers[source].shape
                needed = synapse.input_shape
                if isinstance(synapse, DenseSynapse | SparseSynapse):
                    if prod(below) != needed[0]:
                        raise ValueError(f"{where}: dense synapse reads {needed[0]} inputs; layer {source} has {below}")
                elif tuple(below) != tuple(needed):
                    raise ValueError(f"{where}: conv synapse reads input {tuple(needed)}; layer {source} has {below}")
                if prod(synapse.output_shape) != prod(layer.shape):
                    raise ValueError(
                        f"{where}: a synapse of {synapse.output_shape} outputs feeds {layer.shape} neurons"
                    )
                if not isinstance(lag, int) or not 0 <= lag <= delay:
                    raise ValueError(f"{where}: a synapse's lag must be an int in 0..{delay} (its delay), got {lag!r}")
                depth = max(depth, self.depths[source] + 1 + delay - lag)
            self.depths.append(depth)

    def fan_out(self) -> list[np.ndarray]:
        """Per layer, the synapses leaving each of its neurons (int64, the layer's shape): the sum of the fan-out
        of every synapse that reads it, main synapses and skips alike. A layer no synapse reads (the last) has
        none; the first layer's own synapse reads the network input, no layer."""
        maps = [np.zeros(layer.shape, np.int64) for layer in self.layers]
        for k, layer in enumerate(self.layers[1:], start=1):
            for source, synapse, _ in layer.inbound(k):
                maps[source] += synapse.fan_out.reshape(maps[source].shape)
        return maps

    def windows(self, steps: int, needed: list[int] | None = None) -> list[tuple[int, int]]:
        """Per layer, the Loihi steps (first, last), 1-based and inclusive, that a run of ``steps`` steps must
        compute so that the last layer's state at every step, and every layer k's spikes up to step ``needed[k]``
        (default: none beyond what the last layer needs), are what computing every step gives.

        Before its first input can arrive a layer is *quiet* when nothing moves it: u is 0, no bias is added yet
        (``bias_start``, or a zero bias), v does not decay (dv = 0, or v0 = 0) and v0 is below the threshold; it
        then holds (0, v0) and sends nothing, so those steps are skipped (the first is kept from the layer's depth
        on, one step before its first input on the longest path). A layer that is not quiet runs from step 1.
        After the last step at which its spikes can still reach the last layer, or be counted, nothing it does is
        seen, so it stops there. (Kept per network and arguments: a network's layers do not change.)"""
        key = (int(steps), None if needed is None else tuple(int(n) for n in needed))
        cache = self.__dict__.setdefault("_window_cache", {})
        if key not in cache:
            cache[key] = tuple(self._windows(steps, needed))
        return list(cache[key])

    def _windows(self, steps: int, needed: list[int] | None) -> list[tuple[int, int]]:
        fires = []  # the first step at which each layer can spike
        first = []
        for k, layer in enumerate(self.layers):
            if k == 0:
                fires.append(1)
                first.append(1)
                continue
            arrival = min(fires[source] + 1 + delay for source, _, delay in layer.inbound(k))
            n = layer.neuron
            quiet = (
                (n.bias_start >= arrival - 1 or not np.any(np.asarray(n.bias_mant)))
                and (n.dv == 0 or not np.any(np.asarray(n.v0)))
                and bool(np.all(np.asarray(n.v0) <= n.threshold))
            )
            fires.append(arrival if quiet else 1)
            first.append(max(1, min(fires[k], self.depths[k])) if quiet else 1)
        last = [steps] * len(self.layers)
        wanted = [0] * len(self.layers) if needed is None else [min(int(n), steps) for n in needed]
        for k in range(len(self.layers) - 2, -1, -1):
            readers = [
                last[j] - 1 - delay
                for j in range(k + 1, len(self.layers))
                for source, _, delay in self.layers[j].inbound(j)
                if source == k
            ]
            last[k] = max([wanted[k], *readers])
        return list(zip(first, last))

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of the input spikes, or None when the first layer is an input population."""
        first = self.layers[0].synapse
        return None if first is None else tuple(first.input_shape)

    def run(
        self,
        spikes: np.ndarray | None = None,
        steps: int | None = None,
        *,
        record_state: bool = True,
        record_spikes: bool = True,
        input_bias: tuple[np.ndarray, np.ndarray] | None = None,
        observe: Callable[[StepState], None] | None = None,
        windows: list[tuple[int, int]] | None = None,
    ) -> Trace:
        """Run ``steps`` steps (default: the number of input frames) on input spikes (B, T, *input_shape), binary
        or, with ``input_bits``, integer payloads; frame t - 1 is sent at step t (its synapse delivers it at step
        t + 1), and steps beyond T get no input spikes.

        A network whose first layer is an input population takes no spikes but ``input_bias`` = (bias_mant,
        bias_exp), each (B, *shape) of that layer: per sample, the bias that replaces its neurons' own.
        ``record_spikes`` / ``record_state`` keep the spikes / u and v of every step in the trace (memory grows
        with the steps); ``observe`` sees every layer after every step instead (see :class:`StepState`).

        ``windows`` (from :meth:`windows`): per layer, the steps (first, last) to compute; a layer sends nothing
        outside them and ``observe`` does not see it there. Nothing is recorded with windows (the trace's spikes,
        u and v would hold steps that were not computed); the overflow counts cover the computed steps."""
        first = self.layers[0]
        if first.synapse is None:
            if spikes is not None or input_bias is None:
                raise ValueError("the first layer is an input population: pass input_bias, not spikes")
            mant, exp = (np.asarray(a) for a in input_bias)
            if mant.shape != exp.shape or mant.shape[1:] != first.shape:
                raise ValueError(
                    f"input_bias must be two arrays (batch, *{first.shape}), got {mant.shape}, {exp.shape}"
                )
            fp.check_range("input bias_mant", mant, -(1 << (fp.BIAS_MANT_BITS - 1)), (1 << (fp.BIAS_MANT_BITS - 1)) - 1)
            fp.check_range("input bias_exp", exp, 0, (1 << fp.BIAS_EXP_BITS) - 1)
            batch, frames = len(mant), 0
            if steps is None:
                raise ValueError("a network with an input population needs steps")
            x = None
        else:
            if input_bias is not None:
                raise ValueError("input_bias is for networks whose first layer is an input population")
            x = np.asarray(spikes)
            if x.ndim != 2 + len(self.input_shape) or tuple(x.shape[2:]) != self.input_shape:
                raise ValueError(f"input spikes must be (batch, steps, *{self.input_shape}), got {x.shape}")
            if self.input_bits:
                top = (1 << self.input_bits) - 1
                if x.size and (not np.array_equal(x, np.rint(x)) or x.min() < 0 or x.max() > top):
                    raise ValueError(f"graded input spikes must be whole numbers 0..{top} ({self.input_bits} bits)")
                x = x.astype(np.int64)
            else:
                if x.size and not np.isin(x, (0, 1)).all():
                    raise ValueError("input spikes must be binary (0 or 1)")
                x = x.astype(bool)
            batch, frames = x.shape[:2]
        steps = frames if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if windows is not None and (record_state or record_spikes or len(windows) != len(self.layers)):
            raise ValueError("windows need one (first, last) per layer and record_state = record_spikes = False")
        span = [(1, steps)] * len(self.layers) if windows is None else [(int(a), int(b)) for a, b in windows]
        shapes = [layer.shape for layer in self.layers]
        messages = [np.zeros((batch, *shape), np.int64) for shape in shapes]  # a_buff: what each synapse sends
        u = [np.zeros((batch, *shape), np.int64) for shape in shapes]
        v = [np.broadcast_to(np.asarray(layer.neuron.v0, np.int64), (batch, *layer.shape)) for layer in self.layers]
        bias = [fp.effective_bias(layer.neuron.bias_mant, layer.neuron.bias_exp) for layer in self.layers]
        if input_bias is not None:
            bias[0] = fp.effective_bias(mant, exp)
        # per layer, (4, B): u folds, v saturations, largest |u| and |v| (the fused step updates them in place)
        stats = [np.zeros((4, batch), np.int64) for _ in shapes]
        trace = Trace(
            spikes=[np.zeros((batch, steps, *shape), bool) for shape in shapes] if record_spikes else [],
            u_folds=[s[0] for s in stats],
            v_saturations=[s[1] for s in stats],
            u_max=[s[2] for s in stats],
            v_max=[s[3] for s in stats],
        )
        if record_state:
            trace.u = [np.zeros((batch, steps, *shape), np.int32) for shape in shapes]
            trace.v = [np.zeros((batch, steps, *shape), np.int32) for shape in shapes]
        no_input = None if x is None else np.zeros((batch, *self.input_shape), x.dtype)
        # a layer with skips, delays or a main synapse from an earlier layer: per synapse, a queue of delay + 1
        # messages (DelayDense's a_buff columns), fed from its source's spikes
        queues = {
            k: [[np.zeros((batch, *shapes[k]), np.int64)] * (d + 1) for _, _, d in layer.inbound(k)]
            for k, layer in enumerate(self.layers)
            if layer.skips or layer.delay or layer.source is not None
        }
        fired_now: list[np.ndarray | None] = [None] * len(self.layers)
        silent = [np.zeros((batch, *shape), bool) for shape in shapes]  # what a layer outside its window sends
        nothing = [np.zeros((batch, *shape), np.int64) for shape in shapes]  # ... and what its synapses then carry
        for t in range(steps):
            below = None if x is None else (x[:, t] if t < frames else no_input)
            running = [a <= t + 1 <= b for a, b in span]
            for k, layer in enumerate(self.layers):
                if k in queues:  # 1. every synapse sends the oldest of its queue; the neurons' InPort sums them
                    total = np.zeros((batch, *shapes[k]), np.int64)
                    for queue, (source, synapse, _) in zip(queues[k], layer.inbound(k)):
                        total += queue.pop(0)  # 2. and accumulates this step's spikes of its source
                        sent = synapse.accumulate(fired_now[source]) if running[source] else nothing[k]
                        queue.append(sent.reshape(batch, *shapes[k]))
                    message = fp.wrap(total, fp.PORT_BITS)  # int16 zeros + int32 + int32 ...: an int32 sum
                else:
                    message = messages[k]  # 1. sent now: accumulated at the previous step
                    if layer.synapse is not None:  # 2. accumulated now, for the next step
                        if k == 0:
                            graded = self.input_bits > 0
                            messages[k] = layer.synapse.accumulate(below, graded=graded).reshape(batch, *shapes[k])
                        elif running[k - 1]:
                            messages[k] = layer.synapse.accumulate(below).reshape(batch, *shapes[k])
                        else:
                            messages[k] = nothing[k]
                if not running[k]:
                    below = fired_now[k] = silent[k]
                    continue
                neuron = layer.neuron  # 3. the neurons
                b = bias[k] if t >= neuron.bias_start else ZERO  # Loihi step t + 1: bias from bias_start + 1
                if _compiled.kernels() is not None:  # the same arithmetic, one pass per neuron
                    u[k], v[k], fired, folded, saturated = _compiled.neurons(message, u[k], v[k], b, neuron, stats[k])
                else:
                    u[k], v_new, folded, saturated = _subthreshold(neuron, u[k], v[k], message, b)
                    fired = fp.spikes_of(v_new, neuron.threshold)
                    if neuron.kind == "lif":
                        v[k] = fp.reset_to_zero(v_new, fired)
                    else:
                        v[k] = fp.reset_by_subtraction(v_new, fired, neuron.threshold)
                    stats[k][:2] += [np.count_nonzero(f.reshape(batch, -1), axis=1) for f in (folded, saturated)]
                    for row, state in ((2, u[k]), (3, v[k])):
                        np.maximum(stats[k][row], np.abs(state).reshape(batch, -1).max(axis=1), out=stats[k][row])
                if record_spikes:
                    trace.spikes[k][:, t] = fired
                if record_state:
                    trace.u[k][:, t] = u[k]
                    trace.v[k][:, t] = v[k]
                if observe is not None:
                    observe(StepState(t + 1, k, fired, u[k], v[k], folded, saturated))
                below = fired_now[k] = fired
        return trace
