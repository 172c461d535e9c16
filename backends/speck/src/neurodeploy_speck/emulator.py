"""Speck's integer arithmetic, batched in numpy, read from a speck.json document.

Per core (all integers; the state is 16-bit signed on the chip and is held in int64 here, with overflow counted):

time-binned mode (``binned``), as sinabs' ``IAFSqueeze`` with ``MultiSpike`` and the same integer parameters
computes it, one step after another:

    v[t] = v[t-1] + conv(W, x[t]) + b                         (b every step when leak_enable)
    s[t] = (v[t] > 0) * trunc(v[t] / threshold_high)          (several spikes per step)
    v[t] = v[t] - s[t] * threshold_high                       (return_to_zero: v[t] = 0 where s[t] > 0)
    v[t] = max(v[t], threshold_low)

event-driven mode (``event``), the chip's asynchronous neurons: inside a step, the core first takes the bias
(one slow-clock tick, when leak_enable), then its input events one at a time, in arrival order. Each event adds
its kernel to the neurons it reaches; each of those neurons with v >= threshold_high then fires once (at most one
spike per input event), subtracts threshold_high (or returns to zero), and v is clipped at threshold_low. A
core's output events, in the order they fire (within one input event: raster order f, y, x), are its
destinations' input events after sum pooling (coordinates divided by the pool; events past the destination's
map are dropped). Input frames become events in rounds: round r sends every pixel whose count exceeds r, in
raster order (c, y, x).

A neuron's state depends only on the events that reach it, in their order; the event mode is computed that way
(a compiled loop over events and synapses when numba is installed, else numpy over each neuron's r-th event),
and is tested equal to a one-event-at-a-time reference.

A core with several sources (a residual join, a concatenation, a merge) takes the sum of their pooled maps,
each source's channel c on input channel c + its destination's feature_shift; in event mode their events
interleave, one from each source in turn (the chip's router order is not modelled).

Both modes start from v[0] = neurons_initial_value. Inputs are event counts per step: (batch, steps, C, H, W)
non-negative integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from neurodeploy.ir import kernels
from neurodeploy_speck import _compiled, chip

MODES = ("binned", "event")


@dataclass
class Core:
    index: int
    weight: np.ndarray
    """(F, C, k, k) int64 (samna's [f][c][x][y] turned back)."""
    bias: np.ndarray
    leak: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    threshold_high: int
    threshold_low: int
    initial: np.ndarray
    """(F, H, W) int64."""
    return_to_zero: bool
    sources: list[tuple[int, int, int]] = field(default_factory=list)
    """(source core or -1 for the input, pooling, feature shift: the core input channel its channel 0 lands on)."""

    @cached_property
    def weight_last(self) -> np.ndarray:
        """(C, k, k, F) int64, contiguous: the weights channels last, as the compiled loops read them."""
        return np.ascontiguousarray(self.weight.transpose(1, 2, 3, 0), np.int64)

    @cached_property
    def fan_last(self) -> np.ndarray:
        """:attr:`fan_out` as (H, W, C) int64, contiguous."""
        return np.ascontiguousarray(self.fan_out.transpose(1, 2, 0), np.int64)

    @property
    def fan_out(self) -> np.ndarray:
        """(C, H, W): the synapses (non-zero weights) an input event at each position reaches."""
        _, h, w = self.in_shape
        k = self.weight.shape[-1]
        # (k, H), (k, W): 1 where kernel row (column) i of some output position covers input row y (column x)
        ys = kernels.kernel_taps(h, self.out_shape[1], k, self.stride[0], self.padding[0], 1).sum(axis=0)
        xs = kernels.kernel_taps(w, self.out_shape[2], k, self.stride[1], self.padding[1], 1).sum(axis=0)
        nonzero = np.count_nonzero(self.weight, axis=0)  # (C, k, k)
        return np.einsum("iy,jx,cij->cyx", ys, xs, nonzero)


@dataclass
class Network:
    cores: list[Core]
    """In an order where every core comes after its sources."""
    input_shape: tuple[int, int, int]
    input_pooling: int
    output_core: int
    engine: str = "auto"
    """Event mode's inner loop: ``auto`` (compiled with numba when it is installed, else numpy) or ``numpy``."""

    def core(self, index: int) -> Core:
        return next(c for c in self.cores if c.index == index)

    @classmethod
    def from_config(cls, document: dict[str, Any]) -> Network:
        configuration = document["configuration"]
        cores: dict[int, Core] = {}
        for index, layer in enumerate(configuration["cnn_layers"]):
            if layer is None:
                continue
            dims = layer["dimensions"]
            weight = np.asarray(layer["weights"], np.int64).transpose(0, 1, 3, 2)
            initial = np.asarray(layer["neurons_initial_value"], np.int64).transpose(0, 2, 1)
            size = dims["input_shape"]["size"]
            out = dims["output_shape"]["size"]
            cores[index] = Core(
                index=index,
                weight=weight,
                bias=np.asarray(layer["biases"], np.int64),
                leak=bool(layer["leak_enable"]),
                stride=(dims["stride"]["y"], dims["stride"]["x"]),
                padding=(dims["padding"]["y"], dims["padding"]["x"]),
                in_shape=(dims["input_shape"]["feature_count"], size["y"], size["x"]),
                out_shape=(dims["output_shape"]["feature_count"], out["y"], out["x"]),
                threshold_high=int(layer["threshold_high"]),
                threshold_low=int(layer["threshold_low"]),
                initial=initial,
                return_to_zero=bool(layer["return_to_zero"]),
            )
        dvs = configuration["dvs_layer"]
        pool = int(dvs["pooling"]["x"])
        for dest in dvs["destinations"]:
            if dest["enable"]:
                cores[dest["layer"]].sources.append((-1, 1, int(dest.get("feature_shift", 0))))
        for index, layer in enumerate(configuration["cnn_layers"]):
            if layer is None:
                continue
            for dest in layer["destinations"]:
                if dest["enable"]:
                    cores[dest["layer"]].sources.append(
                        (index, int(dest["pooling"]), int(dest.get("feature_shift", 0)))
                    )
        host = document["host"]
        order = [layer["core"] for layer in host["layers"]]  # the lowering's topological order
        network = cls(
            cores=[cores[i] for i in order],
            input_shape=tuple(host["input"]["shape"]),
            input_pooling=pool,
            output_core=int(host["output"]["core"]),
        )
        network.check()
        return network

    def check(self) -> None:
        """Raise ValueError unless the cores agree with each other: weights (F, C, k, k), biases (F,) and initial
        values (F, H, W) of each core's shapes, output maps the size its convolution gives, sources that come
        before their readers with as many channels as those read. The loops (the compiled ones do not check
        their indices) rely on it."""
        if not self.cores:
            raise ValueError("the network has no cores")
        if self.input_pooling < 1:
            raise ValueError(f"the input pooling is {self.input_pooling}; it must be >= 1")
        channels: dict[int, int] = {-1: int(self.input_shape[0])}
        for core in self.cores:
            where = f"core {core.index}"
            if core.index in channels:
                raise ValueError(f"{where} appears twice in the host's layer order")
            f, oh, ow = core.out_shape
            c, h, w = core.in_shape
            weight = core.weight
            if weight.ndim != 4 or weight.shape[:2] != (f, c) or weight.shape[2] != weight.shape[3] or not weight.size:
                raise ValueError(f"{where}: weights of shape {weight.shape}; expected ({f}, {c}, k, k)")
            k = weight.shape[2]
            if core.bias.shape != (f,):
                raise ValueError(f"{where}: biases of shape {core.bias.shape}; expected ({f},)")
            if core.initial.shape != (f, oh, ow):
                raise ValueError(f"{where}: initial values of shape {core.initial.shape}; expected {(f, oh, ow)}")
            if min(core.stride) < 1 or min(core.padding) < 0:
                raise ValueError(f"{where}: stride {core.stride} and padding {core.padding}; expected >= 1 and >= 0")
            size = tuple((n + 2 * p - k) // s + 1 for n, p, s in zip((h, w), core.padding, core.stride))
            if size != (oh, ow):
                raise ValueError(f"{where}: a {k}x{k} kernel on a {h}x{w} map gives {size}, not its output {(oh, ow)}")
            if core.threshold_high < 1:
                raise ValueError(f"{where}: threshold_high {core.threshold_high}; it must be >= 1")
            covered = np.zeros(c, bool)
            for source, pool, shift in core.sources:
                if source not in channels:
                    raise ValueError(f"{where} reads core {source}, which does not come before it")
                if pool < 1 or shift < 0 or shift + channels[source] > c:
                    raise ValueError(
                        f"{where} reads {channels[source]} channels pooled by {pool} from "
                        f"{'the input' if source == -1 else f'core {source}'} onto its channels {shift}..; it has "
                        f"{c} input channels"
                    )
                covered[shift : shift + channels[source]] = True
            if core.sources and not covered.all():
                raise ValueError(f"{where}: input channels {np.flatnonzero(~covered).tolist()} have no source")
            channels[core.index] = f
        if self.output_core not in channels or self.output_core == -1:
            raise ValueError(f"the output core {self.output_core} is not among the network's cores")

    def synapse_maps(self) -> dict[int, list[tuple[int, np.ndarray]]]:
        """Per source (a core, or -1 for the input before the DVS layer's pooling): (pooling, fan-out map) of
        each destination, for SynOps = spikes x synapses reached. The output core has none (it is read out)."""
        maps: dict[int, list[tuple[int, np.ndarray]]] = {-1: []}
        for core in self.cores:
            maps.setdefault(core.index, [])
        for core in self.cores:
            fan = core.fan_out
            for source, pool, shift in core.sources:
                total_pool = pool * self.input_pooling if source == -1 else pool
                channels = self.input_shape[0] if source == -1 else self.core(source).out_shape[0]
                maps[source].append((total_pool, fan[shift : shift + channels]))
        return maps

    # -- time-binned --------------------------------------------------------------------------------------
    def run_binned(self, frames: np.ndarray, record: tuple[int, ...] | None = None) -> Run:
        """Run (batch, T, C, H, W) input event counts; keep every step's spikes of the ``record`` cores (default:
        the output core)."""
        frames = _check_frames(frames, self.input_shape)
        batch, steps = frames.shape[:2]
        run = Run.empty(self, batch, steps, (self.output_core,) if record is None else record)
        if self.engine != "numpy" and _compiled.kernels() is not None:
            self._run_binned_compiled(frames, run)
            return run
        v = {c.index: np.broadcast_to(c.initial, (batch, *c.out_shape)).copy() for c in self.cores}
        for t in range(steps):
            spikes: dict[int, np.ndarray] = {-1: sum_pool(frames[:, t], self.input_pooling)}  # the DVS layer
            run.add_synops(-1, t, frames[:, t])
            for core in self.cores:
                x = self._gather(core, spikes, batch)
                state = v[core.index]
                state += conv_int(x, core.weight, core.stride, core.padding)
                if core.leak:
                    state += core.bias.reshape(1, -1, 1, 1)
                run.note_overflow(core.index, state)
                s = np.where(state > 0, state // core.threshold_high, 0)  # trunc(v / thr) for v > 0
                if core.return_to_zero:
                    state[s > 0] = 0
                else:
                    state -= s * core.threshold_high
                np.maximum(state, core.threshold_low, out=state)
                spikes[core.index] = s
                run.add(core.index, t, s)
        return run

    def _run_binned_compiled(self, frames: np.ndarray, run: Run) -> None:
        """:meth:`run_binned` with the compiled step (channels last inside; see :mod:`neurodeploy_speck._compiled`)."""
        batch, steps = frames.shape[:2]
        last = np.ascontiguousarray(frames.transpose(0, 1, 3, 4, 2))  # (B, T, H, W, C)
        v = {
            c.index: np.broadcast_to(c.initial.transpose(1, 2, 0), (batch, *c.out_shape[1:], c.out_shape[0])).copy()
            for c in self.cores
        }
        totals = {c.index: np.zeros_like(v[c.index]) for c in self.cores}
        for t in range(steps):
            spikes = {-1: last[:, t]}
            for core in self.cores:
                state = v[core.index]
                for source, pool, shift in core.sources:
                    total_pool = pool * (self.input_pooling if source == -1 else 1)  # the DVS layer's pooling
                    _compiled.scatter(spikes[source], total_pool, shift, state, core, run.synops[source][:, t])
                s = np.empty_like(state)
                step = run.per_step_totals[core.index][:, t]
                run.overflow[core.index] += _compiled.fire(state, core, chip.STATE_MAX, s, totals[core.index], step)
                spikes[core.index] = s
                if core.index in run.counts:
                    run.counts[core.index][:, t] = s.transpose(0, 3, 1, 2)
        for index, total in totals.items():
            run.neuron_totals[index] += total.transpose(0, 3, 1, 2)

    def _gather(self, core: Core, spikes: dict[int, np.ndarray], batch: int) -> np.ndarray:
        x = np.zeros((batch, *core.in_shape), np.int64)
        for source, pool, shift in core.sources:
            pooled = sum_pool(spikes[source], pool)
            h, w = min(pooled.shape[2], x.shape[2]), min(pooled.shape[3], x.shape[3])
            c = min(pooled.shape[1], x.shape[1] - shift)
            x[:, shift : shift + c, :h, :w] += pooled[:, :c, :h, :w]
        return x

    # -- event-driven -------------------------------------------------------------------------------------
    def run_events(
        self,
        frames: np.ndarray,
        record: tuple[int, ...] | None = None,
        arrivals: list[np.ndarray] | None = None,
        state: dict[int, np.ndarray] | None = None,
    ) -> Run:
        """Run (batch, T, C, H, W) input event counts one event at a time (chip semantics). ``arrivals[t]``, when
        given, is step t's input events in the order they reach the chip, (batch, E) flat input indices padded
        with -1 (what ``frames[:, t]`` counts); by default they arrive in rounds (see the module). ``state``,
        when given, holds the neurons' state: empty, it is filled with the initial state; either way it is the
        state after the run, from which a later call goes on."""
        frames = _check_frames(frames, self.input_shape)
        batch, steps = frames.shape[:2]
        tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # the numpy engine's, built on first use
        if not state:
            v = {c.index: np.broadcast_to(c.initial, (batch, *c.out_shape)).reshape(batch, -1) for c in self.cores}
            # + a dummy neuron; C order, which integrate_events_numpy updates through a flat view
            v = {
                k: np.ascontiguousarray(np.concatenate([a, np.zeros((batch, 1), np.int64)], axis=1))
                for k, a in v.items()
            }
            if state is not None:
                state.update(v)
        else:
            v = state
        run = Run.empty(self, batch, steps, (self.output_core,) if record is None else record)
        c_in, h_in, w_in = self.input_shape
        pool = self.input_pooling
        pooled = (c_in, h_in // pool, w_in // pool)  # the DVS layer's pooling (and cut to whole windows)
        for t in range(steps):
            arrived = frame_events(frames[:, t]) if arrivals is None else np.asarray(arrivals[t], np.int64)
            events: dict[int, np.ndarray] = {-1: _translate(arrived, self.input_shape, pool, pooled)}
            run.add_synops(-1, t, frames[:, t])
            for core in self.cores:
                out_events = self._core_events(core, tables, v[core.index], events, pooled)
                events[core.index] = out_events
                n = int(np.prod(core.out_shape))
                keys = (np.arange(batch)[:, None] * n + out_events)[out_events >= 0]
                counts = np.bincount(keys, minlength=batch * n).reshape(batch, *core.out_shape)
                run.add(core.index, t, counts.astype(np.int64))
        return run

    def _core_events(
        self,
        core: Core,
        tables: dict[int, tuple[np.ndarray, np.ndarray]],
        v: np.ndarray,
        events: dict[int, np.ndarray],
        input_shape: tuple[int, int, int],
    ) -> np.ndarray:
        thr, low = core.threshold_high, core.threshold_low
        fired_all: list[np.ndarray] = []
        if core.leak:  # one slow-clock tick: the bias reaches every neuron, each may fire once
            v[:, :-1] += np.repeat(core.bias, core.out_shape[1] * core.out_shape[2])[None]
            fired = v[:, :-1] >= thr
            self._reset(core, v[:, :-1], fired)
            order = np.where(fired, np.arange(fired.shape[1])[None], -1)
            fired_all.append(order)
        incoming = [
            _translate(events[source], self._source_shape(source, input_shape), pool, core.in_shape, shift)
            for source, pool, shift in core.sources
        ]
        stream = _interleave(incoming) if len(incoming) > 1 else incoming[0]
        fired = None if self.engine == "numpy" else _compiled.integrate_events(v, stream, core)
        if fired is None:
            if core.index not in tables:
                tables[core.index] = _scatter_table(core)
            targets, weights = tables[core.index]
            fired = integrate_events_numpy(v, stream, targets, weights, thr, low, core.return_to_zero)
        v[:, :-1] = np.maximum(v[:, :-1], low)
        v[:, -1] = 0
        if not fired_all:
            return fired
        return _compact(np.concatenate([*fired_all, fired], axis=1))

    def _source_shape(self, source: int, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        if source == -1:
            c, h, w = input_shape
            return (c, h, w)
        return next(c.out_shape for c in self.cores if c.index == source)

    @staticmethod
    def _reset(core: Core, v: np.ndarray, fired: np.ndarray) -> None:
        if core.return_to_zero:
            v[fired] = 0
        else:
            v -= fired * core.threshold_high
        np.maximum(v, core.threshold_low, out=v)


@dataclass
class Run:
    """Spikes per core: ``counts[core]`` (batch, T, F, H, W) for the recorded cores only, ``neuron_totals[core]``
    (batch, F, H, W) and ``per_step_totals[core]`` (batch, T) for every core; ``overflow[core]``: neuron-steps
    whose state passed the 16-bit maximum after integration (the chip's behaviour there is not modelled;
    below, the state is clipped at threshold_low as on the chip)."""

    counts: dict[int, np.ndarray]
    neuron_totals: dict[int, np.ndarray]
    per_step_totals: dict[int, np.ndarray]
    overflow: dict[int, int]
    synops: dict[int, np.ndarray] = field(default_factory=dict)
    """(batch, T) SynOps per step of each source (-1: the input)."""
    maps: dict[int, list[tuple[int, np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def empty(cls, network: Network, batch: int, steps: int, record: tuple[int, ...]) -> Run:
        maps = network.synapse_maps()
        return cls(
            synops={source: np.zeros((batch, steps), np.int64) for source in maps},
            maps=maps,
            counts={
                c.index: np.zeros((batch, steps, *c.out_shape), np.int64) for c in network.cores if c.index in record
            },
            neuron_totals={c.index: np.zeros((batch, *c.out_shape), np.int64) for c in network.cores},
            per_step_totals={c.index: np.zeros((batch, steps), np.int64) for c in network.cores},
            overflow={c.index: 0 for c in network.cores},
        )

    def add(self, core: int, t: int, spikes: np.ndarray) -> None:
        if core in self.counts:
            self.counts[core][:, t] = spikes
        self.neuron_totals[core] += spikes
        self.per_step_totals[core][:, t] = spikes.reshape(len(spikes), -1).sum(axis=1)
        self.add_synops(core, t, spikes)

    def add_synops(self, source: int, t: int, spikes: np.ndarray) -> None:
        for pool, fan in self.maps[source]:
            pooled = sum_pool(spikes, pool)[:, : fan.shape[0], : fan.shape[1], : fan.shape[2]]
            self.synops[source][:, t] += np.einsum("nchw,chw->n", pooled, fan[:, : pooled.shape[2], : pooled.shape[3]])

    def note_overflow(self, core: int, v: np.ndarray) -> None:
        self.overflow[core] += int(np.count_nonzero(v > chip.STATE_MAX))  # below, threshold_low clips


# -- helpers ------------------------------------------------------------------------------------------------
def _check_frames(frames: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 5 or tuple(frames.shape[2:]) != tuple(shape):
        raise ValueError(f"input events must be (batch, steps, {', '.join(map(str, shape))}); got {frames.shape}")
    if np.any(frames < 0) or np.any(frames != np.floor(frames)):
        raise ValueError("input event counts must be non-negative integers")
    return frames.astype(np.int64)


def sum_pool(x: np.ndarray, pool: int) -> np.ndarray:
    """Sum over pool x pool windows, stride = pool (the last partial row/column is dropped)."""
    if pool == 1:
        return x
    oh, ow = x.shape[2] // pool, x.shape[3] // pool
    out = np.zeros((*x.shape[:2], oh, ow), x.dtype)
    for i in range(pool):
        for j in range(pool):
            out += x[:, :, i : i + oh * pool : pool, j : j + ow * pool : pool]
    return out


EXACT_F32 = 2**24
"""float32 holds every integer of magnitude up to 2^24 exactly."""


def conv_int(x: np.ndarray, weight: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Exact integer 2-D cross-correlation: in float32 when no partial sum can pass 2^24 (fan-in * max |w| *
    max count), else in float64 (exact below 2^53)."""
    f, c, k, _ = weight.shape
    bound = int(np.abs(weight).max(initial=0)) * c * k * k * int(np.abs(x).max(initial=0))
    dtype = np.float32 if bound < EXACT_F32 else np.float64
    pads = (padding[0], padding[1], padding[0], padding[1])
    if dtype == np.float32:
        out = kernels.conv2d(x.astype(np.float32), weight.astype(np.float32), None, stride, pads, (1, 1), 1)
        return out.astype(np.int64)
    n, _, h, w = x.shape
    py, px = padding
    sy, sx = stride
    oh, ow = (h + 2 * py - k) // sy + 1, (w + 2 * px - k) // sx + 1
    xt = np.zeros((n, h + 2 * py, w + 2 * px, c), np.float64)
    xt[:, py : py + h, px : px + w, :] = x.transpose(0, 2, 3, 1)
    win = sliding_window_view(xt, (k, k), axis=(1, 2))[:, ::sy, ::sx][:, :oh, :ow]
    cols = win.reshape(n * oh * ow, c * k * k)
    out = cols @ weight.reshape(f, -1).T.astype(np.float64)
    return np.rint(out).astype(np.int64).reshape(n, oh, ow, f).transpose(0, 3, 1, 2)


def _scatter_table(core: Core) -> tuple[np.ndarray, np.ndarray]:
    """For each input position (c, y, x) (flat), the output neurons an event there reaches, in raster order, and
    the weights it adds; padded with the dummy neuron (index F*OH*OW) and weight 0."""
    f, oh, ow = core.out_shape
    c, h, w = core.in_shape
    k = core.weight.shape[-1]
    sy, sx = core.stride
    py, px = core.padding
    dummy = f * oh * ow
    entries: list[list[tuple[int, int]]] = [[] for _ in range(c * h * w)]
    for ci in range(c):
        for y in range(h):
            for x in range(w):
                taps = []
                for ky in range(k):
                    oy, ry = divmod(y + py - ky, sy)
                    if ry or not 0 <= oy < oh:
                        continue
                    for kx in range(k):
                        ox, rx = divmod(x + px - kx, sx)
                        if rx or not 0 <= ox < ow:
                            continue
                        taps.append((oy, ox, ky, kx))
                entries[(ci * h + y) * w + x] = taps
    width = f * max((len(t) for t in entries), default=0)
    targets = np.full((c * h * w, max(width, 1)), dummy, np.int64)
    weights = np.zeros((c * h * w, max(width, 1)), np.int64)
    for i, taps in enumerate(entries):
        if not taps:
            continue
        ci = i // (h * w)
        rows = [
            ((fi * oh + oy) * ow + ox, int(core.weight[fi, ci, ky, kx])) for fi in range(f) for oy, ox, ky, kx in taps
        ]
        rows.sort()
        targets[i, : len(rows)] = [r[0] for r in rows]
        weights[i, : len(rows)] = [r[1] for r in rows]
    return targets, weights


def integrate_events_numpy(
    v: np.ndarray,
    stream: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    thr: int,
    low: int,
    return_to_zero: bool,
) -> np.ndarray:
    """Feed (batch, E) input events (flat input indices, -1 padded) to the neurons ``v`` (batch, N + 1, the last
    a dummy) in order; return the neurons that fired, (batch, E * width) -1 padded, in firing order.

    A neuron's state depends only on the events that reach it, in their order, so the events are not fed one
    at a time: each (event, neuron) pair gets its rank among the pairs of its neuron, and rank r of every neuron
    is integrated at once (r up to the most events one neuron receives in the step, not the number of events).
    The pairs keep their (event, raster) layout, so the fired ones read out in the chip's firing order."""
    if not v.flags.c_contiguous:  # a flat view of v must be v itself, or the updates would be lost
        raise ValueError("integrate_events_numpy needs v in C order")
    batch, n = v.shape
    dummy = n - 1
    events = stream.shape[1]
    if events == 0:
        return np.full((batch, 0), -1, np.int64)
    valid = stream >= 0
    safe = np.where(valid, stream, 0)
    tgt = np.where(valid[:, :, None], targets[safe], dummy)  # (batch, E, width)
    w = weights[safe]
    real = tgt != dummy
    flat_rows = np.nonzero(real.reshape(-1))[0]  # pair positions in (batch, E, width) order
    width = tgt.shape[2]
    b = flat_rows // (events * width)
    e = (flat_rows // width) % events
    neuron = b * n + tgt.reshape(-1)[flat_rows]
    by_neuron = np.lexsort((e, neuron))  # each neuron's pairs in event order
    sorted_neuron = neuron[by_neuron]
    starts = np.r_[0, np.nonzero(np.diff(sorted_neuron))[0] + 1]
    group = np.repeat(starts, np.diff(np.r_[starts, len(sorted_neuron)]))
    rank = np.arange(len(sorted_neuron)) - group
    by_rank = by_neuron[np.argsort(rank, kind="stable")]
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    state = v.reshape(-1)  # a view: the updates land in v
    weight_flat = w.reshape(-1)[flat_rows]
    fired = np.zeros(len(flat_rows), bool)
    for r in range(len(bounds) - 1):
        pick = by_rank[bounds[r] : bounds[r + 1]]  # one pair per neuron
        idx = neuron[pick]
        vt = state[idx] + weight_flat[pick]
        spike = vt >= thr
        vt = np.where(spike, 0 if return_to_zero else vt - thr, vt)
        state[idx] = np.maximum(vt, low)
        fired[pick] = spike
    out = np.full(batch * events * width, -1, np.int64)
    out[flat_rows[fired]] = tgt.reshape(-1)[flat_rows[fired]]
    return _compact(out.reshape(batch, events * width))


def frame_events(frame: np.ndarray) -> np.ndarray:
    """(batch, C, H, W) counts -> (batch, E) flat input indices in rounds (see the module), -1 padded."""
    batch = frame.shape[0]
    flat = frame.reshape(batch, -1)
    rounds = int(flat.max()) if flat.size else 0
    parts = [np.where(flat > r, np.arange(flat.shape[1])[None], -1) for r in range(rounds)]
    if not parts:
        return np.full((batch, 0), -1, np.int64)
    return _compact(np.concatenate(parts, axis=1))


def _compact(events: np.ndarray) -> np.ndarray:
    """Move the -1 entries of each row to its end, keeping order; trim the all -1 columns."""
    keep = events >= 0
    order = np.argsort(~keep, axis=1, kind="stable")
    out = np.take_along_axis(events, order, axis=1)
    width = int(keep.sum(axis=1).max()) if events.size else 0
    return out[:, :width]


def _translate(
    events: np.ndarray, shape: tuple[int, int, int], pool: int, dest: tuple[int, int, int], shift: int = 0
) -> np.ndarray:
    """Flat indices in a source map -> flat indices in the destination's input map after sum pooling, channel c
    landing on channel c + shift (the destination's feature shift)."""
    _, h, w = shape
    valid = events >= 0
    e = np.where(valid, events, 0)
    ci, rest = np.divmod(e, h * w)
    y, x = np.divmod(rest, w)
    y, x, ci = y // pool, x // pool, ci + shift
    dc, dh, dw = dest
    inside = valid & (y < dh) & (x < dw) & (ci < dc)
    return _compact(np.where(inside, (ci * dh + y) * dw + x, -1))


def _interleave(streams: list[np.ndarray]) -> np.ndarray:
    """Two sources' events merged: one from each in turn (the order the chip's router gives is not modelled)."""
    width = max(s.shape[1] for s in streams)
    padded = [np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=-1) for s in streams]
    return _compact(np.stack(padded, axis=2).reshape(streams[0].shape[0], -1))
