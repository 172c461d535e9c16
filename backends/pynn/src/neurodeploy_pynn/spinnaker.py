"""A converted network as sPyNNaker runs it: ``IF_curr_delta`` populations (``IF_curr_exp`` for a spiking import's
synaptic currents) and connection lists of 16-bit weight words, planned from the core's lowering
(:mod:`neurodeploy.lowering`), written as a netlist, and run by the bit-exact emulator
(:mod:`neurodeploy_pynn.spinnaker_emulator`).

**Neurons.** sPyNNaker has no integrate-and-fire neuron: every LIF leaks towards ``alpha = I R + V_rest`` by
``exp_TC = expk(-ts / tau_m)`` per tick and resets to ``V_reset``. A converted population (threshold 1 in float
units, reset to zero: the target converts with ``reset=zero``) becomes ``IF_curr_delta`` with ts = 1 ms,
``tau_m`` = 1024 ms (ts / tau_m = 2**-10, an exact s16.15 quotient), ``cm`` = 1 nF, ``V_rest = V_reset = 0``,
``tau_refrac`` = 0 (no refractory tick: a converted neuron may fire every tick) and ``v_thresh`` = θ mV, a power
of two chosen per population so that no input can push ``alpha`` out of ±2**14 mV (the s16.15 range is ±2**16).
One tick raises V by ``g I`` for an input current I (nA), g = (1 - exp_TC) R = 33/32 exactly on the chip, and
lets it leak by (1 - exp_TC) = 33/32768 of itself: about 0.1% per tick, 6% over 64 ticks. A float weight w
(thresholds) is sent as ``w θ / g`` nA, a bias b as ``i_offset = b θ / g``.

**Leaky neurons.** A LIF layer of a spiking import (NIR) keeps sPyNNaker's leak as its own: tau_m = -ts /
ln(decay), on the s16.15 grid (a decay at or below e**-16 takes tau_m = TAU_MIN, where exp_TC is 0), and the
chip's decay is exp_TC as sPyNNaker computes it from the encoded tau_m (:func:`membrane`), which the report's
``leak`` gives next to the decay asked for. Its gain g = (1 - exp_TC) R is the population's own: a weight w
(thresholds) is ``w θ / g`` nA, the drive (v_leak) ``i_offset``, and θ is chosen as above with the leak's steady
state, alpha = summed θ / (1 - exp_TC). A layer with a synaptic current (CubaLIF) is ``IF_curr_exp`` with
tau_syn_E = tau_syn_I = -ts / ln(synaptic decay): an input adds ``decay_s1615(w, init)`` to the current, which
keeps decay / 2**32 of itself per tick (``exp_synapse_utils.h``, :func:`synapse`), so a weight is ``w θ / (g init)``
nA and the current's steady state (1 / (1 - decay) times a tick's input) counts in θ's bound; a synaptic decay at
or below e**-16 is a delta synapse. NIR's ``v > threshold`` is a ``v_thresh`` one s16.15 step above θ (exact on the
chip's raw compare). The initial V of a layer deeper than the input is set so that the chip's leak brings it to 0
at its first input's tick despite the drive flowing from tick 0. Refused with the layer and its numbers
(ConversionError): a reset other than to zero (sPyNNaker resets V to V_reset; read the file with ``-I
reset=zero``), a v_reset other than 0, decays or gains that differ between neurons, several spikes a step, and a
time constant above TAU_MAX (a decay above e**(-ts / TAU_MAX)).

**Weights.** Each population's two ring buffers (excitatory, inhibitory) get the shift sPyNNaker computes from
``max_expected_summed_weight`` (set in the netlist to the largest sum of one receptor's weights into one neuron, so
that no 16-bit slot saturates even when every input spikes at once); a weight becomes the word ``rint(|w| *
2**(15 - shift))`` (:func:`neurodeploy_pynn.s1615.weight_words`), which the netlist writes back as the weight
``word * 2**(shift - 15)`` nA, so sPyNNaker's own rounding gives the same word. The quantization report counts,
per projection, the weights that became 0 and the largest rounding error in thresholds.

**Time.** Population k first receives input at tick depth(k) (one tick per synapse on the longest path from the
input population; a residual branch gets the extra delay that makes it arrive with the others). Its bias current
flows from tick 0, so its initial V is lowered by the charge of the depth(k) ticks before (capped below the
threshold). A run of T graph steps takes T + delay ticks; population k's spikes count over ticks depth(k) ..
depth(k) + T - 1, and a membrane readout is (V after depth + T ticks - V after depth ticks) / (θ T).

**Input.** The host computes the first population's current per sample (:attr:`Netlist.host`, float32, in
thresholds per tick), clips it to ±:data:`INPUT_CLIP` and rounds ``i_offset`` to s16.15, which the PyNN script
sets per neuron before each sample's run (exactly, as it is a multiple of 2**-15), plus the population's own
constant current (a leaky input layer's drive; 0 for a converted network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.artifact import open_description
from neurodeploy.errors import ArtifactError, ConversionError, ResourceError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import LIF, describe_leaky
from neurodeploy.ir.serialize import dumps_json, save_graph, write_npz
from neurodeploy.lowering import (
    Population,
    Rules,
    largest_layers,
    leaky_problem,
    listed_count,
    machine_advice,
    synapse_list,
)
from neurodeploy.lowering import lower as lower_graph
from neurodeploy.metrics import input_synapses
from neurodeploy.readout import readout_skip
from neurodeploy.schema import Bool, Dict, Int, List, Number, Str
from neurodeploy_pynn import s1615

MAX_LISTED = 1 << 29
"""The most synapses the spinnaker target lists (536,870,912). Each synapse is a row of PyNN's FromListConnector:
10 bytes in the artifact (pre and post int32, the weight word uint16), four float64 columns (32 bytes) in
run_pynn.py before sPyNNaker copies them, and about 23 bytes on the compiling machine (measured: SqueezeNet's
381.6 million synapses on 13 boards compiled in 8.9 GB resident at most). VGG-19's 28.5 billion would need hundreds
of GB: refused before they are listed."""
MAX_COMPOSED = 1 << 27
"""The most synapses one chain of ops composed in lowering may list (134,217,728; a pooling that is no
convolution's block before a convolution: ResNet-50's and ShuffleNet's stems list 115.6 and 75.9 million). Lowering
builds such a list at once, before the whole network is counted against :data:`MAX_LISTED`, with a few times its
size in temporaries: with the whole cap here, ResNet-50 on 47 boards ran out of 16 GB in lowering."""
RULES = Rules(target="spinnaker", chip="SpiNNaker", delayed_conv=True, leaky=True, max_dense_entries=MAX_COMPOSED)
"""Every synapse becomes a connection list, so a convolution takes a delay like any other; sPyNNaker's neurons leak
and have exponential synapses, so leaky neurons of a spiking import map (see "Leaky neurons")."""

TIME_STEP = 1.0
"""ms per tick (sPyNNaker's default machine time step)."""
CELL = "IF_curr_delta"
CELL_EXP = "IF_curr_exp"
"""The cell of a leaky population with a synaptic current (a CubaLIF layer): its exponential synapses hold it."""
CELLS = (CELL, CELL_EXP)
TAU_M = 1024.0
"""ms: ts / tau_m = 2**-10, the leak per tick about 0.1%."""
TAU_MAX = 2.0**15
"""ms: the longest time constant (tau_m, tau_syn) planned: ts / tau is then 2**-15, the smallest s16.15 quotient; a
longer one gives ts / tau = 0, where exp_TC is 1 (no leak) and sPyNNaker's synapse decay expulr(0) is 0."""
TAU_MIN = 1.0 / 16
"""ms: the shortest time constant planned: at ts / tau = 16 expk and expulr give 0 (the chip keeps nothing of V or
of the synaptic current from one tick to the next), as every smaller decay, down to 0, rounds to."""
RESET_FIX = "-I reset=zero"
"""The import option that reads a NIR file's neurons as sPyNNaker resets them (to V_reset = 0)."""
CM = 1.0
"""nF."""
ALPHA_LIMIT = 2.0**14
"""mV: the largest |I R| a planned population can see (the s16.15 range is ±2**16: margin for V and the sums)."""
INPUT_CLIP = 4.0
"""Thresholds per tick: the input current is clipped to ±this (a neuron that resets to zero fires at most once a
tick, so a current above 1 adds nothing)."""
READOUT_THRESHOLD = 2.0**15
"""mV: a readout population's threshold, above any V it can reach (|V| <= |alpha| <= ALPHA_LIMIT)."""
NEURONS_PER_CORE = 256
"""sPyNNaker's default neurons per core (``DEFAULT_MAX_ATOMS_PER_CORE``)."""
CHIPS_PER_BOARD = 48
"""Chips on a SpiNN-5 board (the 48-chip board sPyNNaker runs on; the SpiNNaker1M machine is 1200 of them)."""
CORES_PER_BOARD = 807
"""Cores of a SpiNN-5 board that run neurons: 48 chips of 18 ARM968 cores (Painkras et al., IEEE JSSC 48(8), 2013);
sPyNNaker 1!7.4.1's virtual board counts 856 working cores, 49 of which run its monitors (measured here: see the
README's file-size paragraph). A lower bound of what a network takes: sPyNNaker may add delay-extension cores."""
MAX_BOARDS = 1200
"""Boards of the largest machine, SpiNNaker1M: 1200 SpiNN-5 boards, 57,600 chips, 1,036,800 cores."""
MAX_DELAY = 64
"""Ticks: the longest delay planned (sPyNNaker reaches beyond 16 ticks with delay-extension cores)."""
RECEPTORS = ("excitatory", "inhibitory")


def check_machine(layers: list[tuple[str, int]], boards: int) -> None:
    """Refuse a network whose spiking neurons alone (``layers``: name and size, before any lowering), in slices of
    :data:`NEURONS_PER_CORE`, need more cores than ``boards`` SpiNN-5 boards have, naming the boards it needs."""
    cores = sum(-(-n // NEURONS_PER_CORE) for _, n in layers)
    per_board = CORES_PER_BOARD
    if cores <= boards * per_board:
        return
    need = -(-cores // per_board)
    largest = largest_layers(layers)
    advice = machine_advice("boards", need, MAX_BOARDS, f"SpiNNaker1M has {MAX_BOARDS} boards")
    raise ResourceError(
        f"the network has {sum(n for _, n in layers):,} spiking neurons (largest layers {largest}), {cores:,} cores "
        f"of {NEURONS_PER_CORE}; {boards} SpiNN-5 board(s) have {boards * per_board:,} for neurons ({CHIPS_PER_BOARD} "
        f"chips a board, less sPyNNaker's monitors): {advice}"
    )


def check_listed(counts: list[tuple[str, int]]) -> None:
    """Refuse a network whose synapses (``counts``: each population's incoming synapses, counted without listing
    them, :func:`neurodeploy.lowering.listed_count`) pass :data:`MAX_LISTED`, naming the largest and the bytes."""
    total = sum(n for _, n in counts)
    if total <= MAX_LISTED:
        return
    most = largest_layers([c for c in counts if c[1]])
    raise ResourceError(
        f"the network has {total:,} synapses (the most into {most}); the spinnaker target lists "
        f"each one (PyNN's FromListConnector: {10 * total / 1e9:,.1f} GB in the artifact, {32 * total / 1e9:,.1f} GB "
        f"of rows in run_pynn.py), at most {MAX_LISTED:,}: use a smaller input or fewer channels"
    )


def cell_parameters(threshold: float, tau_m: float = TAU_M, tau_syn: float | None = None) -> dict[str, float]:
    """The PyNN parameters of a planned population with threshold ``threshold`` mV, membrane time constant
    ``tau_m`` and, for ``IF_curr_exp``, synaptic time constant ``tau_syn`` (``i_offset`` and the initial ``v`` are
    per neuron, apart)."""
    out = {
        "tau_m": float(tau_m),
        "cm": CM,
        "v_rest": 0.0,
        "v_reset": 0.0,
        "v_thresh": float(threshold),
        "tau_refrac": 0.0,
    }
    if tau_syn is not None:
        out |= {"tau_syn_E": float(tau_syn), "tau_syn_I": float(tau_syn)}
    return out


@cache
def membrane(tau_m: float = TAU_M) -> tuple[int, float]:
    """(exp_TC raw s16.15, g) of a population with ``tau_m`` ms: the decay of V per tick and its rise per tick for an
    input of 1 nA, g = (1 - exp_TC) R mV/nA, from the constants the chip computes from the encoded parameters."""
    c = s1615.lif_constants(
        np.array([s1615.encode(TIME_STEP)]),
        np.array([s1615.encode(tau_m)]),
        np.array([s1615.encode(CM)]),
        np.array([0]),
    )
    return int(c.exp_tc[0]), (s1615.ONE - int(c.exp_tc[0])) * int(c.r_membrane[0]) / s1615.ONE**2


def gain(tau_m: float = TAU_M) -> float:
    """The rise of V per tick for an input of 1 nA, (1 - exp_TC) R, from the constants the chip computes."""
    return membrane(tau_m)[1]


@cache
def synapse(tau_syn: float) -> tuple[int, int]:
    """(decay, init) of ``IF_curr_exp``'s synapses with ``tau_syn`` ms, u0.32 raw, as the chip computes them
    (``exp_synapse_utils.h``): the synaptic current keeps decay / 2**32 of itself per tick, and a weight w nA adds
    ``decay_s1615(w, init)``, about w init / 2**32, to it."""
    decay, init = s1615.exp_synapse_constants(np.array([s1615.encode(TIME_STEP)]), np.array([s1615.encode(tau_syn)]))
    return int(decay[0]), int(init[0])


def time_constant(decay: float) -> float:
    """tau (ms, on the s16.15 grid) with exp(-ts / tau) = ``decay`` per tick; TAU_MIN for decays at or below
    exp(-ts / TAU_MIN) (the chip's decay is 0 there)."""
    if decay <= math.exp(-TIME_STEP / TAU_MIN):
        return TAU_MIN
    return round(-TIME_STEP / math.log(decay) * s1615.ONE) / s1615.ONE


def _threshold(summed: float, tau_m: float = TAU_M, words: float = 0.0) -> float:
    """θ (mV, a power of two, at most 1) so that ``summed`` thresholds of input per tick (for ``IF_curr_exp`` the
    synaptic current's largest) keep |alpha| = I R = summed θ R / g = summed θ / (1 - exp_TC) and the current
    I = summed θ / g within ALPHA_LIMIT, and so that ``words``, the largest sum of weights (nA) one tick brings a
    neuron at θ = 1, stays within it too (a shifted ring-buffer sum of 2**16 nA would wrap)."""
    exp_tc, g = membrane(tau_m)
    leak = (s1615.ONE - exp_tc) / s1615.ONE
    per_theta = max(summed / leak, summed / g, words)
    if per_theta <= 0:
        return 1.0
    return 2.0 ** min(0, math.floor(math.log2(ALPHA_LIMIT / per_theta)))


def _raw(values_mv: Any) -> np.ndarray:
    """mV or nA as s16.15 raw bits, rounded half to even (values already on the grid stay exact)."""
    return np.rint(np.asarray(values_mv, np.float64) * s1615.ONE).astype(np.int64)


@dataclass
class PopulationPlan:
    """One population as sPyNNaker holds it: ``threshold`` θ (mV), ``i_offset`` and ``v_init`` raw s16.15 per neuron
    (graph C order), ``max_summed`` the ``max_expected_summed_weight`` per receptor (nA) and ``shifts`` the ring
    buffer shifts sPyNNaker derives from them; ``depth`` the first tick of its input. ``cell`` (``IF_curr_delta``,
    or ``IF_curr_exp`` for a synaptic current), ``tau_m`` and ``tau_syn`` (ms) its time constants, ``strict``
    whether it fires on V > θ (``v_thresh`` one s16.15 step above θ), ``leak`` what a leaky population's decays
    became on the chip (the report's ``leak``; empty for a converted population)."""

    name: str
    role: str
    shape: tuple[int, ...]
    threshold: float
    i_offset: np.ndarray
    v_init: np.ndarray
    max_summed: tuple[float, float]
    shifts: tuple[int, int]
    depth: int
    cell: str = CELL
    tau_m: float = TAU_M
    tau_syn: float | None = None
    strict: bool = False
    leak: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def v_thresh(self) -> float:
        if self.role == "readout":
            return READOUT_THRESHOLD
        return self.threshold + (1.0 / s1615.ONE if self.strict else 0.0)

    @property
    def gain(self) -> float:
        """mV per tick for a current of 1 nA, (1 - exp_TC) R."""
        return gain(self.tau_m)

    @property
    def weight_gain(self) -> float:
        """mV that a weight of 1 nA adds to V over the ticks: g, and for ``IF_curr_exp`` g init / 2**32 in the tick
        it arrives (its synaptic current then decays)."""
        return self.gain * (synapse(self.tau_syn)[1] / 2.0**32 if self.tau_syn is not None else 1.0)

    def parameters(self) -> dict[str, float]:
        """The population's PyNN parameters (:func:`cell_parameters`)."""
        return cell_parameters(self.v_thresh, self.tau_m, self.tau_syn if self.cell == CELL_EXP else None)


@dataclass
class ProjectionPlan:
    """Synapses of one receptor from population ``pre`` to ``post`` (indices), ``delay`` ticks: connection lists
    (graph C order indices) and 16-bit words; ``report`` what the rounding did."""

    name: str
    pre: int
    post: int
    receptor: str
    delay: int
    pre_index: np.ndarray
    post_index: np.ndarray
    words: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class Netlist:
    """A planned network: the host graph (input -> the first population's current), populations, projections,
    and the readout (``kind`` membrane or spikes, ``population``, ``output``, ``shape``, ``scale`` for spikes)."""

    host: Graph
    populations: list[PopulationPlan]
    projections: list[ProjectionPlan]
    readout: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    emulated: tuple[list[Any], list[Any]] | None = field(default=None, repr=False, compare=False)
    """The emulator's populations and projections, built on the first run (:func:`emulated`)."""

    @property
    def delay(self) -> int:
        return max(p.depth for p in self.populations)


def _span(value: Any) -> str:
    """A parameter's values in a message: one number, or the lowest..highest."""
    if value is None:
        return "none"
    low, high = float(np.min(value)), float(np.max(value))
    return f"{low:.6g}" if low == high else f"{low:.6g}..{high:.6g}"


def reset_refusal(layer: str, reset: str, kind: str = "LIF") -> str:
    """The error for neurons of a spiking import (``kind`` op ``layer``) that reset otherwise than to zero."""
    return (
        f"{kind} '{layer}' resets by {reset}: sPyNNaker's neurons reset V to v_reset, the spinnaker target to 0 only; "
        f"read the file with {RESET_FIX} (NIR's own reset), or compile it for the reference or loihi target"
    )


def _range_refusal(layer: str, what: str, decay: float) -> str:
    longest = math.exp(-TIME_STEP / TAU_MAX)
    return (
        f"LIF '{layer}': its {what} decays by a factor {decay:.9g} per step, which needs a time constant of "
        f"{-TIME_STEP / math.log(decay) if 0 < decay < 1 else math.inf:.6g} ms at ts = {TIME_STEP:g} ms; "
        f"sPyNNaker's s16.15 arithmetic takes at most {TAU_MAX:g} ms (a decay of at most {longest:.9g}): the "
        "spinnaker target does not run it (train a shorter time constant, or compile for the reference target)"
    )


def leak_model(pop: Population) -> tuple[str, float, float | None, dict[str, Any]]:
    """A population's cell, tau_m, tau_syn (ms) and its leak report: a converted population (or a LIF layer with
    decay 1) takes the IF mapping's tau_m = TAU_M; a leaky one tau_m = -ts / ln(decay), its synaptic current
    (where the decay is not 0) ``IF_curr_exp``'s tau_syn = -ts / ln(syn_decay). The report holds the decays asked
    for and the chip's: exp_TC (s16.15) and the synapses' decay and init (u0.32) as the chip computes them. A
    ConversionError names a decay outside what the chip's time constants reach."""
    if not pop.leaky:
        return CELL, TAU_M, None, {}
    tau_m = TAU_M
    if pop.decay != 1.0:
        if not 0.0 <= pop.decay < math.exp(-TIME_STEP / TAU_MAX):
            raise ConversionError(_range_refusal(pop.name, "v", pop.decay))
        tau_m = time_constant(pop.decay)
    exp_tc = membrane(tau_m)[0]
    leak: dict[str, Any] = {
        "decay": float(pop.decay),
        "tau_m_ms": tau_m,
        "exp_tc_raw": exp_tc,
        "decay_chip": exp_tc / s1615.ONE,
        "gain_mv_per_na": gain(tau_m),
    }
    if pop.syn_decay is None:
        return CELL, tau_m, None, leak
    syn = float(pop.syn_decay)
    leak["syn_decay"] = syn
    if syn <= math.exp(-TIME_STEP / TAU_MIN):  # the chip's synapse would forget it all: a delta synapse
        leak |= {"syn_decay_chip": 0.0, "synapse": "delta (the current lasts one step)"}
        return CELL, tau_m, None, leak
    if not syn < math.exp(-TIME_STEP / TAU_MAX):
        raise ConversionError(_range_refusal(pop.name, "synaptic current", syn))
    tau_syn = time_constant(syn)
    decay, init = synapse(tau_syn)
    leak |= {
        "tau_syn_ms": tau_syn,
        "syn_decay_raw": decay,
        "syn_decay_chip": decay / 2.0**32,
        "syn_init_raw": init,
        "syn_init_chip": init / 2.0**32,
    }
    return CELL_EXP, tau_m, tau_syn, leak


def plan(graph: Graph) -> Netlist:
    """Lower ``graph`` (a converted SNN with reset to zero, or a spiking import whose neurons reset to zero) and fit
    it to sPyNNaker: cells, thresholds, currents, shifts and words (see the module docstring). A ConversionError
    names an op that does not map, a reset other than to zero, a decay out of range or a delay too long."""
    for op in graph.ops:
        if not isinstance(op, LIF):
            continue
        if op.threshold is not None and op.reset != "zero":
            raise ConversionError(reset_refusal(op.name, op.reset))
        problem = leaky_problem(op)
        if problem is not None:
            numbers = describe_leaky(op)
            if op.v_reset is not None:
                numbers += f" (v_reset {_span(op.v_reset)}, threshold {_span(op.threshold)})"
            raise ConversionError(f"LIF '{op.name}': {problem}; the spinnaker target does not run it ({numbers})")
    lowered = lower_graph(graph, RULES)
    check_listed(
        [
            (pop.name, sum(listed_count(i.synapse, pop.shape) for i in lowered.incoming(k)))
            for k, pop in enumerate(lowered.populations)
        ]
    )
    populations: list[PopulationPlan] = []
    projections: list[ProjectionPlan] = []
    for k, pop in enumerate(lowered.populations):
        synapses = []
        for source, spec, extra, name in lowered.incoming(k):
            listed = synapse_list(spec, pop.shape)
            delay = 1 + int(extra)
            if delay > MAX_DELAY:
                raise ConversionError(
                    f"population {pop.name!r}: the synapse from {lowered.populations[source].name!r} needs a delay "
                    f"of {delay} ticks; the spinnaker target plans at most {MAX_DELAY}"
                )
            synapses.append((source, listed, delay, name))
        cell, tau_m, tau_syn, leak = leak_model(pop)
        g = gain(tau_m)
        # what the synaptic current keeps per tick and what a weight of 1 nA adds to it (delta: 0 and 1)
        syn_keep, syn_init = (synapse(tau_syn)[0] / 2.0**32, synapse(tau_syn)[1] / 2.0**32) if tau_syn else (0.0, 1.0)
        size = int(np.prod(pop.shape))
        bias = np.asarray(pop.bias, np.float64).reshape(-1)
        pos, neg = np.zeros(size), np.zeros(size)
        for _, listed, _, _ in synapses:
            w = np.asarray(listed.weight, np.float64)
            pos += np.bincount(listed.rows, np.where(w > 0, w, 0), minlength=size)
            neg += np.bincount(listed.rows, np.where(w < 0, -w, 0), minlength=size)
        if pop.role == "input":
            summed = INPUT_CLIP + float(np.abs(bias).max(initial=0.0))
        else:
            summed = float((np.maximum(pos, neg) / (1.0 - syn_keep) + np.abs(bias)).max(initial=0.0))
        words = float(np.maximum(pos, neg).max(initial=0.0)) / (g * syn_init)
        theta = _threshold(summed, tau_m, words)
        to_na = theta / (g * syn_init)  # float thresholds of weight -> nA
        max_summed = (float(pos.max(initial=0.0)) * to_na, float(neg.max(initial=0.0)) * to_na)
        shifts = (s1615.ring_buffer_shift(max_summed[0]), s1615.ring_buffer_shift(max_summed[1]))
        i_offset = _raw(bias * theta / g)
        planned = PopulationPlan(
            pop.name,
            pop.role,
            tuple(pop.shape),
            theta,
            i_offset,
            np.zeros(size, np.int64),
            max_summed,
            shifts,
            int(pop.depth),
            cell=cell,
            tau_m=tau_m,
            tau_syn=tau_syn,
            strict=bool(pop.strict),
            leak=leak,
        )
        planned.v_init = _initial(pop, planned)
        populations.append(planned)
        for source, listed, delay, name in synapses:
            projections += _projections(name, source, k, listed, delay, to_na, shifts)
    readout = {
        "kind": lowered.readout.kind,
        "population": lowered.readout.population,
        "output": lowered.readout.output,
        "shape": list(lowered.readout.shape),
    }
    if lowered.readout.scale is not None:
        readout["scale"] = np.asarray(lowered.readout.scale, np.float32)
    return Netlist(lowered.host, populations, projections, readout)


def _initial(pop: Population, planned: PopulationPlan) -> np.ndarray:
    """Initial V (raw): the conversion's initial charge, less the bias of the ticks before the first input, below
    the threshold. A converted population neglects the leak over those ticks (V - depth g I_offset); a leaky one
    starts where the chip's leak brings it to its initial charge at tick depth, (V - g I (1 - e**d) / (1 - e)) /
    e**d for exp_TC = e (as far as ±ALPHA_LIMIT reaches). The input population starts at its initial charge; a
    readout at 0."""
    size = planned.size
    if pop.role == "readout":
        return np.zeros(size, np.int64)
    theta = planned.threshold
    i_offset = planned.i_offset
    v = np.full(size, _raw(pop.initial * theta), np.int64)
    if pop.role == "hidden" and pop.depth:
        g = planned.gain
        if not planned.leak:
            v = v - np.rint(pop.depth * i_offset * g).astype(np.int64)
        else:
            e = membrane(planned.tau_m)[0] / s1615.ONE
            if e > 0:
                charged = g * i_offset * (1 - e**pop.depth) / (1 - e)
                start = (v - charged) / e**pop.depth
                v = np.rint(np.clip(start, -float(_raw(ALPHA_LIMIT)), float(_raw(ALPHA_LIMIT)))).astype(np.int64)
    top = int(_raw(theta)) - 1
    return np.clip(v, -int(_raw(ALPHA_LIMIT)), top)


def _projections(
    name: str,
    pre: int,
    post: int,
    listed: Any,
    delay: int,
    to_na: float,
    shifts: tuple[int, int],
) -> list[ProjectionPlan]:
    """A synapse list split by receptor (the sign of its weights) into words."""
    w = np.asarray(listed.weight, np.float64) * to_na
    out = []
    for r, receptor in enumerate(RECEPTORS):
        keep = w > 0 if r == 0 else w < 0
        if not keep.any():
            continue
        rounded = s1615.weight_words(np.abs(w[keep]), shifts[r])
        words = rounded.words
        live = words != 0
        error = np.abs(words.astype(np.float64) * rounded.resolution - np.abs(w[keep])) / to_na
        out.append(
            ProjectionPlan(
                f"{name}:{receptor}",
                pre,
                post,
                receptor,
                delay,
                np.asarray(listed.cols[keep][live], np.int32),
                np.asarray(listed.rows[keep][live], np.int32),
                words[live],
                {
                    "synapses": int(live.sum()),
                    "shift": int(shifts[r]),
                    "resolution_na": rounded.resolution,
                    "resolution_thresholds": rounded.resolution / to_na,
                    "zeroed": rounded.n_zeroed,
                    "wrapped": rounded.n_wrapped,
                    "max_error_thresholds": float(error.max(initial=0.0)),
                },
            )
        )
    return out


# -- the netlist files ---------------------------------------------------------------------------------------

FORMAT = "neurodeploy-pynn-netlist"
FORMAT_VERSION = 1
DESCRIPTION = "spinnaker.json"
ARRAYS = "spinnaker.npz"
HOST = "host"
SCRIPT = "run_pynn.py"
"""The PyNN script that rebuilds the netlist in sPyNNaker or NEST (:mod:`neurodeploy_pynn.run_pynn`)."""

_ARRAY = Dict({"array": Str()})
HOST_STEM = Str(
    pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,122}", meaning="the plain name of a graph of the artifact (no folders)"
)
_SHAPE = List(Int(1), min_len=1)
NETLIST_SCHEMA = Dict(
    {
        "format": Str(),
        "version": Int(),
        "simulator": Dict({"timestep_ms": Number(1e-6, 1e6), "sPyNNaker": Str()}),
        "gain_mv_per_na": Number(0, 1e6),
        "input": Dict(
            {
                "host_graph": HOST_STEM,
                "population": Str(),
                "current_clip": Number(0, ALPHA_LIMIT),
                "current_to_na": Number(0, 1e6),
            }
        ),
        "populations": List(
            Dict(
                {
                    "name": Str(),
                    "role": Str(choices=("input", "hidden", "readout")),
                    "shape": _SHAPE,
                    "size": Int(1),
                    "cell": Str(choices=CELLS),
                    "parameters": Dict(
                        {k: Number(-65536, 65536) for k in cell_parameters(1.0)},
                        {k: Number(TAU_MIN, TAU_MAX) for k in ("tau_syn_E", "tau_syn_I")},
                    ),
                    "threshold_mv": Number(0, 65536),
                    "i_offset": _ARRAY,
                    "v_init": _ARRAY,
                    "max_expected_summed_weight": List(Number(0, 65536), length=2),
                    "ring_buffer_shift": List(Int(0, 31), length=2),
                    "depth": Int(0, 1 << 20),
                    "neurons_per_core": Int(1),
                },
                {"gain_mv_per_na": Number(0, 1e6), "strict": Bool(), "leak": Dict()},
            ),
            min_len=1,
        ),
        "projections": List(
            Dict(
                {
                    "name": Str(),
                    "pre": Str(),
                    "post": Str(),
                    "receptor": Str(choices=RECEPTORS),
                    "delay_ticks": Int(1, MAX_DELAY),
                    "connector": Str(choices=("FromListConnector",)),
                    "pre_index": _ARRAY,
                    "post_index": _ARRAY,
                    "words": _ARRAY,
                    "shift": Int(0, 31),
                },
                {"report": Dict()},
            )
        ),
        "readout": Dict(
            {"kind": Str(choices=("membrane", "spikes")), "population": Str(), "output": Str(), "shape": _SHAPE},
            {"scale": _ARRAY},
        ),
    },
    {"notes": List(Str()), "delay": Int(0)},
)


def save(netlist: Netlist, folder: Path) -> list[str]:
    """Write spinnaker.json (the netlist: PyNN cell types and parameters, projections, what the host computes),
    spinnaker.npz (per neuron currents and initial V, the connection lists and words), the host graph and the PyNN
    script run_pynn.py; return the file names."""
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for k, p in enumerate(netlist.populations):
        arrays[f"{k}/i_offset"] = p.i_offset.astype(np.int32)
        arrays[f"{k}/v_init"] = p.v_init.astype(np.int32)
        pops.append(
            {
                "name": p.name,
                "role": p.role,
                "shape": list(p.shape),
                "size": p.size,
                "cell": p.cell,
                "parameters": p.parameters(),
                "gain_mv_per_na": p.gain,
                "strict": p.strict,
                "threshold_mv": p.threshold,
                "i_offset": {"array": f"{k}/i_offset"},
                "v_init": {"array": f"{k}/v_init"},
                "max_expected_summed_weight": list(p.max_summed),
                "ring_buffer_shift": list(p.shifts),
                "depth": p.depth,
                "neurons_per_core": NEURONS_PER_CORE,
            }
            | ({"leak": p.leak} if p.leak else {})
        )
    projections = []
    for j, q in enumerate(netlist.projections):
        for key in ("pre_index", "post_index", "words"):
            arrays[f"p{j}/{key}"] = getattr(q, key)
        projections.append(
            {
                "name": q.name,
                "pre": netlist.populations[q.pre].name,
                "post": netlist.populations[q.post].name,
                "receptor": q.receptor,
                "delay_ticks": q.delay,
                "connector": "FromListConnector",
                "pre_index": {"array": f"p{j}/pre_index"},
                "post_index": {"array": f"p{j}/post_index"},
                "words": {"array": f"p{j}/words"},
                "shift": netlist.populations[q.post].shifts[RECEPTORS.index(q.receptor)],
                "report": q.report,
            }
        )
    readout = {k: v for k, v in netlist.readout.items() if k != "scale"}
    readout["population"] = netlist.populations[netlist.readout["population"]].name
    if "scale" in netlist.readout:
        arrays["readout/scale"] = np.asarray(netlist.readout["scale"], np.float32)
        readout["scale"] = {"array": "readout/scale"}
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "simulator": {"timestep_ms": TIME_STEP, "sPyNNaker": "1!7.4.1"},
        "layout": "neurons of a population in the graph's C order of its shape (channels, height, width)",
        "units": "mV, nA, nF, ms (PyNN); i_offset and v_init arrays: s16.15 raw bits (value * 2**15)",
        "weights": "a projection's weight is words * 2**(shift - 15) nA, always positive: the receptor is its sign",
        "delay": netlist.delay,
        "gain_mv_per_na": gain(),
        "input": {
            "host_graph": HOST,
            "population": netlist.populations[0].name,
            "current_clip": INPUT_CLIP,
            "current_to_na": netlist.populations[0].threshold / netlist.populations[0].gain,
        },
        "populations": pops,
        "projections": projections,
        "readout": readout,
        "notes": list(netlist.notes),
    }
    (folder / DESCRIPTION).write_bytes(dumps_json(doc))
    write_npz(folder / ARRAYS, arrays)
    save_graph(netlist.host, folder, HOST)
    (folder / SCRIPT).write_bytes(Path(__file__).with_name(SCRIPT).read_bytes())
    return [DESCRIPTION, ARRAYS, f"{HOST}.json", f"{HOST}.npz", SCRIPT]


def load(source: Any) -> Netlist:
    """Read what :func:`save` wrote (an Artifact, whose files are checked against its manifest, a Folder or a
    path); an ArtifactError names the file and what is wrong."""
    files, doc, where = open_description(source, DESCRIPTION, FORMAT, FORMAT_VERSION, NETLIST_SCHEMA)
    arrays = files.read_npz(ARRAYS)
    host = files.read_graph(doc["input"]["host_graph"])

    def array(entry: dict, what: str, dtype: type, length: int | None, low: int, high: int) -> np.ndarray:
        key = entry["array"]
        if key not in arrays:
            raise ArtifactError(f"{files.where(ARRAYS)} has no array {key!r} ({what})")
        a = np.asarray(arrays[key])
        if a.dtype.kind not in "iu" or a.ndim != 1 or (length is not None and len(a) != length):
            raise ArtifactError(f"{where}: {what} must be {length or 'a list of'} integers, got {a.dtype} {a.shape}")
        if a.size and (int(a.min()) < low or int(a.max()) > high):
            raise ArtifactError(f"{where}: {what} holds values outside [{low}, {high}]")
        return a.astype(dtype)

    names = [p["name"] for p in doc["populations"]]
    if len(set(names)) != len(names):
        raise ArtifactError(f"{where}: population names repeat")
    populations = []
    for p in doc["populations"]:
        size = int(np.prod(p["shape"]))
        if size != p["size"]:
            raise ArtifactError(f"{where}: population {p['name']!r} has shape {p['shape']} but size {p['size']}")
        raw = (s1615.INT32_MIN, s1615.INT32_MAX)
        parameters = p["parameters"]
        tau_syn = parameters.get("tau_syn_E")
        if (p["cell"] == CELL_EXP) != (tau_syn is not None) or tau_syn != parameters.get("tau_syn_I"):
            raise ArtifactError(
                f"{where}: population {p['name']!r}: an {CELL_EXP} population has tau_syn_E = tau_syn_I, an {CELL} none"
            )
        populations.append(
            PopulationPlan(
                p["name"],
                p["role"],
                tuple(p["shape"]),
                float(p["threshold_mv"]),
                array(p["i_offset"], f"{p['name']} i_offset", np.int64, size, *raw),
                array(p["v_init"], f"{p['name']} v_init", np.int64, size, *raw),
                (float(p["max_expected_summed_weight"][0]), float(p["max_expected_summed_weight"][1])),
                (
                    s1615.ring_buffer_shift(p["max_expected_summed_weight"][0]),
                    s1615.ring_buffer_shift(p["max_expected_summed_weight"][1]),
                ),
                int(p["depth"]),
                cell=p["cell"],
                tau_m=float(parameters["tau_m"]),
                tau_syn=None if tau_syn is None else float(tau_syn),
                strict=bool(p.get("strict", False)),
                leak=dict(p.get("leak", {})),
            )
        )
    if populations[0].role != "input" or doc["input"]["population"] != names[0]:
        raise ArtifactError(f"{where}: the first population must be the input population the host feeds")
    if len(host.inputs) != 1 or len(host.outputs) != 1:
        raise ArtifactError(
            f"{files.where(doc['input']['host_graph'] + '.json')}: a host graph has one input and one output"
        )
    fed = host.types()[host.outputs[0]].shape
    if int(np.prod(fed)) != populations[0].size:
        raise ArtifactError(
            f"{files.where(doc['input']['host_graph'] + '.json')} computes a current of shape {tuple(fed)} for "
            f"population {names[0]!r} of {populations[0].size} neurons"
        )
    projections = []
    for q in doc["projections"]:
        for end in ("pre", "post"):
            if q[end] not in names:
                raise ArtifactError(f"{where}: projection {q['name']!r} names no population {q[end]!r}")
        pre, post = names.index(q["pre"]), names.index(q["post"])
        what = f"projection {q['name']!r}"
        pre_index = array(q["pre_index"], f"{what} pre_index", np.int32, None, 0, populations[pre].size - 1)
        post_index = array(
            q["post_index"], f"{what} post_index", np.int32, len(pre_index), 0, populations[post].size - 1
        )
        words = array(q["words"], f"{what} words", np.uint16, len(pre_index), 0, s1615.WEIGHT_WORD_MAX)
        shift = populations[post].shifts[RECEPTORS.index(q["receptor"])]
        if q["shift"] != shift:
            raise ArtifactError(f"{where}: {what} says shift {q['shift']}; its population's weights give {shift}")
        projections.append(
            ProjectionPlan(q["name"], pre, post, q["receptor"], int(q["delay_ticks"]), pre_index, post_index, words)
        )
    readout = dict(doc["readout"])
    if readout["population"] not in names:
        raise ArtifactError(f"{where}: the readout names no population {readout['population']!r}")
    readout["population"] = names.index(readout["population"])
    if "scale" in readout:
        key = readout["scale"]["array"]
        if key not in arrays:
            raise ArtifactError(f"{files.where(ARRAYS)} has no array {key!r} (the readout scale)")
        readout["scale"] = np.asarray(arrays[key], np.float32)
    elif readout["kind"] == "spikes":
        raise ArtifactError(f"{where}: a spike readout needs its scale")
    return Netlist(host, populations, projections, readout, list(doc.get("notes", [])))


# -- emulation -----------------------------------------------------------------------------------------------


def emulated(netlist: Netlist) -> tuple[list[Any], list[Any]]:
    """The netlist as the emulator's populations (:meth:`LifPopulation.from_pynn`: the parameters encoded as the
    host does, the constants derived as the chip does) and connection-list projections, built once per netlist."""
    from neurodeploy_pynn.spinnaker_emulator import LifPopulation, Projection

    if netlist.emulated is not None:
        return netlist.emulated
    populations = [
        LifPopulation.from_pynn(
            p.name,
            p.cell,
            p.size,
            time_step=TIME_STEP,
            shift_exc=p.shifts[0],
            shift_inh=p.shifts[1],
            i_offset=p.i_offset / s1615.ONE,  # multiples of 2**-15: encoded exactly
            v=p.v_init / s1615.ONE,
            **p.parameters(),
        )
        for p in netlist.populations
    ]
    projections = [
        Projection(
            netlist.populations[q.pre].name,
            netlist.populations[q.post].name,
            connections=(q.pre_index, q.post_index, q.words),
            receptor=q.receptor,
            delay=q.delay,
        )
        for q in netlist.projections
    ]
    netlist.emulated = (populations, projections)
    return netlist.emulated


def input_current(netlist: Netlist, x: np.ndarray) -> np.ndarray:
    """The input population's ``i_offset`` per sample, raw s16.15 (B, size): the host graph's current (thresholds
    per tick), clipped to ±INPUT_CLIP, in nA, rounded to the s16.15 grid, plus the population's own constant
    current (a leaky layer's drive; 0 for a converted network)."""
    from neurodeploy.ir import interpret

    host = netlist.host
    first = netlist.populations[0]
    current = interpret.run(host, np.asarray(x, np.float32))[host.outputs[0]]
    current = np.clip(np.asarray(current, np.float64).reshape(len(x), -1), -INPUT_CLIP, INPUT_CLIP)
    return _raw(current * first.threshold / first.gain) + first.i_offset


def run(
    netlist: Netlist,
    x: np.ndarray,
    steps: int,
    *,
    checkpoints: tuple[int, ...] = (),
    counts: bool = False,
    readout_delay: int = 0,
    engine: str = "numpy",
    device: str | None = None,
) -> dict[str, Any]:
    """Emulate ``steps`` graph steps (``steps`` + delay ticks) on analog inputs x (B, *input shape): the outputs
    after ``steps`` and after each checkpoint, the spikes per sample of every spiking population over its own
    ``steps`` ticks (and per neuron when ``counts``). ``readout_delay`` D: the output after c steps reads the
    readout over its steps s + 1 .. c, s = min(D, c // 2) (:func:`neurodeploy.readout.readout_skip`): (V after
    depth + c ticks - V after depth + s ticks) / (θ (c - s)), or the spikes of those steps. ``engine``: the
    emulator engine, numpy (:mod:`neurodeploy_pynn.spinnaker_emulator`) or torch
    (:mod:`neurodeploy_pynn.spinnaker_torch`, on torch ``device``; None: cuda where torch sees one, else cpu), which
    give the same integers."""
    from neurodeploy_pynn import spinnaker_emulator, spinnaker_torch

    if engine not in ("numpy", "torch"):
        raise ValueError(f"engine must be numpy or torch, got {engine!r}")
    if engine == "numpy" and device is not None:
        raise ValueError(f"device {device!r} is for the torch engine; the numpy engine runs on the CPU")
    emulate = partial(spinnaker_torch.run, device=device) if engine == "torch" else spinnaker_emulator.run

    populations, projections = emulated(netlist)
    batch = len(x)
    wanted = sorted({c for c in checkpoints if 1 <= c <= steps} | {steps})
    skip = {c: readout_skip(readout_delay, c) for c in wanted}
    ticks = steps + netlist.delay
    marks = sorted({p.depth + c for p in netlist.populations for c in [0, *wanted, *skip.values()]})
    k_out = netlist.readout["population"]
    top = netlist.populations[k_out]
    result = emulate(
        populations,
        projections,
        steps=ticks,
        batch=batch,
        i_offset={netlist.populations[0].name: input_current(netlist, x)},
        record_spikes=False,
        count_ticks=tuple(t for t in marks if t <= ticks),
        v_ticks=tuple(sorted({top.depth + c for c in [0, *wanted, *skip.values()]}))
        if netlist.readout["kind"] == "membrane"
        else (),
        record_v=[top.name] if netlist.readout["kind"] == "membrane" else [],
    )

    def counted(p: PopulationPlan, c: int) -> np.ndarray:
        """Spikes per neuron over the population's first c graph steps (ticks depth .. depth + c - 1)."""
        return result.checkpoint_counts[p.depth + c][p.name] - result.checkpoint_counts[p.depth][p.name]

    spiking = [p for p in netlist.populations if p.role != "readout"]
    fan_out = synapses_out(netlist)
    per_step = input_synapses(netlist.host)  # the dense input: every element, every step
    (input_name,) = netlist.host.inputs

    def synops(c: int) -> dict[str, np.ndarray]:
        """SynOps per sample over the first c graph steps: each spike times the synapses leaving its neuron."""
        out = {p.name: counted(p, c).astype(np.int64) @ fan_out[p.name] for p in spiking}
        return {input_name: np.full(batch, c * per_step, np.int64), **out}

    outputs = {}
    for c in wanted:
        s = skip[c]
        if netlist.readout["kind"] == "membrane":
            v = result.checkpoint_v[top.depth + c][top.name].astype(np.float64)
            v0 = result.checkpoint_v[top.depth + s][top.name].astype(np.float64)
            value = (v - v0) / s1615.ONE / (top.threshold * (c - s))
        else:
            spikes = counted(top, c) - counted(top, s)
            value = spikes / (c - s) * np.asarray(netlist.readout["scale"], np.float64).reshape(-1)
        outputs[c] = value.reshape(batch, *netlist.readout["shape"]).astype(np.float32)
    return {
        "outputs": outputs[steps],
        "checkpoints": {c: outputs[c] for c in wanted if c in checkpoints},
        "spikes": {p.name: counted(p, steps).sum(axis=1) for p in spiking},
        "checkpoint_spikes": {
            c: {p.name: counted(p, c).sum(axis=1) for p in spiking} for c in wanted if c in checkpoints
        },
        "counts": {p.name: counted(p, steps).reshape(batch, *p.shape) for p in spiking} if counts else {},
        "neurons": {p.name: p.size for p in spiking},
        "synops": synops(steps),
        "checkpoint_synops": {c: synops(c) for c in wanted if c in checkpoints},
    }


def synapses_out(netlist: Netlist) -> dict[str, np.ndarray]:
    """Per population, the synapses leaving each neuron (int64, flat): its entries in every projection's list."""
    out = {p.name: np.zeros(p.size, np.int64) for p in netlist.populations}
    for q in netlist.projections:
        pre = netlist.populations[q.pre]
        out[pre.name] += np.bincount(q.pre_index, minlength=pre.size)
    return out
