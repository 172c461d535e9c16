"""Graded mode on stock neurons: the network as a sigma-delta neural network (SDNN) of Lava's ``SigmaDelta``
neurons and a ``Sigma`` readout, in the conventions lava-dl's netx loads (``neuron/type = 'SDNN'``), so every
process has a Loihi 2 hardware model (:mod:`neurodeploy_loihi.board`).

**The neurons** (lava ``proc/sdn/models.py``: ``PySigmaDeltaModelFixed``, ``PySigmaModelFixed``; int32 state, as
the Python models compute it), per step t and neuron, with E = ``spike_exp`` and S = ``state_exp`` = 6 (netx fixes
S; E is an argument of ``netx.hdf5.Network``, recorded in the program):

```
sigma  += a_in                                   the synapse's message (Dense: W . payloads; Conv: 24-bit wrap)
act     = relu(sigma + (bias << (E + S)))         bias in whole units of the population's scale
delta   = act - act_prev + residue
s       = delta if |delta| >= vth << (E + S) else 0;   residue = delta - s;   act_prev = act
payload = s >> S                                  floor: sent as a graded spike
Sigma (the readout):  sigma += a_in;  payload = sigma
```

So a hidden population holds its activation in units of 2**-(E + S) of its scale s_k and sends its *changes* in
units of 2**-E: the receiver's sigma is the weighted sum of the changes, which telescopes to the weighted
activation. The only inexactness is ``s >> S``, which floors each change on its own (at most 2**-E of a unit per
change); with the input held, a population changes once for its bias while the pipeline fills and once when its
input arrives, so the error stays a few 2**-E of a unit. ``vth`` is 0: every change is sent.

**The quantized network** (float units, :mod:`neurodeploy_loihi.lowering`): the host sends the input population's
activation once, at step 1, as a payload m0 = round(relu(current) / s_0 * 2**E) (the change from 0; nothing after);
the chip's synapse of population k carries W_k = even 8-bit integers of w_k s_(k-1) / s_k * 2**S (64 per unit, as
slayer's weight scale), its bias is round(b_k / s_k) whole units, and s_k is the larger of
``max activation / UNITS`` (payloads stay within netx's 16 message bits) and ``s_(k-1) 2**S max|w_k| / 254`` (the
weights stay 8-bit). The readout is a ``Sigma`` without bias (lava-dl 0.6.0 cannot load a Sigma with a bias): its
W_L = w_L c (c = 254 / max|w_L|), and the host adds the bias: output = sigma s_(L-1) / (c 2**E) + b_L.

**Time** as in the other graded program: population k computes the graph's step t at Loihi step t + k, the
readout holds the output from step delay + 1 on, and T counts after the delay.

:meth:`SdnnProgram.reference` is the same network in float arithmetic with the same integers and no flooring of
changes (the fixed-point ANN it approximates); ``neurodeploy evaluate --mode graded`` prints both.
"""

# No `from __future__ import annotations`: Lava executes every module of this folder when it looks for process
# models, outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.artifact import open_files
from neurodeploy.errors import ArtifactError, IRVerificationError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import dumps_json, save_graph, write_npz
from neurodeploy.schema import Dict, Int, List, Number, OneOf, Optional, Str
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse
from neurodeploy_loihi.graded import (
    POPULATION_KEYS,
    WEIGHT_BOTTOM,
    WEIGHT_TOP,
    GradedError,
    GradedRun,
    _float_forward,
    _graph_weights,
    conv2d_nchw,
    joined_run,
    wanted_steps,
)
from neurodeploy_loihi.lowering import ConvSpec, Lowered
from neurodeploy_loihi.program import (
    HOST_STEM,
    POSITIVE,
    input_synapses,
    read_description,
    synapse_entry,
    synapse_of,
    synapse_schema,
    weighted,
)
from neurodeploy_loihi.quantize import compact, lava_shape, lava_synapse, to_graph, to_lava

STATE_EXP = 6
"""netx builds every SDNN neuron with ``state_exp = 6``."""
SPIKE_EXP = 6
"""netx's default ``spike_exp`` (an argument of ``netx.hdf5.Network``, not a file field)."""
MESSAGE_BITS = 16
"""netx's default payload width for SDNN neurons (lava-dl 0.6.0 does not read a file's ``messageBits``)."""
PAYLOAD_LIMIT = 1 << (MESSAGE_BITS - 1)
"""Payloads are signed: |payload| < 2**15."""
UNITS = PAYLOAD_LIMIT >> (SPIKE_EXP + 1)
"""Whole units of a population's scale that its largest calibration activation takes (256): a payload carries 2**E
per unit, so the largest change uses half the payload range, the rest is headroom."""
STATE_LIMIT = 1 << 23
"""sigma, act and residue are 24-bit on the chip."""

DESCRIPTION = "sdnn.json"
ARRAYS = "sdnn.npz"
NET_FILE = "sdnn.net"
FORMAT = "neurodeploy-loihi-sdnn"
FORMAT_VERSION = 1


def wrap32(x: np.ndarray) -> np.ndarray:
    """int32 arithmetic, as Lava's Python models compute it."""
    return fp.wrap(np.asarray(x, np.int64), 32)


@dataclass(frozen=True, eq=False)
class SdnnLayer:
    """A chip population: its synapse from the population before, and ``SigmaDelta`` neurons (``bias`` whole units,
    a scalar or per neuron in Lava layout; ``vth``), or the ``Sigma`` readout (``sigma_output``)."""

    synapse: DenseSynapse | ConvSynapse
    bias: int | np.ndarray = 0
    vth: int = 0
    sigma_output: bool = False
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.synapse.output_shape)


@dataclass
class SdnnTrace:
    """Per chip population and step: payloads, sigma and act (B, steps, *shape), int64."""

    payloads: list[np.ndarray]
    sigma: list[np.ndarray]
    act: list[np.ndarray]


def run_layers(
    layers: list[SdnnLayer], m0: np.ndarray, steps: int, spike_exp: int = SPIKE_EXP, observe: Any = None
) -> None:
    """Run the chip populations for ``steps`` Loihi steps; the host's input payload ``m0`` (B, *Lava shape of
    population 0) is sent at step 1 only. ``observe(t, k, payload, sigma, act)`` sees population k + 1 after step t
    (from 1); the arrays are the emulator's own."""
    batch = len(m0)
    scale = spike_exp + STATE_EXP
    a_buff = [np.zeros((batch, *layer.shape), np.int64) for layer in layers]
    sigma = [np.zeros((batch, *layer.shape), np.int64) for layer in layers]
    act = [np.zeros((batch, *layer.shape), np.int64) for layer in layers]
    residue = [np.zeros((batch, *layer.shape), np.int64) for layer in layers]
    bias = [np.left_shift(np.asarray(layer.bias, np.int64), scale) for layer in layers]
    vth = [np.int64(layer.vth) << scale for layer in layers]
    silent = np.zeros_like(np.asarray(m0, np.int64))
    for t in range(steps):
        below = np.asarray(m0, np.int64) if t == 0 else silent
        for k, layer in enumerate(layers):
            a_in = a_buff[k]  # sent now: accumulated at the previous step (Lava's a_buff)
            a_buff[k] = layer.synapse.accumulate(below, graded=True).reshape(batch, *layer.shape)
            sigma[k] = wrap32(sigma[k] + a_in)
            if layer.sigma_output:
                payload = sigma[k]
            else:
                new = np.maximum(wrap32(sigma[k] + bias[k]), 0)
                delta = wrap32(new - act[k] + residue[k])
                sent = np.where(np.abs(delta) >= vth[k], delta, 0)
                residue[k] = delta - sent
                act[k] = new
                payload = sent >> STATE_EXP
            if observe is not None:
                observe(t + 1, k, payload, sigma[k], act[k])
            below = payload


def trace_layers(layers: list[SdnnLayer], m0: np.ndarray, steps: int, spike_exp: int = SPIKE_EXP) -> SdnnTrace:
    """Every chip population's payloads, sigma and act at every step (for the cross-checks)."""
    shapes = [layer.shape for layer in layers]
    trace = SdnnTrace(*([np.zeros((len(m0), steps, *s), np.int64) for s in shapes] for _ in range(3)))

    def keep(t: int, k: int, payload: np.ndarray, sigma: np.ndarray, act: np.ndarray) -> None:
        trace.payloads[k][:, t - 1] = payload
        trace.sigma[k][:, t - 1] = sigma
        trace.act[k][:, t - 1] = act

    run_layers(layers, m0, steps, spike_exp, keep)
    return trace


@dataclass
class SdnnProgram:
    """The SDNN form of a compiled model: the host graph, population 0 on the host (``scales[0]``), the chip
    populations 1..L (``layers``), the populations' names, roles, graph shapes and scales (float units per whole
    unit), and the readout's scale and host-side bias (graph layout)."""

    host: Graph
    layers: list[SdnnLayer]
    names: list[str]
    roles: list[str]
    shapes: list[tuple[int, ...]]
    scales: list[float]
    readout: dict[str, Any]
    readout_scale: float
    readout_bias: np.ndarray
    spike_exp: int = SPIKE_EXP
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def delay(self) -> int:
        return len(self.layers)

    def input_payload(self, x: np.ndarray) -> np.ndarray:
        """m0 (B, *Lava shape of population 0): round(relu(current) / s_0 * 2**E), clipped to the payload range."""
        current = interpret.run(self.host, np.asarray(x, np.float32))[self.host.outputs[0]]
        units = np.maximum(current.astype(np.float64), 0) / self.scales[0] * 2.0**self.spike_exp
        return to_lava(np.clip(np.rint(units), 0, PAYLOAD_LIMIT - 1).astype(np.int64), self.shapes[0])

    def _output(self, sigma: np.ndarray) -> np.ndarray:
        k = self.readout["population"]
        z = to_graph(sigma, self.shapes[k]).astype(np.float64) * self.readout_scale + self.readout_bias
        return z.reshape(len(z), *self.readout["shape"]).astype(np.float32)

    def run(self, x: np.ndarray, steps: int, *, checkpoints: tuple[int, ...] = ()) -> GradedRun:
        """Emulate ``steps`` graph steps (``steps + delay`` Loihi steps) on analog inputs x (B, *input shape)."""
        wanted = wanted_steps(steps, checkpoints)
        m0 = self.input_payload(x)
        batch, delay = len(m0), self.delay
        spiking = list(range(delay))  # populations that send payloads (the readout sends none)
        shapes = [lava_shape(self.shapes[0]), *(layer.shape for layer in self.layers)]
        fan_out = {k: self.layers[k].synapse.fan_out.reshape(shapes[k]) for k in spiking}
        sent = {k: np.zeros(batch, np.int64) for k in spiking}
        synops = {k: np.zeros(batch, np.int64) for k in spiking}
        sent[0] = np.count_nonzero(m0.reshape(batch, -1), axis=1).astype(np.int64)  # the host's, at step 1 only
        synops[0] = weighted(m0 != 0, fan_out[0])
        (input_name,) = self.host.inputs
        per_step = input_synapses(self.host)
        marks = {c: {self.names[0]: sent[0].copy()} for c in wanted}
        synop_marks = {
            c: {input_name: np.full(batch, c * per_step, np.int64), self.names[0]: synops[0]} for c in wanted
        }
        values: dict[int, np.ndarray] = {}

        def record(t: int, index: int, payload: np.ndarray, sigma: np.ndarray, act: np.ndarray) -> None:
            k = index + 1
            local = t - k
            if not 1 <= local <= steps:
                return
            if k in sent and k:
                nonzero = payload != 0
                sent[k] += np.count_nonzero(nonzero.reshape(batch, -1), axis=1)
                synops[k] += weighted(nonzero, fan_out[k])
                if local in marks:
                    marks[local][self.names[k]] = sent[k].copy()
                    synop_marks[local][self.names[k]] = synops[k].copy()
            if k == delay and local in marks:
                values[local] = payload.copy()

        run_layers(self.layers, m0, steps + delay, self.spike_exp, record)
        outputs = {c: self._output(values[c]) for c in wanted}
        counted = {"outputs": outputs, "sent": sent, "marks": marks, "synop_marks": synop_marks}
        saturations = np.zeros((batch, len(self.names)), np.int64)  # sigma-delta state is not saturated
        return joined_run(self, {**counted, "v_saturations": saturations}, checkpoints)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The fixed-point ANN the network approximates: the same integer weights and biases in float arithmetic,
        without flooring each change (graph layout, cross-correlation, independent of the emulator's layout)."""
        units = to_graph(self.input_payload(x), self.shapes[0]).astype(np.float64) / 2.0**self.spike_exp
        for k, layer in enumerate(self.layers, start=1):
            w, spec = _graph_weights(layer.synapse, self.shapes[k - 1], self.shapes[k])
            if spec is None:
                z = units.reshape(len(units), -1) @ w.T.astype(np.float64)
            else:
                stride, padding, groups = spec
                z = conv2d_nchw(units, w.astype(np.float64), stride, padding, (1, 1), groups)
            z = z.reshape(len(units), *self.shapes[k])
            if layer.sigma_output:
                sigma = to_lava(z * 2.0**self.spike_exp, self.shapes[k])
                return self._output(sigma)
            bias = to_graph(np.broadcast_to(np.asarray(layer.bias, np.float64), (1, *layer.shape)), self.shapes[k])
            units = np.maximum(z / 2.0**STATE_EXP + bias, 0)
        raise ValueError("an SDNN program ends with its Sigma readout")

    # -- files ------------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> list[str]:
        """Write sdnn.json and sdnn.npz into ``folder`` (the host graph is the binary program's host.json)."""
        arrays: dict[str, np.ndarray] = {"readout/bias": np.asarray(self.readout_bias, np.float32)}
        layers = []
        for k, name in enumerate(self.names):
            entry: dict[str, Any] = {
                "name": name,
                "role": self.roles[k],
                "shape": list(self.shapes[k]),
                "lava_shape": list(lava_shape(self.shapes[k])),
                "scale": self.scales[k],
            }
            if k:
                layer = self.layers[k - 1]
                bias = np.asarray(layer.bias)
                if bias.ndim:
                    arrays[f"{k}/bias"] = bias.astype(np.int32)
                entry["neuron"] = {
                    "type": "Sigma" if layer.sigma_output else "SigmaDelta",
                    "vth": int(layer.vth),
                    "bias": {"array": f"{k}/bias"} if bias.ndim else int(bias),
                }
                entry["synapse"] = synapse_entry(layer.synapse, f"{k}/weights", arrays)
                entry["synapse"]["num_message_bits"] = MESSAGE_BITS
            layers.append(entry)
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "mode": "graded",
            "neuron": "Lava's SigmaDelta (ReLU) and a Sigma readout, netx's SDNN: see neurodeploy_loihi.sdnn",
            "layout": "populations in Lava order: (X, Y, C) = (W, H, C) for convolutional ones, flat otherwise",
            "delay": self.delay,
            "spike_exp": self.spike_exp,
            "state_exp": STATE_EXP,
            "message_bits": MESSAGE_BITS,
            "input": {"host_graph": "host", "population": 0, "scale": self.scales[0], "sent": "once, at step 1"},
            "layers": layers,
            "readout": {**self.readout, "scale": self.readout_scale, "bias": {"array": "readout/bias"}},
        }
        (folder / DESCRIPTION).write_bytes(dumps_json(doc))
        write_npz(folder / ARRAYS, arrays)
        files = [DESCRIPTION, ARRAYS]
        if not (folder / "host.json").exists():
            save_graph(self.host, folder, "host")
            files += ["host.json", "host.npz"]
        return files

    @classmethod
    def load(cls, source: Any) -> "SdnnProgram":
        """Read what :meth:`save` wrote; errors name the file and the problem."""
        doc, value, path = read_description(source, DESCRIPTION, ARRAYS, FORMAT, FORMAT_VERSION, SDNN_SCHEMA)
        host = open_files(source).read_graph(doc["input"]["host_graph"])
        where = "its header"
        try:
            entries = doc["layers"]
            layers = []
            for entry in entries[1:]:
                where = f"layer {entry['name']!r}"
                n = entry["neuron"]
                layers.append(
                    SdnnLayer(
                        synapse_of(entry["synapse"], value),
                        bias=compact(np.asarray(value(n["bias"]))),
                        vth=int(n["vth"]),
                        sigma_output=n["type"] == "Sigma",
                        name=entry["name"],
                    )
                )
            where = "its header"
            readout = dict(doc["readout"])
            scale, bias = float(readout.pop("scale")), value(readout.pop("bias"), np.float32)
            names = [e["name"] for e in entries]
            shapes = [tuple(e["shape"]) for e in entries]
            program = cls(
                host=host,
                layers=layers,
                names=names,
                roles=[e["role"] for e in entries],
                shapes=shapes,
                scales=[float(e["scale"]) for e in entries],
                readout=readout,
                readout_scale=scale,
                readout_bias=np.asarray(bias, np.float64),
                spike_exp=int(doc["spike_exp"]),
            )
            _check(program)
            return program
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError, IRVerificationError) as exc:
            raise ArtifactError(f"{path} does not describe a valid SDNN Loihi network ({where}): {exc}") from exc


SDNN_SCHEMA = Dict(
    {
        "format": Str(),
        "version": Int(),
        "spike_exp": Int(0, 7),
        "state_exp": Int(STATE_EXP, STATE_EXP),
        "message_bits": Int(MESSAGE_BITS, MESSAGE_BITS),
        "input": Dict({"host_graph": HOST_STEM, "scale": POSITIVE}, {"population": Int(0), "sent": Str()}),
        "layers": List(
            Dict(
                POPULATION_KEYS,
                {
                    "neuron": Dict(
                        {
                            "type": Str(choices=("SigmaDelta", "Sigma")),
                            "vth": Int(0, (1 << 17) - 1),
                            "bias": OneOf(Int(), Dict({"array": Str()})),
                        }
                    ),
                    "synapse": Optional(synapse_schema({"num_message_bits": Int()})),
                },
            ),
            min_len=2,
        ),
        "readout": Dict(
            {
                "kind": Str(choices=("membrane",)),
                "population": Int(1),
                "output": Str(),
                "shape": List(Int(1), min_len=1),
                "scale": Number(1e-30, 1e30),
                "bias": Dict({"array": Str()}),
            }
        ),
    },
    {"delay": Int(0), "mode": Str(), "neuron": Str(), "layout": Str()},
)
"""sdnn.json: the type of every key :meth:`SdnnProgram.load` reads."""


def _check(program: SdnnProgram) -> None:
    """What the files must agree on beyond their types."""
    n = len(program.names)
    if len(program.layers) != n - 1 or program.readout["population"] != n - 1:
        raise ValueError("the readout must be the last population, and every population but the first has a synapse")
    for k, layer in enumerate(program.layers, start=1):
        if prod(program.shapes[k]) != prod(layer.shape):
            raise ValueError(f"layer {program.names[k]!r}: shape {program.shapes[k]} does not hold {layer.shape}")
        if layer.sigma_output != (k == n - 1):
            raise ValueError(f"layer {program.names[k]!r}: only the readout is a Sigma")
        below = program.layers[k - 2].shape if k > 1 else lava_shape(program.shapes[0])
        needed = layer.synapse.input_shape
        if prod(below) != prod(needed):
            raise ValueError(f"layer {program.names[k]!r} reads {tuple(needed)}; the population below is {below}")
    if program.readout_bias.shape != tuple(program.shapes[-1]):
        raise ValueError(f"the readout bias has shape {program.readout_bias.shape}, not {tuple(program.shapes[-1])}")


# -- quantization --------------------------------------------------------------------------------------------


def quantize_sdnn(lowered: Lowered, calibration: np.ndarray | None, spike_exp: int = SPIKE_EXP) -> SdnnProgram:
    """The SDNN form of ``lowered`` (see the module); GradedError naming the layer where it cannot be held."""
    pops = lowered.populations
    for pop in pops:
        if isinstance(pop.synapse, ConvSpec) and pop.synapse.dilation != (1, 1):
            raise GradedError(f"the SDNN graded program maps undilated convolutions only ({pop.name!r} is dilated)")
        if pop.source is not None:
            raise GradedError(
                f"the SDNN graded program maps chains only: {pop.name!r} reads {pops[pop.source].name!r}, a branch"
            )
        if pop.skips:
            joined = (
                f"{pop.adds[0]!r} (a residual Add or a Concat) joins branches into {pop.name!r}"
                if pop.adds
                else (
                    f"{pop.name!r} reads a pooling that is no convolution's block (a convolution and its corrections)"
                )
            )
            raise GradedError(f"the SDNN graded program maps chains only: {joined} (binary mode runs it)")
    if lowered.readout.kind != "membrane" or lowered.readout.population != len(pops) - 1:
        raise GradedError("the SDNN graded program needs a linear readout after the last neurons (a Sigma)")
    if len(pops) < 2:
        raise GradedError("the SDNN graded program needs a population on the chip")
    if calibration is not None and len(calibration):
        ranges = [float(a.max(initial=0)) if a.size else 0.0 for a in _float_forward(lowered, calibration)]
        source = f"calibration ({len(calibration)} samples, largest activation)"
    else:
        ranges, source = [1.0] * len(pops), "converter thresholds (no calibration data)"
    scales = [max(ranges[0], 1e-12) / UNITS]
    layers: list[SdnnLayer] = []
    report: list[dict[str, Any]] = [{"name": pops[0].name, "role": "input", "range": ranges[0], "scale": scales[0]}]
    unit = float(1 << STATE_EXP)
    for k, pop in enumerate(pops[1:], start=1):
        where = f"layer {pop.name!r}"
        w = pop.synapse.weight.astype(np.float64)
        w_abs = float(np.abs(w).max(initial=0))
        readout = pop.role == "readout"
        if readout:
            factor = WEIGHT_TOP / w_abs if w_abs else 1.0
            scales.append(scales[k - 1] / (factor * 2.0**spike_exp))
            w_int = np.clip(2 * np.rint(w * factor / 2), WEIGHT_BOTTOM, WEIGHT_TOP).astype(np.int64)
            bias_units = np.zeros(1, np.int64)
        else:
            scales.append(max(max(ranges[k], 1e-12) / UNITS, scales[k - 1] * unit * w_abs / WEIGHT_TOP))
            ratio = scales[k - 1] / scales[k] * unit
            w_int = np.clip(2 * np.rint(w * ratio / 2), WEIGHT_BOTTOM, WEIGHT_TOP).astype(np.int64)
            bias_units = np.rint(pop.bias.astype(np.float64) / scales[k]).astype(np.int64)
            limit = STATE_LIMIT >> (spike_exp + STATE_EXP)
            if np.abs(bias_units).max(initial=0) >= limit:
                raise GradedError(
                    f"{where}: a bias of {int(np.abs(bias_units).max())} units does not fit the 24-bit state at "
                    f"spike_exp {spike_exp} (at most {limit - 1}); the layer's bias is far larger than its activations"
                )
        synapse = lava_synapse(pop.synapse, w_int, 0, fp.SignMode.MIXED, pops[k - 1].shape, pop.shape)
        bias = 0 if readout else compact(to_lava(np.broadcast_to(bias_units, pop.shape)[None], pop.shape)[0])
        layers.append(SdnnLayer(synapse, bias=bias, vth=0, sigma_output=readout, name=pop.name))
        report.append(
            {
                "name": pop.name,
                "role": pop.role,
                "range": ranges[k],
                "scale": scales[k],
                "units_at_range": None if readout else round(ranges[k] / scales[k], 2),
                "weights": {
                    "type": "conv" if isinstance(pop.synapse, ConvSpec) else "dense",
                    "max_abs": int(np.abs(w_int).max(initial=0)),
                    "zeroed": int(np.count_nonzero((w != 0) & (w_int == 0))),
                },
            }
        )
    last = pops[-1]
    readout = {
        "kind": "membrane",
        "population": len(pops) - 1,
        "output": lowered.readout.output,
        "shape": list(lowered.readout.shape),
    }
    return SdnnProgram(
        host=lowered.host,
        layers=layers,
        names=[p.name for p in pops],
        roles=[p.role for p in pops],
        shapes=[tuple(p.shape) for p in pops],
        scales=scales,
        readout=readout,
        readout_scale=scales[-1],
        readout_bias=np.broadcast_to(last.bias.astype(np.float64), last.shape).copy(),
        spike_exp=spike_exp,
        report={"scale_source": source, "spike_exp": spike_exp, "units": UNITS, "layers": report},
    )


def emit_sdnn(
    lowered: Lowered, calibration: np.ndarray | None, folder: Path
) -> tuple[list[str], dict[str, Any], "SdnnProgram | None"]:
    """Write the SDNN graded program and its netx file; return the files, the report/manifest note and the program.
    A network it cannot hold is no compile error (binary mode still runs): the note gives the reason."""
    from neurodeploy_loihi.netx import NetxError, write_sdnn_net

    try:
        program = quantize_sdnn(lowered, calibration)
    except GradedError as exc:
        return [], {"available": False, "kind": "sdnn", "reason": str(exc)}, None
    files = program.save(folder)
    note: dict[str, Any] = {
        "available": True,
        "kind": "sdnn",
        "file": DESCRIPTION,
        "spike_exp": program.spike_exp,
        "pipeline_delay": program.delay,
        "pipeline_delay_note": (
            f"graded payloads pass one synapse per step: the output after T steps is read at Loihi step T + "
            f"{program.delay}; sigma-delta neurons floor each change they send, so outputs approximate the "
            "fixed-point ANN (see neurodeploy_loihi.sdnn)"
        ),
    }
    try:
        write_sdnn_net(program, folder / NET_FILE)
        files.append(NET_FILE)
        note["netx"] = {
            "written": True,
            "file": NET_FILE,
            "load": f"netx.hdf5.Network(net_config, input_message_bits={MESSAGE_BITS}, spike_exp={program.spike_exp}); "
            "send the host's input payloads into its inp at step 1",
        }
    except NetxError as exc:
        note["netx"] = {"written": False, "reason": str(exc)}
    return files, {**note, "quantization": program.report}, program
