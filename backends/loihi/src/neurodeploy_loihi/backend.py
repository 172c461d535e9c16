"""The ``loihi`` / ``loihi2`` target: quantize a converted graph to Loihi 2 fixed point, place it, write the
artifact, and emulate the artifact bit-exactly (see the package README for the design)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from math import log2
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy import readout
from neurodeploy.backends.base import (
    Backend,
    CompiledModel,
    Emitted,
    EmulationResult,
    Plan,
    ResourceReport,
)
from neurodeploy.emulation import Run
from neurodeploy.encoding import Encoding
from neurodeploy.errors import ConversionError, DataError, ResourceError
from neurodeploy.ir import IF, LIF, Delay, FewSpike, interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.lowering import spiking_layers
from neurodeploy_loihi import board
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.floats import mean_rates
from neurodeploy_loihi.graded import GradedOptions, GradedProgram, emit_graded, load_graded
from neurodeploy_loihi.lowering import Lowered, lower
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.quantize import Options, Quantized, quantize, to_lava
from neurodeploy_loihi.resources import (
    NEURONS_PER_CHIP,
    NEURONS_PER_CORE,
    SPEC,
    SYNAPTIC_MEMORY_BYTES,
    check_neurons,
    cores_to_dicts,
    interchip_routes,
    resource_report,
)
from neurodeploy_loihi.sdnn import SdnnProgram, emit_sdnn

log = logging.getLogger(__name__)

HEADROOM_SAMPLES = 16
"""Calibration samples run through the emulator at compile time to measure each layer's u and v ranges."""
HEADROOM_STEPS = 32
"""Steps of that run."""
MAX_CHIPS = 1152
"""The most chips the ``chips`` option takes: Hala Point's 1152 Loihi 2 chips (Intel, 2024), the largest system
built."""


SPIKING_IMPORT = (
    "the network arrived spiking (a NIR file): graded mode sends the activations of the ANN a converted network "
    "approximates, and this network has none; run it in binary mode, its spikes"
)


EVENT_INPUT = (
    "the input is event frames, sent to the chip as spikes: graded mode computes the first layer's activation "
    "from an analog input on the host; run it in binary mode"
)


FS_BINARY = (
    "few-spike coding (coding=fs): layer {layer!r} is a FewSpike population, whose spikes carry the values d_j of "
    "its code; binary mode sends 1-bit spikes, which cannot carry them. The {target} target runs few-spike neurons "
    "in graded mode only (--mode graded: Loihi 2's graded spikes carry K d_j), and rate-coded IF neurons "
    "(coding=rate) in binary mode"
)


def fs_digits_of(op: FewSpike, where: str) -> tuple[list[int], float]:
    """The integer digits c_j and the offset φ of a FewSpike op converted with coding=fs: the exact quantizer
    h_j = d_j = c_j / L, T_j = (c_j - φ) / L that graded mode runs in integers; a ConversionError names the layer
    for any other code (a fitted one is :func:`_fs_fitted`'s)."""
    levels = op.meta.get("levels")
    code = op.spike_values.astype(np.float64)
    if not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ConversionError(f"{where}: a FewSpike op without its levels L (convert with coding=fs)")
    digits = np.rint(code * levels)
    phi = (code - op.thresholds.astype(np.float64)) * levels
    exact = (
        np.allclose(digits, code * levels, atol=1e-4)
        and np.array_equal(op.resets, op.spike_values)
        and digits.min() >= 1
        and digits.sum() == levels
        and np.ptp(phi) < 1e-4
        and 0 <= phi[0] < 1
    )
    if not exact:
        raise ConversionError(
            f"{where}: its few-spike code is not the exact quantizer of coding=fs (h_j = d_j = c_j / L, T_j = "
            "(c_j - φ) / L with integer digits c_j that sum to L), the only one the loihi target runs in integers"
        )
    return [int(c) for c in digits], round(float(phi[0]), 6)


def _fs_as_if(graph: Graph) -> Graph:
    """A copy of ``graph`` with every FewSpike op an IF op of the same threshold whose meta holds its few-spike
    code (``fs``: digits, start) and its staircase (``levels``, ``initial`` = φ): what the lowering maps, and what
    graded mode (:func:`neurodeploy_loihi.graded.quantize_graded`) turns into integer few-spike populations."""
    graph = graph.copy()
    for i, op in enumerate(graph.ops):
        if isinstance(op, FewSpike) and _fitted(op):
            meta = {**op.meta, "fs": _fs_fitted(op)}
            graph.ops[i] = IF(name=op.name, inputs=op.inputs, output=op.output, meta=meta, threshold=op.threshold)
        elif isinstance(op, FewSpike):
            digits, phi = fs_digits_of(op, f"FewSpike {op.name!r}")
            meta = {**op.meta, "fs": {"digits": digits, "start": int(op.start)}}
            graph.ops[i] = IF(
                name=op.name, inputs=op.inputs, output=op.output, meta=meta, threshold=op.threshold, initial=phi
            )
    return graph


def _fitted(op: FewSpike) -> bool:
    """Whether a FewSpike op's code was fitted to an activation (SiLU), not a staircase's digits."""
    return isinstance(op.meta.get("fs_fit"), dict)


def _fs_fitted(op: FewSpike) -> dict[str, Any]:
    """A FewSpike op's code fitted to an activation (SiLU), in units of its threshold θ (the lowering's units):
    what graded mode (:func:`neurodeploy_loihi.graded._fitted_code`) turns into an integer code of either sign."""
    fit = op.meta["fs_fit"]
    return {
        "thresholds": [float(x) for x in op.thresholds],
        "resets": [float(x) for x in op.resets],
        "values": [float(x) for x in op.spike_values],
        "start": int(op.start),
        "activation": str(fit.get("activation")),
        "range": [float(x) for x in fit.get("range", (-1.0, 1.0))],
    }


def _netx_profile(graph: Graph) -> bool:
    """True when every IF neuron resets to zero and starts at v = 0: what a netx .net (Lava's LIF) expresses."""
    neurons = [op for op in graph.ops if op.is_stateful]
    # (a .net's neurons do not leak: leaky neurons of a spiking import are not written; nor are delays)
    return bool(neurons) and all(isinstance(op, IF) and op.reset == "zero" and op.initial == 0 for op in neurons)


def _readout_range(lowered: Lowered, graph: Graph, calibration: np.ndarray | None) -> tuple[float, str]:
    """The largest |output| per step in float units: measured on the calibration data through the graph's float
    forward (the rate limit of the SNN), or bounded by the readout's weights (every input at rate 1)."""
    pop = lowered.populations[lowered.readout.population]
    if calibration is not None and len(calibration):
        out = interpret.run(graph, np.asarray(calibration, np.float32))[graph.outputs[0]]
        return float(np.abs(out).max()), "calibration"
    if pop.synapse is None:
        return 1.0, "spike readout"
    weight = pop.synapse.weight
    per_out = np.abs(weight.reshape(weight.shape[0], -1)).sum(axis=1).max() + float(np.abs(pop.bias).max())
    return float(per_out), "weights"


def _bias_warnings(report: list[dict[str, Any]]) -> list[str]:
    """Warnings for the layers whose bias bound what quantization could do (see quantize.py): a vth below what
    the weights allow, a bias correction clipped at the bias field's range."""

    def names(found: list[str]) -> str:
        return f"{len(found)} layer(s) ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''})"

    lowered = [entry["name"] for entry in report if "vth_lowered_for_bias" in entry]
    clipped = [entry["name"] for entry in report if entry.get("bias_correction", {}).get("clipped")]
    warnings = []
    if lowered:
        warnings.append(
            f"{names(lowered)} have a vth below what their weights allow, so that their bias fits the 13-bit "
            "mantissa: their weights keep fewer bits (report.json: target.quantization[].vth_lowered_for_bias)"
        )
    if clipped:
        warnings.append(
            f"{names(clipped)} have a bias correction (the 8-bit weights' mean error on the calibration rates) past "
            "the bias field's range, clipped there: part of that error stays (report.json: "
            "target.quantization[].bias_correction.clipped; bias_correction=false turns the correction off)"
        )
    return warnings


class Loihi2Backend(Backend):
    """Intel Loihi 2 through Lava's bit-accurate arithmetic. Mode ``binary``: rate-coded binary spikes,
    integrate-and-fire neurons with reset by subtraction (SubtractiveLIF) or to zero (Lava's LIF). Mode
    ``graded``: integer payloads through graded ReLU neurons, the quantized ANN (8-bit weights; a QCFS population
    sends its level 0..L) in one step per layer
    (:mod:`neurodeploy_loihi.graded`); every artifact holds both programs."""

    name = "loihi2"
    version = "0.2.0"
    fidelity = "bit-exact"
    modes = ("binary", "graded")
    conversion_features = frozenset({"fs"})  # few-spike neurons: graded mode only (graded.py)
    encodings = ("direct", "events")  # direct: the host computes the first layer's current; events: spikes in
    delayed_modes = ("binary",)
    engines = ("numpy", "torch")
    default_steps = 32
    spec = SPEC
    device_adapters: ClassVar[dict[str, str]] = {"lava": "neurodeploy_loihi.device:LavaDevice"}
    board_options: ClassVar[dict[str, str]] = {"profile": "board"}  # stock Lava processes only (board.py)
    target_options: ClassVar[dict[str, str]] = {
        "profile": "exact (default): "
        + board.PROFILES["exact"]
        + "; board: "
        + board.PROFILES["board"]
        + " (converts with reset=zero)",
        "chips": f"Loihi 2 chips of the system (default 1; Kapoho Point has 8, at most {MAX_CHIPS}): populations are "
        "placed on their cores in order, and the report gives the traffic between chips",
        "bias_correction": "true (default): with calibration data, each neuron's bias takes back the mean error "
        "the 8-bit weights add to its input on the calibration rates; false: the bias as converted",
        "readout_delay": readout.OPTION_HELP + " (binary mode; the host reads the readout's v at that step and at T)",
        "graded_staircase": "true (default): in graded mode a population converted from a QCFS activation sends its "
        "level 0..L, the trained staircase; false: its activation rounded to the message bits, as a ReLU's",
    }

    # -- compile ----------------------------------------------------------------------------------------------
    def parse_target_options(self, options: dict[str, str]) -> dict[str, Any]:
        parsed = super().parse_target_options(options)
        if "profile" in parsed and parsed["profile"] not in board.PROFILES:
            raise DataError(
                f"target option profile must be one of {', '.join(board.PROFILES)}, got {parsed['profile']!r}"
            )
        if "chips" in parsed:
            text = parsed["chips"]
            if not (text.isdigit() and 1 <= int(text) <= MAX_CHIPS):
                raise DataError(f"target option chips must be a whole number from 1 to {MAX_CHIPS}, got {text!r}")
            parsed["chips"] = int(text)
        for key in ("graded_staircase", "bias_correction"):
            if key in parsed:
                text = str(parsed[key]).lower()
                if text not in ("true", "false"):
                    raise DataError(f"target option {key} must be true or false, got {text!r}")
                parsed[key] = text == "true"
        return parsed

    def pipeline(self, options: dict[str, Any]) -> str:
        """The board profile converts with reset to zero (Lava's LIF), unless the user said otherwise, which is an
        error naming the profile that would take it."""
        if options.get("target_options", {}).get("profile") != "board":
            return super().pipeline(options)
        return self.conversion(
            options,
            reset=(
                "zero",
                ("zero",),
                "--target-option profile=board runs stock Lava LIF neurons, which reset to zero; the conversion asks "
                "for reset={reset}, which only profile=exact (SubtractiveLIF, Lava's CPU simulation) takes: drop "
                "reset= or use profile=exact",
            ),
        )

    def plan(self, model: CompiledModel) -> LoihiPlan:
        graph = model.snn
        profile = model.target_options.get("profile", "exact")
        for op in graph.ops:
            if op.is_stateful and not isinstance(op, (IF, LIF, Delay, FewSpike)):  # (a Delay: its synapse's delay)
                raise ConversionError(
                    f"{op.op_type} '{op.name}': the {self.target} target runs IF neurons (binary or graded spikes) "
                    "and few-spike neurons (graded spikes) only; convert with the target's own pipeline (QCFS "
                    "models: qcfs=rate)"
                )
        few_spike = [op for op in graph.ops if isinstance(op, FewSpike)]
        if few_spike:
            self._check_few_spike(model, few_spike, profile)
            graph = _fs_as_if(graph)
        if profile == "board":
            for op in graph.ops:
                if isinstance(op, (IF, LIF)) and op.reset != "zero":
                    raise ConversionError(
                        f"layer {op.name!r} resets by {op.reset}: the board profile runs Lava's LIF, which resets to "
                        "zero (convert with reset=zero, or compile with --target-option profile=exact for Lava's "
                        "CPU simulation)"
                    )
        chips = int(model.target_options.get("chips", 1))
        check_neurons(spiking_layers(graph), chips, MAX_CHIPS)
        events = model.encoding.kind == "events"  # the frames go to the chip as spikes
        netx = _netx_profile(graph) and not events  # (a .net's Input block is driven by a current)
        # Lowering builds relays up to the largest system's neurons only (a runaway stops early); past the chips
        # asked for, the whole count names the chips it needs
        lowered = lower(graph, spike_input=events, max_neurons=MAX_CHIPS * NEURONS_PER_CHIP)
        # the graph's populations, and the relays (they repeat delayed spikes, lowering._relay: neurons the graph's
        # layers do not count)
        sizes: dict[bool, list[tuple[str, int]]] = {False: [], True: []}
        for p in lowered.populations:
            if p.role != "readout":
                sizes["relay" in p.meta].append((p.name, int(np.prod(p.shape))))
        if sizes[True]:
            check_neurons(sizes[False], chips, MAX_CHIPS, sizes[True])
        readout_range, source = _readout_range(lowered, graph, model.calibration)
        means = None
        calibration = model.calibration
        corrected = model.target_options.get("bias_correction", True) and not model.arrived_spiking and not events
        if corrected and calibration is not None and len(calibration):  # (rates from the ANN a conversion kept)
            means = mean_rates(lowered, np.asarray(calibration, np.float32))
        q = quantize(lowered, readout_range, Options(netx=netx, means=means))
        names = [p.name for p in lowered.populations]
        neuron = {True: "LIF", False: "IF"}
        op_types = [
            {"input": f"{neuron[p.leaky]} (input)", "hidden": neuron[p.leaky], "readout": "readout"}[p.role]
            for p in lowered.populations
        ]
        chips = int(model.target_options.get("chips", 1))
        report, cores = resource_report(self.target, q.network, names, op_types, chips)
        return LoihiPlan(model, lowered, q, netx, readout_range, source, report, cores, profile)

    def _check_few_spike(self, model: CompiledModel, ops: list[FewSpike], profile: str) -> None:
        """Few-spike neurons run in graded mode with our Lava process (profile exact), on analog input; a
        staircase's digits need the staircase."""
        digits = [op for op in ops if not _fitted(op)]
        op = digits[0] if digits else ops[0]
        why = None
        if profile == "board":
            why = (
                "--target-option profile=board runs stock Lava processes, whose graded neurons (SigmaDelta) have no "
                "few-spike code; compile with profile=exact"
            )
        elif model.encoding.kind == "events":
            why = "event input reaches the chip as binary spikes, and graded mode takes analog input; use direct input"
        elif model.target_options.get("graded_staircase", True) is False and digits:
            why = "few-spike neurons send the digits of the QCFS staircase: drop graded_staircase=false"
        if why:
            raise ConversionError(f"few-spike coding (coding=fs), layer {op.name!r}: {why}")

    def placement_rows(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        """Per core of the binary program's placement: its chip, layer, neurons, and the larger of its neuron
        and synaptic memory shares."""
        rows = []
        for entry in (report.get("target") or {}).get("placement", []):
            fill = max(entry["neurons"] / NEURONS_PER_CORE, entry.get("synapse_bytes", 0) / SYNAPTIC_MEMORY_BYTES)
            rows.append(
                {
                    "core": int(entry["core"]),
                    "chip": int(entry.get("chip", 0)),
                    "layer": str(entry["layer"]),
                    "neurons": int(entry["neurons"]),
                    "fill": float(fill),
                }
            )
        return rows

    def quantization_rows(self, report: dict[str, Any]) -> list[dict[str, str]]:
        """Per population of the binary program: its synapses' weight format (bits, sign mode, exponent), the
        scale (fixed-point units per float unit), the threshold (and its mantissa vth), weights zeroed and clipped,
        and the state's bits to spare measured on calibration data."""
        rows = []
        for entry in report.get("quantization", []):
            synapse = entry.get("synapse") or {}
            weights = synapse.get("weights") or {}
            measured = entry.get("measured") or {}
            bias = entry.get("bias") or {}
            row = {"layer": str(entry.get("name", "?")), "role": str(entry.get("role", ""))}
            row["weights"] = (
                f"{synapse.get('num_weight_bits')}-bit {str(synapse.get('sign_mode', '')).lower()}, "
                f"exp {synapse.get('weight_exp')}"
                if synapse
                else "-"
            )
            row["scale"] = f"{entry.get('scale', 0):g}"
            row["threshold"] = f"{entry.get('threshold')} (vth {entry.get('vth')})"
            row["zeroed"] = (
                f"{weights.get('zeroed', 0)} of {weights.get('count', 0)} ({weights.get('zeroed_fraction', 0):.1%})"
                if weights
                else "-"
            )
            row["clipped"] = str(int(weights.get("clipped", 0)) + int(bias.get("clipped", 0)))
            spare = measured.get("bits_to_spare")
            row["headroom"] = "-" if spare is None else f"{spare} bits"
            rows.append(row)
        return rows

    def resources(self, plan: LoihiPlan) -> ResourceReport:
        return plan.report

    def emit(self, plan: LoihiPlan, folder: Path) -> Emitted:
        lowered, q = plan.lowered, plan.quantized
        program = Program(
            mode="binary",
            host=lowered.host,
            network=q.network,
            names=[p.name for p in lowered.populations],
            roles=[p.role for p in lowered.populations],
            shapes=[tuple(p.shape) for p in lowered.populations],
            scales=q.scales,
            input_vth=q.input_vth,
            input_clip=q.input_clip,
            input_bias_exp=q.input_bias_exp,
            readout={
                "kind": lowered.readout.kind,
                "population": lowered.readout.population,
                "output": lowered.readout.output,
                "shape": list(lowered.readout.shape),
            },
            readout_scale=lowered.readout.scale,
        )
        files = program.save(folder)
        netx_note = self._write_net(program, plan.netx, folder, files)
        headroom, rates = self._measure(program, plan.model.calibration)
        quantization = [{**entry, "measured": measured} for entry, measured in zip(q.report, headroom)]
        graded_files: list[str]
        graded_note: dict[str, Any]
        graded: GradedProgram | SdnnProgram | None
        if plan.model.arrived_spiking:  # graded payloads carry the activations of an ANN this network never had
            graded_files, graded, graded_note = [], None, {"available": False, "reason": SPIKING_IMPORT}
        elif program.network.input_bits:
            graded_files, graded, graded_note = [], None, {"available": False, "reason": EVENT_INPUT}
        elif plan.profile == "board":  # stock SigmaDelta neurons
            graded_files, graded_note, graded = emit_sdnn(lowered, plan.model.calibration, folder)
        else:  # GradedReLU
            staircase = bool(plan.model.target_options.get("graded_staircase", True))
            graded_files, graded_note, graded = emit_graded(
                lowered, plan.model.calibration, folder, GradedOptions(staircase=staircase)
            )
        few_spike = [p.name for p in lowered.populations if "fs" in p.meta]
        if few_spike and graded is None:
            raise ConversionError(
                f"few-spike coding (coding=fs), layer {few_spike[0]!r}: the {self.target} target runs few-spike "
                f"neurons in graded mode only, and graded mode cannot hold this network: {graded_note['reason']}"
            )
        readiness = self._board(program, graded)
        report = {
            "mode": "binary",
            "pipeline_delay": program.delay,
            "readout_range": {"value": plan.readout_range, "source": plan.readout_source},
            "quantization": quantization,
            "placement": cores_to_dicts(plan.cores),
            "chips": {
                "available": int(plan.model.target_options.get("chips", 1)),
                "used": max(c.chip for c in plan.cores) + 1,
                "interchip": interchip_routes(q.network, program.names, plan.cores, rates),
                "interchip_note": "routes: (presynaptic neuron, destination core) pairs between two chips; "
                "messages_per_sample: the spikes they carry per sample, measured on calibration samples over "
                f"{HEADROOM_STEPS} steps (absent without calibration data)",
            },
            "netx": netx_note,
            "graded": graded_note,
            "board": readiness,
        }
        manifest = {
            "pipeline_delay": program.delay,
            "pipeline_delay_note": (
                f"each of the {program.delay} synapse(s) on the longest path delays spikes by one step: T steps run "
                f"as T + {program.delay} Loihi steps, and T counts after the delay"
            ),
            "netx": netx_note["written"],
            "graded": {k: v for k, v in graded_note.items() if k != "quantization"},
            "profile": plan.profile,
            "board_ready": readiness["board_ready"],
            "board_reason": readiness["reason"],
        }
        if few_spike:  # binary mode refuses to load (see load)
            manifest["few_spike"] = {"layer": few_spike[0], "modes": ["graded"]}
        return Emitted(files=files + graded_files, manifest=manifest, report=report, warnings=_bias_warnings(q.report))

    @staticmethod
    def _board(program: Program, graded: GradedProgram | SdnnProgram | None) -> dict[str, Any]:
        """Per mode: the Lava processes, whether each has a Loihi 2 hardware model; ready when all modes are."""
        modes = {"binary": board.readiness(board.binary_processes(program))}
        if graded is not None:
            modes["graded"] = board.readiness(board.graded_processes(graded))
        ready = all(m["board_ready"] for m in modes.values())
        reason = "; ".join(f"{mode}: {m['reason']}" for mode, m in modes.items() if m["board_ready"] is ready)
        return {"board_ready": ready, "reason": reason, "modes": modes}

    def _write_net(self, program: Program, netx: bool, folder: Path, files: list[str]) -> dict:
        from neurodeploy_loihi.netx import NET_FILE, NetxError, write_net

        if not netx:
            reason = (
                "no network.net: netx builds Lava's LIF, which resets v to zero and starts at v = 0, while this "
                "network resets by subtraction (SubtractiveLIF) or starts at initial > 0; compile with "
                "--conversion reset=zero,initial=0 for a netx-expressible network"
            )
            return {"written": False, "reason": reason}
        try:
            write_net(program, folder / NET_FILE)
        except NetxError as exc:
            return {"written": False, "reason": str(exc)}
        files.append(NET_FILE)
        return {"written": True, "file": NET_FILE}

    def _measure(
        self, program: Program, calibration: np.ndarray | None
    ) -> tuple[list[dict[str, Any]], list[np.ndarray] | None]:
        """Each layer's largest |u| and |v|, folds and saturations on a few calibration samples; and each
        population's mean spikes per neuron and sample (Lava order; the readout's zero), or None without data."""
        if calibration is None or not len(calibration):
            return [{"note": "no calibration data"} for _ in program.names], None
        if program.network.input_bits:  # calibration data are analog inputs, this program takes event frames
            return [{"note": "event input: not measured on the (analog) calibration data"} for _ in program.names], None
        try:
            run = program.run(np.asarray(calibration[:HEADROOM_SAMPLES], np.float32), HEADROOM_STEPS, counts=True)
        except ResourceError as exc:  # the emulator's run does not fit this machine's memory: nothing measured
            return [{"note": f"not measured: {exc}"} for _ in program.names], None
        rates = [
            to_lava(run.counts[name].mean(axis=0, keepdims=True), shape)[0]
            if name in run.counts
            else np.zeros(layer.shape)
            for name, shape, layer in zip(program.names, program.shapes, program.network.layers)
        ]
        stats = run.stats
        out = []
        for k in range(len(program.names)):
            top = max(int(stats["u_max"][k]), int(stats["v_max"][k]))
            out.append(
                {
                    "samples": min(len(calibration), HEADROOM_SAMPLES),
                    "steps": HEADROOM_STEPS,
                    "u_max_abs": int(stats["u_max"][k]),
                    "v_max_abs": int(stats["v_max"][k]),
                    "u_folds": int(stats["u_folds"][k]),
                    "v_saturations": int(stats["v_saturations"][k]),
                    "bits_to_spare": None if top == 0 else round(log2(fp.STATE_LIMIT / top), 2),
                }
            )
        return out, rates

    # -- run --------------------------------------------------------------------------------------------------
    quantized_modes = ("graded",)

    def quantized_graph(self, artifact: Any) -> Graph:
        """The binary program in units of v, the chip's integers (:mod:`neurodeploy_loihi.nir_export`)."""
        from neurodeploy_loihi.nir_export import quantized_graph

        return quantized_graph(Program.load(artifact), self.target)

    def load(self, artifact: Any, mode: str) -> Program | GradedProgram | SdnnProgram:
        """The mode's program: every file listed in the manifest and checked."""
        few_spike = (artifact.manifest.get("target") or {}).get("few_spike")
        if mode != "graded" and isinstance(few_spike, dict):
            raise DataError(FS_BINARY.format(layer=str(few_spike.get("layer", "?")), target=self.target))
        return load_graded(artifact) if mode == "graded" else Program.load(artifact)

    def prepare(self, loaded: Program | GradedProgram, inputs: Any, *, steps: int, encoding: Encoding) -> np.ndarray:
        events = isinstance(loaded, Program) and loaded.network.input_bits > 0
        if events:  # the artifact takes event frames as spikes
            if encoding.kind != "events":
                raise DataError(
                    f"this {self.target} artifact was compiled for event input (its first layer reads spikes on the "
                    f"chip); emulate it with the events encoding, not {encoding.kind!r}"
                )
            (x,) = encoding.check_inputs(loaded.host, inputs).values()
            encoding.stimulus(x, steps)  # more steps than frames: an error unless padded
            return x
        if encoding.kind != "direct":
            raise DataError(
                f"the {self.target} target takes direct (analog) input, which the host turns into the first "
                f"layer's current; got the {encoding.kind!r} encoding"
            )
        return encoding.check_inputs(loaded.host, inputs)[next(iter(loaded.host.inputs))]

    def emulate_batch(self, loaded: Program | GradedProgram, inputs: np.ndarray, run: Run) -> EmulationResult:
        if isinstance(loaded, (GradedProgram, SdnnProgram)):  # spikes: nonzero payloads; synops: times fan-out
            if run.engine != "numpy" and isinstance(loaded, SdnnProgram):
                raise DataError(
                    f"the {run.engine} emulator engine runs the {self.target} target's binary mode and the default "
                    f"profile's graded mode; run the board profile's graded form (SDNN) with --emulator numpy"
                )
            if run.engine == "torch":  # the same integers, batch-first tensors on the run's device
                from neurodeploy_loihi import torch_engine

                done = torch_engine.run_graded(
                    loaded, inputs, run.steps, checkpoints=run.checkpoints, device=run.device
                )
            else:
                done = loaded.run(inputs, run.steps, checkpoints=run.checkpoints)
            counts, diagnostics = {}, {}
            fs = getattr(loaded, "fs", None)  # a few-spike program's pipeline fill runs before the counted steps
            fill = int(fs["fill"]) if fs else 0
        else:
            options = {"checkpoints": run.checkpoints, "counts": run.neuron_counts, "readout_delay": run.readout_delay}
            if run.engine == "torch":  # the same integers, batch-first tensors on the run's device
                from neurodeploy_loihi import torch_engine

                done = torch_engine.run(loaded, inputs, run.steps, device=run.device, **options)
            else:
                done = loaded.run(inputs, run.steps, **options)
            counts, diagnostics = done.counts, {"readout_spikes": int(done.stats["readout_spikes"])}
            fill = 0
        return EmulationResult(
            outputs=done.outputs,
            steps=run.steps,
            delay=fill,
            mode=run.mode,
            spikes=done.spikes,
            neurons=done.neurons,
            checkpoints=done.checkpoints,
            checkpoint_spikes=done.checkpoint_spikes,
            synops=done.synops,
            checkpoint_synops=done.checkpoint_synops,
            counts=counts,
            encoding=run.encoding.describe(),
            diagnostics=diagnostics,
        )

    def after_run(self, loaded: Program | GradedProgram, result: EmulationResult) -> None:
        if result.diagnostics.get("readout_spikes"):
            log.warning(
                "the readout's v reached the top of its 24-bit range (%d neuron-steps): runs longer than the "
                "readout was scaled for saturate; results beyond that are unreliable",
                result.diagnostics["readout_spikes"],
            )

    def quantized_batch(
        self, loaded: GradedProgram, inputs: np.ndarray, *, mode: str, encoding: Encoding
    ) -> np.ndarray:
        """The 8-bit quantized ANN's outputs, a plain integer forward pass (``neurodeploy evaluate`` prints it)."""
        return loaded.reference(inputs)


@dataclass
class LoihiPlan(Plan):
    """The converted graph lowered to populations, quantized to Loihi 2 fixed point, and placed on cores."""

    lowered: Lowered
    quantized: Quantized
    netx: bool
    readout_range: float
    readout_source: str
    report: ResourceReport
    cores: list
    profile: str = "exact"
