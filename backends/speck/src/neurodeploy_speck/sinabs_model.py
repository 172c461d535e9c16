"""The network of a speck.json document as sinabs layers (torch, sinabs), for cross-checks and benchmarks.

``to_sinabs(document, batch)`` builds, per core, a ``torch.nn.Conv2d`` (float64 by default) with the integer
weights and biases (zero biases when ``leak_enable`` is off) and ``sinabs.layers.IAFSqueeze`` (``MultiSpike``,
``MembraneSubtract`` or ``MembraneReset``, ``min_v_mem`` = threshold_low, v initialised to
``neurons_initial_value``). ``run_sinabs`` feeds each core the sum of its sources, each summed by
``sinabs.layers.SumPool2d`` with its destination's pooling (the DVS layer's pooling first for the input) and
placed at its destination's feature shift: sinabs' ``Merge`` (a sum of spike maps) for sources on the same
channels, a channel concatenation for shifted ones (the chip's ``feature_shift``, which sinabs does not write).
Cores run one after another over all steps at once, which is exact for networks without loops. torch and sinabs
are imported when called; ``sinabs.backend.dynapcnn`` (which needs samna) never is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy_speck.emulator import Network


def to_sinabs(document: dict[str, Any], batch: int, dtype: str = "float64"):
    """(network, {core index: (Conv2d, IAFSqueeze)}) for inputs of ``batch`` samples, computing in ``dtype``
    (float64 is exact for any state; float32 while states and sums stay below 2^24)."""
    import torch
    from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike
    from sinabs.layers import IAFSqueeze

    torch_dtype = getattr(torch, dtype)
    network = Network.from_config(document)
    modules = {}
    for core in network.cores:
        f, c, k, _ = core.weight.shape
        conv = torch.nn.Conv2d(c, f, k, stride=core.stride, padding=core.padding, bias=True).to(torch_dtype)
        conv.weight.data = torch.tensor(core.weight, dtype=torch_dtype)
        conv.bias.data = torch.tensor(core.bias if core.leak else np.zeros(f), dtype=torch_dtype)
        iaf = IAFSqueeze(
            batch_size=batch,
            spike_threshold=float(core.threshold_high),
            min_v_mem=float(core.threshold_low),
            spike_fn=MultiSpike,
            reset_fn=MembraneReset() if core.return_to_zero else MembraneSubtract(),
        )
        shape = (batch, *core.out_shape)
        iaf.init_state_with_shape(shape)
        iaf.v_mem.data = torch.tensor(np.broadcast_to(core.initial, shape).copy(), dtype=torch_dtype)
        modules[core.index] = (conv, iaf)
    return network, modules


def run_sinabs(document: dict[str, Any], frames: np.ndarray, dtype: str = "float64") -> list[np.ndarray]:
    """Spike counts (batch, T, F, H, W) of every core of ``document``, in the host's core order, on
    (batch, T, C, H, W) event counts."""
    import torch
    from sinabs.layers import SumPool2d

    torch_dtype = getattr(torch, dtype)
    batch, steps = frames.shape[:2]
    network, modules = to_sinabs(document, batch, dtype)
    x = torch.tensor(frames.reshape(batch * steps, *frames.shape[2:]), dtype=torch_dtype)
    if network.input_pooling > 1:
        x = SumPool2d(kernel_size=network.input_pooling)(x)
    spikes = {-1: x}
    recorded: list[np.ndarray] = []
    with torch.no_grad():
        for core in network.cores:
            c, h, w = core.in_shape
            total = torch.zeros((batch * steps, c, h, w), dtype=torch_dtype)
            for source, pool, shift in core.sources:
                pooled = SumPool2d(kernel_size=pool)(spikes[source]) if pool > 1 else spikes[source]
                n = min(pooled.shape[1], c - shift)
                rows, cols = min(pooled.shape[2], h), min(pooled.shape[3], w)
                total[:, shift : shift + n, :rows, :cols] += pooled[:, :n, :rows, :cols]
            conv, iaf = modules[core.index]
            out = iaf(conv(total)).to(torch_dtype)  # MultiSpike returns float32 counts (exact)
            spikes[core.index] = out
            recorded.append(out.numpy().reshape(batch, steps, *out.shape[1:]).astype(np.int64))
    return recorded
