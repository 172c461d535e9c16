"""The ``speck`` / ``speck2f`` / ``dynapcnn`` targets: lower a converted graph to Speck cores, check the design
rules, place the layers on cores, quantize, write ``speck.json``, and emulate it (see the package README)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy import readout_calibration
from neurodeploy.backends.base import Backend, CompiledModel, Emitted, EmulationResult, LayerUsage, Plan, ResourceReport
from neurodeploy.data.policy import check_values
from neurodeploy.emulation import Run
from neurodeploy.encoding import Encoding
from neurodeploy.errors import ArtifactError, DataError
from neurodeploy.ir import IF, LIF, interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.readout import Choice, readout_skip
from neurodeploy.schema import validate
from neurodeploy_speck import chip
from neurodeploy_speck.config import CONFIG_FILE, FORMAT, build_config, to_samna
from neurodeploy_speck.config import SCHEMA as CONFIG_SCHEMA
from neurodeploy_speck.emulator import MODES, Network
from neurodeploy_speck.lowering import Lowered, limit_spikes_per_event, lower
from neurodeploy_speck.mapping import place
from neurodeploy_speck.quantize import bias_to_host, quantize_layer

log = logging.getLogger(__name__)

INPUT_EVENT_VALUE = 1.0
"""What one input event is worth in the float network where event counts per step are the input itself (events
encoding); a direct input x is sent as about K x events per step, each worth 1/K (the ``input_events`` target
option; see :func:`direct_events`)."""
DEFAULT_INPUT_EVENTS = 2
"""Events per unit of a direct input and step (``input_events``), each worth 1/2. Measured (first 1000 MNIST test
images, binned, ``readout_rate`` 4, the calibrated readout delay), accuracy with 1 / 2 / 4 events per unit:
examples/mnist_residual 82.4 / 83.3 / 82.4% at T = 16 and 92.6 / 96.9 / 96.7% at T = 32 (the float SNN 82.9 and
97.2%); the bundled MNIST CNN 91.8 / 92.4 / 80.8% at T = 8."""
MAX_INPUT_EVENTS = 64
DEFAULT_READOUT_RATE = 4.0
"""Spikes per step of the winning class on the median calibration sample (``readout_rate``). Measured as above
with 4 input events per unit, rate 1 / 4: examples/mnist_residual 96.0 / 96.7% at T = 32; the bundled MNIST CNN
71.8 / 80.8% at T = 8 and 98.4 / 98.9% at T = 16."""


def placement(lowered: Lowered) -> dict[int, int]:
    """{layer index: core}: a max-flow matching of the layers to the cores whose memories hold them."""
    names = [layer.name for layer in lowered.layers]
    feasible = [[layer.memory.fits(core) for core in range(chip.CORES)] for layer in lowered.layers]
    reasons = [[layer.memory.why_not(core) for core in range(chip.CORES)] for layer in lowered.layers]
    return place(names, feasible, reasons)


def readout_threshold(graph: Graph, calibration: np.ndarray | None, rate: float = 1.0) -> tuple[float, str]:
    """The readout core's threshold in float units: the median over calibration samples of the largest positive
    output of the converted graph's rate limit over ``rate`` (the winning class then fires about ``rate`` times
    per step: a finer count), or without calibration data the largest |weights| row sum plus |bias| of the
    readout over ``rate``."""
    per = f" over {rate:g} spikes per step" if rate != 1 else ""
    if calibration is not None and len(calibration):
        out = interpret.run(graph, np.asarray(calibration, np.float32))[graph.outputs[0]]
        top = out.reshape(len(out), -1).max(axis=1)
        top = top[top > 0]
        if top.size:
            where = f"median of the largest positive output over {len(out)} calibration samples{per}"
            return float(np.median(top)) / rate, where
    op = graph.producer(graph.outputs[0])
    weight = getattr(op, "weight", None)
    if weight is None:
        return 1.0, "spiking output"
    bias = getattr(op, "bias", None)
    bound = np.abs(weight.reshape(weight.shape[0], -1)).sum(axis=1) + (0 if bias is None else np.abs(bias))
    return float(bound.max()) / rate, f"largest weight row sum (no calibration data){per}"


MAX_READOUT_DELAY = 1000
DEFAULT_READOUT_FLOOR = 1.0
"""The readout core's threshold_low is -1 threshold by default. Measured (`neurodeploy evaluate
examples/mnist/mnist_cnn.onnx --data mnist --target speck --limit 500`, with the readout delay): 98.6% at T = 16
against 79.4% with threshold_low at the chip's -2^15."""


def pipeline_depth(lowered: Lowered) -> int:
    """Cores on the longest path from the input to the readout: in the first that many steps every core's
    membranes fill from their initial values at once, and the readout's spikes of those steps (which no later
    input can take back, unlike a membrane readout) mostly follow that transient, not the input."""
    depth: dict[int, int] = {}
    for i, layer in enumerate(lowered.layers):  # topological order: a source comes before its consumers
        depth[i] = 1 + max(depth[src] if src >= 0 else 0 for src, _, _ in layer.sources)
    return depth[lowered.readout_layer]


def layer_names(host: dict[str, Any]) -> dict[int, str]:
    """speck.json's ``host.layers``: core -> the layer's name (its neurons', where it has them)."""
    return {layer["core"]: layer["neuron"] or layer["name"] for layer in host["layers"]}


def host_readout(output: dict[str, Any], per_step: np.ndarray, steps: int) -> np.ndarray:
    """The output after ``steps`` steps as the host computes it (speck.json's ``host.output``) from the readout
    core's spikes per step, (batch, >= steps, ...): its spikes of steps min(readout_delay, steps // 2) + 1 ..
    steps, times ``value_per_spike``, over the steps counted, plus ``bias``; (batch, outputs) float64."""
    return counted_readout(output, per_step, readout_skip(int(output.get("readout_delay", 0)), steps), steps)


def counted_readout(output: dict[str, Any], per_step: np.ndarray, skip: int, steps: int) -> np.ndarray:
    """:func:`host_readout` with the steps left out given: the spikes of steps skip + 1 .. steps."""
    counted = per_step[:, skip:steps].reshape(len(per_step), steps - skip, -1).sum(axis=1)
    bias = np.asarray(output.get("bias", 0.0), np.float64).reshape(-1)
    return counted * output["value_per_spike"] / (steps - skip) + bias


def direct_events(x: np.ndarray, steps: int) -> np.ndarray:
    """Analog inputs x >= 0 as event counts per step: count[t] = floor(x t + 1/2) - floor(x (t-1) + 1/2), an
    integrate-and-fire encoder (threshold 1, v(0) = 1/2, several events per step), so t steps carry x t events
    to within 1/2. Returns (batch, steps, *x.shape[1:]) int64."""
    x = np.asarray(x, np.float64)
    t = np.arange(steps + 1, dtype=np.float64).reshape((1, -1) + (1,) * (x.ndim - 1))
    cumulative = np.floor(x[:, None] * t + 0.5)
    return np.diff(cumulative, axis=1).astype(np.int64)


def speck_neurons(graph: Graph) -> tuple[Graph, str | None]:
    """A spiking network's neurons as Speck runs them: a LIF op that is an IF neuron sending several spikes a step
    (sinabs' MultiSpike, ``--import-option spikes=multi``) becomes the IF neuron of a core, which fires once per
    input event and so several times a step; and, when IF neurons of the network send one spike a step at most,
    the warning that Speck's do not."""
    single = [op.name for op in graph.ops if isinstance(op, IF)]
    if any(isinstance(op, LIF) and op.multi and op.as_if() is not None for op in graph.ops):
        graph = graph.copy()
        graph.ops = [op.as_if() or op if isinstance(op, LIF) and op.multi else op for op in graph.ops]
    if not single:
        return graph, None
    shown = ", ".join(repr(n) for n in single[:4]) + (" ..." if len(single) > 4 else "")
    return graph, (
        f"IF neurons {shown} send at most one spike a step in the imported network; Speck's neurons fire once per "
        "input event, so several times in a step where the input is strong (sinabs' MultiSpike): the chip's "
        "outputs can exceed the network's. Import with --import-option spikes=multi to emulate what the chip does"
    )


def one_spike_per_event_warnings(quantized: list, limit: float | None = None) -> list[str]:
    """Warnings for layers whose single input event (or bias tick) can raise v by more than one threshold (more
    than ``limit`` when the spikes_per_event option set one): the chip emits at most one spike per event (the
    ``event`` mode does too), while the converted SNN and the ``binned`` mode emit as many as v holds, so the
    chip falls short of them there."""
    out = []
    allowed = 1 if limit is None else int(np.ceil(limit))
    for q in quantized:
        r = q.report
        per_event, per_tick = r["spikes_per_event_max"], r["spikes_per_bias_tick_max"]
        if per_event > allowed or per_tick > allowed:
            out.append(
                f"layer '{r['layer']}': one input event can add up to {per_event} thresholds to v (a bias tick up to "
                f"{per_tick}; weights up to {r['weight_range'][1]}, bias up to {r['bias_range'][1]}, threshold "
                f"{r['threshold_high']}), but Speck emits at most one spike per event: on the chip (and in --mode "
                "event) this layer fires less than in the converted SNN and in --mode binned. Compile with "
                "--target-option spikes_per_event=K (thresholds raised so an event adds at most K; the Speck "
                "README has measurements) or retrain with smaller weights."
            )
    return out


class SpeckBackend(Backend):
    """SynSense Speck 2f and DYNAP-CNN. Modes ``binned`` (sinabs' IAFSqueeze arithmetic: several spikes per step)
    and ``event`` (one event at a time, at most one spike per input event, as the chip's asynchronous neurons)."""

    name = "speck"
    version = "0.1.0"
    encodings = ("direct", "events")  # rate spikes carry per-sample amplitudes the chip's events cannot
    fidelity = "bit-exact"
    modes = MODES
    engines = ("numpy", "torch")
    default_steps = 64
    spec = chip.spec("speck")
    target_options: ClassVar[dict[str, str]] = {
        "spikes_per_event": "raise thresholds so that one input event adds at most this many (>= 1) thresholds "
        "to any neuron, as the chip fires once per event (default: off)",
        "readout_floor": "the readout core's lowest membrane state, in thresholds below 0, so early negative input "
        "cannot silence a class for the rest of the run (default: 1; none: the chip's -2^15)",
        "readout_delay": "steps at the start whose readout spikes the host ignores, the transient while every core "
        "fills (default: auto, chosen on the calibration data in the binned mode, else the number of cores on the "
        "longest path; 0 counts every spike)",
        "input_events": "events per unit of a direct input and step, each worth 1/K: a finer input for more events "
        f"(default {DEFAULT_INPUT_EVENTS}; 1..{MAX_INPUT_EVENTS})",
        "readout_rate": "spikes per step of the winning class on the median calibration sample: the readout "
        f"threshold is that output over this (default {DEFAULT_READOUT_RATE:g}; > 0)",
    }

    def __init__(self, target: str | None = None) -> None:
        super().__init__(target)
        if self.target not in chip.CHIPS:
            raise DataError(f"SpeckBackend serves {', '.join(chip.CHIPS)}, not {self.target!r}")
        self.spec = chip.spec(self.target)

    # -- compile ----------------------------------------------------------------------------------------------
    def parse_target_options(self, options: dict[str, str]) -> dict[str, Any]:
        parsed = super().parse_target_options(options)

        def number(key: str, ok, must: str) -> None:  # a float the rule ``ok`` accepts, else a named refusal
            text = parsed[key]
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not (np.isfinite(value) and ok(value)):
                raise DataError(f"target option {key} must be {must}, got {text!r}")
            parsed[key] = value

        if "spikes_per_event" in parsed:
            number("spikes_per_event", lambda v: v >= 1, "a number >= 1")
        if "readout_floor" in parsed:
            if parsed["readout_floor"] == "none":
                parsed["readout_floor"] = None
            else:
                number("readout_floor", lambda v: 0 <= v <= 2**15, "none or a number of thresholds >= 0")
        if "readout_rate" in parsed:
            number("readout_rate", lambda v: 0 < v <= 2**10, "a number of spikes per step > 0")
        for key, low, high, must in (
            ("readout_delay", 0, MAX_READOUT_DELAY, f"auto or a whole number of steps 0..{MAX_READOUT_DELAY}"),
            ("input_events", 1, MAX_INPUT_EVENTS, f"a whole number 1..{MAX_INPUT_EVENTS}"),
        ):
            text = parsed.get(key)
            if text is None or (key == "readout_delay" and text == "auto"):
                continue
            if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
                raise DataError(f"target option {key} must be {must}, got {text!r}")
            parsed[key] = int(text)
        return parsed

    def plan(self, model: CompiledModel) -> SpeckPlan:
        graph = model.snn
        if model.arrived_spiking:  # a NIR file
            graph, note = speck_neurons(graph)
            if note:
                model.warnings.append(note)
        rate = 1.0 if model.arrived_spiking else model.target_options.get("readout_rate", DEFAULT_READOUT_RATE)
        theta, source = readout_threshold(graph, model.calibration, rate)
        event_value = INPUT_EVENT_VALUE
        if model.encoding.kind == "direct":
            event_value /= model.target_options.get("input_events", DEFAULT_INPUT_EVENTS)
        elif "input_events" in model.target_options:
            raise DataError(
                f"target option input_events applies to direct input; this model's input is {model.encoding.kind} "
                "(its events are sent as they are)"
            )
        lowered = lower(graph, input_scale=event_value, readout_threshold=theta)
        limit = model.target_options.get("spikes_per_event")
        scaling = limit_spikes_per_event(lowered, limit) if limit is not None else None
        if scaling is not None and lowered.readout_threshold != theta:
            source += f"; times {lowered.readout_threshold / theta:g} for spikes_per_event={limit:g}"
        cores = placement(lowered)
        host_bias = None
        readout = lowered.layers[lowered.readout_layer]
        why = bias_to_host(readout) if readout.readout else None  # not for a spiking output: its bias shapes its spikes
        if why is not None:
            host_bias, readout.bias = readout.bias.copy(), np.zeros_like(readout.bias)
        floor = model.target_options.get("readout_floor", DEFAULT_READOUT_FLOOR)
        quantized = [quantize_layer(layer, floor if layer.readout else None) for layer in lowered.layers]
        option = model.target_options.get("readout_delay", "auto")
        plan = SpeckPlan(
            model,
            lowered,
            cores,
            quantized,
            source,
            limit,
            scaling,
            host_bias=host_bias,
            host_bias_why=why,
            event_value=event_value,
        )
        if option != "auto":
            plan.readout_delay, plan.delay_source = int(option), "target option"
        elif model.arrived_spiking:  # read as its own framework reads it: every step
            plan.delay_source = "none: the network arrived spiking and is read at every step, as its framework reads it"
        else:
            self._calibrate_delay(plan)
        return plan

    def _calibrate_delay(self, plan: SpeckPlan) -> None:
        """``readout_delay=auto``: the delay whose readout agrees most with the ANN on the calibration data, run
        through this artifact's own cores in the binned mode (:mod:`neurodeploy.readout_calibration`); where it
        cannot be calibrated (no calibration data or ANN, event input, a network too large for the budget), the
        number of cores on the longest path to the readout."""
        model = plan.model
        document = build_config(
            self.target, plan.lowered, plan.quantized, plan.cores, plan.event_value, 0, plan.host_bias
        )
        network, output = Network.from_config(document), document["host"]["output"]

        def runner(x: np.ndarray, steps: int) -> Callable[[int, int], np.ndarray]:
            frames = self._events(document, x, steps, model.encoding)
            per_step = network.run_binned(frames).counts[network.output_core]
            return lambda skip, t: counted_readout(output, per_step, skip, t)

        try:
            choice = readout_calibration.choose(
                "auto", model.snn, model.ann, model.calibration, model.encoding, runner, " in the binned mode"
            )
        except DataError as exc:  # calibration inputs the chip cannot take as events (negative values)
            choice = Choice(0, f"auto: not calibrated ({exc})")
        plan.delay_calibration = choice
        if choice.chosen:
            plan.readout_delay, plan.delay_source = choice.steps, choice.source
        else:
            plan.readout_delay = pipeline_depth(plan.lowered)
            plan.delay_source = f"cores on the longest path to the readout ({choice.source.removeprefix('auto: ')})"

    def placement_rows(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        """Per core in use: its layer, neurons, and the largest share of its kernel, neuron and bias memories."""
        neurons = {layer.get("name"): layer.get("neurons", 0) for layer in report["resources"]["layers"]}
        rows = []
        for entry in (report.get("target") or {}).get("cores", []):
            memories = [entry[key] for key in ("kernel_memory", "neuron_memory", "bias_memory") if key in entry]
            rows.append(
                {
                    "core": int(entry["core"]),
                    "chip": 0,
                    "layer": str(entry["layer"]),
                    "neurons": int(neurons.get(entry["layer"], 0)),
                    "fill": max((used / size for used, size in memories if size), default=None),
                }
            )
        return rows

    def quantization_rows(self, report: dict[str, Any]) -> list[dict[str, str]]:
        """Per core's layer: the 8-bit weights' range, the scale, the threshold, weights zeroed, the largest
        weight rounding error (in thresholds), and how many spikes one input event could ask for (the chip sends
        one)."""
        rows = []
        for entry in report.get("quantization", []):
            low, high = entry.get("weight_range", ["?", "?"])
            rows.append(
                {
                    "layer": str(entry.get("layer", "?")),
                    "weights": f"8-bit, {low}..{high}",
                    "scale": f"{entry.get('scale', 0):.4g}",
                    "threshold": str(entry.get("threshold_high")),
                    "zeroed": f"{entry.get('zeroed_weights', 0)} ({entry.get('zeroed_fraction', 0):.1%})",
                    "max error": f"{entry.get('max_weight_error', 0):.2g}",
                    "spikes/event": str(entry.get("spikes_per_event_max", "-")),
                }
            )
        return rows

    def resources(self, plan: SpeckPlan) -> ResourceReport:
        lowered, cores = plan.lowered, plan.cores
        layers, notes = [], []
        for i, layer in enumerate(lowered.layers):
            f, c, k, _ = layer.weight.shape
            neurons = int(np.prod(layer.out_shape))
            mem, core = layer.memory, cores[i]
            layers.append(
                LayerUsage(
                    layer.name,
                    "IF readout" if layer.readout else f"{layer.op_type}+IF",
                    neurons,
                    int(layer.weight.size),
                    c * k * k,
                    f * -(-k // layer.stride[0]) * -(-k // layer.stride[1]),
                    core,
                )
            )
            notes.append(
                f"core {core}: kernel {mem.kernel}/{chip.KERNEL_MEMORY[core]}, neuron {mem.neuron}/"
                f"{chip.NEURON_MEMORY[core]}, bias {mem.bias}/{chip.BIAS_MEMORY[core]} entries ({layer.name})"
            )
        return ResourceReport(self.target, layers, cores_used=len(cores), notes=notes)

    def _core_usage(self, lowered: Lowered, cores: dict[int, int]) -> list[dict[str, Any]]:
        usage = []
        for i, layer in enumerate(lowered.layers):
            core, mem = cores[i], layer.memory
            usage.append(
                {
                    "core": core,
                    "layer": layer.name,
                    "kernel_memory": [mem.kernel, chip.KERNEL_MEMORY[core]],
                    "neuron_memory": [mem.neuron, chip.NEURON_MEMORY[core]],
                    "bias_memory": [mem.bias, chip.BIAS_MEMORY[core]],
                    "fits_cores": [j for j in range(chip.CORES) if mem.fits(j)],
                }
            )
        return sorted(usage, key=lambda u: u["core"])

    def emit(self, plan: SpeckPlan, folder: Path) -> Emitted:
        lowered, quantized, limit = plan.lowered, plan.quantized, plan.spikes_per_event
        document = build_config(
            self.target, lowered, quantized, plan.cores, plan.event_value, plan.readout_delay, plan.host_bias
        )
        (folder / CONFIG_FILE).write_text(json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n")
        report = {
            "chip": chip.CHIPS[self.target],
            "readout_threshold": {"value": lowered.readout_threshold, "source": plan.readout_source},
            "readout_delay": {
                **(plan.delay_calibration.report() if plan.delay_calibration else {}),
                "steps": plan.readout_delay,
                "source": plan.delay_source,
                "rule": "the host ignores readout spikes of the first min(delay, T // 2) steps and divides by the rest",
            },
            "quantization": [q.report for q in quantized],
            "cores": self._core_usage(lowered, plan.cores),
        }
        if plan.host_bias is not None:
            report["readout_bias"] = {
                "on": "host",
                "why": plan.host_bias_why,
                "range": [float(plan.host_bias.min()), float(plan.host_bias.max())],
            }
        if plan.scaling is not None:
            report["spikes_per_event"] = {"limit": limit, "threshold_scaling": plan.scaling}
        return Emitted(
            files=[CONFIG_FILE],
            manifest={"chip": chip.CHIPS[self.target], "config": CONFIG_FILE},
            report=report,
            warnings=one_spike_per_event_warnings(quantized, limit),
        )

    # -- run --------------------------------------------------------------------------------------------------
    @staticmethod
    def load_config(artifact: Any) -> dict[str, Any]:
        """The artifact's speck.json: listed in its manifest, checked (size, sha256) and against its schema."""
        document = artifact.read_json(CONFIG_FILE)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            got = document.get("format") if isinstance(document, dict) else None
            raise ArtifactError(f"{artifact.where(CONFIG_FILE)} is not a {FORMAT} document (format {got!r})")
        validate(CONFIG_SCHEMA, document, artifact.where(CONFIG_FILE))
        return document

    @staticmethod
    def network(artifact: Any, document: dict[str, Any]) -> Network:
        """The emulator's network of a checked speck.json; cores that do not fit together are an ArtifactError."""
        host = document["host"]
        try:
            network = Network.from_config(document)
            out = next(c for c in network.cores if c.index == network.output_core)
            if int(np.prod(host["output"]["shape"])) != int(np.prod(out.out_shape)):
                raise ValueError(f"the output's shape {host['output']['shape']} does not fit core {out.index}")
            bias = host["output"].get("bias")
            if bias is not None and len(bias) != int(np.prod(host["output"]["shape"])):
                raise ValueError(f"the output's host bias has {len(bias)} values for {host['output']['shape']} outputs")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            where = (
                f"it refers to core {exc.args[0]!r}, which has no configuration" if isinstance(exc, KeyError) else exc
            )
            raise ArtifactError(f"{artifact.where(CONFIG_FILE)} does not describe a valid network: {where}") from None
        return network

    def quantized_graph(self, artifact: Any) -> Graph:
        """The cores in the chip's integers (:mod:`neurodeploy_speck.nir_export`)."""
        from neurodeploy_speck.nir_export import quantized_graph

        document = self.load_config(artifact)
        host = document["host"]
        return quantized_graph(self.network(artifact, document), host, layer_names(host), self.target)

    def to_samna(self, artifact: Any):
        """The artifact's samna configuration object (needs samna; see :func:`neurodeploy_speck.config.to_samna`)."""
        return to_samna(self.load_config(artifact))

    batch_size = 64
    device_adapters: ClassVar[dict[str, str]] = {"samna": "neurodeploy_speck.device:SamnaDevice"}

    def load(self, artifact: Any, mode: str) -> _Loaded:
        document = self.load_config(artifact)
        return _Loaded(document, self.network(artifact, document))

    def prepare(self, loaded: _Loaded, inputs: Any, *, steps: int, encoding: Encoding) -> np.ndarray:
        return self._events(loaded.document, inputs, steps, encoding)

    def emulate_batch(self, loaded: _Loaded, inputs: np.ndarray, options: Run) -> EmulationResult:
        network, host, steps = loaded.network, loaded.document["host"], options.steps
        if options.engine == "torch":  # the same integers, batch-first tensors on the run's device
            if options.mode != "binned":
                raise DataError(
                    f"the torch emulator engine runs the {self.target} target's binned mode only: the event mode "
                    "takes one event at a time; use --emulator numpy, or --mode binned"
                )
            from neurodeploy_speck import torch_engine

            run = torch_engine.run_binned(network, inputs, device=options.device)
        elif options.mode == "binned":
            run = network.run_binned(inputs)
        else:
            run = network.run_events(inputs)
        out_shape = tuple(host["output"]["shape"])
        marks = sorted({int(c) for c in options.checkpoints if 0 < int(c) <= steps})
        names = layer_names(host)
        per_step = run.counts[network.output_core]

        def readout(t: int) -> np.ndarray:
            return host_readout(host["output"], per_step, t).reshape(len(inputs), *out_shape).astype(np.float32)

        def totals(per_source: dict, key, t: int) -> dict[str, np.ndarray]:
            return {key(source): per_step[:, :t].sum(axis=1) for source, per_step in per_source.items()}

        def synops_key(source: int) -> str:
            return host["input"]["name"] if source == -1 else names[source]

        return EmulationResult(
            outputs=readout(steps),
            steps=steps,
            mode=options.mode,
            spikes=totals(run.per_step_totals, names.get, steps),
            neurons={names[c.index]: int(np.prod(c.out_shape)) for c in network.cores},
            checkpoints={c: readout(c) for c in marks},
            checkpoint_spikes={c: totals(run.per_step_totals, names.get, c) for c in marks},
            synops=totals(run.synops, synops_key, steps),
            checkpoint_synops={c: totals(run.synops, synops_key, c) for c in marks},
            counts={names[core]: total for core, total in run.neuron_totals.items()} if options.neuron_counts else {},
            encoding=options.encoding.describe(),
            diagnostics={f"overflow {core}": int(k) for core, k in run.overflow.items()},
        )

    def after_run(self, loaded: _Loaded, result: EmulationResult) -> None:
        overflow = {int(key.split()[1]): k for key, k in result.diagnostics.items() if key.startswith("overflow ")}
        if any(overflow.values()):
            log.warning(
                "membrane state left the chip's 16-bit range (neuron-steps per core: %s); the chip's behaviour "
                "there is not modelled",
                {k: v for k, v in overflow.items() if v},
            )

    @staticmethod
    def _events(document: dict[str, Any], inputs: Any, steps: int, encoding: Encoding) -> np.ndarray:
        """The input as event counts per step, (batch, steps, C, H, W)."""
        host_input = document["host"]["input"]
        shape = tuple(host_input["shape"])
        name = host_input["name"]
        if isinstance(inputs, dict):
            if name not in inputs:
                raise DataError(f"no array given for input {name!r}")
            inputs = inputs[name]
        x = check_values(inputs, where=f"input {name!r}", kind=encoding.kind)  # the input policy: real, finite
        if encoding.kind == "rate":
            raise DataError(
                "the Speck target takes events: use the events encoding (event counts per step) or direct input "
                "(sent as about K x events per step, K the input_events option); the rate encoding's spikes carry "
                "per-sample amplitudes"
            )
        if encoding.kind == "events":
            if x.ndim != 5 or x.shape[2:] != shape:
                raise DataError(
                    f"events input has shape {x.shape}; expected (batch, frames, {', '.join(map(str, shape))})"
                )
            if steps > x.shape[1] and not encoding.pad:
                raise DataError(
                    f"the events input has {x.shape[1]} frame(s) but the run has {steps} steps; run at most "
                    f"{x.shape[1]} steps, or pad with zero input (--pad-events)"
                )
            if np.any(x < 0) or np.any(x != np.floor(x)):
                raise DataError("events input must hold non-negative integer event counts per frame")
            frames = x[:, :steps].astype(np.int64)
            if frames.shape[1] < steps:
                pad = np.zeros((len(x), steps - frames.shape[1], *shape), np.int64)
                frames = np.concatenate([frames, pad], axis=1)
        else:
            if x.ndim == len(shape):
                x = x[None]
            if x.shape[1:] != shape:
                raise DataError(f"input has shape {x.shape}; expected (batch, {', '.join(map(str, shape))})")
            if not np.all(np.isfinite(x)) or np.any(x < 0):
                raise DataError(
                    "direct input for Speck must be finite and >= 0: it is sent as events (about K x events per step), "
                    "and events carry no sign"
                )
            frames = direct_events(x / float(host_input.get("event_value", INPUT_EVENT_VALUE)), steps)
        if len(frames) == 0:
            raise DataError("no inputs to emulate (the input array has 0 samples)")
        return frames


@dataclass(frozen=True)
class _Loaded:
    """An artifact's checked speck.json and the emulator's network built from it."""

    document: dict[str, Any]
    network: Network


@dataclass
class SpeckPlan(Plan):
    """The converted graph lowered to Speck cores (thresholds raised for ``spikes_per_event`` when asked), placed
    and quantized."""

    lowered: Lowered
    cores: dict[int, int]
    quantized: list
    readout_source: str
    spikes_per_event: float | None
    scaling: Any
    readout_delay: int = 0
    """Steps at the start whose readout spikes the host ignores (:func:`readout_skip`)."""
    delay_source: str = ""
    """Where the delay came from, in words (the report's ``readout_delay.source``)."""
    delay_calibration: Choice | None = None
    """``auto``'s choice on the calibration data, with its table, where it ran."""
    host_bias: np.ndarray | None = None
    """The readout's bias when the host adds it (:func:`neurodeploy_speck.quantize.bias_to_host`)."""
    host_bias_why: str | None = None
    """Why the host adds the readout's bias, in words."""
    event_value: float = INPUT_EVENT_VALUE
    """What one input event is worth: 1 / ``input_events`` for a direct input, 1 for events."""
