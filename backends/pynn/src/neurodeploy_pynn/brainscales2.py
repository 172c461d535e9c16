"""A converted network as BrainScaleS-2 runs it: pynn-brainscales ``CalibHXNeuronCuba`` populations on the two
hemispheres of one chip, 6-bit synapses, and spike sources fed by the host; planned from the core's lowering
(:mod:`neurodeploy.lowering`), written as a netlist, and run by the model in
:mod:`neurodeploy_pynn.brainscales2_emulator`.

**What runs where.** The lowering splits a converted graph into a host graph (the input -> the first IF
population's current), the input population, the further IF populations and the readout. The host computes the
current and runs the input population's integrate-and-fire neurons exactly as the float SNN does (float32,
threshold 1, initial charge ``initial``, reset to zero, at most one spike a step): a deterministic regular rate
code, in which a constant current c fires about every 1/c steps (c >= 1 every step; c <= 0 never); a NIR
import's leaky input neurons run as its float LIF does (see *Leaky neurons*). Their spikes
go to the chip as ``SpikeSourceArray`` spike times (step t at t µs), routed into synapse rows: external input is
not on-chip neurons. Every further population runs on the chip. A model whose first layer is a Dense therefore
runs that layer's neurons on the host; a ReLU (or Clip(0, 1)) on the input makes the input itself the spike
sources and puts the first Dense on the chip (``examples/mnist_bss2``).

**Time.** One graph step is 1 µs of hardware time (the analog network runs about 1000x faster than biology; 1 µs
is hxtorch's time step). The model integrates in :data:`SUBSTEPS` steps per µs; a synapse of an on-chip
population takes one integration step (the model's latency), so population k (depth d, one synapse per layer)
receives step t's spikes at t µs + (d - 1) integration steps, and counts its spikes from there. Branches of
different depth (a residual skip) arrive within the same step, so no projection needs a delay: every projection
has delay 0, which is all pynn-brainscales accepts.

**Neurons** (every value within ``CalibHXNeuronCuba``'s published ranges, :data:`RANGES`):

* ``tau_m`` = 60 µs, the longest: the leak moves V by 1/60 of its distance to v_rest per step. Cost: a leaky
  neuron, where the float SNN's neurons do not leak.
* ``v_reset`` = 60, ``v_thresh`` = v_reset + Θ with Θ = 140 (CADC units), and ``v_rest`` = v_reset +
  initial * Θ (130 for the conversion's initial charge of 0.5): a neuron starts at the float SNN's initial charge,
  and the leak pulls V towards it rather than towards the reset, so that over one regular firing cycle (V from 0
  to 1 threshold) it adds about as much as it takes. Cost: a silent neuron drifts up towards half a threshold.
* ``tau_syn_E`` = ``tau_syn_I`` = 0.3 µs, the shortest: 96% of a spike's charge arrives within the step. Cost:
  the rest arrives in the next step.
* ``tau_refrac`` = 0.5 µs: after a spike the neuron is held for half a step, so the charge still arriving from
  that step's input is lost (as the float SNN's reset to zero loses the charge above threshold), while the next
  step's input, at the next µs, mostly is not. Measured with ``examples/mnist_bss2/measure.py`` (500 MNIST test
  images, T = 16 / 64): the hidden layer fires 1.077 / 1.110 times the float SNN's spikes at 0.1 µs, 1.029 /
  1.050 at 0.3, 1.001 / 1.017 at 0.5 and 0.964 / 0.976 at 0.9, and 0.5 µs gives the smallest output error.
* ``cm`` = 63 (the default; the model's gain stands for the synaptic strength, see below).

**Weights.** Per population (a layer: the projections into it, and its bias, share one scale): the float
weights (thresholds per spike) are multiplied by ``lsb = 63 / max |w|`` so the largest maps to 63, rounded half
away from zero (as hxtorch's ``linear_saturating`` and its ±0.5 before ``int()``) and clamped to ±63; the sign
picks the receptor (excitatory or inhibitory). A weight LSB moves V by ``gain = Θ / lsb`` CADC units (the
emulator's gain, set on the chip by the synaptic input calibration). The report gives, per projection, the
scale, the weights that became 0, those clipped and the largest rounding error (in thresholds). A bias b becomes
a spike source that fires every step with weight ``round(b * lsb)``; above 63, several such sources (as
pynn-brainscales builds weights above 63 from several synapses).

**Leaky neurons** (the LIF and CubaLIF layers of a NIR import, :class:`~neurodeploy.ir.neurons.LIF`, lowered
with ``Rules(leaky=True)``: one decay d and one synaptic decay s per layer, threshold 1 after the lowering's
folding, reset to zero). Such a layer gets ``tau_m`` = -STEP_US / ln d (:func:`time_constant`) and, with a
synaptic stage, ``tau_syn_E`` = ``tau_syn_I`` = -STEP_US / ln s (else the shortest, 0.3 µs); a decay whose time
constant is outside :data:`RANGES` (tau_m 0.5..60 µs: d from e^-2 to e^(-1/60); tau_syn 0.3..30 µs) is a
ConversionError naming the layer, the decay, the time constant it needs and the range. ``v_rest`` = ``v_reset``
= 60 and Θ = 140: the leak pulls V towards the reset level, as the float LIF's pulls v towards 0, and a neuron
starts there (the IF mapping's v_rest = initial charge would be a drive the float LIF does not have). Weights and
biases are quantized as any layer's; what changes is the gain: Θ / lsb x :func:`leak_factor`. Derivation: the
float neuron's v, k steps after a unit input arrived, is r(k) = d^k (with a synaptic stage, r(k) = (d^(k+1) -
s^(k+1)) / (d - s)); the analog V after a spike of charge g (:func:`~neurodeploy_pynn.brainscales2_emulator.
response`) read at the end of the step, k + 1 µs after the spike, is g tau_m / (tau_m - tau_syn) (d^(k+1) -
e^(-(k+1) / tau_syn)). With a synaptic stage e^(-1/tau_syn) = s, and g = (tau_m - tau_syn) / (tau_m (d - s))
makes the two equal at every step (tau_m / d where d = s). Without one, the chip's 0.3 µs synaptic current has no
counterpart, and g = (tau_m - tau_syn) / (tau_m d) makes them equal once it has flowed (in the step a spike
arrives, V is short by the charge still to come, e^(-1/tau_syn) / d of it). A drive (v_leak) and the previous
layer's bias are bias spike sources, as an IF layer's: the float LIF adds them to v every step, as an input that
spikes every step. A layer with a synaptic stage and a drive is refused (a bias source's charge would pass
through the synaptic current; v_rest, which could carry it exactly, is also where a neuron starts). The input
population's leaky neurons run on the host, in float32 (v = d v + current + drive, v >= 1, or v > 1 for NIR's
comparison); the chip compares V continuously, where ``>`` and ``>=`` do not differ. Other resets than to zero
are refused (import with ``-I reset=zero`` if the network was trained so); a per-neuron decay, v_reset,
several spikes a step and leaky integrators are refused by the lowering. Cost: the chip's threshold sees V
between steps, where the float LIF sees it only at each step's end; with a short tau_m V peaks within a step
above what it is at the step's end (a note says so for tau_m below :data:`SHORT_TAU_M`). Measured with
``backends/pynn/tests/test_brainscales2_leaky.py``'s ``one_layer`` (20 leaky host neurons into 40 leaky neurons
on the chip, 32 random inputs, T = 64, no noise or mismatch, the weights as drawn and x 2 or x 0.4): the chip
layer's spikes over the float LIF's are 1.02..1.04 at d = 0.95, 1.01..1.02 at 0.9, 1.02..1.04 at 0.85,
1.04 at 0.8, 1.06..1.09 at 0.7, 1.09..1.18 at 0.6 and 1.35 at 0.5; with a synaptic stage 0.97..1.01 at (d, s) =
(0.9, 0.7), (0.85, 0.5) and (0.7, 0.7), 0.94..0.98 at (0.95, 0.9). Without the factor (g = Θ / lsb) the layers
at d = 0.9 fire 0.83..0.94 times the float LIF's spikes, those with a synaptic stage at most 0.35 times.

**Readout.** A membrane readout is a population of leaky integrators (threshold ``v_thresh`` = 220, the top of
its range, never reached): Θ_r and ``v_rest`` are chosen so that even if every source spiked every step, V would
stay within [50, 220] (the span of the calibrated voltage parameters). Its value after c steps is (V - v_rest) /
(Θ_r N_c), where N_c is the V of a neuron that received one threshold's charge at the start of each of the c
steps (:func:`readout_norm`): a leak-weighted mean of the readout's input, where the float SNN takes the plain
mean. Cost: the worst case is far from the usual input, so the readout's V moves little (for the MNIST example
about 0.012 CADC units per output unit and µs) and is the part most sensitive to membrane noise. A spike readout
counts the last population's spikes. With a readout delay (:func:`membrane_readout`) the host also reads V after
the s steps left out and takes away what the leak left of it.

**Placement.** 512 neuron circuits in two hemispheres of 256; each hemisphere has 256 synapse rows, one per
presynaptic source and receptor, which spans the hemisphere's 256 columns (the synapse addresses that let
sources share a row are not used). A source with weights of both signs onto a hemisphere takes two rows there.
Populations are placed whole on a hemisphere (one of more than 256 neurons fills the first and continues on the
second); the placement with the fewest rows in its fuller hemisphere is chosen. Too many neurons, too many rows
or a population that does not map raise a :class:`~neurodeploy.errors.ResourceError` /
:class:`~neurodeploy.errors.ConversionError` naming the population, the limit and what would fit.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.artifact import open_description
from neurodeploy.errors import ArtifactError, ConversionError, ResourceError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import dumps_json, save_graph, write_npz
from neurodeploy.lowering import Population, Rules, SparseSpec, spiking_layers, synapse_list
from neurodeploy.lowering import lower as lower_graph
from neurodeploy.metrics import input_synapses
from neurodeploy.readout import readout_skip
from neurodeploy.schema import Bool, Dict, Int, List, Number, Str
from neurodeploy_pynn import brainscales2_emulator as emulator
from neurodeploy_pynn.brainscales2_emulator import RECEPTORS, WEIGHT_MAX, Noise

RULES = Rules(target="brainscales2", chip="BrainScaleS-2", delayed_conv=True, leaky=True, delays=False)

CELL = "CalibHXNeuronCuba"
HEMISPHERES = 2
NEURONS_PER_HEMISPHERE = 256
ROWS_PER_HEMISPHERE = 256
NEURONS = HEMISPHERES * NEURONS_PER_HEMISPHERE
"""512 neuron circuits."""
SPEEDUP = 1000
"""The analog network's time runs about this much faster than biological time."""
STEP_US = 1.0
"""µs of hardware time per graph step."""
SUBSTEPS = 10
"""Integration steps per µs in the emulator (0.1 µs each)."""

RANGES: dict[str, tuple[float, float]] = {
    "tau_m": (0.5, 60.0),
    "tau_syn_E": (0.3, 30.0),
    "tau_syn_I": (0.3, 30.0),
    "v_rest": (50.0, 160.0),
    "v_reset": (50.0, 160.0),
    "v_thresh": (50.0, 220.0),
    "cm": (0.0, 63.0),
    "tau_refrac": (0.04, 32.0),
}
"""pynn-brainscales ``CalibHXNeuronCuba``'s parameter ranges (µs; voltages in CADC units)."""
TAU_M = 60.0
TAU_SYN = 0.3
TAU_REFRAC = 0.5
"""µs (see the module docstring for how it was chosen)."""
CM = 63.0
V_RESET = 60.0
THRESHOLD = 140.0
"""Θ = v_thresh - v_reset of a spiking population, CADC units (lowered where initial * Θ would put v_rest above
its range)."""
SHORT_TAU_M = 4.5
"""µs: a leaky layer without a synaptic stage and a shorter tau_m (a decay below 0.8 per step) gets a note: the
chip's continuous threshold sees V's peak within a step (see the module docstring)."""
V_LOW, V_HIGH = 50.0, 220.0
"""The span of the calibrated voltage parameters; a readout's V is planned to stay within it."""


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (hxtorch adds ±0.5 and truncates): 0.5 -> 1, -2.5 -> -3."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@dataclass
class Quantized:
    """Float weights as signed 6-bit integers (``words``, int64 in -63..63) at ``lsb`` LSB per float unit:
    ``zeroed`` nonzero weights that became 0, ``clipped`` weights beyond ±63.5 LSB, ``max_error`` the largest
    |words / lsb - w| in float units."""

    words: np.ndarray
    lsb: float
    zeroed: int
    clipped: int
    max_error: float


def quantize(weights: np.ndarray, lsb: float) -> Quantized:
    """``weights`` (float units) times ``lsb``, rounded half away from zero and clamped to ±63."""
    w = np.asarray(weights, np.float64)
    raw = round_half_away(w * lsb)
    words = np.clip(raw, -WEIGHT_MAX, WEIGHT_MAX).astype(np.int64)
    error = np.abs(words / lsb - w)
    return Quantized(
        words,
        float(lsb),
        int(np.count_nonzero((words == 0) & (w != 0))),
        int(np.count_nonzero(np.abs(raw) > WEIGHT_MAX)),
        float(error.max(initial=0.0)),
    )


def layer_lsb(weights: list[np.ndarray]) -> float:
    """LSB per float unit of one layer: its largest |w| maps to 63 (1 when every weight is 0)."""
    largest = max((float(np.abs(w).max(initial=0.0)) for w in weights), default=0.0)
    return WEIGHT_MAX / largest if largest > 0 else 1.0


def readout_norm(steps: int, tau_m: float = TAU_M, tau_syn: float = TAU_SYN) -> float:
    """N_c: V - v_rest (per unit of charge) after ``steps`` µs of a leaky integrator that received a unit charge at
    the start of every step: the sum of the membrane response 1 .. steps µs after a charge."""
    return float(emulator.response(tau_m, tau_syn, np.arange(1, steps + 1) * STEP_US).sum())


def membrane_readout(
    top: PopulationPlan, v_end: np.ndarray, steps: int, v_skip: np.ndarray | None = None, skip: int = 0
) -> np.ndarray:
    """A membrane readout's value after ``steps`` steps from its V then (CADC units), float64. Without a delay,
    (V_c - v_rest) / (Θ_r N_c). With the delay's ``skip`` steps s left out and ``v_skip``, its V after s steps, the
    part of V_c that inputs up to step s left is taken away as the leak carries it: (V_c - v_rest - e^(-(c - s) /
    tau_m) (V_s - v_rest)) / (Θ_r N_(c - s)), a leak-weighted mean of the input over steps s + 1 .. c. The chip
    reads V only: the synaptic current still flowing after step s (tau_syn 0.3 µs; charge of spikes that arrived
    late in step s) is counted with steps s + 1 .. c."""
    late = np.asarray(v_end, np.float64) - top.parameters["v_rest"]
    if skip:
        if v_skip is None:
            raise ValueError("a delayed membrane readout needs V after the skipped steps")
        decay = math.exp(-(steps - skip) * STEP_US / top.parameters["tau_m"])
        late = late - decay * (np.asarray(v_skip, np.float64) - top.parameters["v_rest"])
    return late / (top.threshold * readout_norm(steps - skip, top.parameters["tau_m"], top.parameters["tau_syn_E"]))


def _saturated_norm(tau_m: float = TAU_M, tau_syn: float = TAU_SYN) -> float:
    """N_c as c grows without bound (the response summed until it is below 1e-12 of its peak)."""
    horizon = math.ceil(30 * tau_m / STEP_US)
    return readout_norm(horizon, tau_m, tau_syn)


@dataclass
class PopulationPlan:
    """One population on the chip: PyNN parameters, ``threshold`` Θ (CADC units per float unit: a threshold of a
    spiking population), ``lsb`` (weight LSB per float unit) and ``gain`` = Θ / lsb (CADC units per LSB),
    ``depth`` (synapses from the input population), ``hemisphere`` (its neurons in hemisphere 0 and 1; the
    first ones in 0)."""

    name: str
    role: str
    shape: tuple[int, ...]
    parameters: dict[str, float]
    threshold: float
    lsb: float
    depth: int
    initial: float = 0.0
    hemisphere: tuple[int, int] = (0, 0)
    leak: dict[str, float] | None = None
    """A leaky population's (a LIF layer of a spiking import): the requested ``decay`` (and ``syn_decay``), the
    ``tau_m`` and ``tau_syn`` written and the ``weight_factor`` its gain carries (:func:`leak_factor`)."""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def gain(self) -> float:
        factor = 1.0 if self.leak is None else self.leak["weight_factor"]
        return self.threshold / self.lsb * factor


@dataclass
class SourcePlan:
    """Spike sources on the host: the input population (``kind`` input) or a population's bias (``kind`` bias,
    firing every step)."""

    name: str
    kind: str
    size: int


@dataclass
class ProjectionPlan:
    """Synapses of one receptor from ``pre`` (a source or population name) to population ``post`` (an index):
    a connection list of flat indices and weights 1..63; ``report`` what the quantization did."""

    name: str
    pre: str
    post: int
    receptor: str
    pre_index: np.ndarray
    post_index: np.ndarray
    weights: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class Netlist:
    """A planned network: the host graph (input -> the input population's current), the input population
    (``input``: name, shape, initial charge), the spike sources, the chip's populations and projections, the
    readout (``kind``, ``population`` name, ``output``, ``shape``, ``scale`` for spikes), the rows per
    hemisphere, and the noise the emulator applies."""

    host: Graph
    input: dict[str, Any]
    sources: list[SourcePlan]
    populations: list[PopulationPlan]
    projections: list[ProjectionPlan]
    readout: dict[str, Any]
    rows: tuple[int, int] = (0, 0)
    noise: Noise = field(default_factory=Noise)
    substeps: int = SUBSTEPS
    notes: list[str] = field(default_factory=list)
    emulated: list[emulator.Neurons] | None = field(default=None, repr=False, compare=False)
    """The emulator's populations of this chip instance (mismatch applied), built on the first run."""

    def index(self, name: str) -> int:
        return [p.name for p in self.populations].index(name)


# -- planning ------------------------------------------------------------------------------------------------


def _spiking_parameters(initial: float) -> tuple[dict[str, float], float]:
    """A spiking population's parameters and Θ for the conversion's initial charge (thresholds)."""
    if not 0.0 <= initial < 1.0:
        raise ConversionError(
            f"the brainscales2 target starts a neuron at v_rest = v_reset + initial x threshold; the conversion's "
            f"initial charge {initial} is outside [0, 1)"
        )
    top = RANGES["v_rest"][1] - V_RESET
    theta = min(THRESHOLD, top / initial) if initial > 0 else THRESHOLD
    return {
        "tau_m": TAU_M,
        "tau_syn_E": TAU_SYN,
        "tau_syn_I": TAU_SYN,
        "v_rest": V_RESET + initial * theta,
        "v_reset": V_RESET,
        "v_thresh": V_RESET + theta,
        "cm": CM,
        "tau_refrac": TAU_REFRAC,
    }, theta


def _readout_parameters(positive: float, negative: float) -> tuple[dict[str, float], float]:
    """A readout's parameters and Θ_r: the largest input per step (float units, every source spiking) of either
    sign, integrated without end, stays within [V_LOW, V_HIGH] around v_rest."""
    span = V_HIGH - V_LOW
    total = positive + negative
    v_rest = V_LOW + span * negative / total if total > 0 else (V_LOW + V_HIGH) / 2
    v_rest = float(np.clip(v_rest, *RANGES["v_rest"]))
    saturated = _saturated_norm()
    room = [(V_HIGH - v_rest) / (positive * saturated)] if positive > 0 else []
    room += [(v_rest - V_LOW) / (negative * saturated)] if negative > 0 else []
    theta = min(room) if room else 1.0
    return {
        "tau_m": TAU_M,
        "tau_syn_E": TAU_SYN,
        "tau_syn_I": TAU_SYN,
        "v_rest": v_rest,
        "v_reset": v_rest,
        "v_thresh": V_HIGH,
        "cm": CM,
        "tau_refrac": TAU_REFRAC,
    }, theta


def time_constant(decay: float) -> float:
    """µs of a continuous decay that keeps ``decay`` of its value over one graph step: -STEP_US / ln(decay) (inf
    for 1, 0 for 0)."""
    if decay >= 1.0:
        return math.inf
    if decay <= 0.0:
        return 0.0
    return -STEP_US / math.log(decay)


def leak_factor(tau_m: float, tau_syn: float, decay: float, syn_decay: float | None) -> float:
    """What a leaky population's gain is multiplied by so that a spike's charge moves V as the float LIF's does.

    The float neuron adds a unit input at step t0 and decays: v is r(k) = d^k k steps later (d = ``decay``); with
    a synaptic stage (s = ``syn_decay``) r(k) = (d^(k+1) - s^(k+1)) / (d - s) ((k + 1) d^k where d = s). The analog
    neuron's V, g x :func:`~neurodeploy_pynn.brainscales2_emulator.response` (a charge g at t0 µs), is read at the
    end of the step, k + 1 µs later: g tau_m / (tau_m - tau_syn) (d^(k+1) - e^(-(k+1) / tau_syn)) with tau_m =
    -1 / ln d. With a synaptic stage tau_syn = -1 / ln s and the two are equal at every k for g = (tau_m - tau_syn)
    / (tau_m (d - s)) (tau_m / d where d = s). Without one the chip's synaptic current (tau_syn = 0.3 µs) has no
    counterpart; g = (tau_m - tau_syn) / (tau_m d) (s = 0 above) makes the two equal once it has flowed: r(k) -
    e^(-(k+1) / tau_syn) / d, the charge still to arrive in the step after."""
    s = 0.0 if syn_decay is None else syn_decay
    if syn_decay is not None and abs(decay - s) <= 1e-9:
        return tau_m / decay
    return (tau_m - tau_syn) / (tau_m * (decay - s))


def _calibrated(name: str, decay: float, key: str, what: str) -> float:
    """The time constant (µs) of a per-step ``decay``, or a ConversionError naming the layer, the decay, the time
    constant it needs and the calibrated range of ``RANGES[key]``."""
    tau = time_constant(decay)
    low, high = RANGES[key]
    if not low <= tau <= high:
        symbol = key.removesuffix("_E")
        raise ConversionError(
            f"LIF {name!r}: {what} by a factor {decay:.6g} per step, which needs {symbol} = {tau:.6g} µs at "
            f"{STEP_US:g} µs per step; BrainScaleS-2's calibrated {symbol} spans {low:g}..{high:g} µs (a decay of "
            f"{math.exp(-STEP_US / low):.4g}..{math.exp(-STEP_US / high):.4g} per step): retrain or re-import (NIR's "
            "dt) for a decay in that range"
        )
    return tau


def _leaky_parameters(pop: Population) -> tuple[dict[str, float], float, dict[str, float]]:
    """A leaky population's parameters, Θ and its ``leak`` entry (see the module docstring), or a ConversionError
    naming the layer, the decay, the time constant it needs and the range."""
    tau_m = _calibrated(pop.name, pop.decay, "tau_m", "v decays")
    tau_syn = TAU_SYN
    if pop.syn_decay is not None:
        tau_syn = _calibrated(pop.name, pop.syn_decay, "tau_syn_E", "its synaptic current decays")
    leak = {"decay": float(pop.decay), "tau_m": tau_m, "tau_syn": tau_syn}
    if pop.syn_decay is not None:
        leak["syn_decay"] = float(pop.syn_decay)
    leak["weight_factor"] = leak_factor(tau_m, tau_syn, pop.decay, pop.syn_decay)
    parameters = {
        "tau_m": tau_m,
        "tau_syn_E": tau_syn,
        "tau_syn_I": tau_syn,
        "v_rest": V_RESET,
        "v_reset": V_RESET,
        "v_thresh": V_RESET + THRESHOLD,
        "cm": CM,
        "tau_refrac": TAU_REFRAC,
    }
    return parameters, THRESHOLD, leak


def _check_reset(pop: Population) -> None:
    if pop.role == "readout" or pop.reset == "zero":
        return
    if pop.leaky or pop.strict:
        raise ConversionError(
            f"LIF {pop.name!r} resets by {pop.reset}: BrainScaleS-2's neurons reset to v_reset; import the file with "
            "-I reset=zero (--import-option reset=zero) if the network was trained that way"
        )
    raise ConversionError(
        f"population {pop.name!r} resets by {pop.reset}: BrainScaleS-2's neurons reset to v_reset (convert with "
        "reset=zero)"
    )


def plan(graph: Graph, noise: Noise | None = None) -> Netlist:
    """Lower ``graph`` (a converted SNN with reset to zero), quantize, and place it on one chip (see the module
    docstring). A ConversionError names what does not map, a ResourceError what does not fit."""
    layers = spiking_layers(graph)[1:]  # the first neurons read the input: spike sources on the host
    if sum(n for _, n in layers) > NEURONS:  # before any lowering: a network far too large is refused at once
        total = sum(n for _, n in layers)
        listing = ", ".join(f"{name!r}: {n}" for name, n in layers)
        raise ResourceError(
            f"the network needs at least {total} neurons on the chip ({listing}); BrainScaleS-2 has {NEURONS} neuron "
            f"circuits ({HEMISPHERES} hemispheres of {NEURONS_PER_HEMISPHERE}): remove {total - NEURONS} neurons "
            "(the input population runs on the host and needs none)"
        )
    lowered = lower_graph(graph, RULES)
    first = lowered.populations[0]
    if len(lowered.populations) < 2:
        raise ConversionError(
            f"the only neurons of the network are the input population {first.name!r}, which the host runs as spike "
            "sources; nothing is left for the chip (add a layer after it)"
        )
    for pop in lowered.populations:
        _check_reset(pop)
        if pop.leaky and pop.syn_decay is not None and np.any(np.asarray(pop.bias) != 0):
            raise ConversionError(
                f"LIF {pop.name!r} has a synaptic current and a constant drive (v_leak): BrainScaleS-2 adds a drive "
                "through spike sources, whose charge would pass through the synaptic current (and v_rest, which "
                "could carry it, is where the neurons start: the float LIF starts at 0); import it without v_leak, "
                "or without the synaptic stage"
            )
    sources = [SourcePlan(first.name, "input", int(np.prod(first.shape)))]
    populations: list[PopulationPlan] = []
    projections: list[ProjectionPlan] = []
    notes: list[str] = []
    names = {0: first.name}
    for k, pop in enumerate(lowered.populations[1:], start=1):
        names[k] = pop.name
        listed = []
        for source, spec, delay, name in lowered.incoming(k):
            if delay:
                notes.append(
                    f"{name}: the lowering aligns this branch with a delay of {delay} step(s) (one step per synapse); "
                    "here a synapse takes one integration step, so the branches arrive in the same step without one"
                )
            listed.append((names[source], synapse_list(spec, pop.shape), name))
        bias = np.asarray(pop.bias, np.float64).reshape(-1)
        lsb = layer_lsb([np.asarray(s.weight) for _, s, _ in listed])
        plan_k = _population(pop, [s for _, s, _ in listed], bias, lsb)
        populations.append(plan_k)
        if plan_k.leak is not None and "syn_decay" not in plan_k.leak and plan_k.leak["tau_m"] < SHORT_TAU_M:
            notes.append(
                f"{pop.name}: tau_m {plan_k.leak['tau_m']:.3g} µs (decay {plan_k.leak['decay']:.4g} per step) is "
                f"within a few tau_syn ({TAU_SYN:g} µs): V peaks within a step above what the float LIF's v is at "
                "the step's end, and the chip's threshold sees the peak; expect more spikes than the float LIF"
            )
        post = len(populations) - 1
        for pre, s, name in listed:
            projections += _projections(name, pre, post, s.cols, s.rows, np.asarray(s.weight), lsb)
        if np.any(bias != 0):
            bias_sources, bias_projections = _bias(pop.name, post, bias, lsb)
            sources.append(bias_sources)
            projections += bias_projections
    readout: dict[str, Any] = {
        "kind": lowered.readout.kind,
        "population": names[lowered.readout.population],
        "output": lowered.readout.output,
        "shape": list(lowered.readout.shape),
    }
    if lowered.readout.scale is not None:
        readout["scale"] = np.asarray(lowered.readout.scale, np.float32)
    netlist = Netlist(
        lowered.host,
        _input(first),
        sources,
        populations,
        projections,
        readout,
        noise=noise or Noise(),
        substeps=SUBSTEPS,
        notes=notes,
    )
    place(netlist)
    return netlist


def _input(first: Population) -> dict[str, Any]:
    """The input population as the host runs it: name, shape, initial charge and, for leaky neurons, their decay,
    comparison and drive (``bias``, thresholds per step, one per neuron)."""
    out: dict[str, Any] = {"name": first.name, "shape": list(first.shape), "initial": float(first.initial)}
    if first.leaky or first.strict or np.any(np.asarray(first.bias) != 0):
        out |= {"decay": float(first.decay), "strict": bool(first.strict)}
        out["bias"] = np.broadcast_to(np.asarray(first.bias, np.float32), tuple(first.shape)).reshape(-1).copy()
    return out


def _population(pop: Population, listed: list[SparseSpec], bias: np.ndarray, lsb: float) -> PopulationPlan:
    """A lowered population's plan: a spiking one's parameters for its initial charge; a readout's range from the
    largest input of either sign its neurons can get in a step (every source spiking, plus the bias)."""
    if pop.role == "readout":
        size = int(np.prod(pop.shape))
        pos, neg = np.maximum(bias, 0.0), np.maximum(-bias, 0.0)
        for s in listed:
            w = np.asarray(s.weight, np.float64)
            pos += np.bincount(s.rows, np.maximum(w, 0.0), minlength=size)
            neg += np.bincount(s.rows, np.maximum(-w, 0.0), minlength=size)
        parameters, theta = _readout_parameters(float(pos.max()), float(neg.max()))
        initial = 0.0
    elif pop.leaky:
        parameters, theta, leak = _leaky_parameters(pop)
        return PopulationPlan(pop.name, pop.role, tuple(pop.shape), parameters, theta, lsb, int(pop.depth), leak=leak)
    else:
        parameters, theta = _spiking_parameters(pop.initial)
        initial = pop.initial
    return PopulationPlan(pop.name, pop.role, tuple(pop.shape), parameters, theta, lsb, int(pop.depth), initial)


def _projections(
    name: str, pre: str, post: int, cols: np.ndarray, rows: np.ndarray, weight: np.ndarray, lsb: float
) -> list[ProjectionPlan]:
    """One synapse list as its excitatory and inhibitory projections (the sign of the 6-bit word); each one's
    report counts the float weights of its sign (those that became 0 included)."""
    q = quantize(weight, lsb)
    out = []
    for receptor, sign in (("excitatory", 1), ("inhibitory", -1)):
        part = np.sign(weight) == sign
        if not part.any():
            continue
        keep = np.sign(q.words) == sign
        of_sign = quantize(weight[part], lsb)
        out.append(
            ProjectionPlan(
                f"{name}:{receptor}",
                pre,
                post,
                receptor,
                np.asarray(cols[keep], np.int32),
                np.asarray(rows[keep], np.int32),
                np.abs(q.words[keep]).astype(np.uint8),
                {
                    "synapses": int(keep.sum()),
                    "lsb_per_unit": lsb,
                    "resolution": 1.0 / lsb,
                    "zeroed": of_sign.zeroed,
                    "clipped": of_sign.clipped,
                    "max_error": of_sign.max_error,
                },
            )
        )
    return out


def _bias(name: str, post: int, bias: np.ndarray, lsb: float) -> tuple[SourcePlan, list[ProjectionPlan]]:
    """A population's bias as spike sources that fire every step: source r carries min(63, |b| - 63 r) LSB of
    each neuron's rounded bias |b| (several sources where |b| > 63), the sign as the receptor."""
    words = round_half_away(bias * lsb).astype(np.int64)
    count = max(1, math.ceil(np.abs(words).max() / WEIGHT_MAX))
    source = SourcePlan(f"{name}/bias", "bias", count)
    error = float(np.abs(words / lsb - bias).max(initial=0.0))
    out = []
    for receptor, sign in (("excitatory", 1), ("inhibitory", -1)):
        magnitude = np.where(np.sign(words) == sign, np.abs(words), 0)
        pre, post_index, weights = [], [], []
        for r in range(count):
            part = np.clip(magnitude - WEIGHT_MAX * r, 0, WEIGHT_MAX)
            live = np.nonzero(part)[0]
            pre.append(np.full(len(live), r, np.int32))
            post_index.append(live.astype(np.int32))
            weights.append(part[live].astype(np.uint8))
        if not sum(len(p) for p in pre):
            continue
        out.append(
            ProjectionPlan(
                f"{name}/bias:{receptor}",
                source.name,
                post,
                receptor,
                np.concatenate(pre),
                np.concatenate(post_index),
                np.concatenate(weights),
                {
                    "synapses": int(sum(len(p) for p in pre)),
                    "lsb_per_unit": lsb,
                    "resolution": 1.0 / lsb,
                    "zeroed": int(np.count_nonzero((words == 0) & (bias != 0) & (np.sign(bias) == sign))),
                    "clipped": 0,
                    "max_error": error,
                },
            )
        )
    return source, out


# -- placement -----------------------------------------------------------------------------------------------


def _row_keys(netlist: Netlist) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per population index: (post neuron, row key) of every synapse into it, the key naming one presynaptic
    source or neuron and receptor (one synapse row of a hemisphere)."""
    nodes = [s.name for s in netlist.sources] + [p.name for p in netlist.populations]
    sizes = [s.size for s in netlist.sources] + [p.size for p in netlist.populations]
    offsets = dict(zip(nodes, np.cumsum([0, *sizes[:-1]]).tolist()))
    per: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in range(len(netlist.populations))}
    for q in netlist.projections:
        key = (offsets[q.pre] + q.pre_index.astype(np.int64)) * 2 + RECEPTORS.index(q.receptor)
        per[q.post].append((q.post_index.astype(np.int64), key))
    return {
        k: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v]))
        if v
        else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        for k, v in per.items()
    }


def _rows(keys: dict[int, tuple[np.ndarray, np.ndarray]], split: list[int]) -> tuple[int, int]:
    """Synapse rows of hemispheres 0 and 1 when population k has its first split[k] neurons in hemisphere 0."""
    sides: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for k, (post, key) in keys.items():
        first = post < split[k]
        sides[0].append(key[first])
        sides[1].append(key[~first])
    return tuple(len(np.unique(np.concatenate(s))) if s else 0 for s in sides)  # type: ignore[return-value]


def _describe_rows(netlist: Netlist, k: int) -> str:
    """What population k's rows are, per presynaptic source or population: '81 sources of 'x' (81 of both
    signs) = 162 rows'."""
    parts = []
    for pre in dict.fromkeys(q.pre for q in netlist.projections if q.post == k):
        seen: dict[int, set[str]] = {}
        for q in netlist.projections:
            if q.post == k and q.pre == pre:
                for i in np.unique(q.pre_index).tolist():
                    seen.setdefault(i, set()).add(q.receptor)
        both = sum(len(r) == 2 for r in seen.values())
        parts.append(f"{len(seen)} sources of {pre!r} ({both} with weights of both signs) = {len(seen) + both} rows")
    return "; ".join(parts)


EXHAUSTIVE = 12
"""Up to this many populations that fit a hemisphere, every way of placing them is tried; beyond, they fill
hemisphere 0 in order, then hemisphere 1."""


def _candidates(sizes: list[int]) -> list[list[int]]:
    """Placements as the neurons of each population in hemisphere 0 (its first ones; the rest in hemisphere 1):
    each population of at most 256 neurons whole on one side, every combination (or in order, beyond
    :data:`EXHAUSTIVE`); a larger one (at most one fits 512) fills what hemisphere 0 has left and goes on in 1."""
    whole = [k for k, n in enumerate(sizes) if n <= NEURONS_PER_HEMISPHERE]
    if len(whole) <= EXHAUSTIVE:
        sides = list(itertools.product((0, 1), repeat=len(whole)))
    else:
        used, side = 0, []
        for k in whole:
            side.append(0 if used + sizes[k] <= NEURONS_PER_HEMISPHERE else 1)
            used += sizes[k] if side[-1] == 0 else 0
        sides = [tuple(side)]
    out = []
    for choice in sides:
        split = [0] * len(sizes)
        for k, side_k in zip(whole, choice):
            split[k] = sizes[k] if side_k == 0 else 0
        free = max(0, NEURONS_PER_HEMISPHERE - sum(split))
        for k, n in enumerate(sizes):
            if n > NEURONS_PER_HEMISPHERE:
                split[k] = min(n, free)
        out.append(split)
    return out


def place(netlist: Netlist) -> None:
    """Place the populations on the two hemispheres (sets each ``hemisphere`` and ``netlist.rows``), or raise a
    ResourceError naming the population, the limit and what would fit."""
    pops = netlist.populations
    total = sum(p.size for p in pops)
    if total > NEURONS:
        listing = ", ".join(f"{p.name!r}: {p.size}" for p in pops)
        raise ResourceError(
            f"the network needs {total} neurons on the chip ({listing}); BrainScaleS-2 has {NEURONS} neuron circuits "
            f"({HEMISPHERES} hemispheres of {NEURONS_PER_HEMISPHERE}): remove {total - NEURONS} neurons (the input "
            "population runs on the host and needs none)"
        )
    keys = _row_keys(netlist)
    for k, p in enumerate(pops):
        alone = len(np.unique(keys[k][1]))
        if p.size <= NEURONS_PER_HEMISPHERE and alone > ROWS_PER_HEMISPHERE:
            left = ROWS_PER_HEMISPHERE // 2
            raise ResourceError(
                f"population {p.name!r} ({p.size} neurons) needs {alone} synapse rows in its hemisphere: "
                f"{_describe_rows(netlist, k)}; a BrainScaleS-2 hemisphere has {ROWS_PER_HEMISPHERE} rows (one per "
                f"presynaptic source and receptor): it fits {left} sources with weights of both signs, or "
                f"{ROWS_PER_HEMISPHERE} of one sign; reduce its inputs by {alone - ROWS_PER_HEMISPHERE} rows"
            )
    scored = []
    for split in _candidates([p.size for p in pops]):
        neurons = (sum(split), total - sum(split))
        rows = _rows(keys, split)
        over = sum(max(0, n - NEURONS_PER_HEMISPHERE) for n in neurons)
        over += sum(max(0, r - ROWS_PER_HEMISPHERE) for r in rows)
        scored.append(((over, max(rows), max(neurons)), split, neurons, rows))
    score, split, neurons, rows = min(scored, key=lambda s: s[0])
    if score[0]:
        where = "; ".join(
            f"hemisphere {h}: "
            + ", ".join(
                f"{p.name!r} ({split[k] if h == 0 else p.size - split[k]})"
                for k, p in enumerate(pops)
                if (split[k] if h == 0 else p.size - split[k])
            )
            + f" = {neurons[h]} neurons and {rows[h]} synapse rows"
            for h in range(HEMISPHERES)
        )
        raise ResourceError(
            f"no placement of the populations on BrainScaleS-2's {HEMISPHERES} hemispheres stays within "
            f"{NEURONS_PER_HEMISPHERE} neurons and {ROWS_PER_HEMISPHERE} synapse rows each (a row per presynaptic "
            f"source and receptor); the closest: {where}. Reduce the largest layer or its inputs"
        )
    for k, p in enumerate(pops):
        p.hemisphere = (split[k], p.size - split[k])
    netlist.rows = rows


# -- the netlist files ---------------------------------------------------------------------------------------

FORMAT = "neurodeploy-brainscales2-netlist"
FORMAT_VERSION = 1
DESCRIPTION = "brainscales2.json"
ARRAYS = "brainscales2.npz"
HOST = "host"
SCRIPT = "run_pynn.py"
"""The PyNN script that rebuilds the netlist in pynn-brainscales or NEST
(:mod:`neurodeploy_pynn.run_pynn_brainscales2`)."""

_ARRAY = Dict({"array": Str()})
_NAME = Str(pattern=r"[^\x00-\x1f]{1,256}", meaning="a name of 1 to 256 characters")
HOST_STEM = Str(
    pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,122}", meaning="the plain name of a graph of the artifact (no folders)"
)
_SHAPE = List(Int(1), min_len=1)
PARAMETERS = Dict({key: Number(low, high) for key, (low, high) in RANGES.items()})
LEAK = Dict(
    {"decay": Number(0, 1), "tau_m": Number(*RANGES["tau_m"]), "tau_syn": Number(*RANGES["tau_syn_E"])},
    {"syn_decay": Number(0, 1), "weight_factor": Number(1e-12, 1e6)},
)
NETLIST_SCHEMA = Dict(
    {
        "format": Str(),
        "version": Int(),
        "chip": Dict(
            {
                "cell": Str(choices=(CELL,)),
                "hemispheres": Int(HEMISPHERES, HEMISPHERES),
                "neurons_per_hemisphere": Int(NEURONS_PER_HEMISPHERE, NEURONS_PER_HEMISPHERE),
                "rows_per_hemisphere": Int(ROWS_PER_HEMISPHERE, ROWS_PER_HEMISPHERE),
                "weight_bits": Int(emulator.WEIGHT_BITS, emulator.WEIGHT_BITS),
            }
        ),
        "timing": Dict({"step_us": Number(STEP_US, STEP_US), "substeps": Int(1, 100)}),
        "noise": Dict({"mismatch": Number(0, 10), "mismatch_seed": Int(0), "membrane": Number(0, 1e6), "seed": Int(0)}),
        "input": Dict(
            {"host_graph": HOST_STEM, "population": _NAME, "shape": _SHAPE, "initial": Number(-1e6, 1e6)},
            {"decay": Number(0, 1), "strict": Bool(), "bias": _ARRAY},
        ),
        "sources": List(Dict({"name": _NAME, "kind": Str(choices=("input", "bias")), "size": Int(1)}), min_len=1),
        "populations": List(
            Dict(
                {
                    "name": _NAME,
                    "role": Str(choices=("hidden", "readout")),
                    "shape": _SHAPE,
                    "size": Int(1),
                    "cell": Str(choices=(CELL,)),
                    "parameters": PARAMETERS,
                    "threshold_cadc": Number(1e-12, 1e6),
                    "lsb_per_unit": Number(1e-12, 1e30),
                    "gain_cadc_per_lsb": Number(0, 1e30),
                    "depth": Int(1),
                    "initial": Number(0, 1),
                    "hemisphere_neurons": List(Int(0, NEURONS_PER_HEMISPHERE), length=HEMISPHERES),
                },
                {"leak": LEAK},
            ),
            min_len=1,
        ),
        "projections": List(
            Dict(
                {
                    "name": Str(),
                    "pre": _NAME,
                    "post": _NAME,
                    "receptor": Str(choices=RECEPTORS),
                    "delay": Number(),
                    "connector": Str(choices=("FromListConnector",)),
                    "pre_index": _ARRAY,
                    "post_index": _ARRAY,
                    "weights": _ARRAY,
                },
                {"report": Dict()},
            )
        ),
        "rows": List(Int(0, ROWS_PER_HEMISPHERE), length=HEMISPHERES),
        "readout": Dict(
            {"kind": Str(choices=("membrane", "spikes")), "population": _NAME, "output": Str(), "shape": _SHAPE},
            {"scale": _ARRAY},
        ),
    },
    {"notes": List(Str())},
)


def save(netlist: Netlist, folder: Path) -> list[str]:
    """Write brainscales2.json (the netlist: cell parameters per population, spike sources, projections, the
    placement, what the host computes), brainscales2.npz (connection lists and 6-bit weights), the host graph and
    the PyNN script run_pynn.py; return the file names."""
    arrays: dict[str, np.ndarray] = {}
    pops = [
        {
            "name": p.name,
            "role": p.role,
            "shape": list(p.shape),
            "size": p.size,
            "cell": CELL,
            "parameters": dict(p.parameters),
            "threshold_cadc": p.threshold,
            "lsb_per_unit": p.lsb,
            "gain_cadc_per_lsb": p.gain,
            "depth": p.depth,
            "initial": p.initial,
            "hemisphere_neurons": list(p.hemisphere),
        }
        | ({"leak": dict(p.leak)} if p.leak is not None else {})
        for p in netlist.populations
    ]
    projections = []
    for j, q in enumerate(netlist.projections):
        arrays[f"p{j}/pre_index"] = q.pre_index.astype(np.int32)
        arrays[f"p{j}/post_index"] = q.post_index.astype(np.int32)
        arrays[f"p{j}/weights"] = q.weights.astype(np.uint8)
        projections.append(
            {
                "name": q.name,
                "pre": q.pre,
                "post": netlist.populations[q.post].name,
                "receptor": q.receptor,
                "delay": 0,
                "connector": "FromListConnector",
                "pre_index": {"array": f"p{j}/pre_index"},
                "post_index": {"array": f"p{j}/post_index"},
                "weights": {"array": f"p{j}/weights"},
                "report": q.report,
            }
        )
    readout = {k: v for k, v in netlist.readout.items() if k != "scale"}
    if "scale" in netlist.readout:
        arrays["readout/scale"] = np.asarray(netlist.readout["scale"], np.float32)
        readout["scale"] = {"array": "readout/scale"}
    noise = netlist.noise
    host_input = {
        "host_graph": HOST,
        "population": netlist.input["name"],
        "shape": list(netlist.input["shape"]),
        "initial": netlist.input["initial"],
    }
    if "decay" in netlist.input:
        arrays["input/bias"] = np.asarray(netlist.input["bias"], np.float32)
        host_input |= {"decay": netlist.input["decay"], "strict": netlist.input["strict"]}
        host_input["bias"] = {"array": "input/bias"}
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "chip": {
            "cell": CELL,
            "hemispheres": HEMISPHERES,
            "neurons_per_hemisphere": NEURONS_PER_HEMISPHERE,
            "rows_per_hemisphere": ROWS_PER_HEMISPHERE,
            "weight_bits": emulator.WEIGHT_BITS,
        },
        "timing": {"step_us": STEP_US, "substeps": netlist.substeps, "speedup_over_biology": SPEEDUP},
        "units": "µs of hardware time (about 1000x faster than biology); voltages in CADC units (calibrated hardware "
        "units); weights: integers 1..63, the receptor is the sign",
        "layout": "neurons of a population and sources of the input in the graph's C order of their shape",
        "noise": {
            "mismatch": noise.mismatch,
            "mismatch_seed": int(noise.mismatch_seed),
            "membrane": noise.membrane,
            "seed": int(noise.seed),
        },
        "input": host_input,
        "input_coding": "the host runs the input population's IF neurons on the host graph's current (float32, "
        "threshold 1, initial charge `initial`, reset to zero, at most one spike a step; leaky ones: v = decay v + "
        "current + bias, firing on v > 1 where `strict`) and sends step t's spikes as SpikeSourceArray spike times "
        "t µs; a bias source spikes at every step",
        "sources": [{"name": s.name, "kind": s.kind, "size": s.size} for s in netlist.sources],
        "populations": pops,
        "projections": projections,
        "rows": list(netlist.rows),
        "readout": readout,
        "notes": list(netlist.notes),
    }
    (folder / DESCRIPTION).write_bytes(dumps_json(doc))
    write_npz(folder / ARRAYS, arrays)
    save_graph(netlist.host, folder, HOST)
    (folder / SCRIPT).write_bytes(Path(__file__).with_name("run_pynn_brainscales2.py").read_bytes())
    return [DESCRIPTION, ARRAYS, f"{HOST}.json", f"{HOST}.npz", SCRIPT]


class _Arrays:
    """The arrays of brainscales2.npz, handed out checked: 1-D integers of a length, within bounds."""

    def __init__(self, files: Any, where: str) -> None:
        self.files, self.where = files, where
        self.arrays = files.read_npz(ARRAYS)

    def get(self, entry: dict, what: str) -> np.ndarray:
        key = entry["array"]
        if key not in self.arrays:
            raise ArtifactError(f"{self.files.where(ARRAYS)} has no array {key!r} ({what})")
        return np.asarray(self.arrays[key])

    def integers(self, entry: dict, what: str, length: int | None, low: int, high: int) -> np.ndarray:
        a = self.get(entry, what)
        if a.dtype.kind not in "iu" or a.ndim != 1 or (length is not None and len(a) != length):
            raise ArtifactError(
                f"{self.where}: {what} must be {length or 'a list of'} integers, got {a.dtype} {a.shape}"
            )
        if a.size and (int(a.min()) < low or int(a.max()) > high):
            raise ArtifactError(f"{self.where}: {what} holds values outside [{low}, {high}]")
        return a


def _load_sources(doc: dict, where: str) -> list[SourcePlan]:
    sources = [SourcePlan(s["name"], s["kind"], int(s["size"])) for s in doc["sources"]]
    if sources[0].kind != "input" or sources[0].name != doc["input"]["population"]:
        raise ArtifactError(f"{where}: the first source must be the input population the host runs")
    if sum(s.kind == "input" for s in sources) != 1:
        raise ArtifactError(f"{where}: there must be exactly one input source")
    if int(np.prod(doc["input"]["shape"])) != sources[0].size:
        raise ArtifactError(f"{where}: the input population's shape {doc['input']['shape']} and size disagree")
    for s in sources[1:]:
        if s.size > HEMISPHERES * ROWS_PER_HEMISPHERE:  # each bias source needs a row of a hemisphere
            raise ArtifactError(f"{where}: bias source {s.name!r} of {s.size} sources cannot have rows on the chip")
    return sources


def _load_leak(p: dict, where: str) -> dict[str, float] | None:
    """A population's ``leak`` entry, its weight factor recomputed (the gain it gives is the plan's) and its time
    constants checked against its parameters and decays."""
    if "leak" not in p:
        return None
    leak = {k: float(v) for k, v in p["leak"].items()}
    syn_decay = leak.get("syn_decay")
    tau_syn = TAU_SYN if syn_decay is None else time_constant(syn_decay)
    written = (p["parameters"]["tau_m"], p["parameters"]["tau_syn_E"], p["parameters"]["tau_syn_I"])
    wanted = (time_constant(leak["decay"]), tau_syn, tau_syn)
    if not np.allclose(written, wanted, rtol=1e-9) or not np.allclose((leak["tau_m"], leak["tau_syn"]), wanted[:2]):
        raise ArtifactError(
            f"{where}: population {p['name']!r} writes tau_m, tau_syn_E, tau_syn_I = {list(written)} µs; its decays "
            f"need {list(wanted)}"
        )
    leak["weight_factor"] = leak_factor(wanted[0], tau_syn, leak["decay"], syn_decay)
    return leak


def _load_populations(doc: dict, where: str) -> list[PopulationPlan]:
    populations = []
    for p in doc["populations"]:
        if sum(p["hemisphere_neurons"]) != p["size"] or int(np.prod(p["shape"])) != p["size"]:
            raise ArtifactError(
                f"{where}: population {p['name']!r} of shape {p['shape']} and size {p['size']} places "
                f"{p['hemisphere_neurons']} neurons on the hemispheres"
            )
        if p["depth"] > len(doc["populations"]):
            raise ArtifactError(f"{where}: population {p['name']!r} has depth {p['depth']}, deeper than the network")
        populations.append(
            PopulationPlan(
                p["name"],
                p["role"],
                tuple(p["shape"]),
                {k: float(v) for k, v in p["parameters"].items() if k in RANGES},
                float(p["threshold_cadc"]),
                float(p["lsb_per_unit"]),
                int(p["depth"]),
                float(p["initial"]),
                (int(p["hemisphere_neurons"][0]), int(p["hemisphere_neurons"][1])),
                _load_leak(p, where),
            )
        )
    for h in range(HEMISPHERES):
        used = sum(p.hemisphere[h] for p in populations)
        if used > NEURONS_PER_HEMISPHERE:
            raise ArtifactError(
                f"{where}: hemisphere {h} holds {used} neurons; BrainScaleS-2 has {NEURONS_PER_HEMISPHERE}"
            )
    return populations


def _load_projections(
    doc: dict, arrays: _Arrays, sources: list[SourcePlan], populations: list[PopulationPlan]
) -> list[ProjectionPlan]:
    where = arrays.where
    size_of = {s.name: s.size for s in sources} | {p.name: p.size for p in populations}
    names = [p.name for p in populations]
    projections = []
    for q in doc["projections"]:
        what = f"projection {q['name']!r}"
        if q["delay"] != 0:
            raise ArtifactError(
                f"{where}: {what} has delay {q['delay']}; BrainScaleS-2 synapses have none (pynn-brainscales refuses a "
                "delay other than 0)"
            )
        if q["pre"] not in size_of:
            raise ArtifactError(f"{where}: {what} names no source or population {q['pre']!r}")
        if q["post"] not in names:
            raise ArtifactError(f"{where}: {what} names no population {q['post']!r}")
        post = names.index(q["post"])
        pre_index = arrays.integers(q["pre_index"], f"{what} pre_index", None, 0, size_of[q["pre"]] - 1)
        post_index = arrays.integers(
            q["post_index"], f"{what} post_index", len(pre_index), 0, populations[post].size - 1
        )
        weights = arrays.integers(q["weights"], f"{what} weights", len(pre_index), 1, WEIGHT_MAX)
        projections.append(
            ProjectionPlan(
                q["name"],
                q["pre"],
                post,
                q["receptor"],
                pre_index.astype(np.int32),
                post_index.astype(np.int32),
                weights.astype(np.uint8),
                dict(q.get("report", {})),
            )
        )
    return projections


def _load_readout(doc: dict, arrays: _Arrays, populations: list[PopulationPlan]) -> dict[str, Any]:
    where = arrays.where
    readout = dict(doc["readout"])
    sizes = {p.name: p.size for p in populations}
    if readout["population"] not in sizes:
        raise ArtifactError(f"{where}: the readout names no population {readout['population']!r}")
    size = sizes[readout["population"]]
    if int(np.prod(readout["shape"])) != size:
        raise ArtifactError(f"{where}: the readout's shape {readout['shape']} does not hold its {size} neurons")
    if "scale" in readout:
        scale = arrays.get(readout["scale"], "the readout scale")
        if scale.dtype.kind != "f" or scale.size not in (1, size):
            raise ArtifactError(
                f"{where}: the readout scale must be 1 or {size} numbers, got {scale.dtype} {scale.shape}"
            )
        readout["scale"] = scale.astype(np.float32)
    elif readout["kind"] == "spikes":
        raise ArtifactError(f"{where}: a spike readout needs its scale")
    return readout


def load(source: Any) -> Netlist:
    """Read what :func:`save` wrote (an Artifact, whose files are checked against its manifest, a Folder or a
    path); an ArtifactError names the file and what is wrong."""
    files, doc, where = open_description(source, DESCRIPTION, FORMAT, FORMAT_VERSION, NETLIST_SCHEMA)
    arrays = _Arrays(files, where)
    host = files.read_graph(doc["input"]["host_graph"])
    sources = _load_sources(doc, where)
    populations = _load_populations(doc, where)
    names = [s.name for s in sources] + [p.name for p in populations]
    if len(set(names)) != len(names):
        raise ArtifactError(f"{where}: source and population names repeat")
    fed = host.types()[host.outputs[0]].shape if len(host.inputs) == 1 and len(host.outputs) == 1 else None
    if fed is None or int(np.prod(fed)) != sources[0].size:
        raise ArtifactError(
            f"{files.where(doc['input']['host_graph'] + '.json')}: a host graph has one input and one output, the "
            f"current of the {sources[0].size} input neurons"
        )
    noise = doc["noise"]
    host_input = {
        "name": sources[0].name,
        "shape": list(doc["input"]["shape"]),
        "initial": float(doc["input"]["initial"]),
    }
    if "decay" in doc["input"]:
        if "bias" not in doc["input"]:
            raise ArtifactError(f"{where}: a leaky input population needs its bias")
        bias = arrays.get(doc["input"]["bias"], "the input population's bias")
        if bias.dtype.kind != "f" or bias.shape != (sources[0].size,):
            raise ArtifactError(
                f"{where}: the input population's bias must be {sources[0].size} numbers, got {bias.dtype} {bias.shape}"
            )
        host_input |= {"decay": float(doc["input"]["decay"]), "strict": bool(doc["input"].get("strict", False))}
        host_input["bias"] = bias.astype(np.float32)
    netlist = Netlist(
        host,
        host_input,
        sources,
        populations,
        _load_projections(doc, arrays, sources, populations),
        _load_readout(doc, arrays, populations),
        (int(doc["rows"][0]), int(doc["rows"][1])),
        Noise(float(noise["mismatch"]), int(noise["mismatch_seed"]), float(noise["membrane"]), int(noise["seed"])),
        int(doc["timing"]["substeps"]),
        list(doc.get("notes", [])),
    )
    rows = _rows(_row_keys(netlist), [p.hemisphere[0] for p in populations])
    if rows != netlist.rows:
        raise ArtifactError(
            f"{where}: the projections need {list(rows)} synapse rows on the hemispheres; the netlist says "
            f"{list(netlist.rows)}"
        )
    return netlist


# -- emulation -----------------------------------------------------------------------------------------------


def emulated(netlist: Netlist) -> list[emulator.Neurons]:
    """The netlist's populations as the emulator's neurons of this chip instance (the netlist's mismatch)."""
    if netlist.emulated is None:
        neurons = [
            emulator.Neurons(
                p.name,
                p.size,
                tau_m=p.parameters["tau_m"],
                tau_syn_exc=p.parameters["tau_syn_E"],
                tau_syn_inh=p.parameters["tau_syn_I"],
                tau_refrac=p.parameters["tau_refrac"],
                v_rest=p.parameters["v_rest"],
                v_reset=p.parameters["v_reset"],
                v_thresh=p.parameters["v_thresh"],
                gain_exc=p.gain,
                gain_inh=p.gain,
                spiking=p.role != "readout",
            )
            for p in netlist.populations
        ]
        netlist.emulated = emulator.with_mismatch(neurons, netlist.noise.mismatch, netlist.noise.mismatch_seed)
    return netlist.emulated


def input_spikes(netlist: Netlist, x: np.ndarray, steps: int) -> np.ndarray:
    """The input population's spikes (B, steps, size), bool: its neurons run on the host as the float SNN runs
    them (float32: v starts at ``initial``, v = decay v + current + bias, a spike where v >= 1 (v > 1 where
    ``strict``), then v = 0; an IF neuron has decay 1 and no bias)."""
    from neurodeploy.ir import interpret

    host = netlist.host
    current = interpret.run(host, np.asarray(x, np.float32))[host.outputs[0]]
    current = np.asarray(current, np.float32).reshape(len(x), -1)
    decay = np.float32(netlist.input.get("decay", 1.0))
    if "bias" in netlist.input:
        current = current + np.asarray(netlist.input["bias"], np.float32).reshape(1, -1)
    strict = bool(netlist.input.get("strict", False))
    v = np.full(current.shape, np.float32(netlist.input["initial"]), np.float32)
    out = np.zeros((len(x), steps, current.shape[1]), bool)
    for t in range(steps):
        if decay != 1:
            v *= decay
        v += current
        fired = v > np.float32(1.0) if strict else v >= np.float32(1.0)
        v[fired] = 0.0
        out[:, t] = fired
    return out


def synapses_out(netlist: Netlist) -> dict[str, np.ndarray]:
    """Per input population and chip population, the synapses leaving each neuron on the chip (int64, flat)."""
    out = {netlist.sources[0].name: np.zeros(netlist.sources[0].size, np.int64)}
    out |= {p.name: np.zeros(p.size, np.int64) for p in netlist.populations}
    for q in netlist.projections:
        if q.pre in out:
            out[q.pre] += np.bincount(q.pre_index, minlength=len(out[q.pre]))
    return out


def run(
    netlist: Netlist,
    x: np.ndarray,
    steps: int,
    *,
    checkpoints: tuple[int, ...] = (),
    counts: bool = False,
    noise: Noise | None = None,
    offset: int = 0,
    engine: str = "numpy",
    device: str | None = None,
    readout_delay: int = 0,
) -> dict[str, Any]:
    """Emulate ``steps`` µs steps on analog inputs x (B, *input shape): the outputs after ``steps`` and after each
    checkpoint, the spikes per sample of the input population and every spiking chip population (per neuron when
    ``counts``), SynOps. ``noise`` replaces the netlist's trial-to-trial noise (its mismatch stays the chip's);
    ``offset`` is the index of x's first sample in the data set (it keys the trial-to-trial noise). ``engine``:
    numpy (:mod:`neurodeploy_pynn.brainscales2_emulator`) or torch (:mod:`neurodeploy_pynn.brainscales2_torch`,
    the same float64 operations on ``device``). ``readout_delay`` D: the output after c steps leaves out the
    first s = min(D, c // 2) steps (:func:`neurodeploy.readout.readout_skip`): a membrane readout from its V
    after s and c steps (:func:`membrane_readout`), a spike readout from the spikes of steps s + 1 .. c; the
    spikes counted are those of every step."""
    if engine not in ("numpy", "torch"):
        raise ValueError(f"engine must be numpy or torch, got {engine!r}")
    if engine == "numpy" and device is not None:
        raise ValueError(f"device {device!r} is for the torch engine; the numpy engine runs on the CPU")
    batch = len(x)
    wanted = sorted({c for c in checkpoints if 1 <= c <= steps} | {steps})
    substeps = netlist.substeps
    spikes_in = input_spikes(netlist, x, steps)
    sources = {netlist.sources[0].name: spikes_in}
    for s in netlist.sources[1:]:
        sources[s.name] = np.ones((batch, steps, s.size), bool)
    sizes = {s.name: s.size for s in netlist.sources}
    readout = netlist.readout
    top = netlist.populations[netlist.index(readout["population"])]

    def mark(p: PopulationPlan, c: int) -> int:
        """Integration steps after which population p has seen c steps of input (its latency: depth - 1)."""
        return c * substeps + p.depth - 1

    skip = {c: readout_skip(readout_delay, c) for c in wanted}
    marks = tuple(sorted({mark(p, c) for p in netlist.populations for c in {0, *wanted, *skip.values()}}))
    chip_noise = noise if noise is not None else netlist.noise
    if engine == "torch":
        from neurodeploy_pynn import brainscales2_torch

        engine_run = functools.partial(brainscales2_torch.run, device=device)
    else:
        engine_run = emulator.run
    result = engine_run(
        emulated(netlist),
        [
            emulator.Synapses(q.pre, netlist.populations[q.post].name, q.receptor, q.pre_index, q.post_index, q.weights)
            for q in netlist.projections
        ],
        sources,
        sizes,
        integration_steps=max(marks),
        substeps=substeps,
        marks=marks,
        record_v=(top.name,) if readout["kind"] == "membrane" else (),
        noise=chip_noise,
        offset=offset,
    )

    def counted(name: str, c: int) -> np.ndarray:
        """Spikes per neuron over the first c steps of a population (the input's on the host)."""
        if name == netlist.sources[0].name:
            return spikes_in[:, :c].sum(axis=1, dtype=np.int64)
        p = netlist.populations[netlist.index(name)]
        return result.counts[mark(p, c)][name] - result.counts[mark(p, 0)][name]

    spiking = [netlist.sources[0].name] + [p.name for p in netlist.populations if p.role != "readout"]
    shapes = {netlist.sources[0].name: tuple(netlist.input["shape"])} | {p.name: p.shape for p in netlist.populations}
    fan_out = synapses_out(netlist)
    per_step = input_synapses(netlist.host)
    (input_name,) = netlist.host.inputs

    def synops(c: int) -> dict[str, np.ndarray]:
        """SynOps per sample over the first c steps: each spike times the synapses leaving its neuron."""
        out = {name: counted(name, c) @ fan_out[name] for name in spiking}
        return {input_name: np.full(batch, c * per_step, np.int64), **out}

    outputs = {}
    for c in wanted:
        s = skip[c]
        if readout["kind"] == "membrane":
            early = result.v[mark(top, s)][top.name] if s else None
            value = membrane_readout(top, result.v[mark(top, c)][top.name], c, early, s)
        else:
            late = counted(top.name, c) - counted(top.name, s)
            value = late / (c - s) * np.asarray(readout["scale"], np.float64).reshape(-1)
        outputs[c] = value.reshape(batch, *readout["shape"]).astype(np.float32)
    return {
        "outputs": outputs[steps],
        "checkpoints": {c: outputs[c] for c in wanted if c in checkpoints},
        "spikes": {name: counted(name, steps).sum(axis=1) for name in spiking},
        "checkpoint_spikes": {
            c: {name: counted(name, c).sum(axis=1) for name in spiking} for c in wanted if c in checkpoints
        },
        "counts": {name: counted(name, steps).reshape(batch, *shapes[name]) for name in spiking} if counts else {},
        "neurons": {name: int(np.prod(shapes[name])) for name in spiking},
        "synops": synops(steps),
        "checkpoint_synops": {c: synops(c) for c in wanted if c in checkpoints},
    }
