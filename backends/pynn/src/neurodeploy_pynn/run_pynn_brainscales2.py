"""Rebuild a neurodeploy BrainScaleS-2 netlist in PyNN and run samples through it.

Every ``brainscales2`` artifact holds a copy of this file as ``run_pynn.py``. It needs numpy and PyNN with the
chosen simulator, not neurodeploy. From the artifact folder::

    python run_pynn.py --simulator nest --spikes spikes.npy --output out.npz

``spikes.npy`` holds the input population's spikes per sample and step: (samples, T, sources) bool, computed by
neurodeploy from the inputs (``neurodeploy_pynn.brainscales2.input_spikes``); a step is 1 µs of hardware time.
The output holds, per population, the spikes of each neuron and sample over its T steps (``counts/<name>``,
int64, (samples, neurons)), and the readout population's V after each of its T steps (``v/<name>``, CADC units,
(samples, T + 1, neurons): index c is V after c steps).

``brainscales2`` (pynn-brainscales, on a chip: only inside the BrainScaleS-2 software container, which has no
public package) gets the netlist as written: ``CalibHXNeuronCuba`` populations with their parameters (µs, CADC
units), ``SpikeSourceArray`` sources (spike times in ms of hardware time), integer weights 1..63 with the sign
as the receptor, delay 0. Its calibration decides what a weight LSB does; the netlist's ``gain_cadc_per_lsb``
says what the plan assumed.

``nest`` runs the model that neurodeploy's emulator runs, in NEST 3.10's ``iaf_psc_exp`` (PyNN's ``IF_curr_exp``)
with µs as NEST's ms and CADC units as mV, at the netlist's integration step (0.1 µs): exact propagators, as the
emulator's. A spike through a synapse of weight w moves the current by w g / tau_syn (nA for cm = 1 nF), so it
deposits the charge w g, as in the emulator. NEST's shortest delay is one integration step, where the emulator's
sources reach their targets in the step they fire and on-chip spikes in the next: every synapse is one step
later in NEST. The script shifts what it reads by that: a population at depth d runs d steps behind, and the bias
sources of a population at depth d fire d - 1 steps late so that its inputs keep their timing.

Leaky layers of a NIR import are written as any other population, with their own ``tau_m`` and ``tau_syn_E/I``
(and ``v_rest`` = ``v_reset``); ``gain_cadc_per_lsb`` already holds the factor their weights need (see
``neurodeploy_pynn.brainscales2.leak_factor``), and the spikes of a leaky input population are computed by
neurodeploy as any input's.

The network is built once. Samples run one after another in one simulation, each after two steps of rest; between
two, every V is pulled far below threshold for :func:`flush_us` (10 µs, longer for long synaptic time constants),
long enough for the synaptic currents and the refractory time to end, and the next sample starts from ``v_rest``.
"""

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np

FLUSH_V = -(2.0**15)
"""CADC units: V between two samples, far below any threshold."""
FLUSH_US = 10.0
"""µs between two samples: 33 synaptic time constants of 0.3 µs, 20 refractory times of 0.5 µs (longer where a
leaky population's tau_syn is: :func:`flush_us`)."""


def flush_us(doc):
    """µs between two samples: :data:`FLUSH_US`, or 33 of the longest synaptic time constant or 20 of the longest
    refractory time where that is longer (a leaky layer of a NIR import may have tau_syn up to 30 µs), rounded up
    to whole µs (NEST runs whole integration steps)."""
    longest = [FLUSH_US]
    for p in doc["populations"]:
        longest += [33 * p["parameters"]["tau_syn_E"], 33 * p["parameters"]["tau_syn_I"]]
        longest.append(20 * p["parameters"]["tau_refrac"])
    return float(np.ceil(max(longest)))


def load(folder):
    """The netlist description and its arrays."""
    folder = Path(folder)
    doc = json.loads((folder / "brainscales2.json").read_text())
    with np.load(folder / "brainscales2.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return doc, arrays


def depths(doc):
    """Each spike source's and population's depth (synapses from the input sources; a bias source: its target's
    depth - 1, so that it is as far from its target as the target's main input)."""
    depth = {p["name"]: p["depth"] for p in doc["populations"]}
    depth[doc["input"]["population"]] = 0
    for q in doc["projections"]:
        if q["pre"] not in depth:
            depth[q["pre"]] = depth[q["post"]] - 1
    return depth


def _connections(doc, arrays, q, gain, tau_syn, dt):
    """A projection's (pre, post, weight, delay) rows for NEST, sorted by source and target."""
    pre = np.asarray(arrays[q["pre_index"]["array"]], np.float64)
    post = np.asarray(arrays[q["post_index"]["array"]], np.float64)
    weights = np.asarray(arrays[q["weights"]["array"]], np.float64) * gain / tau_syn
    if q["receptor"] == "inhibitory":
        weights = -weights  # PyNN's NEST backend takes an inhibitory current-based weight as negative
    order = np.lexsort((post, pre))
    return np.column_stack([pre[order], post[order], weights[order], np.full(len(pre), dt)])


def run_nest(folder, spikes):
    """Every sample of ``spikes`` through the netlist in NEST: {key: array} as the module describes, and
    ``seconds/build``, ``seconds/run``."""
    sim = importlib.import_module("pyNN.nest")
    doc, arrays = load(folder)
    dt = doc["timing"]["step_us"] / doc["timing"]["substeps"]
    substeps = doc["timing"]["substeps"]
    samples, steps, _ = spikes.shape
    depth = depths(doc)
    start = time.perf_counter()
    sim.setup(timestep=dt, min_delay=dt, max_delay=dt, spike_precision="on_grid")
    populations, sources = {}, {}
    readout = doc["readout"]["population"]
    for p in doc["populations"]:
        parameters = dict(p["parameters"], cm=1.0)
        population = sim.Population(
            p["size"], sim.IF_curr_exp(**parameters), initial_values={"v": parameters["v_rest"]}, label=p["name"]
        )
        population.record(["spikes", "v"] if p["name"] == readout else "spikes")
        populations[p["name"]] = population
    for s in doc["sources"]:
        sources[s["name"]] = sim.Population(s["size"], sim.SpikeSourceArray(spike_times=[]), label=s["name"])
    by_name = {p["name"]: p for p in doc["populations"]}
    for q in doc["projections"]:
        post = by_name[q["post"]]
        tau_syn = post["parameters"]["tau_syn_E" if q["receptor"] == "excitatory" else "tau_syn_I"]
        pre = sources[q["pre"]] if q["pre"] in sources else populations[q["pre"]]
        rows = _connections(doc, arrays, q, post["gain_cadc_per_lsb"], tau_syn, dt)
        sim.Projection(
            pre,
            populations[q["post"]],
            sim.FromListConnector(rows, column_names=["weight", "delay"]),
            receptor_type=q["receptor"],
            label=q["name"],
        )
    built = time.perf_counter()

    def mark(name, c):
        """NEST steps after a sample's origin after which population ``name`` has seen c steps of input: the
        emulator's c * substeps + depth - 1, and the depth steps NEST's synapses add."""
        return c * substeps + 2 * depth[name] - 1

    length = max(mark(p["name"], steps) for p in doc["populations"]) + 1
    flush = flush_us(doc)
    origins = []
    for b in range(samples):
        now = float(sim.simulator.state.t_kernel)  # PyNN runs NEST one step ahead of the time it reports
        origin = now + 2 * dt  # two steps of rest: PyNN sends a source's spike a step ahead, and NEST wants it > 0
        origins.append(origin)
        for name, population in populations.items():
            population.initialize(v=by_name[name]["parameters"]["v_rest"])
        for s in doc["sources"]:
            lag = depth[s["name"]] * dt  # a bias source fires its depth in steps late (the input source: 0)
            if s["kind"] == "input":
                fired = spikes[b]
            else:
                fired = np.ones((steps, s["size"]), bool)
            times = [
                sim.Sequence(origin + lag + np.nonzero(fired[:, i])[0] * doc["timing"]["step_us"])
                for i in range(s["size"])
            ]
            sources[s["name"]].set(spike_times=times)
        sim.run((length + 1) * dt)
        for population in populations.values():
            population.initialize(v=FLUSH_V)
        sim.run(flush)
    ran = time.perf_counter()
    out = {"seconds/build": np.float64(built - start), "seconds/run": np.float64(ran - built)}
    origins = np.asarray(origins)
    for name, population in populations.items():
        segment = population.get_data().segments[0]
        counts = np.zeros((samples, population.size), np.int64)
        first, last = mark(name, 0), mark(name, steps)
        for i, train in enumerate(segment.spiketrains):
            t = np.asarray(train.magnitude)
            sample = np.searchsorted(origins, t, side="left") - 1  # a stamp at the origin closes the step before
            k = np.rint((t - origins[np.maximum(sample, 0)]) / dt).astype(np.int64) - 1  # the step it closes
            keep = (sample >= 0) & (k >= first) & (k < last)
            np.add.at(counts[:, i], sample[keep], 1)
        out[f"counts/{name}"] = counts
        if name == readout:
            signal = segment.filter(name="v")[0]
            t = np.rint(np.asarray(signal.times.magnitude) / dt).astype(np.int64)
            v = np.asarray(signal.magnitude, np.float64)
            wanted = np.rint(origins / dt).astype(np.int64)[:, None] + [mark(name, c) for c in range(steps + 1)]
            rows = np.searchsorted(t, wanted.reshape(-1))
            if np.any(rows >= len(t)) or np.any(t[np.minimum(rows, len(t) - 1)] != wanted.reshape(-1)):
                raise RuntimeError(f"{name}: NEST did not record V at every step")
            out[f"v/{name}"] = v[rows].reshape(samples, steps + 1, population.size)
    sim.end()
    return out


def build_brainscales2(pynn, doc, arrays):
    """The netlist through pynn-brainscales' PyNN API (``pynn`` is ``pynn_brainscales.brainscales2``, set up by the
    caller): ``CalibHXNeuronCuba`` populations recording their spikes, empty ``SpikeSourceArray`` sources and the
    projections (integer weights, the sign as the receptor); returns (populations, sources), by name."""
    populations, sources = {}, {}
    for p in doc["populations"]:
        population = pynn.Population(p["size"], pynn.cells.CalibHXNeuronCuba(**p["parameters"]), label=p["name"])
        population.record(["spikes"])
        populations[p["name"]] = population
    for s in doc["sources"]:
        sources[s["name"]] = pynn.Population(s["size"], pynn.cells.SpikeSourceArray(spike_times=[]), label=s["name"])
    for q in doc["projections"]:
        pre = np.asarray(arrays[q["pre_index"]["array"]], np.int64)
        post = np.asarray(arrays[q["post_index"]["array"]], np.int64)
        weights = np.asarray(arrays[q["weights"]["array"]], np.int64)
        rows = [(int(i), int(j), int(w)) for i, j, w in zip(pre, post, weights)]
        pynn.Projection(
            sources[q["pre"]] if q["pre"] in sources else populations[q["pre"]],
            populations[q["post"]],
            pynn.FromListConnector(rows, column_names=["weight"]),
            receptor_type=q["receptor"],
            label=q["name"],
        )
    return populations, sources


def set_spikes_brainscales2(doc, sources, spikes, steps):
    """One sample's spike times on the sources (ms of hardware time): the input source's ``spikes`` (T, sources)
    bool, and a spike every step of each bias source."""
    step_ms = doc["timing"]["step_us"] / 1000.0  # pynn-brainscales: spike times and durations in ms
    for s in doc["sources"]:
        fired = spikes if s["kind"] == "input" else np.ones((steps, s["size"]), bool)
        sources[s["name"]].set(spike_times=[list(np.nonzero(fired[:, i])[0] * step_ms) for i in range(s["size"])])


def run_brainscales2(folder, spikes):
    """Every sample of ``spikes`` through the netlist on a BrainScaleS-2 chip with pynn-brainscales: spike
    counts per population over the T steps (the chip's V is not read here)."""
    pynn = importlib.import_module("pynn_brainscales.brainscales2")
    doc, arrays = load(folder)
    samples, steps, _ = spikes.shape
    step_ms = doc["timing"]["step_us"] / 1000.0
    start = time.perf_counter()
    pynn.setup()
    populations, sources = build_brainscales2(pynn, doc, arrays)
    built = time.perf_counter()
    counts = {name: np.zeros((samples, p.size), np.int64) for name, p in populations.items()}
    for b in range(samples):
        set_spikes_brainscales2(doc, sources, spikes[b], steps)
        pynn.run(steps * step_ms)
        for name, population in populations.items():
            for i, train in enumerate(population.get_data("spikes").segments[-1].spiketrains):
                counts[name][b, i] = len(train)
        pynn.reset()
    ran = time.perf_counter()
    pynn.end()
    out = {"seconds/build": np.float64(built - start), "seconds/run": np.float64(ran - built)}
    out |= {f"counts/{name}": c for name, c in counts.items()}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", choices=("nest", "brainscales2"), default="nest")
    parser.add_argument("--spikes", required=True, help=".npy of the input sources' spikes, (samples, T, sources)")
    parser.add_argument("--output", required=True, help=".npz to write")
    parser.add_argument("--folder", default=str(Path(__file__).resolve().parent), help="the artifact folder")
    args = parser.parse_args(argv)
    spikes = np.load(args.spikes, allow_pickle=False)
    if spikes.ndim != 3 or spikes.dtype != bool:
        parser.error(f"--spikes must be bool (samples, T, sources); got {spikes.dtype} {spikes.shape}")
    run = run_nest if args.simulator == "nest" else run_brainscales2
    np.savez(args.output, **run(args.folder, spikes))


if __name__ == "__main__":
    main()
