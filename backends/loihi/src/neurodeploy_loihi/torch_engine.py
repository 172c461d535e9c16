"""The binary-mode emulator on torch: :meth:`neurodeploy_loihi.program.Program.run`'s contract, computed batch-first
on a torch device (``cpu``, or ``cuda`` when one is present), equal value for value to the numpy / numba engines.

:func:`run` steps the whole batch (or ``batch_size`` samples at a time) through every Loihi step, population by
population, in the order :meth:`neurodeploy_loihi.emulator.Network.run` does: each synapse sends the oldest message
of its queue (delay + 1 deep) and accumulates this step's spikes of its source; the neurons update u and v with
Lava's fixed-point arithmetic (:mod:`neurodeploy_loihi.fixed_point`) and spike. The program's counting (spikes and
SynOps over the graph steps, the readout's v against its value before its first input, the overflow statistics)
is :meth:`Program.run`'s, and with ``trim`` each population computes the same windows
(:meth:`~neurodeploy_loihi.emulator.Network.windows`), so ``stats`` covers the same steps.

Integers: neuron state, messages and counts are int64 tensors (spike counts int32), and every wrap of Lava's int32
or 24-bit arithmetic is written as the same mask as :func:`fixed_point.wrap`; shifts are int64 shifts (a right
shift of a negative int64 floors, as numpy's does). The synaptic sums are computed in floating point, where they
are exact, then rounded to int64 and wrapped (see :func:`float_type`). The host's float input stage (the input
population's bias) runs in numpy, as :meth:`Program.input_bias`, and is moved to the device.

The graded mode (:class:`neurodeploy_loihi.graded.GradedProgram`, the default profile's) runs too,
:func:`run_graded`: :meth:`GradedProgram.run`'s contract, its memoryless graded neurons and few-spike codes in int64,
its synapses the same exact float products over the payloads. The board profile's graded form (SDNN) is numpy
only.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules. torch is imported inside the functions (never when the module loads), for the same reason
# and because it is optional.
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.ir import interpret
from neurodeploy.metrics import input_synapses
from neurodeploy.readout import readout_skip
from neurodeploy.torch_support import exact_floats, import_torch, resolve_device
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Network, SparseSynapse
from neurodeploy_loihi.graded import V_LIMIT, GradedNetwork, GradedProgram, GradedRun, joined_run, wanted_steps
from neurodeploy_loihi.program import Program, RunResult
from neurodeploy_loihi.quantize import to_graph, to_lava

FLOAT32_EXACT = float(1 << 24)
"""Below this magnitude every integer is a float32, so a sum of integer products whose partial sums all stay
below it is computed exactly in float32, in any order of summation."""
CUDA_CONV_FLOAT32 = 0.0
"""On CUDA a convolution is always computed in float64: cuDNN may pick a Winograd or FFT algorithm for float32,
whose transforms round by more than a float32 product does, and no bound on that error is published; in float64
the error of any of its algorithms at these magnitudes (below 2**32) is far under the 0.5 that rounding to int64
removes."""
BATCH = {"cpu": 256, "cuda": 2048}
"""Samples per pass by device type when ``batch_size`` is not given (the state of a ResNet-20 takes about 80 bytes
per neuron and sample)."""


def float_type(bound: float, device: Any, conv: bool = False) -> Any:
    """The float dtype in which a synapse's sums are exact, given ``bound`` >= max over outputs of (sum of |weight|
    over its fan-in) x (largest payload): float32 when every partial sum stays below 2**24 (an integer float32
    holds exactly, so any order of summation gives the integer), float64 otherwise (exact below 2**53; 8-bit
    weights times 24-bit payloads over any fan-in a Loihi core holds stay far below). TF32 is off while the engine
    runs (:func:`exact_floats`). A CUDA convolution is float64 (:data:`CUDA_CONV_FLOAT32`)."""
    torch = import_torch()
    limit = CUDA_CONV_FLOAT32 if conv and device.type == "cuda" else FLOAT32_EXACT
    return torch.float32 if bound < limit else torch.float64


def wrap(x: Any, bits: int) -> Any:
    """:func:`fixed_point.wrap` on an int64 tensor: two's-complement wrap to ``bits`` signed bits, as a mask."""
    half = 1 << (bits - 1)
    return ((x + half) & ((half << 1) - 1)) - half


def shift(x: Any, exp: int) -> Any:
    """:func:`fixed_point.shift`: x * 2**exp, a right shift flooring negatives (int64 shifts are arithmetic)."""
    return x << exp if exp > 0 else (x >> -exp if exp < 0 else x)


def decay(x: Any, d: int) -> Any:
    """:func:`fixed_point.decay`: x * (4096 - d) / 4096 toward zero (|x| < 2**31: the product fits int64)."""
    if d == fp.DECAY_UNITY:
        return x * 0
    if d == 0:
        return x
    product = x * (fp.DECAY_UNITY - d)
    return product.sign() * (product.abs() >> fp.DECAY_BITS)


def fold(total: Any) -> Any:
    """:func:`fixed_point.fold_current`: Lava's single, asymmetric 24-bit fold of u."""
    torch = import_torch()
    limit = fp.STATE_LIMIT
    folded = torch.where(total > limit, total - 2 * limit, total)
    return torch.where(folded <= -limit, total + 2 * limit, folded)


# -- the network on the device ---------------------------------------------------------------------------------


@dataclass
class Edge:
    """A synapse into a population: ``source`` (a population, or -1 for the event input frames), ``delay`` extra
    steps, and ``send``: (B, n_in) spikes (bool) or payloads (int64) -> (B, n_out) int64, Lava's message."""

    source: int
    delay: int
    send: Callable[[Any], Any]


@dataclass
class Population:
    """A population's neurons on the device, flat in Lava's order: decays, threshold, reset, bias (None: zero),
    v0, and the synapses into it."""

    size: int
    du: int
    dv: int
    threshold: int
    subtractive: bool
    bias: Any
    bias_start: int
    v0: Any
    edges: list[Edge]


def _conv_send(synapse: ConvSynapse, top: int, device: Any) -> Callable[[Any], Any]:
    """A Lava Conv (true convolution, ``fixed_point.conv_accumulate``) as torch's conv2d, a cross-correlation, with
    the kernel flipped in X and Y; Lava's (X, Y, C) is torch's (C, H=X, W=Y). A pooled synapse sums each pool block
    first (avg_pool2d with divisor 1, exact for small counts) and convolves at stride / pool, as the numpy path.
    The sums are exact in the :func:`float_type` of their bound, then rounded and wrapped to 24 bits."""
    torch = import_torch()
    functional = torch.nn.functional
    w = synapse.weights
    px, py = synapse.pool
    bound = float(top * px * py) * float(np.abs(w).sum(axis=(1, 2, 3)).max(initial=0))
    dtype = float_type(bound, device, conv=True)
    kernel = w[:, ::-1, ::-1, :].transpose(0, 3, 1, 2).copy()  # (C_out, C_in / g, kX, kY)
    weight = torch.as_tensor(kernel, dtype=dtype, device=device)
    size_x, size_y, channels = synapse.input_shape
    pooled = (px, py) != (1, 1)
    stride = (synapse.stride[0] // px, synapse.stride[1] // py) if pooled else synapse.stride
    padding = (0, 0) if pooled else synapse.padding
    pad = (synapse.padding[1], synapse.padding[1], synapse.padding[0], synapse.padding[0])  # (Y, Y, X, X)

    def send(spikes: Any) -> Any:
        batch = spikes.shape[0]
        z = spikes.reshape(batch, size_x, size_y, channels).permute(0, 3, 1, 2).to(dtype)
        if pooled:
            z = functional.avg_pool2d(functional.pad(z, pad), (px, py), (px, py), divisor_override=1)
        out = functional.conv2d(z, weight, None, stride, padding, synapse.dilation, synapse.groups)
        out = torch.round(out).to(torch.int64).permute(0, 2, 3, 1).reshape(batch, -1)
        return wrap(out, fp.CONV_BITS)  # signed_clamp(x, bits=24): a wrap

    return send


def _dense_send(synapse: DenseSynapse, top: int, device: Any) -> Callable[[Any], Any]:
    """Dense: one matrix product in the exact :func:`float_type`, rounded, shifted by weight_exp, wrapped to int32
    (``fixed_point.dense_accumulate``)."""
    torch = import_torch()
    w = synapse.effective_weights
    dtype = float_type(float(top) * float(np.abs(w).sum(axis=1).max(initial=0)), device)
    matrix = torch.as_tensor(np.ascontiguousarray(w.T), dtype=dtype, device=device)
    exp = int(synapse.weight_exp)

    def send(spikes: Any) -> Any:
        flat = spikes.reshape(spikes.shape[0], -1).to(dtype)
        acc = torch.round(flat @ matrix).to(torch.int64)
        return wrap(shift(acc, exp), fp.PORT_BITS)

    return send


def _sparse_send(synapse: SparseSynapse, top: int, device: Any) -> Callable[[Any], Any]:
    """A synapse list: one-to-one (no output has two synapses) as a gather times the weights in int64; otherwise a
    sparse matrix product in the exact :func:`float_type` of its rows' sums. Then the shift and the int32 port."""
    torch = import_torch()
    n_out, n_in = synapse.shape
    w = synapse.effective_weights
    exp = int(synapse.weight_exp)
    rows = torch.as_tensor(synapse.rows, dtype=torch.int64, device=device)  # (stored narrow: torch indexes in int64)
    cols = torch.as_tensor(synapse.cols, dtype=torch.int64, device=device)
    if len(np.unique(synapse.rows)) == len(synapse.rows):
        weights = torch.as_tensor(w, dtype=torch.int64, device=device)

        def gather(spikes: Any) -> Any:
            flat = spikes.reshape(spikes.shape[0], -1)
            out = torch.zeros((flat.shape[0], n_out), dtype=torch.int64, device=device)
            out[:, rows] = flat[:, cols].to(torch.int64) * weights
            return wrap(shift(out, exp), fp.PORT_BITS)

        return gather
    row_sums = np.bincount(synapse.rows, weights=np.abs(w).astype(np.float64), minlength=n_out)
    dtype = float_type(float(top) * float(row_sums.max(initial=0)), device)
    index = torch.stack([rows, cols])
    values = torch.as_tensor(w, dtype=dtype, device=device)
    matrix = torch.sparse_coo_tensor(index, values, (n_out, n_in), device=device, check_invariants=True).coalesce()

    def product(spikes: Any) -> Any:
        flat = spikes.reshape(spikes.shape[0], -1).to(dtype)
        acc = torch.round(torch.sparse.mm(matrix, flat.T).T).to(torch.int64)
        return wrap(shift(acc, exp), fp.PORT_BITS)

    return product


def _send(synapse: Any, top: int, device: Any) -> Callable[[Any], Any]:
    if isinstance(synapse, ConvSynapse):
        return _conv_send(synapse, top, device)
    if isinstance(synapse, SparseSynapse):
        return _sparse_send(synapse, top, device)
    return _dense_send(synapse, top, device)


@dataclass
class Plan:
    """A network's populations on one device, and what the program's counting needs: depths, per population its
    SynOps weights (fan-out), and the event input's payload range (0: the input is the host's bias)."""

    populations: list[Population]
    depths: list[int]
    fan_out: list[Any]
    input_bits: int


def plan(network: Network, device: Any) -> Plan:
    """The network's :class:`Plan` on ``device`` (kept per network and device: a network's layers do not
    change)."""
    cache = network.__dict__.setdefault("_torch_plans", {})
    key = str(device)
    if key not in cache:
        cache[key] = _build_plan(network, device)
    return cache[key]


def _build_plan(network: Network, device: Any) -> Plan:
    torch = import_torch()
    populations = []
    for k, layer in enumerate(network.layers):
        n = layer.neuron
        size = int(np.prod(layer.shape))
        bias = fp.effective_bias(n.bias_mant, n.bias_exp)
        edges = []
        for source, synapse, delay in layer.inbound(k):
            top = (1 << network.input_bits) - 1 if k == 0 else 1  # binary spikes between populations
            edges.append(Edge(-1 if k == 0 else source, delay, _send(synapse, top, device)))
        populations.append(
            Population(
                size=size,
                du=int(n.du) + fp.DS_OFFSET,
                dv=int(n.dv) + fp.DM_OFFSET,
                threshold=fp.effective_threshold(n.vth),
                subtractive=n.kind == "subtractive",
                bias=None if not np.any(bias) else torch.as_tensor(_flat(bias, size), device=device),
                bias_start=int(n.bias_start),
                v0=torch.as_tensor(_flat(np.asarray(n.v0, np.int64), size), device=device),
                edges=edges,
            )
        )
    fan_out = [torch.as_tensor(f.reshape(-1), dtype=torch.int64, device=device) for f in network.fan_out()]
    return Plan(populations, list(network.depths), fan_out, int(network.input_bits))


def _flat(value: np.ndarray, size: int) -> np.ndarray:
    """A scalar or per-neuron (Lava shape) integer array as (size,) int64."""
    return np.broadcast_to(np.asarray(value, np.int64).reshape(-1), (size,)).copy()


# -- one pass over a slice of the batch ------------------------------------------------------------------------


@dataclass
class Counting:
    """What the program reads, as :meth:`Program.run` counts it: ``steps`` graph steps, the marks ``wanted``
    (graph steps), the readout population ``top``, which populations are the (non-spiking) readout, and the
    windows of Loihi steps each population computes."""

    steps: int
    wanted: list[int]
    top: int
    readout: list[bool]
    windows: list[tuple[int, int]]


@dataclass
class Pass:
    """The state of one pass (a slice of the batch) and what it has counted so far."""

    u: list[Any]
    v: list[Any]
    stats: list[Any]
    """Per population (B, 4) int64: u folds, v saturations, largest |u| and |v| after a computed step."""
    queues: list[list[list[Any]]]
    """Per population and synapse, delay + 1 messages (None: nothing sent)."""
    counted: dict[int, Any]
    baseline: Any = None
    readout_spikes: Any = 0
    marks: dict[int, dict[int, Any]] = field(default_factory=dict)
    synops: dict[int, dict[int, Any]] = field(default_factory=dict)
    readouts: dict[int, Any] = field(default_factory=dict)


def _new_pass(p: Plan, batch: int, counting: Counting, device: Any) -> Pass:
    torch = import_torch()
    pops = p.populations
    return Pass(
        u=[torch.zeros((batch, q.size), dtype=torch.int64, device=device) for q in pops],
        v=[q.v0.expand(batch, q.size).clone() for q in pops],
        stats=[torch.zeros((batch, 4), dtype=torch.int64, device=device) for _ in pops],
        queues=[[[None] * (e.delay + 1) for e in q.edges] for q in pops],
        counted={
            k: torch.zeros((batch, q.size), dtype=torch.int32, device=device)
            for k, q in enumerate(pops)
            if not counting.readout[k]
        },
        marks={c: {} for c in counting.wanted},
        synops={c: {} for c in counting.wanted},
    )


def _receive(q: Population, queues: list[list[Any]], sources: list[Any]) -> Any:
    """Step 1 and 2 of a population's synapses: each sends the oldest message of its queue (the InPort sums them,
    an int32 sum; None when nothing was sent) and accumulates its source's spikes of this step (``sources``: per
    synapse, None when its source computed nothing)."""
    total = None
    for queue, edge, spikes in zip(queues, q.edges, sources):
        sent = queue.pop(0)
        if sent is not None:
            total = sent if total is None else total + sent
        queue.append(None if spikes is None else edge.send(spikes))
    if total is None:
        return None  # nothing arrived: a zero message
    return wrap(total, fp.PORT_BITS) if len(q.edges) > 1 else total  # one message is already within int32


def _neurons(q: Population, u: Any, v: Any, message: Any, bias: Any, stats: Any) -> tuple[Any, Any, Any]:
    """Step 3: Lava's ``subthr_dynamics``, spike and reset (``fixed_point``'s functions, in the same order), and the
    overflow statistics. Returns (u, v, spikes)."""
    torch = import_torch()
    if message is None and q.du == fp.DECAY_UNITY:  # no input, no current kept: u = 0, nothing folds
        u_new = current = torch.zeros_like(u)
    else:
        activation = 0 if message is None else wrap(message << fp.ACT_SHIFT, fp.LIF_INT_BITS)  # int32 shift: wraps
        current = activation if q.du == fp.DECAY_UNITY else wrap(decay(u, q.du) + activation, fp.LIF_INT_BITS)
        u_new = fold(current)
        stats[:, 0] += (u_new != current).sum(dim=1)
    voltage = decay(v, q.dv) + u_new
    if bias is not None:
        voltage = voltage + bias
    voltage = wrap(voltage, fp.LIF_INT_BITS)
    v_new = voltage.clamp(-fp.STATE_LIMIT + 1, fp.STATE_LIMIT - 1)
    fired = v_new > q.threshold
    stats[:, 1] += (v_new != voltage).sum(dim=1)
    if q.subtractive:
        v_new = v_new - fired * q.threshold
    else:
        v_new = torch.where(fired, 0, v_new)
    stats[:, 2] = torch.maximum(stats[:, 2], u_new.abs().amax(dim=1))
    stats[:, 3] = torch.maximum(stats[:, 3], v_new.abs().amax(dim=1))
    return u_new, v_new, fired


def _record(p: Plan, state: Pass, counting: Counting, k: int, t: int, fired: Any) -> None:
    """What :meth:`Program.run`'s ``record`` counts of population k after Loihi step t (1-based)."""
    local = t - p.depths[k]
    if k in state.counted:
        counted = state.counted[k]
        if 1 <= local <= counting.steps:
            counted += fired
        if local in state.marks:
            state.marks[local][k] = counted.sum(dim=1, dtype=state.u[k].dtype)
            state.synops[local][k] = (counted.to(state.u[k].dtype) * p.fan_out[k]).sum(dim=1)
            if k == counting.top:
                state.readouts[local] = counted.clone()
        return
    if local == 0:
        state.baseline = state.v[k].clone()
    if 1 <= local <= counting.steps:
        state.readout_spikes = state.readout_spikes + fired.sum()
    if local in state.marks:
        state.readouts[local] = state.v[k] if state.baseline is None else state.v[k] - state.baseline


def _step(p: Plan, state: Pass, counting: Counting, t: int, bias0: Any, frame: Any) -> None:
    """Loihi step t (1-based) of every population, in order."""
    fired_now: list[Any] = []
    for k, q in enumerate(p.populations):
        sources = [frame if e.source < 0 else fired_now[e.source] for e in q.edges]
        message = _receive(q, state.queues[k], sources)
        first, last = counting.windows[k]
        if not first <= t <= last:
            fired_now.append(None)
            continue
        bias = (bias0 if k == 0 and bias0 is not None else q.bias) if t > q.bias_start else None
        state.u[k], state.v[k], fired = _neurons(q, state.u[k], state.v[k], message, bias, state.stats[k])
        fired_now.append(fired)
        _record(p, state, counting, k, t, fired)


def run_pass(p: Plan, counting: Counting, total: int, bias0: Any, frames: Any, batch: int, device: Any) -> Pass:
    """``total`` Loihi steps of one slice of the batch: ``bias0`` (B, n) the input population's bias, or
    ``frames`` (B, F, n) the event input's payloads (frame t - 1 sent at step t)."""
    state = _new_pass(p, batch, counting, device)
    count = 0 if frames is None else frames.shape[1]
    for t in range(1, total + 1):
        _step(p, state, counting, t, bias0, frames[:, t - 1] if t <= count else None)
    return state


# -- the program's run -----------------------------------------------------------------------------------------


def _numpy(x: Any) -> np.ndarray:
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def _inputs(program: Program, x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(analog inputs checked against the host graph, None), or (None, the event frames as graded spikes)."""
    if program.network.input_bits:
        return None, program.input_frames(x)
    (checked,) = interpret.check_inputs(program.host, np.asarray(x, np.float32)).values()
    return checked, None


def _pass_inputs(program: Program, analog: Any, frames: Any, lo: int, hi: int, device: Any) -> tuple[Any, Any]:
    """A slice's (input bias, frames) on the device, flat per sample."""
    torch = import_torch()
    if frames is not None:
        part = frames[lo:hi]
        return None, torch.as_tensor(part.reshape(*part.shape[:2], -1), dtype=torch.int64, device=device)
    bias = fp.effective_bias(*program.input_bias(analog[lo:hi]))
    return torch.as_tensor(bias.reshape(hi - lo, -1), device=device), None


@dataclass
class Totals:
    """The passes' counts, per sample, in numpy."""

    marks: dict[int, dict[int, list[np.ndarray]]]
    synops: dict[int, dict[int, list[np.ndarray]]]
    readouts: dict[int, list[np.ndarray]]
    counted: dict[int, list[np.ndarray]]
    stats: list[np.ndarray] = field(default_factory=list)
    readout_spikes: int = 0

    def add(self, state: Pass, counts: bool) -> None:
        for c in self.marks:
            for k in state.marks[c]:
                self.marks[c].setdefault(k, []).append(_numpy(state.marks[c][k]))
                self.synops[c].setdefault(k, []).append(_numpy(state.synops[c][k]))
            self.readouts[c].append(_numpy(state.readouts[c]).astype(np.int64))
        if counts:
            for k, counted in state.counted.items():
                self.counted.setdefault(k, []).append(_numpy(counted))
        self.stats.append(np.stack([_numpy(s) for s in state.stats], axis=1))  # (B, L, 4)
        self.readout_spikes += int(_numpy(state.readout_spikes))


def _input_synops(program: Program, frames: Any, batch: int, wanted: list[int]) -> dict[int, np.ndarray]:
    """The input's SynOps at each mark, as :meth:`Program.run` counts them."""
    if frames is None:
        per_step = program._input_synapses
        return {c: np.full(batch, c * per_step, np.int64) for c in wanted}
    fan_out = program.network.layers[0].synapse.fan_out.reshape(-1)
    sent = np.cumsum((frames != 0).reshape(batch, len(frames[0]), -1).astype(np.int64) @ fan_out, axis=1)
    last = sent.shape[1]
    return {c: sent[:, min(c, last) - 1] if last else np.zeros(batch, np.int64) for c in wanted}


def _check(program: Any, steps: int) -> None:
    if not isinstance(program, Program):
        raise NeurodeployError(
            f"the torch engine's run() takes binary-mode Loihi programs; this is a {type(program).__name__}: "
            "run_graded() takes the graded mode's, and the board profile's graded form runs with --emulator numpy"
        )
    if steps < 1:
        raise DataError(f"steps must be >= 1, got {steps}")


def run(
    program: Program,
    x: np.ndarray,
    steps: int,
    *,
    checkpoints: tuple[int, ...] = (),
    counts: bool = False,
    readout_delay: int = 0,
    trim: bool = True,
    device: Any = None,
    batch_size: int | None = None,
) -> RunResult:
    """:meth:`Program.run` (without ``observe``) on torch: the same :class:`RunResult`, value for value.
    ``device``: ``cpu``, ``cuda`` (or ``cuda:N``), None for cuda when present; ``batch_size``: samples per pass
    (default :data:`BATCH` of the device type)."""
    _check(program, steps)
    device = resolve_device(device)
    p = plan(program.network, device)
    analog, frames = _inputs(program, x)
    batch = len(frames if frames is not None else analog)
    total = steps + program.delay
    read = sorted({c for c in checkpoints if 1 <= c <= steps} | {steps})
    skips = {c: readout_skip(readout_delay, c) for c in read}
    wanted = sorted(set(read) | set(skips.values()) - {0})
    depths = program.network.depths
    windows = program.network.windows(total, [d + steps for d in depths]) if trim else [(1, total)] * len(depths)
    top = int(program.readout["population"])
    counting = Counting(steps, wanted, top, [role == "readout" for role in program.roles], windows)
    totals = Totals({c: {} for c in wanted}, {c: {} for c in wanted}, {c: [] for c in wanted}, {})
    size = int(batch_size or BATCH.get(device.type, BATCH["cpu"]))
    with exact_floats():
        for lo in range(0, batch, size):
            hi = min(batch, lo + size)
            bias0, frames_on = _pass_inputs(program, analog, frames, lo, hi, device)
            totals.add(run_pass(p, counting, total, bias0, frames_on, hi - lo, device), counts)
    return _result(program, totals, counting, skips, _input_synops(program, frames, batch, wanted), checkpoints)


def _result(
    program: Program,
    totals: Totals,
    counting: Counting,
    skips: dict[int, int],
    input_synops: dict[int, np.ndarray],
    checkpoints: tuple[int, ...],
) -> RunResult:
    """The passes' counts as :meth:`Program.run` returns them."""
    steps, wanted, names = counting.steps, counting.wanted, program.names
    layers = program.network.layers
    spiking = [k for k, readout in enumerate(counting.readout) if not readout]
    marks = {c: {names[k]: np.concatenate(totals.marks[c][k]) for k in spiking} for c in wanted}
    (input_name,) = program.host.inputs
    synops = {c: {input_name: input_synops[c]} for c in wanted}
    for c in wanted:
        synops[c].update({names[k]: np.concatenate(totals.synops[c][k]) for k in spiking})
    shape = layers[counting.top].shape
    readouts = {c: np.concatenate(totals.readouts[c]).reshape(-1, *shape) for c in wanted}
    per_layer = np.concatenate(totals.stats) if totals.stats else np.zeros((0, len(layers), 4), np.int64)
    stats: dict[str, Any] = {"readout_spikes": totals.readout_spikes}
    for i, name in enumerate(("u_folds", "v_saturations")):
        stats[name] = per_layer[..., i].sum(axis=0).astype(np.int64)
    for i, name in ((2, "u_max"), (3, "v_max")):
        stats[name] = per_layer[..., i].max(axis=0, initial=0).astype(np.int64)
    outputs = {c: program._readout(readouts[c] - readouts[s] if s else readouts[c], c - s) for c, s in skips.items()}
    counted = {
        names[k]: to_graph(np.concatenate(totals.counted[k]).reshape(-1, *layers[k].shape), program.shapes[k])
        for k in totals.counted
    }
    return RunResult(
        outputs=outputs[steps],
        checkpoints={c: outputs[c] for c in wanted if c in checkpoints},
        spikes={names[k]: marks[steps][names[k]] for k in spiking},
        checkpoint_spikes={c: marks[c] for c in wanted if c in checkpoints},
        counts=counted,
        neurons={names[k]: int(np.prod(program.shapes[k])) for k in spiking},
        stats=stats,
        synops=synops[steps],
        checkpoint_synops={c: synops[c] for c in wanted if c in checkpoints},
    )


# -- graded mode -----------------------------------------------------------------------------------------------


@dataclass
class GradedPopulation:
    """A graded population on the device (:class:`neurodeploy_loihi.graded.GradedNeuron`): its size, ReLU or
    identity, shift, largest payload, bias (None: zero; the input population's is the sample's payload), few-spike
    code (None: none), the synapses into it, and each neuron's fan-out (the SynOps of a nonzero payload)."""

    size: int
    relu: bool
    shift: int
    top: int
    bias: Any
    code: Any
    edges: list[Edge]
    fan_out: Any


def graded_plan(network: GradedNetwork, device: Any) -> list[GradedPopulation]:
    """The graded network's populations on ``device`` (kept per network and device)."""
    cache = network.__dict__.setdefault("_torch_plans", {})
    key = str(device)
    if key not in cache:
        torch = import_torch()
        fan_out = network.fan_out()
        tops = [layer.neuron.top for layer in network.layers]  # a source's payloads lie in 0..top
        plan = []
        for k, layer in enumerate(network.layers):
            n = layer.neuron
            size = int(np.prod(layer.shape))
            bias = fp.effective_bias(n.bias_mant, n.bias_exp)
            edges = [
                Edge(source, delay, _send(synapse, tops[source], device)) for source, synapse, delay in layer.inbound(k)
            ]
            plan.append(
                GradedPopulation(
                    size=size,
                    relu=bool(n.relu),
                    shift=int(n.shift),
                    top=int(n.top),
                    bias=None if not np.any(bias) else torch.as_tensor(_flat(bias, size), device=device),
                    code=n.fs,
                    edges=edges,
                    fan_out=torch.as_tensor(fan_out[k].reshape(-1), dtype=torch.int64, device=device),
                )
            )
        cache[key] = plan
    return cache[key]


def _graded_neurons(q: GradedPopulation, message: Any, bias: Any) -> tuple[Any, Any, Any]:
    """:func:`neurodeploy_loihi.graded.graded_step`: (v, payload, saturations per sample)."""
    torch = import_torch()
    total = message if bias is None else message + bias  # int64: no overflow (an int32 message, a 20-bit bias)
    v = total.clamp(-V_LIMIT, V_LIMIT)
    payload = (v >> q.shift).clamp(0, q.top) if q.relu else v
    return v, payload, (v != total).sum(dim=1, dtype=torch.int64)


def _few_spike(code: Any, v: Any, window: Any, rest: Any, local: int) -> Any:
    """:func:`neurodeploy_loihi.graded.fs_step` on tensors (``window`` and ``rest`` updated in place)."""
    j = (local - 1) % code.steps
    fire = (rest >= code.thresholds[j]) & code.live(local)
    rest -= fire * code.resets[j]
    window += v
    if j == code.steps - 1:
        if local - code.steps >= code.start:
            rest.copy_(window)
        else:
            rest.zero_()
        window.zero_()
    return fire * code.payloads[j]


@dataclass
class GradedCount:
    """What :meth:`GradedProgram.run` counts, per pass: nonzero payloads and SynOps per spiking population, their
    values at the marks, the readout's value at the marks (a few-spike program's: its sum since the fill), and the
    v saturations per population (B, L); ``fill``: the graph steps before the first counted one (a few-spike
    program's pipeline fill, else 0)."""

    fill: int
    sent: dict[int, Any]
    synops: dict[int, Any]
    marks: dict[int, dict[int, np.ndarray]]
    synop_marks: dict[int, dict[int, np.ndarray]]
    values: dict[int, np.ndarray]
    saturations: Any
    sums: Any = None


def _graded_pass(program: GradedProgram, plan: list[GradedPopulation], q0: Any, steps: int, wanted: list[int]) -> Any:
    """One slice of the batch through every Loihi step (:meth:`GradedNetwork.run`: a settled network's steps
    replayed, not recomputed, unless it has few-spike populations), counted as :meth:`GradedProgram.run` counts:
    ``q0`` (B, n) the input population's payloads (its bias)."""
    torch = import_torch()
    batch, device = q0.shape[0], q0.device
    fill = int(program.fs["fill"]) if program.fs else 0  # a few-spike program's pipeline fill runs first
    top = int(program.readout["population"])
    spiking = [k for k, role in enumerate(program.roles) if role != "readout"]
    zeros = [torch.zeros((batch, q.size), dtype=torch.int64, device=device) for q in plan]
    count = GradedCount(
        fill=fill,
        sent={k: zeros[0].new_zeros(batch) for k in spiking},
        synops={k: zeros[0].new_zeros(batch) for k in spiking},
        marks={c: {} for c in wanted},
        synop_marks={c: {} for c in wanted},
        values={},
        saturations=torch.zeros((batch, len(plan)), dtype=torch.int64, device=device),
    )
    windows = {k: zeros[k].clone() for k, q in enumerate(plan) if q.code is not None}
    rests = {k: zeros[k].clone() for k in windows}
    queues = [[[None] * (e.delay + 1) for e in q.edges] for q in plan]
    replay = not windows  # as GradedNetwork.run: once settled for longer than the longest delay, a step repeats
    settle = 1 + max((e.delay for q in plan for e in q.edges), default=0)
    unchanged, last = 0, [None] * len(plan)  # per population its last computed (v, payload, saturations)
    for t in range(fill + steps + program.delay):
        if replay and unchanged > settle:
            for k, (v, payload, saturated) in enumerate(last):  # type: ignore[misc]
                count.saturations[:, k] += saturated
                _graded_record(program, count, k, t + 1 - k - fill, steps, payload, v, plan[k].fan_out, top)
            continue
        repeated = t > 0
        sent_now: list[Any] = []
        for k, q in enumerate(plan):
            message = _receive(q, queues[k], [sent_now[e.source] for e in q.edges])  # type: ignore[arg-type]
            bias = q0 if k == 0 else q.bias
            v, payload, saturated = _graded_neurons(q, zeros[k] if message is None else message, bias)
            count.saturations[:, k] += saturated
            if q.code is not None:
                payload = _few_spike(q.code, v, windows[k], rests[k], t + 1 - q.code.depth)
            elif replay:
                if repeated:  # (t > 0: every population has a last step)
                    repeated = torch.equal(payload, last[k][1]) and torch.equal(v, last[k][0])  # type: ignore[index]
                last[k] = (v, payload, saturated)
            sent_now.append(payload)
            _graded_record(program, count, k, t + 1 - k - fill, steps, payload, v, q.fan_out, top)
        unchanged = unchanged + 1 if repeated else 0
    return count


def _graded_record(
    program: GradedProgram,
    count: GradedCount,
    k: int,
    local: int,
    steps: int,
    payload: Any,
    v: Any,
    fan_out: Any,
    top: int,
) -> None:
    """:meth:`GradedProgram.run`'s ``record`` for population k at graph step ``local``."""
    if not 1 - count.fill <= local <= steps:
        return
    if k in count.sent:
        messages = payload != 0
        count.sent[k] += messages.sum(dim=1)
        count.synops[k] += (messages * fan_out).sum(dim=1)
        if local in count.marks:
            count.marks[local][k] = _numpy(count.sent[k]).copy()
            count.synop_marks[local][k] = _numpy(count.synops[k]).copy()
    readout = payload if program.readout["kind"] == "spikes" else v
    if k == top and program.fs and local >= 1:  # the mean over the steps after the fill
        count.sums = readout.clone() if count.sums is None else count.sums + readout
        if local in count.marks:
            count.values[local] = _numpy(count.sums) / local  # (float64 in numpy, as the reference divides)
    elif k == top and local in count.marks:
        count.values[local] = _numpy(readout).copy()


def run_graded(
    program: GradedProgram,
    x: np.ndarray,
    steps: int,
    *,
    checkpoints: tuple[int, ...] = (),
    device: Any = None,
    batch_size: int | None = None,
) -> GradedRun:
    """:meth:`GradedProgram.run` on torch: the same :class:`GradedRun`, value for value. ``device`` and
    ``batch_size`` as :func:`run`'s."""
    if not isinstance(program, GradedProgram):
        raise NeurodeployError(
            f"run_graded() takes a graded-mode Loihi program; this is a {type(program).__name__} (the board "
            "profile's graded form runs with --emulator numpy)"
        )
    torch = import_torch()
    wanted = wanted_steps(steps, checkpoints)
    device = resolve_device(device)
    plan = graded_plan(program.network, device)
    q0 = to_lava(program.input_payload(x), program.shapes[0]).reshape(len(x), -1)
    batch = len(q0)
    size = int(batch_size or BATCH.get(device.type, BATCH["cpu"]))
    parts = []
    with exact_floats():
        for lo in range(0, max(batch, 1), size):  # (an empty batch: one empty pass)
            payloads = torch.as_tensor(np.ascontiguousarray(q0[lo : lo + size], np.int64), device=device)
            parts.append(_graded_pass(program, plan, payloads, steps, wanted))
    names, spiking, fill = program.names, list(parts[0].sent), parts[0].fill
    (input_name,) = program.host.inputs
    per_step = input_synapses(program.host)
    marks = {c: {names[k]: np.concatenate([p.marks[c][k] for p in parts]) for k in spiking} for c in wanted}
    synop_marks = {c: {input_name: np.full(batch, (fill + c) * per_step, np.int64)} for c in wanted}
    for c in wanted:
        synop_marks[c].update({names[k]: np.concatenate([p.synop_marks[c][k] for p in parts]) for k in spiking})
    shape = program.network.layers[int(program.readout["population"])].shape
    outputs = {c: program._output(np.concatenate([p.values[c] for p in parts]).reshape(batch, *shape)) for c in wanted}
    counted = {
        "outputs": outputs,
        "sent": {k: np.concatenate([_numpy(p.sent[k]) for p in parts]) for k in spiking},
        "marks": marks,
        "synop_marks": synop_marks,
        "v_saturations": np.concatenate([_numpy(p.saturations) for p in parts]),
    }
    return joined_run(program, counted, checkpoints)
