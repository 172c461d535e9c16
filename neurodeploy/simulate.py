"""Time-stepped float simulation of a spiking graph, batched in numpy: the reference backend's SNN emulation
and convert-to-snn's spike-norm (in the core, below both).

Every step, ops run in graph order: stateful ops (IF neurons) advance their state with ``step``; all other
ops apply their float ``forward`` to this step's values. There is no synaptic delay: a spike reaches every
later layer in the step it is emitted. The inputs are fed as the encoding says (:mod:`neurodeploy.encoding`):
with direct encoding the input is the same every step, so the values that depend on it alone (the input and
e.g. the first convolution) are computed once. The readout is the mean of each output over the steps run.

Neurons that compute in windows (:class:`~neurodeploy.ir.neurons.WindowIF`) pass their result on one window
later, layer by layer. A run of T steps then first runs the pipeline's fill, :func:`readout_delay` steps, and
reads the mean over the T steps after it; spikes and SynOps count every step run, the fill included.

Activity is counted per neuron (spikes of every stateful op) and, given fan-out maps
(:func:`neurodeploy.metrics.fan_out_maps`), as SynOps: each spike, or each input event, times the synapses
leaving its neuron. Convention for direct encoding: the analog input drives the first layers densely every
step, so each input element counts as one event per step, zero or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy import limits
from neurodeploy.encoding import Encoding, Stimulus
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import Op, StatefulOp
from neurodeploy.readout import readout_skip


@dataclass
class Simulation:
    """Readouts after ``steps`` (and at each checkpoint) and activity.

    ``spikes``: total spikes per sample (batch,) of every stateful op. ``counts``: spikes per neuron,
    (batch, *shape), of every stateful op (spike events: a graded or a -1 spike is one). ``sent``: for the ops
    whose spikes are graded or signed, the sum of what each neuron sent, (batch, *shape), in spikes (a graded
    spike its value, a -1 spike -1): what the next layer's weights received, where ``counts`` is not that.
    ``synops``: SynOps per sample of every spike source that has a fan-out map: stateful ops by op name, graph
    inputs by value name. ``checkpoint_spikes`` and ``checkpoint_synops`` hold the same per-sample totals after
    each checkpoint's number of steps.
    """

    outputs: dict[str, np.ndarray]
    spikes: dict[str, np.ndarray]
    checkpoints: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    synops: dict[str, np.ndarray] = field(default_factory=dict)
    checkpoint_spikes: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    checkpoint_synops: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    delay: int = 0
    """The pipeline's fill (:func:`readout_delay`): steps run before the readout's first."""
    sent: dict[str, np.ndarray] = field(default_factory=dict)


def settled(graph: Graph) -> dict[str, int]:
    """The step after which each value has settled, for inputs settled from the start: each op's
    :meth:`~neurodeploy.ir.op.StatefulOp.ready` applied along the longest path to it."""
    ready = dict.fromkeys(graph.inputs, 0)
    for op in graph.ops:
        start = max((ready.get(v, 0) for v in op.inputs), default=0)
        ready[op.output] = op.ready(start) if isinstance(op, StatefulOp) else start
    return ready


def readout_delay(graph: Graph) -> int:
    """Steps before every output has settled, for inputs that are settled from the start (:func:`settled`):
    0 for a graph of rate-coded neurons."""
    ready = settled(graph)
    return max((ready.get(v, 0) for v in graph.outputs), default=0)


class Arrays:
    """What the simulation loop computes with: numpy arrays on the CPU (this class, the default), or another
    array library's tensors (:class:`neurodeploy.simulate_torch.TorchArrays`, the torch engine), which a subclass
    gives by overriding every method. The loop (:func:`simulate`) is the same for all of them."""

    name = "numpy"

    def check(self, graph: Graph) -> None:
        """Refuse, before any work, a graph with an op this engine has no form of."""

    def asarray(self, x: np.ndarray) -> Any:
        """A (numpy) input or stimulus as this engine's array."""
        return x

    def host(self, a: Any) -> np.ndarray:
        """One of this engine's arrays (or a numpy array) as a numpy array."""
        return np.asarray(a)

    def zeros(self, shape: tuple[int, ...], dtype: type) -> Any:
        return np.zeros(shape, dtype)

    def copy(self, a: Any) -> Any:
        return a.copy()

    def forward(self, op: Op, xs: list[Any]) -> Any:
        return op.forward(xs)

    def init_state(self, op: StatefulOp, batch: int, shape: tuple[int, ...]) -> Any:
        return op.init_state(batch, shape)

    def step(self, op: StatefulOp, state: Any, xs: list[Any]) -> Any:
        return op.step(state, xs)

    def events(self, stimulus: Stimulus, x_t: Any) -> Any:
        """Which elements of this step's input ``x_t`` send an event (1) or not (0)."""
        return stimulus.events(x_t)

    def totals(self, counts: Any) -> Any:
        """Per sample, the sum of ``counts`` (float64)."""
        return counts.reshape(counts.shape[0], -1).sum(axis=1, dtype=np.float64)

    def weighted(self, counts: Any, fan_out: np.ndarray) -> Any:
        """Per sample: sum over positions of count x fan-out (float64)."""
        batch = counts.shape[0]
        return counts.reshape(batch, -1).astype(np.float64) @ fan_out.reshape(-1).astype(np.float64)

    def mean(self, total: Any, before: Any, steps: int) -> Any:
        """The mean over the ``steps`` steps after ``before`` of float64 sums, as float32."""
        return ((total - before) / steps).astype(np.float32)


NUMPY = Arrays()


def simulate(
    graph: Graph,
    inputs: dict[str, np.ndarray],
    steps: int,
    checkpoints: tuple[int, ...] = (),
    encoding: Encoding | None = None,
    fan_out: dict[str, np.ndarray] | None = None,
    observe: Callable[[str, Any], None] | None = None,
    delayed_readout: int = 0,
    arrays: Arrays = NUMPY,
) -> Simulation:
    """Run ``steps`` time steps after the pipeline's fill (:func:`readout_delay`; 0 for rate-coded neurons),
    feeding ``inputs`` (checked arrays, batch first) as ``encoding`` says (direct when None); checkpoints, too,
    count steps after the fill. ``fan_out`` maps spike-source values (graph inputs, stateful op outputs) to
    per-element fan-out; with it, SynOps are counted. ``observe(value, array)`` sees every value as it is
    computed (an array of ``arrays``): time-invariant values once, the others every step. ``delayed_readout`` D:
    the readout after t steps (the outputs, each checkpoint) is the mean over steps min(D, t // 2) + 1 .. t
    (:func:`neurodeploy.readout.readout_skip`). ``arrays``: what computes (numpy by default, :class:`Arrays`); the
    result holds numpy arrays whatever it is."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    arrays.check(graph)
    encoding = encoding if encoding is not None else Encoding()
    fan_out = fan_out or {}
    types = graph.types()
    batch = len(next(iter(inputs.values())))
    delay = readout_delay(graph)
    total = delay + steps
    if delay:  # a graph's windows decide the fill: it counts against the step limit with the steps asked for
        limits.check_steps(total, f"the emulation ({steps} steps after a pipeline fill of {delay})")
    stimuli = {name: encoding.stimulus(x, total, stream=i) for i, (name, x) in enumerate(inputs.items())}
    static: dict[str, Any] = {}
    if encoding.time_invariant:
        static.update({name: arrays.asarray(x) for name, x in inputs.items()})
        for op in graph.ops:
            if not op.is_stateful and all(v in static for v in op.inputs):
                static[op.output] = arrays.forward(op, [static[v] for v in op.inputs])
    dynamic_ops = [op for op in graph.ops if op.output not in static]
    if observe is not None:
        for name, value in static.items():
            observe(name, value)
    stateful = [op for op in graph.ops if isinstance(op, StatefulOp)]
    states = {op.name: arrays.init_state(op, batch, types[op.output].shape) for op in stateful}
    counts = {op.name: arrays.zeros((batch, *types[op.output].shape), np.float32) for op in stateful}
    sent = {op.name: arrays.zeros((batch, *types[op.output].shape), np.float32) for op in stateful if op.graded}
    input_events = {
        name: arrays.zeros((x if encoding.kind != "events" else x[:, 0]).shape, np.float32)
        for name, x in inputs.items()
        if name in fan_out and not encoding.time_invariant
    }
    sums = {v: arrays.zeros((batch, *types[v].shape), np.float64) for v in graph.outputs}
    wanted = sorted({c for c in checkpoints if 1 <= c <= steps})
    skips = {t: readout_skip(delayed_readout, t) for t in (*wanted, steps)}
    early: dict[int, dict[str, Any]] = {0: {v: arrays.zeros(s.shape, np.float64) for v, s in sums.items()}}
    recorded: dict[int, dict[str, Any]] = {}
    spike_marks: dict[int, dict[str, Any]] = {}
    synop_marks: dict[int, dict[str, Any]] = {}

    def means(read: int) -> dict[str, Any]:
        before, run = early[skips[read]], read - skips[read]
        return {v: arrays.mean(s, before[v], run) for v, s in sums.items()}

    def activity(t: int) -> tuple[dict[str, Any], dict[str, Any]]:
        totals = {name: arrays.totals(c) for name, c in counts.items()}
        synops: dict[str, Any] = {}
        for name in inputs:
            if name not in fan_out:
                continue
            if encoding.time_invariant:  # dense analog input: every element, every step
                synops[name] = np.full(batch, float(t) * float(fan_out[name].sum()))
            else:
                synops[name] = arrays.weighted(input_events[name], fan_out[name])
        for op in stateful:
            if op.output in fan_out:
                synops[op.name] = arrays.weighted(counts[op.name], fan_out[op.output])
        return totals, synops

    for t in range(1, total + 1):
        values = dict(static)
        for name, stimulus in stimuli.items():
            if name not in static:
                values[name] = arrays.asarray(stimulus.at(t))
                if name in input_events:
                    input_events[name] += arrays.events(stimulus, values[name])
        for op in dynamic_ops:
            xs = [values[v] for v in op.inputs]
            if isinstance(op, StatefulOp):
                out = arrays.step(op, states[op.name], xs)
                if op.emits_spikes:  # spike events: a graded or signed spike is one
                    counts[op.name] += op.events(out)
                if op.name in sent:
                    sent[op.name] += out
            else:
                out = arrays.forward(op, xs)
            values[op.output] = out
            if observe is not None:
                observe(op.output, out)
        if (read := t - delay) < 1:
            continue
        for v in graph.outputs:
            sums[v] += values[v]
        if read in skips.values():
            early[read] = {v: arrays.copy(s) for v, s in sums.items()}
        if read in wanted:
            recorded[read] = means(read)
            spike_marks[read], synop_marks[read] = activity(t)
    spikes, synops = activity(total)
    host = _on_host(arrays)
    return Simulation(
        host(means(steps)),
        host(spikes),
        {t: host(r) for t, r in recorded.items()},
        host(counts),
        host(synops),
        {t: host(r) for t, r in spike_marks.items()},
        {t: host(r) for t, r in synop_marks.items()},
        delay,
        host(sent),
    )


def _on_host(arrays: Arrays) -> Callable[[dict[str, Any]], dict[str, np.ndarray]]:
    """A dict of ``arrays``' arrays as numpy arrays."""
    return lambda values: {k: arrays.host(v) for k, v in values.items()}


def output_trace(graph: Graph, x: np.ndarray, steps: int, value: str | None = None) -> np.ndarray:
    """``value`` (default the graph's first output) at every step of a run of ``steps`` steps on the one input
    ``x`` (batch first, direct encoding): (steps, batch, ...). What a time-stepped framework's loop records, to
    compare step by step."""
    wanted = value if value is not None else graph.outputs[0]
    trace: list[np.ndarray] = []

    def observe(name: str, array: np.ndarray) -> None:
        if name == wanted:
            trace.append(array.copy())

    simulate(graph, {next(iter(graph.inputs)): x}, steps, observe=observe)
    if len(trace) == 1 and steps > 1:  # a value that does not change over time is computed once
        trace *= steps
    return np.stack(trace)
