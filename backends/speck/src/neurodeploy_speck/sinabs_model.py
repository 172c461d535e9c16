"""The network of a speck.json document as sinabs layers (torch, sinabs), for cross-checks and benchmarks.

``to_sinabs(document, batch)`` builds ``torch.nn.Sequential`` of the chain of cores: per core a
``torch.nn.Conv2d`` (float64 by default) with the integer weights and biases (zero biases when
``leak_enable`` is off), then ``sinabs.layers.IAFSqueeze`` (``MultiSpike``, ``MembraneSubtract`` or
``MembraneReset``, ``min_v_mem`` = threshold_low, v initialised to ``neurons_initial_value``), then
``sinabs.layers.SumPool2d`` for the destination's pooling; the DVS layer's pooling comes first. Chains only (one
source and one destination per core). torch and sinabs are imported when called; ``sinabs.backend.dynapcnn``
(which needs samna) never is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy_speck.emulator import Network


def to_sinabs(document: dict[str, Any], batch: int, dtype: str = "float64"):
    """(torch.nn.Sequential, [IAFSqueeze layers in core order]) for inputs of ``batch`` samples, computing in
    ``dtype`` (float64 is exact for any state; float32 while states and sums stay below 2^24)."""
    import torch
    from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike
    from sinabs.layers import IAFSqueeze, SumPool2d

    torch_dtype = getattr(torch, dtype)

    class Cast(torch.nn.Module):
        """MultiSpike returns float32 spike counts (exact); the next convolution computes in ``dtype``."""

        def forward(self, x):
            return x.to(torch_dtype)

    network = Network.from_config(document)
    layers: list[torch.nn.Module] = []
    if network.input_pooling > 1:
        layers.append(SumPool2d(kernel_size=network.input_pooling))
    neurons = []
    for i, core in enumerate(network.cores):
        expected_source = -1 if i == 0 else network.cores[i - 1].index
        if [s for s, _ in core.sources] != [expected_source]:
            raise ValueError(f"to_sinabs handles chains of cores; core {core.index} has sources {core.sources}")
        pool = core.sources[0][1]
        if pool > 1:
            layers.append(SumPool2d(kernel_size=pool))
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
        layers += [conv, iaf, Cast()]
        neurons.append(iaf)
    return torch.nn.Sequential(*layers), neurons


def run_sinabs(document: dict[str, Any], frames: np.ndarray, dtype: str = "float64") -> list[np.ndarray]:
    """Spike counts (batch, T, F, H, W) of every core of ``document`` on (batch, T, C, H, W) event counts."""
    import torch

    batch, steps = frames.shape[:2]
    model, neurons = to_sinabs(document, batch, dtype)
    recorded: list[np.ndarray] = []

    def keep(_module, _inputs, output):
        recorded.append(output.detach().numpy().reshape(batch, steps, *output.shape[1:]).astype(np.int64))

    hooks = [n.register_forward_hook(keep) for n in neurons]
    try:
        with torch.no_grad():
            model(torch.tensor(frames.reshape(batch * steps, *frames.shape[2:]), dtype=getattr(torch, dtype)))
    finally:
        for hook in hooks:
            hook.remove()
    return recorded
