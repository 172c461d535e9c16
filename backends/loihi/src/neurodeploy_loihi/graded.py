"""Graded mode: integer spike payloads, so a quantized ANN (8-bit weights; 8-bit activations, or a QCFS
model's L levels) runs on Loihi 2 in one step per layer.

**The neuron.** Every population is a :class:`GradedNeuron`, the arithmetic of
:class:`neurodeploy_loihi.lava_processes.GradedReLU` (our Lava process; its ``fixed_pt`` model is the
reference). It has no memory from one step to the next; per step t and neuron:

```
u[t] = a_in[t]                                      the synapse's message (int32; Conv's wrapped to 24 bits)
v[t] = sat24(u[t] + (bias_mant << bias_exp))        saturates at +-(2**23 - 1), as the LIF's v
s[t] = clip(v[t] >> shift, 0, top)                  relu=True: arithmetic shift (floors), ReLU, saturate
s[t] = v[t]                                         relu=False (the readout): identity
```

with top = ``levels`` where set (a QCFS population's L, below), else 2**message_bits - 1.

s[t] is the graded spike's payload, sent every step (0 is a payload too). The synapses are Lava's ``Dense``
and ``Conv`` with ``num_message_bits = message_bits`` (> 0), which multiply the payloads by the weights
(``weights.dot(s_in)``; Conv convolves the integers); ``weight_exp`` is 0. Why not Lava's ``SigmaDelta``: it
sends the *change* of its ReLU activation, and its only rescaling, ``state_exp``, floors each change separately,
so the receiver's sum of floored changes differs from the floor of the sum (e.g. 3 >> 1 + 3 >> 1 = 2, 6 >> 1 =
3), and the bias-only activations sent while the pipeline fills are part of that sum; and it does not clip its
activation to the payload's bits. Without a per-layer power-of-two rescale the 8-bit weights would carry the
ratio of neighbouring activation scales and lose their precision. The memoryless neuron has neither problem:
with the input held, layer k's payload is exact from Loihi step k + 1 on.

**SynOps.** A graded spike is one synaptic event per synapse it reaches, whatever its payload: each nonzero
payload a population sends (over the steps its payloads are counted) costs its neuron's fan-out, the nonzero
8-bit weights of the next layer's synapse (:meth:`GradedNetwork.fan_out`); a zero payload carries nothing and
costs nothing, as it is no spike in ``spikes``. The input counts as in binary mode (:mod:`neurodeploy_loihi.program`).

**The quantized ANN it computes** (the lowered network in float units, :mod:`neurodeploy_loihi.lowering`):
activations a_k >= 0 of population k are held as integers q_k = a_k / s_k in [0, 2**bits - 1], with s_k from
calibration data (the largest activation, or a percentile, over the calibration inputs, divided by
2**bits - 1; without data the converter's threshold, which is the percentile it balanced on). Then

```
q_0 = clip(round(relu(host current) / s_0), 0, 2**bits - 1)     on the host; the input population's bias
z_k = W_k a_{k-1} + b_k  ->  q_k = clip(floor((Wq_k q_{k-1} + Bq_k) / 2**n_k), 0, 2**bits - 1)
Wq_k = 2 * round(W_k s_{k-1} / s_k 2**n_k / 2)   8-bit weights: even integers in [-256, 254] (Lava's MIXED grid)
Bq_k = round(b_k / s_k 2**n_k) + 2**(n_k - 1)    the half LSB turns the floor into rounding
```

with n_k the largest shift (0..23) that keeps max |Wq_k| within 254 (if even n_k = 0 does not, s_k grows until
it does). The readout is the identity with n = 0 and s_L = s_{L-1} max|W_L| / 254: output = v s_L.

**QCFS populations compute the trained staircase.** A population converted from a QCFS activation (L levels,
shift φ; its IF keeps L in its meta) was trained to output λ clip(floor(x L / λ + φ) / L, 0, 1); in lowered units
(threshold λ folded to 1) that is the level clip(floor(z L + φ), 0, L) / L. Such a population sends the level
itself: s_k = 1 / L, top = L (``levels``), and φ 2**n_k (rounded) in place of the half LSB, so

```
q_k = clip(floor((Wq_k q_{k-1} + Bq_k) / 2**n_k), 0, L)    Bq_k = round(b_k L 2**n_k) + round(φ 2**n_k)
```

which is the QCFS ANN up to the 8-bit weights (the input population: q_0 = clip(floor(current L + φ), 0, L) on
the host). Rounding a QCFS population's activation to 8 bits instead would compute a ReLU network the model was
not trained as (on the CIFAR-10 QCFS examples 40% and 28% against ~70%). ``GradedOptions(staircase=False)``
still does that.
:meth:`GradedProgram.reference` is this integer forward pass in plain numpy (graph layout, cross-correlation),
including the chip's 24-bit saturation and Conv's 24-bit wrap, so it equals the network exactly.

**Time.** Population 0 (the input) has no synapse; population k sees population k - 1's payload one step later.
So the readout holds the result from Loihi step delay + 1 on, with delay = the number of synapses; T counts after
the delay (T graph steps take T + delay Loihi steps) and every T >= 1 gives the same output.

**Few-spike populations** (``coding=fs``, :class:`FewSpikeCode`, :func:`fs_step`) sum v over a window of K steps
and send that sum's code in the next window, at most one payload a step. A staircase's code (ReLU, QCFS) sends the
digits c_j of the level: payloads K c_j, thresholds and resets K c_j 2**shift. A code fitted to another activation
(SiLU: thresholds T_j, resets h_j and values d_j of either sign, in lowered units) is carried over as it is: the
population's payload unit s_k puts its largest K |d_j| at 2**(bits - 1) - 1 (payloads round(K d_j / s_k), signed
message_bits), v's unit puts its synapse's largest weight at 254 (no shift), thresholds are ceil(K T_j / unit)
(exact for the integer window sum) and resets round(K h_j / unit); an input population with a fitted code gets
v = round(current / unit) from the host, its unit putting the fit's range within the 13-bit bias. A window that
began before the population's ``start`` (or before its input arrived) sends nothing, whatever its code. The
integer reference of a few-spike program (:meth:`GradedProgram.integer_forward`) is computed a window at a time.
Measured on ``examples/mnist_silu`` (``benchmarks/conversion_accuracy.py --only fs-silu --limit 1000``: the first
1000 MNIST test images, every whole window after the fill): 98.30 / 98.80 / 98.40% at K = 8 / 12 / 16, against
98.20 / 98.90 / 98.70% for the float few-spike SNN of the reference target and 98.90% for the ANN.
"""

# No `from __future__ import annotations`: Lava executes every module of this folder when it looks for process
# models, outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.
from collections.abc import Callable
from dataclasses import dataclass, field
from math import floor, log2, prod
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.artifact import open_files
from neurodeploy.errors import ArtifactError, DataError, IRVerificationError, NeurodeployError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import dumps_json, save_graph, write_npz
from neurodeploy.schema import Bool, Dict, Int, List, Number, OneOf, Optional, Str, validate
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import (
    MAX_DELAY,
    ConvSynapse,
    DenseSynapse,
    Skip,
    SparseSynapse,
    Trace,
    inbound,
    layer_shape,
)
from neurodeploy_loihi.floats import conv2d_nchw, fitted_code, qcfs_levels
from neurodeploy_loihi.floats import float_forward as _float_forward
from neurodeploy_loihi.lowering import ConvSpec, Lowered
from neurodeploy_loihi.program import (
    HOST_STEM,
    POSITIVE,
    READOUT_SCHEMA,
    check_layout,
    input_synapses,
    neuron_entries,
    read_description,
    synapse_entry,
    synapse_of,
    synapse_schema,
    weighted,
)
from neurodeploy_loihi.quantize import compact, lava_order, lava_shape, lava_synapse, to_graph, to_lava

MESSAGE_BITS = 8
"""Default payload width: activations are unsigned 8-bit integers (0..255)."""
MESSAGE_BITS_MAX = fp.MAX_MESSAGE_BITS
SHIFT_MAX = fp.STATE_BITS - 1
"""The neuron's right shift is 0..23: a 24-bit v shifted further is 0 or -1."""
WEIGHT_TOP = 254
"""8-bit weights on Lava's MIXED grid: even integers in [-256, 254] (``truncate_weights`` drops bit 0)."""
WEIGHT_BOTTOM = -256
BIAS_MANT_MAX = (1 << (fp.BIAS_MANT_BITS - 1)) - 1
BIAS_MANT_MIN = -(1 << (fp.BIAS_MANT_BITS - 1))
BIAS_EXP_MAX = (1 << fp.BIAS_EXP_BITS) - 1
V_LIMIT = fp.STATE_LIMIT - 1
"""v saturates at +-(2**23 - 1)."""

DESCRIPTION = "graded.json"
ARRAYS = "graded.npz"
FORMAT = "neurodeploy-loihi-graded"
FORMAT_VERSION = 1


POPULATION_KEYS = {
    "name": Str(),
    "role": Str(choices=("input", "hidden", "readout")),
    "shape": List(Int(1), min_len=1),
    "lava_shape": List(Int(1), min_len=1),
    "scale": POSITIVE,
}
"""What graded.json and sdnn.json say of every population."""

GRADED_SCHEMA = Dict(
    {
        "format": Str(),
        "version": Int(),
        "message_bits": Int(1, MESSAGE_BITS_MAX),
        "input": Dict(
            {"host_graph": HOST_STEM}, {"population": Int(0), "scale": POSITIVE, "offset": Number(), "unit": POSITIVE}
        ),
        "layers": List(
            Dict(
                {
                    **POPULATION_KEYS,
                    "neuron": Dict(
                        {
                            "relu": Bool(),
                            "shift": Int(),
                            "message_bits": Int(),
                            "bias_mant": OneOf(Int(), Dict({"array": Str()})),
                            "bias_exp": OneOf(Int(), Dict({"array": Str()})),
                        },
                        {
                            "levels": Int(0),
                            "fs": Dict(
                                {
                                    "thresholds": List(Int(), min_len=1),
                                    "resets": List(Int(), min_len=1),
                                    "payloads": List(Int(), min_len=1),
                                    "start": Int(0),
                                    "depth": Int(0),
                                }
                            ),
                        },
                    ),
                    "synapse": Optional(synapse_schema({"num_message_bits": Int()})),
                },
                {"skips": List(synapse_schema({"source": Int(0), "num_message_bits": Int()}))},
            ),
            min_len=1,
        ),
        "readout": READOUT_SCHEMA,
    },
    {"delay": Int(0), "mode": Str(), "fs": Dict({"steps": Int(1), "fill": Int(0)})},
)
"""graded.json: the type of every key :meth:`GradedProgram.load` reads."""


class GradedError(NeurodeployError):
    """A layer's values do not fit the graded neuron's fields; the message names the layer, field and limit."""


# -- the neuron ----------------------------------------------------------------------------------------------

FS_STATE_LIMIT = (1 << 31) - 1
"""A few-spike neuron's window sum and rest are int32: K <= 16 steps of a 24-bit v cannot leave that range."""


@dataclass(frozen=True, eq=False)
class FewSpikeCode:
    """The integer few-spike code of a graded population (see the module docstring): K = ``len(thresholds)``;
    per step j of a window the integer threshold, the reset subtracted when it fires and the payload it sends.
    ``start``: windows that begin before this (local) step send nothing; ``depth``: the population's distance in
    synapses from the input population, so its local step is the Loihi step minus ``depth``. A staircase's code
    (its digits) has thresholds of at least 1 and payloads of at least 0; a fitted one (SiLU) has values of
    either sign: a threshold at or below 0 fires on a rest at or below 0, and a negative payload is a negative
    graded spike."""

    thresholds: tuple[int, ...]
    resets: tuple[int, ...]
    payloads: tuple[int, ...]
    start: int = 0
    depth: int = 0

    def __post_init__(self) -> None:
        codes = (self.thresholds, self.resets, self.payloads)
        if len({len(c) for c in codes}) != 1 or not 1 <= len(self.thresholds) <= 16:
            raise ValueError("few-spike code: thresholds, resets and payloads must be K = 1..16 values each")
        fp.check_range("thresholds", np.asarray(self.thresholds), -FS_STATE_LIMIT, FS_STATE_LIMIT, "few-spike code: ")
        fp.check_range("resets", np.asarray(self.resets), -FS_STATE_LIMIT, FS_STATE_LIMIT, "few-spike code: ")
        fp.check_range("payloads", np.asarray(self.payloads), -V_LIMIT, V_LIMIT, "few-spike code: ")
        fp.check_range("start", self.start, 0, FS_STATE_LIMIT, "few-spike code: ")
        fp.check_range("depth", self.depth, 0, FS_STATE_LIMIT, "few-spike code: ")

    @property
    def steps(self) -> int:
        return len(self.thresholds)

    def ready(self) -> int:
        """The local step after which the population's payloads have settled (:meth:`FewSpike.ready`)."""
        return (-(-self.start // self.steps) + 1) * self.steps

    def live(self, local: int) -> bool:
        """Whether local step ``local`` (from 1) may send: its window's value was summed in a window that began at
        ``start`` or later (:meth:`FewSpike.live`; the first window, and every step before the input arrives,
        has nothing to send)."""
        t = local - 1
        return t - t % self.steps - self.steps >= self.start

    @property
    def signed(self) -> bool:
        """Whether a payload is negative: the message is then a two's complement integer."""
        return min(self.payloads) < 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": [int(x) for x in self.thresholds],
            "resets": [int(x) for x in self.resets],
            "payloads": [int(x) for x in self.payloads],
            "start": int(self.start),
            "depth": int(self.depth),
        }


def fs_step(code: FewSpikeCode, v: np.ndarray, window: np.ndarray, rest: np.ndarray, local: int) -> np.ndarray:
    """One step of a few-spike population at its local step ``local`` (from 1; earlier steps are the pipeline's
    fill before its input arrives): step j = (local - 1) mod K of the FS recursion on ``rest`` (in place), then
    v added to the window's sum ``window`` (in place); at a window's last step the sum becomes the next window's
    rest (0 for a window that began before ``start``). A step that is not :meth:`FewSpikeCode.live` fires
    nothing (a staircase's rest is 0 there, below its thresholds; a fitted code may fire at 0). Returns the
    payloads (int64)."""
    steps = code.steps
    j = (local - 1) % steps
    fire = (rest >= code.thresholds[j]) & code.live(local)
    rest -= fire * np.int64(code.resets[j])
    window += v
    if j == steps - 1:
        rest[...] = window if local - steps >= code.start else 0
        window[...] = 0
    return fire * np.int64(code.payloads[j])


@dataclass(frozen=True, eq=False)
class GradedNeuron:
    """A population of graded ReLU (or identity) neurons; the arithmetic is in the module docstring.

    ``bias_mant`` (13-bit signed) and ``bias_exp`` (0..7), scalars or one per neuron (Lava layout); ``shift``
    0..23; ``message_bits`` 1..24 (the payload's width, used when ``relu``)."""

    relu: bool = True
    shift: int = 0
    message_bits: int = MESSAGE_BITS
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    levels: int = 0
    fs: FewSpikeCode | None = None
    """A few-spike population's code: it sends ``fs_step``'s payloads instead of clip(v >> shift, 0, top)."""

    def __post_init__(self) -> None:
        if self.fs is not None:
            if not self.relu:
                raise ValueError("graded neuron: a few-spike population cannot be the identity (a readout)")
            bits = int(self.message_bits)
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.fs.signed else (0, (1 << bits) - 1)
            fp.check_range("few-spike payloads", np.asarray(self.fs.payloads), low, high)
        fp.check_range("shift", self.shift, 0, SHIFT_MAX, "graded neuron: ")
        fp.check_range("message_bits", self.message_bits, 1, MESSAGE_BITS_MAX, "graded neuron: ")
        fp.check_range("bias_mant", self.bias_mant, BIAS_MANT_MIN, BIAS_MANT_MAX, "graded neuron: ")
        fp.check_range("bias_exp", self.bias_exp, 0, BIAS_EXP_MAX, "graded neuron: ")
        fp.check_range("levels", self.levels, 0, (1 << int(self.message_bits)) - 1, "graded neuron: ")

    @property
    def top(self) -> int:
        """The largest payload: ``levels`` where set (a QCFS population's L), else 2**message_bits - 1."""
        return int(self.levels) or (1 << int(self.message_bits)) - 1


def graded_step(
    neuron: GradedNeuron, a_in: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step: (u, v, payload, where v saturated) from the message a_in and the effective bias."""
    u = np.asarray(a_in, np.int64)
    total = u + bias  # int64: an int32 message plus a bias below 2**20 cannot overflow
    v = np.clip(total, -V_LIMIT, V_LIMIT)  # saturate to 24 bits, as the LIF's v
    if neuron.relu:
        payload = np.clip(v >> int(neuron.shift), 0, neuron.top)  # arithmetic shift floors; ReLU; saturate
    else:
        payload = v
    return u, v, payload, v != total


# -- the network ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GradedLayer:
    """A synapse (None for the input population) and the graded neurons it feeds; ``population_shape`` is the
    input population's (Lava) shape."""

    synapse: DenseSynapse | ConvSynapse | SparseSynapse | None
    neuron: GradedNeuron
    name: str = ""
    population_shape: tuple[int, ...] | None = None
    delay: int = 0
    skips: tuple[Skip, ...] = ()
    source: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return layer_shape(self)

    def inbound(self, k: int) -> list[tuple[int, Any, int]]:
        """(source layer, synapse, delay) of every synapse into this layer (layer ``k``), as a binary Layer's."""
        return inbound(self, k)


@dataclass
class GradedState:
    """One layer after one step, for an ``observe`` callback: step t (from 1), layer k, payloads, u, v (B, *shape)
    int64, and where v saturated. The arrays are the emulator's own: copy what you keep."""

    t: int
    k: int
    payload: np.ndarray
    u: np.ndarray
    v: np.ndarray
    v_saturated: np.ndarray
    window: np.ndarray | None = None
    """A few-spike population's window sum and rest after the step (None for the others)."""
    rest: np.ndarray | None = None


class GradedNetwork:
    r"""Graded layers, each reading earlier ones (a chain, with residual / Concat branches as skips and parallel
    branches through ``source``, as binary :class:`~neurodeploy_loihi.emulator.Layer`\ s do). The first is an
    input population without synapse: its per-sample bias
    (``inputs`` of :meth:`run`, exponent 0) is its input; every later layer has a Dense or Conv synapse."""

    def __init__(self, layers: list[GradedLayer]) -> None:
        if not layers:
            raise ValueError("a graded network needs at least one layer")
        self.layers = list(layers)
        for k, layer in enumerate(self.layers):
            where = f"layer {k}" + (f" ({layer.name})" if layer.name else "")
            if (layer.synapse is None) != (k == 0):
                raise ValueError(f"{where}: the first layer, and only it, is an input population without synapse")
            for name in ("bias_mant", "bias_exp"):
                value = np.asarray(getattr(layer.neuron, name))
                if value.ndim and value.shape != layer.shape:
                    raise ValueError(f"{where}: {name} has shape {value.shape}; expected a scalar or {layer.shape}")
            for source, synapse, delay in layer.inbound(k):
                if not 0 <= source < k or not 0 <= delay <= MAX_DELAY:
                    raise ValueError(
                        f"{where}: a synapse reads layer {source} {delay} steps late; it must read an "
                        f"earlier layer (0..{k - 1}) within 0..{MAX_DELAY} steps"
                    )
                below, needed = self.layers[source].shape, synapse.input_shape
                if not isinstance(synapse, ConvSynapse) and prod(below) != needed[0]:
                    raise ValueError(f"{where}: synapse reads {needed[0]} inputs; layer {source} has {below}")
                if isinstance(synapse, ConvSynapse) and tuple(below) != tuple(needed):
                    raise ValueError(f"{where}: conv synapse reads input {tuple(needed)}; layer {source} has {below}")
        if any(layer.neuron.fs is not None for layer in self.layers):
            for k, layer in enumerate(self.layers):
                where = f"layer {k}" + (f" ({layer.name})" if layer.name else "")
                if layer.skips or layer.delay or layer.source is not None:
                    raise ValueError(
                        f"{where}: graded few-spike neurons run in a chain of populations (no residual, Concat, "
                        "parallel or delayed synapses), whose windows follow one synapse per step"
                    )
                if layer.neuron.fs is not None and layer.neuron.fs.depth != k:
                    raise ValueError(f"{where}: its few-spike depth is {layer.neuron.fs.depth}, not {k}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layers[0].shape

    def fan_out(self) -> list[np.ndarray]:
        """Per layer, the synapses leaving each of its neurons (int64, the layer's shape): the fan-out of the next
        layer's synapse; the last layer has none."""
        maps = [np.zeros(layer.shape, np.int64) for layer in self.layers]
        for k, layer in enumerate(self.layers[1:], start=1):
            for source, synapse, _ in layer.inbound(k):
                maps[source] += synapse.fan_out.reshape(maps[source].shape)
        return maps

    def run(
        self,
        inputs: np.ndarray,
        steps: int,
        *,
        record: bool = True,
        observe: Callable[[GradedState], None] | None = None,
        replay: bool = True,
    ) -> Trace:
        """Run ``steps`` steps with the input population's bias set to ``inputs`` (B, *input_shape), integers that
        fit the 13-bit bias mantissa. ``record`` keeps every layer's payloads (in ``Trace.spikes``, int32), u and v
        at every step; ``observe`` sees each layer after each step instead. ``replay`` repeats the last step once
        the network has settled (below) rather than computing it again: the same values, checked by a test."""
        x = np.asarray(inputs)
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"inputs must be (batch, *{self.input_shape}), got {x.shape}")
        fp.check_range("input bias_mant", x, BIAS_MANT_MIN, BIAS_MANT_MAX)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        batch = len(x)
        shapes = [layer.shape for layer in self.layers]
        messages = [np.zeros((batch, *shape), np.int64) for shape in shapes]
        bias = [fp.effective_bias(layer.neuron.bias_mant, layer.neuron.bias_exp) for layer in self.layers]
        bias[0] = x.astype(np.int64)
        codes = [layer.neuron.fs for layer in self.layers]
        windows = {k: np.zeros((batch, *shapes[k]), np.int64) for k, c in enumerate(codes) if c is not None}
        rests = {k: np.zeros((batch, *shapes[k]), np.int64) for k in windows}
        replay = replay and not windows  # few-spike neurons keep state: every step is computed
        trace = Trace(spikes=[], v_saturations=[np.zeros(batch, np.int64) for _ in shapes])
        if record:
            trace.spikes = [np.zeros((batch, steps, *shape), np.int32) for shape in shapes]
            trace.u = [np.zeros((batch, steps, *shape), np.int32) for shape in shapes]
            trace.v = [np.zeros((batch, steps, *shape), np.int32) for shape in shapes]
        below = None
        sent = [np.zeros((batch, *shape), np.int64) for shape in shapes]  # each layer's payloads this step
        queues = {  # branches, delays or an earlier source: per synapse, delay + 1 messages (Delay* a_buff)
            k: [[np.zeros((batch, *shapes[k]), np.int64)] * (d + 1) for _, _, d in layer.inbound(k)]
            for k, layer in enumerate(self.layers)
            if layer.skips or layer.delay or layer.source is not None
        }
        # Graded neurons keep no state (v = message + bias) and the input is held, so once every population has
        # sent the same payloads for longer than the longest delay, every queue holds one message repeated and
        # each later step repeats the last one exactly: it is replayed, not recomputed.
        settle = 1 + max((d for k, layer in enumerate(self.layers) for _, _, d in layer.inbound(k)), default=0)
        unchanged, last = 0, [None] * len(self.layers)

        def emit(
            t: int,
            k: int,
            u: np.ndarray,
            v: np.ndarray,
            payload: np.ndarray,
            saturated: np.ndarray,
            window: np.ndarray | None = None,
            rest: np.ndarray | None = None,
        ) -> None:
            """Layer k's step t, computed or replayed, into the trace and to the observer."""
            trace.v_saturations[k] += np.count_nonzero(saturated.reshape(batch, -1), axis=1)
            if record:
                trace.spikes[k][:, t] = payload
                trace.u[k][:, t] = u
                trace.v[k][:, t] = v
            if observe is not None:
                observe(GradedState(t + 1, k, payload, u, v, saturated, window, rest))

        for t in range(steps):
            if replay and unchanged > settle:
                for k, state in enumerate(last):
                    emit(t, k, *state)
                continue
            repeated = t > 0
            for k, layer in enumerate(self.layers):
                if k in queues:
                    total = np.zeros((batch, *shapes[k]), np.int64)
                    for queue, (source, synapse, _) in zip(queues[k], layer.inbound(k)):
                        total += queue.pop(0)
                        queue.append(synapse.accumulate(sent[source], graded=True).reshape(batch, *shapes[k]))
                    message = fp.wrap(total, fp.PORT_BITS)  # the InPort's int32 sum
                else:
                    message = messages[k]  # sent now: accumulated at the previous step (Lava's a_buff)
                    if layer.synapse is not None:  # accumulated now from this step's payloads, sent at t + 1
                        messages[k] = layer.synapse.accumulate(below, graded=True).reshape(batch, *shapes[k])
                u, v, payload, saturated = graded_step(layer.neuron, message, bias[k])
                code = codes[k]
                if code is not None:
                    payload = fs_step(code, v, windows[k], rests[k], t + 1 - code.depth)
                    emit(t, k, u, v, payload, saturated, windows[k], rests[k])
                    below = sent[k] = payload
                    continue
                repeated = repeated and np.array_equal(payload, last[k][2]) and np.array_equal(v, last[k][1])
                last[k] = (u, v, payload, saturated)
                emit(t, k, u, v, payload, saturated)
                below = sent[k] = payload
            unchanged = unchanged + 1 if repeated else 0
        return trace


# -- the integer forward pass in the graph's layout ----------------------------------------------------------


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return ((x + half) % (2 * half)) - half  # two's complement


# -- the program an artifact holds ---------------------------------------------------------------------------


@dataclass
class GradedRun:
    """Outputs after ``steps`` and at checkpoints, payloads sent (nonzero messages) and SynOps per population (and
    the input) and sample, and overflow statistics (v saturations per population)."""

    outputs: np.ndarray
    checkpoints: dict[int, np.ndarray]
    spikes: dict[str, np.ndarray]
    checkpoint_spikes: dict[int, dict[str, np.ndarray]]
    neurons: dict[str, int]
    v_saturations: np.ndarray
    synops: dict[str, np.ndarray]
    checkpoint_synops: dict[int, dict[str, np.ndarray]]


def wanted_steps(steps: int, checkpoints: tuple[int, ...]) -> list[int]:
    """The graph steps a graded run reads its outputs at: the checkpoints within 1..steps, and steps."""
    if steps < 1:
        raise DataError(f"steps must be >= 1, got {steps}")
    return sorted({c for c in checkpoints if 1 <= c <= steps} | {steps})


def joined_run(program: Any, counted: dict[str, Any], checkpoints: tuple[int, ...]) -> GradedRun:
    """A GradedRun from what a graded program's run counted (``outputs``, ``marks``, ``synop_marks`` per step read,
    ``sent`` keyed by population index, ``v_saturations``): payloads and SynOps per checkpoint."""
    outputs, marks, synop_marks = counted["outputs"], counted["marks"], counted["synop_marks"]
    steps = max(outputs)
    kept = [c for c in sorted(outputs) if c in checkpoints]
    return GradedRun(
        outputs=outputs[steps],
        checkpoints={c: outputs[c] for c in kept},
        spikes={program.names[k]: n for k, n in counted["sent"].items()},
        checkpoint_spikes={c: marks[c] for c in kept},
        neurons={program.names[k]: int(np.prod(program.shapes[k])) for k in counted["sent"]},
        v_saturations=counted["v_saturations"],
        synops=synop_marks[steps],
        checkpoint_synops={c: synop_marks[c] for c in kept},
    )


@dataclass
class GradedProgram:
    """The graded network of a compiled model: the host graph (input -> the input population's float current),
    the integer network in Lava's layout, the populations' names, roles and graph shapes, and each population's
    activation scale (float units per payload LSB; the readout's per unit of v)."""

    host: Graph
    network: GradedNetwork
    names: list[str]
    roles: list[str]
    shapes: list[tuple[int, ...]]
    scales: list[float]
    readout: dict[str, Any]
    readout_scale: np.ndarray | None = None
    message_bits: int = MESSAGE_BITS
    report: dict[str, Any] = field(default_factory=dict)
    input_offset: float | None = None
    """None: the input payload is current / s_0 rounded half to even; a QCFS input population's φ: floor(current /
    s_0 + φ), the staircase it was trained with."""
    fs: dict[str, int] | None = None
    """A few-spike program's ``steps`` K and pipeline ``fill`` (graph steps before the readout's input settles,
    :func:`neurodeploy.simulate.readout_delay`); None for the one-step-per-layer program."""
    input_unit: float | None = None
    """A fitted few-spike input population's unit of v (float units of the host's current): its payload is
    round(current / unit) within the 13-bit bias, of either sign, which its code compares as any population's v."""

    @property
    def delay(self) -> int:
        """Loihi steps from the input population to the readout population: one per synapse."""
        return int(self.readout["population"])

    # -- running ----------------------------------------------------------------------------------------------
    def input_payload(self, x: np.ndarray) -> np.ndarray:
        """q_0 (B, *graph shape of population 0): the host's current / s_0, rounded half to even (or floor(current /
        s_0 + φ) with an ``input_offset`` φ), in [0, top]; with an ``input_unit``, current / unit rounded half to
        even within +-(2**12 - 1)."""
        current = interpret.run(self.host, np.asarray(x, np.float32))[self.host.outputs[0]]
        if self.input_unit is not None:
            ratio = np.rint(current.astype(np.float64) / self.input_unit)
            return np.clip(ratio, -BIAS_MANT_MAX, BIAS_MANT_MAX).astype(np.int64)
        ratio = current.astype(np.float64) / self.scales[0]
        level = np.rint(ratio) if self.input_offset is None else np.floor(ratio + self.input_offset)
        return np.clip(level, 0, self.network.layers[0].neuron.top).astype(np.int64)

    def run(self, x: np.ndarray, steps: int, *, checkpoints: tuple[int, ...] = ()) -> GradedRun:
        """Emulate ``steps`` graph steps (``steps + delay`` Loihi steps) on analog inputs x (B, *input shape)."""
        wanted = wanted_steps(steps, checkpoints)
        q0 = self.input_payload(x)
        batch, delay = len(q0), self.delay
        fill = int(self.fs["fill"]) if self.fs else 0  # few-spike windows: the fill runs first, as the reference's
        sums: np.ndarray | None = None
        top = self.readout["population"]
        spiking = [k for k, role in enumerate(self.roles) if role != "readout"]
        sent = {k: np.zeros(batch, np.int64) for k in spiking}
        fan_out = self.network.fan_out()
        synops = {k: np.zeros(batch, np.int64) for k in spiking}
        marks: dict[int, dict[str, np.ndarray]] = {c: {} for c in wanted}
        (input_name,) = self.host.inputs
        per_step = input_synapses(self.host)  # the dense input: every element, every step
        synop_marks = {c: {input_name: np.full(batch, (fill + c) * per_step, np.int64)} for c in wanted}
        values: dict[int, np.ndarray] = {}

        def record(state: GradedState) -> None:
            nonlocal sums
            local = state.t - state.k - fill  # the graph step this population computes now (after the fill)
            if not 1 - fill <= local <= steps:
                return
            if state.k in sent:
                messages = state.payload != 0
                sent[state.k] += np.count_nonzero(messages.reshape(batch, -1), axis=1)
                synops[state.k] += weighted(messages, fan_out[state.k])
                if local in marks:
                    marks[local][self.names[state.k]] = sent[state.k].copy()
                    synop_marks[local][self.names[state.k]] = synops[state.k].copy()
            readout = state.payload if self.readout["kind"] == "spikes" else state.v
            if state.k == top and self.fs and local >= 1:  # the mean over the steps after the fill, as the reference
                sums = readout.astype(np.int64) if sums is None else sums + readout
                if local in marks:
                    values[local] = sums / local
            elif state.k == top and local in marks:
                values[local] = readout.copy()

        total = fill + steps + delay
        trace = self.network.run(to_lava(q0, self.shapes[0]), total, record=False, observe=record)
        outputs = {c: self._output(values[c]) for c in wanted}
        counted = {"outputs": outputs, "sent": sent, "marks": marks, "synop_marks": synop_marks}
        return joined_run(self, {**counted, "v_saturations": np.stack(trace.v_saturations, axis=1)}, checkpoints)

    def _output(self, state: np.ndarray) -> np.ndarray:
        k = self.readout["population"]
        values = to_graph(state, self.shapes[k]).astype(np.float64) * self.scales[k]
        if self.readout["kind"] == "spikes":
            values = values * self.readout_scale
        return values.reshape(len(values), *self.readout["shape"]).astype(np.float32)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The 8-bit quantized ANN's output on x: :meth:`integer_forward`'s readout in float units."""
        k = self.readout["population"]
        return self._output(to_lava(self.integer_forward(x)[k], self.shapes[k]))

    def integer_forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The quantized ANN as a plain integer forward pass in the graph's layout (ONNX cross-correlation,
        (C, H, W) activations), independent of the emulator's Lava layout: per population, its activations q_k
        (the readout's: v). Conv sums wrap to 24 bits and Dense sums to 32, v saturates to 24 bits, as on the chip.

        A few-spike program is computed a window at a time: a population's window sum of v is its synapse applied
        to the sum of the payloads its source sent in one window, plus K biases (K v for the input population);
        its code, run on that sum, gives the sum of its own payloads; the readout's value is its window sum / K.
        That is the program with its input held, read over whole windows, except where v saturates in a single
        step (the run counts those)."""
        q = self.input_payload(x)
        if self.fs:
            return self._window_forward(q)
        out = [q]
        for k in range(1, len(self.network.layers)):
            layer = self.network.layers[k]
            acc = self._inbound_sum(k, out)
            v = np.clip(acc + self._graph_bias(k), -V_LIMIT, V_LIMIT)
            q = np.clip(v >> int(layer.neuron.shift), 0, layer.neuron.top) if layer.neuron.relu else v
            out.append(q)
        return out

    def _inbound_sum(self, k: int, out: list[np.ndarray]) -> np.ndarray:
        """Population k's synapses applied to the activations ``out`` (graph layout), summed (int64)."""
        batch = len(out[0])
        parts = [
            _integer_synapse(synapse, out[source], self.shapes[source], self.shapes[k]).reshape(batch, -1)
            for source, synapse, _ in self.network.layers[k].inbound(k)
        ]
        acc = parts[0] if len(parts) == 1 else _wrap(sum(parts), fp.PORT_BITS)  # the InPort's int32 sum
        return acc.astype(np.int64).reshape(batch, *self.shapes[k])

    def _graph_bias(self, k: int) -> np.ndarray:
        layer = self.network.layers[k]
        bias = fp.effective_bias(layer.neuron.bias_mant, layer.neuron.bias_exp)
        return to_graph(np.broadcast_to(bias, (1, *layer.shape)), self.shapes[k])

    def _window_forward(self, q0: np.ndarray) -> list[np.ndarray]:
        """:meth:`integer_forward` of a few-spike program: per population the sum of its payloads over a window
        (the readout's: its mean v over a window, float64)."""
        steps = int(self.fs["steps"])  # type: ignore[index]
        out: list[np.ndarray] = []
        for k, layer in enumerate(self.network.layers):
            code = layer.neuron.fs
            if k == 0:
                total = steps * q0
            else:
                total = self._inbound_sum(k, out) + steps * self._graph_bias(k)
            if code is None and layer.neuron.relu:
                raise ValueError(
                    f"layer {self.names[k]!r}: a few-spike program's hidden populations are few-spike ones; a graded "
                    "ReLU population has no window form"
                )
            if code is None:
                out.append(total / steps)
                continue
            rest, sent = total.astype(np.int64), np.zeros(total.shape, np.int64)
            for j in range(steps):
                fire = rest >= code.thresholds[j]
                rest = rest - fire * np.int64(code.resets[j])
                sent += fire * np.int64(code.payloads[j])
            out.append(sent)
        return out

    # -- files ------------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> list[str]:
        """Write graded.json and graded.npz into ``folder`` (the host graph is the binary program's host.json)."""
        arrays: dict[str, np.ndarray] = {}
        layers = []
        for k, layer in enumerate(self.network.layers):
            n = layer.neuron
            entry: dict[str, Any] = {
                "name": self.names[k],
                "role": self.roles[k],
                "shape": list(self.shapes[k]),
                "lava_shape": list(layer.shape),
                "scale": self.scales[k],
                "neuron": {"relu": bool(n.relu), "shift": int(n.shift), "message_bits": int(n.message_bits)},
            }
            if n.levels:
                entry["neuron"]["levels"] = int(n.levels)
            if n.fs is not None:
                entry["neuron"]["fs"] = n.fs.to_dict()
            entry["neuron"].update(neuron_entries(n, ("bias_mant", "bias_exp"), k, arrays))
            entry["synapse"] = synapse_entry(layer.synapse, f"{k}/weights", arrays)
            if entry["synapse"] is not None:
                entry["synapse"]["num_message_bits"] = int(self.message_bits)
                if layer.delay:
                    entry["synapse"]["delay"] = int(layer.delay)
                if layer.source is not None:  # a parallel branch: the main synapse reads an earlier population
                    entry["synapse"]["source"] = int(layer.source)
            if layer.skips:  # a residual Add's or a Concat's further synapses
                entry["skips"] = [
                    {"source": int(skip.source), "delay": int(skip.delay), "num_message_bits": int(self.message_bits)}
                    | synapse_entry(skip.synapse, f"{k}/skip{i}/weights", arrays)
                    for i, skip in enumerate(layer.skips)
                ]
            layers.append(entry)
        readout = dict(self.readout)
        if self.readout_scale is not None:
            arrays["readout/scale"] = np.asarray(self.readout_scale, np.float32)
            readout["scale"] = {"array": "readout/scale"}
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "mode": "graded",
            "neuron": "GradedReLU (neurodeploy_loihi.lava_processes): v = sat24(a_in + bias); "
            "payload = clip(v >> shift, 0, top), or v for the readout; top = levels (a QCFS population's L) where "
            "given, else 2**message_bits - 1",
            "layout": "populations in Lava order: (X, Y, C) = (W, H, C) for convolutional ones, flat otherwise",
            "delay": self.delay,
            "message_bits": self.message_bits,
            "input": {"host_graph": "host", "population": 0, "scale": self.scales[0]}
            | ({} if self.input_offset is None else {"offset": self.input_offset})
            | ({} if self.input_unit is None else {"unit": self.input_unit}),
            "layers": layers,
            "readout": readout,
        }
        if self.fs:
            doc["fs"] = {"steps": int(self.fs["steps"]), "fill": int(self.fs["fill"])}
            doc["neuron"] += (
                "; few-spike populations (an fs entry) send payloads[j] where their window's rest reaches "
                "thresholds[j] (graded.fs_step)"
            )
        (folder / DESCRIPTION).write_bytes(dumps_json(doc))
        write_npz(folder / ARRAYS, arrays)
        if not (folder / "host.json").exists():
            save_graph(self.host, folder, "host")
            return [DESCRIPTION, ARRAYS, "host.json", "host.npz"]
        return [DESCRIPTION, ARRAYS]

    @classmethod
    def load(cls, source: Any) -> "GradedProgram":
        """Read what :meth:`save` wrote (from an Artifact, a Folder or a path, as :meth:`Program.load`); errors
        name the file and the problem."""
        doc, value, path = read_description(source, DESCRIPTION, ARRAYS, FORMAT, FORMAT_VERSION, GRADED_SCHEMA)
        host = open_files(source).read_graph(doc["input"]["host_graph"])
        where = "its header"
        try:
            layers = []
            for entry in doc["layers"]:
                where = f"layer {entry['name']!r}"
                n = entry["neuron"]
                neuron = GradedNeuron(
                    relu=bool(n["relu"]),
                    shift=int(n["shift"]),
                    message_bits=int(n["message_bits"]),
                    bias_mant=value(n["bias_mant"]),
                    bias_exp=value(n["bias_exp"]),
                    levels=int(n.get("levels", 0)),
                    fs=None if "fs" not in n else _fs_code(n["fs"]),
                )
                s = entry["synapse"]
                synapse = None if s is None else synapse_of(s, value)
                skips = tuple(
                    Skip(e["source"], synapse_of(e, value), e.get("delay", 0)) for e in entry.get("skips", [])
                )
                delay, source = (0, None) if s is None else (s.get("delay", 0), s.get("source"))
                shape = tuple(entry["lava_shape"])
                layers.append(GradedLayer(synapse, neuron, entry["name"], shape, delay, skips, source))
            where = "its header"
            network = GradedNetwork(layers)
            readout = dict(doc["readout"])
            scale = readout.pop("scale", None)
            readout_scale = None if scale is None else value(scale, np.float32)
            if readout["kind"] == "spikes" and readout_scale is None:
                raise ValueError("a spike readout needs its scale")
            names = [e["name"] for e in doc["layers"]]
            shapes = [tuple(e["shape"]) for e in doc["layers"]]
            check_layout(names, shapes, network.layers, readout, host, f"{doc['input']['host_graph']}.json")
            return cls(
                host=host,
                network=network,
                names=names,
                roles=[e["role"] for e in doc["layers"]],
                shapes=shapes,
                scales=[float(e["scale"]) for e in doc["layers"]],
                readout=readout,
                readout_scale=readout_scale,
                message_bits=int(doc["message_bits"]),
                input_offset=doc["input"].get("offset"),
                fs=doc.get("fs"),
                input_unit=doc["input"].get("unit"),
            )
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError, IRVerificationError) as exc:
            raise ArtifactError(f"{path} does not describe a valid graded Loihi network ({where}): {exc}") from exc


def _fs_code(entry: dict[str, Any]) -> FewSpikeCode:
    return FewSpikeCode(
        tuple(entry["thresholds"]), tuple(entry["resets"]), tuple(entry["payloads"]), entry["start"], entry["depth"]
    )


def _graph_weights(synapse: DenseSynapse | ConvSynapse, below: tuple[int, ...], shape: tuple[int, ...]):
    """A synapse's integer weights back in the graph's layout: Dense (n_out, n_in) in C order of the graph
    shapes, with Lava's effective (clipped, truncated) weights; Conv (O, C / groups, kH, kW) cross-correlation,
    the pool repeated into the kernel, with its (stride, padding, groups) in (H, W) order."""
    if isinstance(synapse, DenseSynapse):
        w = np.zeros(synapse.effective_weights.shape, np.int64)
        w[np.ix_(lava_order(shape), lava_order(below))] = synapse.effective_weights
        return w, None
    lava = synapse.lava_weights  # (O, kX, kY, C / g), a true convolution
    w = lava.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]  # undo conv_weight_from_oihw: (O, C / g, kH, kW) correlation
    return np.ascontiguousarray(w), (synapse.stride[::-1], synapse.padding[::-1], synapse.groups)


def _integer_synapse(synapse: Any, q: np.ndarray, below: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """One synapse's message from payloads q (graph layout), in the graph's layout, wrapped as the chip wraps it
    (Conv to 24 bits, Dense and Sparse to 32): the integer forward pass's own arithmetic, not the emulator's."""
    batch = len(q)
    if isinstance(synapse, SparseSynapse):  # the listed synapses, their Lava indices mapped to the graph's
        rows, cols = lava_order(shape)[synapse.rows], lava_order(below)[synapse.cols]
        terms = q.reshape(batch, -1)[:, cols].astype(np.float64) * synapse.effective_weights
        n = int(np.prod(shape))
        index = (rows[None, :] + n * np.arange(batch)[:, None]).reshape(-1)
        acc = np.bincount(index, weights=terms.reshape(-1), minlength=batch * n).reshape(batch, n)
        return _wrap(fp.shift(np.rint(acc).astype(np.int64), int(synapse.weight_exp)), 32)
    w, spec = _graph_weights(synapse, below, shape)
    if spec is None:  # dense
        return _wrap(np.rint(q.reshape(batch, -1).astype(np.float64) @ w.T.astype(np.float64)), 32)
    stride, padding, groups = spec
    return _wrap(np.rint(conv2d_nchw(q, w, stride, padding, (1, 1), groups)), fp.CONV_BITS)


# -- quantization --------------------------------------------------------------------------------------------


@dataclass
class GradedOptions:
    """``message_bits``: payload width (activations 0..2**bits - 1). ``percentile``: the activation scale's
    calibration statistic (100: the largest activation). ``staircase``: QCFS populations send their level 0..L
    (the trained activation); False rounds them to ``message_bits`` as ReLU populations are."""

    message_bits: int = MESSAGE_BITS
    percentile: float = 100.0
    staircase: bool = True


def _split_bias(total: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer biases as (bias_mant, bias_exp): the smallest exponent 0..7 whose mantissa round(b / 2**exp) fits 13
    signed bits; GradedError naming the layer when even exponent 7 does not."""
    b = np.asarray(total, np.float64)
    exp = np.zeros(b.shape, np.int64)
    for e in range(BIAS_EXP_MAX + 1):
        mant = np.rint(b / 2.0**e)
        fits = (mant <= BIAS_MANT_MAX) & (mant >= BIAS_MANT_MIN)
        exp = np.where((exp == e) & ~fits, e + 1, exp)
    if exp.max(initial=0) > BIAS_EXP_MAX:
        worst = float(np.abs(b).max())
        raise GradedError(
            f"{where}: bias {worst:.0f} (in payload units << shift) does not fit bias_mant << bias_exp: the limit is "
            f"{BIAS_MANT_MAX} << {BIAS_EXP_MAX} = {BIAS_MANT_MAX << BIAS_EXP_MAX}; use fewer message bits"
        )
    return np.rint(b / np.exp2(exp)).astype(np.int64), exp


def quantize_graded(
    lowered: Lowered, calibration: np.ndarray | None, options: GradedOptions | None = None
) -> GradedProgram:
    """The graded program of ``lowered`` (see the module for the mapping); activation scales from the calibration
    inputs, or from the converter's thresholds (1 in lowered units) without them."""
    options = options or GradedOptions()
    bits = int(options.message_bits)
    if not 1 <= bits <= MESSAGE_BITS_MAX:
        raise GradedError(f"message_bits must be in 1..{MESSAGE_BITS_MAX}, got {bits}")
    top = (1 << bits) - 1
    if top > BIAS_MANT_MAX:
        raise GradedError(
            f"message_bits {bits}: the input population's payload (up to {top}) is its bias_mant, which holds at most "
            f"{BIAS_MANT_MAX}; use at most {fp.BIAS_MANT_BITS - 1} message bits"
        )
    pops = lowered.populations
    if any(isinstance(p.synapse, ConvSpec) and p.synapse.dilation != (1, 1) for p in pops):
        raise GradedError("graded mode maps undilated convolutions only")
    levels = [qcfs_levels(p) if options.staircase else 0 for p in pops]
    if any(top < L for L in levels):
        worst = max(range(len(pops)), key=lambda k: levels[k])
        raise GradedError(
            f"layer {pops[worst].name!r}: a QCFS staircase of {levels[worst]} levels needs payloads up to "
            f"{levels[worst]}; message_bits {bits} holds at most {top}"
        )
    every_qcfs = all(levels[k] for k, p in enumerate(pops) if p.role != "readout")
    if calibration is not None and len(calibration) and not every_qcfs:
        acts = _float_forward(lowered, calibration, options.staircase)
        ranges = [float(np.percentile(a, options.percentile)) if a.size else 0.0 for a in acts]
        source = f"calibration ({len(calibration)} samples, percentile {options.percentile:g})"
    else:
        ranges, source = [1.0] * len(pops), "converter thresholds (no calibration data)"
    if any(levels):
        source = "QCFS staircase (the trained lambda, L levels)" + ("" if every_qcfs else "; others: " + source)
    ranges = [1.0 if levels[k] else r for k, r in enumerate(ranges)]  # a QCFS population's range: its threshold
    scales = [max(r, 1e-12) / (levels[k] or top) for k, r in enumerate(ranges)]
    layers: list[GradedLayer] = []
    report: list[dict[str, Any]] = []
    input_unit = None
    for k, pop in enumerate(pops):
        where = f"layer {pop.name!r}"
        entry: dict[str, Any] = {"name": pop.name, "role": pop.role, "range": ranges[k]}
        if levels[k]:
            entry["levels"] = levels[k]
        fs = _fs_of(pop, k, levels[k], where)
        fitted = fitted_code(pop)
        if fitted is not None:  # a fitted code's payloads K d_j / s_k, the largest at 2**(bits - 1) - 1: signed bits
            largest = max(max(abs(d) for d in fitted["values"]), 1e-12)
            scales[k] = len(fitted["values"]) * largest / ((1 << (bits - 1)) - 1)
            entry["fit"] = {"activation": fitted.get("activation"), "range": fitted.get("range")}
        if pop.role == "input":
            if fitted is not None:  # the host sends v = round(current / unit) in the 13-bit bias, of either sign
                low, high = fitted["range"]
                input_unit = max(abs(float(low)), abs(float(high)), 1e-12) / BIAS_MANT_MAX
                fs = _fitted_code(fitted, 0, input_unit, scales[0], where)
                entry["unit"] = input_unit
            neuron = GradedNeuron(relu=True, shift=0, message_bits=_fs_bits(bits, fs), levels=levels[k], fs=fs(0))
            layers.append(GradedLayer(None, neuron, pop.name, lava_shape(pop.shape)))
            entry |= {"scale": scales[0], "shift": 0}
            report.append(entry)
            continue
        w = pop.synapse.weight.astype(np.float64)
        w_abs = float(np.abs(w).max(initial=0))
        readout = pop.role == "readout"
        if readout:  # identity: the weights use their whole range, v = z / s_L
            scales[k] = scales[k - 1] * w_abs / WEIGHT_TOP if w_abs else 1.0
            shift = 0
        main = k - 1 if pop.source is None else pop.source
        # every synapse into the population (a residual Add's or a Concat's branches too), on one scale s_k
        branches = [(main, pop.synapse, int(pop.delay)), *((b.source, b.synapse, int(b.delay)) for b in pop.skips)]
        if fitted is not None:  # v's unit: the largest weight at the top of the 8-bit range; no shift
            unit_v = max(float(np.abs(spec.weight).max(initial=0)) * scales[j] for j, spec, _ in branches) / WEIGHT_TOP
            unit_v = unit_v or scales[k]
            fs, shift = _fitted_code(fitted, k, unit_v, scales[k], where), 0
        if not readout and fitted is None:
            ratio_top = max(
                float(np.abs(spec.weight).max(initial=0)) * scales[j] / scales[k] for j, spec, _ in branches
            )
            shift = SHIFT_MAX if ratio_top == 0 else floor(log2(WEIGHT_TOP / ratio_top))
            if shift < 1 and levels[k]:
                raise GradedError(
                    f"{where}: a weight of {ratio_top:.4g} QCFS levels does not fit 8-bit weights with a fraction "
                    f"bit (at most {WEIGHT_TOP // 2}); compile with --target-option graded_staircase=false to "
                    "round this layer to message_bits instead"
                )
            if shift < 0:  # the activation scale is finer than 8-bit weights can reach: coarsen it
                scales[k] = ratio_top * scales[k] / WEIGHT_TOP
                shift = 0
            shift = min(shift, SHIFT_MAX)
        if fitted is None:
            unit_v = scales[k] / 2.0**shift  # float units of one LSB of v
        synapses = []
        for j, spec, _ in branches:
            unit = scales[j] / unit_v
            ints = np.clip(2 * np.rint(spec.weight.astype(np.float64) * unit / 2), WEIGHT_BOTTOM, WEIGHT_TOP)
            synapses.append(lava_synapse(spec, ints.astype(np.int64), 0, fp.SignMode.MIXED, pops[j].shape, pop.shape))
        w_int = np.clip(2 * np.rint(w * scales[main] / unit_v / 2), WEIGHT_BOTTOM, WEIGHT_TOP)
        if fitted is not None:  # the code compares the window's sum of v itself
            half = 0
        elif levels[k]:  # the QCFS shift: floor(z L + φ)
            half = floor(float(pop.initial) * 2.0**shift + 0.5)
        else:  # rounds the floor of >> shift to nearest
            half = (1 << (shift - 1)) if shift > 0 else 0
        bias_total = np.rint(pop.bias.astype(np.float64) / unit_v) + half
        mant, exp = _split_bias(to_lava(bias_total[None], pop.shape)[0], where)
        neuron = GradedNeuron(
            relu=not readout,
            shift=shift,
            message_bits=_fs_bits(bits, fs),
            bias_mant=compact(mant),
            bias_exp=compact(exp),
            levels=levels[k],
            fs=fs(shift),
        )
        skips = tuple(Skip(j, synapse, d) for (j, _, d), synapse in zip(branches[1:], synapses[1:]))
        layers.append(
            GradedLayer(synapses[0], neuron, pop.name, lava_shape(pop.shape), branches[0][2], skips, pop.source)
        )
        largest_payload = max(levels[j] or top for j, _, _ in branches)
        per_out = np.abs(w_int.reshape(len(w_int), -1)).sum(axis=1).max(initial=0) * largest_payload * len(branches)
        entry |= {
            "scale": scales[k],
            "shift": shift,
            "weights": {
                "type": "conv" if isinstance(pop.synapse, ConvSpec) else "dense",
                "max_abs": int(np.abs(w_int).max(initial=0)),
                "zeroed": int(np.count_nonzero((w != 0) & (w_int == 0))),
            },
            "bias_exp_max": int(np.max(exp, initial=0)),
            "u_worst_case": int(per_out),
            "u_bits_to_spare": None if per_out == 0 else round(log2(fp.STATE_LIMIT / per_out), 2),
        }
        report.append(entry)
    readout = {
        "kind": lowered.readout.kind,
        "population": lowered.readout.population,
        "output": lowered.readout.output,
        "shape": list(lowered.readout.shape),
    }
    codes = [layer.neuron.fs for layer in layers if layer.neuron.fs is not None]
    fs_note = None
    if codes:
        fs_note = {"steps": codes[0].steps, "fill": max(code.ready() for code in codes)}
        bits = max(layer.neuron.message_bits for layer in layers)
    program = GradedProgram(
        host=lowered.host,
        network=GradedNetwork(layers),
        names=[p.name for p in pops],
        roles=[p.role for p in pops],
        shapes=[tuple(p.shape) for p in pops],
        scales=scales,
        readout=readout,
        readout_scale=lowered.readout.scale,
        message_bits=bits,
        report={"scale_source": source, "message_bits": bits, "delay": len(pops) - 1, "layers": report},
        input_offset=float(pops[0].initial) if levels[0] else None,
        fs=fs_note,
        input_unit=input_unit,
    )
    if fs_note:
        program.report["few_spike"] = {
            **fs_note,
            "note": "a staircase's code: payloads K c_j of the digits c_j of each level, thresholds and resets K c_j "
            "2**shift on the window's sum of v, whose bias carries the QCFS offset; a fitted code (SiLU): payloads "
            "round(K d_j / scale), thresholds ceil(K T_j / unit) and resets round(K h_j / unit) on the window's sum "
            "of v in units of v's LSB (unit, in the layer's report entry), values of either sign",
        }
    return program


def _fs_of(pop: Any, k: int, levels: int, where: str) -> Callable[[int], "FewSpikeCode | None"]:
    """The integer few-spike code of population ``pop`` (index ``k``) for a given shift, or None for a population
    that is no few-spike one (its meta has no ``fs``, which the backend sets from a FewSpike op). A FewSpike
    population needs the QCFS staircase of its L levels (levels > 0)."""
    meta = pop.meta.get("fs") if pop.role != "readout" else None
    if meta is None or "digits" not in meta:  # (a fitted code: _fitted_code)
        return lambda shift: None
    if not levels:
        raise GradedError(
            f"{where}: few-spike neurons send the digits of their level 0..L, which graded mode computes as the QCFS "
            "staircase: compile without --target-option graded_staircase=false"
        )
    digits, steps, start = [int(c) for c in meta["digits"]], len(meta["digits"]), int(meta["start"])
    if sum(digits) != levels:
        raise GradedError(f"{where}: few-spike digits {digits} do not sum to its {levels} levels")

    def code(shift: int) -> FewSpikeCode:
        unit = steps << shift  # the window's sum is K v, v in units of 2**shift per level
        if steps * max(digits) << shift > FS_STATE_LIMIT:
            raise GradedError(f"{where}: few-spike thresholds K c_j 2**{shift} do not fit the 32-bit window sum")
        return FewSpikeCode(
            tuple(c * unit for c in digits), tuple(c * unit for c in digits), tuple(steps * c for c in digits), start, k
        )

    return code


def _fitted_code(
    fitted: dict[str, Any], k: int, unit: float, scale: float, where: str
) -> Callable[[int], "FewSpikeCode | None"]:
    """Population k's integer code of a fitted few-spike code: its window's sum of v (v in ``unit`` float units)
    is compared with ceil(K T_j / unit) (exact for an integer sum), resets round(K h_j / unit), payloads
    round(K d_j / ``scale``) (the population's payload unit). The same code at every shift."""
    steps = len(fitted["values"])
    thresholds = np.ceil(steps * np.asarray(fitted["thresholds"], np.float64) / unit)
    resets = np.rint(steps * np.asarray(fitted["resets"], np.float64) / unit)
    payloads = np.rint(steps * np.asarray(fitted["values"], np.float64) / scale)
    if max(np.abs(thresholds).max(), np.abs(resets).max()) > FS_STATE_LIMIT:
        raise GradedError(
            f"{where}: its fitted few-spike thresholds and resets K T_j / unit reach "
            f"{max(np.abs(thresholds).max(), np.abs(resets).max()):.0f}, past the 32-bit window sum's {FS_STATE_LIMIT}"
        )
    code = FewSpikeCode(
        tuple(int(x) for x in thresholds),
        tuple(int(x) for x in resets),
        tuple(int(x) for x in payloads),
        int(fitted["start"]),
        k,
    )
    return lambda shift: code


def _fs_bits(bits: int, fs: Callable[[int], "FewSpikeCode | None"]) -> int:
    """The payload width of a population: ``bits``, or wider for a few-spike one's largest payload K c_1 (with a
    sign bit where a payload is negative)."""
    code = fs(0)
    if code is None:
        return bits
    largest = max(abs(p) for p in code.payloads)
    return max(bits, largest.bit_length() + int(code.signed))


# -- the backend's graded mode -------------------------------------------------------------------------------


def emit_graded(
    lowered: Lowered, calibration: np.ndarray | None, folder: Path, options: GradedOptions | None = None
) -> tuple[list[str], dict[str, Any], "GradedProgram | None"]:
    """Write the graded program next to the binary one; return the files, the report/manifest note and the
    program. A network the graded mode cannot hold is no compile error (binary mode still runs): the note gives the
    reason (and there is no program)."""
    try:
        program = quantize_graded(lowered, calibration, options)
    except GradedError as exc:
        return [], {"available": False, "reason": str(exc)}, None
    files = program.save(folder)
    note = {
        "available": True,
        "file": DESCRIPTION,
        "pipeline_delay": program.delay,
        "pipeline_delay_note": (
            f"graded payloads pass one synapse per step: the output after T steps is read at Loihi step T + "
            f"{program.delay}; every T >= 1 gives the quantized ANN's output"
        ),
    }
    return files, {**note, "quantization": program.report}, program


_GRADED_NOTE = Dict(
    {
        "target": Dict(
            optional={
                "graded": Dict(
                    optional={"available": Bool(), "reason": Str(), "file": Str(), "kind": Str(choices=("sdnn",))}
                )
            }
        )
    }
)


def load_graded(artifact: Any) -> Any:
    """The artifact's graded program (a GradedProgram, or the SdnnProgram of the board profile); a DataError saying
    why when it was compiled without one."""
    root = getattr(artifact, "root", None)
    validate(_GRADED_NOTE, artifact.manifest, "manifest.json" if root is None else str(Path(root) / "manifest.json"))
    note = artifact.manifest["target"].get("graded", {})
    if not note.get("available", False):
        reason = note.get("reason", "the artifact was compiled without a graded program")
        raise DataError(f"this artifact cannot run in graded mode: {reason}")
    if note.get("kind") == "sdnn":
        from neurodeploy_loihi.sdnn import SdnnProgram

        return SdnnProgram.load(artifact)
    return GradedProgram.load(artifact)  # every file listed in the manifest and checked
