"""The SpiNNaker emulator on torch: :func:`neurodeploy_pynn.spinnaker_emulator.run`'s contract, computed batch-first
on a torch device (``cpu``, or ``cuda`` when one is present), equal value for value to the numpy engine.

The tick is the numpy engine's (steps 1-7 of :mod:`neurodeploy_pynn.spinnaker_emulator`), op for op: the state
(V, refract_timer, synapse states, spike counts, ring-buffer slots) is held in int64 tensors (batch, size), and
every place where the numpy engine stores into int32 (the ARM's wrapping adds and subtracts, the store of a
multiply) is the same wrap written as a mask (:func:`wrap`); the accum multiply is an int64 product shifted right
by 15 (an arithmetic shift: it floors, as the ARM's does), ``decay_s1615`` one shifted by 32 (the product of an
int32 and a u0.32 value fits int64). The arguments are checked by the numpy engine's own checks, before any work.

A tick's spikes are added to the slots of tick t + delay per projection either as a matrix product in floating
point, where it is exact (the spikes are 0/1 and the words non-negative integers, so every partial sum is at most
the projection's ``max_in``: float32 when that is below 2**24, float64 otherwise, far below 2**53; reduced-
precision float32 products are off while the engine runs), or synapse by synapse from the projection's
:class:`~neurodeploy_pynn.spinnaker_emulator.SynapseTable` (the synapses of the neurons that spiked gathered and
added with ``index_add_`` on int64). The matrix is used where the projection was given as one or spans at most
``_MATRIX_ENTRIES`` (pre, post) entries, as in the numpy engine. torch is imported when :func:`run` is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from neurodeploy.torch_support import exact_floats, import_torch, resolve_device
from neurodeploy_pynn import s1615
from neurodeploy_pynn.spinnaker_emulator import (
    _MATRIX_ENTRIES,
    RECEPTORS,
    EmulatorResult,
    LifPopulation,
    LifState,
    Projection,
    _setup,
)

FLOAT32_EXACT = float(1 << 24)
"""Below this magnitude every integer is a float32: a sum of 0/1 spikes times non-negative integer words whose
total stays below it is exact in float32 in any order of summation."""

MATRIX_ENTRIES = _MATRIX_ENTRIES
"""A projection given as a connection list is held as a dense matrix when it spans at most this many (pre, post)
entries (as in the numpy engine), else as a sparse one."""
EVENT_COST = 50.0
"""One synapse event gathered and added with ``index_add_`` costs about as much as this many multiply-adds of the
sparse product (measured on x86-64 CPUs: 20-40 ns per event, about 0.5 ns per multiply-add)."""

_TWO31 = 1 << 31


def wrap(x: Any) -> Any:
    """int64 values reduced to int32's range modulo 2**32 (kept as int64): the numpy engine's store into int32."""
    return ((x + _TWO31) & 0xFFFFFFFF) - _TWO31


def wrap_(x: Any) -> Any:
    """:func:`wrap` in place; returns ``x``."""
    return x.add_(_TWO31).bitwise_and_(0xFFFFFFFF).sub_(_TWO31)


def mul(a: Any, b: Any) -> Any:
    """The ARM ``accum`` multiply of int32 values held in int64: floor, wrap."""
    return wrap((a * b) >> 15)


def decay(x: Any, d: Any) -> Any:
    """``decay_s1615`` (x: int32 values, d: uint32 values, in int64): the product fits int64; the result fits
    int32."""
    return (x * d) >> 32


def _per_neuron(a: np.ndarray, device: Any) -> Any:
    """A per-neuron constant as an int64 tensor (size,) on the device (broadcast over the batch)."""
    torch = import_torch()
    return torch.as_tensor(np.array(a, np.int64), device=device)  # a copy: the constants are read-only


class _Neurons:
    """One population's state during :func:`run`: int64 tensors (batch, size) holding int32 values."""

    def __init__(self, p: LifPopulation, batch: int, depth: int, offset: np.ndarray, device: Any) -> None:
        torch = import_torch()
        self.p = p
        self.delta = p.model == "IF_curr_delta"
        shape = (batch, p.size)

        def start(a: np.ndarray) -> Any:
            return _per_neuron(a, device).expand(shape).clone()

        self.v = start(p.v_init)
        self.refract = start(p.refract_timer_init)
        # as in the numpy engine: without a refractory period anywhere, refract_timer never changes
        self.refractory = bool((p.t_refract > 0).any() or (p.refract_timer_init > 0).any())
        self.isyn = [start(p.isyn_exc_init), start(p.isyn_inh_init)]
        self.shift = (p.shift_exc, p.shift_inh)
        self.depth = depth
        self.ring = torch.zeros((2, depth, *shape), dtype=torch.int64, device=device)
        self.filled = [[False] * depth, [False] * depth]
        self.bound = [[0.0] * depth, [0.0] * depth]
        self.saturated = torch.zeros((), dtype=torch.int64, device=device)
        self.counts = torch.zeros(shape, dtype=torch.int64, device=device)
        self.zero = [not p.isyn_exc_init.any(), not p.isyn_inh_init.any()]  # synapse state r is 0 everywhere
        self.rest_alpha: Any = None  # alpha with both synapse states 0, computed when first needed
        self.cur, self.t1, self.t2 = (torch.empty(shape, dtype=torch.int64, device=device) for _ in range(3))
        self.spike = torch.empty(shape, dtype=torch.bool, device=device)
        self.inactive = torch.empty(shape, dtype=torch.bool, device=device)
        self.offset = _per_neuron(offset, device)  # (size,) or (batch, size)
        self.v_rest = _per_neuron(p.v_rest, device)
        self.v_reset = _per_neuron(p.v_reset, device).expand(shape)
        self.v_thresh = _per_neuron(p.v_thresh, device)
        self.t_refract = _per_neuron(p.t_refract, device).expand(shape)
        self.r_membrane = _per_neuron(p.r_membrane, device)
        self.exp_tc = _per_neuron(p.exp_tc, device)
        if self.delta:
            self.scale = _per_neuron(p.input_scale, device)
        else:
            self.init = (_per_neuron(p.init_exc, device), _per_neuron(p.init_inh, device))
            self.decay = (_per_neuron(p.decay_exc, device), _per_neuron(p.decay_inh, device))

    def _input(self, r: int, out: Any) -> Any:
        """Synapse state r as the LIF takes it: delta inputs times ``kdivk(1.0, ts)`` (into ``out``), current
        inputs as they are."""
        if not self.delta:
            return self.isyn[r]
        torch = import_torch()
        return wrap_(torch.mul(self.isyn[r], self.scale, out=out).__irshift__(15))

    def tick(self, t: int, record_v: Any) -> Any:
        """Steps 1-6 of tick t; returns the spikes as a bool tensor (batch, size), valid until the next tick.
        In-place arithmetic on work buffers (a fresh tensor per operation costs more than the operation)."""
        torch = import_torch()
        slot = t % self.depth
        # 1. transfer: input = wrap(min(sum, 0xFFFF) << shift), exponential synapses decay_s1615(input, init)
        for r in (0, 1):
            if not self.filled[r][slot]:
                continue
            acc = self.ring[r, slot]
            if self.bound[r][slot] > s1615.WEIGHT_WORD_MAX:
                self.saturated += (acc > s1615.WEIGHT_WORD_MAX).sum()
                acc.clamp_(max=s1615.WEIGHT_WORD_MAX)
            value = wrap_(acc.__ilshift__(self.shift[r]))  # below 2**47
            if not self.delta:
                value.mul_(self.init[r]).__irshift__(32)
            if self.zero[r]:
                self.isyn[r].copy_(value)
            else:
                wrap_(self.isyn[r].add_(value))
            self.zero[r] = False
            acc.zero_()
            self.filled[r][slot] = False
            self.bound[r][slot] = 0.0
        # 2. V before the update
        if record_v is not None:
            record_v[:, t] = self.v
        # 3-4. input type; I = exc - inh + I_offset; alpha = I * R + V_rest
        if self.zero[0] and self.zero[1]:
            if self.rest_alpha is None:
                self.rest_alpha = wrap(mul(self.offset, self.r_membrane) + self.v_rest).expand(self.v.shape)
            alpha = self.rest_alpha
        else:
            alpha = self.cur
            if self.zero[1]:
                alpha.copy_(self._input(0, self.t1))
            elif self.zero[0]:
                torch.neg(self._input(1, self.t1), out=alpha)
            else:
                torch.sub(self._input(0, self.t1), self._input(1, self.t2), out=alpha)
            wrap_(alpha.add_(self.offset))
            wrap_(wrap_(alpha.mul_(self.r_membrane).__irshift__(15)).add_(self.v_rest))
        # V = alpha - exp_TC * (alpha - V) where refract_timer <= 0, else refract_timer -= 1 and V stays
        step = wrap_(torch.sub(alpha, self.v, out=self.t1))
        wrap_(step.mul_(self.exp_tc).__irshift__(15))
        updated = wrap_(torch.sub(alpha, step, out=self.t1))
        if self.refractory:
            inactive = torch.gt(self.refract, 0, out=self.inactive)
            torch.where(inactive, self.v, updated, out=self.v)
            self.refract.sub_(inactive.to(torch.int64))
        else:
            self.v.copy_(updated)
        # 5. threshold (signed compare of raw bits), reset
        spike = torch.ge(self.v, self.v_thresh, out=self.spike)
        torch.where(spike, self.v_reset, self.v, out=self.v)
        if self.refractory:
            torch.where(spike, self.t_refract, self.refract, out=self.refract)
        self.counts.add_(spike)
        # 6. shaping: exponential I = decay_s1615(I, decay); delta I = 0
        for r in (0, 1):
            if self.zero[r]:
                continue
            if self.delta:
                self.isyn[r].zero_()
                self.zero[r] = True
            else:
                self.isyn[r].mul_(self.decay[r]).__irshift__(32)
        return spike

    def state(self) -> LifState:
        def host(x: Any) -> np.ndarray:
            return x.cpu().numpy().astype(np.int32)

        return LifState(
            v=host(self.v),
            refract_timer=host(self.refract),
            isyn_exc=host(self.isyn[0]),
            isyn_inh=host(self.isyn[1]),
        )


class _Delivery:
    """A projection's spike delivery during :func:`run`: a matrix product in an exact float type, or the synapses
    of the neurons that spiked gathered from the table and added with ``index_add_``."""

    def __init__(self, prj: Projection, n_pre: int, n_post: int, device: Any) -> None:
        torch = import_torch()
        table = prj.synapses
        self.pre, self.delay = prj.pre, prj.delay
        self.receptor = RECEPTORS.index(prj.receptor)
        self.n_post = n_post
        self.max_in = table.max_in
        indptr = np.concatenate([table.indptr, np.full(n_pre + 1 - len(table.indptr), table.indptr[-1])])
        self.empty = not len(table.words)
        self.dtype = torch.float32 if table.max_in < FLOAT32_EXACT else torch.float64
        self.matrix: Any = None  # dense (n_pre, n_post), or the transpose as a sparse CSR (n_post, n_pre)
        pre = np.repeat(np.arange(n_pre), np.diff(indptr))
        if prj.words is not None or n_pre * n_post <= MATRIX_ENTRIES:
            dense = np.zeros((n_pre, n_post), np.float64)
            dense[pre, table.post] = table.words  # the table's (pre, post) pairs are distinct
            self.matrix = torch.as_tensor(dense, device=device).to(self.dtype)
            self.sparse = False
        else:
            order = np.lexsort((pre, table.post))  # by post, then pre
            crow = np.zeros(n_post + 1, np.int64)
            np.cumsum(np.bincount(table.post, minlength=n_post), out=crow[1:])
            with warnings.catch_warnings():  # torch's notes that sparse CSR tensors are in beta
                warnings.simplefilter("ignore", UserWarning)
                self.matrix = torch.sparse_csr_tensor(
                    torch.as_tensor(crow, device=device),
                    torch.as_tensor(pre[order].astype(np.int64), device=device),
                    torch.as_tensor(table.words[order].astype(np.float64), device=device).to(self.dtype),
                    (n_post, n_pre),
                    check_invariants=False,
                )
            self.sparse = True
        self.entries = len(table.words)  # the sparse product's multiply-adds per sample
        self.fan_out = torch.as_tensor(np.diff(indptr).astype(np.float64), device=device)
        self.indptr = torch.as_tensor(indptr, device=device)
        self.post = torch.as_tensor(table.post.astype(np.int64), device=device)
        self.words = torch.as_tensor(np.array(table.words, np.int64), device=device)

    def add(self, spikes: Any, out: Any) -> bool:
        """Add to ``out`` (int64 (batch, n_post)) the words of the synapses of the neurons that spiked (``spikes``
        bool (batch, n_pre)). Returns False, leaving ``out`` alone, where nothing is sent."""
        torch = import_torch()
        if self.empty:
            return False
        if not self.sparse:
            # exact: every partial sum is a non-negative integer at most max_in (FLOAT32_EXACT, 2**53)
            out += (spikes.to(self.dtype) @ self.matrix).round().to(torch.int64)
            return True
        # synapse by synapse where the events are few, else the sparse product (exact as the dense one)
        events = float(spikes.sum(0).to(torch.float64) @ self.fan_out)
        if not events:
            return False
        if events * EVENT_COST > self.entries * len(spikes):
            summed = self.matrix @ spikes.T.to(self.dtype)  # (n_post, batch)
            out += summed.T.round().to(torch.int64)
            return True
        sample, neuron = spikes.nonzero(as_tuple=True)
        start = self.indptr[neuron]
        length = self.indptr[neuron + 1] - start
        total = int(length.sum())
        if not total:
            return False
        # the synapse ranges [start, start + length) laid end to end
        owner = torch.repeat_interleave(torch.arange(len(length), device=length.device), length, output_size=total)
        first = torch.cumsum(length, 0) - length
        index = start[owner] + torch.arange(total, device=length.device) - first[owner]
        out.view(-1).index_add_(0, sample[owner] * self.n_post + self.post[index], self.words[index])
        return True


def run(
    populations: Sequence[LifPopulation],
    projections: Sequence[Projection],
    inputs: Mapping[str, Any] | None = None,
    *,
    steps: int | None = None,
    batch: int | None = None,
    record_spikes: bool | Iterable[str] = True,
    record_v: bool | Iterable[str] = False,
    i_offset: Mapping[str, Any] | None = None,
    count_ticks: Iterable[int] = (),
    v_ticks: Iterable[int] = (),
    device: str | None = None,
) -> EmulatorResult:
    """:func:`neurodeploy_pynn.spinnaker_emulator.run` on torch ``device`` (a torch device string; None: cuda
    where torch sees one, else cpu): the same arguments, checks and result, every field equal value for value."""
    s = _setup(populations, projections, inputs, steps, batch, record_spikes, record_v, i_offset, count_ticks, v_ticks)
    torch = import_torch()
    dev = resolve_device(device)
    with exact_floats():
        neurons = {n: _Neurons(p, s.batch, s.max_delay[n] + 1, s.offsets[n], dev) for n, p in s.pops.items()}
        sources = {n: torch.as_tensor(a, device=dev) for n, a in s.sources.items()}
        deliveries = [_Delivery(prj, s.sizes[prj.pre], s.sizes[prj.post], dev) for prj in projections]
        targets = [neurons[prj.post] for prj in projections]
        shape = {n: (s.batch, s.steps, p.size) for n, p in s.pops.items()}
        out_spikes = {n: torch.zeros(shape[n], dtype=torch.bool, device=dev) for n in s.rec_spikes}
        out_v = {n: torch.zeros(shape[n], dtype=torch.int64, device=dev) for n in s.rec_v}
        checkpoint_counts: dict[int, dict[str, Any]] = {}
        checkpoint_v: dict[int, dict[str, Any]] = {}

        def checkpoint(n: int) -> None:
            if n in s.count_at:
                checkpoint_counts[n] = {k: c.counts.clone() for k, c in neurons.items()}
            if n in s.v_at:
                checkpoint_v[n] = {k: neurons[k].v.clone() for k in s.names if k in s.rec_v}

        checkpoint(0)
        for t in range(s.steps):
            ticked = {name: c.tick(t, out_v.get(name)) for name, c in neurons.items()}
            for name in s.rec_spikes:
                out_spikes[name][:, t] = ticked[name]
            checkpoint(t + 1)
            # 7. this tick's spikes into the slots of tick t + delay
            for d, target in zip(deliveries, targets):
                spikes = ticked[d.pre] if d.pre in ticked else sources[d.pre][:, t]
                r, slot = d.receptor, (t + d.delay) % target.depth
                if d.add(spikes, target.ring[r, slot]):
                    target.filled[r][slot] = True
                    target.bound[r][slot] += d.max_in

        def host(x: Any, dtype: type) -> np.ndarray:
            return x.cpu().numpy().astype(dtype)

        return EmulatorResult(
            spikes={n: host(a, np.bool_) for n, a in out_spikes.items()},
            v={n: host(a, np.int32) for n, a in out_v.items()},
            final={n: c.state() for n, c in neurons.items()},
            saturated_slots={n: int(c.saturated) for n, c in neurons.items()},
            counts={n: host(c.counts, np.int64) for n, c in neurons.items()},
            checkpoint_counts={k: {n: host(a, np.int64) for n, a in v.items()} for k, v in checkpoint_counts.items()},
            checkpoint_v={k: {n: host(a, np.int32) for n, a in v.items()} for k, v in checkpoint_v.items()},
        )
