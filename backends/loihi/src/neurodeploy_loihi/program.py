"""The Loihi program an artifact holds, how it is written and read, and how it runs in the emulator.

``loihi.json`` describes the network (populations in chain order, their synapses, neuron parameters, the
readout, the pipeline delay); ``loihi.npz`` holds every integer array (weights in Lava's layout, per-neuron
biases and initial voltages); ``host.json``/``host.npz`` is the float graph the host runs on each input to get
the input population's current. Both the emulator and the Lava runner are built from these files alone.

Event input (``input.spikes`` in loihi.json): population 0 has a synapse that reads each step's frame as graded
spikes (payload = the pixel's event count) sent by the host, one step late, so every depth below is one more; the
host graph then passes the frames on unchanged.

Time: the input population (index 0) has no synapse; population k receives the spikes of k - 1 one step after
they were emitted, so it computes the graph's step t at Loihi step t + k. A run of T (graph) steps therefore
takes T + delay Loihi steps, where delay is the readout's depth (the number of synapses), and the readout after
T steps is read at Loihi step T + delay. Spikes of population k are counted over its Loihi steps k + 1 .. k + T.
Where residual branches or the inputs of a Concat join, k is the population's depth (``Network.depths``: its
longest path of synapses), and a layer's further synapses (``skips``: source population, delay, weights) follow
its main one in the files.

SynOps (as :mod:`neurodeploy.metrics` defines them): each spike of a population, over the same steps its spikes
are counted, costs one operation per synapse leaving its neuron, the nonzero integer weights of every Dense / Conv
(main or skip) that reads the population (:meth:`Network.fan_out`); the readout sends nothing. The direct input
counts as the reference target counts it, dense: every element every step times its synapses into the input
population through the host's ops (:func:`input_synapses`), keyed by the input's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.artifact import open_description, open_files
from neurodeploy.errors import ArtifactError, DataError, IRVerificationError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import dumps_json, save_graph, write_npz
from neurodeploy.metrics import input_synapses
from neurodeploy.readout import readout_skip
from neurodeploy.schema import Dict, Int, List, Number, OneOf, Optional, Schema, Str, Switch
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi import fused
from neurodeploy_loihi.emulator import (
    BIAS_START_MAX,
    ConvSynapse,
    DenseSynapse,
    Layer,
    Network,
    Neuron,
    Skip,
    SparseSynapse,
    StepState,
)
from neurodeploy_loihi.quantize import EXP_MAX, VTH_MAX, input_bias, max_bias, to_graph, to_lava

FORMAT = "neurodeploy-loihi"
FORMAT_VERSION = 1
DESCRIPTION = "loihi.json"
ARRAYS = "loihi.npz"
HOST = "host"


_ARRAY = Dict({"array": Str()})
"""``{"array": key}``: an array of the program's npz."""
_INT_OR_ARRAY = OneOf(Int(), _ARRAY)
_SHAPE = List(Int(1), min_len=1)
HOST_STEM = Str(
    pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,122}", meaning="the plain name of a graph of the artifact (no folders)"
)
"""``input.host_graph``: the stem of ``STEM.json`` / ``STEM.npz``, files the artifact must list."""


def synapse_schema(extra: dict[str, Schema] | None = None) -> Switch:
    """A synapse entry of loihi.json / graded.json (:func:`synapse_entry`), with ``extra`` required keys."""
    extra = extra or {}
    dense = {
        "weights": _ARRAY,
        "weight_exp": Int(),
        "num_weight_bits": Int(),
        "sign_mode": Str(choices=tuple(m.name for m in fp.SignMode)),
    }
    conv = {
        "weights": _ARRAY,
        "input_shape": List(Int(1), length=3),
        "stride": List(Int(), length=2),
        "padding": List(Int(), length=2),
        "dilation": List(Int(), length=2),
        "groups": Int(),
        "pool": List(Int(), length=2),
    }
    optional = {"delay": Int(0), "lag": Int(0)} | ({} if "source" in extra else {"source": Int(0)})  # (a main one's)
    return Switch(
        "type",
        {
            "dense": Dict({**dense, **extra}, optional),
            "sparse": Dict(
                {**dense, **extra, "rows": _ARRAY, "cols": _ARRAY, "shape": List(Int(1), length=2)}, optional
            ),
            "conv": Dict({**conv, **extra}, optional),
        },
    )


READOUT_SCHEMA = Dict(
    {"kind": Str(choices=("membrane", "spikes")), "population": Int(0), "output": Str(), "shape": _SHAPE},
    {"scale": _ARRAY},
)
POSITIVE = Number(1e-30, 1e30)
"""A scale: units of one number per unit of another, so above zero."""

PROGRAM_SCHEMA = Dict(
    {
        "format": Str(),
        "version": Int(),
        "mode": Str(),
        "input": Dict(
            {
                "host_graph": HOST_STEM,
                "vth": Int(0, VTH_MAX),
                "current_clip": List(Int(-max_bias(None), max_bias(None)), length=2),
                "bias_exp": Optional(Int(0, EXP_MAX)),
            },
            {"population": Int(0), "spikes": Dict({"message_bits": Int(1, fp.MAX_MESSAGE_BITS)})},
        ),
        "layers": List(
            Dict(
                {
                    "name": Str(),
                    "role": Str(choices=("input", "hidden", "readout")),
                    "shape": _SHAPE,
                    "lava_shape": _SHAPE,
                    "scale": POSITIVE,
                    "neuron": Dict(
                        {
                            "kind": Str(),
                            "du": Int(),
                            "dv": Int(),
                            "vth": Int(),
                            "bias_mant": _INT_OR_ARRAY,
                            "bias_exp": _INT_OR_ARRAY,
                            "v0": _INT_OR_ARRAY,
                        },
                        {"bias_start": Int(0, BIAS_START_MAX)},
                    ),
                    "synapse": Optional(synapse_schema()),
                },
                {"skips": List(synapse_schema({"source": Int(0)}))},
            ),
            min_len=1,
        ),
        "readout": READOUT_SCHEMA,
    },
    {"notes": List(Str()), "delay": Int(0)},
)
"""loihi.json: the type of every key :meth:`Program.load` reads."""


def read_description(
    source: Any, description: str, arrays_file: str, fmt: str, version: int, schema: Schema
) -> tuple[dict[str, Any], Callable[..., Any], str]:
    """A program's JSON description (checked against ``schema``), a function that resolves its ``{"array":
    name}`` entries from the npz beside it (as ``dtype``, int64 by default; other values pass through), and how
    messages name the description. ``source``: an Artifact (its files are checked against the manifest), a
    :class:`~neurodeploy.artifact.Folder`, or a path (:func:`~neurodeploy.artifact.open_files`). Errors are
    ArtifactErrors naming the file and the problem."""
    files, doc, where = open_description(source, description, fmt, version, schema)
    arrays = files.read_npz(arrays_file)

    def value(v: Any, dtype: type = np.int64) -> Any:
        if isinstance(v, dict) and set(v) == {"array"}:
            if v["array"] not in arrays:
                raise ArtifactError(f"{files.where(arrays_file)} has no array {v['array']!r}")
            array = arrays[v["array"]]
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise ArtifactError(f"{files.where(arrays_file)}: array {v['array']!r} holds NaN or infinite values")
            return array.astype(dtype)
        return v

    return doc, value, where


def check_layout(
    names: list[str], shapes: list[tuple[int, ...]], layers: list[Any], readout: dict, host: Graph, host_file: str
) -> None:
    """What the files must agree on beyond their types: each population's graph shape holds as many neurons as
    its Lava shape, the readout names a population of its size, and the host graph feeds population 0."""
    for k, layer in enumerate(layers):
        if prod(shapes[k]) != prod(layer.shape):
            raise ValueError(f"layer {names[k]!r}: shape {shapes[k]} does not hold its {layer.shape} neurons")
    k = readout["population"]
    if not 0 <= k < len(layers):
        raise ValueError(f"the readout reads population {k}; there are {len(layers)}")
    if prod(readout["shape"]) != prod(shapes[k]):
        raise ValueError(f"the readout's shape {readout['shape']} does not fit population {k} {shapes[k]}")
    if len(host.inputs) != 1 or len(host.outputs) != 1:
        raise ValueError(
            f"the host graph {host_file} has {len(host.inputs)} inputs and {len(host.outputs)} outputs; "
            "expected one each"
        )
    current = host.types()[host.outputs[0]]
    first = layers[0].synapse
    if first is not None:  # event input: the host passes the frames on to population 0's synapse
        if current.size != prod(first.input_shape):
            raise ValueError(f"the output {current} of the host graph {host_file} does not fit the first synapse")
    elif current.size != prod(shapes[0]):
        raise ValueError(
            f"the output {current} of the host graph {host_file} does not fit the input population {shapes[0]}"
        )


@dataclass
class Program:
    """An integer Loihi network with its host-side input stage and its readout.

    ``names``/``roles``/``shapes``: per population, its name (the IF op, or the readout's producer), role
    (``input``, ``hidden``, ``readout``) and shape in the graph's layout. ``scales``: integer units of v per
    float unit (vth << 6 for spiking populations). ``readout``: ``{"kind": "membrane" | "spikes", "population": k,
    "output": name, "shape": [...]}`` plus, for spikes, ``scale`` (per output element, in ``readout_scale``)."""

    mode: str
    host: Graph
    network: Network
    names: list[str]
    roles: list[str]
    shapes: list[tuple[int, ...]]
    scales: list[float]
    input_vth: int
    input_clip: tuple[int, int]
    input_bias_exp: int | None
    readout: dict[str, Any]
    readout_scale: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def delay(self) -> int:
        """Loihi steps between the input population and the readout population: one per synapse on the longest
        path (the readout's depth)."""
        return int(self.network.depths[int(self.readout["population"])])

    # -- files ------------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> list[str]:
        """Write loihi.json, loihi.npz, host.json and host.npz into ``folder``; return their names."""
        arrays: dict[str, np.ndarray] = {}
        layers = []
        for k, layer in enumerate(self.network.layers):
            neuron = layer.neuron
            entry: dict[str, Any] = {
                "name": self.names[k],
                "role": self.roles[k],
                "shape": list(self.shapes[k]),
                "lava_shape": list(layer.shape),
                "scale": self.scales[k],
                "neuron": {"kind": neuron.kind, "du": int(neuron.du), "dv": int(neuron.dv), "vth": int(neuron.vth)},
            }
            entry["neuron"].update(neuron_entries(neuron, ("bias_mant", "bias_exp", "v0"), k, arrays))
            if neuron.bias_start:
                entry["neuron"]["bias_start"] = int(neuron.bias_start)
            entry["synapse"] = synapse_entry(layer.synapse, f"{k}/weights", arrays)
            if layer.delay:
                entry["synapse"]["delay"] = int(layer.delay)
            if layer.lag:  # of the delay, the steps the network asks for (a Delay between two layers)
                entry["synapse"]["lag"] = int(layer.lag)
            if layer.source is not None:  # a parallel branch: the main synapse reads an earlier population
                entry["synapse"]["source"] = int(layer.source)
            if layer.skips:
                entry["skips"] = [
                    {"source": int(skip.source), "delay": int(skip.delay)}
                    | ({"lag": int(skip.lag)} if skip.lag else {})
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
            "mode": self.mode,
            "layout": "populations in Lava order: (X, Y, C) = (W, H, C) for convolutional ones, flat otherwise",
            "delay": self.delay,
            "input": {
                "host_graph": HOST,
                "population": 0,
                "vth": self.input_vth,
                "current_clip": list(self.input_clip),
                "bias_exp": self.input_bias_exp,
            },
            "layers": layers,
            "readout": readout,
            "notes": list(self.notes),
        }
        if self.network.input_bits:  # event input: graded spikes into population 0's synapse, not a current
            doc["input"]["spikes"] = {"message_bits": self.network.input_bits}
        (folder / DESCRIPTION).write_bytes(dumps_json(doc))
        write_npz(folder / ARRAYS, arrays)
        save_graph(self.host, folder, HOST)
        return [DESCRIPTION, ARRAYS, f"{HOST}.json", f"{HOST}.npz"]

    @classmethod
    def load(cls, source: Any) -> Program:
        """Read what :meth:`save` wrote: from an Artifact (every file listed and checked against the manifest),
        a :class:`~neurodeploy.artifact.Folder`, or a path (an artifact's when it has a manifest). Errors are
        ArtifactErrors naming the file and the problem."""
        doc, value, path = read_description(source, DESCRIPTION, ARRAYS, FORMAT, FORMAT_VERSION, PROGRAM_SCHEMA)
        host = open_files(source).read_graph(doc["input"]["host_graph"])

        layers = []
        where = "its header"
        try:
            for entry in doc["layers"]:
                where = f"layer {entry['name']!r}"
                n = entry["neuron"]
                neuron = Neuron(
                    du=n["du"],
                    dv=n["dv"],
                    vth=n["vth"],
                    kind=n["kind"],
                    bias_mant=value(n["bias_mant"]),
                    bias_exp=value(n["bias_exp"]),
                    v0=value(n["v0"]),
                    bias_start=n.get("bias_start", 0),
                )
                s = entry["synapse"]
                synapse = None if s is None else synapse_of(s, value)
                skips = tuple(
                    Skip(e["source"], synapse_of(e, value), e.get("delay", 0), e.get("lag", 0))
                    for e in entry.get("skips", [])
                )
                delay = 0 if s is None else s.get("delay", 0)
                source = None if s is None else s.get("source")
                lag = 0 if s is None else s.get("lag", 0)
                shape = tuple(entry["lava_shape"])
                layers.append(Layer(synapse, neuron, entry["name"], shape, delay, skips, source, lag))
            where = "its header"
            spikes = doc["input"].get("spikes")
            if (spikes is not None) != (layers[0].synapse is not None):
                raise ValueError("population 0 has a synapse exactly when the input is spikes (input.spikes)")
            network = Network(layers, input_bits=0 if spikes is None else spikes["message_bits"])
            readout = dict(doc["readout"])
            scale = readout.pop("scale", None)
            readout_scale = None if scale is None else value(scale, np.float32)
            if readout["kind"] == "spikes" and readout_scale is None:
                raise ValueError("a spike readout needs its scale")
            inp = doc["input"]
            low, high = inp["current_clip"]
            if low > high:
                raise ValueError(f"the input's current_clip {[low, high]} is empty")
            if doc["layers"][0]["role"] == "input" and inp["vth"] != network.layers[0].neuron.vth:
                raise ValueError(f"the input's vth {inp['vth']} is not its population's {network.layers[0].neuron.vth}")
            names = [e["name"] for e in doc["layers"]]
            shapes = [tuple(e["shape"]) for e in doc["layers"]]
            check_layout(names, shapes, network.layers, readout, host, f"{doc['input']['host_graph']}.json")
            return cls(
                mode=doc["mode"],
                host=host,
                network=network,
                names=names,
                roles=[e["role"] for e in doc["layers"]],
                shapes=shapes,
                scales=[float(e["scale"]) for e in doc["layers"]],
                input_vth=int(inp["vth"]),
                input_clip=tuple(inp["current_clip"]),
                input_bias_exp=inp["bias_exp"],
                readout=readout,
                readout_scale=readout_scale,
                notes=list(doc.get("notes", [])),
            )
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError, IRVerificationError) as exc:
            raise ArtifactError(f"{path} does not describe a valid Loihi network ({where}): {exc}") from exc

    # -- running ----------------------------------------------------------------------------------------------
    @cached_property
    def _input_synapses(self) -> int:
        return input_synapses(self.host)

    def input_bias(self, x: np.ndarray, checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The input population's (bias_mant, bias_exp) per sample, Lava layout: the host graph's float32
        current (in thresholds), scaled, rounded and clipped (:func:`neurodeploy_loihi.quantize.input_bias`).
        ``checked``: x already passed the input policy (:func:`neurodeploy.ir.interpret.check_inputs`)."""
        (name,) = self.host.inputs
        inputs = {name: x} if checked else x
        currents = interpret.run(self.host, inputs, checked=checked)[self.host.outputs[0]]
        return input_bias(currents, self.shapes[0], self.input_vth, self.input_clip, self.input_bias_exp)

    def input_frames(self, x: np.ndarray) -> np.ndarray:
        """Event frames (B, F, *graph input shape) of counts -> the graded spikes the host sends, (B, F, *Lava
        shape) int64; a count above the payload's range is an error naming it."""
        x = np.asarray(x)
        shape = tuple(self.host.types()[self.host.outputs[0]].shape)
        if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise DataError(f"event input must be (batch, frames, *{shape}), got {x.shape}")
        top = (1 << self.network.input_bits) - 1
        if x.size and (not np.all(np.isfinite(x)) or not np.array_equal(x, np.rint(x)) or x.min() < 0):
            raise DataError("event input must hold whole event counts >= 0 per pixel and frame")
        if x.size and x.max() > top:
            raise DataError(
                f"an event frame holds {int(x.max())} events at one pixel; the chip's input spikes carry at most "
                f"{top} ({self.network.input_bits}-bit payloads): bin the events into shorter frames"
            )
        batch, count = x.shape[:2]
        lava = to_lava(x.reshape(batch * count, *shape).astype(np.int64), shape)
        return lava.reshape(batch, count, *lava.shape[1:])

    def run(
        self,
        x: np.ndarray,
        steps: int,
        *,
        checkpoints: tuple[int, ...] = (),
        counts: bool = False,
        observe: Any = None,
        trim: bool = True,
        readout_delay: int = 0,
    ) -> RunResult:
        """Emulate ``steps`` graph steps (``steps + delay`` Loihi steps) on analog inputs x (B, *input shape).

        ``trim``: each population computes only the Loihi steps that can change the result
        (:meth:`~neurodeploy_loihi.emulator.Network.windows`: from its first input, when it is quiet before it, to
        the last step whose spikes still reach the readout or are counted, depth + ``steps``); the outputs, spike
        counts and SynOps are those of computing every step (a test checks), and ``stats`` counts the computed
        steps. ``observe`` sees the computed steps only. ``readout_delay`` D: the readout after t graph steps
        (the outputs, each checkpoint) is the readout's change from graph step min(D, t // 2) to t
        (:func:`neurodeploy.readout.readout_skip`), over the steps between: v read at both steps, as a host
        would on a board."""
        if steps < 1:
            raise DataError(f"steps must be >= 1, got {steps}")
        top = self.readout["population"]
        roles = [role == "readout" for role in self.roles]
        compiled = fused.accepts(self.network, roles, top, observe)  # (not with event input: a first synapse)
        frames, bias = None, None
        if self.network.input_bits:  # event frames (B, F, *input shape) -> graded spikes into population 0
            frames = self.input_frames(x)
            batch = len(frames)
        else:
            (x,) = interpret.check_inputs(self.host, np.asarray(x, np.float32)).values()  # (B, ...), the policy
            if compiled:  # each thread computes its slice's input bias (the host's part), then runs it
                batch = len(x)
            else:
                bias = self.input_bias(x, checked=True)
                batch = len(bias[0])
        delay = self.delay
        total = steps + delay
        read = sorted({c for c in checkpoints if 1 <= c <= steps} | {steps})
        skips = {c: readout_skip(readout_delay, c) for c in read}
        wanted = sorted(set(read) | set(skips.values()) - {0})  # the readout's marks, the skipped steps' too
        layers = self.network.layers
        spiking = [k for k, role in enumerate(self.roles) if role != "readout"]
        counted: dict[int, np.ndarray] = {}  # per spiking population, (B, *shape) spike counts
        marks: dict[int, dict[str, np.ndarray]] = {c: {} for c in wanted}
        (input_name,) = self.host.inputs
        if frames is None:
            per_step = self._input_synapses  # the dense input: every element, every step
            synop_marks = {c: {input_name: np.full(batch, c * per_step, np.int64)} for c in wanted}
        else:  # each nonzero count of a frame is one graded spike, through the first synapse's fan-out
            fan_out = self.network.layers[0].synapse.fan_out.reshape(-1)  # per input element, Lava's flat order
            sent = np.cumsum((frames != 0).reshape(batch, len(frames[0]), -1).astype(np.int64) @ fan_out, axis=1)
            last = sent.shape[1]
            synop_marks = {
                c: {input_name: sent[:, min(c, last) - 1] if last else np.zeros(batch, np.int64)} for c in wanted
            }
        readouts: dict[int, np.ndarray] = {}
        baseline = [np.zeros((batch, *layers[-1].shape), np.int64)]
        stats: dict[str, Any] = {"readout_spikes": 0}  # and, per layer, the trace's overflow statistics

        depths = self.network.depths
        fan_out: list[np.ndarray] = []  # the step-by-step path's SynOps weights (set below, before it runs)

        def record(state: StepState) -> None:
            k, t = state.k, state.t
            local = t - depths[k]  # the graph's step this population computes now
            if k in counted:
                if 1 <= local <= steps:
                    counted[k] += state.spikes
                if local in marks:
                    marks[local][self.names[k]] = counted[k].reshape(batch, -1).sum(axis=1)
                    synop_marks[local][self.names[k]] = weighted(counted[k], fan_out[k])
                if k == top and local in marks:
                    readouts[local] = counted[k].copy()
            else:
                if local == 0:  # the readout's v before its first input: what the integral starts from
                    baseline[0] = state.v.copy()
                if 1 <= local <= steps:
                    stats["readout_spikes"] += int(np.count_nonzero(state.spikes))
                if local in marks:
                    readouts[local] = state.v - baseline[0]
            if observe is not None:
                observe(state)

        windows = self.network.windows(total, [d + steps for d in depths]) if trim else None
        if compiled:  # one compiled call: the same integers
            with fused.quiet_blas():  # one BLAS thread per run thread: BLAS threads left spinning take their cores
                done = fused.run(
                    self.network,
                    lambda lo, hi: fp.effective_bias(*self.input_bias(x[lo:hi], checked=True)),
                    batch,
                    total,
                    steps,
                    windows or [(1, total)] * len(layers),
                    wanted,
                    top,
                    roles,
                    keep_counts=counts,
                )
            spikes = {self.names[k]: done.sums[:, k, -1] for k in spiking}  # the last checkpoint is T
            if counts:
                counted = {k: done.population(k).reshape(batch, *layers[k].shape) for k in spiking}
            for i, c in enumerate(wanted):
                for k in spiking:
                    marks[c][self.names[k]] = done.sums[:, k, i]
                    synop_marks[c][self.names[k]] = done.synops[:, k, i]
                readouts[c] = done.readout[:, i].reshape(batch, *layers[top].shape)
            stats["readout_spikes"] = int(done.readout_spikes.sum())
            per_layer = {"u_folds": done.stats[..., 0], "v_saturations": done.stats[..., 1]}
            per_layer |= {"u_max": done.stats[..., 2], "v_max": done.stats[..., 3]}
        else:
            counted.update({k: np.zeros((batch, *layers[k].shape), np.int32) for k in spiking})
            fan_out.extend(self.network.fan_out())
            trace = self.network.run(
                frames,
                steps=total,
                input_bias=bias,
                record_state=False,
                record_spikes=False,
                observe=record,
                windows=windows,
            )
            per_layer = {name: np.stack(getattr(trace, name), axis=1) for name in ("u_folds", "v_saturations")}
            per_layer |= {name: np.stack(getattr(trace, name), axis=1) for name in ("u_max", "v_max")}
            spikes = {self.names[k]: counted[k].reshape(batch, -1).sum(axis=1) for k in spiking}
        for name in ("u_folds", "v_saturations"):  # neuron-steps over the batch
            stats[name] = per_layer[name].sum(axis=0).astype(np.int64)
        for name in ("u_max", "v_max"):  # over the batch and the computed steps
            stats[name] = per_layer[name].max(axis=0, initial=0).astype(np.int64)
        outputs = {c: self._readout(readouts[c] - readouts[s] if s else readouts[c], c - s) for c, s in skips.items()}
        return RunResult(
            outputs=outputs[steps],
            checkpoints={c: outputs[c] for c in wanted if c in checkpoints},
            spikes=spikes,
            checkpoint_spikes={c: marks[c] for c in wanted if c in checkpoints},
            counts={self.names[k]: to_graph(counted[k], self.shapes[k]) for k in spiking} if counts else {},
            neurons=dict(self._neurons),
            stats=stats,
            synops=synop_marks[steps],
            checkpoint_synops={c: synop_marks[c] for c in wanted if c in checkpoints},
        )

    @cached_property
    def _neurons(self) -> dict[str, int]:
        """Each spiking population's neuron count, by its graph name."""
        return {self.names[k]: int(np.prod(self.shapes[k])) for k, role in enumerate(self.roles) if role != "readout"}

    def _readout(self, state: np.ndarray, steps: int) -> np.ndarray:
        """The output after ``steps`` graph steps, in the output's shape: the change of v since the readout's
        first input step, / (scale * T), for a membrane readout (v starts at 0 there unless its delay
        compensation was clipped, or in the netx profile, which has none); spike count / T times the output
        scale for a spike readout."""
        k = self.readout["population"]
        values = to_graph(state, self.shapes[k]).astype(np.float64)
        if self.readout["kind"] == "membrane":
            out = values / (self.scales[k] * steps)
        else:
            out = values / steps * self.readout_scale
        return out.reshape(len(out), *self.readout["shape"]).astype(np.float32)


def weighted(counts: np.ndarray, fan_out: np.ndarray) -> np.ndarray:
    """SynOps per sample: spikes (or messages) per neuron (B, *shape) times each neuron's fan-out (*shape), int64."""
    return counts.reshape(len(counts), -1).astype(np.int64) @ fan_out.reshape(-1)


def neuron_entries(neuron: Any, names: tuple[str, ...], k: int, arrays: dict) -> dict[str, Any]:
    """Population ``k``'s neuron parameters ``names`` for its description: an int where one value serves every
    neuron, else a reference to ``arrays[f"{k}/{name}"]`` (int32)."""
    out: dict[str, Any] = {}
    for name in names:
        value = np.asarray(getattr(neuron, name))
        if value.ndim:
            arrays[f"{k}/{name}"] = value.astype(np.int32)
            out[name] = {"array": f"{k}/{name}"}
        else:
            out[name] = int(value)
    return out


def synapse_entry(synapse: DenseSynapse | ConvSynapse | None, key: str, arrays: dict) -> dict[str, Any] | None:
    """A synapse's description in loihi.json / graded.json (its weights go to ``arrays[key]``)."""
    if isinstance(synapse, DenseSynapse | SparseSynapse):
        arrays[key] = synapse.weights.astype(np.int16)
        entry: dict[str, Any] = {
            "type": "dense" if isinstance(synapse, DenseSynapse) else "sparse",
            "weights": {"array": key},
            "weight_exp": int(synapse.weight_exp),
            "num_weight_bits": int(synapse.num_weight_bits),
            "sign_mode": fp.SignMode(synapse.sign_mode).name,
        }
        if isinstance(synapse, SparseSynapse):
            arrays[f"{key}/rows"], arrays[f"{key}/cols"] = synapse.rows.astype(np.int32), synapse.cols.astype(np.int32)
            entry |= {"rows": {"array": f"{key}/rows"}, "cols": {"array": f"{key}/cols"}, "shape": list(synapse.shape)}
        return entry
    if isinstance(synapse, ConvSynapse):
        arrays[key] = synapse.weights.astype(np.int16)
        return {
            "type": "conv",
            "weights": {"array": key},
            "input_shape": list(synapse.input_shape),
            "stride": list(synapse.stride),
            "padding": list(synapse.padding),
            "dilation": list(synapse.dilation),
            "groups": int(synapse.groups),
            "pool": list(synapse.pool),
        }
    return None


def synapse_of(s: dict[str, Any], value: Any) -> DenseSynapse | ConvSynapse:
    """The synapse a loihi.json / graded.json entry describes."""
    if s["type"] == "sparse":
        return SparseSynapse(
            value(s["rows"]),
            value(s["cols"]),
            value(s["weights"]),
            tuple(s["shape"]),
            weight_exp=s["weight_exp"],
            num_weight_bits=s["num_weight_bits"],
            sign_mode=fp.SignMode[s["sign_mode"]],
        )
    if s["type"] == "dense":
        return DenseSynapse(
            value(s["weights"]),
            weight_exp=s["weight_exp"],
            num_weight_bits=s["num_weight_bits"],
            sign_mode=fp.SignMode[s["sign_mode"]],
        )
    return ConvSynapse(
        value(s["weights"]),
        tuple(s["input_shape"]),
        stride=tuple(s["stride"]),
        padding=tuple(s["padding"]),
        dilation=tuple(s["dilation"]),
        groups=s["groups"],
        pool=tuple(s["pool"]),
    )


@dataclass
class RunResult:
    """Outputs after all steps and at checkpoints; per spiking population, its spikes per sample (and per
    neuron when asked); overflow statistics per layer (``u_folds``, ``v_saturations`` neuron-steps, the largest
    |u| and |v| seen) and how many readout spikes occurred (any means v reached the top of its range); SynOps per
    sample of every spiking population and the input, after all steps and at checkpoints."""

    outputs: np.ndarray
    checkpoints: dict[int, np.ndarray]
    spikes: dict[str, np.ndarray]
    checkpoint_spikes: dict[int, dict[str, np.ndarray]]
    counts: dict[str, np.ndarray]
    neurons: dict[str, int]
    stats: dict[str, Any]
    synops: dict[str, np.ndarray]
    checkpoint_synops: dict[int, dict[str, np.ndarray]]
