"""The ``loihi`` / ``loihi2`` target: quantize a converted graph to Loihi 2 fixed point, place it, write the
artifact, and emulate the artifact bit-exactly (see the package README for the design)."""

from __future__ import annotations

import logging
from math import log2
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import limits
from neurodeploy.backends.base import Backend, CompiledModel, EmulationResult, ResourceReport
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import save_graph
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.graded import emit_graded, emulate_graded, quantized_outputs
from neurodeploy_loihi.lowering import Lowered, lower
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.quantize import Options, Quantized, quantize
from neurodeploy_loihi.resources import SPEC, cores_to_dicts, resource_report

log = logging.getLogger(__name__)

HEADROOM_SAMPLES = 16
"""Calibration samples run through the emulator at compile time to measure each layer's u and v ranges."""
HEADROOM_STEPS = 32
"""Steps of that run."""


def _netx_profile(graph: Graph) -> bool:
    """True when every IF neuron resets to zero and starts at v = 0: what a netx .net (Lava's LIF) expresses."""
    neurons = [op for op in graph.ops if op.is_stateful]
    return bool(neurons) and all(op.reset == "zero" and op.initial == 0 for op in neurons)


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


class Loihi2Backend(Backend):
    """Intel Loihi 2 through Lava's bit-accurate arithmetic. Mode ``binary``: rate-coded binary spikes,
    integrate-and-fire neurons with reset by subtraction (SubtractiveLIF) or to zero (Lava's LIF). Mode
    ``graded``: integer payloads through graded ReLU neurons, the 8-bit quantized ANN in one step per layer
    (:mod:`neurodeploy_loihi.graded`); every artifact holds both programs."""

    name = "loihi2"
    version = "0.2.0"
    fidelity = "bit-exact"
    modes = ("binary", "graded")
    default_steps = 32
    spec = SPEC

    # -- compile ----------------------------------------------------------------------------------------------
    def _quantized(self, graph: Graph, readout_range: float) -> tuple[Lowered, Quantized]:
        lowered = lower(graph)
        return lowered, quantize(lowered, readout_range, Options(netx=_netx_profile(graph)))

    def resources(self, graph: Graph) -> ResourceReport:
        lowered, q = self._quantized(graph, 1.0)  # the structure is all placement needs
        names = [p.name for p in lowered.populations]
        op_types = [{"input": "IF (input)", "hidden": "IF", "readout": "readout"}[p.role] for p in lowered.populations]
        report, _ = resource_report(self.target, q.network, names, op_types)
        return report

    def emit(self, model: CompiledModel, folder: Path) -> list[str]:
        graph = model.snn
        netx = _netx_profile(graph)
        lowered = lower(graph)
        readout_range, source = _readout_range(lowered, graph, model.calibration)
        q = quantize(lowered, readout_range, Options(netx=netx))
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
        # evaluate reads the converted graph and the ANN (layer names, scales, ANN activations); emulate does not
        files += [p.name for p in save_graph(graph, folder, "snn") + save_graph(model.ann, folder, "ann")]
        netx_note = self._write_net(program, lowered, netx, folder, files)
        _, cores = resource_report(self.target, q.network, program.names, program.roles)
        headroom = self._measure(program, model.calibration)
        for entry, measured in zip(q.report, headroom):
            entry["measured"] = measured
        model.target["report"] = {
            "mode": "binary",
            "pipeline_delay": program.delay,
            "readout_range": {"value": readout_range, "source": source},
            "quantization": q.report,
            "placement": cores_to_dicts(cores),
            "netx": netx_note,
        }
        model.target["manifest"] = {
            "pipeline_delay": program.delay,
            "pipeline_delay_note": (
                f"each of the {program.delay} synapse(s) on the longest path delays spikes by one step: T steps run "
                f"as T + {program.delay} Loihi steps, and T counts after the delay"
            ),
            "netx": netx_note["written"],
        }
        graded_files, graded_note = emit_graded(lowered, model.calibration, folder)  # mode graded: see graded.py
        files += graded_files
        model.target["report"]["graded"] = graded_note
        model.target["manifest"]["graded"] = {k: v for k, v in graded_note.items() if k != "quantization"}
        return files

    def _write_net(self, program: Program, lowered: Lowered, netx: bool, folder: Path, files: list[str]) -> dict:
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

    def _measure(self, program: Program, calibration: np.ndarray | None) -> list[dict[str, Any]]:
        """Each layer's largest |u| and |v|, folds and saturations on a few calibration samples."""
        if calibration is None or not len(calibration):
            return [{"note": "no calibration data"} for _ in program.names]
        run = program.run(np.asarray(calibration[:HEADROOM_SAMPLES], np.float32), HEADROOM_STEPS)
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
        return out

    # -- run --------------------------------------------------------------------------------------------------
    def emulate(
        self,
        artifact: Any,
        inputs: np.ndarray,
        *,
        steps: int,
        mode: str | None = None,
        checkpoints: tuple[int, ...] = (),
        encoding: Encoding | None = None,
        neuron_counts: bool = False,
        batch_size: int = 256,
    ) -> EmulationResult:
        mode = self.resolve_mode(mode)
        if steps < 1:
            raise DataError(f"steps must be >= 1, got {steps}")
        limits.check_steps(steps, "the emulation")  # before anything is allocated
        encoding = encoding if encoding is not None else Encoding()
        if encoding.kind != "direct":
            raise DataError(
                f"the {self.target} target takes direct (analog) input, which the host turns into the first "
                f"layer's current; got the {encoding.kind!r} encoding"
            )
        if mode == "graded":
            return emulate_graded(artifact, inputs, steps, tuple(checkpoints), encoding)
        program = Program.load(artifact)  # every file listed in the manifest and checked
        x = encoding.check_inputs(program.host, inputs)[next(iter(program.host.inputs))]
        if len(x) == 0:
            raise DataError("no inputs to emulate (the input array has 0 samples)")
        parts = [
            program.run(x[i : i + batch_size], steps, checkpoints=tuple(checkpoints), counts=neuron_counts)
            for i in range(0, len(x), batch_size)
        ]
        readout_spikes = sum(p.stats["readout_spikes"] for p in parts)
        if readout_spikes:
            log.warning(
                "the readout's v reached the top of its 24-bit range (%d neuron-steps): runs longer than the "
                "readout was scaled for saturate; results beyond that are unreliable",
                readout_spikes,
            )
        joined = {c: np.concatenate([p.checkpoints[c] for p in parts]) for c in parts[0].checkpoints}
        return EmulationResult(
            outputs=np.concatenate([p.outputs for p in parts]),
            steps=steps,
            mode=mode,
            spikes={k: np.concatenate([p.spikes[k] for p in parts]) for k in parts[0].spikes},
            neurons=parts[0].neurons,
            checkpoints=joined,
            checkpoint_spikes={
                c: {
                    k: np.concatenate([p.checkpoint_spikes[c][k] for p in parts]) for k in parts[0].checkpoint_spikes[c]
                }
                for c in parts[0].checkpoint_spikes
            },
            synops={k: np.concatenate([p.synops[k] for p in parts]) for k in parts[0].synops},
            checkpoint_synops={
                c: {
                    k: np.concatenate([p.checkpoint_synops[c][k] for p in parts]) for k in parts[0].checkpoint_synops[c]
                }
                for c in parts[0].checkpoint_synops
            },
            counts={k: np.concatenate([p.counts[k] for p in parts]) for k in parts[0].counts},
            encoding=encoding.describe(),
        )

    def quantized_outputs(
        self, artifact: Any, inputs: np.ndarray, *, mode: str | None = None, encoding: Encoding | None = None
    ) -> np.ndarray | None:
        """The outputs of the quantized ANN a mode computes exactly (``graded``: the 8-bit quantized ANN, a plain
        integer forward pass), or None for a mode without one (``binary``). ``neurodeploy evaluate`` prints it."""
        if (mode or self.modes[0]) != "graded":
            return None
        return quantized_outputs(artifact, inputs, encoding if encoding is not None else Encoding())
