"""Cost metrics of ANNs and SNNs: synaptic fan-out maps (for SynOps) and multiply-accumulates (MACs).

SynOps follow SNN Toolbox: every spike (every event of the input layer) costs one operation per synapse
leaving the neuron that sent it, so ``SynOps = sum over time and neurons of spikes x fan-out``. A neuron's
fan-out counts the weights that connect it to the neurons of the next weighted layers, exactly, with stride,
padding, dilation and groups: it is computed once per weighted layer from the weight mask (zero weights are
no synapses) and carried back through the ops between a spiking layer and the weighted layers it feeds
(pooling windows, reshapes, concatenation, additions). A value read directly by neurons (e.g. a residual
Add into IF neurons) is one synapse per element; a model output has none (it is read out).

ANN MACs follow the usual convention: each weighted layer costs ``output size x fan-in`` per sample (every
kernel tap, padding included, and zero weights included).
"""

from __future__ import annotations

import numpy as np

from neurodeploy.errors import IRVerificationError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import Conv2d, Delay, Dense


def _no_downstream() -> np.ndarray:
    raise AssertionError("a weighted layer's fan-out does not depend on the layers after it")


def conv_fan_out(op: Conv2d, in_shape: tuple[int, ...]) -> np.ndarray:
    """Synapses leaving each input position (C, H, W) of a convolution: for every nonzero weight, the output
    windows whose tap lands on that position."""
    return op.fan_out_map(0, [in_shape], _no_downstream)


def dense_fan_out(op: Dense, in_shape: tuple[int, ...]) -> np.ndarray:
    """Synapses leaving each input element of a dense layer: the nonzero weights in its column."""
    return op.fan_out_map(0, [in_shape], _no_downstream)


def fan_out_maps(graph: Graph, sources: list[str] | None = None) -> dict[str, np.ndarray]:
    """Synapses leaving each element of each spike source, as an int64 map of the source value's shape.

    ``sources`` are value names; by default every graph input and every stateful op's output. Each op says what
    reaches through it (:meth:`neurodeploy.ir.op.Op.fan_out_map`). Raises IRVerificationError for an op between
    a source and the weighted layers whose wiring is not known.
    """
    types = graph.types()
    if sources is None:
        sources = list(graph.inputs) + [op.output for op in graph.ops if op.is_stateful]
    memo: dict[str, np.ndarray] = {}
    wiring = graph.index()

    def reach(value: str) -> np.ndarray:
        if value in memo:
            return memo[value]
        shape = types[value].shape
        total = np.zeros(shape, np.int64)
        for op in wiring.consumers(value):
            for slot, name in enumerate(op.inputs):
                if name == value:
                    total = total + contribution(op, slot)
        memo[value] = total
        return total

    def contribution(op: Op, slot: int) -> np.ndarray:
        downstream = lambda: reach(op.output)  # noqa: E731  (computed only by the ops that carry it back)
        fan_out = op.fan_out_map(slot, [types[v].shape for v in op.inputs], downstream)
        if fan_out is None:
            downstream()  # the op nearest the weighted layers is the one named
            raise IRVerificationError(
                f"cannot count the synapses through {op.op_type} '{op.name}': its wiring is unknown to "
                "neurodeploy.metrics.fan_out_maps"
            )
        return fan_out

    return {v: reach(v) for v in sources}


def input_synapses(host: Graph) -> int:
    """The synapses leaving a direct input's elements, summed, where a host graph computes the first population's
    current from it: the input's fan-out through the host's ops into that population (:func:`fan_out_maps` of
    the host graph closed by the population's neurons, so an element the host hands to a neuron unweighted counts
    one synapse, as in the reference target). A target counts it every step (the input is dense)."""
    (name,) = host.inputs
    current = host.outputs[0]
    neurons = IF(
        name=host.fresh_name("input_population"),
        inputs=(current,),
        output=host.fresh_name("spikes"),
        threshold=np.array(1, np.float32),
    )
    closed = Graph(host.name, dict(host.inputs), [neurons.output], [*host.ops, neurons])
    return int(fan_out_maps(closed, [name])[name].sum())


def layer_macs(graph: Graph) -> dict[str, int]:
    """MACs per sample of every weighted layer: output size x fan-in (:meth:`neurodeploy.ir.op.Op.fan_in`)."""
    types = graph.types()
    macs = {}
    for op in graph.ops:
        if (fan_in := op.fan_in()) is not None:
            macs[op.name] = types[op.output].size * fan_in
    return macs


def neuron_counts(graph: Graph) -> dict[str, int]:
    """Neurons of every stateful (spiking) op; a Delay is synapses, not neurons."""
    types = graph.types()
    return {op.name: types[op.output].size for op in graph.ops if op.is_stateful and not isinstance(op, Delay)}
