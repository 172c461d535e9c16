"""A batched numpy model of BrainScaleS-2's calibrated current-based LIF neurons (pynn-brainscales
``CalibHXNeuronCuba``), in the chip's hardware units, with 6-bit integer synapses and spike sources.

This is a *model* of analog circuits, not a bit-exact emulator: the chip integrates continuous voltages and
currents, and what it computes depends on its calibration, its fixed-pattern mismatch and its noise. The model
takes the calibrated parameters at face value and solves the LIF equations exactly between integration steps.

**Units.** Time in µs of hardware time (the analog network runs about 1000 times faster than biology). Voltages
(``v_rest``, ``v_reset``, ``v_thresh`` and the membrane V) in the calibrated hardware units pynn-brainscales
uses (CADC units). A synapse's strength is ``weight * gain`` with ``weight`` an integer 0..63 (6 bits; the
receptor carries the sign) and ``gain`` (per neuron and receptor) the membrane charge, in CADC units, that one
spike through a synapse of weight 1 deposits when there is no leak (on the chip the synaptic input strength is
set by calibration, e.g. ``i_synin_gm``; the model does not translate a gain into such a setting).

**Equations** (per neuron; receptor x in {exc, inh}):

    dV/dt   = -(V - v_rest) / tau_m + I_exc - I_inh
    dI_x/dt = -I_x / tau_syn_x
    a spike through a synapse of weight w at time t0:   I_x += w * gain_x / tau_syn_x
    V >= v_thresh at the end of an integration step:     a spike; V = v_reset, held there for tau_refrac

Between integration steps of ``dt`` = 1 / ``substeps`` µs the linear system is solved exactly:

    V(t + dt)   = v_rest + (V(t) - v_rest) a + I_exc(t) k_exc - I_inh(t) k_inh,   a = exp(-dt / tau_m)
    I_x(t + dt) = I_x(t) b_x,                                                   b_x = exp(-dt / tau_syn_x)
    k_x = tau_m tau_syn_x / (tau_m - tau_syn_x) (a - b_x)        (dt a where tau_m == tau_syn_x)

so a spike at t0 moves V by ``w * gain * K(t - t0)``, K(s) = tau_m / (tau_m - tau_syn) (exp(-s / tau_m) -
exp(-s / tau_syn)): towards the full charge ``w * gain``, less what the leak takes while the current flows, and
then back with the leak. Spikes add (the equations are linear). The threshold is compared once per integration
step (the chip compares continuously); a refractory neuron (``ceil(tau_refrac / dt)`` integration steps) is held
at ``v_reset`` while its synaptic currents decay, so their charge is lost. A neuron that is not ``spiking`` (a
readout) has no threshold.

**Arithmetic.** The weights are integers 0..63; the per-receptor sum of the weights of the synapses that spiked
into a neuron in one integration step is an exact integer (computed in float64, exact below 2**53), multiplied by
the neuron's gain once. The state (V, I) is float64.

**Timing.** Spike sources (the host's spike trains) emit at the start of µs step t, i.e. before integration step
``t * substeps``. A spike of an on-chip neuron in integration step n reaches its targets before step n + 1 (the
model's routing latency: one integration step).

**Noise**, both off by default (:class:`Noise`):

* fixed-pattern (``mismatch``, a relative standard deviation, and ``mismatch_seed``, the chip instance): every
  neuron's tau_m, tau_syn_exc, tau_syn_inh, gain_exc, gain_inh and threshold distance ``v_thresh - v_reset`` are
  multiplied by ``1 + mismatch * z`` (z standard normal, clipped to at least :data:`MISMATCH_FLOOR`), drawn once
  per chip instance: population k's six rows of z come from ``SeedSequence(mismatch_seed, spawn_key=(k,))`` in
  that order. The same seed gives the same chip.
* trial-to-trial (``membrane``, CADC units per sqrt(µs), and ``seed``): every integration step adds
  ``membrane * sqrt(dt) * z`` to V (a Wiener process), z from one stream per sample and population,
  ``SeedSequence(seed, spawn_key=(k, sample))`` with ``sample`` the sample's index in the data set, drawn row by
  row of the population's neurons: a sample's noise does not depend on its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

WEIGHT_BITS = 6
WEIGHT_MAX = (1 << WEIGHT_BITS) - 1
"""63: the largest weight of one synapse; the sign is the receptor's."""
RECEPTORS = ("excitatory", "inhibitory")
MISMATCH_FLOOR = 0.05
"""The smallest factor a mismatch draw may give a parameter (keeps time constants and gains positive)."""
NOISE_BLOCK = 64
"""Integration steps of trial-to-trial noise drawn per sample at once (the stream does not depend on it)."""


@dataclass
class Neurons:
    """One population of ``size`` neurons and its parameters, scalars or one value per neuron: time constants in
    µs, voltages in CADC units, gains in CADC units per weight LSB. ``spiking`` False: a leaky integrator whose
    threshold is never applied (a readout)."""

    name: str
    size: int
    tau_m: float | np.ndarray
    tau_syn_exc: float | np.ndarray
    tau_syn_inh: float | np.ndarray
    tau_refrac: float | np.ndarray
    v_rest: float | np.ndarray
    v_reset: float | np.ndarray
    v_thresh: float | np.ndarray
    gain_exc: float | np.ndarray
    gain_inh: float | np.ndarray
    spiking: bool = True

    def per_neuron(self, key: str) -> np.ndarray:
        return np.broadcast_to(np.asarray(getattr(self, key), np.float64), (self.size,)).copy()


@dataclass
class Source:
    """``size`` spike sources (PyNN's ``SpikeSourceArray``): their spikes come with the run, one bit per source and
    µs step."""

    name: str
    size: int


@dataclass
class Synapses:
    """Synapses of one receptor from ``pre`` (a :class:`Source` or :class:`Neurons` name) to ``post``: a connection
    list of flat indices and integer weights 0..63."""

    pre: str
    post: str
    receptor: str
    pre_index: np.ndarray
    post_index: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        if self.receptor not in RECEPTORS:
            raise ValueError(f"synapses {self.pre} -> {self.post}: receptor must be one of {RECEPTORS}")
        w = np.asarray(self.weight)
        if w.size and (w.dtype.kind not in "iu" or int(w.min()) < 0 or int(w.max()) > WEIGHT_MAX):
            raise ValueError(f"synapses {self.pre} -> {self.post}: weights must be integers 0..{WEIGHT_MAX}")


@dataclass(frozen=True)
class Noise:
    """Fixed-pattern mismatch (per chip instance) and trial-to-trial membrane noise (per run); see the module."""

    mismatch: float = 0.0
    mismatch_seed: int = 0
    membrane: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("mismatch", "membrane"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"noise {key} must be a finite number >= 0, got {value!r}")
        for key in ("mismatch_seed", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"noise {key} must be an integer >= 0, got {value!r}")


MISMATCHED = ("tau_m", "tau_syn_exc", "tau_syn_inh", "gain_exc", "gain_inh", "threshold")
"""The per-neuron quantities fixed-pattern mismatch scales, in the order of their random rows."""


def with_mismatch(populations: list[Neurons], mismatch: float, seed: int) -> list[Neurons]:
    """The populations of one chip instance: per neuron, each of :data:`MISMATCHED` times ``1 + mismatch * z``
    (``threshold``: the distance v_thresh - v_reset), z from ``SeedSequence(seed, spawn_key=(k,))`` for the k-th
    population. ``mismatch`` 0 gives the populations unchanged."""
    if mismatch == 0:
        return list(populations)
    out = []
    for k, p in enumerate(populations):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(k,))))
        factors = np.maximum(1.0 + mismatch * rng.standard_normal((len(MISMATCHED), p.size)), MISMATCH_FLOOR)
        f = dict(zip(MISMATCHED, factors))
        reset = p.per_neuron("v_reset")
        out.append(
            replace(
                p,
                tau_m=p.per_neuron("tau_m") * f["tau_m"],
                tau_syn_exc=p.per_neuron("tau_syn_exc") * f["tau_syn_exc"],
                tau_syn_inh=p.per_neuron("tau_syn_inh") * f["tau_syn_inh"],
                gain_exc=p.per_neuron("gain_exc") * f["gain_exc"],
                gain_inh=p.per_neuron("gain_inh") * f["gain_inh"],
                v_thresh=reset + (p.per_neuron("v_thresh") - reset) * f["threshold"],
            )
        )
    return out


def membrane_kernel(tau_m: np.ndarray, tau_syn: np.ndarray, dt: float) -> np.ndarray:
    """k = tau_m tau_syn / (tau_m - tau_syn) (exp(-dt / tau_m) - exp(-dt / tau_syn)): the rise of V over dt from a
    synaptic current of 1 at the step's start (dt exp(-dt / tau_m) in the limit tau_syn -> tau_m)."""
    tau_m, tau_syn = np.asarray(tau_m, np.float64), np.asarray(tau_syn, np.float64)
    a, b = np.exp(-dt / tau_m), np.exp(-dt / tau_syn)
    close = np.abs(tau_m - tau_syn) <= 1e-9 * tau_m
    diff = np.where(close, 1.0, tau_m - tau_syn)
    return np.where(close, dt * a, tau_m * tau_syn / diff * (a - b))


def response(tau_m: float, tau_syn: float, t: np.ndarray) -> np.ndarray:
    """V - v_rest at times ``t`` (µs) after a unit charge (a spike of weight x gain = 1) arrived at t = 0 on a
    neuron at rest: tau_m / (tau_m - tau_syn) (exp(-t / tau_m) - exp(-t / tau_syn))."""
    t = np.asarray(t, np.float64)
    if abs(tau_m - tau_syn) <= 1e-9 * tau_m:
        return t / tau_m * np.exp(-t / tau_m)
    return tau_m / (tau_m - tau_syn) * (np.exp(-t / tau_m) - np.exp(-t / tau_syn))


@dataclass
class Result:
    """Spike counts per neuron (B, size) of every population after each integration step in ``marks``
    (``counts[mark][name]``), V (B, size) of the populations asked for after each mark (``v[mark][name]``), and,
    when traced, V and spikes after every integration step (``trace_v[name]``, ``trace_spikes[name]``, (B, steps,
    size))."""

    counts: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    v: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    trace_v: dict[str, np.ndarray] = field(default_factory=dict)
    trace_spikes: dict[str, np.ndarray] = field(default_factory=dict)


class _State:
    """One population's constants and state for a batch."""

    def __init__(self, p: Neurons, batch: int, dt: float) -> None:
        self.p = p
        tau_m = p.per_neuron("tau_m")
        tau_e, tau_i = p.per_neuron("tau_syn_exc"), p.per_neuron("tau_syn_inh")
        self.a = np.exp(-dt / tau_m)
        self.b_exc, self.b_inh = np.exp(-dt / tau_e), np.exp(-dt / tau_i)
        self.k_exc, self.k_inh = membrane_kernel(tau_m, tau_e, dt), membrane_kernel(tau_m, tau_i, dt)
        self.jump_exc = p.per_neuron("gain_exc") / tau_e  # current per unit of integer weight
        self.jump_inh = p.per_neuron("gain_inh") / tau_i
        self.v_rest, self.v_reset, self.v_thresh = (
            p.per_neuron("v_rest"),
            p.per_neuron("v_reset"),
            p.per_neuron("v_thresh"),
        )
        # integration steps a neuron is held after a spike; the small slack keeps e.g. 0.5 / 0.1 at 5
        self.hold = np.ceil(p.per_neuron("tau_refrac") / dt - 1e-9).astype(np.int32)
        self.v = np.broadcast_to(self.v_rest, (batch, p.size)).copy()
        self.i_exc = np.zeros((batch, p.size))
        self.i_inh = np.zeros((batch, p.size))
        self.held = np.zeros((batch, p.size), np.int32)
        self.spikes = np.zeros((batch, p.size), bool)
        self.count = np.zeros((batch, p.size), np.int64)

    def advance(self, exc: np.ndarray | None, inh: np.ndarray | None, noise: np.ndarray | None) -> np.ndarray:
        """One integration step: the integer weight sums ``exc`` / ``inh`` (B, size) arriving at its start, the
        exact solution over dt, the noise, the refractory hold and the threshold; returns the spikes (B, size)."""
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
        if held.any():  # held at v_reset; the currents decay and their charge is lost
            self.v = np.where(held, self.v_reset, self.v)
            self.held -= held
        if not self.p.spiking:
            return np.zeros_like(held)
        spiking = (self.v >= self.v_thresh) & ~held
        self.v = np.where(spiking, self.v_reset, self.v)
        self.held = np.where(spiking, self.hold, self.held)
        self.count += spiking
        return spiking


class _NoiseStreams:
    """Trial-to-trial noise of one population for a batch: one generator per sample, drawn in blocks."""

    def __init__(self, seed: int, k: int, offset: int, batch: int, size: int) -> None:
        self.gens = [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(k, offset + i))))
            for i in range(batch)
        ]
        self.size = size
        self.block = np.zeros((batch, 0, size))
        self.at = 0

    def next(self) -> np.ndarray:
        if self.at == self.block.shape[1]:
            self.block = np.stack([g.standard_normal((NOISE_BLOCK, self.size)) for g in self.gens])
            self.at = 0
        self.at += 1
        return self.block[:, self.at - 1]


def incoming_matrices(
    populations: list[Neurons], synapses: list[Synapses], sizes: dict[str, int]
) -> dict[str, list[tuple[str, int, np.ndarray]]]:
    """Per population, the projections into it as (pre, receptor index, dense (pre, post) float64 matrix of the
    integer weights); ``sizes`` gives the sources' sizes. A projection naming no population or source is an error."""
    size = {p.name: p.size for p in populations}
    incoming: dict[str, list[tuple[str, int, np.ndarray]]] = {name: [] for name in size}
    for s in synapses:
        if s.post not in size:
            raise ValueError(f"synapses {s.pre} -> {s.post}: no population {s.post!r}")
        n_pre = size[s.pre] if s.pre in size else sizes.get(s.pre)
        if n_pre is None:
            raise ValueError(f"synapses {s.pre} -> {s.post}: no population or source {s.pre!r}")
        matrix = np.zeros((n_pre, size[s.post]))
        np.add.at(matrix, (np.asarray(s.pre_index), np.asarray(s.post_index)), np.asarray(s.weight, np.float64))
        incoming[s.post].append((s.pre, RECEPTORS.index(s.receptor), matrix))
    return incoming


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
) -> Result:
    """Run ``integration_steps`` steps of ``1 / substeps`` µs. ``sources`` maps each source name to its spikes
    (B, µs steps, size), bool: source spike (b, t, i) is delivered before integration step ``t * substeps``;
    ``sizes`` gives every source's size. ``populations`` are the chip's neurons (mismatch already applied, see
    :func:`with_mismatch`), ``synapses`` the projections into them. ``noise.membrane`` > 0 adds trial-to-trial
    noise (``offset``: the index of the batch's first sample in the data set)."""
    dt = 1.0 / substeps
    names = [p.name for p in populations]
    batch = len(next(iter(sources.values()))) if sources else 1
    states = {p.name: _State(p, batch, dt) for p in populations}
    incoming = incoming_matrices(populations, synapses, sizes)
    sigma = 0.0 if noise is None else noise.membrane * math.sqrt(dt)
    streams = (
        {p.name: _NoiseStreams(noise.seed, k, offset, batch, p.size) for k, p in enumerate(populations)}
        if noise is not None and noise.membrane > 0
        else {}
    )
    result = Result()
    wanted = set(marks)
    if trace:
        result.trace_v = {n: np.zeros((batch, integration_steps, states[n].p.size)) for n in names}
        result.trace_spikes = {n: np.zeros((batch, integration_steps, states[n].p.size), bool) for n in names}
    if 0 in wanted:
        result.counts[0] = {n: states[n].count.copy() for n in names}
        result.v[0] = {n: states[n].v.copy() for n in record_v}
    for n in range(integration_steps):
        t, phase = divmod(n, substeps)
        fired = {}
        for name in names:
            charge: list[np.ndarray | None] = [None, None]  # integer weight sums per receptor
            for pre, receptor, matrix in incoming[name]:
                if pre in states:
                    spikes = states[pre].spikes
                elif phase == 0 and t < sources[pre].shape[1]:
                    spikes = sources[pre][:, t]
                else:
                    continue
                if spikes.any():
                    q = spikes.astype(np.float64) @ matrix
                    before = charge[receptor]
                    charge[receptor] = q if before is None else before + q
            noise_now = sigma * streams[name].next() if name in streams else None
            spiking = states[name].advance(charge[0], charge[1], noise_now)
            fired[name] = spiking
            if trace:
                result.trace_v[name][:, n] = states[name].v
                result.trace_spikes[name][:, n] = spiking
        for name in names:
            states[name].spikes = fired[name]
        if n + 1 in wanted:
            result.counts[n + 1] = {m: states[m].count.copy() for m in names}
            result.v[n + 1] = {m: states[m].v.copy() for m in record_v}
    return result
