"""What of an artifact a Loihi 2 board runs: the Lava process behind every population and synapse, whether Lava's
Loihi extension has a hardware (NeuroCore) model for it, and so whether the program is *board-ready*.

Lava runs a process on a Loihi 2 chip only where its closed Loihi extension (lava-loihi, for members of Intel's
research community) ships an ``NcProcModel`` for it; under ``Loihi2HwCfg`` a process with only a Python model
falls back to that model on the host CPU (lava ``magma/core/run_configs.py: Loihi2HwCfg`` orders NeuroCore
models, then C models, then Python ones), which is not the chip. The extension's source is not public; which stock
processes it covers is taken from what Intel published:

* ``LIF``, ``Dense``, ``SigmaDelta`` (and its ``Sigma`` / ``Delta`` halves): Lava 0.4.0's release notes ("LIF,
  Sigma-Delta, and Dense Processes execute on Loihi NeuroCores", features of the Loihi 2 extension);
* ``Conv``: the same notes add a prototype convolution process, and lava-dl's PilotNet SNN / SDNN tutorials run
  netx networks of ``Conv`` blocks on Loihi 2 neurocores (``Loihi2HwCfg``);
* ``Sparse``: lava issue #436 (an ``NcProcModel`` for sparse connectivity on Loihi 2, closed as done);
* ``DelayDense``, ``DelaySparse``: lava issue #636 (synaptic delays in the Loihi 2 process models, for Dense and,
  where it has one, Sparse; closed as done).

neurodeploy's own processes (``SubtractiveLIF``, ``GradedReLU``) have bit-accurate Python models only.

What runs where in a board run: the host (CPU) computes the input layer's current from each sample with the
artifact's host graph and writes it as the input population's bias, and reads the readout's v at the end; every
population and synapse runs on the chip's neurocores. An artifact compiled for event input instead has the host
send each frame as graded spikes into the first population's synapse, on the chip (the ``lava`` board adapter
does not stream spikes yet; Lava's CPU models run such artifacts).
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

from typing import Any

from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse
from neurodeploy_loihi.sdnn import SdnnProgram

ON_CHIP = {
    "LIF": "lava 0.4.0 release notes: LIF executes on Loihi NeuroCores (Loihi 2 extension)",
    "Dense": "lava 0.4.0 release notes: Dense executes on Loihi NeuroCores (Loihi 2 extension)",
    "Conv": "lava-dl PilotNet SNN/SDNN tutorials run netx Conv blocks on Loihi 2 neurocores",
    "Sparse": "lava issue #436: a Loihi 2 NeuroCore model for Sparse",
    "DelayDense": "lava issue #636: synaptic delays in the Loihi 2 process models",
    "DelaySparse": "lava issue #636: synaptic delays in the Loihi 2 process models, Sparse included",
    "SigmaDelta": "lava 0.4.0 release notes: Sigma-Delta executes on Loihi NeuroCores (Loihi 2 extension)",
    "Sigma": "lava 0.4.0 release notes: Sigma-Delta executes on Loihi NeuroCores (Loihi 2 extension)",
    "Delta": "lava 0.4.0 release notes: Sigma-Delta executes on Loihi NeuroCores (Loihi 2 extension)",
}
"""Stock Lava processes with a Loihi 2 hardware model, each with where that is published."""

HOST_ONLY = {
    "SubtractiveLIF": "neurodeploy's LIF with reset by subtraction: a bit-accurate Python model, no hardware model",
    "GradedReLU": "neurodeploy's memoryless graded ReLU neuron: a bit-accurate Python model, no hardware model",
    "GradedFewSpike": "neurodeploy's few-spike neuron (coding=fs): a bit-accurate Python model; on Loihi 2 it needs "
    "a microcode neuron program, which is not written",
}
"""Processes of our own: Lava's CPU simulation runs them, a board cannot."""

PROFILES = {
    "exact": "reset by subtraction (SubtractiveLIF) in binary mode and memoryless graded ReLU neurons (GradedReLU) "
    "in graded mode: the float SNN's and the 8-bit ANN's arithmetic, in Lava's CPU simulation only",
    "board": "stock Lava processes only (binary: LIF with reset to zero, Dense, Sparse, their Delay forms, Conv; "
    "graded: "
    "SigmaDelta neurons and a Sigma readout, the host sending the input once): every population runs on Loihi 2 "
    "neurocores",
}
"""The Loihi target's ``profile`` option."""

WHERE = {
    "host": "the host graph (binary: the input current per sample, written as the input population's bias, and the "
    "readout's v read; graded SDNN: the input population's payloads, sent once, and the readout's sigma read, its "
    "bias added)",
    "chip": "every population and synapse listed under processes",
}


def binary_processes(program: Any) -> list[dict[str, Any]]:
    """The Lava processes a binary-mode :class:`~neurodeploy_loihi.program.Program` runs, per population."""
    out = []
    for k, layer in enumerate(program.network.layers):
        synapses = []
        for _, synapse, delay in layer.inbound(k):
            kind = (
                "Conv"
                if isinstance(synapse, ConvSynapse)
                else "Sparse"
                if isinstance(synapse, SparseSynapse)
                else "Dense"
            )
            synapses.append(f"Delay{kind}" if delay else kind)
        neuron = "LIF" if layer.neuron.kind == "lif" else "SubtractiveLIF"
        out.append({"population": program.names[k], "neuron": neuron, "synapses": synapses})
    return out


def graded_processes(program: Any) -> list[dict[str, Any]]:
    """The Lava processes a graded-mode program runs, per population: GradedReLU neurons, or (an SdnnProgram)
    the host's input payloads, SigmaDelta neurons and a Sigma readout."""
    if isinstance(program, SdnnProgram):  # population 0 is on the host
        out = [{"population": program.names[0], "neuron": "host", "synapses": []}]
        for name, layer in zip(program.names[1:], program.layers):
            synapse = "Conv" if isinstance(layer.synapse, ConvSynapse) else "Dense"
            out.append(
                {"population": name, "neuron": "Sigma" if layer.sigma_output else "SigmaDelta", "synapses": [synapse]}
            )
        return out
    out = []
    for name, layer in zip(program.names, program.network.layers):
        synapse = layer.synapse
        synapses = [] if synapse is None else ["Conv" if isinstance(synapse, ConvSynapse) else "Dense"]
        neuron = "GradedReLU" if layer.neuron.fs is None else "GradedFewSpike"
        out.append({"population": name, "neuron": neuron, "synapses": synapses})
    return out


def readiness(processes: list[dict[str, Any]]) -> dict[str, Any]:
    """``board_ready`` and its reason for a program's processes (see the module)."""
    missing = []
    for entry in processes:
        for process in [entry["neuron"], *entry["synapses"]]:
            if process not in ON_CHIP and process != "host":
                missing.append((entry["population"], process))
    if missing:
        kinds = sorted({p for _, p in missing})
        first = missing[0]
        why = HOST_ONLY.get(kinds[0], "not a stock process")
        reason = (
            f"population {first[0]!r} (and {len(missing) - 1} more) uses {', '.join(kinds)}, which "
            f"{'has' if len(kinds) == 1 else 'have'} no Loihi 2 hardware model ({why}); "
            "compile with --target-option profile=board for stock processes only"
        )
        return {"board_ready": False, "reason": reason, "processes": processes}
    used = sorted({p for e in processes for p in [e["neuron"], *e["synapses"]]} - {"host"})
    reason = "stock processes with Loihi 2 hardware models only: " + "; ".join(f"{p}: {ON_CHIP[p]}" for p in used)
    return {"board_ready": True, "reason": reason, "processes": processes, "runs_on": WHERE}
