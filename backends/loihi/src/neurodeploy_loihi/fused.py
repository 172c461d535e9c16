"""A whole emulator run in one compiled call: every Loihi step of every population, sample by sample.

:meth:`neurodeploy_loihi.program.Program.run` (what ``neurodeploy emulate`` and ``evaluate`` run) takes this path
when numba is installed and nobody observes the steps: the network's synapses and neurons are packed into flat
integer tables (:class:`Packed`, once per network), and :func:`_compiled._run` steps one sample through all its
steps with the same arithmetic as :meth:`neurodeploy_loihi.emulator.Network.run` (the event-driven convolution
and the fused neuron step of :mod:`neurodeploy_loihi._compiled`, called per sample) and counts what the program
reads: each spiking population's spikes over the graph steps 1..T, the readout's v relative to its value before
its first input, and the overflow statistics. Every field of the result equals the step-by-step path's
(``tests/test_fused.py``; that path is tested against Lava's ``fixed_pt`` models).

What it saves is Python: the step-by-step path makes a few numpy or numba calls per population and step, which
at batch 1 cost more than the arithmetic. The batch is split between threads (the compiled loop releases the
GIL), one slice per CPU; a single sample on two CPUs or more is shared by two threads, which claim its
populations one at a time in each step and wait for each other only at the step's end (:func:`_compiled._run`).
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder.
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.errors import DataError, ResourceError
from neurodeploy.evaluation.runner import available_cpus
from neurodeploy_loihi import _compiled
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Network, SparseSynapse, narrow_type

EDGE_COLUMNS = 32
"""Per synapse (see :func:`_compiled._run` and ``_send``): source, kind, delay, buffer offset, weight offset,
weight_exp, the convolution's sum type (2 int16, 1 int32, 0 int64), kX | n_in, kY | n_out, C_in, C_out / groups,
target, whether no dense or sparse sum can leave int32; then for a convolution cells X and Y, input X and Y, C_out,
output X, Y and C, and the ten numbers of its geometry; for a synapse list, its walk (:func:`sparse_layout`) and
its offsets into ``run_weights`` and ``runs``; last, a convolution's offset into ``cell_of``."""
LAYER_COLUMNS = 13
"""Per population: size, offset, du + 1, dv, threshold, subtractive, bias_start, first and last step computed,
depth, role (0 spiking and counted, 1 the readout), first and last synapse (exclusive) into it."""


@dataclass(frozen=True)
class Packed:
    """A network's synapses and neurons as :func:`_compiled._run` reads them (see the column notes above)."""

    edges: np.ndarray
    offsets: list[int]
    sizes: list[int]
    v0: np.ndarray
    bias: np.ndarray
    tables: np.ndarray
    channel: np.ndarray
    """The convolutions' weights again, one row per input channel (``_compiled.channel_rows``), at the same
    offsets."""
    dense: np.ndarray
    indptr: np.ndarray
    rows: np.ndarray
    weights: np.ndarray
    runs: np.ndarray
    """(n, 3) int64: per input of a synapse list walked in runs, its first output, run length and offset into
    ``run_weights``."""
    run_weights: np.ndarray
    """The weights of the synapse lists walked per neuron or in runs (:func:`sparse_layout`)."""
    cell_of: np.ndarray
    """Per convolution (int32, at its offset, edge column 31), :func:`cell_table`'s tables: each input neuron's
    cell (or -1), then each cell's place in the padded accumulator and its channel."""
    fan_out: np.ndarray
    inbound: list[tuple[int, int]]
    scratch_sizes: tuple[int, int, int, int, int]
    """The widest population, the synapses' message buffers, the largest cell table, accumulator and kernel."""
    work: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Per population, its estimated work in a step (:func:`work_per_step`), for :func:`owners`."""
    pool: list["Scratch"] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> "Scratch":
        """A scratch set for one thread's run (reused: fresh memory costs a page fault per page touched)."""
        with self.lock:
            return self.pool.pop() if self.pool else Scratch.new(len(self.v0), len(self.sizes), *self.scratch_sizes)

    def give(self, scratch: "Scratch") -> None:
        with self.lock:
            self.pool.append(scratch)

    def affordable(self, wanted: int, extra: int = 0) -> int:
        """How many of ``wanted`` threads (1 at least) can each hold a scratch set: those kept, and as many new
        ones as fit in half the memory the system has available (on a network of tens of millions of neurons a set
        takes gigabytes, most of it the synapses' messages in flight). Raise ResourceError, before anything is
        allocated, where not even one set and ``extra`` bytes (the run's outputs) fit in 80% of it: a run the
        system would kill for memory."""
        ready = len(self.pool)
        if wanted <= ready:  # (a repeated call: no file read on the way)
            return max(1, wanted)
        available = available_memory()
        if available is None:
            return max(1, wanted)
        one = Scratch.size(len(self.v0), len(self.sizes), *self.scratch_sizes)
        if not ready and one + extra > 0.8 * available:
            raise ResourceError(
                f"emulating this network ({len(self.v0):,} neurons in {len(self.sizes)} populations) takes "
                f"{one / 1e9:.1f} GB for its state and the synapses' messages in flight, and {extra / 1e9:.1f} GB "
                f"for the run's counts; this system has {available / 1e9:.1f} GB of memory available: run it on a "
                "machine with more memory, or with fewer samples per call"
            )
        return max(1, min(wanted, ready + available // 2 // one))


@dataclass
class Scratch:
    """One thread's working arrays for :func:`_compiled._run` (their values do not carry over between runs)."""

    shared: tuple[np.ndarray, ...]
    """u, v, the spikes of even and odd steps, the synapses' buffers, the readout's baseline: the threads that share
    a sample share these."""
    own: tuple[np.ndarray, ...]
    """Each thread's own working arrays."""
    row: np.ndarray
    """(1, N) int32: the spike counts of one sample, when the caller does not keep every sample's."""

    @staticmethod
    def layout(
        neurons: int, layers: int, widest: int, buffer: int, cells: int, acc: int, kernel: int
    ) -> tuple[list[tuple[Any, type]], list[tuple[Any, type]]]:
        """(shape, dtype) of each shared and each own array of a set (see :meth:`new`); the row is (1, neurons)."""
        shared = [
            (neurons, np.int64),  # u
            (neurons, np.int64),  # v
            ((2, neurons), np.bool_),  # spikes of even and odd steps
            ((2, neurons), np.int32),  # ... listed: the indices of the neurons that fired
            ((2, layers), np.int64),  # ... and how many, per population
            (buffer, np.int64),  # the synapses' messages in flight
            (widest, np.int64),  # the readout's baseline
        ]
        own = [
            (widest, np.bool_),  # folded
            (widest, np.bool_),  # saturated
            (widest, np.int64),  # message
            (widest, np.int64),  # nothing (stays 0)
            (cells, np.int32),  # conv cells
            (cells, np.int32),  # conv listed channels
            (cells, np.int64),  # conv counts per cell
            (acc, np.int16),  # conv sums, in the type that holds them
            (acc, np.int32),
            (acc, np.int64),
            (kernel, np.int16),  # one cell's kernels, summed, likewise
            (kernel, np.int32),
            (kernel, np.int64),
        ]
        return shared, own

    @staticmethod
    def size(*sizes: int) -> int:
        """The bytes :meth:`new` allocates for these sizes."""
        shared, own = Scratch.layout(*sizes)
        arrays = [*shared, *own, ((1, sizes[0]), np.int32)]
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in arrays)

    @classmethod
    def new(cls, neurons: int, layers: int, widest: int, buffer: int, cells: int, acc: int, kernel: int) -> "Scratch":
        shared, own = cls.layout(neurons, layers, widest, buffer, cells, acc, kernel)
        return cls(
            tuple(np.zeros(shape, dtype) for shape, dtype in shared),
            tuple(np.zeros(shape, dtype) for shape, dtype in own),
            np.zeros((1, neurons), np.int32),
        )


def supported(network: Network) -> bool:
    """Whether the fused run can take ``network``: numba is there, the first layer is the input population (the
    programs' layout), and every synapse is one this path knows."""
    known = getattr(network, "_fused", None)  # (kept on the network: its synapses do not change)
    if known is None:
        kinds = (ConvSynapse, DenseSynapse, SparseSynapse)
        known = network.layers[0].synapse is None and all(  # (a synapse from a later population would reach its
            isinstance(synapse, kinds) and source <= k  # target a step later than the fused loop sends it)
            for k, layer in enumerate(network.layers)
            for source, synapse, _ in layer.inbound(k)
        )
        network._fused = known  # type: ignore[attr-defined]
    return known and _compiled.kernels() is not None


SUM_TYPES = (np.int64, np.int32, np.int16)
"""A convolution's sum type, by its code in column 6."""
RUN_SLACK = 8
"""A synapse list is walked in runs when each input's outputs span at most twice its synapses plus this many
(the gaps are zero weights, added like the rest)."""


def sparse_layout(
    pointers: np.ndarray, targets: np.ndarray, values: np.ndarray, n_out: int, n_in: int
) -> tuple[int, np.ndarray | None, np.ndarray]:
    """How :func:`_compiled._send` walks a synapse list compressed by input (``pointers``, ``targets``, ``values``:
    ``_compiled.by_column``): (1, None, per-neuron weights) when every synapse joins input i to output i (an
    identity or Scale skip: a branch-free pass, out = weight x spike); (2, spans, run weights) when each input's
    outputs are increasing and span at most twice its synapses plus :data:`RUN_SLACK` (a 1x1 convolution in
    Lava's channel-last order: one vectorized add per spike; spans (n_in, 3) holds each input's first output, run
    length and offset into the run weights, zeros filling the gaps); else (0, None, empty): one synapse at a
    time."""
    per_input = np.diff(pointers)
    cols = np.repeat(np.arange(n_in), per_input)
    if n_in == n_out and per_input.max(initial=0) <= 1 and np.array_equal(targets, cols):
        diagonal = np.zeros(n_in, np.int64)
        diagonal[cols] = values
        return 1, None, diagonal
    if not len(targets):
        return 0, None, np.zeros(0, np.int64)
    first = np.zeros(n_in, np.int64)
    last = np.zeros(n_in, np.int64)
    live = per_input > 0
    first[live] = targets[pointers[:-1][live]]
    last[live] = targets[pointers[1:][live] - 1]
    same_input = cols[1:] == cols[:-1]
    increasing = bool(np.all(np.diff(targets)[same_input] > 0))
    length = np.where(live, last - first + 1, 0)
    if not increasing or np.any(length > 2 * per_input + RUN_SLACK):
        return 0, None, np.zeros(0, np.int64)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]])
    walked = np.zeros(int(length.sum()), np.int64)
    walked[offset[cols] + targets - first[cols]] = values
    return 2, np.stack([first, length, offset], axis=1).astype(np.int64), walked


def pack(network: Network) -> Packed:
    """The flat tables of ``network`` (cached on it: a network's synapses do not change)."""
    cached = getattr(network, "_packed", None)
    if cached is not None:
        return cached
    layers = network.layers
    sizes = [int(np.prod(layer.shape)) for layer in layers]
    offsets = [int(v) for v in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
    edges, tables, channels, dense, indptr, rows, weights, runs, run_weights = [], [], [], [], [], [], [], [], []
    inbound, buffer, table_at, dense_at, indptr_at, nnz, runs_at, run_weights_at = [], 0, 0, 0, 0, 0, 0, 0
    cells: list[np.ndarray] = []
    cells_at = 0
    for k, layer in enumerate(layers):
        start = len(edges)
        for source, synapse, delay in layer.inbound(k):
            row = np.zeros(EDGE_COLUMNS, np.int64)
            row[[0, 2, 3, 11]] = source, delay, buffer, k
            buffer += (delay + 1) * sizes[k]
            if isinstance(synapse, ConvSynapse):
                table, per_channel, bound = synapse._table
                kx, ky, c_in, per_out = table.shape
                x, y, _ = synapse.input_shape
                (px, py), (pad_x, pad_y) = synapse.pool, synapse.padding
                out = synapse.output_shape
                row[[1, 4, 6]] = 0, table_at, SUM_TYPES.index(_compiled.sum_type(px * py * bound))
                row[7:11] = kx, ky, c_in, per_out
                row[13:21] = (x + 2 * pad_x) // px, (y + 2 * pad_y) // py, x, y, out[2], *out
                row[21:31] = (
                    px,
                    py,
                    pad_x,
                    pad_y,
                    synapse.stride[0] // px,
                    synapse.stride[1] // py,
                    *synapse.dilation,
                    c_in // synapse.groups,
                    per_out,
                )
                tables.append(table.reshape(-1))
                channels.append(per_channel)
                table_at += table.size
                row[31] = cells_at
                cells.append(cell_table((x, y, c_in), (px, py), (pad_x, pad_y), (kx, ky)))
                cells_at += cells[-1].size
            elif isinstance(synapse, DenseSynapse):
                matrix = np.ascontiguousarray(synapse.effective_weights.T)  # (n_in, n_out): by input (int16)
                row[[1, 4, 5]] = 1, dense_at, int(synapse.weight_exp)
                row[7:9] = matrix.shape
                row[12] = int(np.abs(matrix).sum(axis=0).max(initial=0)) < 1 << 31  # no int32 wrap possible
                dense.append(matrix.reshape(-1))
                dense_at += matrix.size
            else:
                pointers, targets, values = synapse._by_column
                row[[1, 4, 5]] = 2, indptr_at, int(synapse.weight_exp)
                row[7:9] = synapse.shape[1], synapse.shape[0]
                reach = np.bincount(targets, np.abs(values), minlength=synapse.shape[0]).max(initial=0)
                row[12] = int(reach) < 1 << 31  # no int32 wrap possible
                indptr.append(pointers + nnz)
                rows.append(targets)
                weights.append(values)
                indptr_at += len(pointers)
                nnz += len(targets)
                walk, spans, walked = sparse_layout(pointers, targets, values, *synapse.shape)
                row[[13, 14, 15]] = walk, run_weights_at, runs_at
                if spans is not None:
                    runs.append(spans + np.array([0, 0, run_weights_at]))
                    runs_at += len(spans)
                run_weights.append(walked)
                run_weights_at += len(walked)
            edges.append(row)
        inbound.append((start, len(edges)))
    fan_out = network.fan_out()
    convs = [row for row in edges if row[1] == 0]
    scratch_sizes = (
        max(sizes),
        max(buffer, 1),
        max([int(row[13] * row[14] * row[9]) for row in convs], default=1),
        max(
            [int(max(row[18], row[13] + row[7] - 1) * max(row[19], row[14] + row[8] - 1) * row[20]) for row in convs],
            default=1,
        ),
        max([int(row[7] * row[8] * row[10]) for row in convs], default=1),
    )

    def flat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(1), dtype)

    packed = Packed(
        edges=np.array(edges, np.int64).reshape(-1, EDGE_COLUMNS),
        offsets=offsets,
        sizes=sizes,
        v0=flat([np.broadcast_to(np.asarray(ly.neuron.v0, np.int64), ly.shape).reshape(-1) for ly in layers], np.int64),
        bias=flat(
            [
                np.broadcast_to(fp.effective_bias(ly.neuron.bias_mant, ly.neuron.bias_exp), ly.shape).reshape(-1)
                for ly in layers
            ],
            np.int64,
        ),
        tables=flat(tables, np.int32),
        channel=flat(channels, np.int16),
        dense=flat(dense, narrow_type(*dense)),  # (int16: Loihi's weights are 8-bit)
        indptr=flat(indptr, np.int64),
        rows=flat(rows, np.int32 if max(sizes) < 1 << 31 else np.int64),  # (narrow: a large network lists
        weights=flat(weights, narrow_type(*weights)),  # hundreds of millions of synapses)
        runs=np.concatenate(runs) if runs else np.zeros((1, 3), np.int64),
        run_weights=flat(run_weights, narrow_type(*run_weights)),
        cell_of=flat(cells, np.int32),
        fan_out=flat([f.reshape(-1) for f in fan_out], np.int64),
        inbound=inbound,
        scratch_sizes=scratch_sizes,
        work=work_per_step(sizes, edges, indptr),
    )
    network._packed = packed  # type: ignore[attr-defined]
    return packed


def cell_table(
    shape: tuple[int, int, int], pool: tuple[int, int], padding: tuple[int, int], kernel: tuple[int, int]
) -> np.ndarray:
    """A convolution's tables for ``_compiled._scatter_events`` and ``_conv_entries``, one int32 array: per input
    neuron of ``shape`` (X, Y, C_in) in Lava's flat order, with an average pool (px, py) folded in and
    ``padding`` (in inputs) around it, the flat index of its cell in the cells (X'', Y'', C_in) (pool block
    (x + pad_x) // px, (y + pad_y) // py), or -1 where that block is past the last whole one (never read); then
    per cell, its position qx * (Y'' + kY - 1) + qy in the padded accumulator; then per cell, its channel."""
    (x, y, c_in), (px, py), (pad_x, pad_y), (_, ky) = shape, pool, padding, kernel
    cells_x, cells_y = (x + 2 * pad_x) // px, (y + 2 * pad_y) // py
    qx = (np.arange(x) + pad_x) // px
    qy = (np.arange(y) + pad_y) // py
    cell = (qx[:, None, None] * cells_y + qy[None, :, None]) * c_in + np.arange(c_in)[None, None, :]
    read = (qx < cells_x)[:, None, None] & (qy < cells_y)[None, :, None]
    grid = np.arange(cells_x)[:, None, None] * (cells_y + ky - 1) + np.arange(cells_y)[None, :, None]
    position = np.broadcast_to(grid, (cells_x, cells_y, c_in))
    channel = np.broadcast_to(np.arange(c_in), (cells_x, cells_y, c_in))
    parts = (np.where(read, cell, -1), position, channel)
    return np.concatenate([np.asarray(a, np.int32).reshape(-1) for a in parts])


SHARED_GAIN = 1.25
"""Two threads share a sample only when the larger share of the work is at most 1 / this of the whole."""
EVENT_SHARE = 0.1
"""In :func:`work_per_step`'s estimate, the share of a population's synapses that carry a spike in a step."""


def work_per_step(sizes: list[int], edges: list[np.ndarray], indptr: list[np.ndarray]) -> np.ndarray:
    """Per population, an estimate of its work in a step: its neurons plus :data:`EVENT_SHARE` of the synapses
    into it (the spikes they carry)."""
    work = np.asarray(sizes, np.float64)
    pointers = np.concatenate(indptr) if indptr else np.zeros(1, np.int64)
    for row in edges:
        k = int(row[11])
        if row[1] == 0:  # a convolution: each output reads kX x kY x C_in / groups cells of px x py inputs
            synapses = sizes[k] * row[7] * row[8] * row[29] * row[21] * row[22]
        elif row[1] == 1:
            synapses = row[7] * row[8]
        else:
            synapses = pointers[row[4] + row[7]] - pointers[row[4]]
        work[k] += EVENT_SHARE * float(synapses)
    return work


def owners(work: np.ndarray, windows: list[tuple[int, int]], steps_total: int) -> np.ndarray | None:
    """Whether two threads sharing a sample gain, as a split of its populations (0 or 1): the threads wait for
    each other at every step, so a step takes as long as the larger share of the populations computing in it;
    greedily, the population with the most work (``work`` per step times the steps of its window) goes to the
    thread where the sum over the steps of that larger share grows least. None when even then a thread would do
    more than 1 / :data:`SHARED_GAIN` of the whole: one thread runs it. (The threads claim the populations as they
    go, :func:`claim_order`, which balances at least as well when both run; this split only decides.)"""
    running = np.zeros((len(work), steps_total))
    for k, (first, last) in enumerate(windows):
        running[k, max(first, 1) - 1 : max(last, 0)] = work[k]
    if len(work) < 2 or not running.any():
        return None
    shares, owner = np.zeros((2, steps_total)), np.zeros(len(work), np.int64)
    for k in np.argsort(-running.sum(axis=1), kind="stable"):
        cost = [np.maximum(shares[0] + running[k] * (m == 0), shares[1] + running[k] * (m == 1)).sum() for m in (0, 1)]
        owner[k] = int(cost[1] < cost[0])
        shares[owner[k]] += running[k]
    return owner if np.maximum(shares[0], shares[1]).sum() * SHARED_GAIN <= running.sum() else None


@dataclass
class FusedRun:
    """What :func:`run` counts, per sample b: ``counts`` (B, N) int32, each neuron's spikes over its graph steps
    1..T (populations at :attr:`Packed.offsets`; the readout's entries stay 0); per population and checkpoint,
    ``sums`` and ``synops`` (B, L, C) int64 (its spikes, and spikes times fan-out, up to that graph step);
    ``readout`` (B, C, n) int64, the readout population's counts or v change at each checkpoint;
    ``stats`` (B, L, 4) int64, u folds, v saturations, largest |u| and |v|; ``readout_spikes`` (B,) int64."""

    packed: Packed
    counts: np.ndarray | None
    sums: np.ndarray
    synops: np.ndarray
    readout: np.ndarray
    stats: np.ndarray
    readout_spikes: np.ndarray

    def population(self, k: int) -> np.ndarray:
        """(B, n) int32: population k's spike counts."""
        if self.counts is None:
            raise ValueError("this run kept no per-neuron counts (keep_counts=False)")
        at, size = self.packed.offsets[k], self.packed.sizes[k]
        return self.counts[:, at : at + size]


def run(
    network: Network,
    bias_in: Callable[[int, int], np.ndarray],
    batch: int,
    steps_total: int,
    steps: int,
    windows: list[tuple[int, int]],
    checkpoints: list[int],
    top: int,
    readout_roles: list[bool],
    threads: int | None = None,
    keep_counts: bool = True,
) -> FusedRun:
    """Run ``steps_total`` Loihi steps of ``network`` for ``batch`` samples and count as
    :meth:`neurodeploy_loihi.program.Program.run` does. The first layer is an input population whose per-sample
    bias (bias_mant << bias_exp) for samples lo..hi - 1 ``bias_in(lo, hi)`` gives as (hi - lo, *shape): each
    thread computes its own slice's, so the host's part runs in parallel too. Each population computes the steps
    of its window; its graph step is its Loihi step minus its depth; spikes count over graph steps 1..``steps``;
    at each of ``checkpoints`` (graph steps) the counts, or for a population whose ``readout_roles`` entry is
    true, its v change since graph step 0, are kept; ``top`` is the population read out. ``keep_counts=False``
    keeps no per-neuron counts (``counts`` is None; the sums at the checkpoints remain). One sample with two CPUs
    or more: two threads share it when :func:`owners` says they gain (see :func:`_compiled._run`)."""
    packed = pack(network)
    n_layers, n_check = len(network.layers), len(checkpoints)
    cpus = threads or default_threads()
    layers, marks, sharing = _plan(
        network, packed, steps_total, windows, checkpoints, readout_roles, batch == 1 and cpus >= 2
    )
    extra = 4 * batch * len(packed.v0) if keep_counts else 0  # (the counts)
    workers = packed.affordable(max(1, min(batch, cpus)), extra)  # (raises before anything is allocated)
    counts = np.zeros((batch, len(packed.v0)), np.int32) if keep_counts else None
    sums = np.zeros((batch, n_layers, n_check), np.int64)
    synops = np.zeros((batch, n_layers, n_check), np.int64)
    readout = np.zeros((batch, n_check, packed.sizes[top]), np.int64)
    stats = np.zeros((batch, n_layers, 4), np.int64)
    readout_spikes = np.zeros(batch, np.int64)
    kernel = _compiled.kernels()["run"]
    outputs = (sums, synops, readout, stats, readout_spikes)

    def call(lo: int, hi: int, bias: np.ndarray, me: int, order: np.ndarray, progress: np.ndarray, sets: tuple) -> None:
        shared, own = sets[0], sets[me]
        row = shared.row if counts is None else counts[lo:hi]
        kernel(
            layers, packed.edges, packed.v0, packed.bias, bias, packed.tables, packed.channel, packed.dense,
            packed.indptr, packed.rows, packed.weights, packed.runs, packed.run_weights, packed.cell_of, packed.fan_out,
            int(steps_total), int(steps), marks, int(top), row, *(a[lo:hi] for a in outputs), order, progress,
            *shared.shared, *own.own,
        )  # fmt: skip

    def bias_of(lo: int, hi: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(bias_in(lo, hi), np.int64).reshape(hi - lo, -1))

    def part(lo: int, hi: int) -> None:
        scratch = packed.take()
        try:
            call(lo, hi, bias_of(lo, hi), 0, NO_ORDER, np.zeros(1, np.int64), (scratch,))
        finally:
            packed.give(scratch)

    started = time.perf_counter()
    if sharing is not None and sharing.share() and packed.affordable(2, extra) == 2:  # two threads, per phase
        # The host's part first, then the partner: woken before it, the partner's Python start (the call into the
        # kernel) took the GIL from this thread's and made it twice as slow (86 -> 170 us on the MNIST model); woken
        # after, it starts while this thread computes outside the GIL, and joins the phases not yet claimed.
        bias = bias_of(0, 1)
        sets = (packed.take(), packed.take())
        progress = np.zeros((n_layers + 1) * (steps_total + 1), np.int64)
        try:
            partner = _partner().submit(call, 0, 1, bias, 1, sharing.orders[1], progress, sets)
            try:
                call(0, 1, bias, 0, sharing.orders[0], progress, sets)  # (this thread works too)
            finally:
                partner.result()  # (before the scratch sets go back)
        finally:
            for scratch in sets:
                packed.give(scratch)
        sharing.record(True, time.perf_counter() - started)
        return FusedRun(packed, counts, sums, synops, readout, stats, readout_spikes)
    bounds = [batch * i // workers for i in range(workers + 1)]
    if workers == 1:
        part(0, batch)
        if sharing is not None:
            sharing.record(False, time.perf_counter() - started)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(part, bounds[:-1], bounds[1:]))
    return FusedRun(packed, counts, sums, synops, readout, stats, readout_spikes)


def _plan(
    network: Network,
    packed: Packed,
    steps_total: int,
    windows: list[tuple[int, int]],
    checkpoints: list[int],
    readout_roles: list[bool],
    shared: bool,
) -> tuple[np.ndarray, np.ndarray, "Sharing | None"]:
    """The kernel's per-population table (see ``LAYER_COLUMNS``), the checkpoints as an array and, where one sample
    may be ``shared`` by two threads and they gain (:func:`owners`), its :class:`Sharing`; kept on the network
    for the last few settings (a run of one sample repeats them, and their Python costs a tenth of a small
    network's run)."""
    key = (steps_total, tuple(map(tuple, windows)), tuple(checkpoints), tuple(readout_roles), shared)
    plans: dict = network.__dict__.setdefault("_fused_plans", {})  # (the kernel only reads them)
    if key in plans:
        return plans[key]
    layers = np.zeros((len(network.layers), LAYER_COLUMNS), np.int64)
    for k, layer in enumerate(network.layers):
        neuron = layer.neuron
        layers[k] = (
            packed.sizes[k],
            packed.offsets[k],
            neuron.du + 1,
            neuron.dv,
            neuron.threshold,
            int(neuron.kind == "subtractive"),
            neuron.bias_start,
            windows[k][0],
            windows[k][1],
            network.depths[k],
            int(readout_roles[k]),
            *packed.inbound[k],
        )
    marks = np.asarray(checkpoints, np.int64)
    owner = owners(packed.work, windows, steps_total) if shared else None
    plan = layers, marks, Sharing(claim_orders(packed.work, owner)) if owner is not None else None
    if len(plans) >= PLANS_KEPT:
        plans.pop(next(iter(plans)))
    plans[key] = plan
    return plan


PLANS_KEPT = 16
"""How many settings (steps, windows, checkpoints) :func:`_plan` keeps per network."""


def claim_orders(work: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(2, L): for each of two threads sharing a sample, the order in which it claims the populations of a phase:
    its own (``owner``, :func:`owners`) the most work per step first, then the other thread's, the least first.
    While both run, each population stays with one thread, its state in that CPU's caches (claimed first come,
    first served, the large populations could change threads from step to step, and their state with them; on the
    MNIST model the two ways measured the same within the machine's spread); a thread that has done its own takes
    what the other has not started yet, the end of the other's list, and one the system does not run holds up at
    most the population it holds."""
    by_work = np.argsort(-np.asarray(work, np.float64), kind="stable")
    rows = [[*(k for k in by_work if owner[k] == me), *(k for k in by_work[::-1] if owner[k] != me)] for me in (0, 1)]
    return np.array(rows, np.int64)


@dataclass
class Sharing:
    """Two threads sharing one sample, for one plan: their :func:`claim_orders`, and whether sharing pays now. It does
    on a machine with a CPU free for each thread; on one whose CPUs are busy with other work, a thread the system
    does not run holds up the other at the end of a step (measured: the bundled MNIST model's sample in 3.5 ms
    shared against 1.2 ms alone, with two other processes computing on two CPUs). So :func:`run` times its runs:
    the first runs alone, then shared while a shared run is not slower than the recent ones alone; one that is
    makes the next ``skip`` runs go alone (1, doubling at each shared run that loses again, up to
    :data:`SHARING_BACKOFF`; a shared run that wins sets it back to 1)."""

    orders: np.ndarray
    alone: float | None = None
    """Seconds of the recent runs by one thread (a running mean of two)."""
    skip: int = 0
    backoff: int = 1

    def share(self) -> bool:
        return self.alone is not None and self.skip == 0

    def record(self, shared: bool, seconds: float) -> None:
        if not shared:
            self.alone = seconds if self.alone is None else 0.5 * (self.alone + seconds)
            self.skip = max(0, self.skip - 1)
        elif self.alone is not None and seconds > self.alone:
            self.skip, self.backoff = self.backoff, min(2 * self.backoff, SHARING_BACKOFF)
        else:
            self.backoff = 1


SHARING_BACKOFF = 64
"""The most runs in a row that go alone after a shared run was slower."""

NO_ORDER = np.zeros(1, np.int64)
"""The claim order of a call that runs alone (it computes every population in order)."""

_PARTNER: dict[int, ThreadPoolExecutor] = {}


def _partner() -> ThreadPoolExecutor:
    """The thread that runs the second part of a shared sample, started once per process (a thread's start costs
    about as much as a small network's step; a forked process has none of its parent's threads)."""
    with _PARTNER_LOCK:
        pid = os.getpid()
        if pid not in _PARTNER:
            _PARTNER.clear()
            _PARTNER[pid] = ThreadPoolExecutor(1, thread_name_prefix="neurodeploy-loihi-partner")
        return _PARTNER[pid]


_PARTNER_LOCK = threading.Lock()


THREADS_VARIABLE = "NEURODEPLOY_EMULATOR_THREADS"
"""How many threads a run may use (default: one per CPU this process may run on). ``neurodeploy evaluate``'s
worker processes, one per CPU already, set it to 1."""


def available_memory() -> int | None:
    """The bytes of memory the system has available (``MemAvailable`` of ``/proc/meminfo``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_threads() -> int:
    value = os.environ.get(THREADS_VARIABLE, "")
    if value.strip():
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise DataError(f"{THREADS_VARIABLE}={value!r}: give a whole number of threads, at least 1")
        return threads
    return available_cpus()


def quiet_blas() -> Any:
    """A context in which numpy's BLAS uses one thread (``threadpoolctl``, when installed): OpenBLAS threads keep
    spinning for a while after a product, and on a machine with few cores they then take the cores this run's
    threads need (measured: the bundled MNIST model's run took twice as long right after the host's product)."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS = False
        else:  # the libraries are found once (a lookup per call costs a millisecond)
            _BLAS = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return _OneThread(_BLAS) if _BLAS else nullcontext()


class _OneThread:
    """Each BLAS library at one thread inside the context, its own count restored after: threadpoolctl's
    controllers called directly (its ``limit`` looks every library up again, about 15 us of a 0.9 ms run)."""

    def __init__(self, libraries: list[Any]) -> None:
        self.libraries = libraries
        self.saved: list[int] = []

    def __enter__(self) -> None:
        self.saved = [lib.num_threads for lib in self.libraries]
        for lib, threads in zip(self.libraries, self.saved):
            if threads != 1:
                lib.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        for lib, threads in zip(self.libraries, self.saved):
            if threads != 1:
                lib.set_num_threads(threads)


_BLAS: Any = None


def accepts(network: Network, readout_roles: list[bool], top: int, observe: Any) -> bool:
    """Whether :meth:`Program.run` can take the fused path: nothing observes the steps, the network is
    :func:`supported`, and no population but ``top`` is a readout."""
    return observe is None and supported(network) and all(not r or k == top for k, r in enumerate(readout_roles))
