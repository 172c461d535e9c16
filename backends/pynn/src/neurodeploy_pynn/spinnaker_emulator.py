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
from dataclasses import dataclass
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
    """Synapses from ``pre`` (a population or an input) to population ``post``: ``words`` (n_pre, n_post), 16-bit
    weight words (0 = no synapse; :func:`neurodeploy_pynn.s1615.weight_words` makes them from weights), all on one
    ``receptor`` ("excitatory" or "inhibitory") with one ``delay`` in ticks (>= 1)."""

    pre: str
    post: str
    words: Any
    receptor: str = "excitatory"
    delay: int = 1

    def __post_init__(self) -> None:
        w = np.asarray(self.words)
        if w.dtype.kind == "b" or w.dtype.kind not in "iu" or w.ndim != 2:
            raise TypeError(f"projection {self.pre}->{self.post}: words must be a 2-D integer array")
        if w.size and (int(w.min()) < 0 or int(w.max()) > s1615.WEIGHT_WORD_MAX):
            raise ValueError(f"projection {self.pre}->{self.post}: words must be in [0, 0xFFFF]")
        if self.receptor not in RECEPTORS:
            raise ValueError(f"projection {self.pre}->{self.post}: receptor must be one of {RECEPTORS}")
        if not isinstance(self.delay, (int, np.integer)) or isinstance(self.delay, bool) or self.delay < 1:
            raise ValueError(f"projection {self.pre}->{self.post}: delay must be an integer >= 1 (ticks)")
        w = w.astype(np.int64)
        w.setflags(write=False)
        object.__setattr__(self, "words", w)
        object.__setattr__(self, "delay", int(self.delay))


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
    ring-buffer slots (sample, receptor, neuron, tick) were saturated at 0xFFFF."""

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray]
    final: dict[str, LifState]
    saturated_slots: dict[str, int]


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
) -> EmulatorResult:
    """Run ``steps`` ticks of the network for a batch of samples.

    ``inputs[name]``: binary (batch, steps, n) spike trains of spike-source inputs, a spike at [b, t, i] sent in
    tick t. ``steps`` and ``batch`` default to the inputs' shape (they are required without inputs). Every sample
    starts from the populations' initial values with empty ring buffers. ``record_spikes`` / ``record_v``: True,
    False or the names of the populations to record."""
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
        if prj.words.shape != (sizes[prj.pre], sizes[prj.post]):
            raise ValueError(
                f"projection {prj.pre}->{prj.post}: words have shape {prj.words.shape}, expected "
                f"{(sizes[prj.pre], sizes[prj.post])}"
            )
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
    weights = [prj.words.astype(np.float64) for prj in projections]
    receptor_index = [RECEPTORS.index(prj.receptor) for prj in projections]

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
            current = _wrap(exc - inh + p.i_offset)
            alpha = _wrap(_mul(current, p.r_membrane) + p.v_rest)
            updated = _wrap(alpha - _mul(p.exp_tc, _wrap(alpha - vm)))
            vm = np.where(active, updated, vm)
            timer = np.where(active, refract[name], refract[name] - 1)
            # 5. threshold, reset
            spike = vm >= p.v_thresh
            v[name] = np.where(spike, p.v_reset, vm)
            refract[name] = np.where(spike, p.t_refract, timer)
            fired[name] = spike
            if name in rec_spikes:
                out_spikes[name][:, t] = spike
            # 6. shaping
            if p.model == "IF_curr_exp":
                isyn[name] = [_decay(isyn[name][0], p.decay_exc), _decay(isyn[name][1], p.decay_inh)]
            else:
                isyn[name] = [np.zeros_like(exc), np.zeros_like(inh)]
        # 7. this tick's spikes into the slots of tick t + delay
        for prj, w, r in zip(projections, weights, receptor_index):
            if prj.pre in fired:
                src = fired[prj.pre]
                if not src.any():
                    continue
                src = src.astype(np.float64)
            else:
                src = sources[prj.pre][:, t]
                if not src.any():
                    continue
            # exact: 0/1 times words below 2**16, summed over fewer than 2**37 sources, stays below 2**53
            buf = ring[prj.post]
            buf[r, (t + prj.delay) % buf.shape[1]] += (src @ w).astype(np.int64)

    final = {
        n: LifState(
            v=v[n].astype(np.int32),
            refract_timer=refract[n].astype(np.int32),
            isyn_exc=isyn[n][0].astype(np.int32),
            isyn_inh=isyn[n][1].astype(np.int32),
        )
        for n in pops
    }
    return EmulatorResult(spikes=out_spikes, v=out_v, final=final, saturated_slots=saturated)
