"""A batched numpy emulator of sPyNNaker 1!7.4.1's ``IF_curr_exp`` and ``IF_curr_delta`` neurons, in its ARM arithmetic.

The network: :class:`LifPopulation` s (state and constants as s16.15 raw bits, see :mod:`neurodeploy_pynn.s1615`),
:class:`Projection` s (16-bit weight words from a population or a spike-source input to a population, as a dense
matrix or a list of synapses, one receptor, one integer delay >= 1 in ticks), and spike-source inputs given as
binary arrays (batch, steps, n). :func:`run` steps all of it over a batch of samples at once, vectorized over
samples and neurons (loops over ticks, populations and projections, and over samples only where the numpy
gather sums a projection's synapse events), with per-sample offset currents where given, and returns spike
counts per neuron, also at chosen ticks, besides the per-tick recordings.

State is held as int32 raw bits, whose adds and subtracts wrap as the ARM's do; multiplies go through int64 and
wrap on the store. A tick's spikes are delivered in time proportional to their synapses (a list compressed by
presynaptic neuron, gathered with numpy or walked by a loop compiled with numba when it is installed,
:mod:`neurodeploy_pynn._compiled`), or as a float64 matrix product where that is cheaper; all paths give the
same integers.

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
qemu-arm, on seeded random networks including saturated slots, wrapped inputs and refractory periods;
``test_spinnaker_lists.py`` runs the same networks with their matrices as shuffled connection lists (pairs split
into several synapses) on every delivery path, against the matrices and against the ARM reference, and checks
per-sample offsets against single-sample runs and counts and checkpoints against the per-tick recordings.

Not modelled: spikes arriving late (sPyNNaker's colour-delay skip), sub-steps (``n_steps_per_timestep`` > 1),
current sources, conductance-based models, weights generated on the machine (``synapse_expander``, which rounds
differently at ties: build words with :func:`neurodeploy_pynn.s1615.weight_words`), and packet loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy_pynn import _compiled, s1615

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


@dataclass(frozen=True)
class SynapseTable:
    """A projection's synapses compressed by presynaptic neuron (CSR), the form :func:`run` delivers spikes from:
    the synapses of pre neuron j are ``post[indptr[j]:indptr[j + 1]]`` (intp, ascending), with words
    ``words[indptr[j]:indptr[j + 1]]`` (int64). Synapses that repeat a (pre, post) pair are merged into one
    carrying the sum of their words (exact: the slot receives the same sum either way and saturates once, at
    0xFFFF, on the total), so a merged word can exceed 0xFFFF; zero words are dropped. ``indptr`` covers the pre
    neurons up to the highest one with a synapse (neurons beyond it have none). ``max_in``: the largest sum of
    words into one post neuron, an upper bound on what one tick's spikes (at most one per pre neuron and sample)
    add to a slot entry."""

    indptr: np.ndarray
    post: np.ndarray
    words: np.ndarray
    max_in: float

    @classmethod
    def from_list(cls, pre_index: np.ndarray, post_index: np.ndarray, words: np.ndarray) -> SynapseTable:
        """The table of a synapse list (int64 arrays, indices >= 0, words in [0, 0xFFFF]), in any order."""
        keep = words > 0
        pre, post, w = pre_index[keep], post_index[keep], words[keep].astype(np.float64)
        if not pre.size:
            return cls(np.zeros(1, np.int64), np.zeros(0, np.intp), np.zeros(0, np.int64), 0.0)
        n_post = int(post.max()) + 1
        key = pre * n_post + post  # indices are below 2**31: no overflow
        unique, inverse = np.unique(key, return_inverse=True)  # sorted by pre, then post
        merged = np.bincount(inverse.reshape(-1), w, minlength=len(unique))  # exact: integer sums below 2**53
        pre_u = unique // n_post
        indptr = np.zeros(int(pre_u[-1]) + 2, np.int64)
        np.cumsum(np.bincount(pre_u), out=indptr[1:])
        max_in = float(np.bincount(post, w).max())
        return cls(indptr, (unique - pre_u * n_post).astype(np.intp), merged.astype(np.int64), max_in)

    @classmethod
    def from_matrix(cls, words: np.ndarray) -> SynapseTable:
        """The table of a dense (n_pre, n_post) matrix of words (0 = no synapse)."""
        pre, post = np.nonzero(words)
        indptr = np.zeros(len(words) + 1, np.int64)
        np.cumsum(np.count_nonzero(words, axis=1), out=indptr[1:])
        max_in = float(words.sum(axis=0, dtype=np.float64).max()) if words.size else 0.0
        return cls(indptr, post.astype(np.intp), words[pre, post].astype(np.int64), max_in)


def _check_words(words: np.ndarray, where: str) -> None:
    if words.size and (int(words.min()) < 0 or int(words.max()) > s1615.WEIGHT_WORD_MAX):
        raise ValueError(f"{where}: words must be in [0, 0xFFFF]")


def _integer_array(value: Any, ndim: int, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.size == 0 and a.ndim == ndim:
        return a.astype(np.int64)  # an empty list ([] is float64)
    if a.dtype.kind == "b" or a.dtype.kind not in "iu" or a.ndim != ndim:
        raise TypeError(f"{what} must be a {ndim}-D integer array, got {a.dtype} of shape {a.shape}")
    return a


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from ``pre`` (a population or an input) to population ``post``, all on one ``receptor``
    ("excitatory" or "inhibitory") with one ``delay`` in ticks (>= 1). Exactly one of:

    - ``words``: an (n_pre, n_post) integer matrix of 16-bit weight words, 0 = no synapse;
    - ``connections``: ``(pre_index, post_index, words)``, three 1-D integer arrays of equal length, one entry
      per synapse (PyNN's ``FromListConnector``). A (pre, post) pair may repeat: each synapse adds its word to
      the slot, as sPyNNaker's synaptic matrix holds one word per synapse.

    Words are in [0, 0xFFFF] (:func:`neurodeploy_pynn.s1615.weight_words` makes them from weights). Both forms
    are kept as read-only int64 arrays (``connections`` in the order given) and compressed by presynaptic neuron
    into :attr:`synapses` (:class:`SynapseTable`), from which :func:`run` delivers a tick's spikes in time
    proportional to their synapses, or as a matrix product where that is cheaper. Indices must be >= 0 here;
    :func:`run` checks them against the sizes of the populations or inputs they join."""

    pre: str
    post: str
    words: Any = None
    receptor: str = "excitatory"
    delay: int = 1
    connections: Any = None
    synapses: SynapseTable = field(init=False, repr=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        where = f"projection {self.pre}->{self.post}"
        if self.words is not None and self.connections is not None:
            raise ValueError(f"{where}: give words (a matrix) or connections (a synapse list), not both")
        if self.words is None and self.connections is None:
            raise ValueError(f"{where}: neither words (a matrix) nor connections (a synapse list) given")
        if self.receptor not in RECEPTORS:
            raise ValueError(f"{where}: receptor must be one of {RECEPTORS}, got {self.receptor!r}")
        if not isinstance(self.delay, (int, np.integer)) or isinstance(self.delay, bool) or self.delay < 1:
            raise ValueError(f"{where}: delay must be an integer >= 1 (ticks), got {self.delay!r}")
        object.__setattr__(self, "delay", int(self.delay))
        if self.words is not None:
            w = _integer_array(self.words, 2, f"{where}: words")
            _check_words(w, where)
            w = w.astype(np.int64)
            w.setflags(write=False)
            object.__setattr__(self, "words", w)
            object.__setattr__(self, "synapses", SynapseTable.from_matrix(w))
            return
        listed = self.connections
        if isinstance(listed, (str, bytes)) or not hasattr(listed, "__len__") or len(listed) != 3:
            raise TypeError(f"{where}: connections must be three 1-D arrays (pre_index, post_index, words)")
        arrays = []
        for what, a in zip(("pre_index", "post_index", "words"), listed):
            a = _integer_array(a, 1, f"{where}: connections {what}")
            if len(a) != len(listed[0]):
                raise ValueError(f"{where}: connections pre_index, post_index and words differ in length")
            arrays.append(a)
        pre_index, post_index, words = arrays
        _check_words(words, where)
        for what, a in (("pre_index", pre_index), ("post_index", post_index)):
            if a.size and (int(a.min()) < 0 or int(a.max()) > s1615.INT32_MAX):
                raise ValueError(f"{where}: connections {what} must be >= 0 and below 2**31")
        arrays = [a.astype(np.int64) for a in arrays]
        for a in arrays:
            a.setflags(write=False)
        object.__setattr__(self, "connections", tuple(arrays))
        object.__setattr__(self, "synapses", SynapseTable.from_list(*arrays))

    def check_sizes(self, n_pre: int, n_post: int) -> None:
        """Raise ValueError, naming the projection, unless its synapses fit ``n_pre`` -> ``n_post`` neurons."""
        where = f"projection {self.pre}->{self.post}"
        if self.words is not None:
            if self.words.shape != (n_pre, n_post):
                raise ValueError(f"{where}: words have shape {self.words.shape}, expected {(n_pre, n_post)}")
            return
        pre_index, post_index, _ = self.connections
        ends = (("pre_index", pre_index, self.pre, n_pre), ("post_index", post_index, self.post, n_post))
        for what, a, name, n in ends:
            if a.size and int(a.max()) >= n:
                bad = int(np.argmax(a >= n))
                raise ValueError(
                    f"{where}: a connection index is beyond the populations: {what}[{bad}] = {int(a[bad])}, "
                    f"{name!r} has {n} neurons"
                )


@dataclass(frozen=True)
class LifState:
    """A population's state after the last tick, raw bits, each (batch, size) int32: ``v``, ``refract_timer``
    (ticks), ``isyn_exc``, ``isyn_inh`` (the synapse states after shaping: 0 for delta synapses)."""

    v: np.ndarray
    refract_timer: np.ndarray
    isyn_exc: np.ndarray
    isyn_inh: np.ndarray


@dataclass(frozen=True)
class EmulatorResult:
    """What :func:`run` returns. Tick t is the (t + 1)-th tick, t = 0 .. steps - 1; "after n ticks" is the state
    once ticks 0 .. n - 1 have run (n = 0: the initial state).

    - ``spikes[name]``: bool (batch, steps, size), whether each neuron spiked in tick t, for the populations in
      ``record_spikes``.
    - ``v[name]``: int32 raw (batch, steps, size), V at the start of tick t (before its update: what sPyNNaker's
      ``record("v")`` returns for tick t), for the populations in ``record_v``.
    - ``final[name]``: every population's state after the last tick (:class:`LifState`).
    - ``saturated_slots[name]``: how many ring-buffer slots (sample, receptor, neuron, tick) held more than
      0xFFFF and were saturated.
    - ``counts[name]``: int64 (batch, size), every population's spikes per neuron over all ``steps`` ticks.
    - ``checkpoint_counts[n][name]``: int64 (batch, size), for each n in ``count_ticks`` and every population,
      the spikes per neuron after n ticks (in ticks 0 .. n - 1).
    - ``checkpoint_v[n][name]``: int32 raw (batch, size), for each n in ``v_ticks`` and the populations in
      ``record_v``, V after n ticks: after tick n - 1's update, threshold and reset (a neuron that spiked in it
      holds V_reset), which is also V at the start of tick n (``v[name][:, n]`` when n < steps)."""

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


def _ticks(ticks: Iterable[int], steps: int, what: str) -> set[int]:
    chosen = set()
    for n in ticks:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"{what}: tick counts must be integers, got {n!r}")
        if not 0 <= n <= steps:
            raise ValueError(f"{what}: tick count {int(n)} is outside 0..{steps}")
        chosen.add(int(n))
    return chosen


def _constant(a: np.ndarray, dtype: type) -> Any:
    """A per-neuron constant as a scalar of ``dtype`` where every neuron has the same value, else an array."""
    return dtype(a[0]) if (a == a[0]).all() else a.astype(dtype)


def _is_zero(c: Any) -> bool:
    return isinstance(c, np.integer) and c == 0


# A tick's spikes go to a projection's targets synapse by synapse (time in proportion to the synapses of the
# neurons that spiked) or, where the projection has a matrix, as a float64 matrix product (time in proportion to
# batch x n_pre x n_post), whichever is cheaper. A projection has a matrix when it was given one (``words``) or
# its connection list spans at most _MATRIX_ENTRIES (pre, post) entries. One synapse event costs about as much
# as _EVENT_COST multiply-adds of the product (measured with OpenBLAS on x86-64: about 0.02 ns per multiply-add,
# 3-5 ns per event gathered with numpy, about 1 ns walked by the compiled loop). Every path gives the same
# integers.
_MATRIX_ENTRIES = 1 << 22
_EVENT_COST = {"numpy": 150.0, "compiled": 40.0}


class _Neurons:
    """One population's state and work buffers during :func:`run`: int32 raw bits (batch, size), which wrap on
    add and subtract as the ARM does; a multiply goes through an int64 buffer and wraps on the store back."""

    def __init__(self, p: LifPopulation, batch: int, depth: int, offset: np.ndarray) -> None:
        self.p = p
        self.delta = p.model == "IF_curr_delta"
        shape = (batch, p.size)

        def start(a: np.ndarray) -> np.ndarray:
            state = np.empty(shape, np.int32)  # C order: the flat views below are views
            state[...] = a
            return state

        self.v = start(p.v_init)
        self.refract = start(p.refract_timer_init)
        # refract_timer stays <= 0 when it starts there and T_refract <= 0: every tick then updates V
        self.refractory = bool((p.t_refract > 0).any() or (p.refract_timer_init > 0).any())
        self.isyn = [start(p.isyn_exc_init), start(p.isyn_inh_init)]
        # zero[r]: synapse state r is 0 everywhere (its buffer may hold stale values, and is written, not added
        # to, by the next transfer)
        self.zero = [not p.isyn_exc_init.any(), not p.isyn_inh_init.any()]
        self.shift = (p.shift_exc, p.shift_inh)
        self.depth = depth
        # ring[r, slot]: the unsaturated sums of the words that arrived for the tick of that slot, valid where
        # filled[r][slot] (the first delivery to an unfilled slot overwrites it); bound[r][slot]: an upper bound
        # of a filled slot's entries
        self.ring = np.zeros((2, depth, *shape), np.int64)
        self.filled = [[False] * depth, [False] * depth]
        self.bound = [[0.0] * depth, [0.0] * depth]
        self.saturated = 0
        self.counts = np.zeros(shape, np.int32)
        self.spike = np.zeros(shape, bool)
        self.t64 = np.empty(shape, np.int64)
        self.t32 = np.empty(shape, np.int32)
        self.cur = np.empty(shape, np.int32)
        self.inactive = np.empty(shape, bool) if self.refractory else None
        self.offset = offset.astype(np.int32) if offset.ndim == 2 else _constant(offset, np.int32)
        self.v_rest = _constant(p.v_rest, np.int32)
        self.v_reset = _constant(p.v_reset, np.int32)
        self.v_thresh = _constant(p.v_thresh, np.int32)
        self.t_refract = _constant(p.t_refract, np.int32)
        self.r_membrane = _constant(p.r_membrane, np.int64)
        self.exp_tc = _constant(p.exp_tc, np.int64)
        self.scale: Any = None
        if self.delta:
            scale = _constant(p.input_scale, np.int64)
            # a multiply by 1.0 (raw 32768: ts = 1 ms) is the identity on every int32
            self.scale = None if isinstance(scale, np.integer) and scale == s1615.ONE else scale
        else:
            self.init = (_constant(p.init_exc, np.int64), _constant(p.init_inh, np.int64))
            self.decay = (_constant(p.decay_exc, np.int64), _constant(p.decay_inh, np.int64))
        self.rest_alpha: np.ndarray | None = None  # alpha with both synapse states 0, computed when first needed

    def _mul(self, x: np.ndarray, c: Any, out: np.ndarray) -> np.ndarray:
        """``out = x * c``: the ARM accum multiply (floor, wrap) of int32 x by a raw constant."""
        np.multiply(x, c, out=self.t64, dtype=np.int64)
        return np.right_shift(self.t64, 15, out=out, casting="unsafe")

    def tick(self, t: int, record_v: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Steps 1-6 of tick t (module docstring). Returns the spikes as bool (batch, size) and as the sorted flat
        indices of the neurons that spiked (sample * size + neuron); both are reused buffers or fresh arrays
        valid until the next tick."""
        slot = t % self.depth
        # 1. transfer: input = wrap(min(sum, 0xFFFF) << shift), exponential synapses decay_s1615(input, init)
        for r in (0, 1):
            if not self.filled[r][slot]:
                continue
            acc = self.ring[r, slot]
            if self.bound[r][slot] > s1615.WEIGHT_WORD_MAX and acc.max() > s1615.WEIGHT_WORD_MAX:
                self.saturated += int(np.count_nonzero(acc > s1615.WEIGHT_WORD_MAX))
                np.minimum(acc, s1615.WEIGHT_WORD_MAX, out=acc)
            self.filled[r][slot] = False
            self.bound[r][slot] = 0.0
            target = self.isyn[r] if self.zero[r] else self.t32
            np.left_shift(acc, self.shift[r], out=target, casting="unsafe")  # below 2**47, wrapped to int32
            if not self.delta:
                np.multiply(target, self.init[r], out=self.t64, dtype=np.int64)  # |product| < 2**63
                np.right_shift(self.t64, 32, out=target, casting="unsafe")  # fits int32
            if not self.zero[r]:
                np.add(self.isyn[r], target, out=self.isyn[r])
            self.zero[r] = False
        # 2. V before the update
        if record_v is not None:
            record_v[:, t] = self.v
        # 3-4. input type; I = exc - inh + I_offset; alpha = I * R + V_rest
        if self.zero[0] and self.zero[1]:
            if self.rest_alpha is None:
                offset = np.asarray(self.offset, np.int64)
                rest = _wrap(_mul(offset, np.asarray(self.r_membrane, np.int64)) + self.v_rest)
                self.rest_alpha = rest.astype(np.int32)
            alpha = self.rest_alpha
        else:
            current = self.cur
            exc = None if self.zero[0] else self._input(0, current)
            inh = None if self.zero[1] else self._input(1, self.t32)
            if exc is None:
                assert inh is not None
                np.negative(inh, out=current)
            elif inh is None:
                if exc is not current:
                    np.copyto(current, exc)
            else:
                np.subtract(exc, inh, out=current)
            if not _is_zero(self.offset):
                np.add(current, self.offset, out=current)
            alpha = self._mul(current, self.r_membrane, current)
            if not _is_zero(self.v_rest):
                np.add(alpha, self.v_rest, out=alpha)
        # 4. V = alpha - exp_TC * (alpha - V) where refract_timer <= 0, else refract_timer -= 1 and V stays
        step = np.subtract(alpha, self.v, out=self.t32)
        self._mul(step, self.exp_tc, step)
        if not self.refractory:
            np.subtract(alpha, step, out=self.v)
        else:
            updated = np.subtract(alpha, step, out=step)
            inactive = np.greater(self.refract, 0, out=self.inactive)
            # V = updated + inactive * (V - updated): exact in wrapping int32 arithmetic
            np.subtract(self.v, updated, out=self.v)
            np.multiply(self.v, inactive, out=self.v)
            np.add(self.v, updated, out=self.v)
            np.subtract(self.refract, inactive, out=self.refract)
        # 5. threshold (signed compare of raw bits), reset
        spike = np.greater_equal(self.v, self.v_thresh, out=self.spike)
        fired = np.flatnonzero(spike)
        size = self.p.size
        self.v.reshape(-1)[fired] = self.v_reset if isinstance(self.v_reset, np.integer) else self.v_reset[fired % size]
        if self.refractory:
            t_refract = self.t_refract
            self.refract.reshape(-1)[fired] = (
                t_refract if isinstance(t_refract, np.integer) else t_refract[fired % size]
            )
        self.counts.reshape(-1)[fired] += 1  # the indices are distinct
        # 6. shaping: exponential I = decay_s1615(I, decay); delta I = 0
        for r in (0, 1):
            if self.zero[r]:
                continue
            if self.delta:
                self.zero[r] = True
            else:
                np.multiply(self.isyn[r], self.decay[r], out=self.t64, dtype=np.int64)
                np.right_shift(self.t64, 32, out=self.isyn[r], casting="unsafe")
        return spike, fired

    def _input(self, r: int, out: np.ndarray) -> np.ndarray:
        """Synapse state r as the LIF takes it: delta inputs times ``kdivk(1.0, ts)`` (into ``out``), current
        inputs as they are."""
        if self.scale is None:
            return self.isyn[r]
        return self._mul(self.isyn[r], self.scale, out)

    def state(self) -> LifState:
        isyn = [np.zeros_like(s) if z else s.copy() for s, z in zip(self.isyn, self.zero)]
        return LifState(v=self.v.copy(), refract_timer=self.refract.copy(), isyn_exc=isyn[0], isyn_inh=isyn[1])


class _Scratch:
    """Work buffers reused from tick to tick (a fresh array of 10**7 entries costs more in page faults than the
    arithmetic done on it)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype: type) -> np.ndarray:
        a = self.buffers.get(name)
        if a is None or len(a) < n:
            a = self.buffers[name] = np.empty(max(n, 2 * len(a) if a is not None else n), dtype)
        return a[:n]


class _Delivery:
    """A projection's spike delivery during :func:`run`."""

    def __init__(self, prj: Projection, n_pre: int, n_post: int, batch: int, scratch: _Scratch) -> None:
        self.scratch = scratch
        table = prj.synapses
        self.pre, self.delay = prj.pre, prj.delay
        self.receptor = RECEPTORS.index(prj.receptor)
        self.n_post, self.batch = n_post, batch
        # indptr over all n_pre neurons (those past the table's end have no synapses)
        self.indptr = np.concatenate([table.indptr, np.full(n_pre + 1 - len(table.indptr), table.indptr[-1])])
        self.post, self.words, self.max_in = table.post, table.words, table.max_in
        self.weights = table.words.astype(np.float64)  # np.bincount's weights
        self.matrix: np.ndarray | None = None
        if prj.words is not None:
            self.matrix = prj.words.astype(np.float64)
        elif n_pre * n_post <= _MATRIX_ENTRIES:
            self.matrix = np.zeros((n_pre, n_post))
            pre = np.repeat(np.arange(n_pre), np.diff(self.indptr))
            self.matrix[pre, self.post] = self.weights  # the table's (pre, post) pairs are distinct
        self.entries = batch * n_pre * n_post

    def _gather(
        self, sample: np.ndarray, start: np.ndarray, length: np.ndarray, total: int, out: np.ndarray, fresh: bool
    ) -> None:
        """The numpy form of :meth:`add`: the synapse ranges [start, start + length) of the active (sample,
        neuron) pairs (sorted by sample) laid end to end as one index array, the synapses' post neurons and
        words gathered with it, and each sample's events summed by np.bincount."""
        keep = length > 0
        if not keep.all():
            sample, start, length = sample[keep], start[keep], length[keep]
        ends = np.cumsum(length)
        # index = cumsum(step): step 1 within a range, a jump to the range's start where one begins
        step = self.scratch.get("step", total, np.intp)
        step.fill(1)
        jump = start.copy()
        jump[1:] -= start[:-1] + length[:-1] - 1
        step[ends - length] = jump
        index = np.cumsum(step, out=self.scratch.get("index", total, np.intp))
        # mode="clip": the indices are in range by construction, and "raise" with out= copies
        post = np.take(self.post, index, out=step, mode="clip")
        words = np.take(self.weights, index, out=self.scratch.get("words", total, np.float64), mode="clip")
        # sample b's events are [edge[b], edge[b + 1])
        edge = np.concatenate(([0], ends))[np.searchsorted(sample, np.arange(self.batch + 1))]
        for b in np.flatnonzero(edge[1:] > edge[:-1]):
            lo, hi = edge[b], edge[b + 1]
            summed = np.bincount(post[lo:hi], words[lo:hi], minlength=self.n_post)  # exact below 2**53
            if fresh:
                np.copyto(out[b], summed, casting="unsafe")
            else:
                np.add(out[b], summed, out=out[b], casting="unsafe")
        if fresh:
            out[edge[1:] == edge[:-1]] = 0

    def add(self, spikes: np.ndarray, active: tuple[np.ndarray, np.ndarray], out: np.ndarray, fresh: bool) -> bool:
        """Add to ``out`` (int64 (batch, n_post)), per sample, the words of the synapses of the neurons that
        spiked (``spikes`` 0/1 (batch, n_pre); ``active``: its nonzero (sample, neuron) pairs); ``fresh``: ``out``
        holds stale values and is to be overwritten. Returns False, leaving ``out`` alone, when those neurons
        have no synapses. Every path computes the same integers: float64 sums of integer words stay exact below
        2**53."""
        sample, neuron = active
        start = self.indptr[neuron]
        length = self.indptr[neuron + 1] - start
        total = int(length.sum())
        if not total:
            return False
        kernels = _compiled.kernels()
        cost = _EVENT_COST["numpy" if kernels is None else "compiled"]
        if self.matrix is not None and total * cost > self.entries:
            summed = spikes.astype(np.float64) @ self.matrix
            if fresh:
                np.copyto(out, summed, casting="unsafe")
            else:
                np.add(out, summed, out=out, casting="unsafe")
        elif kernels is not None:
            if fresh:
                out.fill(0)
            kernels["walk"](spikes, self.indptr, self.post, self.words, out)
        else:
            self._gather(sample, start, length, total, out, fresh)
        return True


@dataclass(frozen=True)
class RunSetup:
    """:func:`run`'s arguments checked and resolved (shared by the engines): the spike-source inputs as bool
    (batch, steps', n) arrays, ``steps``, ``batch``, the populations by name, every population's and input's size,
    the population names in order, the recorded populations, the tick counts to keep, the largest delay into each
    population and each population's ``i_offset`` (per neuron, or per sample (batch, size))."""

    sources: dict[str, np.ndarray]
    steps: int
    batch: int
    pops: dict[str, LifPopulation]
    sizes: dict[str, int]
    names: list[str]
    rec_spikes: set[str]
    rec_v: set[str]
    count_at: set[int]
    v_at: set[int]
    max_delay: dict[str, int]
    offsets: dict[str, np.ndarray]


def _setup(
    populations: Sequence[LifPopulation],
    projections: Sequence[Projection],
    inputs: Mapping[str, Any] | None,
    steps: int | None,
    batch: int | None,
    record_spikes: bool | Iterable[str],
    record_v: bool | Iterable[str],
    i_offset: Mapping[str, Any] | None,
    count_ticks: Iterable[int],
    v_ticks: Iterable[int],
) -> RunSetup:
    """Check :func:`run`'s arguments, refusing what it refuses, before any work."""

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
        sources[name] = a.astype(bool)
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
    count_at = _ticks(count_ticks, steps, "count_ticks")
    v_at = _ticks(v_ticks, steps, "v_ticks")
    if v_at and not rec_v:
        raise ValueError("v_ticks: V is kept for the populations in record_v, and there are none")

    offsets = {n: p.i_offset for n, p in pops.items()}
    for name, raw in (i_offset or {}).items():
        if name not in pops:
            raise ValueError(f"i_offset: no population {name!r}")
        a = np.asarray(raw)
        if a.dtype.kind == "b" or a.dtype.kind not in "iu":
            raise TypeError(f"i_offset[{name!r}]: expected integer raw bits (s16.15), got dtype {a.dtype}")
        if a.shape != (batch, pops[name].size):
            raise ValueError(
                f"i_offset[{name!r}]: expected integer raw bits of shape {(batch, pops[name].size)} (batch, size), "
                f"got shape {a.shape}"
            )
        if a.size and (int(a.min()) < s1615.INT32_MIN or int(a.max()) > s1615.INT32_MAX):
            raise ValueError(f"i_offset[{name!r}]: raw bits outside int32")
        offsets[name] = a

    return RunSetup(
        sources, steps, batch, pops, sizes, pop_names, rec_spikes, rec_v, count_at, v_at, max_delay, offsets
    )


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
    """Run ``steps`` ticks of the network for a batch of samples; see :class:`EmulatorResult` for what comes back
    and at which instant.

    ``inputs[name]``: binary (batch, steps, n) spike trains of spike-source inputs, a spike at [b, t, i] sent in
    tick t. ``steps`` and ``batch`` default to the inputs' shape (they are required without inputs). Every sample
    starts from the populations' initial values with empty ring buffers. ``record_spikes`` / ``record_v``: True,
    False or the names of the populations whose spikes / V to keep per tick. ``i_offset[name]``: an integer
    (batch, size) array of s16.15 raw bits (int32 range) that replaces population ``name``'s ``i_offset`` for
    each sample (a converted network's input layer receives the image as a bias current). ``count_ticks``: tick
    counts n (0 <= n <= steps) after which to keep every population's spike counts; ``v_ticks``: tick counts
    after which to keep V of the ``record_v`` populations. Spike counts over all ticks are always returned."""
    s = _setup(populations, projections, inputs, steps, batch, record_spikes, record_v, i_offset, count_ticks, v_ticks)
    sources, steps, batch, pops, sizes = s.sources, s.steps, s.batch, s.pops, s.sizes
    pop_names, rec_spikes, rec_v, count_at, v_at = s.names, s.rec_spikes, s.rec_v, s.count_at, s.v_at
    max_delay, offsets = s.max_delay, s.offsets

    neurons = {n: _Neurons(p, batch, max_delay[n] + 1, offsets[n]) for n, p in pops.items()}
    scratch = _Scratch()
    deliveries = [_Delivery(prj, sizes[prj.pre], sizes[prj.post], batch, scratch) for prj in projections]
    targets = [neurons[prj.post] for prj in projections]
    out_spikes = {n: np.zeros((batch, steps, pops[n].size), dtype=bool) for n in rec_spikes}
    out_v = {n: np.zeros((batch, steps, pops[n].size), dtype=np.int32) for n in rec_v}
    checkpoint_counts: dict[int, dict[str, np.ndarray]] = {}
    checkpoint_v: dict[int, dict[str, np.ndarray]] = {}

    def checkpoint(n: int) -> None:
        if n in count_at:
            checkpoint_counts[n] = {k: s.counts.astype(np.int64) for k, s in neurons.items()}
        if n in v_at:
            checkpoint_v[n] = {k: neurons[k].v.copy() for k in pop_names if k in rec_v}

    checkpoint(0)
    for t in range(steps):
        ticked = {name: s.tick(t, out_v.get(name)) for name, s in neurons.items()}
        for name in rec_spikes:
            out_spikes[name][:, t] = ticked[name][0]
        checkpoint(t + 1)
        # 7. this tick's spikes into the slots of tick t + delay
        active: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per source: the (sample, neuron) pairs that spiked
        for d, target in zip(deliveries, targets):
            if d.pre in ticked:
                spikes, fired = ticked[d.pre]
            else:
                spikes = sources[d.pre][:, t]
                fired = None
            if d.pre not in active:
                fired = np.flatnonzero(spikes) if fired is None else fired
                active[d.pre] = np.divmod(fired, sizes[d.pre])
            if not len(active[d.pre][0]):
                continue
            r, slot = d.receptor, (t + d.delay) % target.depth
            if d.add(spikes, active[d.pre], target.ring[r, slot], fresh=not target.filled[r][slot]):
                target.filled[r][slot] = True
                # a neuron spikes at most once per sample and tick: no entry grows by more than max_in
                target.bound[r][slot] += d.max_in

    return EmulatorResult(
        spikes=out_spikes,
        v=out_v,
        final={n: s.state() for n, s in neurons.items()},
        saturated_slots={n: s.saturated for n, s in neurons.items()},
        counts={n: s.counts.astype(np.int64) for n, s in neurons.items()},
        checkpoint_counts=checkpoint_counts,
        checkpoint_v=checkpoint_v,
    )
