"""A batched numpy emulator of sPyNNaker 1!7.4.1's ``IF_curr_exp`` and ``IF_curr_delta`` neurons, in its ARM arithmetic.

The network: :class:`LifPopulation` s (state and constants as s16.15 raw bits, see :mod:`neurodeploy_pynn.s1615`),
:class:`Projection` s (a dense matrix of 16-bit weight words from a population or a spike-source input to a
population, one receptor, one integer delay >= 1 in ticks), and spike-source inputs given as binary arrays
(batch, steps, n). :func:`run` steps all of it over a batch of samples at once, vectorized over samples and
neurons (loops only over ticks and projections).

One tick t, as sPyNNaker runs it (``neuron.c`` ``neuron_transfer``, ``neuron_impl_standard.h``,
``neuron_model_lif_impl.h``, ``threshold_type_static.h``; ``docs/spinnaker-arithmetic.md``):

1. **Transfer**: per receptor, the 16-bit ring-buffer slot of tick t becomes the input ``word << shift`` (raw
   bits, wrapping to int32: a shift of 16 or more can turn a large word negative). An exponential synapse adds
   ``decay_s1615(input, init)`` to its state, a delta synapse adds the input as it is. The slot is cleared.
2. **Record**: V before the update, which is what sPyNNaker's ``record("v")`` returns for tick t.
3. **Input type**: current inputs as they are; delta inputs are multiplied (floor) by ``kdivk(1.0, ts)``.
4. **LIF**, when ``refract_timer <= 0``: ``I = exc - inh + I_offset``, ``alpha = I * R + V_rest``,
   ``V = alpha - exp_TC * (alpha - V)`` (floor multiplies, wrapping adds); otherwise ``refract_timer -= 1`` and
   V stays (the tick's input is lost to V).
5. **Threshold**: a spike where ``bits(V) >= bits(V_thresh)`` (also on a frozen V); then ``V = V_reset``,
   ``refract_timer = T_refract``.
6. **Shaping**, every tick: exponential ``I_syn = decay_s1615(I_syn, decay)``; delta ``I_syn = 0``.
7. **Spikes out**: a spike of tick t (of a population or an input) adds each of its synapses' words to the
   target's slot t + delay, so it acts in tick t + delay's update. Words landing in one slot add up and the slot
   saturates at 0xFFFF (``process_fixed_synapses``: ``accumulation & 0xFFFF0000`` tested, 0xFFFF stored, read in
   the disassembly of the 7.4.1 ``IF_curr_exp.aplx``). The words are non-negative, so the saturated sum is
   ``min(sum, 0xFFFF)`` whatever the arrival order.

How it is checked (``backends/pynn/tests``): ``test_spinnaker_traces.py`` derives V step by step by hand for
small networks; ``test_spinnaker_arm.py`` compares spikes, recorded V and the final state bit for bit with the
same tick written in C on GCC's ``accum`` type, compiled for ARM (ARM mode, as sPyNNaker builds) and run under
qemu-arm, on seeded random networks including saturated slots, wrapped inputs and refractory periods.

Not modelled: spikes arriving late (sPyNNaker's colour-delay skip), sub-steps (``n_steps_per_timestep`` > 1),
current sources, conductance-based models, weights generated on the machine (``synapse_expander``, which rounds
differently at ties: build words with :func:`neurodeploy_pynn.s1615.weight_words`), and packet loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy_pynn import s1615

MODELS = ("IF_curr_exp", "IF_curr_delta")
RECEPTORS = ("excitatory", "inhibitory")
MAX_SHIFT = 31

# sPyNNaker 1!7.4.1's defaults (spynnaker/pyNN/models/neuron/builds/if_curr_exp_base.py, if_curr_delta.py): the
# PyNN parameters (mV, nF, ms, nA) and the initial values v, isyn_exc, isyn_inh.
PYNN_DEFAULTS: dict[str, dict[str, float]] = {
    "IF_curr_exp": {
        "tau_m": 20.0,
        "cm": 1.0,
        "v_rest": -65.0,
        "v_reset": -65.0,
        "v_thresh": -50.0,
        "tau_syn_E": 5.0,
        "tau_syn_I": 5.0,
        "tau_refrac": 0.1,
        "i_offset": 0.0,
        "v": -65.0,
        "isyn_exc": 0.0,
        "isyn_inh": 0.0,
    },
    "IF_curr_delta": {
        "tau_m": 20.0,
        "cm": 1.0,
        "v_rest": -65.0,
        "v_reset": -65.0,
        "v_thresh": -50.0,
        "tau_refrac": 0.1,
        "i_offset": 0.0,
        "v": -65.0,
        "isyn_exc": 0.0,
        "isyn_inh": 0.0,
    },
}

_TWO31 = 1 << 31


def _wrap(x: np.ndarray) -> np.ndarray:
    """int64 values reduced to int32's range modulo 2**32 (kept as int64)."""
    return ((x + _TWO31) & 0xFFFFFFFF) - _TWO31


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ARM ``accum`` multiply on int64 arrays holding int32 values: floor, wrap."""
    return _wrap((a * b) >> 15)


def _decay(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``decay_s1615`` on int64 arrays (x: int32 values, d: uint32 values); the product fits in int64."""
    return (x * d) >> 32


def _per_neuron(value: Any, size: int, name: str, lo: int, hi: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind == "b" or a.dtype.kind not in "iu":
        raise TypeError(f"{name}: raw bits must be integers, got dtype {a.dtype}")
    if a.ndim == 0:
        a = np.full(size, int(a), dtype=np.int64)
    elif a.shape != (size,):
        raise ValueError(f"{name}: expected a scalar or shape ({size},), got {a.shape}")
    a = a.astype(np.int64)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise ValueError(f"{name}: raw values outside [{lo}, {hi}]")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class LifPopulation:
    """A population of ``IF_curr_exp`` or ``IF_curr_delta`` neurons, as the chip holds it: raw bits.

    s16.15 raw (int32): ``v_rest``, ``v_reset``, ``v_thresh``, ``i_offset`` (mV, nA as encoded), the on-chip
    constants ``r_membrane`` (MOhm) and ``exp_tc``, the initial ``v_init``, ``isyn_exc_init``, ``isyn_inh_init``
    and, for ``IF_curr_delta``, ``input_scale`` (``kdivk(1.0, ts)``). Integers: ``t_refract`` and
    ``refract_timer_init`` (ticks), ``shift_exc`` / ``shift_inh`` (the ring-buffer left shifts, 0..31). u0.32 raw
    (uint32), ``IF_curr_exp`` only: ``decay_exc``, ``init_exc``, ``decay_inh``, ``init_inh``. Every per-neuron
    value is a scalar or a (size,) array. :meth:`from_pynn` computes all of it from PyNN parameters."""

    name: str
    model: str
    size: int
    v_rest: Any
    v_reset: Any
    v_thresh: Any
    i_offset: Any
    r_membrane: Any
    exp_tc: Any
    t_refract: Any
    shift_exc: int = 0
    shift_inh: int = 0
    decay_exc: Any = None
    init_exc: Any = None
    decay_inh: Any = None
    init_inh: Any = None
    input_scale: Any = None
    v_init: Any = 0
    refract_timer_init: Any = 0
    isyn_exc_init: Any = 0
    isyn_inh_init: Any = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"population {self.name!r}: model must be one of {MODELS}, got {self.model!r}")
        if not isinstance(self.size, (int, np.integer)) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"population {self.name!r}: size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        for shift_name in ("shift_exc", "shift_inh"):
            shift = getattr(self, shift_name)
            if not isinstance(shift, (int, np.integer)) or isinstance(shift, bool) or not 0 <= shift <= MAX_SHIFT:
                raise ValueError(f"population {self.name!r}: {shift_name} must be an integer in [0, {MAX_SHIFT}]")
            object.__setattr__(self, shift_name, int(shift))
        lo, hi = s1615.INT32_MIN, s1615.INT32_MAX
        names = ["v_rest", "v_reset", "v_thresh", "i_offset", "r_membrane", "exp_tc", "t_refract"]
        names += ["v_init", "refract_timer_init", "isyn_exc_init", "isyn_inh_init"]
        if self.model == "IF_curr_exp":
            u32 = ("decay_exc", "init_exc", "decay_inh", "init_inh")
            missing = [n for n in u32 if getattr(self, n) is None]
            if missing:
                raise ValueError(f"population {self.name!r}: IF_curr_exp needs {', '.join(missing)} (u0.32 raw)")
            for n in u32:
                object.__setattr__(self, n, _per_neuron(getattr(self, n), self.size, n, 0, s1615.UINT32_MAX))
        else:
            if self.input_scale is None:
                raise ValueError(f"population {self.name!r}: IF_curr_delta needs input_scale (kdivk(1.0, ts), raw)")
            names.append("input_scale")
        for n in names:
            object.__setattr__(self, n, _per_neuron(getattr(self, n), self.size, n, lo, hi))

    @classmethod
    def from_pynn(
        cls,
        name: str,
        model: str,
        size: int,
        *,
        time_step: float = 1.0,
        shift_exc: int = 0,
        shift_inh: int = 0,
        refract_timer: Any = 0,
        **parameters: Any,
    ) -> LifPopulation:
        """The population sPyNNaker loads for PyNN ``model`` with ``parameters`` (PyNN names and units, scalars or
        per-neuron sequences; the rest take sPyNNaker's defaults, :data:`PYNN_DEFAULTS`) at machine time step
        ``time_step`` ms: each value S1615-encoded as the host does (:func:`neurodeploy_pynn.s1615.encode`), then
        the constants derived as the chip does. The shifts come from the host's weight statistics
        (:func:`neurodeploy_pynn.s1615.ring_buffer_shift`)."""
        if model not in PYNN_DEFAULTS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        unknown = sorted(set(parameters) - set(PYNN_DEFAULTS[model]))
        if unknown:
            raise TypeError(f"{model} has no parameter(s) {', '.join(unknown)}")
        values = {**PYNN_DEFAULTS[model], **parameters}

        def enc(key: str) -> np.ndarray:
            a = np.asarray(values[key], dtype=np.float64)
            if a.ndim == 0:
                a = np.full(size, float(a))
            if a.shape != (size,):
                raise ValueError(f"{key}: expected a scalar or {size} values, got shape {a.shape}")
            return s1615.encode_array(a)

        ts_param = np.full(size, s1615.encode(time_step), dtype=np.int32)
        lif = s1615.lif_constants(ts_param, enc("tau_m"), enc("cm"), enc("tau_refrac"))
        common = dict(
            name=name,
            model=model,
            size=size,
            v_rest=enc("v_rest"),
            v_reset=enc("v_reset"),
            v_thresh=enc("v_thresh"),
            i_offset=enc("i_offset"),
            r_membrane=lif.r_membrane,
            exp_tc=lif.exp_tc,
            t_refract=lif.t_refract,
            shift_exc=shift_exc,
            shift_inh=shift_inh,
            v_init=enc("v"),
            refract_timer_init=refract_timer,
            isyn_exc_init=enc("isyn_exc"),
            isyn_inh_init=enc("isyn_inh"),
        )
        if model == "IF_curr_exp":
            decay_exc, init_exc = s1615.exp_synapse_constants(ts_param, enc("tau_syn_E"))
            decay_inh, init_inh = s1615.exp_synapse_constants(ts_param, enc("tau_syn_I"))
            return cls(**common, decay_exc=decay_exc, init_exc=init_exc, decay_inh=decay_inh, init_inh=init_inh)
        return cls(**common, input_scale=s1615.delta_input_scale(ts_param))


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from ``pre`` (a population or an input) to population ``post``, all on one ``receptor``
    ("excitatory" or "inhibitory") with one ``delay`` in ticks (>= 1): either ``words`` (n_pre, n_post), a dense
    matrix of 16-bit weight words (0 = no synapse), or ``connections`` = (pre_index, post_index, words), a list of
    synapses (PyNN's ``FromListConnector``; a pair may repeat, each synapse adding its word to the slot). Words are
    in [0, 0xFFFF]; :func:`neurodeploy_pynn.s1615.weight_words` makes them from weights."""

    pre: str
    post: str
    words: Any = None
    receptor: str = "excitatory"
    delay: int = 1
    connections: Any = None

    def __post_init__(self) -> None:
        where = f"projection {self.pre}->{self.post}"
        if (self.words is None) == (self.connections is None):
            raise ValueError(f"{where}: give either words (a matrix) or connections (a list), not both or neither")
        if self.words is not None:
            w = np.asarray(self.words)
            if w.dtype.kind == "b" or w.dtype.kind not in "iu" or w.ndim != 2:
                raise TypeError(f"{where}: words must be a 2-D integer array")
            _check_words(w, where)
            w = w.astype(np.int64)
            w.setflags(write=False)
            object.__setattr__(self, "words", w)
        else:
            try:
                pre_index, post_index, words = (np.asarray(a) for a in self.connections)
            except (TypeError, ValueError):
                raise TypeError(f"{where}: connections must be three arrays (pre_index, post_index, words)") from None
            for name, a in (("pre_index", pre_index), ("post_index", post_index), ("words", words)):
                if a.dtype.kind == "b" or a.dtype.kind not in "iu" or a.ndim != 1:
                    raise TypeError(f"{where}: connection {name} must be a 1-D integer array")
                if len(a) != len(pre_index):
                    raise ValueError(f"{where}: connection arrays differ in length")
            _check_words(words, where)
            if pre_index.size and min(int(pre_index.min()), int(post_index.min())) < 0:
                raise ValueError(f"{where}: connection indices must be >= 0")
            order = np.argsort(pre_index, kind="stable")  # by presynaptic neuron: a spike's synapses are a slice
            listed = tuple(np.ascontiguousarray(a[order], np.int64) for a in (pre_index, post_index, words))
            for a in listed:
                a.setflags(write=False)
            object.__setattr__(self, "connections", listed)
        if self.receptor not in RECEPTORS:
            raise ValueError(f"{where}: receptor must be one of {RECEPTORS}")
        if not isinstance(self.delay, (int, np.integer)) or isinstance(self.delay, bool) or self.delay < 1:
            raise ValueError(f"{where}: delay must be an integer >= 1 (ticks)")
        object.__setattr__(self, "delay", int(self.delay))

    def check_sizes(self, n_pre: int, n_post: int) -> None:
        """Raise ValueError unless the synapses fit populations of ``n_pre`` and ``n_post`` neurons."""
        where = f"projection {self.pre}->{self.post}"
        if self.words is not None:
            if self.words.shape != (n_pre, n_post):
                raise ValueError(f"{where}: words have shape {self.words.shape}, expected {(n_pre, n_post)}")
            return
        pre_index, post_index, _ = self.connections
        if pre_index.size and (int(pre_index.max()) >= n_pre or int(post_index.max()) >= n_post):
            raise ValueError(f"{where}: a connection index is beyond the {n_pre} -> {n_post} neurons it joins")

    def sums(self, spikes: np.ndarray, n_post: int) -> np.ndarray:
        """(batch, n_post) int64: the sum of the words of the synapses of the neurons that spiked (spikes (batch,
        n_pre), 0/1), in proportion to those synapses for a connection list."""
        if self.words is not None:
            # exact: 0/1 times words below 2**16, summed over fewer than 2**37 sources, stays below 2**53
            return (spikes.astype(np.float64) @ self.words).astype(np.int64)
        pre_index, post_index, words = self.connections
        batch = len(spikes)
        sample, neuron = np.nonzero(spikes)
        start = np.searchsorted(pre_index, neuron, side="left")
        length = np.searchsorted(pre_index, neuron, side="right") - start
        total = int(length.sum())
        if not total:
            return np.zeros((batch, n_post), np.int64)
        # the synapse slices of the active (sample, neuron) pairs, end to end
        offsets = np.repeat(start - np.concatenate(([0], np.cumsum(length)[:-1])), length)
        k = offsets + np.arange(total)
        cell = np.repeat(sample, length) * n_post + post_index[k]
        summed = np.bincount(cell, words[k].astype(np.float64), minlength=batch * n_post)  # exact below 2**53
        return summed.astype(np.int64).reshape(batch, n_post)


def _check_words(words: np.ndarray, where: str) -> None:
    if words.size and (int(words.min()) < 0 or int(words.max()) > s1615.WEIGHT_WORD_MAX):
        raise ValueError(f"{where}: words must be in [0, 0xFFFF]")


@dataclass(frozen=True)
class LifState:
    """A population's state after the last tick, raw bits, each (batch, size): ``v``, ``refract_timer`` (ticks),
    ``isyn_exc``, ``isyn_inh`` (the synapse states after shaping: 0 for delta synapses)."""

    v: np.ndarray
    refract_timer: np.ndarray
    isyn_exc: np.ndarray
    isyn_inh: np.ndarray


@dataclass(frozen=True)
class EmulatorResult:
    """``spikes[name]``: bool (batch, steps, size), for the recorded populations. ``v[name]``: int32 raw
    (batch, steps, size), V at the start of each tick (before its update, as sPyNNaker records it), for the
    populations recorded. ``final[name]``: the state after the last tick. ``saturated_slots[name]``: how many
    ring-buffer slots (sample, receptor, neuron, tick) were saturated at 0xFFFF. ``counts[name]``: int64 (batch,
    size), every population's spikes per neuron over all ticks. For each tick count n of ``count_ticks`` /
    ``v_ticks``: ``checkpoint_counts[n][name]``, the spikes per neuron over the first n ticks, and
    ``checkpoint_v[n][name]`` (int32 raw), V after n ticks (after the n-th tick's reset; n = 0: the initial V)."""

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray]
    final: dict[str, LifState]
    saturated_slots: dict[str, int]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    checkpoint_counts: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    checkpoint_v: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def _selection(record: bool | Iterable[str], names: list[str], what: str) -> set[str]:
    if record is True:
        return set(names)
    if record is False:
        return set()
    chosen = set(record)
    unknown = sorted(chosen - set(names))
    if unknown:
        raise ValueError(f"{what}: no population(s) {', '.join(unknown)}")
    return chosen


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
) -> EmulatorResult:
    """Run ``steps`` ticks of the network for a batch of samples.

    ``inputs[name]``: binary (batch, steps, n) spike trains of spike-source inputs, a spike at [b, t, i] sent in
    tick t. ``steps`` and ``batch`` default to the inputs' shape (they are required without inputs). Every sample
    starts from the populations' initial values with empty ring buffers. ``record_spikes`` / ``record_v``: True,
    False or the names of the populations to record. ``i_offset[name]``: int (batch, size) s16.15 raw bits that
    replace that population's ``i_offset`` per sample (a converted network's input current). ``count_ticks`` /
    ``v_ticks``: tick counts at which to keep every population's spike counts / the V of the ``record_v``
    populations (see :class:`EmulatorResult`)."""
    inputs = dict(inputs or {})
    pop_names = [p.name for p in populations]
    if len(set(pop_names)) != len(pop_names):
        raise ValueError("population names must be unique")
    clash = sorted(set(pop_names) & set(inputs))
    if clash:
        raise ValueError(f"names used by both a population and an input: {', '.join(clash)}")
    sources: dict[str, np.ndarray] = {}
    for name, spikes in inputs.items():
        a = np.asarray(spikes)
        if a.ndim != 3:
            raise ValueError(f"input {name!r}: expected (batch, steps, n), got shape {a.shape}")
        if a.dtype.kind not in "biu" or (a.size and not np.isin(a, (0, 1)).all()):
            raise ValueError(f"input {name!r}: spikes must be 0/1 or bool")
        batch = a.shape[0] if batch is None else batch
        steps = a.shape[1] if steps is None else steps
        if a.shape[0] != batch or a.shape[1] < steps:
            raise ValueError(f"input {name!r}: shape {a.shape} does not cover batch {batch} and {steps} steps")
        sources[name] = a.astype(np.float64)
    if steps is None or batch is None:
        raise ValueError("steps and batch are required when there are no inputs")
    if steps < 0 or batch < 1:
        raise ValueError("steps must be >= 0 and batch >= 1")

    pops = {p.name: p for p in populations}
    sizes = {**{n: p.size for n, p in pops.items()}, **{n: a.shape[2] for n, a in sources.items()}}
    max_delay = dict.fromkeys(pops, 1)
    for prj in projections:
        if prj.pre not in sizes:
            raise ValueError(f"projection {prj.pre}->{prj.post}: no population or input {prj.pre!r}")
        if prj.post not in pops:
            raise ValueError(f"projection {prj.pre}->{prj.post}: no population {prj.post!r}")
        prj.check_sizes(sizes[prj.pre], sizes[prj.post])
        max_delay[prj.post] = max(max_delay[prj.post], prj.delay)
    rec_spikes = _selection(record_spikes, pop_names, "record_spikes")
    rec_v = _selection(record_v, pop_names, "record_v")

    # State, int64 arrays holding int32 values, (batch, size); ring buffers hold the unsaturated sums of words.
    def initial(a: np.ndarray) -> np.ndarray:
        return np.repeat(a[None, :], batch, axis=0).astype(np.int64)

    v = {n: initial(p.v_init) for n, p in pops.items()}
    refract = {n: initial(p.refract_timer_init) for n, p in pops.items()}
    isyn = {n: [initial(p.isyn_exc_init), initial(p.isyn_inh_init)] for n, p in pops.items()}
    ring = {n: np.zeros((2, max_delay[n] + 1, batch, p.size), dtype=np.int64) for n, p in pops.items()}
    saturated = dict.fromkeys(pops, 0)
    out_spikes = {n: np.zeros((batch, steps, pops[n].size), dtype=bool) for n in rec_spikes}
    out_v = {n: np.zeros((batch, steps, pops[n].size), dtype=np.int32) for n in rec_v}
    receptor_index = [RECEPTORS.index(prj.receptor) for prj in projections]
    offsets = {n: p.i_offset for n, p in pops.items()}
    for name, raw in (i_offset or {}).items():
        if name not in pops:
            raise ValueError(f"i_offset: no population {name!r}")
        a = np.asarray(raw)
        if a.dtype.kind not in "iu" or a.shape != (batch, pops[name].size):
            raise ValueError(
                f"i_offset[{name!r}]: expected integer raw bits of shape {(batch, pops[name].size)}, got {a.dtype} "
                f"{a.shape}"
            )
        if a.size and (int(a.min()) < s1615.INT32_MIN or int(a.max()) > s1615.INT32_MAX):
            raise ValueError(f"i_offset[{name!r}]: raw bits outside int32")
        offsets[name] = a.astype(np.int64)
    counts = {n: np.zeros((batch, p.size), np.int64) for n, p in pops.items()}
    count_at, v_at = {int(n) for n in count_ticks}, {int(n) for n in v_ticks}
    if any(n < 0 or n > steps for n in count_at | v_at):
        raise ValueError(f"count_ticks and v_ticks must be within 0..{steps}")
    checkpoint_counts = {0: {n: c.copy() for n, c in counts.items()}} if 0 in count_at else {}
    checkpoint_v = {0: {n: v[n].astype(np.int32) for n in rec_v}} if 0 in v_at else {}

    for t in range(steps):
        fired: dict[str, np.ndarray] = {}
        for name, p in pops.items():
            # 1. transfer this tick's slots into the synapse states
            slot = t % ring[name].shape[1]
            for r, shift in ((0, p.shift_exc), (1, p.shift_inh)):
                acc = ring[name][r, slot]
                if not acc.any():
                    continue
                saturated[name] += int(np.count_nonzero(acc > s1615.WEIGHT_WORD_MAX))
                word = np.minimum(acc, s1615.WEIGHT_WORD_MAX)
                value = _wrap(word << shift)
                if p.model == "IF_curr_exp":
                    value = _decay(value, p.init_exc if r == 0 else p.init_inh)
                isyn[name][r] = _wrap(isyn[name][r] + value)
                acc[...] = 0
            # 2. record V before the update
            if name in rec_v:
                out_v[name][:, t] = v[name]
            # 3. input type
            exc, inh = isyn[name]
            if p.model == "IF_curr_delta":
                exc = _mul(exc, p.input_scale)
                inh = _mul(inh, p.input_scale)
            # 4. LIF update outside the refractory period
            vm = v[name]
            active = refract[name] <= 0
            current = _wrap(exc - inh + offsets[name])
            alpha = _wrap(_mul(current, p.r_membrane) + p.v_rest)
            updated = _wrap(alpha - _mul(p.exp_tc, _wrap(alpha - vm)))
            vm = np.where(active, updated, vm)
            timer = np.where(active, refract[name], refract[name] - 1)
            # 5. threshold, reset
            spike = vm >= p.v_thresh
            v[name] = np.where(spike, p.v_reset, vm)
            refract[name] = np.where(spike, p.t_refract, timer)
            fired[name] = spike
            counts[name] += spike
            if name in rec_spikes:
                out_spikes[name][:, t] = spike
            # 6. shaping
            if p.model == "IF_curr_exp":
                isyn[name] = [_decay(isyn[name][0], p.decay_exc), _decay(isyn[name][1], p.decay_inh)]
            else:
                isyn[name] = [np.zeros_like(exc), np.zeros_like(inh)]
        if t + 1 in count_at:
            checkpoint_counts[t + 1] = {n: c.copy() for n, c in counts.items()}
        if t + 1 in v_at:
            checkpoint_v[t + 1] = {n: v[n].astype(np.int32) for n in rec_v}
        # 7. this tick's spikes into the slots of tick t + delay
        for prj, r in zip(projections, receptor_index):
            src = fired[prj.pre] if prj.pre in fired else sources[prj.pre][:, t]
            if not src.any():
                continue
            buf = ring[prj.post]
            buf[r, (t + prj.delay) % buf.shape[1]] += prj.sums(src, sizes[prj.post])

    final = {
        n: LifState(
            v=v[n].astype(np.int32),
            refract_timer=refract[n].astype(np.int32),
            isyn_exc=isyn[n][0].astype(np.int32),
            isyn_inh=isyn[n][1].astype(np.int32),
        )
        for n in pops
    }
    return EmulatorResult(
        spikes=out_spikes,
        v=out_v,
        final=final,
        saturated_slots=saturated,
        counts=counts,
        checkpoint_counts=checkpoint_counts,
        checkpoint_v=checkpoint_v,
    )
