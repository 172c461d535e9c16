"""The event mode's inner loop, compiled with numba when it is installed (``pip install neurodeploy-speck[fast]``).

:func:`integrate_events` is the chip's rule written one event and one synapse at a time; numba turns it into a
loop of a few nanoseconds per synapse. Without numba, :func:`neurodeploy_speck.emulator.integrate_events_numpy`
computes the same thing in numpy (tested equal, both against a sequential reference). Importing numba takes a
moment, so it happens on the first event-mode run, not when the plugin loads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np

_prange = range
"""numba's prange once :func:`kernels` has imported numba (numba reads it when it compiles the loops)."""

_KERNELS: dict[str, object] | None = None


def _integrate(v, stream, weight, geometry, thr, low, return_to_zero):  # pragma: no cover - compiled
    """Each input event (flat index into the core's input map) adds weight[f, c, ky, kx] to the neurons it
    reaches, in raster order (f, oy, ox: ky and kx descending); a neuron at or above thr fires once."""
    h, w, oh, ow, sy, sx, py, px = geometry
    f_out, _, k, _ = weight.shape
    batch, events = stream.shape
    counts = np.zeros(batch, np.int64)
    cap = 256
    out = np.full((batch, cap), -1, np.int64)
    for b in range(batch):
        for e in range(events):
            idx = stream[b, e]
            if idx < 0:
                break
            c, rest = divmod(idx, h * w)
            y, x = divmod(rest, w)
            for f in range(f_out):
                for ky in range(k - 1, -1, -1):
                    ty = y + py - ky
                    if ty < 0 or ty % sy != 0 or ty // sy >= oh:
                        continue
                    for kx in range(k - 1, -1, -1):
                        tx = x + px - kx
                        if tx < 0 or tx % sx != 0 or tx // sx >= ow:
                            continue
                        j = (f * oh + ty // sy) * ow + tx // sx
                        value = v[b, j] + weight[f, c, ky, kx]
                        if value >= thr:
                            if counts[b] == cap:
                                grown = np.full((batch, 2 * cap), -1, np.int64)
                                grown[:, :cap] = out
                                out = grown
                                cap *= 2
                            out[b, counts[b]] = j
                            counts[b] += 1
                            value = 0 if return_to_zero else value - thr
                        v[b, j] = max(value, low)
    return out[:, : counts.max()] if batch else out[:, :0]


def _scatter(source, pool, shift, v, weight, geometry, fan, synops):  # pragma: no cover - compiled
    """Time-binned step, first half, channels last: the counts of ``source`` (B, Hs, Ws, C), sum-pooled by
    ``pool`` (whole windows only) onto the core's input map at channels shift.., each add n times its kernel
    (C, k, k, F) to the
    neurons they reach in v (B, OH, OW, F): work in proportion to the events, not to the neurons. ``synops``
    (B,) gains n times the synapses each reaches (``fan``, (H, W, C))."""
    h, w, oh, ow, sy, sx, py, px = geometry
    batch, hs, ws, channels = source.shape
    k, f_out = weight.shape[1], weight.shape[3]
    channels = min(channels, weight.shape[0] - shift)
    rows, cols = min(hs // pool, h) * pool, min(ws // pool, w) * pool
    for b in _prange(batch):  # samples in parallel: each has its own state
        reached = 0
        for ys in range(rows):
            y = ys // pool
            for xs in range(cols):
                x = xs // pool
                for cs in range(channels):
                    n = source[b, ys, xs, cs]
                    if n == 0:
                        continue
                    c = cs + shift
                    reached += n * fan[y, x, c]
                    for ky in range(k):
                        ty = y + py - ky
                        if ty < 0 or ty % sy != 0 or ty // sy >= oh:
                            continue
                        oy = ty // sy
                        for kx in range(k):
                            tx = x + px - kx
                            if tx < 0 or tx % sx != 0 or tx // sx >= ow:
                                continue
                            target = v[b, oy, tx // sx]
                            taps = weight[c, ky, kx]
                            if n == 1:  # most counts: a plain add vectorizes where a 64-bit multiply does not
                                for f in range(f_out):
                                    target[f] += taps[f]
                            else:
                                for f in range(f_out):
                                    target[f] += n * taps[f]
        synops[b] += reached


def _fire(v, bias, thr, low, return_to_zero, leak, state_max, spikes, totals, step_totals):  # pragma: no cover
    """Time-binned step, second half, per neuron of v (B, OH, OW, F): the bias (when ``leak``), the 16-bit
    overflow count, trunc(v / thr) spikes for v >= thr, the reset and the clip at ``low``. Writes ``spikes``,
    adds them to ``totals`` (per neuron) and ``step_totals`` (B,); returns the overflow count."""
    batch, oh, ow, f_out = v.shape
    overflow = 0
    for b in _prange(batch):
        sent = 0
        for oy in range(oh):
            for ox in range(ow):
                for f in range(f_out):
                    value = v[b, oy, ox, f]
                    if leak:
                        value += bias[f]
                    if value > state_max:
                        overflow += 1
                    fired = 0
                    if value >= thr:
                        fired = value // thr
                        value = 0 if return_to_zero else value - fired * thr
                        totals[b, oy, ox, f] += fired
                        sent += fired
                    spikes[b, oy, ox, f] = fired
                    v[b, oy, ox, f] = max(value, low)
        step_totals[b] += sent
    return overflow


def kernels():
    """The compiled loops ({"events": ..., "binned": ...}), or None when numba is not installed."""
    global _KERNELS, _prange
    if _KERNELS is None:
        try:
            import numba
        except ImportError:
            _KERNELS = {}
        else:
            _prange = numba.prange
            jit = numba.njit(cache=True, nogil=True)
            parallel = numba.njit(cache=True, nogil=True, parallel=True)
            _KERNELS = {"events": jit(_integrate), "scatter": parallel(_scatter), "fire": parallel(_fire)}
    return _KERNELS or None


_CPUS = os.cpu_count() or 1
_POOL: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """One pool of threads for the event loop's samples, made on first use (not per core and step)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_CPUS)
    return _POOL


def geometry(core) -> np.ndarray:
    _, h, w = core.in_shape
    _, oh, ow = core.out_shape
    return np.array([h, w, oh, ow, *core.stride, *core.padding], np.int64)


def scatter(source: np.ndarray, pool: int, shift: int, v: np.ndarray, core, synops: np.ndarray) -> None:
    """:func:`_scatter` into ``core``'s state v (B, OH, OW, F) int64, channels last."""
    kernels()["scatter"](source, int(pool), int(shift), v, core.weight_last, geometry(core), core.fan_last, synops)


def fire(v, core, state_max: int, spikes, totals, step_totals) -> int:
    """:func:`_fire` for ``core``; returns the overflow count."""
    return kernels()["fire"](
        v,
        core.bias,
        int(core.threshold_high),
        int(core.threshold_low),
        bool(core.return_to_zero),
        bool(core.leak),
        int(state_max),
        spikes,
        totals,
        step_totals,
    )


def integrate_events(v, stream, core):
    """As :func:`neurodeploy_speck.emulator.integrate_events_numpy` for ``core``, compiled; None without numba.
    The samples are split over the CPUs (the loop releases the GIL; each sample has its own rows of v)."""
    found = kernels()
    if found is None:
        return None
    fn = found["events"]
    stream = np.ascontiguousarray(stream, np.int64)
    args = (
        np.ascontiguousarray(core.weight, np.int64),
        geometry(core),
        int(core.threshold_high),
        int(core.threshold_low),
        bool(core.return_to_zero),
    )
    workers = min(len(v), _CPUS)
    if workers < 2 or stream.shape[1] == 0:
        return fn(v, stream, *args)
    bounds = np.linspace(0, len(v), workers + 1).astype(int)
    parts = list(_threads().map(lambda r: fn(v[r[0] : r[1]], stream[r[0] : r[1]], *args), pairwise(bounds)))
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-1) for p in parts])
