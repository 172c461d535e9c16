"""Loihi 2's lowering: the core's populations and synapses (:mod:`neurodeploy.lowering`) with Lava's rules. A
``Dense`` synapse becomes Lava's ``Dense`` (``DelayDense`` when delayed), a ``Conv`` synapse Lava's ``Conv``,
which pads both sides equally and takes no delay, so a delayed convolution branch is its taps listed (a ``Sparse``
with delays) or, where those would take more cores than a neuron per source neuron, reads a relay population that
repeats its source's spikes late."""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

from dataclasses import replace

from neurodeploy.ir.graph import Graph
from neurodeploy.lowering import ConvSpec, DenseSpec, Lowered, Population, Readout, Rules, Skip, SparseSpec
from neurodeploy.lowering import lower as lower_graph
from neurodeploy_loihi.resources import NEURONS_PER_CORE, SYNAPTIC_MEMORY_BYTES, WEIGHT_BYTES

__all__ = ["RULES", "ConvSpec", "DenseSpec", "Lowered", "Population", "Readout", "Skip", "SparseSpec", "lower"]

RULES = Rules(
    target="loihi",
    chip="Loihi",
    delayed_conv=False,
    leaky=True,
    shared_kernels=True,
    core=(NEURONS_PER_CORE, SYNAPTIC_MEMORY_BYTES // WEIGHT_BYTES),
)


def lower(graph: Graph, spike_input: bool = False, max_neurons: int | None = None) -> Lowered:
    """The graph's populations and synapses for Loihi 2; a ConversionError names the op that does not map.
    ``spike_input``: event frames arrive as spikes, which the first population reads through its synapse;
    ``max_neurons``: what the chips hold, which bounds the relays of delayed convolutions."""
    rules = RULES if max_neurons is None else replace(RULES, max_neurons=max_neurons)
    return lower_graph(graph, rules, spike_input)
