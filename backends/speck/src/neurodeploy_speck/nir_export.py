"""A Speck artifact's cores as an IR graph in the chip's units, for ``neurodeploy export --quantized``.

Every number is one the emulator (:mod:`neurodeploy_speck.emulator`, time-binned mode, sinabs' ``IAFSqueeze``
with ``MultiSpike``) adds to a core's 16-bit state: int8 weights (the convolution of each core, a Dense readout
being a convolution over the whole map), int8 biases added every step (where the core's leak is enabled) and
int16 thresholds. The graph is, per core: the sum pooling of each source (the DVS layer's pooling of the input,
each destination's pooling), the convolution, and IF neurons that send floor(v / θ) spikes where v >= θ and
subtract them all (NIR IF read with ``spikes=multi``, ``reset=subtract``, ``compare=ge``: sinabs' reading). Its
input is the event counts per step the chip receives (the time-binned input); its output the readout core's
spikes per step (the host then multiplies them by ``value_per_spike`` and adds its bias, in the metadata).

Exact: a float32 run of the graph adds the same integers as the chip, exactly while they stay below 2**24; the
chip's state is 16-bit (the emulator counts overflows). What the graph leaves out: the chip clips v from below at
``threshold_low`` (the graph does not: a neuron driven below it comes back later in the graph); the host's readout
delay (the first steps it ignores); and, in the chip's event-driven mode, the one spike per input event (the
graph, like the time-binned emulator, integrates a step's events at once).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir import LIF, Add, AvgPool2d, Conv2d, Graph, Scale, TensorType
from neurodeploy.ir.graph import unique_name
from neurodeploy.ir.op import Op
from neurodeploy_speck.emulator import Network


def quantized_graph(network: Network, host: dict[str, Any], names: dict[int, str], target: str) -> Graph:
    """The cores of ``network`` (speck.json's, with its ``host`` section; ``names``: core -> layer name) as an IR
    graph in the chip's integers; ``graph.meta["nir_export"]`` says what it is."""
    input_name = str(host["input"]["name"])
    taken: set[str] = {input_name}
    ops: list[Op] = []

    def name(base: str) -> str:
        value = unique_name(base, taken)
        taken.add(value)
        return value

    def sum_pool(value: str, pool: int, base: str) -> str:
        if pool == 1:
            return value
        avg = name(f"{base}.pool")
        ops.append(AvgPool2d(name=avg, inputs=(value,), output=avg, kernel=(pool, pool), stride=(pool, pool)))
        total = name(f"{base}.sum")
        ops.append(Scale(name=total, inputs=(avg,), output=total, value=np.array(float(pool * pool), np.float32)))
        return total

    spikes: dict[int, str] = {-1: sum_pool(input_name, network.input_pooling, "input")}
    lows: list[str] = []
    for core in network.cores:
        where = f"core {core.index} ({names.get(core.index, '?')!r})"
        layer = names.get(core.index, f"core{core.index}")
        if np.any(core.initial):
            raise UnsupportedOpError(f"{where}: its neurons start at v != 0; NIR's start at 0")
        if core.return_to_zero:
            raise UnsupportedOpError(
                f"{where}: it returns to zero after a spike; a NIR file read with several spikes a step subtracts"
            )
        inputs = []
        for source, pool, shift in core.sources:
            channels = network.input_shape[0] if source == -1 else network.core(source).out_shape[0]
            if shift or channels != core.in_shape[0]:
                raise UnsupportedOpError(f"{where}: it concatenates its sources' channels, which NIR cannot say")
            inputs.append(sum_pool(spikes[source], pool, f"{layer}.in{len(inputs)}"))
        value = inputs[0]
        if len(inputs) > 1:
            joined = name(f"{layer}.join")
            ops.append(Add(name=joined, inputs=tuple(inputs), output=joined))
            value = joined
        conv = name(f"{layer}.conv")
        py, px = core.padding
        ops.append(
            Conv2d(
                name=conv,
                inputs=(value,),
                output=conv,
                weight=core.weight.astype(np.float32),
                bias=core.bias.astype(np.float32) if core.leak and np.any(core.bias) else None,
                stride=tuple(core.stride),
                padding=(py, px, py, px),
            )
        )
        neurons = name(layer)
        ops.append(
            LIF(
                name=neurons,
                inputs=(conv,),
                output=neurons,
                decay=np.float32(1),
                gain=np.float32(1),
                drive=np.float32(0),
                threshold=np.float32(core.threshold_high),
                reset="subtract",
                multi=True,
            )
        )
        spikes[core.index] = neurons
        lows.append(f"{layer}: {core.threshold_low}")
    output = host["output"]
    graph = Graph(
        f"{target}-quantized", {input_name: TensorType(tuple(network.input_shape))}, [spikes[network.output_core]], ops
    )
    graph.verify()
    graph.meta["nir_export"] = {
        "neurodeploy_export": "quantized",
        "target": target,
        "units": "the chip's integers: int8 weights and biases, int16 thresholds; input and output are event "
        "counts per step",
        "value_per_spike": float(output["value_per_spike"]),
        "host_bias": "none" if output.get("bias") is None else ", ".join(f"{b:g}" for b in output["bias"]),
        "readout_delay": int(output.get("readout_delay", 0)),
        "threshold_low": "; ".join(lows),
        "notes": "the chip clips v from below at threshold_low (the graph does not); the host multiplies the "
        "output's spikes by value_per_spike, adds host_bias, and ignores the first min(readout_delay, T // 2) steps",
    }
    return graph
