"""The ``brainscales2`` target: a converted graph as pynn-brainscales ``CalibHXNeuronCuba`` populations and 6-bit
projections on one BrainScaleS-2 chip (:mod:`neurodeploy_pynn.brainscales2`), written as a netlist, and run by a
model of the analog neurons (:mod:`neurodeploy_pynn.brainscales2_emulator`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy import readout
from neurodeploy.backends.base import (
    CompiledModel,
    Emitted,
    LayerUsage,
    Plan,
    ResourceReport,
    TargetSpec,
)
from neurodeploy.emulation import Run
from neurodeploy.errors import ConversionError, DataError
from neurodeploy_pynn import brainscales2 as bss2
from neurodeploy_pynn.backend import NetlistBackend, by_post, count_share
from neurodeploy_pynn.brainscales2_emulator import WEIGHT_BITS, Noise

SPEC = TargetSpec(
    name="brainscales2",
    description=(
        "BrainScaleS-2 through pynn-brainscales: CalibHXNeuronCuba LIF neurons (analog, modelled; reset to "
        "v_reset; leaky layers of a NIR import with their tau_m and tau_syn), 6-bit weights with the sign as the "
        "receptor, 2 hemispheres of 256 neurons and 256 synapse rows"
    ),
    weight_bits=WEIGHT_BITS,
    cores=bss2.HEMISPHERES,
    neurons_per_core=bss2.NEURONS_PER_HEMISPHERE,
    synapses_per_core=bss2.ROWS_PER_HEMISPHERE * bss2.NEURONS_PER_HEMISPHERE,
    fan_in=bss2.ROWS_PER_HEMISPHERE,
    ops=frozenset({"Dense", "Conv2d", "AvgPool2d", "GlobalAvgPool", "Reshape", "Scale", "Bias", "IF"}),
)

OPTIONS = {
    "mismatch": "fixed-pattern noise: relative standard deviation of each neuron's time constants, gains and "
    "threshold (default 0: off)",
    "mismatch_seed": "the chip instance the mismatch is drawn for (default 0)",
    "noise": "trial-to-trial membrane noise, CADC units per sqrt(µs) (default 0: off)",
    "noise_seed": "seed of the trial-to-trial noise (default 0)",
    "readout_delay": readout.OPTION_HELP
    + " (a membrane readout: the host reads the readout population's V at that step and at T and takes away what "
    "the leak left of the first; a spike readout counts the spikes after it)",
}


@dataclass
class BrainScaleS2Plan(Plan):
    netlist: bss2.Netlist
    report: ResourceReport


def resource_report(target: str, netlist: bss2.Netlist) -> ResourceReport:
    """Per layer: the input population (spike sources on the host: no chip neurons) and each chip population with
    its neurons, synapses, largest fan-in and fan-out, and the hemisphere of its first neuron."""
    fan_out = bss2.synapses_out(netlist)
    first = netlist.sources[0]
    kind = "LIF" if netlist.input.get("decay", 1.0) != 1 else "IF"
    layers = [LayerUsage(first.name, f"{kind} (host spike sources)", 0, 0, 0, int(fan_out[first.name].max()), None)]
    for k, p in enumerate(netlist.populations):
        into = [q for q in netlist.projections if q.post == k]
        fan_in = np.zeros(p.size, np.int64)
        for q in into:
            fan_in += np.bincount(q.post_index, minlength=p.size)
        op = "LIF" if p.role == "hidden" else "LI (readout)"
        if p.leak is not None:
            op = f"LIF (tau_m {p.parameters['tau_m']:.4g} µs, tau_syn {p.parameters['tau_syn_E']:.4g} µs)"
        hemisphere = 0 if p.hemisphere[0] else 1
        layers.append(
            LayerUsage(
                p.name,
                op,
                p.size,
                int(sum(len(q.weights) for q in into)),
                int(fan_in.max()),
                int(fan_out[p.name].max()),
                hemisphere,
            )
        )
    used = [h for h in range(bss2.HEMISPHERES) if any(p.hemisphere[h] for p in netlist.populations)]
    notes = [
        f"hemisphere {h}: {sum(p.hemisphere[h] for p in netlist.populations)} of {bss2.NEURONS_PER_HEMISPHERE} "
        f"neurons, {netlist.rows[h]} of {bss2.ROWS_PER_HEMISPHERE} synapse rows"
        for h in range(bss2.HEMISPHERES)
    ]
    notes.append(f"the input population's {first.size} neurons run on the host; their spikes are spike sources")
    return ResourceReport(target, layers, cores_used=len(used), notes=notes)


def leaky_rows(netlist: bss2.Netlist) -> list[dict[str, Any]]:
    """Per leaky population (a LIF layer of a spiking import): the decays the graph asks for and the time constants
    written (µs; the input population's neurons run on the host, in float32, with their decay as it is)."""
    rows: list[dict[str, Any]] = []
    if "decay" in netlist.input and netlist.input["decay"] != 1:
        rows.append({"name": netlist.input["name"], "runs_on": "host", "decay": netlist.input["decay"]})
    for p in netlist.populations:
        if p.leak is not None:
            row = {"name": p.name, "runs_on": "chip", "decay": p.leak["decay"], "tau_m_us": p.parameters["tau_m"]}
            if "syn_decay" in p.leak:
                row["syn_decay"] = p.leak["syn_decay"]
            row |= {"tau_syn_us": p.parameters["tau_syn_E"], "weight_factor": p.leak["weight_factor"]}
            rows.append(row)
    return rows


def _number(key: str, value: str, *, integer: bool) -> float | int:
    try:
        parsed: float | int = int(value) if integer else float(value)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise DataError(f"target option {key}={value!r}: expected {kind} >= 0") from None
    if not math.isfinite(parsed) or parsed < 0:
        raise DataError(f"target option {key}={value!r}: expected a finite number >= 0")
    return parsed


class BrainScaleS2Backend(NetlistBackend):
    """BrainScaleS-2 through pynn-brainscales: host spike sources, CUBA LIF neurons reset to v_reset, 6-bit
    weights, a model of the analog dynamics."""

    name = "brainscales2"
    version = "0.1.0"
    fidelity = "statistical"
    modes = ("snn",)
    delayed_modes = ("snn",)
    default_steps = 64
    spec = SPEC
    target_options: ClassVar[dict[str, str]] = OPTIONS
    feeds: ClassVar[str] = "spikes"
    device_adapters: ClassVar[dict[str, str]] = {
        "brainscales2": "neurodeploy_pynn.brainscales2_device:BrainScaleS2Device"
    }
    engines = ("numpy", "torch")  # the torch engine: neurodeploy_pynn.brainscales2_torch, the same float64 steps

    def parse_target_options(self, options: dict[str, str]) -> dict[str, Any]:
        parsed = super().parse_target_options(options)
        return {
            key: value if key == "readout_delay" else _number(key, str(value), integer=key.endswith("seed"))
            for key, value in parsed.items()
        }

    def pipeline(self, options: dict[str, Any]) -> str:
        """Convert with reset to zero (the chip's neurons reset to v_reset); another reset is an error."""
        return self.conversion(
            options,
            reset=(
                "zero",
                ("zero",),
                "the brainscales2 target runs BrainScaleS-2's LIF neurons, which reset to v_reset; the conversion asks "
                "for reset={reset}: drop reset= (the target converts with reset=zero)",
            ),
        )

    def plan(self, model: CompiledModel) -> BrainScaleS2Plan:
        for op in model.snn.ops:
            if op.is_stateful and getattr(op, "reset", "zero") != "zero":
                how = (
                    "import the file with -I reset=zero (--import-option reset=zero) if the network was trained so"
                    if model.arrived_spiking
                    else "convert with reset=zero"
                )
                raise ConversionError(
                    f"layer {op.name!r} resets by {op.reset}: BrainScaleS-2's neurons reset to v_reset ({how})"
                )
        given = model.target_options
        noise = Noise(
            float(given.get("mismatch", 0.0)),
            int(given.get("mismatch_seed", 0)),
            float(given.get("noise", 0.0)),
            int(given.get("noise_seed", 0)),
        )
        netlist = bss2.plan(model.snn, noise)
        return BrainScaleS2Plan(model, netlist, resource_report(self.target, netlist))

    def placement_rows(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        """One row per hemisphere in use (the chip's two halves, each with its neurons and synapse rows): the
        populations it holds, their neurons there, and the larger of its neuron and synapse-row shares."""
        target = report.get("target") or {}
        rows = []
        for h, used_rows in enumerate(target.get("rows", [])):
            held = [(p["name"], p["hemisphere_neurons"][h]) for p in target.get("populations", [])]
            held = [(name, n) for name, n in held if n]
            if not held:
                continue
            neurons = sum(n for _, n in held)
            fill = max(neurons / bss2.NEURONS_PER_HEMISPHERE, used_rows / bss2.ROWS_PER_HEMISPHERE)
            layer = " + ".join(name for name, _ in held)
            rows.append({"core": h, "chip": 0, "layer": layer, "neurons": neurons, "fill": fill})
        return rows

    def quantization_rows(self, report: dict[str, Any]) -> list[dict[str, str]]:
        """Per population with inputs: the 6-bit weights' LSB (in thresholds), its threshold, the weights zeroed
        and clipped over its projections, and the largest rounding error (in thresholds)."""
        thresholds = {p.get("name"): p.get("threshold_cadc") for p in report.get("populations", [])}
        rows = []
        for post, entries in by_post(report.get("quantization", [])).items():
            rows.append(
                {
                    "layer": post,
                    "weights": f"6-bit, LSB {min(e.get('resolution', 0) for e in entries):.2g} thr",
                    "threshold": f"{thresholds[post]:.4g} CADC" if post in thresholds else "?",
                    "zeroed": count_share(entries, "zeroed"),
                    "clipped": str(sum(int(e.get("clipped", 0)) for e in entries)),
                    "max error": f"{max(e.get('max_error', 0) for e in entries):.2g} thr",
                }
            )
        return rows

    def resources(self, plan: BrainScaleS2Plan) -> ResourceReport:
        return plan.report

    def emit(self, plan: BrainScaleS2Plan, folder: Path) -> Emitted:
        netlist = plan.netlist
        files = bss2.save(netlist, folder)
        report = {
            "cell": bss2.CELL,
            "step_us": bss2.STEP_US,
            "substeps": netlist.substeps,
            "populations": [
                {
                    "name": p.name,
                    "role": p.role,
                    "parameters": dict(p.parameters),
                    "threshold_cadc": p.threshold,
                    "lsb_per_unit": p.lsb,
                    "gain_cadc_per_lsb": p.gain,
                    "hemisphere_neurons": list(p.hemisphere),
                }
                | ({"leak": dict(p.leak)} if p.leak is not None else {})
                for p in netlist.populations
            ],
            "leaky": leaky_rows(netlist),
            "rows": list(netlist.rows),
            "quantization": [
                {"name": q.name, "pre": q.pre, "post": netlist.populations[q.post].name} | q.report
                for q in netlist.projections
            ],
            "notes": list(netlist.notes),
            "noise": {
                "mismatch": netlist.noise.mismatch,
                "mismatch_seed": netlist.noise.mismatch_seed,
                "membrane": netlist.noise.membrane,
                "seed": netlist.noise.seed,
            },
        }
        warnings = []
        zeroed = sum(q.report.get("zeroed", 0) for q in netlist.projections)
        if zeroed:
            nonzero = zeroed + sum(q.report.get("synapses", 0) for q in netlist.projections)
            largest = max(q.report["resolution"] / 2 for q in netlist.projections if q.report.get("zeroed"))
            warnings.append(
                f"{zeroed} of {nonzero} nonzero weights ({100 * zeroed / nonzero:.2g}%) are below half a 6-bit LSB of "
                f"their layer and became 0, each worth less than {largest:.2g} threshold per spike; the emulated "
                "accuracy includes the loss. A layer's LSB is its largest weight / 63: a layer whose weights span a "
                "smaller range (retraining, or a weight clip) keeps more of them (per projection: report.json "
                "target.quantization)"
            )
        leaky = [p.name for p in netlist.populations if p.leak is not None]
        if leaky:
            warnings.append(
                f"leaky layers on the chip ({', '.join(map(repr, leaky))}): the analog neurons compare V with the "
                f"threshold continuously and may fire again {bss2.TAU_REFRAC:g} µs after a spike, up to twice in a "
                f"{bss2.STEP_US:g} µs step, where the float LIF fires at most once a step at its end: layers driven "
                "near one spike a step fire more on the chip (measured in the module docstring of brainscales2.py)"
            )
            warnings += [note for note in netlist.notes if "tau_m" in note]
        chip = ", ".join(f"{p.name!r} ({p.size})" for p in netlist.populations)
        host_ops = ", ".join(op.op_type for op in netlist.host.ops) or "nothing"
        kind = "leaky (LIF)" if netlist.input.get("decay", 1.0) != 1 else "IF"
        manifest = {
            "runs_on": {
                "chip": f"BrainScaleS-2 (brainscales2.json + brainscales2.npz): the CalibHXNeuronCuba populations "
                f"{chip} on 2 hemispheres, their 6-bit projections, and the membrane or spike readout",
                "host": f"the host graph (host.json: {host_ops}) computes the input population's current per sample; "
                f"the host runs its {netlist.sources[0].size} {kind} neurons and sends their spikes as spike sources "
                "(step t at t µs), and sends the bias sources' spikes (one every step)",
            },
            "step_us": bss2.STEP_US,
        }
        return Emitted(files=files, manifest=manifest, report=report, warnings=warnings)

    # -- run --------------------------------------------------------------------------------------------------
    def load(self, artifact: Any, mode: str) -> bss2.Netlist:
        return bss2.load(artifact)

    def simulate(self, loaded: bss2.Netlist, inputs: np.ndarray, run: Run) -> dict[str, Any]:
        return bss2.run(
            loaded,
            inputs,
            run.steps,
            checkpoints=run.checkpoints,
            counts=run.neuron_counts,
            offset=run.encoding.offset,
            engine=run.engine,
            device=run.device,
            readout_delay=run.readout_delay,
        )
