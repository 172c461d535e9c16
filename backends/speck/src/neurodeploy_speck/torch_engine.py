"""The time-binned emulator on torch: :meth:`neurodeploy_speck.emulator.Network.run_binned`'s contract, computed
batch-first on a torch device (``cpu``, or ``cuda`` when one is present), equal value for value to the numpy and
compiled engines.

:func:`run_binned` steps the batch (``batch_size`` samples at a time) through every step, core by core in the
network's order, as ``run_binned`` does: the input frames sum-pooled by the DVS layer; each core's input the sum of
its sources' pooled maps, each source's channels from its feature shift on; then

    v = v + conv(W, x) + b                                    (b when leak_enable)
    s = (v > 0) * trunc(v / threshold_high)
    v = v - s * threshold_high                                (return_to_zero: v = 0 where s > 0)
    v = max(v, threshold_low)

with the overflow count of the 16-bit state after integration, the spikes per step (recorded cores), per neuron
and per step, and the SynOps of each source (spikes x synapses reached, the fan-out maps of
:meth:`~neurodeploy_speck.emulator.Network.synapse_maps`).

Integers: state, spikes and counts are int64 tensors; sum pooling and the counting are integer sums. A convolution
is computed in floating point where that is exact, then rounded to int64 (:func:`float_type`): float32 when
(largest input count) x (largest sum of |W| over one output's fan-in) < 2**24, so every partial sum is an integer
float32 holds, in any order of summation; float64 otherwise, exact while that bound is below 2**53; past it (a
state far outside the chip's 16 bits feeding spikes onward), an integer convolution tap by tap. On CUDA a
convolution is always float64: cuDNN may pick a Winograd or FFT algorithm for float32, whose transforms round by
more than a float32 product does.

The event-driven mode (``run_events``) takes one event at a time and is not covered: run it with ``--emulator
numpy``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from neurodeploy import torch_support
from neurodeploy_speck import chip
from neurodeploy_speck.emulator import Core, Network, Run, _check_frames

FLOAT32_EXACT = 2**24
"""Below this magnitude every integer is a float32."""
FLOAT64_EXACT = 2**53
"""Below this magnitude every integer is a float64."""
BATCH = {"cpu": 256, "cuda": 4096}
"""Samples per pass by device type when ``batch_size`` is not given."""


def float_type(bound: int, device: Any) -> Any:
    """The float dtype in which a convolution whose partial sums stay below ``bound`` is exact, or None when no
    float dtype is (see the module)."""
    torch = torch_support.import_torch()
    if bound < FLOAT32_EXACT and device.type != "cuda":
        return torch.float32
    return torch.float64 if bound < FLOAT64_EXACT else None


def sum_pool(x: Any, pool: int) -> Any:
    """:func:`neurodeploy_speck.emulator.sum_pool` on an int64 tensor: sums over pool x pool windows, stride pool,
    the last partial row/column dropped."""
    if pool == 1:
        return x
    b, c, h, w = x.shape
    oh, ow = h // pool, w // pool
    return x[:, :, : oh * pool, : ow * pool].reshape(b, c, oh, pool, ow, pool).sum(dim=(3, 5))


class _Core:
    """A core's constants on the device."""

    def __init__(self, core: Core, device: Any) -> None:
        torch = torch_support.import_torch()
        self.core = core
        self.weight = torch.as_tensor(core.weight, dtype=torch.int64, device=device)
        self.floats = {dtype: self.weight.to(dtype) for dtype in (torch.float32, torch.float64)}
        self.fan_in = int(np.abs(core.weight).reshape(core.weight.shape[0], -1).sum(axis=1).max(initial=0))
        self.bias = torch.as_tensor(core.bias, dtype=torch.int64, device=device).reshape(1, -1, 1, 1)
        self.initial = torch.as_tensor(core.initial, dtype=torch.int64, device=device)

    def conv(self, x: Any, device: Any) -> Any:
        """conv(W, x) exactly, as int64 (x: (B, C, H, W) int64, non-negative)."""
        torch = torch_support.import_torch()
        core = self.core
        peak = int(x.max()) if x.numel() else 0
        if peak == 0:
            return torch.zeros((x.shape[0], *core.out_shape), dtype=torch.int64, device=device)
        dtype = float_type(peak * self.fan_in, device)
        if dtype is None:
            return self._conv_int(x)
        out = torch.nn.functional.conv2d(
            x.to(dtype), self.floats[dtype], None, stride=core.stride, padding=core.padding
        )
        return out.round().to(torch.int64)

    def _conv_int(self, x: Any) -> Any:
        """The convolution in int64, one kernel tap at a time (products wrap as the compiled loop's do)."""
        torch = torch_support.import_torch()
        core = self.core
        f, oh, ow = core.out_shape
        k = core.weight.shape[-1]
        (sy, sx), (py, px) = core.stride, core.padding
        padded = torch.nn.functional.pad(x, (px, px, py, py))
        out = torch.zeros((x.shape[0], f, oh, ow), dtype=torch.int64, device=x.device)
        for ky in range(k):
            for kx in range(k):
                window = padded[:, :, ky : ky + (oh - 1) * sy + 1 : sy, kx : kx + (ow - 1) * sx + 1 : sx]
                out += (window[:, None] * self.weight[None, :, :, ky, kx, None, None]).sum(dim=2)
        return out


def run_binned(
    network: Network,
    frames: np.ndarray,
    device: Any = None,
    record: tuple[int, ...] | None = None,
    batch_size: int | None = None,
) -> Run:
    """:meth:`Network.run_binned` of (batch, T, C, H, W) input event counts on ``device`` (a torch device or its
    name; None: cuda when torch sees one, else cpu), ``batch_size`` samples per pass (default by device type);
    every field of the returned :class:`Run` equals ``network.run_binned(frames, record)``'s."""
    torch = torch_support.import_torch()
    device = device if isinstance(device, torch.device) else torch_support.resolve_device(device)
    frames = _check_frames(frames, network.input_shape)
    batch, steps = frames.shape[:2]
    record = (network.output_core,) if record is None else record
    run = Run.empty(network, batch, steps, record)
    size = BATCH.get(device.type, BATCH["cpu"]) if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with torch_support.exact_floats():
        cores = [_Core(core, device) for core in network.cores]
        maps = {
            source: [(pool, torch.as_tensor(fan, dtype=torch.int64, device=device)) for pool, fan in entries]
            for source, entries in run.maps.items()
        }
        for start in range(0, batch, size):
            part = slice(start, min(start + size, batch))
            _run_part(network, cores, maps, torch.as_tensor(frames[part], device=device), run, part, device)
    return run


def _run_part(
    network: Network,
    cores: list[_Core],
    maps: dict[int, list[tuple[int, Any]]],
    frames: Any,
    run: Run,
    part: slice,
    device: Any,
) -> None:
    """Samples ``part`` of the batch (``frames`` on the device) through every step; the results land in ``run``."""
    torch = torch_support.import_torch()
    batch, steps = frames.shape[:2]
    v = {c.core.index: c.initial.expand(batch, *c.core.out_shape).clone() for c in cores}
    counts = {
        c.core.index: torch.zeros((batch, steps, *c.core.out_shape), dtype=torch.int64, device=device)
        for c in cores
        if c.core.index in run.counts
    }
    totals = {c.core.index: torch.zeros((batch, *c.core.out_shape), dtype=torch.int64, device=device) for c in cores}
    per_step = {c.core.index: torch.zeros((batch, steps), dtype=torch.int64, device=device) for c in cores}
    synops = {source: torch.zeros((batch, steps), dtype=torch.int64, device=device) for source in maps}
    overflow = {c.core.index: torch.zeros((), dtype=torch.int64, device=device) for c in cores}

    def pooled(spikes: dict[int, Any], done: dict[tuple[int, int], Any], source: int, pool: int) -> Any:
        """The spikes of ``source`` sum-pooled by ``pool``, once per step (a core's input and its SynOps)."""
        if (source, pool) not in done:
            done[source, pool] = sum_pool(spikes[source], pool)
        return done[source, pool]

    def reached(maps_of: list[tuple[int, Any]], pool_of: Any) -> Any:
        """(spikes x synapses reached) per sample, summed over a source's destinations."""
        total = None
        for pool, fan in maps_of:
            x = pool_of(pool)[:, : fan.shape[0], : fan.shape[1], : fan.shape[2]]
            count = (x * fan[:, : x.shape[-2], : x.shape[-1]]).sum(dim=(-3, -2, -1))
            total = count if total is None else total + count
        return total

    if maps[-1]:  # the input's SynOps, every step at once
        flat = frames.reshape(batch * steps, *frames.shape[2:])
        synops[-1] += reached(maps[-1], lambda pool: sum_pool(flat, pool)).reshape(batch, steps)
    for t in range(steps):
        spikes = {-1: sum_pool(frames[:, t], network.input_pooling)}  # the DVS layer
        done: dict[tuple[int, int], Any] = {}
        for entry in cores:
            core = entry.core
            (source, pool, shift), *others = core.sources
            x = pooled(spikes, done, source, pool)
            if others or shift or tuple(x.shape[1:]) != core.in_shape:  # a join, a shift, a cut
                x = torch.zeros((batch, *core.in_shape), dtype=torch.int64, device=device)
                for source, pool, shift in core.sources:
                    arriving = pooled(spikes, done, source, pool)
                    h, w = min(arriving.shape[2], x.shape[2]), min(arriving.shape[3], x.shape[3])
                    c = min(arriving.shape[1], x.shape[1] - shift)
                    x[:, shift : shift + c, :h, :w] += arriving[:, :c, :h, :w]
            state = v[core.index]
            state += entry.conv(x, device)
            if core.leak:
                state += entry.bias
            overflow[core.index] += (state > chip.STATE_MAX).sum()
            s = torch.div(state.clamp_min(0), core.threshold_high, rounding_mode="floor")  # trunc(v / thr), v > 0
            if core.return_to_zero:
                state.masked_fill_(s > 0, 0)
            else:
                state -= s * core.threshold_high
            state.clamp_min_(core.threshold_low)
            spikes[core.index] = s
            if core.index in counts:
                counts[core.index][:, t] = s
            totals[core.index] += s
            per_step[core.index][:, t] = s.reshape(batch, -1).sum(dim=1)
            if maps[core.index]:
                synops[core.index][:, t] = reached(maps[core.index], partial(pooled, spikes, done, core.index))

    for index, tensor in counts.items():
        run.counts[index][part] = tensor.cpu().numpy()
    for index in totals:
        run.neuron_totals[index][part] = totals[index].cpu().numpy()
        run.per_step_totals[index][part] = per_step[index].cpu().numpy()
        run.overflow[index] += int(overflow[index])
    for source, tensor in synops.items():
        run.synops[source][part] = tensor.cpu().numpy()
