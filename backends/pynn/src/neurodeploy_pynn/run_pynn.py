"""Rebuild a neurodeploy SpiNNaker netlist in a PyNN simulator and run samples through it.

Every ``spinnaker`` artifact holds a copy of this file as ``run_pynn.py``. It needs numpy and PyNN with the
chosen simulator, not neurodeploy. From the artifact folder::

    python run_pynn.py --simulator nest --currents currents.npy --steps T --output out.npz

``currents.npy`` holds the input population's ``i_offset`` per sample: (samples, neurons) s16.15 raw bits
(value * 2**15), computed by neurodeploy from the inputs (``neurodeploy_pynn.spinnaker.input_current``).
``--steps`` T is the number of graph steps: a sample runs for T + the netlist's ``delay`` ticks, and population k
receives its first input at tick ``depth``. The output holds, per population, the spikes of each neuron and sample
over its T ticks ``depth`` .. ``depth + T - 1`` (``counts/<name>``, int64, (samples, neurons)), and the readout
population's V after each tick (``v/<name>``, mV, (samples, T + delay + 1, neurons): index k is V after k ticks).
``neurodeploy_pynn.spinnaker.run`` counts and reads out the same way.

The network is built once. Samples run one after another in one simulation, each for T + delay ticks; between
two samples every V is pulled down to :data:`FLUSH_V` for the longest delay + 1 ticks, so that the spikes still in
flight land where they cannot fire, and the next sample starts from the netlist's initial V (and with no synaptic
current, in ``IF_curr_exp`` populations).

``spiNNaker`` (sPyNNaker) gets the netlist as written: each population's cell (``IF_curr_delta``, or
``IF_curr_exp`` below) with its parameters, its ``max_expected_summed_weight`` (sPyNNaker then picks the planned
ring-buffer shifts) and weights ``word * 2**(shift - 15)`` nA, which its host rounds back to the planned words.
``nest`` runs NEST's ``iaf_psc_delta`` (PyNN's on-grid ``IF_curr_delta``) in floating point, with ``tau_m`` and
``cm`` that give it the chip's decay per step and gain (:func:`chip_constants`: the chip's exp_TC is rounded to 15
bits, which makes its gain g = 33/32 where exact arithmetic gives 0.9995). A current I moves V by g I per step as
on the chip; a delta synapse moves V by its weight in mV, where sPyNNaker moves it by g times the weight, so for
NEST the weights are multiplied by g.
An inhibitory weight is negative there, as PyNN's NEST backend wants it for current-based synapses.

A leaky population (a spiking import's LIF layer) has its own ``tau_m`` and ``gain_mv_per_na``, and NEST is given
its chip decay and gain the same way. One with a synaptic current is ``IF_curr_exp`` (NEST's ``iaf_psc_exp``) with
``tau_syn_E = tau_syn_I``: NEST gets the time constant of the chip's synaptic decay (``leak.syn_decay_chip``), and
weights scaled so that a spike moves V as on the chip, where it adds ``init`` times its weight to the current and V
rises by g times the current in that tick: NEST's V rises by P21 times the current, the exact integral of the decaying
current over a step (:func:`exp_current_gain`). NEST adds a spike to the current after the step's update, so such a
population runs one tick later there than on the chip.
"""

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np

ONE = 1 << 15
FLUSH_V = -(2.0**15)
"""mV: V between two samples, far below any threshold: a spike still in flight cannot make a neuron fire."""


def load(folder):
    """The netlist description and its arrays."""
    folder = Path(folder)
    doc = json.loads((folder / "spinnaker.json").read_text())
    with np.load(folder / "spinnaker.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return doc, arrays


def setup(sim, doc, simulator):
    """``sim.setup`` for the netlist: its time step, delays of 1 .. the longest projection delay ticks."""
    timestep = doc["simulator"]["timestep_ms"]
    longest = max([q["delay_ticks"] for q in doc["projections"]] + [1]) * timestep
    if simulator == "nest":
        # on-grid spikes: IF_curr_delta is iaf_psc_delta, updated once per step as sPyNNaker does. PyNN 0.13 has no
        # name for its V under NEST 3.10: add it, so that V can be set and recorded.
        sim.IF_curr_delta.variable_map = {"v": "V_m"}
        sim.setup(timestep=timestep, min_delay=timestep, max_delay=longest, spike_precision="on_grid")
    else:
        sim.setup(timestep=timestep, min_delay=timestep, max_delay=longest)


def chip_constants(doc, parameters, population=None):
    """``tau_m`` and ``cm`` for a float simulator that leak and integrate as the chip does. The chip's decay per
    step exp_TC is ``expk(-ts / tau_m)`` rounded to s16.15, and its R is tau_m / cm. The decay
    1 - g / R follows from the netlist's gain g = (1 - exp_TC) R (the population's own, where it has one). With
    tau_m' = -ts / ln(exp_TC) and cm' = tau_m' / R, NEST's exact propagators reproduce exp_TC and g (a chip decay
    of 0 becomes a tau_m' far below the step). An ``IF_curr_exp`` population's tau_syn' is -ts / ln of the chip's
    synaptic decay."""
    timestep = doc["simulator"]["timestep_ms"]
    g = doc["gain_mv_per_na"] if population is None else population.get("gain_mv_per_na", doc["gain_mv_per_na"])
    r = parameters["tau_m"] / parameters["cm"]
    decay = max(1.0 - g / r, 1e-30)
    tau_m = -timestep / float(np.log(decay))
    out = {"tau_m": tau_m, "cm": tau_m / r}
    if "tau_syn_E" in parameters:
        keep = max(float(population["leak"]["syn_decay_chip"]), 1e-30)
        out["tau_syn_E"] = out["tau_syn_I"] = -timestep / float(np.log(keep))
    return out


def exp_current_gain(tau_m, cm, tau_syn, timestep):
    """P21 of NEST's ``iaf_psc_exp``: V after one step from V = 0 for a synaptic current of 1 nA at the step's
    start, decaying with tau_syn (mV; ms, nF)."""
    p22, p11 = np.exp(-timestep / tau_m), np.exp(-timestep / tau_syn)
    if abs(tau_m - tau_syn) <= 1e-9 * tau_m:
        return timestep / cm * p22
    return tau_m * tau_syn / (cm * (tau_syn - tau_m)) * (p11 - p22)


def weight_factor(doc, population, parameters, simulator):
    """What a netlist weight (nA, as sPyNNaker takes it) is multiplied by for ``simulator``: 1 on sPyNNaker; on
    NEST the chip's rise of V per nA (delta: g mV, a weight there being a jump of V), and for exponential
    synapses g init / P21 (NEST's current moves V by P21 per nA in the step after it arrives)."""
    if simulator == "spiNNaker":
        return 1.0
    g = population.get("gain_mv_per_na", doc["gain_mv_per_na"])
    if population.get("cell", "IF_curr_delta") != "IF_curr_exp":
        return g
    init = float(population["leak"]["syn_init_chip"])
    p21 = exp_current_gain(
        parameters["tau_m"], parameters["cm"], parameters["tau_syn_E"], doc["simulator"]["timestep_ms"]
    )
    return g * init / p21


def build(sim, doc, arrays, simulator, record_v=True):
    """The populations (by name) and projections of the netlist. The input population's current is set per
    sample by :func:`run`."""
    populations = {}
    factors = {}
    readout = doc["readout"]["population"]
    for p in doc["populations"]:
        parameters = dict(p["parameters"])
        if simulator != "spiNNaker":
            parameters.update(chip_constants(doc, parameters, p))
        factors[p["name"]] = weight_factor(doc, p, parameters, simulator)
        parameters["i_offset"] = np.asarray(arrays[p["i_offset"]["array"]], np.float64) / ONE
        extra = {}
        if simulator == "spiNNaker":
            extra["additional_parameters"] = {
                "max_expected_summed_weight": list(p["max_expected_summed_weight"]),
                "neurons_per_core": p["neurons_per_core"],
            }
        cell = getattr(sim, p.get("cell", "IF_curr_delta"))
        population = sim.Population(
            p["size"],
            cell(**parameters),
            initial_values={"v": np.asarray(arrays[p["v_init"]["array"]], np.float64) / ONE},
            label=p["name"],
            **extra,
        )
        population.record(["spikes", "v"] if p["name"] == readout and record_v else "spikes")
        populations[p["name"]] = population
    timestep = doc["simulator"]["timestep_ms"]
    projections = []
    for q in doc["projections"]:
        words = np.asarray(arrays[q["words"]["array"]], np.float64)
        weights = words * 2.0 ** (q["shift"] - 15) * factors[q["post"]]
        if q["receptor"] == "inhibitory" and simulator != "spiNNaker":
            weights = -weights
        pre = np.asarray(arrays[q["pre_index"]["array"]], np.float64)
        post = np.asarray(arrays[q["post_index"]["array"]], np.float64)
        # sorted by source, then target: sPyNNaker 1!7.4.1's FromListConnector measures its longest row right only
        # on such a list (its __numpy_group splits the unsorted list at the sorted list's boundaries)
        order = np.lexsort((post, pre))
        pre, post, weights = pre[order], post[order], weights[order]
        delays = np.full(len(pre), q["delay_ticks"] * timestep)
        projections.append(
            sim.Projection(
                populations[q["pre"]],
                populations[q["post"]],
                sim.FromListConnector(np.column_stack([pre, post, weights, delays]), column_names=["weight", "delay"]),
                receptor_type=q["receptor"],
                label=q["name"],
            )
        )
    return populations, projections


def now(sim, simulator):
    """The time (ms) at which what is set now takes effect. PyNN's NEST backend simulates one ``min_delay``
    ahead of the time it reports (so that recorders have flushed); a setting reaches the kernel's next step."""
    if simulator == "nest":
        return float(sim.simulator.state.t_kernel)
    return float(sim.get_current_time())


def initial_v(doc, arrays):
    """Every population's initial V (mV), by name."""
    return {p["name"]: np.asarray(arrays[p["v_init"]["array"]], np.float64) / ONE for p in doc["populations"]}


def set_v(population, values, simulator):
    """Set V now. PyNN's ``initialize`` does so under NEST; sPyNNaker's ``initialize`` after a run only sets the
    value a ``reset()`` goes back to ("Calling initialize without reset will have no effect": sPyNNaker 1!7.4.1,
    ``spynnaker/pyNN/models/populations/population.py``), so there its ``set_state`` sets V, which sPyNNaker reads
    back from the cores and writes to them, changed, before the next run (``PopulationVertex.
    set_current_state_values``)."""
    if simulator == "spiNNaker":
        population.set_state(v=values)
    else:
        population.initialize(v=values)


def sample_ticks(doc, steps, simulator):
    """Ticks one sample runs: T + delay, and on sPyNNaker one more. sPyNNaker records V at the start of a tick,
    before its update (``neuron_impl_standard.h``), so V after the sample's last tick is the record of the tick
    after it; NEST records V after the update. The extra tick's spikes fall outside every population's window."""
    return steps + doc["delay"] + (1 if simulator == "spiNNaker" else 0)


def flush_ticks(doc):
    """Ticks of the flush after a sample: the longest delay + 1, so that every spike in flight has landed."""
    return max([q["delay_ticks"] for q in doc["projections"]] + [1]) + 1


def spike_ticks(times_ms, timestep, simulator):
    """The tick (from the simulation's first, 0) in which each spike happened, from its recorded time (ms).
    sPyNNaker stamps a spike with its tick's number times the time step: the cores start their clock at -1 and
    count it up before a tick's update, so the first tick is 0, and a later run goes on counting
    (``neural_modelling/src/neuron/c_main_neurons.c``; the host multiplies by the time step,
    ``NeoBufferDatabase``). NEST's on-grid spikes are stamped at the end of their step: a spike at t closes tick
    ceil(t / ts) - 1."""
    t = np.asarray(times_ms, np.float64) / timestep
    if simulator == "spiNNaker":
        return np.rint(t).astype(np.int64)
    return np.ceil(t - 1e-6).astype(np.int64) - 1


def set_currents(population, simulator):
    """Set an ``IF_curr_exp`` population's synaptic currents to 0 now, as :func:`set_v` sets V (they outlive the
    flush: a sample starts with none)."""
    if simulator == "spiNNaker":
        population.set_state(isyn_exc=0.0, isyn_inh=0.0)
    else:
        population.initialize(isyn_exc=0.0, isyn_inh=0.0)


def start_sample(sim, populations, doc, initial, current, simulator):
    """Before a sample: the input population's ``i_offset`` (``current``: raw s16.15 per neuron), every V back to
    its initial value and every synaptic current to 0. Returns the tick at which the sample starts."""
    populations[doc["populations"][0]["name"]].set(i_offset=np.asarray(current, np.float64) / ONE)
    cells = {p["name"]: p.get("cell", "IF_curr_delta") for p in doc["populations"]}
    for name, population in populations.items():
        set_v(population, initial[name], simulator)
        if cells[name] == "IF_curr_exp":
            set_currents(population, simulator)
    return round(now(sim, simulator) / doc["simulator"]["timestep_ms"])


def flush_sample(sim, populations, doc, simulator):
    """After a sample: every V pulled down to :data:`FLUSH_V` and the input switched off for
    :func:`flush_ticks` ticks, so that the spikes still in flight land where they cannot fire."""
    for population in populations.values():
        set_v(population, FLUSH_V, simulator)
    populations[doc["populations"][0]["name"]].set(i_offset=0.0)
    sim.run(flush_ticks(doc) * doc["simulator"]["timestep_ms"])


def run(folder, simulator, currents, steps):
    """Every sample of ``currents`` through the netlist in ``folder``: {key: array} as the module describes, and
    ``seconds/build``, ``seconds/run`` (wall clock)."""
    sim = importlib.import_module(f"pyNN.{simulator}")
    doc, arrays = load(folder)
    timestep = doc["simulator"]["timestep_ms"]
    ticks = steps + doc["delay"]
    start = time.perf_counter()
    setup(sim, doc, simulator)
    populations, _ = build(sim, doc, arrays, simulator)
    built = time.perf_counter()
    initial = initial_v(doc, arrays)
    starts = []
    for current in currents:
        starts.append(start_sample(sim, populations, doc, initial, current, simulator))
        sim.run(sample_ticks(doc, steps, simulator) * timestep)
        flush_sample(sim, populations, doc, simulator)
    ran = time.perf_counter()
    out = {"seconds/build": np.float64(built - start), "seconds/run": np.float64(ran - built)}
    readout = doc["readout"]["population"]
    samples = len(currents)
    starts = np.asarray(starts, np.int64)
    depth = {p["name"]: p["depth"] for p in doc["populations"]}
    for name, population in populations.items():
        segment = population.get_data().segments[0]
        counts = np.zeros((samples, population.size), np.int64)
        for i, train in enumerate(segment.spiketrains):
            # sample b runs ticks starts[b] .. + ticks - 1
            tick = spike_ticks(np.asarray(train.magnitude), timestep, simulator)
            sample = np.searchsorted(starts, tick, side="right") - 1
            k = tick - starts[np.maximum(sample, 0)]
            keep = (sample >= 0) & (k >= depth[name]) & (k < depth[name] + steps)
            np.add.at(counts[:, i], sample[keep], 1)
        out[f"counts/{name}"] = counts
        if name == readout:
            signal = segment.filter(name="v")[0]
            t = np.rint(np.asarray(signal.times.magnitude) / timestep).astype(np.int64)
            # (times, neurons): V after t ticks (NEST: at the end of the step closing t; sPyNNaker: at the start of
            # tick t, before its update)
            v = np.asarray(signal.magnitude, np.float64)
            trace = np.zeros((samples, ticks + 1, population.size))
            trace[:, 0] = initial[name]
            wanted = (starts[:, None] + np.arange(1, ticks + 1)).reshape(-1)
            rows = np.searchsorted(t, wanted)
            if np.any(rows >= len(t)) or np.any(t[np.minimum(rows, len(t) - 1)] != wanted):
                raise RuntimeError(f"{name}: the simulator did not record V at every tick")
            trace[:, 1:] = v[rows].reshape(samples, ticks, population.size)
            out[f"v/{name}"] = trace
    sim.end()
    return out


VIRTUAL_BOARD = """[Machine]
version = 5
virtual_board = True

[Logging]
default = warning
"""
"""sPyNNaker's configuration for a virtual SpiNN-5 board (48 chips): it partitions, places and routes, runs nothing."""


def map_on_virtual_board(folder):
    """Partition, place and route the netlist with sPyNNaker on a virtual board: {population: cores, the slices
    (first, last neuron) of its cores, and the ring-buffer shifts sPyNNaker computed}, and the seconds it took.
    sPyNNaker reads its configuration from the home folder and writes reports to the working folder: both are a
    temporary folder here."""
    import atexit
    import os
    import shutil
    import tempfile

    doc, arrays = load(folder)
    home = tempfile.mkdtemp(prefix="spynnaker-")
    atexit.register(shutil.rmtree, home, True)  # registered first, so it runs after sPyNNaker's own exit hooks
    os.environ["HOME"] = home
    Path(home, ".spynnaker.cfg").write_text("")
    Path(home, "spynnaker.cfg").write_text(VIRTUAL_BOARD)
    previous = os.getcwd()
    os.chdir(home)
    try:
        sim = importlib.import_module("pyNN.spiNNaker")
        start = time.perf_counter()
        setup(sim, doc, "spiNNaker")
        populations, _ = build(sim, doc, arrays, "spiNNaker", record_v=False)
        sim.run(0)
        out = {"seconds": time.perf_counter() - start, "populations": {}}
        for name, population in populations.items():
            vertex = population._vertex  # sPyNNaker's application vertex (no public accessor in 1!7.4.1)
            slices = sorted((m.vertex_slice.lo_atom, m.vertex_slice.hi_atom) for m in vertex.machine_vertices)
            out["populations"][name] = {
                "cores": len(slices),
                "slices": [list(map(int, s)) for s in slices],
                "ring_buffer_shift": [int(x) for x in vertex.get_ring_buffer_shifts()],
            }
        sim.end()
    finally:
        os.chdir(previous)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", choices=("spiNNaker", "nest"), default="nest")
    parser.add_argument("--currents", help=".npy of the input population's i_offset, raw s16.15")
    parser.add_argument("--steps", type=int, help="graph steps T per sample (T + delay ticks)")
    parser.add_argument(
        "--map-virtual-board",
        action="store_true",
        help="only map the netlist with sPyNNaker on a virtual board; --output gets what it placed (JSON)",
    )
    parser.add_argument("--output", required=True, help=".npz to write")
    parser.add_argument("--folder", default=str(Path(__file__).resolve().parent), help="the artifact folder")
    args = parser.parse_args(argv)
    if args.map_virtual_board:
        Path(args.output).write_text(json.dumps(map_on_virtual_board(args.folder), indent=1))
        return
    if args.currents is None or args.steps is None:
        parser.error("--currents and --steps are needed to run samples")
    currents = np.load(args.currents, allow_pickle=False)
    if currents.ndim != 2:
        parser.error(f"--currents must be (samples, neurons); got shape {currents.shape}")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    np.savez(args.output, **run(args.folder, args.simulator, currents, args.steps))


if __name__ == "__main__":
    main()
