"""The BrainScaleS-2 model on torch: :func:`neurodeploy_pynn.brainscales2_emulator.run`'s contract, computed on a
torch device (``cpu``, or ``cuda`` when one is present), equal value for value to the numpy engine.

The model is float64 (it is a model of analog circuits, see :mod:`neurodeploy_pynn.brainscales2_emulator`), so
"equal" here means the same float64 operations in the same order: each integration step is the numpy engine's
``_State.advance`` op for op on (batch, size) float64 tensors (torch's elementwise kernels round after every op,
as numpy's do), and the synaptic input is the same exact integer sum (0/1 spikes times integer weights 0..63, a
float64 product whose partial sums are integers far below 2**53, so the order of summation changes nothing).
Trial-to-trial noise is drawn by the numpy engine's own streams (one numpy generator per sample and population)
and copied to the device, so a seed gives the same noise on both engines. torch is imported when :func:`run` is
called.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurodeploy.torch_support import exact_floats, import_torch, resolve_device
from neurodeploy_pynn.brainscales2_emulator import (
    Neurons,
    Noise,
    Result,
    Synapses,
    _NoiseStreams,
    incoming_matrices,
    membrane_kernel,
)


class _State:
    """One population's constants and state for a batch, as tensors (see the numpy engine's ``_State``)."""

    def __init__(self, torch: Any, device: Any, p: Neurons, batch: int, dt: float) -> None:
        def tensor(values: np.ndarray) -> Any:
            return torch.as_tensor(np.ascontiguousarray(values), device=device)

        self.p, self.torch = p, torch
        tau_m = p.per_neuron("tau_m")
        tau_e, tau_i = p.per_neuron("tau_syn_exc"), p.per_neuron("tau_syn_inh")
        self.a = tensor(np.exp(-dt / tau_m))
        self.b_exc, self.b_inh = tensor(np.exp(-dt / tau_e)), tensor(np.exp(-dt / tau_i))
        self.k_exc, self.k_inh = tensor(membrane_kernel(tau_m, tau_e, dt)), tensor(membrane_kernel(tau_m, tau_i, dt))
        self.jump_exc = tensor(p.per_neuron("gain_exc") / tau_e)
        self.jump_inh = tensor(p.per_neuron("gain_inh") / tau_i)
        self.v_rest, self.v_reset, self.v_thresh = (tensor(p.per_neuron(k)) for k in ("v_rest", "v_reset", "v_thresh"))
        hold = np.ceil(p.per_neuron("tau_refrac") / dt - 1e-9).astype(np.int32)  # as the numpy engine rounds it
        self.hold = tensor(hold.astype(np.int64))
        self.v = self.v_rest.expand(batch, p.size).clone()
        self.i_exc = torch.zeros((batch, p.size), dtype=torch.float64, device=device)
        self.i_inh = torch.zeros_like(self.i_exc)
        self.held = torch.zeros((batch, p.size), dtype=torch.int64, device=device)
        self.spikes = torch.zeros((batch, p.size), dtype=torch.bool, device=device)
        self.count = torch.zeros((batch, p.size), dtype=torch.int64, device=device)
        self.check = device.type == "cpu"  # a test on the host; on a GPU the work is cheaper than the sync

    def advance(self, exc: Any, inh: Any, noise: Any) -> Any:
        """One integration step, the numpy engine's ``_State.advance`` op for op; returns the spikes (B, size)."""
        torch = self.torch
        if exc is not None:
            self.i_exc += exc * self.jump_exc
        if inh is not None:
            self.i_inh += inh * self.jump_inh
        self.v = self.v_rest + (self.v - self.v_rest) * self.a + self.i_exc * self.k_exc - self.i_inh * self.k_inh
        self.i_exc *= self.b_exc
        self.i_inh *= self.b_inh
        if noise is not None:
            self.v += noise
        held = self.held > 0
        if not self.check or bool(held.any()):  # held at v_reset; the currents decay and their charge is lost
            self.v = torch.where(held, self.v_reset, self.v)
            self.held -= held.to(torch.int64)
        if not self.p.spiking:
            return torch.zeros_like(held)
        spiking = (self.v >= self.v_thresh) & ~held
        self.v = torch.where(spiking, self.v_reset, self.v)
        self.held = torch.where(spiking, self.hold, self.held)
        self.count += spiking.to(torch.int64)
        return spiking


def run(
    populations: list[Neurons],
    synapses: list[Synapses],
    sources: dict[str, np.ndarray],
    sizes: dict[str, int],
    *,
    integration_steps: int,
    substeps: int,
    marks: tuple[int, ...] = (),
    record_v: tuple[str, ...] = (),
    noise: Noise | None = None,
    offset: int = 0,
    trace: bool = False,
    device: str | None = None,
) -> Result:
    """:func:`neurodeploy_pynn.brainscales2_emulator.run` on torch (``device``: a torch device, default cuda when
    present, else cpu); the result is numpy arrays, the numpy engine's values."""
    torch = import_torch()
    where = resolve_device(device)
    dt = 1.0 / substeps
    names = [p.name for p in populations]
    batch = len(next(iter(sources.values()))) if sources else 1
    with exact_floats():
        states = {p.name: _State(torch, where, p, batch, dt) for p in populations}
        incoming = {
            name: [(pre, receptor, torch.as_tensor(matrix, device=where)) for pre, receptor, matrix in rows]
            for name, rows in incoming_matrices(populations, synapses, sizes).items()
        }
        inputs = {name: torch.as_tensor(np.ascontiguousarray(spikes), device=where) for name, spikes in sources.items()}
        sigma = 0.0 if noise is None else noise.membrane * math.sqrt(dt)
        streams = (
            {p.name: _NoiseStreams(noise.seed, k, offset, batch, p.size) for k, p in enumerate(populations)}
            if noise is not None and noise.membrane > 0
            else {}
        )
        wanted = set(marks)
        counts: dict[int, dict[str, Any]] = {}
        voltages: dict[int, dict[str, Any]] = {}
        trace_v = {n: [] for n in names} if trace else {}
        trace_spikes = {n: [] for n in names} if trace else {}
        if 0 in wanted:
            counts[0] = {n: states[n].count.clone() for n in names}
            voltages[0] = {n: states[n].v.clone() for n in record_v}
        for n in range(integration_steps):
            t, phase = divmod(n, substeps)
            fired = {}
            for name in names:
                charge: list[Any] = [None, None]  # integer weight sums per receptor
                for pre, receptor, matrix in incoming[name]:
                    if pre in states:
                        spikes = states[pre].spikes
                    elif phase == 0 and t < inputs[pre].shape[1]:
                        spikes = inputs[pre][:, t]
                    else:
                        continue
                    if states[name].check and not bool(spikes.any()):
                        continue  # (adding zeros gives the same sums: the check only saves the product)
                    q = spikes.to(torch.float64) @ matrix
                    before = charge[receptor]
                    charge[receptor] = q if before is None else before + q
                noise_now = None
                if name in streams:
                    noise_now = torch.as_tensor(sigma * streams[name].next(), device=where)
                spiking = states[name].advance(charge[0], charge[1], noise_now)
                fired[name] = spiking
                if trace:
                    trace_v[name].append(states[name].v.clone())
                    trace_spikes[name].append(spiking)
            for name in names:
                states[name].spikes = fired[name]
            if n + 1 in wanted:
                counts[n + 1] = {m: states[m].count.clone() for m in names}
                voltages[n + 1] = {m: states[m].v.clone() for m in record_v}

    def host(values: dict[int, dict[str, Any]]) -> dict[int, dict[str, np.ndarray]]:
        return {mark: {name: value.cpu().numpy() for name, value in row.items()} for mark, row in values.items()}

    result = Result(counts=host(counts), v=host(voltages))
    if trace:
        for name in names:
            size = states[name].p.size
            result.trace_v[name] = np.zeros((batch, 0, size)) if not integration_steps else _stacked(trace_v[name])
            result.trace_spikes[name] = (
                np.zeros((batch, 0, size), bool) if not integration_steps else _stacked(trace_spikes[name])
            )
    return result


def _stacked(rows: list[Any]) -> np.ndarray:
    """Per-step tensors (B, size) as one (B, steps, size) numpy array."""
    return np.stack([row.cpu().numpy() for row in rows], axis=1)
