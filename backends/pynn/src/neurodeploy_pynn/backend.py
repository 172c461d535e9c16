"""The ``spinnaker`` target: a converted graph as sPyNNaker 1!7.4.1 populations and connection lists
(:mod:`neurodeploy_pynn.spinnaker`), written as a netlist, and emulated bit-exactly in sPyNNaker's s16.15 ARM
arithmetic (:mod:`neurodeploy_pynn.spinnaker_emulator`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy import readout
from neurodeploy.backends.base import (
    Backend,
    CompiledModel,
    Emitted,
    EmulationResult,
    LayerUsage,
    Plan,
    ResourceReport,
    TargetSpec,
)
from neurodeploy.emulation import Run
from neurodeploy.encoding import Encoding
from neurodeploy.errors import ConversionError, DataError
from neurodeploy.ir.neurons import LIF
from neurodeploy.lowering import spiking_layers
from neurodeploy_pynn import spinnaker

SPEC = TargetSpec(
    name="spinnaker",
    description=(
        "SpiNNaker through sPyNNaker 1!7.4.1: IF_curr_delta neurons in s16.15 fixed point (leaky, reset to "
        "v_reset; a spiking import's LIF layers with their own tau_m, IF_curr_exp for a synaptic current), 16-bit "
        "weight words with a ring-buffer shift per receptor, 256 neurons per core"
    ),
    weight_bits=16,
    state_bits=32,
    neurons_per_core=spinnaker.NEURONS_PER_CORE,
    ops=frozenset({"Conv2d", "Dense", "AvgPool2d", "GlobalAvgPool", "Reshape", "Scale", "Bias", "IF", "LIF"}),
)


@dataclass
class SpiNNakerPlan(Plan):
    netlist: spinnaker.Netlist
    report: ResourceReport


def resource_report(target: str, netlist: spinnaker.Netlist, boards: int = 1) -> ResourceReport:
    """Per population: neurons, synapses into it, the largest fan-in and fan-out of a neuron, and its first core
    when the populations fill cores of 256 neurons in order; the machine's boards in the notes."""
    layers = []
    core = 0
    fan_in = [np.zeros(p.size, np.int64) for p in netlist.populations]
    fan_out = list(spinnaker.synapses_out(netlist).values())
    synapses = [0] * len(netlist.populations)
    for q in netlist.projections:
        fan_in[q.post] += np.bincount(q.post_index, minlength=netlist.populations[q.post].size)
        synapses[q.post] += len(q.words)
    for k, p in enumerate(netlist.populations):
        neuron = "LIF" if p.leak else "IF"
        op = {"input": f"{neuron} (input)", "hidden": neuron, "readout": "readout"}[p.role]
        layers.append(LayerUsage(p.name, op, p.size, synapses[k], int(fan_in[k].max()), int(fan_out[k].max()), core))
        core += -(-p.size // spinnaker.NEURONS_PER_CORE)
    notes = [
        f"cores: populations split into slices of {spinnaker.NEURONS_PER_CORE} neurons, one core each; sPyNNaker's "
        "partitioner may add synapse and delay-extension cores",
        f"machine: {boards} SpiNN-5 board(s), {boards * spinnaker.CHIPS_PER_BOARD} chips, "
        f"{boards * spinnaker.CORES_PER_BOARD} cores for neurons "
        f"(--target-option boards=N)",
    ]
    return ResourceReport(target, layers, cores_used=core, notes=notes)


LEAK_WARNING = 0.05
"""A leaky layer whose leak per step (1 - decay) the chip's rounded decay changes by more than this gets a warning."""


def leak_warnings(netlist: spinnaker.Netlist) -> list[str]:
    """A warning per leaky population whose rounded decays (exp_TC in s16.15, the synapses' in u0.32) change its leak
    per step, 1 - decay, by more than LEAK_WARNING (decays close to 1)."""
    out = []
    for p in netlist.populations:
        for what, asked, chip in (("v", "decay", "decay_chip"), ("synaptic current", "syn_decay", "syn_decay_chip")):
            if asked not in p.leak or chip not in p.leak or p.leak[asked] >= 1:
                continue
            off = (1 - p.leak[chip]) / (1 - p.leak[asked]) - 1
            if abs(off) > LEAK_WARNING:
                out.append(
                    f"layer {p.name!r}: its {what} decays by {p.leak[asked]:.9g} per step, {p.leak[chip]:.9g} on the "
                    f"chip (sPyNNaker's fixed point): its leak per step is {100 * off:+.3g}% off (report.json "
                    "target.populations[].leak)"
                )
    return out


def by_post(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A netlist report's per-projection entries grouped by the population they lead into, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        out.setdefault(str(entry.get("post", "?")), []).append(entry)
    return out


def count_share(entries: list[dict[str, Any]], key: str) -> str:
    """``key``'s count over the projections, of the nonzero weights they were given (kept + ``zeroed``)."""
    count = sum(int(e.get(key, 0)) for e in entries)
    total = sum(int(e.get("synapses", 0)) + int(e.get("zeroed", 0)) for e in entries)
    return f"{count} of {total} ({count / total:.1%})" if total else str(count)


class NetlistBackend(Backend):
    """What the netlist targets of this plugin share at run time: direct (analog) input, which the netlist's host
    graph turns into the input population's drive (:attr:`feeds`), and a run of the netlist (:meth:`simulate`)
    returning the dict of ``spinnaker.run`` (outputs, spikes, counts, SynOps, and their checkpoints)."""

    feeds: ClassVar[str] = "current"
    batch_size: ClassVar[int] = 64
    encodings = ("direct",)  # compile refuses rate and events input, which run_pynn.py and the emulator do not take

    def prepare(self, loaded: Any, inputs: Any, *, steps: int, encoding: Encoding) -> np.ndarray:
        if encoding.kind != "direct":
            raise DataError(
                f"the {self.target} target takes direct (analog) input, which the host turns into the input "
                f"population's {self.feeds}; got the {encoding.kind!r} encoding"
            )
        return encoding.check_inputs(loaded.host, inputs)[next(iter(loaded.host.inputs))]

    def simulate(self, loaded: Any, inputs: np.ndarray, run: Run) -> dict[str, Any]:
        raise NotImplementedError

    def emulate_batch(self, loaded: Any, inputs: np.ndarray, run: Run) -> EmulationResult:
        done = self.simulate(loaded, inputs, run)
        return EmulationResult(
            outputs=done["outputs"],
            steps=run.steps,
            mode=run.mode,
            spikes=done["spikes"],
            neurons=done["neurons"],
            checkpoints=done["checkpoints"],
            checkpoint_spikes=done["checkpoint_spikes"],
            synops=done["synops"],
            checkpoint_synops=done["checkpoint_synops"],
            counts=done["counts"],
            encoding=run.encoding.describe(),
        )


class SpiNNakerBackend(NetlistBackend):
    """SpiNNaker through sPyNNaker: rate-coded spikes, IF_curr_delta neurons (leaky, reset to zero), exact s16.15."""

    name = "spinnaker"
    version = "0.1.0"
    fidelity = "bit-exact"
    modes = ("snn",)
    delayed_modes = ("snn",)
    default_steps = 64
    spec = SPEC
    target_options: ClassVar[dict[str, str]] = {
        "readout_delay": readout.OPTION_HELP + " (the host reads the readout population's V at that step and at T)",
        "boards": f"SpiNN-5 boards of the machine (default 1: {spinnaker.CHIPS_PER_BOARD} chips, "
        f"{spinnaker.CORES_PER_BOARD} cores for neurons; SpiNNaker1M has "
        f"{spinnaker.MAX_BOARDS}): a network whose neurons need more cores is refused, naming the boards it needs",
    }
    device_adapters: ClassVar[dict[str, str]] = {"spinnaker": "neurodeploy_pynn.spinnaker_device:SpiNNakerDevice"}
    engines = ("numpy", "torch")  # the torch engine: neurodeploy_pynn.spinnaker_torch, the same integers

    def parse_target_options(self, options: dict[str, str]) -> dict[str, Any]:
        parsed = super().parse_target_options(options)
        if "boards" in parsed:
            text = parsed["boards"]
            if not (text.isdigit() and 1 <= int(text) <= spinnaker.MAX_BOARDS):
                raise DataError(
                    f"target option boards must be a whole number from 1 to {spinnaker.MAX_BOARDS}, got {text!r}"
                )
            parsed["boards"] = int(text)
        return parsed

    def pipeline(self, options: dict[str, Any]) -> str:
        """Convert with reset to zero (sPyNNaker's neurons reset to v_reset), unless the user asked for another
        reset, which is an error."""
        return self.conversion(
            options,
            reset=(
                "zero",
                ("zero",),
                "the spinnaker target runs sPyNNaker's LIF neurons, which reset to v_reset; the conversion asks for "
                "reset={reset}: drop reset= (the target converts with reset=zero)",
            ),
        )

    def plan(self, model: CompiledModel) -> SpiNNakerPlan:
        imported = model.snn.meta.get("source", {}).get("format") == "nir"
        for op in model.snn.ops:
            reset = getattr(op, "reset", "zero")
            if op.is_stateful and reset != "zero" and (imported or isinstance(op, LIF)):
                raise ConversionError(spinnaker.reset_refusal(op.name, reset, op.op_type))
            if op.is_stateful and reset != "zero":
                raise ConversionError(
                    f"layer {op.name!r} resets by {reset}: sPyNNaker's neurons reset to v_reset (convert with "
                    "reset=zero)"
                )
        boards = int(model.target_options.get("boards", 1))
        spinnaker.check_machine(spiking_layers(model.snn), boards)
        netlist = spinnaker.plan(model.snn)
        return SpiNNakerPlan(model, netlist, resource_report(self.target, netlist, boards))

    def placement_rows(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        """One core per slice of ``NEURONS_PER_CORE`` neurons, in order, as the resource report counts them (the
        chip is sPyNNaker's placer's to choose: not said)."""
        rows = []
        per_core = spinnaker.NEURONS_PER_CORE
        for layer in report["resources"]["layers"]:
            if not isinstance(layer.get("core"), int) or not layer.get("neurons"):
                continue
            for k, start in enumerate(range(0, layer["neurons"], per_core)):
                size = min(per_core, layer["neurons"] - start)
                rows.append(
                    {
                        "core": layer["core"] + k,
                        "chip": None,
                        "layer": str(layer["name"]),
                        "neurons": size,
                        "fill": size / per_core,
                    }
                )
        return rows

    def quantization_rows(self, report: dict[str, Any]) -> list[dict[str, str]]:
        """Per population with inputs: its ring buffers' shifts (excitatory / inhibitory) and resolution (in
        thresholds), its threshold, the weights zeroed and wrapped over its projections, and the largest rounding
        error (in thresholds)."""
        thresholds = {p.get("name"): p.get("threshold_mv") for p in report.get("populations", [])}
        rows = []
        for post, entries in by_post(report.get("quantization", [])).items():
            rows.append(
                {
                    "layer": post,
                    "weights": "16-bit words, shift " + " / ".join(str(e.get("shift")) for e in entries),
                    "resolution": f"{min(e.get('resolution_thresholds', 0) for e in entries):.2g} thr",
                    "threshold": f"{thresholds[post]:.4g} mV" if post in thresholds else "?",
                    "zeroed": count_share(entries, "zeroed"),
                    "wrapped": str(sum(int(e.get("wrapped", 0)) for e in entries)),
                    "max error": f"{max(e.get('max_error_thresholds', 0) for e in entries):.2g} thr",
                }
            )
        return rows

    def resources(self, plan: SpiNNakerPlan) -> ResourceReport:
        return plan.report

    def emit(self, plan: SpiNNakerPlan, folder: Path) -> Emitted:
        netlist = plan.netlist
        files = spinnaker.save(netlist, folder)
        g = spinnaker.gain()
        leak = g / (spinnaker.TAU_M / spinnaker.CM)  # 1 - exp_TC: g = (1 - exp_TC) R
        report = {
            "cell": spinnaker.CELL,
            "parameters": spinnaker.cell_parameters(1.0) | {"v_thresh": "per population, threshold_mv"},
            "gain_mv_per_na": g,
            "leak_per_tick": leak,
            "pipeline_delay": netlist.delay,
            "populations": [
                {
                    "name": p.name,
                    "role": p.role,
                    "threshold_mv": p.threshold,
                    "max_expected_summed_weight": list(p.max_summed),
                    "ring_buffer_shift": list(p.shifts),
                    "depth": p.depth,
                    "cell": p.cell,
                }
                | ({"leak": p.leak} if p.leak else {})
                for p in netlist.populations
            ],
            "quantization": [
                {"name": q.name, "pre": netlist.populations[q.pre].name, "post": netlist.populations[q.post].name}
                | q.report
                for q in netlist.projections
            ],
        }
        zeroed = sum(q.report["zeroed"] for q in netlist.projections)
        warnings = []
        if zeroed:
            nonzero = zeroed + sum(q.report["synapses"] for q in netlist.projections)
            largest = max(q.report["resolution_thresholds"] / 2 for q in netlist.projections if q.report["zeroed"])
            warnings.append(
                f"{zeroed} of {nonzero} nonzero weights ({100 * zeroed / nonzero:.2g}%) are below half the resolution "
                f"of their ring buffer and became 0, each worth less than {largest:.2g} threshold per spike; the "
                "emulated accuracy includes the loss. The resolution is what the largest summed input into a neuron "
                "leaves (no ring-buffer slot may saturate): only smaller summed weights (retraining) keep them (per "
                "projection: report.json target.quantization)"
            )
        warnings += leak_warnings(netlist)
        manifest = {
            "pipeline_delay": netlist.delay,
            "pipeline_delay_note": (
                f"each of the {netlist.delay} projection(s) on the longest path delays spikes by one tick: T steps run "
                f"as T + {netlist.delay} ticks"
            ),
            "runs_on": "the netlist (spinnaker.json + spinnaker.npz) describes sPyNNaker populations and "
            "projections; the host graph computes the input population's i_offset per sample; run_pynn.py rebuilds "
            "the netlist with PyNN on SpiNNaker (sPyNNaker) or NEST and runs samples through it",
        }
        return Emitted(files=files, manifest=manifest, report=report, warnings=warnings)

    # -- run --------------------------------------------------------------------------------------------------
    def load(self, artifact: Any, mode: str) -> spinnaker.Netlist:
        return spinnaker.load(artifact)

    def simulate(self, loaded: spinnaker.Netlist, inputs: np.ndarray, run: Run) -> dict[str, Any]:
        return spinnaker.run(
            loaded,
            inputs,
            run.steps,
            checkpoints=run.checkpoints,
            counts=run.neuron_counts,
            readout_delay=run.readout_delay,
            engine=run.engine,
            device=run.device,
        )
