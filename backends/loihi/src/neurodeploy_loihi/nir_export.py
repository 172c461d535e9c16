"""A Loihi artifact's binary program as an IR graph in the chip's units, for ``neurodeploy export --quantized``.

Every number is one the emulator (:mod:`neurodeploy_loihi.emulator`, bit-exact to Lava's ``fixed_pt`` models)
adds to v, the 24-bit membrane potential:

* **Weights.** A spike through a Dense synapse adds ``w_eff * 2**weight_exp << 6`` to u and so to v, ``w_eff``
  the weight after Lava's clipping to 8 bits and truncation (:func:`~neurodeploy_loihi.fixed_point.dense_weights`);
  a Conv synapse adds ``w << 6`` (Lava's Conv has no exponent), a pooled one its kernel repeated over the pool
  block (:attr:`~neurodeploy_loihi.emulator.ConvSynapse.lava_weights`, the same integer sums). The graph's weights
  are those products: integers wherever weight_exp >= -6 (every hidden layer: their exponents are >= 0).
* **Thresholds** ``vth << 6``; **biases** ``bias_mant << bias_exp``, added every step (a Dense's or Conv's bias;
  a leaky layer's drive).
* **Neurons.** Loihi fires on v > vth << 6, the graph's IF neurons on v >= θ. quantize starts every IF neuron at
  v0 = 1 for that (integer v >= θ is v + 1 > θ): from 0, the same neurons fire at v >= θ, so the graph's IF has
  θ = vth << 6 and starts at 0. Neurons that compare with ``>`` themselves, and leaky ones, start at 0 on the chip
  and fire on v > θ here too (LIF ``strict``). A reset by subtraction then takes θ from both; a reset to zero
  loses the chip's +1 after the first spike (the chip then needs one unit of v more than the graph).
* **Exactness.** Each step a hidden layer adds integers to v, which float32 holds exactly below 2**24 in
  magnitude; the chip saturates v at 2**23 - 1. So while |v| < 2**23 a float32 run of the graph integrates
  exactly the chip's integers and an IF layer fires at the same steps as the chip, given the same input spikes.
  ``steps_exact`` (in the metadata) is the number of steps for which that holds whatever the spikes: the
  smallest (2**23 - 1 - θ) // (max per neuron of Σ|w| + |bias|) over the spiking layers.
* **The input population** is driven by the current the host computes in float (``host.json``: the ops before the
  first neurons), c in thresholds per step. The graph computes c · R (R = vth << 6 of the input population) in
  float32, the scale folded into the host's last Dense or Conv (a Scale node otherwise). The chip adds
  ``round(c · R)`` split into a 13-bit mantissa and an exponent (:func:`neurodeploy_loihi.quantize.input_bias`:
  within 2**(bias_exp - 1) of c · R) and clipped to [-R, 4095 << 7]; the graph neither rounds nor clips. So the
  first layer's spikes can differ where c · R · t lies within t · 2**(bias_exp - 1) of a multiple of R, by at
  most one spike per neuron while T · 2**(bias_exp - 1) < R (its spikes over T steps are floor-like in c · T).
* **Event input** (``input.spikes``): the first population's synapse reads the frames' event counts (graded
  spikes, payload = count) directly, so the graph's first Conv or Dense reads the input, in units of v per event.
* **Leaky layers** (dv, du > 0): v keeps 1 - dv/4096 of itself each step, u 1 - (du + 1)/4096 of itself, which
  the graph writes as the LIF's decays; the chip rounds the decayed values toward zero every step, the graph does
  not, so a leaky layer's v differs by up to a unit per step (and so its spikes, rarely). Lava's LIF (reset to
  zero) adds a leaky layer's bias from step 1, before its first input (the artifact's report: ``bias_prefill``);
  the graph does not.
* **The readout** integrates its input in v without firing (vth at its maximum): the graph's output is what v
  gains per step, so the NIR Output's mean over T steps is the chip's v after T steps / T. Its weights take a
  negative weight_exp, by which Lava floors each step's sum (``readout_weight_exp``): the graph does not.
* **Time.** On the chip each synapse delays spikes by one step (population k computes the graph's step t at Loihi
  step t + k; a readout after T graph steps is read at Loihi step T + delay). The graph has no delay: a spike
  reaches the next layer in the step it is sent, as NIR's readers (sinabs, snnTorch) run. The emulator counts
  each population's spikes over its own T steps (Loihi steps k + 1 .. k + T), so the spike counts of the graph
  after T steps are the emulator's, and the outputs after T steps the chip's after T + delay. A delay the network
  itself asks for (a synapse's ``lag``: NIR's Delay, read in) is in the graph's time too, and is written as a
  Delay before that synapse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir import IF, LIF, Add, Conv2d, Delay, Dense, Graph, Reshape, Scale
from neurodeploy.ir.graph import unique_name
from neurodeploy.ir.op import Op
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, SparseSynapse
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.quantize import _lava_index, to_graph

INPUT = -1
"""The source index of a synapse that reads the network input (event input)."""
V_LIMIT = fp.STATE_LIMIT - 1
"""v saturates at ±(2**23 - 1)."""


def _dense_lava(synapse: DenseSynapse | SparseSynapse) -> np.ndarray:
    """The effective weights as an (n_out, n_in) int64 matrix in Lava's flat orders."""
    if isinstance(synapse, DenseSynapse):
        return np.asarray(synapse.effective_weights, np.int64)
    dense = np.zeros(synapse.shape, np.int64)
    np.add.at(dense, (synapse.rows, synapse.cols), synapse.effective_weights)
    return dense


def dense_in_v(synapse: DenseSynapse | SparseSynapse, below: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A Dense or Sparse synapse's weights in units of v, (n_out, n_in) in the graph's flat (C order) layouts of the
    populations it joins (``below`` -> ``shape``): ``w_eff * 2**(weight_exp + 6)``, float64."""
    lava = _dense_lava(synapse).astype(np.float64) * 2.0 ** (int(synapse.weight_exp) + fp.ACT_SHIFT)
    return lava[np.ix_(_lava_index(shape), _lava_index(below))]


def conv_in_v(synapse: ConvSynapse) -> np.ndarray:
    """A Conv synapse's kernel in units of v as a cross-correlation kernel (C_out, C_in / groups, kH, kW): Lava's
    (C_out, kX, kY, C_in / groups) true-convolution kernel (repeated over the pool block) times 2**6, turned back
    (the inverse of :func:`~neurodeploy_loihi.fixed_point.conv_weight_from_oihw`)."""
    lava = synapse.lava_weights.astype(np.float64) * (1 << fp.ACT_SHIFT)
    return np.ascontiguousarray(lava.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])


def _f32(values: np.ndarray, where: str) -> np.ndarray:
    out = np.asarray(values, np.float32)
    if not np.array_equal(out.astype(np.float64), np.asarray(values, np.float64)):
        raise UnsupportedOpError(f"{where}: a value is not exact in float32")  # (cannot happen for 24-bit integers)
    return out


class _Builder:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.ops: list[Op] = []
        self.taken: set[str] = set(program.host.inputs) | {op.output for op in program.host.ops}
        self.taken |= {op.name for op in program.host.ops}
        self.spikes: dict[int, str] = {}  # population -> the value of its spikes (graph layout)

    def name(self, base: str) -> str:
        name = unique_name(base, self.taken)
        self.taken.add(name)
        return name

    def add(self, op: Op) -> str:
        self.ops.append(op)
        return op.output

    def shape(self, k: int) -> tuple[int, ...]:
        """Population k's graph shape; k = -1: the input's (event input: the first synapse reads it)."""
        if k == INPUT:
            return tuple(self.program.host.types()[self.program.host.outputs[0]].shape)
        return tuple(self.program.shapes[k])

    def flat(self, value: str, shape: tuple[int, ...], base: str) -> str:
        """A value flattened (C order of its graph shape)."""
        if len(shape) == 1:
            return value
        name = self.name(f"{base}.flat")
        return self.add(Reshape(name=name, inputs=(value,), output=name, shape=(int(np.prod(shape)),)))

    def synapse(
        self, k: int, source: int, synapse: Any, bias: np.ndarray | None, tag: str, lag: int = 0
    ) -> tuple[str, float]:
        """The op(s) of one synapse into population k, reading population ``source`` (-1: the input's spikes),
        ``lag`` steps late (a Delay the network asks for); its value (in k's graph shape) and the largest Σ|w| of
        a neuron (units of v)."""
        prog = self.program
        shape, below = prog.shapes[k], self.shape(source)
        where = f"layer {prog.names[k]!r}"
        read = self.spikes[source]
        if lag:
            name = self.name(f"{prog.names[k]}.{tag}.delay")
            read = self.add(Delay(name=name, inputs=(read,), output=name, steps=int(lag)))
        if isinstance(synapse, ConvSynapse):
            if len(below) != 3 or len(shape) != 3:
                raise UnsupportedOpError(f"{where}: a convolution between populations of shapes {below}, {shape}")
            weight = conv_in_v(synapse)
            px, py = synapse.padding
            name = self.name(f"{prog.names[k]}.{tag}")
            op = Conv2d(
                name=name,
                inputs=(read,),
                output=name,
                weight=_f32(weight, where),
                bias=None if bias is None else _f32(bias, where),
                stride=tuple(synapse.stride[::-1]),
                padding=(py, px, py, px),
                dilation=tuple(synapse.dilation[::-1]),
                groups=int(synapse.groups),
            )
            per_neuron = float(np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max(initial=0))
            return self.add(op), per_neuron
        if len(shape) > 1:
            raise UnsupportedOpError(
                f"{where}: its synapse from {prog.names[source] if source >= 0 else 'the input'!r} is a list of "
                f"synapses into a {tuple(shape)} layer (a delayed convolution's taps, Lava's Conv taking no delay, "
                "or a pooling's border corrections beside its Conv), "
                "which NIR can write only as an Affine into a flat layer; the quantized export does not write it"
            )
        weight = dense_in_v(synapse, below, shape)
        name = self.name(f"{prog.names[k]}.{tag}")
        value = self.add(
            Dense(
                name=name,
                inputs=(self.flat(read, below, read),),
                output=name,
                weight=_f32(weight, where),
                bias=None if bias is None else _f32(bias.reshape(-1), where),
            )
        )
        return value, float(np.abs(weight).sum(axis=1).max(initial=0))


def _start(layer: Layer, depth: int) -> np.ndarray:
    """v when the population's first input arrives: v0, plus the bias Lava's LIF adds before (a subtractive
    neuron's bias waits for it, ``bias_start``)."""
    n = layer.neuron
    v0 = np.asarray(n.v0, np.int64)
    if n.kind == "lif" and depth and n.dv == 0:
        return v0 + depth * fp.effective_bias(n.bias_mant, n.bias_exp)
    return v0


def _channel_bias(bias: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A per-neuron bias (graph layout) as a Conv's per-channel bias; an error where it varies within a channel."""
    per_channel = bias.reshape(shape[0], -1)
    if np.any(per_channel != per_channel[:, :1]):
        raise UnsupportedOpError(
            f"{where}: its bias differs between the neurons of a channel (bias correction with calibration data), "
            "which NIR's Conv2d cannot say; compile with --target-option bias_correction=false to export it"
        )
    return per_channel[:, 0]


def quantized_graph(program: Program, target: str) -> Graph:
    """The binary program as an IR graph in units of v (see the module); ``graph.meta["nir_export"]`` says what it
    is, for the NIR file's metadata."""
    prog = program
    layers = prog.network.layers
    depths = prog.network.depths
    b = _Builder(prog)
    host = prog.host.copy()
    (current,) = host.outputs
    ops: list[Op] = list(host.ops)
    events = prog.network.input_bits > 0  # the input's event counts go to the first synapse as graded spikes
    input_scale = 1.0 if events else float(fp.effective_threshold(prog.input_vth))
    producer = next((op for op in ops if op.output == current), None)
    uses = sum(current in op.inputs for op in ops)
    if events:
        b.spikes[INPUT] = current
    elif isinstance(producer, (Dense, Conv2d)) and uses == 0:
        producer.weight = (producer.weight.astype(np.float64) * input_scale).astype(np.float32)
        if producer.bias is not None:
            producer.bias = (producer.bias.astype(np.float64) * input_scale).astype(np.float32)
    else:
        name = b.name("input.scale")
        ops.append(Scale(name=name, inputs=(current,), output=name, value=np.array(input_scale, np.float32)))
        current = name
    b.ops = ops
    notes: list[str] = []
    steps_exact: int | None = None
    outputs: list[str] = []
    for k, layer in enumerate(layers):
        where = f"layer {prog.names[k]!r}"
        neuron = layer.neuron
        role = prog.roles[k]
        bias = to_graph(
            np.broadcast_to(fp.effective_bias(neuron.bias_mant, neuron.bias_exp), layer.shape)[None], prog.shapes[k]
        )[0].astype(np.float64)
        leaky = neuron.dv != 0 or neuron.du != fp.DECAY_UNITY - 1
        if k == 0 and layer.synapse is None:
            value, per_step = current, None
        else:
            inbound = layer.inbound(k)  # (event input: population 0's synapse reads the input, source -1)
            lags = [int(layer.lag)] + [int(skip.lag) for skip in layer.skips]
            for (source, _, delay), lag in zip(inbound, lags):
                arrives = (depths[source] if source >= 0 else 0) + 1 + delay - lag
                if arrives != depths[k]:
                    raise UnsupportedOpError(
                        f"{where}: a synapse from {prog.names[source]!r} arrives {depths[k] - arrives} step(s) "
                        "before the others; the graph has no delays"
                    )
            in_bias = None if leaky or not np.any(bias) else bias
            if in_bias is not None and len(prog.shapes[k]) == 3 and isinstance(layer.synapse, ConvSynapse):
                in_bias = _channel_bias(in_bias, prog.shapes[k], where)
            values, per_step = [], float(np.abs(bias).max(initial=0))
            for i, ((source, synapse, _), lag) in enumerate(zip(inbound, lags)):
                tag = "synapse" if i == 0 else f"skip{i}"
                v, total = b.synapse(k, source, synapse, in_bias if i == 0 else None, tag, lag)
                values.append(v)
                per_step += total
            value = values[0]
            if len(values) > 1:
                name = b.name(f"{prog.names[k]}.sum")
                value = b.add(Add(name=name, inputs=tuple(values), output=name))
        if role == "readout":
            exp = getattr(layer.synapse, "weight_exp", 0)
            if exp < 0:
                notes.append(
                    f"readout {prog.names[k]!r}: weight_exp {exp}: the chip floors each step's weighted sum to a "
                    f"multiple of 2**{-exp} before the << 6; the graph does not"
                )
            outputs.append(value)
            continue
        start = np.unique(_start(layer, depths[k]))
        threshold = float(neuron.threshold)
        n = b.name(prog.names[k])
        if leaky:
            if np.any(start != 0):
                raise UnsupportedOpError(f"{where}: its leaky neurons start at v = {start.tolist()}; NIR's start at 0")
            syn = None if neuron.du == fp.DECAY_UNITY - 1 else 1.0 - (neuron.du + 1) / fp.DECAY_UNITY
            drive = bias.astype(np.float32) if np.any(bias) else np.float32(0)
            op: Op = LIF(
                name=n,
                inputs=(value,),
                output=n,
                decay=np.float32(1.0 - neuron.dv / fp.DECAY_UNITY),
                gain=np.float32(1),
                drive=drive,
                threshold=np.float32(threshold),
                syn_decay=None if syn is None else np.float32(syn),
                syn_gain=None if syn is None else np.float32(1),
                reset="zero" if neuron.kind == "lif" else "subtract",
                strict=True,
            )
            notes.append(
                f"layer {prog.names[k]!r}: leaky (dv {neuron.dv}, du {neuron.du}); the chip rounds the decayed u and "
                "v toward zero every step, the graph does not"
            )
        elif start.size == 1 and start[0] in (0, 1):
            reset = "zero" if neuron.kind == "lif" else "subtract"
            if start[0] == 1:  # v0 = 1 for ">=" on a chip that fires on ">"
                op = IF(
                    name=n,
                    inputs=(value,),
                    output=n,
                    threshold=np.float32(threshold),
                    reset=reset,
                    initial=0.0,
                )
            else:
                op = LIF(
                    name=n,
                    inputs=(value,),
                    output=n,
                    decay=np.float32(1),
                    gain=np.float32(1),
                    drive=np.float32(0),
                    threshold=np.float32(threshold),
                    reset=reset,
                    strict=True,
                )
            if reset == "zero" and start[0] == 1:
                notes.append(
                    f"layer {prog.names[k]!r}: reset to zero: after a spike the chip needs one unit of v more than "
                    "the graph (its v0 = 1 is lost)"
                )
        else:
            shown = start[:4].tolist()
            raise UnsupportedOpError(
                f"{where}: its neurons start at v = {shown} (units of v, threshold {int(threshold)}); NIR's start at "
                "0: compile with --conversion initial=0 to export (a converted ANN starts at θ/2)"
            )
        b.spikes[k] = b.add(op)
        if per_step is not None and per_step > 0:
            limit = int((V_LIMIT - threshold) // per_step)
            steps_exact = limit if steps_exact is None else min(steps_exact, limit)
    if prog.readout["kind"] == "spikes":
        outputs = [b.spikes[int(prog.readout["population"])]]
    graph = Graph(f"{prog.host.name}-{target}-quantized", dict(host.inputs), outputs, b.ops)
    graph.verify()
    graph.meta["nir_export"] = {
        "neurodeploy_export": "quantized",
        "target": target,
        "units": "v: the Loihi 2 membrane potential's integers (weights w_eff * 2**(weight_exp + 6), thresholds "
        "vth << 6, biases bias_mant << bias_exp)",
        "input_scale": input_scale,
        "input_note": (
            "event input: each frame's event counts reach the first synapse as graded spikes (payload = count)"
            if events
            else "the first population's current is the host's float current times input_scale; the chip "
            "rounds it to bias_mant << bias_exp and clips it to [-input_scale, 4095 << 7]"
        ),
        "pipeline_delay": int(prog.delay),
        "delay_note": "the chip delays spikes one step per synapse (the readout after T steps is read at Loihi "
        f"step T + {int(prog.delay)}); the graph has no delays",
        "readout_scale": float(prog.scales[int(prog.readout["population"])]),
        "readout": str(prog.readout["kind"]),
        "steps_exact": -1 if steps_exact is None else int(steps_exact),
        "notes": "; ".join(notes) if notes else "",
    }
    return graph
